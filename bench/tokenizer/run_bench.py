#!/usr/bin/env python3
"""Tokenizer speed: tokenizer/ (build/medgemma tokenize --time) side by side
with Hugging Face `tokenizers` (the Rust library through its Python binding),
in one run on the same machine, on the real Gemma 3 tokenizer.json.

Measures
  load     tokenizer.json (33 MB, 262144 pieces, 514906 merges) to a ready
           tokenizer: tokenizer_load vs Tokenizer.from_file
  encode   1 MB of text, without <bos>: one call for the whole text (the C
           side times it inside the process, so process start and the load
           are not counted); HF: Tokenizer.encode on one thread
  lines    the same MB as 1 text per line: C --jsonl (incl. JSON parsing)
           vs HF encode in a loop (one thread)
The two corpora: English medical reports, and the multilingual parity
corpus (tests/tokenizer/corpus.py). Ids are checked equal before timing.

Usage: python3 bench/tokenizer/run_bench.py [--repeat N]   (BUILD env: build dir)
Prints a markdown table of medians over N runs."""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "tokenizer"))
from corpus import FINDINGS, corpus, medical_report  # noqa: E402
from tokenizer_asset import tokenizer_json  # noqa: E402

TOOL = os.path.join(REPO, os.environ.get("BUILD", "build"), "medgemma")
MB = 1 << 20


def english_mb():
    rng = random.Random(3)
    parts, size = [], 0
    while size < MB:
        text = medical_report(rng) + "\n" + " ".join(rng.sample(FINDINGS, 4)) + "\n"
        parts.append(text)
        size += len(text.encode())
    return "".join(parts)


def multilingual_mb():
    texts, out, size = corpus(), [], 0
    i = 0
    while size < MB:
        out.append(texts[i % len(texts)])
        size += len(texts[i % len(texts)].encode()) + 1
        i += 1
    return "\n".join(out)


def c_run(path, data, args):
    p = subprocess.run([TOOL, "tokenize", "--tokenizer", path, "--no-bos", "--time"] + args, input=data,
                       capture_output=True, check=True)
    stats = json.loads(p.stderr.decode().strip().splitlines()[-1])
    return stats, p.stdout


def median(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from tokenizers import Tokenizer

    path = tokenizer_json()
    rows = []
    c_load, hf_load = [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        stats, _ = c_run(path, b"", [])
        c_load.append(stats["load_ms"])
        t0 = time.perf_counter()
        hf = Tokenizer.from_file(path)
        hf_load.append((time.perf_counter() - t0) * 1e3)
    rows.append(("load tokenizer.json", f"{median(c_load):.0f} ms", f"{median(hf_load):.0f} ms",
                 median(hf_load) / median(c_load)))

    for name, text in (("English reports", english_mb()), ("multilingual corpus", multilingual_mb())):
        data = text.encode()
        stats, out = c_run(path, data, [])
        want = hf.encode(text, add_special_tokens=False).ids
        if json.loads(out) != want:
            sys.exit(f"ids differ on {name}: the benchmark would compare different work")
        c_ms, hf_ms = [], []
        for _ in range(args.repeat):
            c_ms.append(c_run(path, data, [])[0]["work_ms"])
            t0 = time.perf_counter()
            hf.encode(text, add_special_tokens=False)
            hf_ms.append((time.perf_counter() - t0) * 1e3)
        mb = len(data) / MB
        rows.append((f"encode 1 MB, one text: {name} ({len(want)} ids)", f"{mb / median(c_ms) * 1e3:.1f} MB/s",
                     f"{mb / median(hf_ms) * 1e3:.1f} MB/s", median(hf_ms) / median(c_ms)))

        lines = [line for line in text.split("\n")]
        jsonl = "".join(json.dumps(line) + "\n" for line in lines).encode()
        c_ms, hf_ms = [], []
        for _ in range(args.repeat):
            c_ms.append(c_run(path, jsonl, ["--jsonl"])[0]["work_ms"])
            t0 = time.perf_counter()
            for line in lines:
                hf.encode(line, add_special_tokens=False)
            hf_ms.append((time.perf_counter() - t0) * 1e3)
        rows.append((f"encode 1 MB as {len(lines)} lines: {name}", f"{mb / median(c_ms) * 1e3:.1f} MB/s",
                     f"{mb / median(hf_ms) * 1e3:.1f} MB/s", median(hf_ms) / median(c_ms)))

    print(f"Medians of {args.repeat} runs; {os.cpu_count()} CPUs; tokenizers {__import__('tokenizers').__version__}\n")
    print("| measure | tokenizer/ (C) | HF tokenizers | C speed-up |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f}x |")


if __name__ == "__main__":
    main()
