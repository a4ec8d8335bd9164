build-dev/obj/tests/unit/test_engine_stop.o: \
 tests/unit/test_engine_stop.c engine/engine.h grammar/grammar.h \
 tokenizer/tokenizer.h util/error.h engine/safetensors.h \
 engine/synth_model.h tests/unit/test.h util/bf16.h
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
util/error.h:
engine/safetensors.h:
engine/synth_model.h:
tests/unit/test.h:
util/bf16.h:
