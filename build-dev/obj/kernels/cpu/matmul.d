build-dev/obj/kernels/cpu/matmul.o: kernels/cpu/matmul.c \
 kernels/cpu/matmul_amx.h util/bf16.h kernels/cpu/matmul_bf16.h \
 kernels/cpu/simd.h kernels/cpu/threadpool.h kernels/kernels.h
kernels/cpu/matmul_amx.h:
util/bf16.h:
kernels/cpu/matmul_bf16.h:
kernels/cpu/simd.h:
kernels/cpu/threadpool.h:
kernels/kernels.h:
