build-dev/obj/tokenizer/answer.o: tokenizer/answer.c tokenizer/answer.h
tokenizer/answer.h:
