build-dev/obj/grammar/mask_cache.o: grammar/mask_cache.c \
 grammar/grammar_internal.h grammar/automaton.h util/error.h \
 grammar/grammar.h tokenizer/tokenizer.h grammar/vocab.h grammar/stacks.h
grammar/grammar_internal.h:
grammar/automaton.h:
util/error.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
grammar/vocab.h:
grammar/stacks.h:
