build-dev/obj/tokenizer/tokenizer.o: tokenizer/tokenizer.c \
 tokenizer/tokenizer_internal.h tokenizer/tokenizer.h util/error.h \
 tokenizer/json_text.h
tokenizer/tokenizer_internal.h:
tokenizer/tokenizer.h:
util/error.h:
tokenizer/json_text.h:
