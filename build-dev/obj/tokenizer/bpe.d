build-dev/obj/tokenizer/bpe.o: tokenizer/bpe.c \
 tokenizer/tokenizer_internal.h tokenizer/tokenizer.h util/error.h \
 tokenizer/json_text.h
tokenizer/tokenizer_internal.h:
tokenizer/tokenizer.h:
util/error.h:
tokenizer/json_text.h:
