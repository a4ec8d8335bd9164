# Programs built against the fake CUDA runtime (tests/gpu/fake/): the CUDA
# backend's host code (engine/cuda/*.c, engine/engine.c with MEDGEMMA_CUDA) on
# a "device" in host memory with plain-C kernel stand-ins. No nvcc, no GPU.
#   $(BUILD)/medgemma-fakegpu     the whole CLI and server on the fake device
#                                 (tests/gpu/test_cuda_backend.sh: /health, fallbacks, faults)
#   $(BUILD)/cuda_backend_tests   tests/gpu/backend/test_*.c with the unit-test runner
#   $(BUILD)/full_shape           tests/gpu/backend/full_shape.c (tests/gpu/test_full_shape.sh)
FAKE_CFLAGS = $(CFLAGS_BASE) -DMEDGEMMA_CUDA=1 -Itests/gpu/fake
FAKE_SRC := $(wildcard engine/cuda/*.c kernels/cuda/*.c) engine/engine.c tests/gpu/fake/fake_runtime.c tests/gpu/fake/fake_kernels.c
FAKE_OBJ := $(FAKE_SRC:%.c=$(BUILD)/obj-fakegpu/%.o)
# the core library's objects, less those compiled above for the fake device
FAKE_CORE_OBJ := $(filter-out $(BUILD)/obj/engine/engine.o $(BUILD)/obj/engine/cuda/%,$(CORE_OBJ))
FAKE_TEST_OBJ := $(patsubst %.c,$(BUILD)/obj-fakegpu/%.o,$(wildcard tests/gpu/backend/test_*.c)) \
  $(BUILD)/obj-fakegpu/tests/unit/main.o $(BUILD)/obj-fakegpu/tests/unit/tiny_model.o

$(BUILD)/obj-fakegpu/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(FAKE_CFLAGS) -c $< -o $@

$(BUILD)/medgemma-fakegpu: $(CLI_OBJ) $(FAKE_OBJ) $(FAKE_CORE_OBJ)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/cuda_backend_tests: $(FAKE_TEST_OBJ) $(FAKE_OBJ) $(FAKE_CORE_OBJ)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/full_shape: $(BUILD)/obj-fakegpu/tests/gpu/backend/full_shape.o $(FAKE_OBJ) $(FAKE_CORE_OBJ)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

PROGRAMS += $(BUILD)/medgemma-fakegpu $(BUILD)/cuda_backend_tests $(BUILD)/full_shape

-include $(shell find $(BUILD)/obj-fakegpu -name '*.d' 2>/dev/null)
