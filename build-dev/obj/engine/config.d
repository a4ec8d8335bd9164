build-dev/obj/engine/config.o: engine/config.c engine/config.h \
 util/error.h
engine/config.h:
util/error.h:
