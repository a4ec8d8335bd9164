#!/usr/bin/env bash
# Accuracy of the CPU backend's opt-in modes (precision bf16, weights q8) against
# the default exact path: the real Gemma 3 270M over bench/cpu/quality_texts.txt
# and the transformers goldens. Appends bench/results/YYYY-MM-DD-cpu-quality.md.
#   bench/cpu/run_quality.sh
# Needs the converted 270M (`make models`).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}/gemma3-270m"
[ -f "$MODEL/.complete" ] || { echo "run_quality.sh: $MODEL is missing; run 'make models' first" >&2; exit 1; }
mkdir -p build/bench
${CC:-gcc} -std=c11 -O2 -D_GNU_SOURCE -I. -pthread bench/cpu/quality.c engine/*.c kernels/cpu/*.c util/*.c \
    tokenizer/*.c -lcjson -lm -o build/bench/quality
out="bench/results/$(date -u +%F)-cpu-quality.md"
{
    [ -f "$out" ] || printf '# CPU precision modes: what they cost in accuracy\n\n'
    echo "## Run of $(date -u '+%F %H:%M UTC'), commit $(git rev-parse --short HEAD)"
    echo
    echo "### Real Gemma 3 270M, fixed text set (bench/cpu/quality_texts.txt)"
    echo
    build/bench/quality texts "$MODEL" bench/cpu/quality_texts.txt 2>/dev/null
    echo
    echo "### Transformers goldens (random small models; reference: transformers in float32)"
    echo
    build/bench/quality goldens tests/fixtures/golden/{text_long,causal_lm,old_layout,one_image,two_images} 2>/dev/null
    echo
} | tee -a "$out"
