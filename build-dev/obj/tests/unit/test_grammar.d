build-dev/obj/tests/unit/test_grammar.o: tests/unit/test_grammar.c \
 engine/engine.h grammar/grammar.h tokenizer/tokenizer.h util/error.h \
 engine/synth_model.h tests/unit/test.h
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
util/error.h:
engine/synth_model.h:
tests/unit/test.h:
