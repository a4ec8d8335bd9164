build-dev/obj/tokenizer/chat.o: tokenizer/chat.c tokenizer/chat.h \
 tokenizer/tokenizer.h util/error.h tokenizer/json_text.h
tokenizer/chat.h:
tokenizer/tokenizer.h:
util/error.h:
tokenizer/json_text.h:
