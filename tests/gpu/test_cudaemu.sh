#!/usr/bin/env bash
# The real CUDA kernels (kernels/cuda/*.cu, unmodified) executed on the CPU by
# cudaemu (tests/gpu/cudaemu/), through tests/gpu/gpu_tests: every kernel test
# against its CPU twin, and the transformers goldens through the CUDA backend's
# real host code (weight arena, fused projections, GEMM mappings, ring KV
# cache, image scatter, the captured decode graph) on the fake runtime.
# Each run is one schedule of the threads of a block (cudaemu.h); lines are
# prefixed "[emu:<schedule>]":
#   forward                     all kernel tests at full shapes + all goldens + prefix reuse
#   warp-greedy-asc             all kernel tests at full shapes + all goldens
#   random (seed 7)             kernel tests at --small shapes + all goldens
#   reverse, warp-greedy-desc   kernel tests at --small shapes
#   asan (forward, ASan+UBSan)  kernel tests at --small shapes + all goldens + prefix reuse
#   no-algo (forward)           the goldens with cuBLASLt finding no algorithm: the GEMV fallback
#   sm_90                       the launch checks with Hopper's limits, --small kernels
#   mma                         mma.sync on random fragments vs a reference (tests/gpu/mma_check.cu)
# plus gpu_bench's --tiny flow and its JSON on the emulated kernels.
# Env: GPU_TEST_SEED (inputs, default 1), CUDAEMU_QUICK=1 (only the forward run, for mutation checks).
# Under make test-asan (MEDGEMMA_ASAN set) only the asan and mma runs: the rest is make test's.
set -u
cd "${REPO_ROOT:-$(dirname "$0")/../..}" || exit 1
BUILD="${BUILD:-build}"
OUT="$BUILD/gpu-cudaemu"
mkdir -p "$OUT"
SEED="${GPU_TEST_SEED:-1}"
for p in gpu_tests_emu gpu_tests_emu_asan gpu_bench_emu mma_check_emu; do
    if [ ! -x "$BUILD/$p" ]; then
        echo "FAIL [emu] build: $BUILD/$p is missing; run make (tests/gpu/cudaemu/cudaemu.mk)"
        exit 1
    fi
done
rc=0

# run LABEL PROGRAM ARGS... (env set by the caller): prefixed result lines, a FAIL
# when the program dies without naming a failed test (ASan, abort), the time.
run() {
    local label="$1"
    shift
    local log="$OUT/$label.log" start=$SECONDS
    "$@" >"$log" 2>&1
    local st=$?
    grep -E '^(ok|FAIL|skip) ' "$log" | sed -E "s/^(ok|FAIL|skip) /\1 [emu:$label] /"
    if [ "$st" -ne 0 ]; then
        rc=1
        if ! grep -q '^FAIL ' "$log"; then
            echo "FAIL [emu:$label] exited with status $st without naming a failed test; last lines of $log:"
            grep -E 'ERROR|SUMMARY|runtime error|cudaemu' "$log" | head -5 | sed 's/^/    /'
            tail -5 "$log" | sed 's/^/    /'
        fi
    fi
    echo "# [emu:$label] $((SECONDS - start)) s"
}

EMU="$BUILD/gpu_tests_emu"
if [ -n "${MEDGEMMA_ASAN:-}" ]; then
    run mma "$BUILD/mma_check_emu" --seed 7 --trials 512
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run asan "$BUILD/gpu_tests_emu_asan" --seed "$SEED" --small all
    exit "$rc"
fi
rm -f "$OUT/launches.txt" # launch sizes for tests/gpu/test_ptxas_resources.sh
CUDAEMU_SCHEDULE=forward CUDAEMU_LAUNCH_LOG="$OUT/launches.txt" run forward "$EMU" --seed "$SEED" all
if [ -z "${CUDAEMU_QUICK:-}" ]; then
    CUDAEMU_SCHEDULE=warp-greedy-asc run warp-greedy-asc "$EMU" --seed "$SEED" kernels,golden
    CUDAEMU_SCHEDULE=random CUDAEMU_SEED=7 run random "$EMU" --seed "$SEED" --small kernels,golden
    CUDAEMU_SCHEDULE=reverse run reverse "$EMU" --seed "$SEED" --small kernels
    CUDAEMU_SCHEDULE=warp-greedy-desc run warp-greedy-desc "$EMU" --seed "$SEED" --small kernels
    CUDAEMU_ARCH=sm_90 run sm_90 "$EMU" --seed "$SEED" --small kernels
    FAKE_LT_NO_ALGO=1 run no-algo "$EMU" --seed "$SEED" golden
    if grep -q 'using the GEMV per row' "$OUT/no-algo.log"; then
        echo "ok [emu:no-algo] fallback_logged: the backend said it fell back to the GEMV"
    else
        echo "FAIL [emu:no-algo] fallback_logged: the backend did not say it fell back to the GEMV"
        rc=1
    fi
    # mma.sync on random fragments against a double reference built from the PTX layout
    # (tests/gpu/mma_check.cu; tests/gpu/run.sh also runs it on a GPU and compares)
    run mma "$BUILD/mma_check_emu" --seed 7 --trials 512
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run asan "$BUILD/gpu_tests_emu_asan" --seed "$SEED" --small all
    # gpu_bench's flow (tiny model, CT path included) and its JSON, read by bench/compare
    start=$SECONDS
    if "$BUILD/gpu_bench_emu" --tiny --ct85 --decode-steps 8 --out "$OUT/bench.json" >"$OUT/bench.log" 2>&1 &&
        python3 - "$OUT/bench.json" <<'PY' >>"$OUT/bench.log" 2>&1; then
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("card", "measured_copy_gbps", "decode_tok_s", "decode_bw_fraction", "prefill_tok_s", "vision_ms",
          "ttft_ms_1img", "cold_start_s", "peak_gpu_mem_gb", "ct85_total_s", "kernels"):
    assert k in r, k
for k in ("decode_tok_s", "prefill_tok_s", "vision_ms", "ttft_ms_1img", "ct85_total_s"):
    assert isinstance(r[k], (int, float)) and r[k] > 0, (k, r[k])
PY
        echo "ok [emu:forward] gpu_bench_tiny_flow_and_json"
    else
        echo "FAIL [emu:forward] gpu_bench_tiny_flow_and_json: see $OUT/bench.log; last lines:"
        tail -5 "$OUT/bench.log" | sed 's/^/    /'
        rc=1
    fi
    echo "# [emu:bench] $((SECONDS - start)) s"
fi
exit "$rc"
