build-dev/obj/kernels/cpu/simd.o: kernels/cpu/simd.c kernels/cpu/simd.h \
 util/bf16.h
kernels/cpu/simd.h:
util/bf16.h:
