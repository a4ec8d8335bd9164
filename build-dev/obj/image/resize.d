build-dev/obj/image/resize.o: image/resize.c image/image.h util/error.h \
 image/resize.h image/resize_rgb_avx2.h
image/image.h:
util/error.h:
image/resize.h:
image/resize_rgb_avx2.h:
