build-dev/obj/tests/unit/test_golden.o: tests/unit/test_golden.c \
 engine/backend.h engine/config.h util/error.h engine/engine.h \
 grammar/grammar.h tokenizer/tokenizer.h engine/weights.h \
 engine/safetensors.h util/bf16.h engine/model.h kernels/kernels.h \
 tests/unit/test.h
engine/backend.h:
engine/config.h:
util/error.h:
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
engine/weights.h:
engine/safetensors.h:
util/bf16.h:
engine/model.h:
kernels/kernels.h:
tests/unit/test.h:
