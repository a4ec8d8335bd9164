build-dev/obj/kernels/cpu/layernorm.o: kernels/cpu/layernorm.c \
 kernels/cpu/threadpool.h kernels/kernels.h util/bf16.h
kernels/cpu/threadpool.h:
kernels/kernels.h:
util/bf16.h:
