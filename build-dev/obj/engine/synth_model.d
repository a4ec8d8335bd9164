build-dev/obj/engine/synth_model.o: engine/synth_model.c \
 engine/synth_model.h util/error.h engine/safetensors.h util/bf16.h
engine/synth_model.h:
util/error.h:
engine/safetensors.h:
util/bf16.h:
