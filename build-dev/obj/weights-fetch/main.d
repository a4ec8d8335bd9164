build-dev/obj/weights-fetch/main.o: weights-fetch/main.c util/log.h \
 weights-fetch/fetch.h util/error.h
util/log.h:
weights-fetch/fetch.h:
util/error.h:
