build-dev/obj/tokenizer/json_text.o: tokenizer/json_text.c \
 tokenizer/json_text.h
tokenizer/json_text.h:
