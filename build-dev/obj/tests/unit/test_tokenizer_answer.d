build-dev/obj/tests/unit/test_tokenizer_answer.o: \
 tests/unit/test_tokenizer_answer.c tests/unit/test.h tokenizer/answer.h
tests/unit/test.h:
tokenizer/answer.h:
