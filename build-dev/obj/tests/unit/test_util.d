build-dev/obj/tests/unit/test_util.o: tests/unit/test_util.c \
 tests/unit/test.h util/bf16.h util/error.h
tests/unit/test.h:
util/bf16.h:
util/error.h:
