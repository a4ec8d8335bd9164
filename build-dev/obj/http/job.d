build-dev/obj/http/job.o: http/job.c http/job.h http/request.h \
 image/ct_window.h image/image.h util/error.h
http/job.h:
http/request.h:
image/ct_window.h:
image/image.h:
util/error.h:
