#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_dicom.c into tests/fuzz/corpus_dicom/:
small DICOM files (16x16) in every transfer syntax image/dicom reads,
each prefixed with the target's two control bytes (path 0, split 128).
Needs pydicom and gdcmconv (make deps). The corpus is committed."""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "image"))
import numpy as np  # noqa: E402
import dicom_fixtures as fx  # noqa: E402

OUT = os.path.join(HERE, "corpus_dicom")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1)
    tmp = tempfile.mkdtemp()
    bases = {
        "ct": (rng.integers(0, 4096, (16, 16)), dict(bits_stored=12, slope=1, intercept=-1024, position=(0, 0, 1))),
        "cr": (rng.integers(0, 4096, (16, 16)), dict(modality="CR", bits_stored=12, photometric="MONOCHROME1",
                                                   WindowCenter=2048, WindowWidth=4096)),
        "mf": (rng.integers(0, 255, (3, 16, 16)), dict(bits_stored=8, bits_allocated=8, modality="MR")),
        "rgb": (rng.integers(0, 255, (16, 16, 3)), dict(modality="XC", bits_stored=8, bits_allocated=8,
                                                      photometric="RGB")),
    }
    for name, (arr, kw) in bases.items():
        src = fx.make(os.path.join(tmp, name + ".dcm"), arr, **kw)
        for syn in ["explicit", "implicit", "deflate", "rle", "jpeg-lossless", "jpeg-ls", "j2k"]:
            dst = os.path.join(tmp, f"{name}_{syn}.dcm")
            try:
                fx.transcode(src, dst, syn)
            except Exception:  # noqa: BLE001 - gdcmconv cannot encode some tiny images (J2K)
                continue
            with open(dst, "rb") as f, open(os.path.join(OUT, f"{name}_{syn}"), "wb") as o:
                o.write(bytes([0, 128]) + f.read())
    print(f"{len(os.listdir(OUT))} seeds in {OUT}")


if __name__ == "__main__":
    main()
