build-dev/obj/tests/unit/test_http.o: tests/unit/test_http.c http/job.h \
 http/request.h image/ct_window.h image/image.h util/error.h \
 http/metrics.h http/reply_json.h http/visible_text.h tests/unit/test.h
http/job.h:
http/request.h:
image/ct_window.h:
image/image.h:
util/error.h:
http/metrics.h:
http/reply_json.h:
http/visible_text.h:
tests/unit/test.h:
