build-dev/obj/tokenizer/token_stream.o: tokenizer/token_stream.c \
 tokenizer/tokenizer_internal.h tokenizer/tokenizer.h util/error.h \
 tokenizer/json_text.h
tokenizer/tokenizer_internal.h:
tokenizer/tokenizer.h:
util/error.h:
tokenizer/json_text.h:
