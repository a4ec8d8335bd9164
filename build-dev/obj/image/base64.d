build-dev/obj/image/base64.o: image/base64.c image/base64.h util/error.h
image/base64.h:
util/error.h:
