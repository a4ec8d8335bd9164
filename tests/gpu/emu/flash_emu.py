# Lane-level emulation of flash_prefill_kernel (kernels/cuda/attention.cu): same index
# expressions, mma.sync m16n8k16 emulated from the PTX fragment tables. Checks the
# kernel's internal index math against naive attention.
import numpy as np
def bf(x):  # round to bf16 (RNE) as float32
    x = np.asarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000
    return u.astype(np.uint32).view(np.float32)

FA_BR, FA_BC, VT = 64, 32, 40
lanes = np.arange(32); G = lanes >> 2; TQ = lanes & 3

def mma(c, a, b):
    # a: 4 regs x 32 lanes x 2 elems ; b: 2 regs x 32 x 2 ; c: 4 x 32 (float)
    A = np.zeros((16, 16)); B = np.zeros((16, 8))
    for l in range(32):
        g, t = l >> 2, l & 3
        A[g, 2*t:2*t+2] = a[0][l]; A[g+8, 2*t:2*t+2] = a[1][l]
        A[g, 2*t+8:2*t+10] = a[2][l]; A[g+8, 2*t+8:2*t+10] = a[3][l]
        B[2*t:2*t+2, g] = b[0][l]; B[2*t+8:2*t+10, g] = b[1][l]
    C = A @ B
    out = [c[i].copy() for i in range(4)]
    for l in range(32):
        g, t = l >> 2, l & 3
        out[0][l] += C[g, 2*t]; out[1][l] += C[g, 2*t+1]
        out[2][l] += C[g+8, 2*t]; out[3][l] += C[g+8, 2*t+1]
    return out

def lds32(mem, idx):  # idx per lane -> (32,2)
    return np.stack([mem[idx], mem[idx+1]], axis=1)

def allowed(t, j, ibt, ibj, causal, window):
    if not causal: return True
    return (j <= t or (ibt >= 0 and ibt == ibj)) and (window <= 0 or j > t - window)

def flash(q, k, v, ib, T, H, KVH, Dh, causal, window, scale, ld_q, ld_kv):
    DP = ((Dh + 15) // 16) * 16
    DP = 32 if Dh <= 32 else 64 if Dh <= 64 else 80 if Dh <= 80 else 128 if Dh <= 128 else 256
    qs_stride = ks_stride = DP + 8
    out = np.full((T, H * Dh), np.nan, dtype=np.float32)
    chunks = Dh // 8
    for bx in range((T + 63) // 64):
        for h in range(H):
            q0 = bx * 64; kvh = h // (H // KVH)
            lo_all, hi_all = 1 << 30, 0
            for tid in range(64):
                t = q0 + tid
                if t >= T: continue
                lo, hi = 0, T
                if causal:
                    hi = t + 1
                    if ib is not None and ib[t] >= 0:
                        e = t + 1
                        while e < T and ib[e] == ib[t]: e += 1
                        hi = e
                    if window > 0: lo = max(0, t - window + 1)
                lo_all = min(lo_all, lo); hi_all = max(hi_all, hi)
            Qs = np.zeros(FA_BR * qs_stride, dtype=np.float32)
            for c in range(FA_BR * (DP // 8)):
                r, cc = c // (DP // 8), c % (DP // 8)
                if q0 + r < T and cc < chunks:
                    base = (q0 + r) * ld_q + h * Dh + cc * 8
                    Qs[r * qs_stride + cc * 8: r * qs_stride + cc * 8 + 8] = q[base:base + 8]
            k_begin = (lo_all // FA_BC) * FA_BC; k_end = hi_all
            for warp in range(4):
                t0 = q0 + warp * 16 + G; t1 = t0 + 8
                ib0 = np.array([ib[t] if (ib is not None and t < T) else -1 for t in t0])
                ib1 = np.array([ib[t] if (ib is not None and t < T) else -1 for t in t1])
                o = [[np.zeros(32) for _ in range(4)] for _ in range(DP // 8)]
                m = [np.full(32, -np.inf), np.full(32, -np.inf)]; l = [np.zeros(32), np.zeros(32)]
                qbase = warp * 16 * qs_stride
                for kt in range(k_begin, k_end, FA_BC):
                    Ks = np.zeros(FA_BC * ks_stride, dtype=np.float32)
                    Vt = np.zeros(DP * VT, dtype=np.float32)
                    for c in range(FA_BC * (DP // 8)):
                        r, cc = c // (DP // 8), c % (DP // 8)
                        if kt + r < T and cc < chunks:
                            base = (kt + r) * ld_kv + kvh * Dh + cc * 8
                            Ks[r * ks_stride + cc * 8: r * ks_stride + cc * 8 + 8] = k[base:base + 8]
                    for c in range(FA_BC * (DP // 8)):
                        r, cc = c % FA_BC, c // FA_BC
                        if kt + r < T and cc < chunks:
                            base = (kt + r) * ld_kv + kvh * Dh + cc * 8
                            for i in range(8): Vt[(cc * 8 + i) * VT + r] = v[base + i]
                    kib = [ib[kt + i] if (ib is not None and kt + i < T) else -1 for i in range(FA_BC)]
                    s = [[np.zeros(32) for _ in range(4)] for _ in range(FA_BC // 8)]
                    for kk in range(DP // 16):
                        qa = qbase + kk * 16 + 2 * TQ
                        a = [lds32(Qs, qa + G * qs_stride), lds32(Qs, qa + (G + 8) * qs_stride),
                             lds32(Qs, qa + G * qs_stride + 8), lds32(Qs, qa + (G + 8) * qs_stride + 8)]
                        for j in range(FA_BC // 8):
                            kb = (j * 8 + G) * ks_stride + kk * 16 + 2 * TQ
                            s[j] = mma(s[j], a, [lds32(Ks, kb), lds32(Ks, kb + 8)])
                    mt = [np.full(32, -np.inf), np.full(32, -np.inf)]
                    sl2 = scale * 1.4426950408889634
                    for j in range(FA_BC // 8):
                        for e in range(4):
                            kl = j * 8 + 2 * TQ + (e & 1); key = kt + kl; r = e >> 1
                            tt = t1 if r else t0; ibt = ib1 if r else ib0
                            ok = np.array([key[L] < T and allowed(tt[L], key[L], ibt[L], kib[kl[L]], causal, window) for L in range(32)])
                            sv = np.where(ok, s[j][e] * sl2, -np.inf)
                            s[j][e] = sv; mt[r] = np.maximum(mt[r], sv)
                    corr = [None, None]
                    for r in range(2):
                        x = mt[r]; x = np.maximum(x, x[lanes ^ 1]); x = np.maximum(x, x[lanes ^ 2]); mt[r] = x
                        mnew = np.maximum(m[r], mt[r]); muse = np.where(mnew == -np.inf, 0.0, mnew)
                        with np.errstate(invalid='ignore'):
                            corr[r] = np.exp2(m[r] - muse)
                        m[r] = mnew; l[r] = l[r] * corr[r]; mt[r] = muse
                    for j in range(FA_BC // 8):
                        for e in range(4):
                            p = np.exp2(s[j][e] - mt[e >> 1]); s[j][e] = p; l[e >> 1] = l[e >> 1] + p
                    for j in range(DP // 8):
                        o[j][0] = o[j][0] * corr[0]; o[j][1] = o[j][1] * corr[0]
                        o[j][2] = o[j][2] * corr[1]; o[j][3] = o[j][3] * corr[1]
                    for kk in range(FA_BC // 16):
                        a = [bf(np.stack([s[2*kk][0], s[2*kk][1]], 1)), bf(np.stack([s[2*kk][2], s[2*kk][3]], 1)),
                             bf(np.stack([s[2*kk+1][0], s[2*kk+1][1]], 1)), bf(np.stack([s[2*kk+1][2], s[2*kk+1][3]], 1))]
                        for j in range(DP // 8):
                            vb = (j * 8 + G) * VT + kk * 16 + 2 * TQ
                            o[j] = mma(o[j], a, [lds32(Vt, vb), lds32(Vt, vb + 8)])
                for r in range(2):
                    x = l[r]; x = x + x[lanes ^ 1]; x = x + x[lanes ^ 2]; l[r] = x
                for r in range(2):
                    tt = t1 if r else t0
                    for L in range(32):
                        if tt[L] >= T: continue
                        inv = 1.0 / l[r][L] if l[r][L] > 0 else 0.0
                        for j in range(DP // 8):
                            d = j * 8 + 2 * TQ[L]
                            if d < Dh:
                                out[tt[L], h * Dh + d] = o[j][2 * r][L] * inv
                                out[tt[L], h * Dh + d + 1] = o[j][2 * r + 1][L] * inv
    return out

def naive(q, k, v, ib, T, H, KVH, Dh, causal, window, scale, ld_q, ld_kv):
    out = np.zeros((T, H * Dh))
    for h in range(H):
        kvh = h // (H // KVH)
        Q = np.array([q[t * ld_q + h * Dh: t * ld_q + h * Dh + Dh] for t in range(T)])
        K = np.array([k[t * ld_kv + kvh * Dh: t * ld_kv + kvh * Dh + Dh] for t in range(T)])
        V = np.array([v[t * ld_kv + kvh * Dh: t * ld_kv + kvh * Dh + Dh] for t in range(T)])
        S = Q @ K.T * scale
        for t in range(T):
            for j in range(T):
                if not allowed(t, j, ib[t] if ib is not None else -1, ib[j] if ib is not None else -1, causal, window):
                    S[t, j] = -np.inf
        S = S - S.max(1, keepdims=True); P = np.exp(S); P /= P.sum(1, keepdims=True)
        out[:, h * Dh:(h + 1) * Dh] = P @ V
    return out

rng = np.random.default_rng(1)
def case(T, H, KVH, Dh, causal, window, ib, fused):
    qd, kvd = H * Dh, KVH * Dh
    ldq = qd + 2 * kvd if fused else qd; ldkv = ldq if fused else kvd
    buf = bf(rng.uniform(-2, 2, size=T * ldq + 3 * kvd + 16))
    q = buf; k = buf[qd:] if fused else bf(rng.uniform(-2, 2, size=T * kvd)); v = buf[qd + kvd:] if fused else bf(rng.uniform(-1, 1, size=T * kvd))
    sc = 1 / np.sqrt(Dh)
    got = flash(q, k, v, ib, T, H, KVH, Dh, causal, window, sc, ldq, ldkv)
    ref = naive(q, k, v, ib, T, H, KVH, Dh, causal, window, sc, ldq, ldkv)
    err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    print(f"T={T} H={H} KVH={KVH} Dh={Dh} causal={causal} window={window} img={ib is not None} fused={fused}: rel err {err:.2e}")
    return err

ib = np.full(75, -1); ib[10:20] = 0; ib[40:47] = 1
errs = [case(75, 2, 1, 24, 1, 16, ib, False), case(70, 2, 2, 32, 1, 12, None, True), case(40, 2, 1, 72, 0, 0, None, True),
        case(33, 1, 1, 16, 1, 0, None, False)]
print("max", max(errs))
