build-dev/obj/grammar/regex.o: grammar/regex.c grammar/regex.h \
 grammar/automaton.h util/error.h
grammar/regex.h:
grammar/automaton.h:
util/error.h:
