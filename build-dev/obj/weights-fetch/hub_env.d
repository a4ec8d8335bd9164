build-dev/obj/weights-fetch/hub_env.o: weights-fetch/hub_env.c \
 weights-fetch/fetch.h util/error.h
weights-fetch/fetch.h:
util/error.h:
