#!/usr/bin/env python3
"""Writes tests/fixtures/grammar/parity.json: random walks through the
schemas of tests/grammar/schemas/ with PyPI xgrammar as the reference mask.

xgrammar needs torch, so this runs by hand in a private virtualenv, never in
CI (as tests/golden/ does for transformers):

    python3 -m venv --system-site-packages /work/venvs/xgr
    /work/venvs/xgr/bin/pip install xgrammar
    /work/venvs/xgr/bin/python tests/grammar/make_parity_fixture.py TOKENIZER_JSON

Each walk step records the token xgrammar's matcher took and a digest of the
allowed set (count, and the sum mod 2^64 of splitmix64(id) over the ids),
over the ids both engines treat alike; tests/grammar/test_parity.sh replays
the walks through build/grammar-tool and compares every step. Left out of the
comparison, as documented in grammar/README.md ("Differences from
xgrammar"): ids >= 262144, special tokens and the control pieces <unusedN>,
<mask>, [multimodal] (xgrammar treats them as text); for schemas with
minLength/maxLength, tokens holding a backslash or a control byte (xgrammar's
length-bounded strings take raw control characters and no escapes). Walks
never pick those, nor a lone byte token that starts malformed UTF-8
(overlong, surrogate, over U+10FFFF: xgrammar accepts some, we do not).

Repairs: xgrammar 0.2.9's mask sometimes leaves out a token that closes
several nested values at once ("}}" after the innermost value of a recursive
$ref) although its own matcher accepts it. For tokens made only of '}' and
']', the step's set is completed with the matcher's verdict
(accept_token + rollback); the count is recorded as "mask_repairs".

xgrammar is run compact, like our default: any_whitespace=False,
separators=(",", ":"), strict_mode=True (no extra properties).
"""
import importlib.metadata
import json
import os
import random
import sys

import numpy as np
import xgrammar as xgr
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VOCAB_ROWS = 262208
END_OF_TURN = 106
WALKS = 6
MAX_STEPS = 48


def splitmix64(x):
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def main():
    tok_path = sys.argv[1]
    raw = json.load(open(tok_path))
    hf = PreTrainedTokenizerFast(tokenizer_file=tok_path)
    info = xgr.TokenizerInfo.from_huggingface(hf, vocab_size=VOCAB_ROWS, stop_token_ids=[END_OF_TURN])
    compiler = xgr.GrammarCompiler(info)
    pieces = {t["id"]: t["content"] for t in raw["added_tokens"]}
    special = {t["id"] for t in raw["added_tokens"] if t["special"]}
    vocab = raw["model"]["vocab"]
    id_piece = {i: p for p, i in vocab.items()}
    id_piece.update(pieces)

    def token_bytes(i):
        p = id_piece.get(i)
        if p is None:
            return b""
        if len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
            return bytes([int(p[3:5], 16)])
        return p.replace("\u2581", " ").encode()

    base_excluded = np.zeros(VOCAB_ROWS, dtype=bool)
    base_excluded[262144:] = True
    esc_or_ctrl = np.zeros(VOCAB_ROWS, dtype=bool)
    short = np.zeros(VOCAB_ROWS, dtype=bool)
    for i in range(262144):
        p = id_piece.get(i)
        if p is None or i in special or p in ("<mask>", "[multimodal]") or (p.startswith("<unused") and p.endswith(">")):
            base_excluded[i] = True
            continue
        b = token_bytes(i)
        short[i] = len(b) <= 2
        if b"\\" in b or any(c < 0x20 for c in b):
            esc_or_ctrl[i] = True
    base_excluded[END_OF_TURN] = False
    # closers: tokens made only of '}' and ']' (xgrammar's mask misses some
    # that its matcher accepts: see "repairs" below)
    closers = [i for i in range(262144) if not base_excluded[i] and len(token_bytes(i)) > 1
               and set(token_bytes(i)) <= set(b"}]")]
    # walks never pick a lone byte that starts malformed UTF-8 in one engine only
    bad_lead = np.zeros(VOCAB_ROWS, dtype=bool)
    for i in range(262144):
        p = id_piece.get(i, "")
        if len(p) == 6 and p.startswith("<0x") and int(p[3:5], 16) in (0xC0, 0xC1, 0xE0, 0xED, 0xF0, 0xF4) + tuple(range(0xF5, 0x100)):
            bad_lead[i] = True
    ids_u64 = np.arange(VOCAB_ROWS, dtype=np.uint64)
    hashes = splitmix64(ids_u64)

    rng = random.Random(1234)
    cases = []
    total_repairs = 0
    schema_dir = os.path.join(HERE, "schemas")
    for name in sorted(os.listdir(schema_dir)):
        if not name.endswith(".json"):
            continue
        text = open(os.path.join(schema_dir, name)).read()
        schema = json.loads(text)
        length_bounded = "minLength" in text or "maxLength" in text
        excluded = base_excluded | (esc_or_ctrl if length_bounded else False)
        compiled = compiler.compile_json_schema(text, any_whitespace=False, separators=(",", ":"), strict_mode=True)
        walks = []
        for _ in range(WALKS):
            matcher = xgr.GrammarMatcher(compiled)
            bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
            steps = []
            for _ in range(MAX_STEPS):
                matcher.fill_next_token_bitmask(bitmask)
                bits = bitmask[0].numpy().view(np.uint32)
                allowed = np.unpackbits(bits.view(np.uint8), bitorder="little")[:VOCAB_ROWS].astype(bool)
                # repairs: a closer the matcher accepts but the mask left out
                for c in closers:
                    if not allowed[c] and matcher.accept_token(c):
                        matcher.rollback(1)
                        allowed[c] = True
                        total_repairs += 1
                cmp_ids = allowed & ~excluded
                count = int(cmp_ids.sum())
                digest = int(hashes[cmp_ids].sum(dtype=np.uint64))
                cand = np.flatnonzero(allowed & ~excluded & ~bad_lead)
                if len(cand) == 0:
                    steps.append([-1, count, "%x" % digest])
                    break
                if allowed[END_OF_TURN] and rng.random() < 0.4:
                    pick = END_OF_TURN
                else:
                    shorts = np.flatnonzero(allowed & ~excluded & ~bad_lead & short)
                    pool = shorts if len(shorts) and rng.random() < 0.7 else cand
                    pool = pool[pool != END_OF_TURN] if len(pool) > 1 else pool
                    pick = int(pool[rng.randrange(len(pool))])
                steps.append([pick, count, "%x" % digest])
                assert matcher.accept_token(pick), (name, pick)
                if pick == END_OF_TURN:
                    break
            walks.append(steps)
        cases.append({"name": name[:-5], "schema": schema, "length_bounded": length_bounded, "walks": walks})
        print(name, sum(len(w) for w in walks), "steps", total_repairs, "repairs so far", file=sys.stderr)
    out_dir = os.path.join(ROOT, "tests", "fixtures", "grammar")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "parity.json"), "w") as f:
        json.dump({"xgrammar": importlib.metadata.version("xgrammar"), "vocab_rows": VOCAB_ROWS,
                   "mask_repairs": total_repairs, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
