# CUDA backend build rules, included by the Makefile when nvcc is found.
# SASS for sm_89 (L4) and sm_90 (H100/H200), PTX for compute_89.
# On a machine whose cuBLAS lives elsewhere (pip's nvidia-cublas), pass
# CUBLAS_INC / CUBLAS_LIB (tests/gpu/run.sh finds them).
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH_FLAGS ?= -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
  -gencode arch=compute_89,code=compute_89
CUBLAS_INC ?= $(CUDA_HOME)/include
CUBLAS_LIB ?= $(CUDA_HOME)/lib64
# -warn-spills: ptxas says when a kernel spills registers; -Wall for the host code.
NVCCFLAGS ?= -O3 -std=c++17 -lineinfo $(CUDA_ARCH_FLAGS) -I. -I$(CUBLAS_INC) -Xptxas -warn-spills -Xcompiler -Wall

CUDA_CU_SRC := $(wildcard kernels/cuda/*.cu)
CUDA_HOST_SRC := $(wildcard engine/cuda/*.c kernels/cuda/*.c)
CUDA_OBJ := $(CUDA_CU_SRC:%.cu=$(BUILD)/obj/%.o) $(CUDA_HOST_SRC:%.c=$(BUILD)/obj/%.o)
CUDA_LDLIBS := -L$(CUDA_HOME)/lib64 -L$(CUBLAS_LIB) -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUBLAS_LIB) \
  -lcublasLt -lcudart -lstdc++
CFLAGS += -DMEDGEMMA_CUDA=1 -I$(CUDA_HOME)/include -I$(CUBLAS_INC)

# ptxas's resource report of each kernel (registers, spills, static shared memory
# per architecture) is kept next to the object as <op>.ptxas.txt for the static
# resource check (tests/gpu/test_ptxas_resources.sh); everything else nvcc says
# (warnings) is shown.
$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Xptxas -v -c $< -o $@ 2>$(@:.o=.ptxas.txt) || { cat $(@:.o=.ptxas.txt) >&2; exit 1; }
	@grep -vE '^ptxas info|^    [0-9]+ bytes stack frame' $(@:.o=.ptxas.txt) >&2 || true

# The GPU test program and benchmark link only what they use (no HTTP, image
# codecs or network libraries: cJSON is their one library besides CUDA), so a
# lent GPU machine builds them with `make build/gpu_tests build/gpu_bench`.
GPU_CORE_SRC := $(wildcard util/*.c kernels/cpu/*.c) engine/config.c engine/safetensors.c engine/map_guard.c engine/weights.c \
  engine/forward.c engine/kv_cache.c engine/backend_cpu.c
GPU_CORE_OBJ := $(GPU_CORE_SRC:%.c=$(BUILD)/obj/%.o) $(CUDA_OBJ)
# (+ the prompt builder gpu_prefix.c shares with tests/unit/test_prefix_cache.c)
GPU_TEST_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/gpu/*.c)) $(BUILD)/obj/tests/unit/prompt_builder.o
GPU_BENCH_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/gpu/*.c))
GPU_LDLIBS := $(CUDA_LDLIBS) -lcjson -lm -ldl

# (These are the first explicit targets make sees: keep `all` the default goal.)
.DEFAULT_GOAL := all
CUDA_PROGRAMS := $(BUILD)/gpu_tests $(if $(GPU_BENCH_OBJ),$(BUILD)/gpu_bench)

$(BUILD)/gpu_tests: $(GPU_TEST_OBJ) $(GPU_CORE_OBJ)
	$(CC) $(LDFLAGS) $^ $(GPU_LDLIBS) -o $@

$(BUILD)/gpu_bench: $(GPU_BENCH_OBJ) $(GPU_CORE_OBJ)
	$(CC) $(LDFLAGS) $^ $(GPU_LDLIBS) -o $@

# The op harness (tests/ops/op_harness.c) with only what the GPU programs link:
# `op_harness_gpu --cuda` checks the CUDA op table on a lent GPU (tests/gpu/run.sh).
CUDA_PROGRAMS += $(BUILD)/op_harness_gpu
$(BUILD)/op_harness_gpu: $(BUILD)/obj/tests/ops/op_harness.o $(GPU_CORE_OBJ)
	$(CC) $(LDFLAGS) $^ $(GPU_LDLIBS) -o $@
