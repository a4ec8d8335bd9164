build-dev/obj/image/ct_window.o: image/ct_window.c image/ct_window.h \
 image/image.h util/error.h
image/ct_window.h:
image/image.h:
util/error.h:
