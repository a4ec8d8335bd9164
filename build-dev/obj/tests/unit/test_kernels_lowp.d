build-dev/obj/tests/unit/test_kernels_lowp.o: \
 tests/unit/test_kernels_lowp.c kernels/cpu/matmul_q8.h \
 kernels/cpu/simd.h util/bf16.h kernels/kernels.h tests/unit/kernel_ref.h \
 tests/unit/test.h
kernels/cpu/matmul_q8.h:
kernels/cpu/simd.h:
util/bf16.h:
kernels/kernels.h:
tests/unit/kernel_ref.h:
tests/unit/test.h:
