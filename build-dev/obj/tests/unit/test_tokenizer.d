build-dev/obj/tests/unit/test_tokenizer.o: tests/unit/test_tokenizer.c \
 tests/unit/test.h tokenizer/tokenizer.h util/error.h
tests/unit/test.h:
tokenizer/tokenizer.h:
util/error.h:
