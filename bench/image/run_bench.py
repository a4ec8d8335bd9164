#!/usr/bin/env python3
"""File bytes -> 3x896x896 model tensor: image/ (build/image-tool bench) side
by side with transformers' Gemma3ImageProcessor (PIL backend, Image.open +
processor from the same bytes in memory), in one run on the same machine.

Cases: a 512x512 16-bit grayscale PNG (as a plain image, and as a CT slice
windowed into 3 channels vs the MedGemma notebook's numpy windowing + the
processor) and a 2048x2048 RGB JPEG (quality 90, 4:2:0).

Usage: python3 bench/image/run_bench.py [--repeat N]   (BUILD env: build dir)
Prints a markdown table: medians of 5 interleaved rounds (N/5 runs each,
after a warm-up), so load changes on a shared machine hit both sides alike."""

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, os.environ.get("BUILD", "build"), "image-tool")


def processor():
    try:
        from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil as P
    except ImportError:
        from transformers import Gemma3ImageProcessor as P
    return P(size={"height": 896, "width": 896})


def median_ms(fn, repeat):
    """(median wall ms, CPU ms per run) of fn."""
    fn()
    times = []
    cpu0 = time.process_time()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    cpu = (time.process_time() - cpu0) * 1e3 / repeat
    return sorted(times)[len(times) // 2], cpu


def c_median_ms(path, repeat, threads=None, ct=False):
    env = dict(os.environ)
    if threads:
        env["MEDGEMMA_IMAGE_THREADS"] = str(threads)
    args = [TOOL, "bench"] + (["--ct"] if ct else []) + [str(repeat), path]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout.split()
    return float(out[out.index("median_ms") + 1]), float(out[out.index("cpu_ms") + 1])


def notebook_ct_window(hu):
    def norm(v, lo, hi):
        v = np.clip(v, lo, hi).astype(np.float32)
        v -= lo
        v /= hi - lo
        v *= 255.0
        return v
    w = np.stack([norm(hu, -1024, 1024), norm(hu, -135, 215), norm(hu, 0, 80)], axis=-1)
    return np.round(w, 0).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    if not os.access(TOOL, os.X_OK):
        sys.exit(f"{TOOL} is missing: run make")
    rng = np.random.default_rng(0)
    proc = processor()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ct = np.clip(rng.normal(1000, 300, (512, 512)), 0, 4095).astype(np.uint16)
        png_path = os.path.join(tmp, "ct16.png")
        Image.fromarray(ct).save(png_path)
        small = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
        big = np.array(Image.fromarray(small).resize((2048, 2048), Image.BICUBIC))
        big = np.clip(big.astype(int) + rng.integers(-8, 8, big.shape), 0, 255).astype(np.uint8)
        jpg_path = os.path.join(tmp, "rgb2048.jpg")
        Image.fromarray(big).save(jpg_path, quality=90)
        png_bytes = open(png_path, "rb").read()
        jpg_bytes = open(jpg_path, "rb").read()

        def hf_plain(data):
            return lambda: proc(images=Image.open(io.BytesIO(data)), return_tensors="np")

        def hf_ct():
            raw = np.array(Image.open(io.BytesIO(png_bytes))).astype(np.float64) - 1024.0
            return proc(images=Image.fromarray(notebook_ct_window(raw)), return_tensors="np")

        cases = [
            ("512x512 16-bit PNG (plain image)", png_path, False, hf_plain(png_bytes)),
            ("512x512 16-bit PNG (CT windows)", png_path, True, hf_ct),
            ("2048x2048 RGB JPEG", jpg_path, False, hf_plain(jpg_bytes)),
        ]
        # Interleaved rounds, so a change in machine load hits all columns
        # alike; each number is the median of the rounds' medians.
        rounds = 5
        per_round = max(1, args.repeat // rounds)
        for name, path, is_ct, hf in cases:
            t_hf, t_c1, t_cn = [], [], []
            for _ in range(rounds):
                t_hf.append(median_ms(hf, per_round))
                t_c1.append(c_median_ms(path, per_round, threads=1, ct=is_ct))
                t_cn.append(c_median_ms(path, per_round, ct=is_ct))
            med = lambda xs, i: float(np.median([x[i] for x in xs]))  # noqa: E731
            rows.append((name, med(t_hf, 0), med(t_c1, 0), med(t_cn, 0), med(t_hf, 1), med(t_c1, 1)))
    import transformers
    import PIL
    load = os.getloadavg()[0]
    print(f"transformers {transformers.__version__}, Pillow {PIL.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}, {rounds} interleaved rounds of {per_round}")
    print()
    print("| input -> 3x896x896 tensor | transformers wall ms | image/ 1 thread | speedup | image/ all CPUs | "
          "speedup | CPU ms: transformers / image/ 1 thread | CPU speedup |")
    print("|---|---|---|---|---|---|---|---|")
    for name, t_hf, t_c1, t_cn, cpu_hf, cpu_c1 in rows:
        print(f"| {name} | {t_hf:.1f} | {t_c1:.1f} | {t_hf / t_c1:.1f}x | {t_cn:.1f} | {t_hf / t_cn:.1f}x | "
              f"{cpu_hf:.1f} / {cpu_c1:.1f} | {cpu_hf / cpu_c1:.1f}x |")


if __name__ == "__main__":
    main()
