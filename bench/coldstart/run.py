#!/usr/bin/env python3
"""Cold start benchmark (issue 7): process start to GET /health 200, with the
model's files in the page cache, next to the time it takes to read those files.

For each --model DIR:
1. warms the page cache: reads every file of DIR once (nothing is dropped);
2. times a sequential read of all of DIR's files (cat-equivalent, 1 MiB
   reads; median of --runs), giving read_s and read_gbps;
3. --runs times: starts `BINARY serve --model DIR --host 127.0.0.1 --port P
   --backend B` on a free loopback port, polls GET /health every --poll-ms
   until it answers 200 (cold_start_s = process start to that 200), then
   sends SIGTERM and checks that the server exits with status 0;
4. prints a markdown table and, with --json PATH, writes the results there.

Where the time goes comes from the server's own JSON log lines ("listening",
"model loaded" with load_s = engine open + tokenizer + one-token warm-up,
"model ready" with startup_s) and from the child's resource usage (user/sys
CPU seconds, page faults). The server never logs prompts; this script sends
none. A separate `BINARY tokenize --tokenizer DIR` on empty input times the
tokenizer load on its own (process start included), and with --backend cpu
bench/coldstart/phases.c (built here from the CPU sources) times each step of
the server's model load in turn: engine_open, tokenizer_load, the one-token
warm-up, and a second token for comparison.

Usage:
  python3 bench/coldstart/run.py --model ~/.cache/medgemma-engine/gemma3-270m \
      --model /tmp/synth4b --backend cpu --runs 3 --json out.json
  python3 bench/coldstart/run.py --model DIR --backend cuda --json out.json   # GPU machine
"""
import argparse
import calendar
import glob
import http.client
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time

CHUNK = 1 << 20
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def model_files(model_dir):
    """Every regular file directly in model_dir (hidden ones too), sorted."""
    out = []
    for name in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            out.append(path)
    if not out:
        sys.exit("coldstart: %s holds no files" % model_dir)
    return out


def read_all(paths):
    """Reads every file sequentially like cat; returns (bytes, seconds)."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while True:
                n = f.readinto(view)
                if not n:
                    break
                total += n
    return total, time.perf_counter() - t0


def page_cache_fraction(paths):
    """Fraction of the files' bytes resident in the page cache (fincore), or None."""
    try:
        r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE"] + paths,
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    res = size = 0
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            res += int(parts[0])
            size += int(parts[1])
    return res / size if size else None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_status(port):
    """Status code of GET /health, or None when nothing answers yet."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/health")
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except (OSError, http.client.HTTPException):
        return None


def parse_log(path, wall_start):
    """The server's JSON log lines of interest -> phase timings (seconds)."""
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            msg = rec.get("message")
            if msg == "listening" and "time" in rec:
                t = time.strptime(rec["time"][:19], "%Y-%m-%dT%H:%M:%S")
                frac = float("0." + rec["time"][20:-1]) if len(rec["time"]) > 20 else 0.0
                out["listening_s"] = round(calendar.timegm(t) + frac - wall_start, 3)
            elif msg == "model loaded":
                out["load_s"] = rec.get("load_s")
            elif msg == "model ready":
                out["startup_s"] = rec.get("startup_s")
                out["backend_reported"] = rec.get("backend")
                out["gpu"] = rec.get("gpu")
            elif rec.get("severity") in ("ERROR", "WARNING"):
                out.setdefault("problems", []).append(msg)
    return out


def one_start(args, model_dir, log_path):
    port = free_port()
    env = dict(os.environ)
    env["MEDGEMMA_LOG_LEVEL"] = "INFO"
    env.pop("MEDGEMMA_API_KEY", None)
    cmd = [args.binary, "serve", "--model", model_dir, "--host", "127.0.0.1", "--port", str(port),
           "--backend", args.backend]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.max_context:
        cmd += ["--max-context", str(args.max_context)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "wb") as log:
        wall_start = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        status = None
        while time.perf_counter() - t0 < args.timeout_s:
            status = health_status(port)
            if status == 200 or proc.poll() is not None:
                break
            time.sleep(args.poll_ms / 1000.0)
        cold = time.perf_counter() - t0
        if status != 200:
            proc.kill()
            proc.wait()
            sys.stdout.flush()
            with open(log_path, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-2000:]
            sys.exit("coldstart: %s never answered /health 200 (last status %s, exit %s); log tail:\n%s"
                     % (" ".join(cmd), status, proc.returncode, tail))
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            sys.exit("coldstart: the server did not stop within 60 s of SIGTERM")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = {"cold_start_s": round(cold, 3), "exit_status": rc,
           "user_s": round(after.ru_utime - before.ru_utime, 2),
           "sys_s": round(after.ru_stime - before.ru_stime, 2),
           "minor_faults": after.ru_minflt - before.ru_minflt,
           "major_faults": after.ru_majflt - before.ru_majflt}
    run.update(parse_log(log_path, wall_start))
    if rc != 0:
        sys.exit("coldstart: the server exited with status %d after SIGTERM (log %s)" % (rc, log_path))
    return run


def tokenizer_load_s(args, model_dir):
    """Process start + tokenizer.json load of `medgemma tokenize` on empty input."""
    if not os.path.isfile(os.path.join(model_dir, "tokenizer.json")):
        return None
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        r = subprocess.run([args.binary, "tokenize", "--tokenizer", model_dir], input=b"",
                           capture_output=True, timeout=300)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            return None
    return round(statistics.median(times), 3)


def build_phases_tool(args):
    """Compiles phases.c from the CPU sources (as bench/cpu/run.sh does: build/libmedgemma.a
    may hold CUDA objects); returns its path, or None with a note on stderr."""
    out = os.path.join(os.path.dirname(args.binary) or ".", "bench", "coldstart_phases")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    srcs = ["bench/coldstart/phases.c"]
    for d in ("engine", "kernels/cpu", "util", "tokenizer"):
        srcs += sorted(glob.glob(os.path.join(d, "*.c")))
    cmd = [os.environ.get("CC", "gcc"), "-std=c11", "-O2", "-D_GNU_SOURCE", "-I.", "-pthread"] + srcs + \
        ["-lcjson", "-lm", "-o", out]
    r = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        print("coldstart: cannot build the phases tool (phases skipped):\n" + r.stderr[-2000:], file=sys.stderr)
        return None
    return out


def phases(args, tool, model_dir):
    """Median of --runs runs of the phases tool: engine_open, tokenizer_load, warm-up token,
    second token (seconds), all in one process after its start."""
    rows = []
    for _ in range(args.runs):
        cmd = [tool, model_dir]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.max_context:
            cmd += ["--max-context", str(args.max_context)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print("coldstart: phases failed: %s" % r.stderr.strip(), file=sys.stderr)
            return None
        rows.append(json.loads(r.stdout))
    return {k: round(statistics.median(row[k] for row in rows), 3) for k in rows[0]}


def bench_model(args, model_dir, tool):
    model_dir = os.path.abspath(os.path.expanduser(model_dir))
    paths = model_files(model_dir)
    files_bytes, _ = read_all(paths)  # 1. warm the page cache
    cached = page_cache_fraction(paths)
    reads = [read_all(paths)[1] for _ in range(args.runs)]  # 2. timed reads
    read_s = statistics.median(reads)
    log_dir = args.log_dir or os.path.join("/tmp", "coldstart-logs")
    os.makedirs(log_dir, exist_ok=True)
    runs = []
    for i in range(args.runs):  # 3. starts
        log_path = os.path.join(log_dir, "%s-%s-%d.log" % (os.path.basename(model_dir), args.backend, i))
        runs.append(one_start(args, model_dir, log_path))
        print("  %s run %d: %.3f s to /health 200" % (os.path.basename(model_dir), i + 1,
                                                      runs[-1]["cold_start_s"]), file=sys.stderr)
    cold = statistics.median(r["cold_start_s"] for r in runs)
    return {
        "model": os.path.basename(model_dir),
        "model_dir": model_dir,
        "backend": args.backend,
        "files_bytes": files_bytes,
        "page_cache_fraction": round(cached, 4) if cached is not None else None,
        "read_s": round(read_s, 3),
        "read_gbps": round(files_bytes / read_s / 1e9, 2),
        "read_runs_s": [round(x, 3) for x in reads],
        "cold_start_s": round(cold, 3),
        "ratio": round(cold / read_s, 2),
        "tokenize_cmd_s": tokenizer_load_s(args, model_dir) if args.tokenizer_phase else None,
        "phases_cpu": phases(args, tool, model_dir) if tool else None,
        "runs": runs,
    }


def markdown(results):
    lines = ["| model | backend | files GB | read s | read GB/s | cold start s (median) | ratio | "
             "listening s | load_s (log) | user s | sys s | minor faults |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        med = sorted(r["runs"], key=lambda x: x["cold_start_s"])[len(r["runs"]) // 2]
        lines.append("| %s | %s | %.2f | %.3f | %.2f | %.3f | %.2f | %s | %s | %.2f | %.2f | %d |" % (
            r["model"], r["backend"], r["files_bytes"] / 1e9, r["read_s"], r["read_gbps"],
            r["cold_start_s"], r["ratio"], med.get("listening_s"), med.get("load_s"), med["user_s"],
            med["sys_s"], med["minor_faults"]))
    ph = [r for r in results if r.get("phases_cpu")]
    if ph:
        lines += ["", "| model | engine_open s | tokenizer_load s | warm-up token s | second token s |",
                  "|---|---|---|---|---|"]
        for r in ph:
            p = r["phases_cpu"]
            lines.append("| %s | %.3f | %.3f | %.3f | %.3f |" % (
                r["model"], p["engine_open_s"], p["tokenizer_load_s"], p["warmup_token_s"], p["second_token_s"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="model directory (repeatable)")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--runs", type=int, default=3, help="server starts (and timed reads) per model")
    ap.add_argument("--binary", default=os.environ.get("BUILD", "build") + "/medgemma")
    ap.add_argument("--threads", type=int, default=0, help="--threads for serve (default: its own)")
    ap.add_argument("--max-context", type=int, default=0, help="--max-context for serve")
    ap.add_argument("--poll-ms", type=float, default=5.0)
    ap.add_argument("--timeout-s", type=float, default=600.0, help="give up on one start after this")
    ap.add_argument("--log-dir", default="", help="server logs (default /tmp/coldstart-logs)")
    ap.add_argument("--no-tokenizer-phase", dest="tokenizer_phase", action="store_false",
                    help="skip timing `medgemma tokenize` on its own")
    ap.add_argument("--no-phases", dest="phases", action="store_false",
                    help="skip the phases tool (built from the CPU sources; runs with --backend cpu only)")
    ap.add_argument("--json", default="", help="write the results here")
    args = ap.parse_args()
    if args.runs < 1:
        sys.exit("coldstart: --runs must be at least 1")
    args.binary = os.path.abspath(args.binary)
    if not os.access(args.binary, os.X_OK):
        sys.exit("coldstart: %s is not an executable (run make, or pass --binary)" % args.binary)
    for d in args.model:
        if not os.path.isdir(os.path.expanduser(d)):
            sys.exit("coldstart: --model %s is not a directory" % d)
    load_start = [round(x, 2) for x in os.getloadavg()]
    tool = build_phases_tool(args) if args.phases and args.backend == "cpu" else None
    results = [bench_model(args, d, tool) for d in args.model]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit or None,
        "host": {"cpu": platform.processor() or platform.machine(), "n_cpus": os.cpu_count(),
                 "load_avg_start": load_start, "load_avg_end": [round(x, 2) for x in os.getloadavg()],
                 "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)},
        "results": results,
    }
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    missed = [r["model"] for r in results if r["ratio"] > 1.5]
    if missed:
        print("target (ratio <= 1.5) missed for: %s" % ", ".join(missed), file=sys.stderr)


if __name__ == "__main__":
    main()
