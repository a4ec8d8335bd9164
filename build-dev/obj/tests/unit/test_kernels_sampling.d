build-dev/obj/tests/unit/test_kernels_sampling.o: \
 tests/unit/test_kernels_sampling.c kernels/kernels.h util/bf16.h \
 tests/unit/kernel_ref.h tests/unit/test.h
kernels/kernels.h:
util/bf16.h:
tests/unit/kernel_ref.h:
tests/unit/test.h:
