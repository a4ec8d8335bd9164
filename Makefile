# medgemma-engine build. `make` builds everything into $(BUILD)/; with nvcc on
# PATH (or CUDA_HOME set) it also compiles and links the CUDA backend.
#   make deps       install build and test dependencies (Debian 12, as root)
#   make test       the CPU test suite (ends with "N passed, N failed, N skipped")
#   make test-asan  the same under AddressSanitizer + UBSan (build-asan/)
#   make fuzz       libFuzzer targets into build-fuzz/ (clang)
#   make format / make lint
BUILD ?= build
CC ?= gcc
OPT ?= -O2
SAN ?=
CFLAGS_BASE := -std=c11 -g $(OPT) -Wall -Wextra -Wno-unused-parameter -Wshadow -Wno-missing-field-initializers \
  -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -I. -pthread -MMD -MP $(SAN)
CFLAGS += $(CFLAGS_BASE)
LDFLAGS += -pthread $(SAN)
LDLIBS += -lh2o-evloop -lssl -lcrypto -lz -lcjson -lspng -lturbojpeg -lcurl -lm -ldl

# Modules. Every .c of these folders is part of the core library that the
# programs and the tests link; folders that need CUDA are added by cuda.mk
# (engine/cuda/device_plan.c is plain C: the CLI and unit tests use it in every build).
CORE_SRC := $(wildcard util/*.c engine/*.c kernels/cpu/*.c tokenizer/*.c image/*.c pipeline/*.c image/dicom/*.c http/*.c grammar/*.c) \
  engine/cuda/device_plan.c \
  $(filter-out weights-fetch/main.c,$(wildcard weights-fetch/*.c))
CLI_SRC := $(wildcard cli/*.c)
UNIT_SRC := $(wildcard tests/unit/*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o) $(patsubst %.cpp,$(BUILD)/obj/%.o,$(wildcard image/dicom/*.cpp))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o)

PROGRAMS := $(BUILD)/medgemma $(BUILD)/unit_tests $(if $(wildcard weights-fetch/main.c),$(BUILD)/weights-fetch)
PROGRAMS += $(BUILD)/image-tool $(BUILD)/grammar-tool

# CUDA backend (adds CUDA_OBJ, CUDA_LDLIBS, CUDA_PROGRAMS, -DMEDGEMMA_CUDA).
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifneq ($(strip $(NVCC))$(NO_CUDA),)
ifeq ($(NO_CUDA),)
include kernels/cuda/cuda.mk
endif
endif
# The CUDA backend's host code on a fake device (no nvcc needed): tests/gpu/fake/fake.mk
# (absent from the image build's context, which has no tests/).
-include tests/gpu/fake/fake.mk
# The real CUDA kernels run on the CPU (cudaemu): tests/gpu/cudaemu/cudaemu.mk
-include tests/gpu/cudaemu/cudaemu.mk

.PHONY: all deps test test-asan test-grammar-full fuzz format lint clean models run
all: $(PROGRAMS) $(CUDA_PROGRAMS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libmedgemma.a: $(CORE_OBJ) $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/medgemma: $(CLI_OBJ) $(BUILD)/libmedgemma.a
	$(CC) $(LDFLAGS) $(CLI_OBJ) $(BUILD)/libmedgemma.a $(CUDA_LDLIBS) $(LDLIBS) -o $@

$(BUILD)/weights-fetch: $(BUILD)/obj/weights-fetch/main.o $(BUILD)/libmedgemma.a
	$(CC) $(LDFLAGS) $< $(BUILD)/libmedgemma.a $(CUDA_LDLIBS) $(LDLIBS) -o $@

$(BUILD)/unit_tests: $(UNIT_OBJ) $(BUILD)/libmedgemma.a
	$(CC) $(LDFLAGS) $(UNIT_OBJ) $(BUILD)/libmedgemma.a $(CUDA_LDLIBS) $(LDLIBS) -o $@

# image/'s command-line driver for its parity test and benchmark (tests/image/).
$(BUILD)/image-tool: $(BUILD)/obj/tests/image/image_tool.o $(BUILD)/libmedgemma.a
	$(CC) $(LDFLAGS) $< $(BUILD)/libmedgemma.a $(CUDA_LDLIBS) $(LDLIBS) -o $@

# grammar/'s driver for its parity and validity tests and its benchmark (tests/grammar/).
$(BUILD)/grammar-tool: $(BUILD)/obj/tests/grammar/grammar_tool.o $(BUILD)/libmedgemma.a
	$(CC) $(LDFLAGS) $< $(BUILD)/libmedgemma.a $(CUDA_LDLIBS) $(LDLIBS) -o $@

# ---- DICOM (image/dicom, issue 15): GDCM (Debian libgdcm-dev) behind one C++ shim file.
DICOM_CXX_SRC := $(wildcard image/dicom/*.cpp)
DICOM_CXX_OBJ := $(DICOM_CXX_SRC:%.cpp=$(BUILD)/obj/%.o)
DICOM_CXXFLAGS := -std=c++17 -g $(OPT) -Wall -Wextra -I. -I/usr/include/gdcm-3.0 -pthread -MMD -MP $(SAN)
DICOM_LDLIBS := -lgdcmMSFF -lgdcmDSED -lgdcmCommon -lgdcmjpeg8 -lgdcmjpeg12 -lgdcmjpeg16 -lstdc++ -ldl
LDLIBS += $(DICOM_LDLIBS)
$(BUILD)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(DICOM_CXXFLAGS) -c $< -o $@
all: $(BUILD)/dicom-tool
$(BUILD)/dicom-tool: $(BUILD)/obj/tests/image/dicom_tool.o $(BUILD)/libmedgemma.a
	$(CC) $(LDFLAGS) $< $(BUILD)/libmedgemma.a $(CUDA_LDLIBS) $(LDLIBS) -o $@
build-fuzz/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	clang++ -std=c++17 -g -O1 -I. -I/usr/include/gdcm-3.0 -pthread -MMD -MP \
	  -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=vptr,function -fno-sanitize-recover=undefined -c $< -o $@
build-fuzz/libfuzzcore.a: $(DICOM_CXX_SRC:%.cpp=build-fuzz/obj/%.o)
# ---- end DICOM

deps:
	bash tests/install_deps.sh

# The converted Gemma 3 270M (real weights) used by tests and the README's run command.
models:
	@if [ -f tests/golden/prepare_270m.sh ]; then bash tests/golden/prepare_270m.sh; \
	 else echo "models: tests/golden/prepare_270m.sh is not there yet"; fi

# Serve a real model locally (see scripts/run_local.sh).
run: all
	@if [ -z "$$MEDGEMMA_MODEL_DIR$$HF_TOKEN" ]; then $(MAKE) models; fi
	bash scripts/run_local.sh

test: all models
	bash tests/run.sh

# The full structured-output validity matrix (34 schemas x greedy + 3 seeds on the synth model and
# the Gemma 3 270M; ~15 min); writes bench/grammar/results/validity-<commit>.json.
test-grammar-full: all models
	GRAMMAR_VALIDITY_FULL=1 python3 tests/grammar/test_validity.py

test-asan: models
	$(MAKE) BUILD=build-asan OPT=-O1 NO_CUDA=1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  BUILD=build-asan MEDGEMMA_ASAN=1 bash tests/run.sh

# Fuzz targets: the library compiled once with clang's fuzzer instrumentation +
# ASan/UBSan, then one binary per tests/fuzz/fuzz_*.c.
FUZZ_CFLAGS := -std=c11 -g -O1 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -I. -pthread -MMD -MP \
  -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC := $(filter-out http/%,$(CORE_SRC)) http/request.c
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=build-fuzz/obj/%.o)
fuzz: $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
build-fuzz/libfuzzcore.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
build-fuzz/%: tests/fuzz/%.c build-fuzz/libfuzzcore.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $< build-fuzz/libfuzzcore.a \
	  -lcjson -lspng -lturbojpeg -lcurl -lssl -lcrypto -lz -lm $(DICOM_LDLIBS) -o $@

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' '*.cu' '*.cuh')
format:
	clang-format -i $(FORMAT_FILES)

# lint covers every C and CUDA file in git (tests, benchmarks and fuzz targets included):
# clang-format, cppcheck and clang-tidy on the C (the CUDA host code and tests/gpu against the fake
# runtime's headers, tests/gpu/fake/, so no toolkit is needed), and nvcc on each .cu with host-side
# warnings as errors (skipped, loudly, without nvcc).
LINT_C := $(shell git ls-files '*.c')
LINT_CUDA_C := $(filter engine/cuda/% kernels/cuda/% tests/gpu/%,$(LINT_C))
LINT_PLAIN_C := $(filter-out $(LINT_CUDA_C),$(LINT_C))
LINT_CU := $(shell git ls-files '*.cu')
LINT_DEFS := -std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -I.
LINT_CUDA_DEFS := $(LINT_DEFS) -DMEDGEMMA_CUDA=1 -Itests/gpu/fake
lint:
	clang-format --dry-run -Werror $(FORMAT_FILES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem -I. -DH2O_USE_LIBUV=0 $(LINT_PLAIN_C)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem -I. -Itests/gpu/fake -DH2O_USE_LIBUV=0 -DMEDGEMMA_CUDA=1 $(LINT_CUDA_C)
	@echo "clang-tidy (checks in .clang-tidy) on $(words $(LINT_C)) C files"
	@echo $(LINT_PLAIN_C) | xargs -n 1 -P $$(nproc) sh -c \
	  'clang-tidy --quiet --warnings-as-errors="*" "$$@" -- $(LINT_DEFS) 2>/dev/null' _
	@echo $(LINT_CUDA_C) | xargs -n 1 -P $$(nproc) sh -c \
	  'clang-tidy --quiet --warnings-as-errors="*" "$$@" -- $(LINT_CUDA_DEFS) 2>/dev/null' _
	@if [ -n "$(strip $(NVCC))" ]; then \
	  echo "nvcc host-side warnings as errors on $(words $(LINT_CU)) .cu files"; \
	  for f in $(LINT_CU); do \
	    $(NVCC) -std=c++17 -I. -I$(patsubst %/bin/nvcc,%,$(NVCC))/include -arch=sm_90 -Werror all-warnings \
	      -Xcompiler -Wall,-Wextra,-Wno-unused-parameter,-Werror -c $$f -o /dev/null || exit 1; \
	  done; \
	else echo "!! lint: nvcc not found: the $(words $(LINT_CU)) .cu files were NOT checked"; fi

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find build-fuzz/obj -name '*.d' 2>/dev/null)

# ---- harden (issue 18): ThreadSanitizer over the threaded parts: the unit tests (engine, thread pool,
# job queue, metrics) and the HTTP service tests (event loop + worker + pool on a real server).
# h2o, OpenSSL and libc are not instrumented; tests/tsan.supp lists what is suppressed and why.
.PHONY: test-tsan
TSAN_FILTER ?= unit_tests|tests/http/test_http_api|tests/http/test_http_disconnect|tests/http/test_http_load|tests/http/test_http_shutdown
# the unit tests whose code runs on several threads (engine + thread pool, job queue, metrics, kernels' threads)
TSAN_UNIT_TESTS ?= engine_|http_|threads|map_guard|sampler
test-tsan: models
	$(MAKE) BUILD=build-tsan OPT=-O1 NO_CUDA=1 SAN="-fsanitize=thread -fno-omit-frame-pointer" \
	  build-tsan/medgemma build-tsan/unit_tests
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  UNIT_TEST_ONLY="$(TSAN_UNIT_TESTS)" \
	  UNIT_TEST_SKIP="real270m" UNIT_TEST_SKIP_WHY="the real 270M decodes at minutes per token under TSan" \
	  BUILD=build-tsan MEDGEMMA_TSAN=1 TEST_FILTER="$(TSAN_FILTER)" bash tests/run.sh

# ---- onemodel (issue 17): the op table's conformance harness (tests/ops/; `op_harness --perf` times it).
PROGRAMS += $(BUILD)/op_harness
all: $(BUILD)/op_harness
$(BUILD)/op_harness: $(BUILD)/obj/tests/ops/op_harness.o $(BUILD)/libmedgemma.a
	$(CC) $(LDFLAGS) $< $(BUILD)/libmedgemma.a $(CUDA_LDLIBS) $(LDLIBS) -o $@

# ---- harden (issue 18): soak benchmark (20 min on the Gemma 3 270M, bench lock; results committed)
.PHONY: soak
soak: all models
	flock $${MEDGEMMA_BENCH_LOCK:-/tmp/medgemma-bench.lock} python3 bench/soak/soak.py

# ---- prefix (issue 16): the caches' benchmark (bench/cache/run.sh builds and runs it).
$(BUILD)/bench_cache: $(BUILD)/obj/bench/cache/bench_cache.o $(BUILD)/libmedgemma.a
	$(CC) $(LDFLAGS) $< $(BUILD)/libmedgemma.a $(CUDA_LDLIBS) $(LDLIBS) -o $@
