build-dev/obj/tests/unit/test_image.o: tests/unit/test_image.c \
 image/base64.h util/error.h image/ct_window.h image/image.h \
 tests/unit/test.h
image/base64.h:
util/error.h:
image/ct_window.h:
image/image.h:
tests/unit/test.h:
