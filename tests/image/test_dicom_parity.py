#!/usr/bin/env python3
"""image/dicom (GDCM) against pydicom on generated files: every transfer
syntax (implicit/explicit VR LE, deflate, RLE, JPEG lossless, JPEG-LS, JPEG
2000, plus lossy JPEG baseline / JPEG 2000 with a tolerance), signed and
unsigned 8/12/16-bit data; compares the physical (HU) values, the CT windows,
MR min-max, X-ray VOI windows (LINEAR, LINEAR_EXACT, SIGMOID, 2nd window),
MONOCHROME1, RGB / YBR_FULL / planar colour, multi-frame. Lossless data must
match exactly (max difference 0). Also: limits, malformed files and the
patient name never appearing in any output.

Prints "ok NAME" / "FAIL NAME: why" / "skip NAME: why"."""
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import numpy as np
    import pydicom  # noqa: F401
    import pylibjpeg  # noqa: F401
    import dicom_fixtures as fx
except ImportError as e:
    print(f"skip dicom_parity: python dependency missing ({e}); run `make deps`")
    sys.exit(0)

BUILD = os.environ.get("BUILD", "build")
failures = 0


def report(name, ok, why=""):
    global failures
    if ok:
        print(f"ok {name}" + (f" ({why})" if why else ""))
    else:
        failures += 1
        print(f"FAIL {name}: {why}")


def no_leak(name, *texts):
    for t in texts:
        if fx.PATIENT_NAME.split("^")[1] in t or fx.PATIENT_ID in t or "19010101" in t:
            report(name + "_no_patient_data", False, "a header value appeared in the tool's output")
            return False
    return True


def tool_rgb(tmp, files, *opts):
    out = os.path.join(tmp, "rgb.bin")
    rc, so, se = fx.tool("rgb", out, *opts, *files)
    no_leak("rgb", so, se)
    if rc != 0:
        return None, se.strip()
    import json
    info = json.loads(so)
    data = np.fromfile(out, np.uint8)
    imgs, off = [], 0
    for f, fr, w, h in info["images"]:
        imgs.append(data[off:off + w * h * 3].reshape(h, w, 3))
        off += w * h * 3
    info["rgb"] = imgs
    return info, ""


def tool_hu(tmp, path):
    out = os.path.join(tmp, "hu.bin")
    rc, so, se = fx.tool("hu", out, path)
    no_leak("hu", so, se)
    if rc != 0:
        return None, se.strip()
    return np.fromfile(out, np.float64), ""


def compare(name, got, want, tol):
    if got is None:
        report(name, False, "the tool failed")
        return
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        got = got.reshape(want.shape) if got.size == want.size else got
    if got.shape != want.shape:
        report(name, False, f"shape {got.shape} != {want.shape}")
        return
    d = np.abs(got.astype(np.float64) - want.astype(np.float64)).max() if got.size else 0.0
    report(name, d <= tol, f"max diff {d:g}" + (f", limit {tol}" if tol else ""))


def main():
    if shutil.which("gdcmconv") is None:
        print("skip dicom_parity: gdcmconv missing (Debian libgdcm-tools); run `make deps`")
        return 0
    rng = np.random.default_rng(15)
    tmp = tempfile.mkdtemp(prefix="dicom_parity_")
    try:
        run_cases(tmp, rng)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


def run_cases(tmp, rng):
    p = lambda n: os.path.join(tmp, n)  # noqa: E731
    # --- grayscale bases: (name, kwargs, stored array, kind)
    bases = []
    a = fx.stored_with_bits(rng, (40, 36), 12, False)
    bases.append(("ct_u12", dict(bits_stored=12, slope=1, intercept=-1024), a, "ct"))
    a = fx.stored_with_bits(rng, (40, 36), 16, True) // 8
    bases.append(("ct_s16", dict(signed=True, slope=1, intercept=0), a, "ct"))
    a = fx.stored_with_bits(rng, (40, 36), 12, True)
    bases.append(("ct_s12", dict(signed=True, bits_stored=12, slope=1, intercept=0), a, "ct"))
    a = fx.stored_with_bits(rng, (40, 36), 16, False)
    bases.append(("ct_u16_slope", dict(slope=0.5, intercept=-1000.5), a, "ct"))
    a = fx.stored_with_bits(rng, (40, 36), 12, False)
    a[:4] = 0
    bases.append(("ct_padding", dict(bits_stored=12, slope=1, intercept=-1024, PixelPaddingValue=0), a, "ct"))
    a = fx.stored_with_bits(rng, (40, 36), 16, False)
    bases.append(("mr_u16", dict(modality="MR"), a, "mr"))
    a = fx.stored_with_bits(rng, (40, 36), 12, False)
    bases.append(("cr_mono1_window", dict(modality="CR", bits_stored=12, photometric="MONOCHROME1",
                                          WindowCenter=[2048, 1000], WindowWidth=[4096, 500]), a, "gray"))
    bases.append(("dx_linear_exact", dict(modality="DX", bits_stored=12, WindowCenter=1500, WindowWidth=700,
                                          VOILUTFunction="LINEAR_EXACT"), a, "gray"))
    bases.append(("dx_sigmoid", dict(modality="DX", bits_stored=12, WindowCenter=2000, WindowWidth=1500,
                                     VOILUTFunction="SIGMOID"), a, "gray"))
    a = fx.stored_with_bits(rng, (40, 36), 16, True) // 4
    bases.append(("dx_s16_rescaled_window", dict(modality="DX", signed=True, slope=2, intercept=100,
                                                 WindowCenter=0, WindowWidth=9000), a, "gray"))
    a = fx.stored_with_bits(rng, (40, 36), 8, False)
    bases.append(("dx_u8_minmax", dict(modality="DX", bits_allocated=8, bits_stored=8), a, "gray"))
    a = fx.stored_with_bits(rng, (5, 24, 20), 12, False)
    bases.append(("ct_multiframe", dict(bits_stored=12, slope=1, intercept=-1024), a, "ct"))

    syntaxes = ["explicit", "implicit", "deflate", "rle", "jpeg-lossless", "jpeg-ls", "j2k", "j2k-lossy"]
    n_compared = 0
    seen_syntaxes = set()
    for name, kw, arr, kind in bases:
        src = fx.make(p(name + ".dcm"), arr, **kw)
        for syn in syntaxes:
            case = f"{name}_{syn}"
            dst = p(case + ".dcm")
            try:
                fx.transcode(src, dst, syn)
            except Exception as e:  # noqa: BLE001
                report(case, False, f"gdcmconv failed: {e}")
                continue
            ds = fx.read(dst)
            seen_syntaxes.add(str(ds.file_meta.TransferSyntaxUID))
            lossy = syn in fx.LOSSY
            # lossy decoders (GDCM's vs pylibjpeg's) may round differently
            tol_hu = 0 if not lossy else float(np.abs(fx.ref_physical(ds)).max()) * 0.02 + 4
            hu, err = tool_hu(tmp, dst)
            if hu is None:
                report(case + "_hu", False, err)
                continue
            compare(case + "_hu", hu, fx.ref_physical(ds), tol_hu)
            n_compared += 1
            if kind == "ct":
                info, err = tool_rgb(tmp, [dst])
                want = fx.ref_ct_rgb(ds)
                want = list(want) if want.ndim == 4 else [want]
                if info is None:
                    report(case + "_ct_windows", False, err)
                    continue
                compare(case + "_ct_windows", np.stack(info["rgb"]), np.stack(want), 0 if not lossy else 255)
            elif kind == "mr":
                info, err = tool_rgb(tmp, [dst])
                if info is None:
                    report(case + "_mr", False, err)
                    continue
                compare(case + "_mr", np.stack(info["rgb"]), np.stack(fx.ref_mr_rgb([ds])), 0 if not lossy else 255)
            else:
                for idx in range(2 if name == "cr_mono1_window" else 1):
                    info, err = tool_rgb(tmp, [dst], "--voi", str(idx))
                    if info is None:
                        report(f"{case}_voi{idx}", False, err)
                        continue
                    compare(f"{case}_voi{idx}", info["rgb"][0], fx.ref_gray_rgb(ds, idx), 0 if not lossy else 255)

    # --- 8-bit grayscale and colour: JPEG baseline too
    gray8 = fx.stored_with_bits(rng, (48, 40), 8, False)
    src = fx.make(p("xc_gray8.dcm"), gray8, modality="XC", bits_allocated=8, bits_stored=8)
    yy, xx = np.mgrid[0:48, 0:40]
    smooth = np.stack([(xx * 6) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    noisy = rng.integers(0, 256, (48, 40, 3)).astype(np.uint8)
    colour = [("rgb", dict(photometric="RGB"), noisy), ("rgb_planar", dict(photometric="RGB", planar=1), noisy),
              ("ybr_full", dict(photometric="YBR_FULL"), noisy), ("rgb_smooth", dict(photometric="RGB"), smooth)]
    for syn in ["explicit", "rle", "jpeg-lossless", "jpeg-ls", "j2k", "jpeg-baseline"]:
        case = f"xc_gray8_{syn}"
        dst = fx.transcode(src, p(case + ".dcm"), syn)
        ds = fx.read(dst)
        seen_syntaxes.add(str(ds.file_meta.TransferSyntaxUID))
        info, err = tool_rgb(tmp, [dst])
        if info is None:
            report(case, False, err)
            continue
        compare(case, info["rgb"][0], fx.ref_gray_rgb(ds), 0 if syn not in fx.LOSSY else 40)
        n_compared += 1
    for cname, kw, img in colour:
        csrc = fx.make(p(cname + ".dcm"), img, modality="XC", bits_allocated=8, bits_stored=8, **kw)
        for syn in ["explicit", "deflate", "rle", "jpeg-lossless", "jpeg-ls", "j2k", "jpeg-baseline"]:
            if cname != "rgb_smooth" and syn == "jpeg-baseline":
                continue
            if cname == "rgb_smooth" and syn != "jpeg-baseline":
                continue
            case = f"{cname}_{syn}"
            try:
                dst = fx.transcode(csrc, p(case + ".dcm"), syn)
            except Exception as e:  # noqa: BLE001
                report(case, False, f"gdcmconv failed: {e}")
                continue
            ds = fx.read(dst)
            seen_syntaxes.add(str(ds.file_meta.TransferSyntaxUID))
            info, err = tool_rgb(tmp, [dst])
            if info is None:
                report(case, False, f"{err} ({ds.PhotometricInterpretation})")
                continue
            lossy = syn in fx.LOSSY
            tol = 0 if not lossy else 8
            if cname == "ybr_full" and not lossy:
                tol = 1  # pydicom's float32 matmul may round a sum differently
            compare(case, info["rgb"][0], fx.ref_color_rgb(ds), tol)
            n_compared += 1
    report("dicom_parity_transfer_syntaxes", len(seen_syntaxes) >= 8,
           f"{len(seen_syntaxes)} transfer syntaxes, {n_compared} files compared")

    # --- limits and malformed files: a clear error, no crash, no patient data
    good = p("ct_u12.dcm")
    data = open(good, "rb").read()
    bad = {
        "truncated_header": data[:300],
        "truncated_pixels": data[: len(data) - 500],
        "not_dicom": b"\x89PNG\r\n\x1a\n" + b"\0" * 200,
        "empty_preamble_only": b"\0" * 128 + b"DICM",
    }
    import struct
    i = data.find(b"\x10\x00\x10\x00PN")
    bad["lying_length_4gb"] = data[:i] + b"\x10\x00\x10\x00UT\x00\x00" + struct.pack("<I", 0xFFFFFFF0) + b"abc"
    j = data.find(b"\xe0\x7f\x10\x00")
    bad["pixel_data_missing"] = data[:j]
    for bname, blob in bad.items():
        path = p(bname + ".dcm")
        open(path, "wb").write(blob)
        rc, so, se = fx.tool("rgb", p("o.bin"), path)
        ok = rc == 1 and se.startswith("error: ") and no_leak(bname, so, se)
        report(f"malformed_{bname}", ok, se.strip()[:160] if ok else f"rc {rc}: {(so + se)[-300:]}")
    # decompression bomb: 60000 x 60000 declared, tiny file
    bomb = fx.make(p("bomb_src.dcm"), np.zeros((2, 2)), slope=1, intercept=0)
    ds = fx.read(bomb)
    ds.Rows = 60000
    ds.Columns = 60000
    ds.save_as(p("bomb.dcm"))
    rc, so, se = fx.tool("rgb", p("o.bin"), p("bomb.dcm"))
    report("limit_decompression_bomb", rc == 1 and ("over the limit" in se or "shorter" in se), se.strip()[:160])
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored = 2, 2, 32, 32
    ds.PixelData = b"\0" * 16
    ds.save_as(p("bits32.dcm"))
    rc, so, se = fx.tool("rgb", p("o.bin"), p("bits32.dcm"))
    report("limit_bit_depth_32", rc == 1 and "BitsAllocated" in se, se.strip()[:160])
    sm = fx.make(p("sm.dcm"), noisy, modality="SM", bits_allocated=8, bits_stored=8, photometric="RGB")
    rc, so, se = fx.tool("rgb", p("o.bin"), sm)
    report("refused_whole_slide_sm", rc == 1 and "SM" in se, se.strip()[:160])


if __name__ == "__main__":
    sys.exit(main())
