build-dev/obj/engine/weights.o: engine/weights.c engine/weights.h \
 engine/config.h util/error.h engine/safetensors.h util/bf16.h
engine/weights.h:
engine/config.h:
util/error.h:
engine/safetensors.h:
util/bf16.h:
