build-dev/obj/image/decode.o: image/decode.c image/codecs.h image/image.h \
 util/error.h
image/codecs.h:
image/image.h:
util/error.h:
