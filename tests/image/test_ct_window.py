#!/usr/bin/env python3
"""CT windowing and slice sampling of image/ against Google's MedGemma 1.5 CT
notebook (high_dimensional_ct_hugging_face.ipynb), re-typed here:

    hu = pixel_array * RescaleSlope + RescaleIntercept      (float64, pydicom)
    norm(v, lo, hi): clip, float32, -= lo, /= (hi - lo), *= 255.0
    window = stack(norm(hu, -1024, 1024), norm(hu, -135, 215), norm(hu, 0, 80))
    np.round(window, 0).astype(np.uint8)
    sampling: [int(round(i / 85 * (n - 1))) for i in range(1, 86)] when n > 85

Random 16-bit slices (unsigned and signed storage, several slope/intercept
pairs, custom windows) go through build/image-tool ct; the RGB bytes must be
identical. Prints "ok NAME" / "FAIL NAME: why"."""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("REPO_ROOT", os.path.dirname(os.path.dirname(HERE)))
TOOL = os.path.join(REPO, os.environ.get("BUILD", "build"), "image-tool")

try:
    import numpy as np
    from PIL import Image
except ImportError as e:
    print(f"skip ct_window: python dependency missing ({e}); run `make deps`")
    sys.exit(0)


def notebook_window(hu, windows):
    def norm(ct_vol, lo, hi):
        ct_vol = np.clip(ct_vol, lo, hi)
        ct_vol = ct_vol.astype(np.float32)
        ct_vol -= lo
        ct_vol /= hi - lo
        ct_vol *= 255.0
        return ct_vol

    w = np.stack([norm(hu, lo, hi) for lo, hi in windows], axis=-1)
    return np.round(w, 0).astype(np.uint8)


def main():
    if not os.access(TOOL, os.X_OK):
        print(f"FAIL ct_window: {TOOL} is missing; run make")
        return 1
    rng = np.random.default_rng(7)
    default = [(-1024, 1024), (-135, 215), (0, 80)]
    cases = [
        ("unsigned_intercept_-1024", False, 1.0, -1024.0, default),
        ("signed_no_rescale", True, 1.0, 0.0, default),
        ("slope_0.5_intercept_-1000.5", False, 0.5, -1000.5, default),
        ("signed_slope_2", True, 2.0, 24.0, default),
        ("custom_windows", False, 1.0, -1024.0, [(-1000, 400), (-160, 240), (20, 60)]),
    ]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, signed, slope, intercept, windows in cases:
            h, w = 97, 131
            if signed:
                stored = rng.integers(-2048, 3072, (h, w)).astype(np.int16)
                png_values = stored.view(np.uint16)
            else:
                stored = rng.integers(0, 4096, (h, w)).astype(np.uint16)
                png_values = stored
            # Exact window edges and ties (x.5 after scaling) are in every slice.
            flat = stored.reshape(-1)
            for k, hu_edge in enumerate([-1024, 1024, -135, 215, 0, 80, 40, -1000, 400]):
                raw = (hu_edge - intercept) / slope
                if raw == int(raw) and (signed or raw >= 0):
                    flat[k] = int(raw)
            path = os.path.join(tmp, name + ".png")
            Image.fromarray(png_values).save(path)
            expected = notebook_window(stored.astype(np.float64) * slope + intercept, windows)
            args = [TOOL, "ct", "--slope", repr(slope), "--intercept", repr(intercept)]
            if signed:
                args.append("--signed")
            if windows != default:
                args += ["--windows", ",".join(str(v) for pair in windows for v in pair)]
            out = path + ".rgb"
            r = subprocess.run(args + [path, out], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL ct_{name}: image-tool ct: {(r.stdout + r.stderr).strip()[-300:]}")
                failed += 1
                continue
            got = np.fromfile(out, dtype=np.uint8).reshape(h, w, 3)
            bad = int((got != expected).any(axis=-1).sum())
            if bad:
                print(f"FAIL ct_{name}: {bad} of {h * w} pixels differ from the notebook's windowing")
                failed += 1
            else:
                print(f"ok ct_{name}")

    # Sampling: the notebook's list comprehension, for many series lengths.
    bad = []
    for n in list(range(1, 200)) + [255, 256, 300, 511, 512, 1000, 1234]:
        want = list(range(n)) if n <= 85 else [int(round(i / 85 * (n - 1))) for i in range(1, 86)]
        r = subprocess.run([TOOL, "sample", str(n), "85"], capture_output=True, text=True)
        got = [int(x) for x in r.stdout.split()] if r.returncode == 0 else None
        if got != want:
            bad.append(n)
    if bad:
        print(f"FAIL ct_sample_slices_like_notebook: differs for series lengths {bad[:10]}")
        failed += 1
    else:
        print("ok ct_sample_slices_like_notebook")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
