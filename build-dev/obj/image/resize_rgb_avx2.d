build-dev/obj/image/resize_rgb_avx2.o: image/resize_rgb_avx2.c \
 image/resize_rgb_avx2.h
image/resize_rgb_avx2.h:
