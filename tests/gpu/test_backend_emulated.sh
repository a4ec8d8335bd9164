#!/usr/bin/env bash
# The CUDA backend's host code and the GPU test program, run without a GPU:
# engine/cuda/*.c and tests/gpu/*.c are compiled against a fake CUDA runtime and
# cuBLASLt (tests/gpu/fake/: "device" memory in host RAM, stream capture
# recorded and replayed as host closures, a column-major matmul that follows
# the cuBLASLt descriptors) and plain-C stand-ins for the kernels with the same
# bf16 rounding points. Then gpu_tests runs the goldens through the real
# backend code (weight arena, fused q|k|v and gate|up, TN/NN GEMM mappings,
# ring KV cache, image scatter, the captured decode graph, captures) and the
# kernel tests (which check the stand-ins against the CPU twins and the test
# program's own logic). Lines are prefixed "emulated_". Nothing here runs a
# CUDA kernel: tests/gpu/run.sh on a GPU does.
set -u
cd "${REPO_ROOT:-$(dirname "$0")/../..}"
BUILD="${BUILD:-build}"
OUT_DIR="$BUILD/gpu-emu"
mkdir -p "$OUT_DIR"
CFLAGS_EMU="-std=c11 -g -O2 -D_GNU_SOURCE -DMEDGEMMA_CUDA=1 -Itests/gpu/fake -I. -pthread -w"
if [ -n "${MEDGEMMA_ASAN:-}" ]; then
    CFLAGS_EMU="$CFLAGS_EMU -O1 -fsanitize=address,undefined -fno-omit-frame-pointer"
fi
SRC="tests/gpu/fake/fake_runtime.c tests/gpu/fake/fake_kernels.c $(ls engine/cuda/*.c tests/gpu/*.c util/*.c kernels/cpu/*.c)
  engine/config.c engine/safetensors.c engine/map_guard.c engine/weights.c"
if ! gcc $CFLAGS_EMU $SRC -lcjson -lm -o "$OUT_DIR/gpu_tests_emu" >"$OUT_DIR/build.log" 2>&1; then
    echo "FAIL emulated_build: the CUDA host code does not build against the fake runtime:"
    head -30 "$OUT_DIR/build.log"
    exit 1
fi
echo "ok emulated_build"
rc=0
"$OUT_DIR/gpu_tests_emu" --seed 1 golden >"$OUT_DIR/golden.log" 2>&1 || rc=1
# again with cuBLASLt finding no algorithm for the nn.Linear GEMMs: the backend's GEMV fallback
FAKE_LT_NO_ALGO=1 "$OUT_DIR/gpu_tests_emu" --seed 1 golden >"$OUT_DIR/golden_no_algo.log" 2>&1 || rc=1
sed 's/^ok golden_/ok no_algo_golden_/; s/^FAIL golden_/FAIL no_algo_golden_/' "$OUT_DIR/golden_no_algo.log" >>"$OUT_DIR/golden.log"
grep -q 'using the GEMV per row' "$OUT_DIR/golden_no_algo.log" ||
    echo "FAIL no_algo_fallback_logged: the backend did not say it fell back to the GEMV" >>"$OUT_DIR/golden.log"
if [ -n "${MEDGEMMA_ASAN:-}" ]; then # the goldens exercise the host code; the kernel stand-ins are slow under ASan
    echo "skip emulated_kernel_tests: not under ASan (minutes of stand-in kernels; the goldens cover the host code)"
    : >"$OUT_DIR/kernels.log"
else
    "$OUT_DIR/gpu_tests_emu" --seed 1 --small kernels >"$OUT_DIR/kernels.log" 2>&1 || rc=1
fi
# gpu_bench's flow (tiny model, CT path included) and its JSON, read by bench/compare
BENCH_SRC="tests/gpu/fake/fake_runtime.c tests/gpu/fake/fake_kernels.c $(ls engine/cuda/*.c bench/gpu/*.c util/*.c kernels/cpu/*.c)
  engine/config.c engine/safetensors.c engine/map_guard.c engine/weights.c"
if gcc $CFLAGS_EMU $BENCH_SRC -lcjson -lm -o "$OUT_DIR/gpu_bench_emu" >>"$OUT_DIR/build.log" 2>&1 &&
    "$OUT_DIR/gpu_bench_emu" --tiny --ct85 --decode-steps 8 --out "$OUT_DIR/bench.json" >"$OUT_DIR/bench.log" 2>&1 &&
    python3 - "$OUT_DIR/bench.json" <<'PY' >>"$OUT_DIR/bench.log" 2>&1; then
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("card", "measured_copy_gbps", "decode_tok_s", "decode_bw_fraction", "prefill_tok_s", "vision_ms",
          "ttft_ms_1img", "cold_start_s", "peak_gpu_mem_gb", "ct85_total_s", "kernels"):
    assert k in r, k
for k in ("decode_tok_s", "prefill_tok_s", "vision_ms", "ttft_ms_1img", "ct85_total_s"):
    assert isinstance(r[k], (int, float)) and r[k] > 0, (k, r[k])
PY
    echo "ok emulated_gpu_bench_tiny_flow_and_json"
else
    echo "FAIL emulated_gpu_bench_tiny_flow_and_json: see $OUT_DIR/bench.log; last lines:"
    tail -5 "$OUT_DIR/bench.log" "$OUT_DIR/build.log"
    rc=1
fi
cat "$OUT_DIR/golden.log" "$OUT_DIR/kernels.log" | grep -E '^(ok|FAIL|skip) ' | sed 's/^ok /ok emulated_/; s/^FAIL /FAIL emulated_/; s/^skip /skip emulated_/'
if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' "$OUT_DIR/golden.log" "$OUT_DIR/kernels.log"; then
    echo "FAIL emulated_run: gpu_tests_emu exited non-zero without a FAIL line; last lines:"
    tail -5 "$OUT_DIR/golden.log" "$OUT_DIR/kernels.log"
fi
exit "$rc"
