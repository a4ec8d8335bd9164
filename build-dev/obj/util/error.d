build-dev/obj/util/error.o: util/error.c util/error.h
util/error.h:
