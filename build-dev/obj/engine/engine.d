build-dev/obj/engine/engine.o: engine/engine.c engine/engine.h \
 grammar/grammar.h tokenizer/tokenizer.h util/error.h engine/backend.h \
 engine/config.h engine/weights.h engine/safetensors.h util/bf16.h \
 engine/model.h engine/sampler.h util/log.h
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
util/error.h:
engine/backend.h:
engine/config.h:
engine/weights.h:
engine/safetensors.h:
util/bf16.h:
engine/model.h:
engine/sampler.h:
util/log.h:
