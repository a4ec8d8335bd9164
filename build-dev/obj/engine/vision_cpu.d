build-dev/obj/engine/vision_cpu.o: engine/vision_cpu.c \
 engine/vision_cpu.h engine/config.h util/error.h engine/weights.h \
 engine/safetensors.h util/bf16.h kernels/kernels.h
engine/vision_cpu.h:
engine/config.h:
util/error.h:
engine/weights.h:
engine/safetensors.h:
util/bf16.h:
kernels/kernels.h:
