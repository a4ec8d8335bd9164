"""DICOM files for image/dicom's tests, generated with pydicom (uncompressed,
deflated) and transcoded with GDCM's gdcmconv (Debian libgdcm-tools) into the
compressed transfer syntaxes. Every file carries a recognizable PatientName
(PATIENT_NAME) so tests can assert it never leaks.

Reference arrays come from pydicom (+ pylibjpeg, pylibjpeg-libjpeg,
pylibjpeg-openjpeg for compressed syntaxes): an independent decoder."""
import os
import shutil
import subprocess

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_windowing
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

PATIENT_NAME = "Zzyzx^Quillonpatient"
PATIENT_ID = "PID-8675309-SECRET"

CT_DEFAULT = ((-1024.0, 1024.0), (-135.0, 215.0), (0.0, 80.0))

# gdcmconv flags per compressed transfer syntax (lossless unless marked)
TRANSCODE = {
    "implicit": ["-M"],
    "deflate": ["-d"],
    "rle": ["-R"],
    "jpeg-lossless": ["-J"],
    "jpeg-ls": ["-L"],
    "j2k": ["-K"],
    "jpeg-baseline": ["-J", "-Y", "-q", "95"],  # lossy, 8-bit only
    "j2k-lossy": ["-K", "--irreversible", "-q", "30"],  # lossy
}
LOSSY = {"jpeg-baseline", "j2k-lossy"}


def make(path, arr, modality="CT", signed=False, bits_stored=16, bits_allocated=16, photometric="MONOCHROME2",
         slope=None, intercept=None, series_uid=None, position=None, orientation=(1, 0, 0, 0, 1, 0),
         instance=None, ts=ExplicitVRLittleEndian, planar=0, **tags):
    """Writes a DICOM file: arr is (rows, cols), (frames, rows, cols) or (..., 3) colour."""
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = CTImageStorage
    fm.MediaStorageSOPInstanceUID = generate_uid()
    fm.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPClassUID = fm.MediaStorageSOPClassUID
    ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19010101"
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyInstanceUID = generate_uid()
    color = arr.ndim >= 3 and arr.shape[-1] == 3
    frames = arr.shape[0] if arr.ndim == (4 if color else 3) else 1
    rows, cols = (arr.shape[-3], arr.shape[-2]) if color else arr.shape[-2:]
    ds.Rows, ds.Columns = rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric
    if color:
        ds.PlanarConfiguration = planar
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
    if position is not None:
        ds.ImagePositionPatient = list(position)
        ds.ImageOrientationPatient = list(orientation)
    if instance is not None:
        ds.InstanceNumber = instance
    for k, v in tags.items():
        setattr(ds, k, v)
    if bits_allocated == 16:
        dt = np.int16 if signed else np.uint16
    else:
        dt = np.int8 if signed else np.uint8
    data = arr.astype(dt)
    if color and planar == 1:
        data = np.moveaxis(data, -1, -3) if frames == 1 else np.moveaxis(data, -1, 1)
    ds.PixelData = data.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def transcode(src, dst, syntax):
    """gdcmconv src -> dst in the named transfer syntax (TRANSCODE)."""
    if syntax == "explicit":
        shutil.copy(src, dst)
        return dst
    subprocess.run(["gdcmconv", "--quiet", *TRANSCODE[syntax], src, dst], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return dst


def stored_with_bits(rng, shape, bits, signed):
    if signed:
        return rng.integers(-(1 << (bits - 1)), (1 << (bits - 1)), shape)
    return rng.integers(0, 1 << bits, shape)


# ---- reference semantics (docs/images.md), computed from pydicom's arrays ----

def ref_physical(ds):
    arr = ds.pixel_array
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        return apply_modality_lut(arr, ds).astype(np.float64)
    return arr.astype(np.float64)


def window8(hu, lo, hi):
    lo32, hi32 = np.float32(lo), np.float32(hi)
    v = np.clip(hu, lo, hi).astype(np.float32)
    v -= lo32
    v /= hi32 - lo32
    v *= np.float32(255)
    return np.round(v).astype(np.uint8)


def padding_mask(ds, arr):
    if "PixelPaddingValue" not in ds:
        return np.zeros(arr.shape, bool)
    p = int(ds.PixelPaddingValue)
    if "PixelPaddingRangeLimit" in ds:
        q = int(ds.PixelPaddingRangeLimit)
        lo, hi = min(p, q), max(p, q)
        return (arr >= lo) & (arr <= hi)
    return arr == p


def ref_ct_rgb(ds, windows=CT_DEFAULT):
    hu = ref_physical(ds)
    rgb = np.stack([window8(hu, lo, hi) for lo, hi in windows], axis=-1)
    rgb[padding_mask(ds, ds.pixel_array)] = 0
    return rgb


def ref_gray_rgb(ds, index=0):
    v = ref_physical(ds)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        w = apply_windowing(v.copy(), ds, index)
        bits = int(ds.BitsStored)
        if int(ds.PixelRepresentation) == 0:
            y_min, y_max = 0.0, float(2**bits - 1)
        else:
            y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
        if "RescaleSlope" in ds and "RescaleIntercept" in ds:
            y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        lo, hi = y_min, y_max
    else:
        w = v
        frames = w.reshape(-1, int(ds.Rows) * int(ds.Columns))
        lo = frames.min(axis=1).reshape((-1,) + (1,) * (w.ndim - 1)) if w.ndim == 3 else w.min()
        hi = frames.max(axis=1).reshape((-1,) + (1,) * (w.ndim - 1)) if w.ndim == 3 else w.max()
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(hi > lo, np.rint((w - lo) / np.where(hi > lo, hi - lo, 1) * 255.0), 0.0)
    b = np.clip(s, 0, 255).astype(np.uint8)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        b = 255 - b
    return np.repeat(b[..., None], 3, axis=-1)


def ref_mr_rgb(datasets):
    """MR: min-max over all (sampled) slices, float32 as ct_window.c's mri_*."""
    vols = [ref_physical(ds) for ds in datasets]
    vmin = np.float32(min(v.min() for v in vols))
    vmax = np.float32(max(v.max() for v in vols))
    out = []
    for v in vols:
        f = np.clip(v.astype(np.float32), vmin, vmax)
        f -= vmin
        f /= vmax - vmin
        f *= np.float32(255)
        g = np.rint(f).astype(np.uint8) if vmax > vmin else np.zeros(v.shape, np.uint8)
        out.append(np.repeat(g[..., None], 3, axis=-1))
    return out


def ref_color_rgb(ds):
    return ds.pixel_array  # pydicom converts YBR to RGB by default


def read(path):
    return pydicom.dcmread(path)


def tool(*args):
    """Runs build/dicom-tool; returns (rc, stdout, stderr)."""
    build = os.environ.get("BUILD", "build")
    r = subprocess.run([os.path.join(build, "dicom-tool"), *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr
