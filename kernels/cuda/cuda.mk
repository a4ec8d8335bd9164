# CUDA backend build rules, included by the Makefile when nvcc is found.
# SASS for sm_89 (L4) and sm_90 (H100/H200), PTX for compute_89.
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH_FLAGS ?= -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
  -gencode arch=compute_89,code=compute_89
CUBLAS_INC ?= $(CUDA_HOME)/include
CUBLAS_LIB ?= $(CUDA_HOME)/lib64
NVCCFLAGS ?= -O3 -std=c++17 -lineinfo $(CUDA_ARCH_FLAGS) -I. -I$(CUBLAS_INC)

CUDA_CU_SRC := $(wildcard kernels/cuda/*.cu)
CUDA_HOST_SRC := $(wildcard engine/cuda/*.c)
CUDA_OBJ := $(CUDA_CU_SRC:%.cu=$(BUILD)/obj/%.o) $(CUDA_HOST_SRC:%.c=$(BUILD)/obj/%.o)
CUDA_LDLIBS := -L$(CUDA_HOME)/lib64 -L$(CUBLAS_LIB) -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUBLAS_LIB) \
  -lcublasLt -lcudart -lstdc++
CFLAGS += -DMEDGEMMA_CUDA=1 -I$(CUDA_HOME)/include

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
