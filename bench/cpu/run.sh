#!/usr/bin/env bash
# CPU speed of the engine on the Gemma 3 270M, side by side with transformers
# (torch CPU, same threads, same prompt) in one run; appends a markdown table to
# bench/results/YYYY-MM-DD-cpu-270m.md (one section per run) and prints it.
#   bench/cpu/run.sh [--prompt N] [--decode M] [--threads T] [--runs R]
# Needs the converted model (`make models`) and, for the baseline, torch +
# transformers (skipped with a note when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
PROMPT=256 DECODE=32 THREADS=$(nproc) RUNS=2
while [ $# -gt 0 ]; do
    case "$1" in
    --prompt) PROMPT=$2; shift 2 ;;
    --decode) DECODE=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
MODEL="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}/gemma3-270m"
[ -f "$MODEL/.complete" ] || { echo "run.sh: $MODEL is missing; run 'make models' first" >&2; exit 1; }
mkdir -p build/bench
# Built from the sources directly: build/libmedgemma.a may hold CUDA objects.
${CC:-gcc} -std=c11 -O2 -D_GNU_SOURCE -I. -pthread bench/cpu/bench_cpu.c engine/*.c kernels/cpu/*.c util/*.c \
    grammar/*.c tokenizer/*.c -lcjson -lcrypto -lm -o build/bench/bench_cpu
out=$(mktemp)
# The machine is shared: ours runs before and after the baseline, best of both kept.
build/bench/bench_cpu "$MODEL" --prompt "$PROMPT" --decode "$DECODE" --threads "$THREADS" --runs "$RUNS" | tee "$out"
if python3 -c "import torch, transformers" 2>/dev/null; then
    python3 bench/cpu/hf_baseline.py "$MODEL" --prompt "$PROMPT" --decode "$DECODE" --threads "$THREADS" \
        --runs "$RUNS" 2>/dev/null | tee -a "$out"
else
    echo "note: torch/transformers not installed; no baseline" | tee -a "$out"
fi
build/bench/bench_cpu "$MODEL" --prompt "$PROMPT" --decode "$DECODE" --threads "$THREADS" --runs "$RUNS" | tee -a "$out"
result="bench/results/$(date -u +%F)-cpu-270m.md"
python3 - "$out" "$result" "$PROMPT" "$DECODE" "$THREADS" <<'PY'
import json, platform, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
runs = [r for r in rows if r["engine"] == "medgemma-cpu"]
ours = dict(runs[0], prefill_tok_s=max(r["prefill_tok_s"] for r in runs),
            decode_tok_s=max(r["decode_tok_s"] for r in runs))
rows = [ours] + [r for r in rows if r["engine"] != "medgemma-cpu"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
import datetime, os
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = ([] if os.path.exists(sys.argv[2]) else ["# CPU engine vs transformers: Gemma 3 270M (converted GGUF, bf16 weights)", ""]) + [f"## Run of {stamp}", "",
         f"Machine: {cpu}, {sys.argv[5]} threads (shared with other jobs: expect noise; load average {os.getloadavg()[0]:.1f} at the end). Commit {commit}.",
         f"Prompt {sys.argv[3]} tokens, {sys.argv[4]} greedy tokens decoded; best of the runs (ours: runs before and",
         "after the baseline). transformers-float32 computes what we compute (fp32 math on the bf16 weights);",
         "transformers-bfloat16 rounds activations to bf16 (AMX on this CPU), which our fp32 parity rules out.", "",
         "| engine | prefill tok/s | decode tok/s | prefill ratio (ours / it) | decode ratio (ours / it) |",
         "|---|---|---|---|---|"]
for r in rows:
    rp = ours["prefill_tok_s"] / r["prefill_tok_s"] if r["prefill_tok_s"] else 0
    rd = ours["decode_tok_s"] / r["decode_tok_s"] if r["decode_tok_s"] else 0
    lines.append(f"| {r['engine']} | {r['prefill_tok_s']:.1f} | {r['decode_tok_s']:.1f} | {rp:.2f} | {rd:.2f} |")
open(sys.argv[2], "a").write("\n".join(lines) + "\n\n")
print("\n".join(lines))
PY
rm -f "$out"
