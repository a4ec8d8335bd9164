build-dev/obj/engine/kv_cache.o: engine/kv_cache.c engine/kv_cache.h \
 engine/config.h util/error.h
engine/kv_cache.h:
engine/config.h:
util/error.h:
