build-dev/obj/grammar/automaton.o: grammar/automaton.c \
 grammar/automaton.h util/error.h
grammar/automaton.h:
util/error.h:
