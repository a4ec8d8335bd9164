build-dev/obj/engine/model.o: engine/model.c engine/model.h \
 engine/config.h util/error.h engine/safetensors.h engine/weights.h \
 util/bf16.h
engine/model.h:
engine/config.h:
util/error.h:
engine/safetensors.h:
engine/weights.h:
util/bf16.h:
