build-dev/obj/cli/cmd_gpu_plan.o: cli/cmd_gpu_plan.c cli/commands.h \
 engine/config.h util/error.h engine/cuda/device_plan.h
cli/commands.h:
engine/config.h:
util/error.h:
engine/cuda/device_plan.h:
