build-dev/obj/image/jpeg_decode.o: image/jpeg_decode.c image/codecs.h \
 image/image.h util/error.h
image/codecs.h:
image/image.h:
util/error.h:
