#!/usr/bin/env python3
"""image/dicom on real third-party sample files: pydicom's own test files and
PyPI pydicom-data's (CT, MR, CR, NM, US, RGB/YBR photos, multi-frame,
compressed in every syntax), against pydicom + pylibjpeg on the same arrays:
the physical values (HU) and the 8-bit RGB the model gets (CT windows, MR
min-max, X-ray VOI / MONOCHROME1, colour). Lossless files must match
exactly (max difference 0); lossy ones (JPEG baseline/extended, JPEG 2000
irreversible, JPEG-LS near-lossless) are decoded by two different codecs and
are reported with their difference (limit 16 levels / 2% of the value range).
Files outside what image/dicom supports (palette colour, 32-bit, 16-bit
colour, 1-bit segmentations, uncompressed YBR_FULL_422) must be refused with
a message naming the tag, never crash. Prints "ok NAME" / "FAIL NAME: why"."""
import glob
import os
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:
    import numpy as np
    import pydicom
    import dicom_fixtures as fx
    from test_dicom_parity import tool_rgb, tool_hu
    import test_dicom_parity as tp
except ImportError as e:
    print(f"skip dicom_samples: python dependency missing ({e}); run `make deps`")
    sys.exit(0)

LOSSY_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91",
                  "1.2.840.10008.1.2.4.81"}
EXPECTED_REFUSALS = ("PALETTE COLOR", "BitsAllocated", "SamplesPerPixel", "YBR_FULL_422", "PhotometricInterpretation",
                     "SM")


def sample_files():
    dirs = [os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")]
    try:
        import data_store  # PyPI pydicom-data
        dirs.append(os.path.join(os.path.dirname(data_store.__file__), "data"))
    except ImportError:
        print("skip dicom_samples_pydicom_data: PyPI pydicom-data is not installed; run `make deps`")
    seen, out = set(), []
    for d in dirs:
        for f in sorted(glob.glob(os.path.join(d, "**", "*.dcm"), recursive=True)):
            name = os.path.basename(f)
            if name in seen or os.path.getsize(f) > 8 << 20:
                continue
            seen.add(name)
            out.append(f)
    return out


def reference(ds):
    """(physical or rgb array, rgb the model gets) from pydicom, or raises."""
    modality = str(ds.get("Modality", "")).upper()
    if int(ds.SamplesPerPixel) == 3:
        rgb = fx.ref_color_rgb(ds)
        return rgb, (list(rgb) if rgb.ndim == 4 else [rgb])
    phys = fx.ref_physical(ds)
    if modality == "CT":
        rgb = fx.ref_ct_rgb(ds)
    elif modality in ("MR", "MRI"):
        rgb = np.stack(fx.ref_mr_rgb([ds]))[0]
    else:
        rgb = fx.ref_gray_rgb(ds, 0)
    return phys, (list(rgb) if rgb.ndim == 4 else [rgb])


def main():
    warnings.simplefilter("ignore")
    tmp = tempfile.mkdtemp(prefix="dicom_samples_")
    files = sample_files()
    compared, refused, syntaxes, kinds = 0, 0, set(), set()
    for f in files:
        name = "sample_" + os.path.basename(f)[:-4]
        try:
            ds = pydicom.dcmread(f)
            if "PixelData" not in ds:
                continue
            ref_values, ref_rgb = reference(ds)
        except Exception as e:  # noqa: BLE001 - pydicom cannot decode it: we must not crash either
            rc, so, se = fx.tool("rgb", os.path.join(tmp, "o.bin"), f)
            tp.report(name + "_no_crash", rc in (0, 1) and (rc == 0 or se.startswith("error: ")) and se.count("\n") <= 1,
                      f"pydicom: {type(e).__name__}; ours: {'decoded' if rc == 0 else se.strip()[:120]}")
            continue
        ts = str(ds.file_meta.TransferSyntaxUID)
        lossy = ts in LOSSY_SYNTAXES or "J2KI" in name or str(ds.get("LossyImageCompression", "00")) == "01"
        info, err = tool_rgb(tmp, [f])
        if info is None:
            ok = any(k in err for k in EXPECTED_REFUSALS) or (
                int(ds.get("BitsAllocated", 0)) == 32 and "GDCM can read" in err)  # GDCM asserts on these
            refused += ok
            tp.report(name + "_refused", ok, err[:160])
            continue
        values, err = tool_hu(tmp, f)
        if values is not None and int(ds.SamplesPerPixel) == 3:  # colour: the tool writes the RGB bytes
            values = np.fromfile(os.path.join(tmp, "hu.bin"), np.uint8)
        if values is None:
            tp.report(name + "_values", False, err)
            continue
        rng = float(np.ptp(ref_values)) if ref_values.size else 0.0
        tol_v = 0 if not lossy else max(16.0, 0.02 * rng)
        tol_rgb = 0 if not lossy else 16
        tp.compare(name + "_values", values.reshape(-1), np.asarray(ref_values).reshape(-1), tol_v)
        got = np.stack(info["rgb"]) if info["rgb"] else np.zeros(0)
        tp.compare(name + "_model_rgb", got, np.stack(ref_rgb), tol_rgb)
        compared += 1
        syntaxes.add(ts)
        kinds.add(str(ds.get("Modality", "")))
    tp.report("dicom_samples_coverage", compared >= 40 and len(syntaxes) >= 9,
              f"{compared} files compared, {refused} refused as unsupported, {len(syntaxes)} transfer syntaxes, "
              f"modalities {sorted(kinds)}")
    return 1 if tp.failures else 0


if __name__ == "__main__":
    sys.exit(main())
