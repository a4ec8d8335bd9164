build-dev/obj/tests/unit/test_kernels.o: tests/unit/test_kernels.c \
 kernels/cpu/matmul_amx.h util/bf16.h kernels/cpu/simd.h \
 kernels/kernels.h tests/unit/kernel_ref.h tests/unit/test.h
kernels/cpu/matmul_amx.h:
util/bf16.h:
kernels/cpu/simd.h:
kernels/kernels.h:
tests/unit/kernel_ref.h:
tests/unit/test.h:
