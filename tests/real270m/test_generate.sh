#!/usr/bin/env bash
# `medgemma generate` end to end: on the real Gemma 3 270M (when `make models`
# has prepared it) the chat-template answer equals transformers' greedy text
# (tests/fixtures/gemma3-270m/expected.json) in plain and --json output; on a
# tiny random checkpoint with a vision tower, a PNG goes through; bad input
# gives a message on stderr and exit status 1 or 2, never a signal.
set -u
BUILD="${BUILD:-build}"
BIN="$BUILD/medgemma"
CACHE="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}"
M270="$CACHE/gemma3-270m"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }

# expect_error NAME WANT_STATUS STDERR_SUBSTRING -- ARGS...
expect_error() {
    local name=$1 want=$2 msg=$3
    shift 4
    "$BIN" generate "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name" "exit status $rc, expected $want; stderr: $(head -c 300 "$tmp/err")"
    elif ! grep -qF -- "$msg" "$tmp/err"; then
        fail "$name" "stderr lacks '$msg': $(head -c 300 "$tmp/err")"
    else
        ok "$name"
    fi
}

# a small RGB PNG
python3 - "$tmp/img.png" <<'PY'
import struct, sys, zlib
w, h = 40, 30
raw = b"".join(b"\0" + bytes(v for x in range(w) for v in (x * 6 % 256, y * 8 % 256, (x + y) % 256)) for y in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
+ chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY

if [ -f "$M270/.complete" ]; then
    python3 - "$tmp" <<'PY'
import json, sys
d = json.load(open("tests/fixtures/gemma3-270m/expected.json"))
p = next(p for p in d["prompts"] if p["name"] == "chat_template")
open(sys.argv[1] + "/question", "w").write(p["prompt"].split("user\n", 1)[1].split("<end_of_turn>", 1)[0])
open(sys.argv[1] + "/want", "w").write(p["greedy_text"])
PY
    q=$(cat "$tmp/question")
    "$BIN" generate --model "$M270" --prompt "$q" --max-tokens 32 --backend cpu >"$tmp/plain" 2>"$tmp/err"
    rc=$?
    if [ $rc -ne 0 ]; then
        fail generate_270m_plain "exit $rc: $(head -c 300 "$tmp/err")"
    elif python3 -c "import sys; sys.exit(open(sys.argv[1]).read() != open(sys.argv[2]).read() + '\n')" \
        "$tmp/plain" "$tmp/want"; then
        ok generate_270m_plain
    else
        fail generate_270m_plain "answer differs from transformers' greedy text: $(head -c 200 "$tmp/plain")"
    fi
    "$BIN" generate --model "$M270" --prompt "$q" --max-tokens 32 --json >"$tmp/json" 2>"$tmp/err"
    if python3 - "$tmp/json" "$tmp/want" <<'PY'; then ok generate_270m_json; else fail generate_270m_json "$(head -c 300 "$tmp/json")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
want = open(sys.argv[2]).read()
assert r["text"] == want, r["text"]
assert r["finish_reason"] == "length" and r["usage"] == {"prompt_tokens": 19, "completion_tokens": 32}, r
assert r["result"] is None and "parse_error" in r and r["inference_time_ms"] > 0, r
PY
    expect_error generate_270m_image_needs_vision 1 "text-only model" -- --model "$M270" --prompt hi --image \
        "$tmp/img.png"
else
    echo "skip generate_270m: the converted Gemma 3 270M is absent ($M270); run 'make models'"
fi

# tiny random checkpoint with a vision tower: an image request runs
if "$BIN" synth-model --preset tiny --out "$tmp/tiny" >/dev/null 2>"$tmp/err"; then
    "$BIN" generate --model "$tmp/tiny" --prompt "Describe" --image "$tmp/img.png" --max-tokens 5 --json \
        >"$tmp/json" 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 0 ] && python3 -c "import json,sys; r=json.load(open(sys.argv[1])); \
assert r['usage']['completion_tokens'] >= 1 and r['usage']['prompt_tokens'] > 64, r" "$tmp/json" 2>/dev/null; then
        ok generate_tiny_with_image
    else
        fail generate_tiny_with_image "exit $rc: $(head -c 300 "$tmp/err") $(head -c 300 "$tmp/json")"
    fi
    expect_error generate_not_an_image 1 "not a PNG or JPEG" -- --model "$tmp/tiny" --prompt hi --image "$0"
    expect_error generate_missing_image 1 "cannot open" -- --model "$tmp/tiny" --prompt hi --image "$tmp/nope.png"
    expect_error generate_bad_temperature 2 "--temperature" -- --model "$tmp/tiny" --prompt hi --temperature abc
    expect_error generate_bad_backend 2 "--backend must be" -- --model "$tmp/tiny" --prompt hi --backend tpu
    expect_error generate_prompt_too_long 1 "longer than the context" -- --model "$tmp/tiny" \
        --prompt "$(printf 'word %.0s' $(seq 1 40))" --max-context 16
else
    fail generate_tiny "synth-model failed: $(head -c 300 "$tmp/err")"
fi
expect_error generate_bad_model_dir 1 "/nonexistent/dir" -- --model /nonexistent/dir --prompt hi
expect_error generate_missing_prompt 2 "--prompt are required" -- --model /tmp
exit $failed
