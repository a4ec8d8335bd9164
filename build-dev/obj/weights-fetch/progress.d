build-dev/obj/weights-fetch/progress.o: weights-fetch/progress.c \
 weights-fetch/progress.h weights-fetch/fetch.h util/error.h util/log.h
weights-fetch/progress.h:
weights-fetch/fetch.h:
util/error.h:
util/log.h:
