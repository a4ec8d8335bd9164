build-dev/obj/kernels/cpu/embedding.o: kernels/cpu/embedding.c \
 kernels/kernels.h util/bf16.h
kernels/kernels.h:
util/bf16.h:
