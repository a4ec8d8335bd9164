build-dev/obj/grammar/schema.o: grammar/schema.c \
 grammar/grammar_internal.h grammar/automaton.h util/error.h \
 grammar/grammar.h tokenizer/tokenizer.h grammar/vocab.h grammar/regex.h
grammar/grammar_internal.h:
grammar/automaton.h:
util/error.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
grammar/vocab.h:
grammar/regex.h:
