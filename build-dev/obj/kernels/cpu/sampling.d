build-dev/obj/kernels/cpu/sampling.o: kernels/cpu/sampling.c \
 kernels/kernels.h util/bf16.h
kernels/kernels.h:
util/bf16.h:
