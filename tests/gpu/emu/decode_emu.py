# Port of decode_split_kernel + decode_merge_kernel (kernels/cuda/attention.cu) with the
# same split/warp/lane index math, vs naive attention over the first n_keys slots.
import numpy as np
def run(slots, pos, ring, H, KVH, Dh, n_splits, rng):
    G = H // KVH; kvd = KVH * Dh; scale = 1 / 16
    q = rng.uniform(-4, 4, H * Dh).astype(np.float32)
    kc = rng.uniform(-2, 2, slots * kvd).astype(np.float32); vc = rng.uniform(-1, 1, slots * kvd).astype(np.float32)
    n_keys = pos + 1
    if ring > 0 and n_keys > ring: n_keys = ring
    chunk = (n_keys + n_splits - 1) // n_splits
    scratch = np.zeros((n_splits, H, Dh + 2))
    sl2 = scale * 1.4426950408889634
    for split in range(n_splits):
        for kvh in range(KVH):
            start = split * chunk; end = min(start + chunk, n_keys)
            wm = np.full((4, G), -np.inf); wl = np.zeros((4, G)); wacc = np.zeros((4, G, 256))
            for warp in range(4):
                qf = [np.array([q[(kvh * G + gi) * Dh + lane * 8 + i] if lane * 8 < Dh else 0 for lane in range(32) for i in range(8)]) * sl2 for gi in range(G)]
                m = [-np.inf] * G; l = [0.0] * G; acc = [np.zeros(256) for _ in range(G)]
                s = start + warp
                while s < end:
                    off = s * kvd + kvh * Dh
                    kf = np.array([kc[off + lane * 8 + i] if lane * 8 < Dh else 0 for lane in range(32) for i in range(8)])
                    vf = np.array([vc[off + lane * 8 + i] if lane * 8 < Dh else 0 for lane in range(32) for i in range(8)])
                    for gi in range(G):
                        d = float(qf[gi] @ kf); mn = max(m[gi], d)
                        c = 2 ** (m[gi] - mn) if m[gi] != -np.inf else 0.0; p = 2 ** (d - mn)
                        l[gi] = l[gi] * c + p; acc[gi] = acc[gi] * c + p * vf; m[gi] = mn
                    s += 4
                for gi in range(G): wm[warp, gi] = m[gi]; wl[warp, gi] = l[gi]; wacc[warp, gi] = acc[gi]
            for gi in range(G):
                mm = wm[:, gi].max()
                for d in range(Dh + 2):
                    if d == Dh: val = mm
                    else:
                        val = 0.0
                        for w in range(4):
                            f = 0.0 if wm[w, gi] == -np.inf else 2 ** (wm[w, gi] - mm)
                            val += f * (wacc[w, gi, d] if d < Dh else wl[w, gi])
                    scratch[split, kvh * G + gi, d] = val
    out = np.zeros(H * Dh)
    for h in range(H):
        mm = scratch[:, h, Dh].max(); l = 0.0; a = np.zeros(Dh)
        for s in range(n_splits):
            ms = scratch[s, h, Dh]
            if ms != -np.inf: l += 2 ** (ms - mm) * scratch[s, h, Dh + 1]; a += 2 ** (ms - mm) * scratch[s, h, :Dh]
        out[h * Dh:(h + 1) * Dh] = a / l
    ref = np.zeros(H * Dh)
    for h in range(H):
        kvh = h // G
        K = kc.reshape(slots, kvd)[:n_keys, kvh * Dh:(kvh + 1) * Dh]; V = vc.reshape(slots, kvd)[:n_keys, kvh * Dh:(kvh + 1) * Dh]
        sc = K @ q[h * Dh:(h + 1) * Dh] * scale; p = np.exp(sc - sc.max()); p /= p.sum(); ref[h * Dh:(h + 1) * Dh] = p @ V
    return np.linalg.norm(out - ref) / np.linalg.norm(ref)
rng = np.random.default_rng(0)
for args in ((64, 36, 0, 4, 1, 24, 5), (300, 250, 0, 8, 1, 64, 7), (16, 40, 16, 2, 2, 16, 3), (200, 0, 0, 4, 2, 32, 64), (128, 127, 0, 2, 1, 256, 8)):
    print(args, "rel err %.2e" % run(*args, rng))
