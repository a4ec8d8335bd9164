build-dev/obj/kernels/cpu/threadpool.o: kernels/cpu/threadpool.c \
 kernels/cpu/threadpool.h kernels/cpu/matmul_amx.h util/bf16.h \
 kernels/cpu/matmul_bf16.h kernels/cpu/matmul_q8.h kernels/kernels.h
kernels/cpu/threadpool.h:
kernels/cpu/matmul_amx.h:
util/bf16.h:
kernels/cpu/matmul_bf16.h:
kernels/cpu/matmul_q8.h:
kernels/kernels.h:
