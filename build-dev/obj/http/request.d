build-dev/obj/http/request.o: http/request.c http/request.h \
 image/ct_window.h image/image.h util/error.h util/json_strict.h
http/request.h:
image/ct_window.h:
image/image.h:
util/error.h:
util/json_strict.h:
