#!/usr/bin/env bash
# Everything a lent GPU is for, in one run (docs/gpu.md, GPU.md), ~6 minutes:
#   1. nvidia-smi; find nvcc, cublasLt.h, libcublasLt.so; unpack carried .debs
#      (.deps-device/: cJSON, the GPU programs' only library besides CUDA); build
#   1b. mma.sync on random fragments: the GPU vs the CPU emulator (build/mma_check*)
#   2. kernel tests: every CUDA kernel vs its CPU twin      (build/gpu_tests kernels)
#   2b. the CUDA op table vs the op harness's references    (build/op_harness_gpu --cuda)
#   3. model parity on the GPU vs the transformers goldens  (build/gpu_tests golden)
#   3b. prefix reuse: continued vs cold prompts              (build/gpu_tests prefix)
#   4. compute-sanitizer memcheck over the kernel tests     (--small shapes)
#   5. benchmark at MedGemma 4B shape (build/gpu_bench --synth) + HF transformers
#      baseline in the same run; bench/compare against bench/results/
# Full logs and the files to commit (bench/results/<date>-<card>.json and
# <date>-<card>-tests.md) go to $OUT (default build/gpu-out); a short table is
# printed last. Run from anywhere: bash tests/gpu/run.sh
# Env: OUT, GIT_COMMIT (when the copy has no .git), SKIP_HF=1, SKIP_CT85=1.
set -u
cd "$(dirname "$0")/../.."
REPO="$PWD"
OUT="${OUT:-$REPO/build/gpu-out}"
mkdir -p "$OUT"
T0=$SECONDS
declare -a ROWS=()
row() { ROWS+=("$(printf '| %-28s | %s |' "$1" "$2")"); }
log() { echo "[$((SECONDS - T0))s] $*"; }

# ---- 1. machine, toolchain, build
log "nvidia-smi"
nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt" | head -20
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
CARD="${CARD:-unknown GPU}"
CARD_SLUG=$(echo "$CARD" | tr 'A-Z' 'a-z' | sed 's/nvidia //; s/[^a-z0-9]\+/-/g; s/^-//; s/-$//')
COMMIT="${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
DATE=$(date -u +%Y-%m-%d)
row card "$CARD"
row commit "$COMMIT"

NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || ls -d /usr/local/cuda-*/bin/nvcc 2>/dev/null | tail -1)
if [ -z "$NVCC" ]; then
    echo "FAIL build: no nvcc on this machine"
    exit 1
fi
CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
PY_SITE=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
find_first() { # NAME DIRS...: first file called NAME under the dirs
    local name="$1"
    shift
    for d in "$@"; do
        [ -d "$d" ] || continue
        local f
        f=$(find -H "$d" -maxdepth 6 -name "$name" 2>/dev/null | head -1)
        if [ -n "$f" ]; then
            echo "$f"
            return
        fi
    done
}
CUBLAS_H=$(find_first cublasLt.h "$CUDA_HOME/include" "$CUDA_HOME/targets" /usr/local/cuda/include /usr/include $PY_SITE)
CUBLAS_SO=$(find_first 'libcublasLt.so*' "$CUDA_HOME/lib64" "$CUDA_HOME/targets" /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu $PY_SITE)
log "nvcc $NVCC; cublasLt.h ${CUBLAS_H:-MISSING}; libcublasLt ${CUBLAS_SO:-MISSING}"
if [ -z "$CUBLAS_H" ] || [ -z "$CUBLAS_SO" ]; then
    echo "FAIL build: cuBLASLt not found (header: ${CUBLAS_H:-none}, library: ${CUBLAS_SO:-none})"
    exit 1
fi
LIBDIR="$REPO/build/gpu-lib" # an unversioned libcublasLt.so for the linker, whatever the machine has
mkdir -p "$LIBDIR"
ln -sf "$CUBLAS_SO" "$LIBDIR/libcublasLt.so"
CUBLAS_INC=$(dirname "$CUBLAS_H")
CUBLAS_LIB_REAL=$(dirname "$CUBLAS_SO")

DEPS="$REPO/build/gpu-deps"
if [ ! -e /usr/include/cjson/cJSON.h ]; then
    mkdir -p "$DEPS"
    for deb in .deps-device/*.deb; do
        [ -e "$deb" ] || continue
        if command -v dpkg >/dev/null; then
            dpkg -x "$deb" "$DEPS"
        else
            (cd "$DEPS" && ar x "$REPO/$deb" data.tar.xz && tar xf data.tar.xz && rm -f data.tar.xz)
        fi
    done
    export CFLAGS="-I$DEPS/usr/include"
    export LDFLAGS="-L$DEPS/usr/lib/x86_64-linux-gnu -Wl,-rpath,$DEPS/usr/lib/x86_64-linux-gnu"
    export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
fi
export LD_LIBRARY_PATH="$CUBLAS_LIB_REAL:$CUDA_HOME/lib64:${LD_LIBRARY_PATH:-}"

log "build (make -j16 build/gpu_tests build/gpu_bench build/op_harness_gpu build/mma_check build/mma_check_emu)"
EMU_CXX=$(command -v clang++ || command -v g++) # mma_check_emu needs no clang-only feature
EMU_CC=$(command -v clang || command -v gcc)
if ! make -j16 NVCC="$NVCC" CUDA_HOME="$CUDA_HOME" CUBLAS_INC="$CUBLAS_INC" CUBLAS_LIB="$LIBDIR" \
    EMU_CXX="$EMU_CXX" EMU_CC="$EMU_CC" build/gpu_tests build/gpu_bench build/op_harness_gpu build/mma_check \
    build/mma_check_emu \
    >"$OUT/build.log" 2>&1; then
    echo "FAIL build: see build.log; last lines:"
    tail -30 "$OUT/build.log"
    exit 1
fi
row build "ok ($((SECONDS - T0)) s)"

counts() { # LOG -> "N passed, N failed"
    echo "$(grep -c '^ok ' "$1") passed, $(grep -c '^FAIL ' "$1") failed"
}

# ---- 1b. mma.sync on the silicon vs the CPU emulator (tests/gpu/cudaemu/) that runs
# the kernels in CI: the same random fragments through both, compared value by value
log "mma.sync micro-test: GPU vs the CPU emulator"
{
    timeout 60 build/mma_check --seed 7 --trials 4096 --out "$OUT/mma_gpu.txt"
    timeout 120 build/mma_check_emu --seed 7 --trials 4096 --out "$OUT/mma_emu.txt"
    build/mma_check --compare "$OUT/mma_gpu.txt" "$OUT/mma_emu.txt"
} >"$OUT/mma.log" 2>&1
MMA_RC=$?
grep -E '^(ok|FAIL)' "$OUT/mma.log"
row "mma.sync vs emulator" "$(grep -E '^(ok|FAIL) mma_gpu_vs' "$OUT/mma.log" | cut -c1-90) (exit $MMA_RC)"

# ---- 2. kernel tests, one process per op group: a crash (a sticky CUDA error
# poisons the context) then hides only its own group. Keep in sync with gpu_kernels.c.
log "kernel tests"
rm -f "$OUT/kernel_table.md" "$OUT/kernels.log"
K_RC=0
for group in embedding rmsnorm rope attn_prefill attn_decode attn_cached gelu gemv gemm residual layernorm \
    patch_embed avgpool; do
    echo "### group $group" >>"$OUT/kernels.log"
    GPU_TEST_TABLE="$OUT/kernel_table.md" timeout 60 build/gpu_tests kernels "$group" >>"$OUT/kernels.log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ]; then
        K_RC=$rc
        grep -q "^FAIL" <(sed -n "/^### group $group\$/,\$p" "$OUT/kernels.log") ||
            echo "FAIL group_$group: exit $rc without a FAIL line" >>"$OUT/kernels.log"
    fi
done
grep -E '^(FAIL|#)' "$OUT/kernels.log" | head -20
row "kernel tests" "$(counts "$OUT/kernels.log") (exit $K_RC)"

# ---- 2b. the op table's conformance rows (tests/ops/op_harness.c) on the CUDA table: every op
# as engine/forward.c calls it, against the same naive references as the CPU tables
log "op harness: the CUDA op table"
timeout 120 build/op_harness_gpu --cuda >"$OUT/ops.log" 2>&1
OPS_RC=$?
grep -E '^FAIL' "$OUT/ops.log" | head -10
row "op harness (cuda)" "$(counts "$OUT/ops.log") (exit $OPS_RC)"

# ---- 3. golden parity
log "golden parity"
rm -f "$OUT/golden_table.md" "$OUT/golden.log"
G_RC=0
for dir in tests/fixtures/golden/*/; do # one process per case, like the kernel groups
    case_name=$(basename "$dir")
    [ -e "$dir/expected.safetensors" ] || continue
    GPU_TEST_TABLE="$OUT/golden_table.md" timeout 60 build/gpu_tests golden "golden_$case_name" >>"$OUT/golden.log" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && G_RC=$rc
    if [ "$rc" -ne 0 ] && ! grep -q "^FAIL golden_$case_name" "$OUT/golden.log"; then
        echo "FAIL golden_$case_name: exit $rc without a FAIL line" >>"$OUT/golden.log"
    fi
done
grep -E '^FAIL' "$OUT/golden.log" | head -20
row "golden parity" "$(counts "$OUT/golden.log") (exit $G_RC)"

# ---- 3b. prefix reuse on the CUDA backend: continued vs cold prompts (tests/gpu/gpu_prefix.c)
log "prefix reuse"
timeout 120 build/gpu_tests prefix >"$OUT/prefix.log" 2>&1
P_RC=$?
grep -E '^FAIL' "$OUT/prefix.log" | head -10
row "prefix reuse" "$(counts "$OUT/prefix.log") (exit $P_RC)"

# ---- 4. memcheck
SAN=$(command -v compute-sanitizer || ls "$CUDA_HOME"/bin/compute-sanitizer 2>/dev/null || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$SAN" ]; then
    log "compute-sanitizer memcheck"
    # our kernels only (the cuBLASLt GEMM tests are slow under memcheck and are NVIDIA's code)
    timeout 120 "$SAN" --tool memcheck --error-exitcode 3 build/gpu_tests kernels --small \
        embedding,rmsnorm,rope,attn,gelu,gemv,residual,layernorm,patch_embed,avgpool \
        >"$OUT/memcheck.log" 2>&1
    M_RC=$?
    M_ERR=$(grep -Eo 'ERROR SUMMARY: [0-9]+ error' "$OUT/memcheck.log" | tail -1)
    row "memcheck (kernels --small)" "${M_ERR:-no summary} (exit $M_RC)"
else
    row "memcheck" "compute-sanitizer not found"
fi

# ---- 5. benchmark + HF baseline
log "benchmark (gpu_bench --synth)"
CT=--ct85
[ "${SKIP_CT85:-0}" = 1 ] && CT=
timeout 120 build/gpu_bench --synth $CT --out "$OUT/bench.json" >"$OUT/bench.log" 2>&1
B_RC=$?
row "gpu_bench" "exit $B_RC"
if [ "${SKIP_HF:-0}" != 1 ]; then
    log "HF transformers baseline"
    timeout 150 python3 bench/gpu/hf_baseline.py --out "$OUT/hf.json" >"$OUT/hf.log" 2>&1
    row "hf baseline" "exit $?"
fi
RESULT="$OUT/$DATE-$CARD_SLUG.json"
python3 - "$OUT/bench.json" "$OUT/hf.json" "$RESULT" "$CARD" "$COMMIT" "$DATE" <<'PY'
import json, os, sys
bench, hf, out, card, commit, date = sys.argv[1:7]
r = {"card": card, "commit": commit, "date": date}
for path in (bench, hf):
    if os.path.exists(path):
        try:
            r.update(json.load(open(path)))
        except ValueError as e:
            r.setdefault("errors", []).append(f"{os.path.basename(path)}: {e}")
r["card"] = card
for k in ("measured_copy_gbps", "decode_tok_s", "decode_bw_fraction", "prefill_tok_s", "vision_ms", "ttft_ms_1img",
          "cold_start_s", "peak_gpu_mem_gb", "hf_decode_tok_s", "hf_ttft_ms_1img", "ct85_total_s"):
    r.setdefault(k, None)
json.dump(r, open(out, "w"), indent=2)
PY
python3 bench/compare "$RESULT" >"$OUT/compare.txt" 2>&1
C_RC=$?
row "bench/compare" "$(tail -1 "$OUT/compare.txt") (exit $C_RC)"

# ---- the summary to commit as bench/results/<date>-<card>-tests.md
SUMMARY="$OUT/$DATE-$CARD_SLUG-tests.md"
{
    echo "# GPU run $DATE on $CARD, commit $COMMIT"
    echo
    echo "| step | result |"
    echo "|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "## mma.sync: GPU vs the CPU emulator (tests/gpu/mma_check.cu)"
    echo
    sed 's/^/    /' "$OUT/mma.log" 2>/dev/null
    echo
    echo "## Kernel errors (rel. L2 vs CPU twin)"
    echo
    echo "| test | rel err | tol | |"
    echo "|---|---|---|---|"
    cat "$OUT/kernel_table.md" 2>/dev/null
    echo
    echo "## Goldens"
    echo
    echo "| test | rel err | tol | |"
    echo "|---|---|---|---|"
    cat "$OUT/golden_table.md" 2>/dev/null
    grep -E '^(ok|FAIL) golden_.*(greedy_16|load)' "$OUT/golden.log" 2>/dev/null | sed 's/^/    /'
    echo
    echo "## Benchmark"
    echo
    sed -n '/^| metric/,$p' "$OUT/bench.log" 2>/dev/null
    echo
    echo '```'
    cat "$OUT/hf.json" 2>/dev/null
    cat "$OUT/compare.txt" 2>/dev/null
    echo '```'
} >"$SUMMARY"

# ---- the short table, last
echo
echo "== files under \$OUT: $(basename "$RESULT"), $(basename "$SUMMARY"), *.log"
sed -n '/^| metric/,/^$/p' "$OUT/bench.log" 2>/dev/null
[ -f "$OUT/hf.json" ] && python3 -c "import json;d=json.load(open('$OUT/hf.json'));print('| hf_decode_tok_s | %s |\n| hf_ttft_ms_1img | %s |'%(d.get('hf_decode_tok_s'),d.get('hf_ttft_ms_1img')))"
echo
printf '%s\n' "${ROWS[@]}"
echo "total $((SECONDS - T0)) s"
[ "$K_RC" -eq 0 ] && [ "$OPS_RC" -eq 0 ] && [ "$G_RC" -eq 0 ] && [ "$P_RC" -eq 0 ] && [ "$MMA_RC" -eq 0 ]
