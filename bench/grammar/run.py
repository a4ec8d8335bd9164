#!/usr/bin/env python3
"""Constrained decoding benchmark: ours (grammar/) against PyPI xgrammar,
side by side in one run, on the real Gemma 3 tokenizer (262,208 rows).

  1. schema compile time: every schema of tests/grammar/schemas/ (the docs'
     examples are box_2d, cxr_findings, ct_report), ours vs xgrammar
     (GrammarCompiler without its cache, compact JSON);
  2. per-token mask time over the random walks of
     tests/fixtures/grammar/parity.json: median and p99 of
     grammar_matcher_fill_mask vs xgrammar's fill_next_token_bitmask, the
     two interleaved (ours, xgrammar, ours, xgrammar);
  3. end-to-end decode on the Gemma 3 270M (CPU backend): ms per decoded token
     with and without a schema (same prompt, greedy).

xgrammar needs torch: run it with the private virtualenv of
tests/grammar/make_parity_fixture.py, under the shared bench lock:

    flock /work/locks/bench.lock /work/venvs/xgr/bin/python bench/grammar/run.py

It prints a Markdown report and writes it to bench/results/DATE-grammar.md.
"""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import xgrammar as xgr
from transformers import PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, os.environ.get("BUILD", "build"), "grammar-tool")
CACHE = os.environ.get("MEDGEMMA_CACHE") or os.path.expanduser("~/.cache/medgemma-engine")
TOK = os.path.join(CACHE, "gemma3-tokenizer", "tokenizer.json")
MODEL = os.path.join(CACHE, "gemma3-270m")
DOC_EXAMPLES = ("box_2d", "cxr_findings", "ct_report")


def sh(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main():
    lines = []
    say = lambda s="": (print(s), lines.append(s))  # noqa: E731
    commit = sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD").strip()
    load = open("/proc/loadavg").read().split()[:3]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    say("# Constrained decoding: grammar/ vs xgrammar %s" % __import__("importlib.metadata").metadata.version("xgrammar"))
    say()
    say("- date %s, commit %s, machine: %s, %d cores (%s)" % (datetime.date.today(), commit, cpu, os.cpu_count(),
                                                             platform.machine()))
    say("- load average at start %s (a shared 2-core box: other engineers' builds and tests ran alongside)" %
        " ".join(load))
    say("- tokenizer: Gemma 3 tokenizer.json, 262,208 logits rows")
    say()

    hf = PreTrainedTokenizerFast(tokenizer_file=TOK)
    info = xgr.TokenizerInfo.from_huggingface(hf, vocab_size=262208, stop_token_ids=[106])
    compiler = xgr.GrammarCompiler(info, cache_enabled=False)

    # 1. compile times
    say("## 1. Schema compile time (ms)")
    say()
    say("| schema | ours: automaton | ours: token cache | ours total | xgrammar |")
    say("|---|---:|---:|---:|---:|")
    schema_dir = os.path.join(ROOT, "tests", "grammar", "schemas")
    totals = {}
    for name in sorted(os.listdir(schema_dir)):
        path = os.path.join(schema_dir, name)
        ours = [json.loads(sh(TOOL, "compile", TOK, path)) for _ in range(3)]
        best = min(ours, key=lambda r: r["build_ms"] + r["cache_ms"])
        text = open(path).read()
        xs = []
        for _ in range(3):
            t0 = time.perf_counter()
            compiler.compile_json_schema(text, any_whitespace=False, separators=(",", ":"), strict_mode=True)
            xs.append((time.perf_counter() - t0) * 1e3)
        total = best["build_ms"] + best["cache_ms"]
        totals[name[:-5]] = (total, min(xs))
        mark = " (docs example)" if name[:-5] in DOC_EXAMPLES else ""
        say("| %s%s | %.2f | %.2f | %.2f | %.2f |" % (name[:-5], mark, best["build_ms"], best["cache_ms"], total,
                                                     min(xs)))
    say()
    say("Best of 3 each. Ours is single-threaded; xgrammar's compiler uses its thread pool. Docs examples: " +
        ", ".join("%s %.1f ms (xgrammar %.1f)" % (k, totals[k][0], totals[k][1]) for k in DOC_EXAMPLES) + ".")
    say()

    # 2. per-token mask time
    fixture = json.load(open(os.path.join(ROOT, "tests", "fixtures", "grammar", "parity.json")))
    ours_runs, xgr_times = [], []
    compiled = {}
    for c in fixture["cases"]:
        compiled[c["name"]] = compiler.compile_json_schema(json.dumps(c["schema"]), any_whitespace=False,
                                                           separators=(",", ":"), strict_mode=True)
    bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
    for rep in range(2):
        ours_runs.append(json.loads(sh(TOOL, "bench", TOK, os.path.join(ROOT, "tests", "fixtures", "grammar",
                                                                       "parity.json"))))
        for c in fixture["cases"]:
            for walk in c["walks"]:
                m = xgr.GrammarMatcher(compiled[c["name"]])
                for tok, _, _ in walk:
                    t0 = time.perf_counter()
                    m.fill_next_token_bitmask(bitmask)
                    xgr_times.append((time.perf_counter() - t0) * 1e6)
                    if tok < 0 or not m.accept_token(tok) or tok == 106:
                        break
    o_med = statistics.median(r["median_us"] for r in ours_runs)
    o_p99 = statistics.median(r["p99_us"] for r in ours_runs)
    say("## 2. Per-token mask time, full 262K vocabulary (us)")
    say()
    say("| | steps | median | p99 |")
    say("|---|---:|---:|---:|")
    say("| ours (grammar_matcher_fill_mask) | %d | %.1f | %.1f |" % (ours_runs[0]["steps"], o_med, o_p99))
    say("| xgrammar (fill_next_token_bitmask) | %d | %.1f | %.1f |" % (len(xgr_times) // 2, pct(xgr_times, 0.5),
                                                                        pct(xgr_times, 0.99)))
    say()
    say("The same %d walks (34 schemas) for both, two interleaved rounds; ours timed in C around the call, "
        "xgrammar in Python around the call (its Python binding overhead included)." % sum(
            len(c["walks"]) for c in fixture["cases"]))
    say()

    # 3. end-to-end decode on the 270M
    say("## 3. End-to-end decode, Gemma 3 270M, CPU backend")
    say()
    if not os.path.exists(os.path.join(MODEL, ".complete")):
        say("skipped: the 270M is not in %s (make models)" % MODEL)
    else:
        prompt = "Write a structured CT abdomen report as JSON."
        schema = json.load(open(os.path.join(schema_dir, "ct_report.json")))
        jobs = []
        for rep in range(3):
            jobs.append({"schema": None, "prompt": prompt, "temperature": 1.0, "seed": rep + 1, "max_tokens": 96})
            jobs.append({"schema": schema, "prompt": prompt, "temperature": 1.0, "seed": rep + 1, "max_tokens": 96})
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(jobs, f)
        out = [json.loads(l) for l in sh(TOOL, "generate", MODEL, f.name).splitlines() if l.startswith("{")]
        os.unlink(f.name)
        free = [r["decode_ms"] / max(1, r["tokens"] - 1) for r, j in zip(out, jobs) if j["schema"] is None]
        cons = [r["decode_ms"] / max(1, r["tokens"] - 1) for r, j in zip(out, jobs) if j["schema"] is not None]
        f_ms, c_ms = statistics.median(free), statistics.median(cons)
        say("| | ms per decode step (median of 3 runs) | tokens per run |")
        say("|---|---:|---|")
        say("| free text | %.2f | %s |" % (f_ms, ", ".join(str(r["tokens"]) for r, j in zip(out, jobs)
                                                          if j["schema"] is None)))
        say("| ct_report schema | %.2f | %s |" % (c_ms, ", ".join(str(r["tokens"]) for r, j in zip(out, jobs)
                                                                 if j["schema"] is not None)))
        say()
        say("Slowdown with the schema: %+.1f%% per decode step (sampled, temperature 1, seeds 1-3, interleaved). "
            "Mask median %.1f us = %.2f%% of a %.1f ms step." % ((c_ms / f_ms - 1) * 100, o_med,
                                                                o_med / 1e3 / f_ms * 100, f_ms))
    say()
    say("Load average at the end: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    out_path = os.path.join(ROOT, "bench", "results", "%s-grammar.md" % datetime.date.today())
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", out_path, file=sys.stderr)


if __name__ == "__main__":
    main()
