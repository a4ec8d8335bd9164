build-dev/obj/util/log.o: util/log.c util/log.h
util/log.h:
