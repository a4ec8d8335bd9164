build-dev/obj/image/png_decode.o: image/png_decode.c image/codecs.h \
 image/image.h util/error.h
image/codecs.h:
image/image.h:
util/error.h:
