build-dev/obj/tests/unit/test_http_strict.o: \
 tests/unit/test_http_strict.c http/request.h image/ct_window.h \
 image/image.h util/error.h tests/unit/test.h util/json_strict.h
http/request.h:
image/ct_window.h:
image/image.h:
util/error.h:
tests/unit/test.h:
util/json_strict.h:
