build-dev/obj/tokenizer/vocab_load.o: tokenizer/vocab_load.c \
 tokenizer/json_text.h tokenizer/tokenizer_internal.h \
 tokenizer/tokenizer.h util/error.h
tokenizer/json_text.h:
tokenizer/tokenizer_internal.h:
tokenizer/tokenizer.h:
util/error.h:
