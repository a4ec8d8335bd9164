#!/usr/bin/env python3
"""image/ against transformers' Gemma3ImageProcessor (PIL path, no torch).

Generates PNGs of every color type and bit depth (some interlaced, some with
tRNS or text chunks) and JPEGs (4:2:0, 4:2:2, 4:4:4, gray, progressive), from
32x32 to 4000x3000 and far from square, runs them all through
build/image-tool (image_to_tensor) and compares each 3x896x896 tensor with
the processor's: max |diff| <= 2/255 and mean |diff| <= 0.5/255.

Alpha: the engine drops it by default (transformers 4.x's convert("RGB"),
which MedGemma 1.5 was released with); with --white it composites onto white
as transformers 5 does. Both are compared. Padding (--pad) is compared with
the MedGemma notebooks' np.pad to a centered square.

Prints "ok NAME" / "FAIL NAME: why" / "skip NAME: why" per case."""

import base64
import io
import warnings
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("REPO_ROOT", os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(REPO, BUILD, "image-tool")
SIZE = 896
# One 8-bit level is 2/255 after (x/255 - 0.5)/0.5; the epsilon absorbs
# float32 rounding of two values exactly one level apart.
MAX_TOL = 2 / 255 + 1e-6
MEAN_TOL = 0.5 / 255

try:
    import numpy as np
    from PIL import Image
    import transformers
    from transformers.models.gemma3 import image_processing_gemma3  # noqa: F401
except ImportError as e:  # pragma: no cover - reported loudly
    print(f"skip image_parity: python dependency missing ({e}); run `make deps`")
    sys.exit(0)

sys.path.insert(0, HERE)
from png_writer import encode_png  # noqa: E402

# Pillow warns about palette images with transparency; expected here.
warnings.filterwarnings("ignore", category=UserWarning)
TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])


def make_processor():
    try:  # transformers >= 5: the PIL backend by name (no torchvision needed)
        from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil as P
    except ImportError:  # transformers 4.x: the "slow" processor is the PIL one
        from transformers import Gemma3ImageProcessor as P
    return P(size={"height": SIZE, "width": SIZE}, do_pan_and_scan=False)


def reference(proc, image):
    return proc(images=image, return_tensors="np")["pixel_values"][0].astype(np.float32)


rng = np.random.default_rng(1234)


def content(h, w, ch, maxval):
    """Smooth shapes plus noise and a hard edge: exercises both the filter
    weights and the clipping of the 8-bit intermediate."""
    lo = rng.random((h // 16 + 2, w // 16 + 2, ch))
    ys = np.linspace(0, lo.shape[0] - 1.001, h)
    xs = np.linspace(0, lo.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = (lo[y0][:, x0] * (1 - fy) * (1 - fx) + lo[y0 + 1][:, x0] * fy * (1 - fx)
           + lo[y0][:, x0 + 1] * (1 - fy) * fx + lo[y0 + 1][:, x0 + 1] * fy * fx)
    img = img + rng.normal(0, 0.08, img.shape)
    img[h // 3: h // 3 + max(1, h // 5), w // 4: w // 4 + max(1, w // 3)] = 1.0
    return np.clip(np.rint(img * maxval), 0, maxval).astype(np.int64)


def png(h, w, color_type, depth, interlace=False, trns=None, text=None):
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    maxval = (1 << depth) - 1
    samples = content(h, w, ch, maxval)
    palette = None
    if color_type == 3:
        palette = rng.integers(0, 256, (1 << depth, 3))
    if color_type in (4, 6):  # a real alpha ramp, including 0 and full
        samples[..., -1] = (np.linspace(0, 1, w)[None, :] * maxval).astype(np.int64)
    return encode_png(samples, color_type, depth, palette=palette, trns=trns, interlace=interlace, text=text,
                      seed=int(rng.integers(1 << 30)))


def jpeg(h, w, gray=False, **save):
    a = content(h, w, 1 if gray else 3, 255).astype(np.uint8)
    im = Image.fromarray(a[..., 0] if gray else a)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", **save)
    return buf.getvalue()


def cases():
    """(name, file bytes, tool options). Sizes are height x width."""
    yield "png_gray1", png(61, 93, 0, 1), []
    yield "png_gray2", png(77, 64, 0, 2), []
    yield "png_gray4", png(200, 131, 0, 4), []
    yield "png_gray8", png(480, 640, 0, 8), []
    yield "png_gray16", png(512, 512, 0, 16), []
    # Pillow reads 16-bit gray as "I;16" and clips at 255 when converting to
    # RGB; values straddling 255 check the clip, not a rescale.
    g16 = content(300, 220, 1, 400)
    yield "png_gray16_near_255", encode_png(g16, 0, 16), []
    yield "png_rgb8", png(768, 1024, 2, 8), []
    yield "png_rgb16", png(200, 300, 2, 16), []
    yield "png_palette1", png(90, 45, 3, 1), []
    yield "png_palette2", png(100, 100, 3, 2), []
    yield "png_palette4", png(57, 311, 3, 4), []
    yield "png_palette8", png(300, 500, 3, 8), []
    yield "png_gray_alpha8", png(128, 256, 4, 8), []
    yield "png_gray_alpha16", png(150, 100, 4, 16), []
    yield "png_rgba8", png(400, 300, 6, 8), []
    yield "png_rgba16", png(333, 444, 6, 16), []
    yield "png_palette8_trns", png(120, 160, 3, 8, trns=bytes(range(0, 256, 2))), []
    yield "png_gray8_trns", png(140, 90, 0, 8, trns=b"\x00\x80"), []
    yield "png_rgb8_trns", png(90, 140, 2, 8, trns=b"\x00\xff\x00\xff\x00\xff"), []
    yield "png_interlaced_gray1", png(95, 70, 0, 1, interlace=True), []
    yield "png_interlaced_gray16", png(257, 129, 0, 16, interlace=True), []
    yield "png_interlaced_rgb8", png(222, 333, 2, 8, interlace=True), []
    yield "png_interlaced_rgba16", png(101, 77, 6, 16, interlace=True), []
    yield "png_interlaced_palette4", png(64, 200, 3, 4, interlace=True), []
    yield "png_interlaced_gray_alpha8", png(33, 47, 4, 8, interlace=True), []
    yield "png_tiny_32x32", png(32, 32, 2, 8), []
    yield "png_wide_50x2000", png(50, 2000, 2, 8), []
    yield "png_tall_1500x60", png(1500, 60, 0, 8), []
    yield "png_text_chunks", png(64, 64, 2, 8, text={"PatientName": "DOE^JANE", "Comment": "x"}), []
    yield "jpeg_420_q90", jpeg(600, 800, quality=90), []
    yield "jpeg_422", jpeg(480, 360, quality=85, subsampling=1), []
    yield "jpeg_444", jpeg(301, 403, quality=95, subsampling=0), []
    yield "jpeg_gray", jpeg(512, 384, gray=True, quality=80), []
    yield "jpeg_progressive", jpeg(700, 500, quality=88, progressive=True), []
    yield "jpeg_odd_217x333", jpeg(217, 333, quality=75), []
    yield "jpeg_4000x3000", jpeg(3000, 4000, quality=85), []
    yield "jpeg_3000x1000_tall", jpeg(3000, 1000, quality=85), []
    yield "pad_png_rgb8_640x480", png(480, 640, 2, 8), ["--pad"]
    yield "pad_jpeg_tall", jpeg(900, 500, quality=90), ["--pad"]
    yield "pad_png_wide_50x2000", png(50, 2000, 2, 8), ["--pad"]
    yield "pad_png_odd_101x60", png(101, 60, 2, 8), ["--pad"]
    yield "pad_png_gray16_tall", png(1200, 333, 0, 16), ["--pad"]
    yield "white_png_rgba8", png(400, 300, 6, 8), ["--white"]
    yield "white_png_rgba16", png(120, 90, 6, 16), ["--white"]
    yield "white_png_gray_alpha8", png(128, 256, 4, 8), ["--white"]
    yield "white_png_palette8_trns", png(120, 160, 3, 8, trns=bytes(range(0, 256, 2))), ["--white"]
    yield "white_png_gray8_trns", png(140, 90, 0, 8, trns=b"\x00\x80"), ["--white"]
    yield "white_png_rgb8_trns", png(90, 140, 2, 8, trns=b"\x00\xff\x00\xff\x00\xff"), ["--white"]
    yield "white_jpeg_no_alpha", jpeg(300, 200, quality=90), ["--white"]


def expected(proc, data, opts):
    im = Image.open(io.BytesIO(data))
    has_alpha = "A" in im.getbands() or im.info.get("transparency") is not None
    if "--white" in opts:
        if TRANSFORMERS_MAJOR >= 5:
            return reference(proc, im)  # transformers itself composites onto white
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return reference(proc, Image.alpha_composite(white, im.convert("RGBA")).convert("RGB"))
    if "--pad" in opts:
        a = np.array(im.convert("RGB"))
        h, w = a.shape[:2]
        d = abs(h - w)
        pad = ((d // 2, d - d // 2), (0, 0), (0, 0)) if h < w else ((0, 0), (d // 2, d - d // 2), (0, 0))
        return reference(proc, Image.fromarray(np.pad(a, pad)))
    if has_alpha:
        # transformers 4.x's convert_rgb: image.convert("RGB"), alpha dropped.
        # (Rebuilt from the array: convert() keeps a tRNS color in .info,
        # which transformers 5 would composite again.)
        return reference(proc, Image.fromarray(np.array(im.convert("RGB"))))
    return reference(proc, im)


def main():
    if not os.access(TOOL, os.X_OK):
        print(f"FAIL image_parity: {TOOL} is missing; run make")
        return 1
    proc = make_processor()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        all_cases = list(cases())
        groups = {}
        for i, (name, data, opts) in enumerate(all_cases):
            path = os.path.join(tmp, f"{i}.img")
            with open(path, "wb") as f:
                f.write(data)
            groups.setdefault(tuple(opts), []).append((name, path, path + ".f32", data))
        # One base64 case: a data URI through the strict decoder.
        b64_path = os.path.join(tmp, "b64.txt")
        names = [c[0] for c in all_cases]
        b64_index = names.index("png_rgb8")
        b64_data = all_cases[b64_index][1]
        with open(b64_path, "wb") as f:
            f.write(b"data:image/png;base64," + base64.b64encode(b64_data))
        outputs = {}
        for opts, items in groups.items():
            args = [TOOL, "tensor", *opts]
            for _, path, out, _ in items:
                args += [path, out]
            r = subprocess.run(args, capture_output=True, text=True)
            outputs[opts] = r
        r64 = subprocess.run([TOOL, "tensor", "--base64", b64_path, b64_path + ".f32"], capture_output=True,
                             text=True)
        n_images = 0
        for opts, items in groups.items():
            r = outputs[opts]
            if r.returncode != 0:  # e.g. a sanitizer report after the tensors were written
                print(f"FAIL image_tool_exit_{'_'.join(o.strip('-') for o in opts) or 'default'}: status "
                      f"{r.returncode}: {(r.stdout + r.stderr).strip()[-500:]}")
                failed += 1
            for name, path, out, data in items:
                if "DOE^JANE" in r.stdout + r.stderr:
                    print(f"FAIL {name}: a PNG text chunk was echoed by the tool")
                    failed += 1
                    continue
                if not os.path.exists(out):
                    print(f"FAIL {name}: image-tool produced no tensor ({(r.stdout + r.stderr).strip()[-300:]})")
                    failed += 1
                    continue
                mine = np.fromfile(out, dtype=np.float32).reshape(3, SIZE, SIZE)
                ref = expected(proc, data, opts)
                diff = np.abs(mine.astype(np.float64) - ref)
                mx, mean = diff.max(), diff.mean()
                n_images += 1
                if mx <= MAX_TOL and mean <= MEAN_TOL:
                    print(f"ok {name} (max {mx * 255:.3f}/255, mean {mean * 255:.4f}/255)")
                else:
                    print(f"FAIL {name}: max |diff| {mx * 255:.3f}/255 (limit 2), mean {mean * 255:.4f}/255 "
                          f"(limit 0.5)")
                    failed += 1
        plain_out = os.path.join(tmp, f"{b64_index}.img.f32")
        ref64 = np.fromfile(plain_out, dtype=np.float32) if os.path.exists(plain_out) else None
        if r64.returncode == 0 and ref64 is not None and np.array_equal(
                np.fromfile(b64_path + ".f32", dtype=np.float32), ref64):
            print("ok base64_data_uri_same_tensor")
        else:
            print(f"FAIL base64_data_uri_same_tensor: {(r64.stdout + r64.stderr).strip()[-300:]}")
            failed += 1
        if n_images < 30:
            print(f"FAIL image_parity_count: only {n_images} images compared (need >= 30)")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
