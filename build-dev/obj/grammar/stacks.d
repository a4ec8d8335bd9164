build-dev/obj/grammar/stacks.o: grammar/stacks.c grammar/stacks.h \
 grammar/automaton.h util/error.h
grammar/stacks.h:
grammar/automaton.h:
util/error.h:
