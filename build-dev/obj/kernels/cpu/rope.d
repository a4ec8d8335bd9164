build-dev/obj/kernels/cpu/rope.o: kernels/cpu/rope.c \
 kernels/cpu/threadpool.h kernels/kernels.h util/bf16.h
kernels/cpu/threadpool.h:
kernels/kernels.h:
util/bf16.h:
