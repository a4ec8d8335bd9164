build-dev/obj/kernels/cpu/matmul_bf16.o: kernels/cpu/matmul_bf16.c \
 kernels/cpu/matmul_bf16.h util/bf16.h kernels/cpu/simd.h \
 kernels/cpu/threadpool.h kernels/kernels.h
kernels/cpu/matmul_bf16.h:
util/bf16.h:
kernels/cpu/simd.h:
kernels/cpu/threadpool.h:
kernels/kernels.h:
