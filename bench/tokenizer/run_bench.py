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


def timed(fn):
    """Wall and CPU (all threads of this process) milliseconds of fn()."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3, out


def row(name, c_wall, c_cpu, hf_wall, hf_cpu, unit_mb=None):
    """Medians; with unit_mb, as throughput (MB/s) instead of milliseconds."""
    cw, cc, hw, hc = (median(x) for x in (c_wall, c_cpu, hf_wall, hf_cpu))
    if unit_mb:
        fmt = lambda ms: f"{unit_mb / ms * 1e3:.2f} MB/s"  # noqa: E731
    else:
        fmt = lambda ms: f"{ms:.0f} ms"  # noqa: E731
    return (name, fmt(cw), fmt(cc), fmt(hw), fmt(hc), hw / cw, hc / cc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from tokenizers import Tokenizer

    path = tokenizer_json()
    rows = []
    c_wall, c_cpu, hf_wall, hf_cpu = [], [], [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        stats, _ = c_run(path, b"", [])
        c_wall.append(stats["load_ms"])
        c_cpu.append(stats["load_cpu_ms"])
        w, c, hf = timed(lambda: Tokenizer.from_file(path))
        hf_wall.append(w)
        hf_cpu.append(c)
    rows.append(row("load tokenizer.json", c_wall, c_cpu, hf_wall, hf_cpu))

    for name, text in (("English reports", english_mb()), ("multilingual corpus", multilingual_mb())):
        data = text.encode()
        stats, out = c_run(path, data, [])
        want = hf.encode(text, add_special_tokens=False).ids
        if json.loads(out) != want:
            sys.exit(f"ids differ on {name}: the benchmark would compare different work")
        lines = text.split("\n")
        jsonl = "".join(json.dumps(line) + "\n" for line in lines).encode()
        mb = len(data) / MB
        for label, c_input, c_args, hf_fn in (
                (f"encode 1 MB as one text: {name} ({len(want)} ids)", data, [],
                 lambda: hf.encode(text, add_special_tokens=False)),
                (f"encode 1 MB as {len(lines)} lines: {name}", jsonl, ["--jsonl"],
                 lambda: [hf.encode(line, add_special_tokens=False) for line in lines])):
            c_wall, c_cpu, hf_wall, hf_cpu = [], [], [], []
            for _ in range(args.repeat):
                stats = c_run(path, c_input, c_args)[0]
                c_wall.append(stats["work_ms"])
                c_cpu.append(stats["work_cpu_ms"])
                w, c, _ = timed(hf_fn)
                hf_wall.append(w)
                hf_cpu.append(c)
            rows.append(row(label, c_wall, c_cpu, hf_wall, hf_cpu, unit_mb=mb))

    print(f"Medians of {args.repeat} runs, interleaved; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; tokenizers {__import__('tokenizers').__version__} (one thread: one text "
          "per call). CPU time counts every thread of the process.\n")
    print("| measure | C wall | C CPU | HF wall | HF CPU | C speed-up (wall) | C speed-up (CPU) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]:.2f}x | {r[6]:.2f}x |")


if __name__ == "__main__":
    main()
