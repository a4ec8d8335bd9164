build-dev/obj/kernels/cpu/gelu.o: kernels/cpu/gelu.c kernels/cpu/simd.h \
 util/bf16.h kernels/cpu/threadpool.h kernels/kernels.h
kernels/cpu/simd.h:
util/bf16.h:
kernels/cpu/threadpool.h:
kernels/kernels.h:
