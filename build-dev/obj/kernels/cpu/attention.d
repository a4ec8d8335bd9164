build-dev/obj/kernels/cpu/attention.o: kernels/cpu/attention.c \
 kernels/cpu/simd.h util/bf16.h kernels/cpu/threadpool.h \
 kernels/kernels.h
kernels/cpu/simd.h:
util/bf16.h:
kernels/cpu/threadpool.h:
kernels/kernels.h:
