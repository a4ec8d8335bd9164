#!/usr/bin/env python3
"""DICOM series -> model tensors: image/dicom (build/dicom-tool tensors: GDCM
decode + sort + CT windows + 896x896 resize + normalize, all 85 slices)
side by side with the Python path a MedGemma notebook takes (pydicom +
pylibjpeg decode, numpy windowing as the CT notebook, transformers'
Gemma3ImageProcessor), in one run on the same machine.

Series: 85 slices of 512x512 CT (12 bits stored in 16, rescale -1024),
uncompressed (explicit VR LE) and JPEG 2000 lossless (gdcmconv -K).

Usage: python3 bench/dicom/run_bench.py [--rounds N] [--threads T]
  (BUILD env: build dir). Prints a markdown table: median wall time of N
interleaved rounds (default 3), and the 1-thread time for ours. Run it under
`flock /work/locks/bench.lock` on a shared machine and note the load."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "image"))
import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import dicom_fixtures as fx  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(REPO, BUILD, "dicom-tool")
N = 85


def make_series(tmp, syntax):
    rng = np.random.default_rng(5)
    uid = pydicom.uid.generate_uid()
    yy, xx = np.mgrid[0:512, 0:512]
    body = ((xx - 256) ** 2 + (yy - 256) ** 2) < 230 ** 2
    files = []
    for k in range(N):
        a = np.where(body, 1000 + 40 * np.sin(xx / 20.0 + k / 5.0) + rng.normal(0, 20, (512, 512)), 0)
        a = np.clip(a, 0, 4095).astype(np.uint16)
        src = fx.make(os.path.join(tmp, f"src_{k:03d}.dcm"), a, series_uid=uid, position=(0, 0, 2.5 * k),
                      bits_stored=12, slope=1, intercept=-1024)
        dst = os.path.join(tmp, f"{syntax}_{k:03d}.dcm")
        fx.transcode(src, dst, syntax)
        files.append(dst)
    return files


def processor():
    try:
        from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil as P
    except ImportError:
        from transformers import Gemma3ImageProcessor as P
    return P(size={"height": 896, "width": 896})


def python_path(files, proc):
    """pydicom + numpy windowing (the CT notebook) + the processor."""
    from PIL import Image
    slices = []
    for f in files:
        ds = pydicom.dcmread(f)
        slices.append((float(ds.ImagePositionPatient[2]), ds))
    slices.sort(key=lambda s: s[0])
    imgs = []
    for _, ds in slices:
        hu = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
        rgb = np.stack([fx.window8(hu, lo, hi) for lo, hi in fx.CT_DEFAULT], axis=-1)
        imgs.append(Image.fromarray(rgb))
    out = proc(images=imgs, return_tensors="np")
    return out["pixel_values"].shape[0]


def ours(files, threads):
    env = dict(os.environ, MEDGEMMA_IMAGE_THREADS=str(threads))
    r = subprocess.run([TOOL, "tensors", "1", *files], capture_output=True, text=True, env=env, check=True)
    n, secs = r.stdout.split()
    assert int(n) == N
    return float(secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_dicom_")
    try:
        series = {"uncompressed (explicit VR LE)": make_series(tmp, "explicit"),
                  "JPEG 2000 lossless": make_series(tmp, "j2k")}
        proc = processor()
        load = os.getloadavg()
        print(f"85-slice 512x512 CT series -> 85 tensors of 3x896x896; {os.cpu_count()} CPUs, load average "
              f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; medians of {args.rounds} interleaved rounds\n")
        print(f"| series | image/dicom, {args.threads} threads | image/dicom, 1 thread | pydicom + numpy + "
              "Gemma3ImageProcessor | speed-up (threads / 1 thread) |")
        print("|---|---|---|---|---|")
        for name, files in series.items():
            ours(files, 1)  # warm the page cache
            t_ours, t_one, t_py = [], [], []
            for _ in range(args.rounds):
                t_ours.append(ours(files, args.threads))
                t_one.append(ours(files, 1))
                t0 = time.perf_counter()
                assert python_path(files, proc) == N
                t_py.append(time.perf_counter() - t0)
            a, b, c = (float(np.median(x)) for x in (t_ours, t_one, t_py))
            print(f"| {name} | {a:.2f} s | {b:.2f} s | {c:.2f} s | {c / a:.1f}x / {c / b:.1f}x |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
