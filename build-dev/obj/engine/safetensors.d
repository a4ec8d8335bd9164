build-dev/obj/engine/safetensors.o: engine/safetensors.c \
 engine/safetensors.h util/error.h engine/map_guard.h
engine/safetensors.h:
util/error.h:
engine/map_guard.h:
