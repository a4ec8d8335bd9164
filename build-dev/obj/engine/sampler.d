build-dev/obj/engine/sampler.o: engine/sampler.c engine/sampler.h \
 kernels/kernels.h util/bf16.h
engine/sampler.h:
kernels/kernels.h:
util/bf16.h:
