build-dev/obj/image/preprocess.o: image/preprocess.c image/image.h \
 util/error.h image/resize.h
image/image.h:
util/error.h:
image/resize.h:
