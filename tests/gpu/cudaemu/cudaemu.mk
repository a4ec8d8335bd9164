# The real CUDA kernels (kernels/cuda/*.cu, unmodified) compiled as host C++
# against cudaemu (tests/gpu/cudaemu/) and the fake runtime (tests/gpu/fake/),
# linked into the GPU test program: no nvcc, no GPU.
#   $(BUILD)/gpu_tests_emu        gpu_tests with the emulated kernels (-O2)
#   $(BUILD)/gpu_tests_emu_asan   the same under ASan + UBSan (-O1)
#   $(BUILD)/gpu_bench_emu        bench/gpu's flow (--tiny) on the emulated kernels
#   $(BUILD)/op_harness_emu       tests/ops/op_harness.c with the CUDA op table (--cuda)
#   $(BUILD)/mma_check_emu        tests/gpu/mma_check.cu on the emulator; with nvcc also
#   $(BUILD)/mma_check            the same on a GPU (tests/gpu/run.sh compares the two)
# clang, not gcc: gcc ignores the section attribute that gathers a kernel
# template's static __shared__ variables (cudaemu.h), which the emulator poisons.
# tests/gpu/test_cudaemu.sh runs them (make test).
EMU_CC ?= clang
EMU_CXX ?= clang++
EMU_WARN := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# DEVICE_PLAN_REDZONE: 256 poisoned bytes after every carve of the backend's one
# device allocation (engine/cuda/device_plan.h), so ASan sees a carve overrun too.
EMU_CFLAGS = -std=c11 -g -D_GNU_SOURCE -DMEDGEMMA_CUDA=1 -DDEVICE_PLAN_REDZONE=256 -Itests/gpu/fake -I. -pthread \
  -MMD -MP $(EMU_WARN)
EMU_CXXFLAGS = -x c++ -std=c++17 -g -DCUDAEMU -fno-strict-aliasing -Itests/gpu/cudaemu -Itests/gpu/fake -I. \
  -pthread -MMD -MP $(EMU_WARN)
EMU_ASAN := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# (tests/unit/prompt_builder.c: the prompts gpu_prefix.c shares with tests/unit/test_prefix_cache.c)
EMU_C_SRC := $(wildcard tests/gpu/*.c engine/cuda/*.c kernels/cuda/*.c util/*.c kernels/cpu/*.c) engine/config.c \
  engine/safetensors.c engine/map_guard.c engine/weights.c engine/forward.c engine/kv_cache.c engine/backend_cpu.c \
  tests/gpu/fake/fake_runtime.c tests/unit/prompt_builder.c
EMU_CXX_SRC := $(wildcard kernels/cuda/*.cu) tests/gpu/cudaemu/cudaemu.cpp
EMU_OBJ := $(EMU_C_SRC:%.c=$(BUILD)/obj-emu/%.o) $(patsubst %,$(BUILD)/obj-emu/%.o,$(EMU_CXX_SRC))
EMU_ASAN_OBJ := $(EMU_OBJ:$(BUILD)/obj-emu/%=$(BUILD)/obj-emu-asan/%)
EMU_BENCH_OBJ := $(filter-out $(BUILD)/obj-emu/tests/%,$(EMU_OBJ)) $(BUILD)/obj-emu/tests/gpu/fake/fake_runtime.o \
  $(BUILD)/obj-emu/tests/gpu/cudaemu/cudaemu.cpp.o $(patsubst %.c,$(BUILD)/obj-emu/%.o,$(wildcard bench/gpu/*.c))

$(BUILD)/obj-emu/%.o: %.c
	@mkdir -p $(dir $@)
	$(EMU_CC) $(EMU_CFLAGS) -O2 -c $< -o $@
$(BUILD)/obj-emu/%.o: %
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -O2 -c $< -o $@
$(BUILD)/obj-emu-asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(EMU_CC) $(EMU_CFLAGS) $(EMU_ASAN) -c $< -o $@
$(BUILD)/obj-emu-asan/%.o: %
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) $(EMU_ASAN) -c $< -o $@

$(BUILD)/gpu_tests_emu: $(EMU_OBJ)
	$(EMU_CXX) -pthread -rdynamic $^ -lcjson -lm -ldl -o $@
$(BUILD)/gpu_tests_emu_asan: $(EMU_ASAN_OBJ)
	$(EMU_CXX) -pthread -rdynamic $(EMU_ASAN) $^ -lcjson -lm -ldl -o $@

$(BUILD)/gpu_bench_emu: $(EMU_BENCH_OBJ)
	$(EMU_CXX) -pthread -rdynamic $^ -lcjson -lm -ldl -o $@

# The op table's conformance harness (tests/ops/op_harness.c) with the CUDA table over the
# emulated kernels: `op_harness_emu --cuda` (tests/ops/test_ops.sh).
EMU_OPS_OBJ := $(BUILD)/obj-emu/tests/ops/op_harness.o $(filter-out $(BUILD)/obj-emu/tests/%,$(EMU_OBJ)) \
  $(BUILD)/obj-emu/tests/gpu/fake/fake_runtime.o $(BUILD)/obj-emu/tests/gpu/cudaemu/cudaemu.cpp.o
$(BUILD)/op_harness_emu: $(EMU_OPS_OBJ)
	$(EMU_CXX) -pthread -rdynamic $^ -lcjson -lm -ldl -o $@
PROGRAMS += $(BUILD)/op_harness_emu

EMU_MMA_OBJ := $(BUILD)/obj-emu/tests/gpu/mma_check.cu.o $(BUILD)/obj-emu/tests/gpu/cudaemu/cudaemu.cpp.o \
  $(BUILD)/obj-emu/tests/gpu/fake/fake_runtime.o $(patsubst %.c,$(BUILD)/obj-emu/%.o,$(wildcard kernels/cpu/*.c util/*.c))
$(BUILD)/mma_check_emu: $(EMU_MMA_OBJ)
	$(EMU_CXX) -pthread -rdynamic $^ -lcjson -lm -ldl -o $@

PROGRAMS += $(BUILD)/gpu_tests_emu $(BUILD)/gpu_tests_emu_asan $(BUILD)/gpu_bench_emu $(BUILD)/mma_check_emu

ifneq ($(strip $(NVCC)),)
ifeq ($(NO_CUDA),)
$(BUILD)/mma_check: tests/gpu/mma_check.cu kernels/cuda/common.cuh
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $< -o $@
PROGRAMS += $(BUILD)/mma_check
endif
endif

-include $(shell find $(BUILD)/obj-emu $(BUILD)/obj-emu-asan -name '*.d' 2>/dev/null)
