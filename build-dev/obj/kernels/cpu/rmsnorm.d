build-dev/obj/kernels/cpu/rmsnorm.o: kernels/cpu/rmsnorm.c \
 kernels/cpu/threadpool.h kernels/kernels.h util/bf16.h
kernels/cpu/threadpool.h:
kernels/kernels.h:
util/bf16.h:
