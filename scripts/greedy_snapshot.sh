#!/usr/bin/env bash
# Records `medgemma generate --json` outputs (greedy and one seeded sample) for
# every CPU precision mode on the real Gemma 3 270M and the tiny synthetic
# multimodal checkpoint, one file per case, into OUT_DIR. Run it with two
# builds and `diff -r` the directories: a refactor that keeps the math must
# leave every file byte-identical.
#   usage: scripts/greedy_snapshot.sh BIN OUT_DIR
set -u
BIN=$1
OUT=$2
CACHE="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}"
M270="$CACHE/gemma3-270m"
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BIN" synth-model --preset tiny --out "$tmp/tiny" --seed 7 >/dev/null 2>&1 || echo "synth-model failed"
python3 - "$tmp/img.png" <<'PY'
import struct, sys, zlib
w, h = 40, 30
raw = b"".join(b"\0" + bytes(v for x in range(w) for v in (x * 6 % 256, y * 8 % 256, (x + y) % 256)) for y in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
+ chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
cat >"$tmp/schema.json" <<'JS'
{"type":"object","properties":{"finding":{"type":"string","maxLength":40},"severity":{"type":"integer"}},"required":["finding","severity"]}
JS
run() { # NAME ARGS...
    local name=$1
    shift
    "$BIN" generate --backend cpu --json "$@" >"$OUT/$name.json" 2>"$tmp/err"
    echo "exit $?" >>"$OUT/$name.json"
    # timings differ run to run: drop them
    python3 - "$OUT/$name.json" <<'PY'
import json, re, sys
p = sys.argv[1]
lines = open(p).read().splitlines()
out = []
for l in lines:
    try:
        d = json.loads(l)
        if "message" in d and "quantized" in d["message"]:
            d["message"] = re.sub(r"[0-9.]+ s$", "_ s", d["message"])
        for k in list(d):
            if any(s in k for s in ("ms", "time", "per_s", "seconds")):
                d.pop(k)
        if isinstance(d.get("usage"), dict):
            d["usage"] = {k: v for k, v in d["usage"].items() if not any(s in k for s in ("ms", "time", "per_s"))}
        out.append(json.dumps(d, sort_keys=True))
    except Exception:
        out.append(l)
open(p, "w").write("\n".join(out) + "\n")
PY
}
for prec in exact-bf16 exact-q8 bf16-bf16 bf16-q8; do
    set -- "${prec%-*}" "${prec#*-}"
    tag="$prec"
    if [ -f "$M270/model.safetensors" ]; then
        run "270m-$tag-chat" --model "$M270" --precision "$1" --weights "$2" --max-tokens 40 \
            --prompt "What is the capital of France? Answer in one sentence."
        run "270m-$tag-long" --model "$M270" --precision "$1" --weights "$2" --max-tokens 60 \
            --system "You are a careful radiologist." \
            --prompt "List three common findings on a chest X-ray of a patient with pneumonia, and explain each briefly."
        run "270m-$tag-sample" --model "$M270" --precision "$1" --weights "$2" --max-tokens 30 \
            --temperature 0.8 --top-p 0.9 --top-k 40 --seed 3 --prompt "Write a haiku about the heart."
        run "270m-$tag-schema" --model "$M270" --precision "$1" --weights "$2" --max-tokens 60 \
            --json-schema "$tmp/schema.json" --thinking-budget -1 \
            --prompt "Give the finding as JSON."
    fi
    run "tiny-$tag-text" --model "$tmp/tiny" --precision "$1" --weights "$2" --max-tokens 24 --prompt "hello there"
    run "tiny-$tag-image" --model "$tmp/tiny" --precision "$1" --weights "$2" --max-tokens 24 --prompt "describe" \
        --image "$tmp/img.png" --image "$tmp/img.png"
done
echo "snapshot written to $OUT ($(find "$OUT" -type f | wc -l) files)"
