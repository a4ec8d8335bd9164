build-dev/obj/tests/unit/test_kernels_attention.o: \
 tests/unit/test_kernels_attention.c kernels/kernels.h util/bf16.h \
 tests/unit/kernel_ref.h tests/unit/test.h
kernels/kernels.h:
util/bf16.h:
tests/unit/kernel_ref.h:
tests/unit/test.h:
