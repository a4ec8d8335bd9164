build-dev/obj/kernels/cpu/avgpool.o: kernels/cpu/avgpool.c \
 kernels/kernels.h util/bf16.h
kernels/kernels.h:
util/bf16.h:
