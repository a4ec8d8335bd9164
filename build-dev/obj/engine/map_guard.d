build-dev/obj/engine/map_guard.o: engine/map_guard.c engine/map_guard.h \
 util/error.h util/log.h
engine/map_guard.h:
util/error.h:
util/log.h:
