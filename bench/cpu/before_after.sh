#!/usr/bin/env bash
# CPU speed before and after a change, side by side in one run: bench_cpu built
# from BASE_REV (a temporary git worktree) and from the working tree, run
# interleaved (base, new, base, new, ...) on the Gemma 3 270M (prefill + decode,
# each CPU precision mode) and at the MedGemma 4B shape (the synth-4b checkpoint
# of tests/gpu/test_full_shape.sh; decode). Timing holds /work/locks/bench.lock
# (and bigmem.lock for the 4B shape) when that folder exists. Appends a markdown
# table with the load averages to bench/results/YYYY-MM-DD-cpu-before-after.md.
#   bench/cpu/before_after.sh BASE_REV [--reps N] [--same-kernels]
# --same-kernels builds the base with the working tree's CPU kernels (each file of
# kernels/cpu/ the base also has, and kernels/kernels.h): the two builds then
# differ only in the code around the kernels (a refactor's own cost), not in
# kernel speed-ups made since the base.
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=$1
shift
REPS=2 SAME_KERNELS=0
while [ $# -gt 0 ]; do
    case $1 in
    --reps) REPS=$2; shift 2 ;;
    --same-kernels) SAME_KERNELS=1; shift ;;
    *) echo "before_after: unknown option $1" >&2; exit 2 ;;
    esac
done
CACHE="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}"
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/base" "$BASE"
if [ "$SAME_KERNELS" = 1 ]; then
    cp kernels/kernels.h "$tmp/base/kernels/kernels.h"
    for f in kernels/cpu/*; do
        [ -e "$tmp/base/$f" ] && cp "$f" "$tmp/base/$f"
    done
fi
build() { # DIR OUT
    (cd "$1" && ${CC:-gcc} -std=c11 -O2 -D_GNU_SOURCE -I. -pthread bench/cpu/bench_cpu.c engine/*.c kernels/cpu/*.c \
        util/*.c grammar/*.c tokenizer/*.c -lcjson -lcrypto -lm -o "$2")
}
build "$tmp/base" "$tmp/bench_base"
build "$PWD" "$tmp/bench_new"
lock() { # NAME CMD...
    local name=$1
    shift
    if [ -d /work/locks ]; then flock "/work/locks/$name" "$@"; else "$@"; fi
}
out="$tmp/rows"
: >"$out"
case_run() { # LABEL MODEL ARGS...
    local label=$1 model=$2
    shift 2
    for _ in $(seq "$REPS"); do
        for which in base new; do
            local load
            load=$(cut -d' ' -f1 /proc/loadavg)
            local json
            json=$("$tmp/bench_$which" "$model" --runs 1 "$@" 2>/dev/null | grep '^{' | tail -1)
            echo "$label|$which|$load|$json" | tee -a "$out"
        done
    done
}
M270="$CACHE/gemma3-270m"
lock bench.lock bash -c "$(declare -f case_run); tmp=$tmp out=$out REPS=$REPS; \
  case_run '270m exact p256 d32' $M270 --prompt 256 --decode 32; \
  case_run '270m bf16 p256 d32' $M270 --prompt 256 --decode 32 --precision bf16; \
  case_run '270m q8 p256 d32' $M270 --prompt 256 --decode 32 --weights q8"
if [ -f "$CACHE/synth-4b/.complete" ]; then
    lock bigmem.lock flock /work/locks/bench.lock bash -c "$(declare -f case_run); tmp=$tmp out=$out REPS=$REPS; \
      case_run '4b-shape exact p16 d8' $CACHE/synth-4b --prompt 16 --decode 8"
else
    echo "note: $CACHE/synth-4b missing (tests/gpu/test_full_shape.sh makes it); no 4B-shape rows" | tee -a "$out"
fi
result="bench/results/$(date -u +%F)-cpu-before-after.md"
python3 - "$out" "$result" "$BASE" "$SAME_KERNELS" <<'PY'
import json, os, subprocess, sys, datetime
rows = {}
for line in open(sys.argv[1]):
    parts = line.rstrip("\n").split("|", 3)
    if len(parts) != 4 or not parts[3].startswith("{"):
        continue
    label, which, load, js = parts
    d = json.loads(js)
    rows.setdefault(label, {}).setdefault(which, []).append((d, float(load)))
head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = ([] if os.path.exists(sys.argv[2]) else ["# CPU speed before / after a change (bench/cpu/before_after.sh)", ""]) + [
    f"## Run of {stamp}: base {sys.argv[3]}{' with the new CPU kernels (--same-kernels)' if sys.argv[4] == '1' else ''}"
    f" vs {head}{' (+ uncommitted)' if dirty else ''}", "",
    f"Machine: {cpu}, {os.cpu_count()} cores, shared with other engineers' jobs; runs interleaved base/new, "
    "best of the repetitions kept; load average (1 min) when each run started is listed.", "",
    "| case | base prefill tok/s | new prefill tok/s | prefill new/base | base decode tok/s | new decode tok/s | decode new/base | loads (base; new) |",
    "|---|---|---|---|---|---|---|---|"]
for label, by in rows.items():
    b, n = by.get("base", []), by.get("new", [])
    if not b or not n:
        continue
    bp = max(r[0]["prefill_tok_s"] for r in b); np_ = max(r[0]["prefill_tok_s"] for r in n)
    bd = max(r[0]["decode_tok_s"] for r in b); nd = max(r[0]["decode_tok_s"] for r in n)
    loads = ", ".join(f"{r[1]:.1f}" for r in b) + "; " + ", ".join(f"{r[1]:.1f}" for r in n)
    lines.append(f"| {label} | {bp:.1f} | {np_:.1f} | {np_ / bp:.3f} | {bd:.2f} | {nd:.2f} | {nd / bd:.3f} | {loads} |")
open(sys.argv[2], "a").write("\n".join(lines) + "\n\n")
print("\n".join(lines))
PY
