#!/usr/bin/env bash
# CI checks of the GPU tooling that need no GPU: the GPU test program and the
# benchmark are built when nvcc is present (so CI catches CUDA build breaks), they
# refuse cleanly without a device, tests/gpu/run.sh parses, and bench/compare
# flags a regression and passes an improvement.
set -u
cd "${REPO_ROOT:-$(dirname "$0")/../..}"
BUILD="${BUILD:-build}"
fails=0
ok() { echo "ok $1"; }
fail() {
    echo "FAIL $1: $2"
    fails=$((fails + 1))
}

NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
if [ -n "${MEDGEMMA_ASAN:-}" ]; then
    echo "skip gpu_programs_built: the ASan build has no CUDA (NO_CUDA=1)"
elif [ -z "$NVCC" ]; then
    echo "skip gpu_programs_built: no nvcc on this machine, the CUDA backend is not compiled"
elif [ -x "$BUILD/gpu_tests" ] && [ -x "$BUILD/gpu_bench" ]; then
    ok gpu_programs_built
    if nvidia-smi -L >/dev/null 2>&1; then
        echo "skip gpu_tests_without_device: this machine has a GPU (run tests/gpu/run.sh)"
    else
        out=$("$BUILD/gpu_tests" kernels 2>&1)
        rc=$?
        if [ "$rc" -eq 2 ] && echo "$out" | grep -q '^skip gpu_tests: no CUDA device'; then
            ok gpu_tests_without_device
        else
            fail gpu_tests_without_device "expected exit 2 and a skip line, got exit $rc: $out"
        fi
        out=$("$BUILD/gpu_bench" 2>&1)
        rc=$?
        if [ "$rc" -ne 0 ] && echo "$out" | grep -q 'no CUDA device'; then
            ok gpu_bench_without_device
        else
            fail gpu_bench_without_device "expected a failure naming the missing device, got exit $rc: $out"
        fi
    fi
else
    fail gpu_programs_built "nvcc is at $NVCC but $BUILD/gpu_tests or $BUILD/gpu_bench is missing"
fi

if bash -n tests/gpu/run.sh; then ok run_sh_parses; else fail run_sh_parses "bash -n tests/gpu/run.sh"; fi

# Every kernel test name in gpu_kernels.c must fall in one of run.sh's groups.
groups=$(sed -n '/^for group in/,/; do$/p' tests/gpu/run.sh | tr -d '\\' | sed 's/for group in//; s/; do//')
missing=""
for name in $(grep -oE '^    test_[a-z_]+\("[a-z0-9_]+"' tests/gpu/gpu_kernels.c | sed 's/.*("//; s/"//'); do
    hit=0
    for g in $groups; do
        case "$name" in *"$g"*) hit=1 ;; esac
    done
    [ "$hit" = 1 ] || missing="$missing $name"
done
if [ -n "$groups" ] && [ -z "$missing" ]; then
    ok run_sh_groups_cover_kernel_tests
else
    fail run_sh_groups_cover_kernel_tests "tests in no run.sh group:${missing:- (no groups parsed)}"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/old.json" <<'J'
{"card": "X", "decode_tok_s": 100.0, "prefill_tok_s": 5000, "vision_ms": 40, "ttft_ms_1img": 90, "cold_start_s": 4.0, "peak_gpu_mem_gb": 12}
J
cat >"$tmp/slower.json" <<'J'
{"card": "X", "decode_tok_s": 90.0, "prefill_tok_s": 5000, "vision_ms": 40, "ttft_ms_1img": 90, "cold_start_s": 4.0, "peak_gpu_mem_gb": 12}
J
cat >"$tmp/faster.json" <<'J'
{"card": "X", "decode_tok_s": 120.0, "prefill_tok_s": 5100, "vision_ms": 35, "ttft_ms_1img": 80, "cold_start_s": 3.9, "peak_gpu_mem_gb": 12}
J
out=$(python3 bench/compare "$tmp/slower.json" "$tmp/old.json")
rc=$?
if [ "$rc" -eq 1 ] && echo "$out" | grep -q 'decode_tok_s: 100.0 -> 90.0 (-10.0%) REGRESSION' &&
    echo "$out" | tail -1 | grep -q '^1 regressions'; then
    ok compare_flags_regression
else
    fail compare_flags_regression "exit $rc: $out"
fi
out=$(python3 bench/compare "$tmp/faster.json" "$tmp/old.json")
rc=$?
if [ "$rc" -eq 0 ] && echo "$out" | tail -1 | grep -q '^0 regressions'; then
    ok compare_passes_improvement
else
    fail compare_passes_improvement "exit $rc: $out"
fi
[ "$fails" -eq 0 ]
