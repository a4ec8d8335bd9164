build-dev/obj/tokenizer/tokenizer_load.o: tokenizer/tokenizer_load.c \
 tokenizer/json_text.h tokenizer/tokenizer_internal.h \
 tokenizer/tokenizer.h util/error.h
tokenizer/json_text.h:
tokenizer/tokenizer_internal.h:
tokenizer/tokenizer.h:
util/error.h:
