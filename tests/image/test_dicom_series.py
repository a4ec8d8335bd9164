#!/usr/bin/env python3
"""image/dicom series: a shuffled 40-file CT series gives the same slices in
the same order as the sorted one (sorted along the slice normal from
ImagePositionPatient/ImageOrientationPatient, InstanceNumber as fallback),
long series are sampled as the MedGemma CT notebook does, MR is normalized
over the volume, and mixed series, orientations and sizes are refused naming
the file. Prints "ok NAME" / "FAIL NAME: why" / "skip NAME: why"."""
import os
import random
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:
    import numpy as np
    import dicom_fixtures as fx
    from pydicom.uid import generate_uid
except ImportError as e:
    print(f"skip dicom_series: python dependency missing ({e}); run `make deps`")
    sys.exit(0)
from test_dicom_parity import report, tool_rgb  # noqa: E402
import test_dicom_parity as tp  # noqa: E402


def series(tmp, n, name, modality="CT", orientation=(1, 0, 0, 0, 1, 0), normal=(0, 0, 1), positions=True,
           instance=True, size=(32, 28), seed=0):
    rng = np.random.default_rng(seed)
    uid = generate_uid()
    files, arrays = [], []
    for k in range(n):
        arr = rng.integers(0, 4096, size)
        pos = [10.0 + 2.5 * k * c for c in normal] if positions else None
        kw = dict(series_uid=uid, position=pos, orientation=orientation, instance=(n - k) if instance else None,
                  bits_stored=12, slope=1, intercept=-1024, modality=modality)
        if not positions:
            kw["instance"] = k + 1 if instance else None
        f = fx.make(os.path.join(tmp, f"{name}_{k:03d}.dcm"), arr, **kw)
        files.append(f)
        arrays.append(arr)
    return files, arrays


def main():
    tmp = tempfile.mkdtemp(prefix="dicom_series_")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if tp.failures else 0


def run(tmp):
    # 40 CT slices along an oblique normal; InstanceNumber deliberately reversed
    c = np.cos(0.3)
    s = np.sin(0.3)
    orient = (1, 0, 0, 0, c, s)
    normal = (0, -s, c)  # row x col
    files, arrays = series(tmp, 40, "ct", orientation=orient, normal=normal)
    shuffled = files[:]
    random.Random(7).shuffle(shuffled)
    a, err_a = tool_rgb(tmp, files)
    b, err_b = tool_rgb(tmp, shuffled)
    if a is None or b is None:
        report("series_shuffled_40", False, err_a or err_b)
    else:
        same = a["n"] == b["n"] == 40 and all(np.array_equal(x, y) for x, y in zip(a["rgb"], b["rgb"]))
        order_b = [os.path.basename(shuffled[f]) for f, _, _, _ in b["images"]]
        order_a = [os.path.basename(files[f]) for f, _, _, _ in a["images"]]
        want = [os.path.basename(f) for f in files]
        report("series_shuffled_40_same_slices", same and order_a == order_b == want,
               f"order {b['order']} (1 = along the normal), {b['n']} slices")
        ds = [fx.read(f) for f in files]
        want_rgb = [fx.ref_ct_rgb(d) for d in ds]
        d = max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(b["rgb"], want_rgb))
        report("series_shuffled_40_windows_vs_pydicom", d == 0, f"max diff {d}")
        report("series_volume_flag", a["volume"] == 1 and a["kind"] == 1, f"volume {a['volume']} kind {a['kind']}")

    # sampling: 100 slices -> 85, the notebook's indices
    files100, _ = series(tmp, 100, "long", seed=1)
    r, err = tool_rgb(tmp, list(reversed(files100)))
    if r is None:
        report("series_sampling_100_to_85", False, err)
    else:
        got = [int(os.path.basename(files100[::-1][f])[5:8]) for f, _, _, _ in r["images"]]
        want = [int(round(i / 85 * 99)) for i in range(1, 86)]
        report("series_sampling_100_to_85", got == want and r["total"] == 100, f"{len(got)} slices")
    r, err = tool_rgb(tmp, files100[:30], "--max-slices", "10")
    if r is None:
        report("series_max_slices_option", False, err)
    else:
        got = [int(os.path.basename(files100[f])[5:8]) for f, _, _, _ in r["images"]]
        report("series_max_slices_option", got == [int(round(i / 10 * 29)) for i in range(1, 11)], str(got))

    # InstanceNumber fallback (no positions), and as-sent order when neither
    fi, _ = series(tmp, 12, "inst", positions=False, seed=2)
    sh = fi[:]
    random.Random(3).shuffle(sh)
    r, err = tool_rgb(tmp, sh)
    ok = r is not None and [os.path.basename(sh[f]) for f, _, _, _ in r["images"]] == [os.path.basename(f) for f in fi]
    report("series_instance_number_fallback", ok and r["order"] == 2, err or f"order {r['order']}")

    # MR: min-max over the volume
    fm, _ = series(tmp, 6, "mr", modality="MR", seed=4)
    r, err = tool_rgb(tmp, fm)
    if r is None:
        report("series_mr_volume_minmax", False, err)
    else:
        want = fx.ref_mr_rgb([fx.read(f) for f in fm])
        d = max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(r["rgb"], want))
        report("series_mr_volume_minmax", d == 0, f"max diff {d}")

    # refusals name the file
    other, _ = series(tmp, 3, "other", seed=5)
    r, err = tool_rgb(tmp, files[:5] + [other[0]])
    report("series_mixed_refused", r is None and "dicom[5]" in err and "SeriesInstanceUID" in err, err[:200])
    tilted = fx.make(os.path.join(tmp, "tilted.dcm"), np.zeros((32, 28)), series_uid=fx.read(files[0]).SeriesInstanceUID,
                     position=(0, 0, 0), orientation=(0, 1, 0, 0, 0, 1), bits_stored=12, slope=1, intercept=-1024)
    r, err = tool_rgb(tmp, files[:3] + [tilted])
    report("series_orientation_refused", r is None and "dicom[3]" in err and "(0020,0037)" in err, err[:200])
    small = fx.make(os.path.join(tmp, "small.dcm"), np.zeros((16, 16)), series_uid=fx.read(files[0]).SeriesInstanceUID,
                    position=(0, 0, 99), orientation=orient, bits_stored=12, slope=1, intercept=-1024)
    r, err = tool_rgb(tmp, [small] + files[:2])
    report("series_size_refused", r is None and "dicom[1]" in err and "size" in err, err[:200])
    xr = fx.make(os.path.join(tmp, "xr.dcm"), np.zeros((16, 16)), modality="CR", bits_stored=12)
    r, err = tool_rgb(tmp, files[:2] + [xr])
    report("series_mixed_modality_refused", r is None and "dicom[2]" in err, err[:200])
    # the request's modality overrides (0008,0060): X-ray files windowed as CT
    r, err = tool_rgb(tmp, [xr], "--modality", "CT")
    report("modality_override", r is not None and r["kind"] == 1, err or f"kind {r['kind']}")
    # X-ray files are separate images, not a volume
    xr2 = fx.make(os.path.join(tmp, "xr2.dcm"), np.ones((20, 16)), modality="DX", bits_stored=12)
    r, err = tool_rgb(tmp, [xr, xr2])
    report("xray_files_are_images", r is not None and r["volume"] == 0 and r["n"] == 2, err)


if __name__ == "__main__":
    sys.exit(main())
