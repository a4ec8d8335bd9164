#!/usr/bin/env bash
# Mask parity with xgrammar: replays the committed walks of
# tests/fixtures/grammar/parity.json (made by make_parity_fixture.py with PyPI
# xgrammar) through build/grammar-tool on the real Gemma 3 tokenizer; every
# step's allowed-token set must equal xgrammar's (documented differences left
# out, see grammar/README.md).
set -u
cd "$(dirname "$0")/../.."
BUILD="${BUILD:-build}"
tok=$(python3 -c "import sys; sys.path.insert(0, 'tests/tokenizer'); import tokenizer_asset; print(tokenizer_asset.tokenizer_json())" 2>/dev/null) || tok=""
if [ -z "$tok" ] || [ ! -f "$tok" ]; then
    echo "FAIL grammar_parity: the Gemma 3 tokenizer could not be unpacked (tests/tokenizer/tokenizer_asset.py)"
    exit 1
fi
"$BUILD/grammar-tool" parity "$tok" tests/fixtures/grammar/parity.json
