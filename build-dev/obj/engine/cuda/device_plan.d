build-dev/obj/engine/cuda/device_plan.o: engine/cuda/device_plan.c \
 engine/cuda/device_plan.h engine/config.h util/error.h
engine/cuda/device_plan.h:
engine/config.h:
util/error.h:
