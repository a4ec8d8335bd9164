"""A small PNG encoder for tests: every color type and bit depth, Adam7
interlacing, all five row filters and tRNS. Pillow cannot write 2/4-bit gray,
16-bit color or interlaced PNGs, so the parity test writes its own (and checks
that Pillow reads back exactly the samples written)."""

import struct
import zlib

import numpy as np

# color type -> samples per pixel
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}

ADAM7 = [  # (x0, y0, dx, dy)
    (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
    (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2),
]


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _pack_rows(samples, depth):
    """samples: [h, w*ch] unsigned ints -> list of packed row bytes."""
    if depth == 16:
        return [row.astype(">u2").tobytes() for row in samples]
    if depth == 8:
        return [row.astype(np.uint8).tobytes() for row in samples]
    per_byte = 8 // depth
    rows = []
    for row in samples:
        pad = (-len(row)) % per_byte
        r = np.concatenate([row, np.zeros(pad, row.dtype)]).astype(np.uint8).reshape(-1, per_byte)
        shifts = np.arange(per_byte - 1, -1, -1) * depth
        rows.append((r << shifts).sum(axis=1).astype(np.uint8).tobytes())
    return rows


def _filter_rows(rows, bpp, rng):
    """Applies a random filter type to each row (PNG spec section 9)."""
    out = bytearray()
    prior = np.zeros(len(rows[0]) if rows else 0, np.int32)
    for row_bytes in rows:
        raw = np.frombuffer(row_bytes, np.uint8).astype(np.int32)
        left = np.zeros_like(raw)
        left[bpp:] = raw[:-bpp]
        upleft = np.zeros_like(prior)
        upleft[bpp:] = prior[:-bpp]
        ftype = int(rng.integers(0, 5))
        if ftype == 0:
            f = raw
        elif ftype == 1:
            f = raw - left
        elif ftype == 2:
            f = raw - prior
        elif ftype == 3:
            f = raw - (left + prior) // 2
        else:
            p = left + prior - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prior), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, upleft))
            f = raw - pred
        out.append(ftype)
        out += (f & 0xFF).astype(np.uint8).tobytes()
        prior = raw
    return bytes(out)


def encode_png(samples, color_type, depth, palette=None, trns=None, interlace=False, text=None, seed=0):
    """samples: [h, w, ch] (ch from CHANNELS) of unsigned ints fitting depth.
    palette: [n, 3] uint8 for color type 3; trns: bytes of the tRNS payload.
    text: dict of tEXt chunks (keyword -> value)."""
    rng = np.random.default_rng(seed)
    h, w = samples.shape[:2]
    ch = CHANNELS[color_type]
    bpp = max(1, ch * depth // 8)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    data = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        rows = _pack_rows(sub.reshape(sub.shape[0], -1), depth)
        data += _filter_rows(rows, bpp, rng)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    for key, value in (text or {}).items():
        png += _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    if palette is not None:
        png += _chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        png += _chunk(b"tRNS", trns)
    png += _chunk(b"IDAT", zlib.compress(data, 1)) + _chunk(b"IEND", b"")
    return png
