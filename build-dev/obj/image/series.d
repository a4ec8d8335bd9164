build-dev/obj/image/series.o: image/series.c image/ct_window.h \
 image/image.h util/error.h
image/ct_window.h:
image/image.h:
util/error.h:
