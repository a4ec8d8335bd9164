#!/usr/bin/env bash
# MedGemma 4B's full shape through the CUDA backend's host code: build/full_shape
# (tests/gpu/backend/full_shape.c) creates the CUDA backend on the fake device
# (tests/gpu/fake/: one planned allocation of ~8.9 GiB in host memory; kernel
# stand-ins whose GEMMs, GEMVs and long attentions run on the CPU twins) for
# `synth-model --preset medgemma-4b` (34 layers, real widths, the vision tower)
# with max_context 32768, runs one image, a prompt of its 256 soft tokens and
# text, and 4 decode steps, then does the same on the CPU backend in another
# process, and compares image features and logits within the bf16 envelope.
# max_prefill is 512 (not 32768) so that each process stays under ~11 GB.
#
# The 8.6 GB checkpoint is made once into $MEDGEMMA_CACHE/synth-4b (marked
# .complete) and reused. On a shared machine the runs take the big-memory lock
# (MEDGEMMA_BIGMEM_LOCK, default /work/locks/bigmem.lock when that folder exists).
# MEDGEMMA_FULL_SHAPE=0 skips (loudly); under ASan it is skipped (the 34-layer
# test of test_cuda_backend.sh covers the same host code there).
set -u
cd "${REPO_ROOT:-$(dirname "$0")/../..}" || exit 1
BUILD="${BUILD:-build}"
CACHE="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}"
MODEL="$CACHE/synth-4b"
OUT="$BUILD/full-shape"
NEED_GB=12 # free memory one run needs (the fake device's copy of the weights + the mapped checkpoint)

if [ "${MEDGEMMA_FULL_SHAPE:-1}" = 0 ]; then
    echo "skip full_shape: MEDGEMMA_FULL_SHAPE=0"
    exit 0
fi
if [ -n "${MEDGEMMA_ASAN:-}" ]; then
    echo "skip full_shape: not under ASan (8.6 GB of weights twice; cuda_backend_34_layers_* covers the host code)"
    exit 0
fi
for p in "$BUILD/full_shape" "$BUILD/medgemma"; do
    if [ ! -x "$p" ]; then
        echo "FAIL full_shape_built: $p is missing; run make"
        exit 1
    fi
done
mkdir -p "$OUT" "$CACHE"

LOCK="${MEDGEMMA_BIGMEM_LOCK:-/work/locks/bigmem.lock}"
if [ -d "$(dirname "$LOCK")" ]; then
    exec 9>>"$LOCK"
    flock 9
fi
avail_gb=$(awk '/^MemAvailable:/ {print int($2 / 1048576)}' /proc/meminfo)
if [ "$avail_gb" -lt "$NEED_GB" ]; then
    echo "skip full_shape: needs ${NEED_GB} GB of free memory, this machine has ${avail_gb} GB available"
    exit 0
fi

if [ ! -f "$MODEL/.complete" ]; then
    rm -rf "$MODEL.tmp"
    start=$SECONDS
    if ! "$BUILD/medgemma" synth-model --preset medgemma-4b --out "$MODEL.tmp" >"$OUT/synth.log" 2>&1; then
        echo "FAIL full_shape_checkpoint: synth-model --preset medgemma-4b failed:"
        tail -5 "$OUT/synth.log"
        rm -rf "$MODEL.tmp"
        exit 1
    fi
    rm -rf "$MODEL" && mv "$MODEL.tmp" "$MODEL" && touch "$MODEL/.complete"
    echo "ok full_shape_checkpoint made in $((SECONDS - start)) s ($MODEL)"
fi

rc=0
for backend in cuda cpu; do
    start=$SECONDS
    timeout 1800 "$BUILD/full_shape" run --backend "$backend" --model "$MODEL" --out "$OUT/$backend.bin" \
        --max-prefill 512 --steps 4 >"$OUT/$backend.log" 2>&1 || rc=1
    grep -E '^(ok|FAIL|skip|#) ' "$OUT/$backend.log"
    echo "# $backend process: $((SECONDS - start)) s"
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' "$OUT/$backend.log"; then
        echo "FAIL full_shape_${backend}_run: exited non-zero without a FAIL line; last lines:"
        tail -5 "$OUT/$backend.log"
    fi
done
# CPU time of the runs (user, system): the wall time on a quiet machine is about user / cores
times >"$OUT/times" # (a builtin: in $(...) it would time the subshell)
echo "# CPU time of both runs (user system): $(tail -1 "$OUT/times")"
[ "$rc" -eq 0 ] || exit 1
"$BUILD/full_shape" compare "$OUT/cuda.bin" "$OUT/cpu.bin"
