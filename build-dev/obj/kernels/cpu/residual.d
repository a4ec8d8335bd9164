build-dev/obj/kernels/cpu/residual.o: kernels/cpu/residual.c \
 kernels/kernels.h util/bf16.h
kernels/kernels.h:
util/bf16.h:
