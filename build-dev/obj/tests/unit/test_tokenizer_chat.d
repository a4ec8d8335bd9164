build-dev/obj/tests/unit/test_tokenizer_chat.o: \
 tests/unit/test_tokenizer_chat.c tests/unit/test.h tokenizer/chat.h \
 tokenizer/tokenizer.h util/error.h
tests/unit/test.h:
tokenizer/chat.h:
tokenizer/tokenizer.h:
util/error.h:
