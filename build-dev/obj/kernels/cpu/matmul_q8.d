build-dev/obj/kernels/cpu/matmul_q8.o: kernels/cpu/matmul_q8.c \
 kernels/cpu/matmul_q8.h kernels/cpu/simd.h util/bf16.h \
 kernels/cpu/threadpool.h kernels/kernels.h
kernels/cpu/matmul_q8.h:
kernels/cpu/simd.h:
util/bf16.h:
kernels/cpu/threadpool.h:
kernels/kernels.h:
