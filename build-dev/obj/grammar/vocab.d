build-dev/obj/grammar/vocab.o: grammar/vocab.c grammar/vocab.h \
 grammar/grammar.h tokenizer/tokenizer.h util/error.h
grammar/vocab.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
util/error.h:
