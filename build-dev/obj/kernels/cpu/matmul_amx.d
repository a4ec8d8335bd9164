build-dev/obj/kernels/cpu/matmul_amx.o: kernels/cpu/matmul_amx.c \
 kernels/cpu/matmul_amx.h util/bf16.h kernels/cpu/threadpool.h \
 kernels/kernels.h
kernels/cpu/matmul_amx.h:
util/bf16.h:
kernels/cpu/threadpool.h:
kernels/kernels.h:
