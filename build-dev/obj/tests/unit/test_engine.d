build-dev/obj/tests/unit/test_engine.o: tests/unit/test_engine.c \
 engine/engine.h grammar/grammar.h tokenizer/tokenizer.h util/error.h \
 engine/sampler.h engine/synth_model.h tests/unit/test.h
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
util/error.h:
engine/sampler.h:
engine/synth_model.h:
tests/unit/test.h:
