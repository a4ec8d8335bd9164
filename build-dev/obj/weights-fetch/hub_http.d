build-dev/obj/weights-fetch/hub_http.o: weights-fetch/hub_http.c \
 weights-fetch/hub_http.h util/error.h
weights-fetch/hub_http.h:
util/error.h:
