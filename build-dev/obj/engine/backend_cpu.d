build-dev/obj/engine/backend_cpu.o: engine/backend_cpu.c engine/backend.h \
 engine/config.h util/error.h engine/engine.h grammar/grammar.h \
 tokenizer/tokenizer.h engine/weights.h engine/safetensors.h util/bf16.h \
 engine/kv_cache.h util/log.h engine/vision_cpu.h kernels/kernels.h
engine/backend.h:
engine/config.h:
util/error.h:
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
engine/weights.h:
engine/safetensors.h:
util/bf16.h:
engine/kv_cache.h:
util/log.h:
engine/vision_cpu.h:
kernels/kernels.h:
