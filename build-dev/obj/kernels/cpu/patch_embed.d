build-dev/obj/kernels/cpu/patch_embed.o: kernels/cpu/patch_embed.c \
 kernels/cpu/simd.h util/bf16.h kernels/cpu/threadpool.h \
 kernels/kernels.h
kernels/cpu/simd.h:
util/bf16.h:
kernels/cpu/threadpool.h:
kernels/kernels.h:
