build-dev/obj/grammar/matcher.o: grammar/matcher.c \
 grammar/grammar_internal.h grammar/automaton.h util/error.h \
 grammar/grammar.h tokenizer/tokenizer.h grammar/vocab.h grammar/stacks.h
grammar/grammar_internal.h:
grammar/automaton.h:
util/error.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
grammar/vocab.h:
grammar/stacks.h:
