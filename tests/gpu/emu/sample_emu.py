# Sequential port of sample_kernel's algorithm (kernels/cuda/sampling.cu) vs a port of
# the CPU twin's sample_logits, on bf16-rounded logits with many ties.
import numpy as np, math
def bf(x):
    x = np.asarray(x, dtype=np.float32); u = x.view(np.uint32).astype(np.uint64)
    u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000
    return u.astype(np.uint32).view(np.float32)
def okey(f):
    u = np.float32(f).view(np.uint32).item()
    if f != f: return 0
    return (~u) & 0xffffffff if u & 0x80000000 else u | 0x80000000
def fbits(f): return np.float32(f).view(np.uint32).item()

def cpu(logits, temp, top_k, top_p, coin):
    x = logits.astype(np.float32).copy(); n = len(x)
    if temp <= 0 or n == 1: return int(np.argmax(x))
    x = (x / np.float32(temp)).astype(np.float32)
    idx = list(range(n)); m = n
    if 0 < top_k < n:
        order = sorted(range(n), key=lambda i: (-x[i], i)); idx = order[:top_k]; m = top_k
        idx = sorted(idx)  # GPU walks by index; CPU quickselect order differs (only used with top_p here)
    mx = max(x[i] for i in idx)
    e = {i: np.float32(math.exp(np.float32(x[i] - mx))) for i in idx}
    s = sum(float(e[i]) for i in idx)
    p = {i: np.float32(float(e[i]) / s) for i in idx}
    if 0 < top_p < 1:
        floor_p = np.float32((np.float32(1) - np.float32(top_p)) / np.float32(m))
        kept = [i for i in idx if p[i] >= floor_p]
        kept.sort(key=lambda i: (-p[i], i))
        cum = 0.0; cut = len(kept)
        for j, i in enumerate(kept):
            cum += float(p[i])
            if cum >= float(np.float32(top_p)): cut = j + 1; break
        idx = kept[:max(cut, 1)]
    total = sum(float(p[i]) for i in idx); target = coin * total; acc = 0.0
    for i in idx:
        acc += float(p[i])
        if target < acc: return i
    return idx[-1]

def gpu(logits, temp, top_k, top_p, coin):
    x = logits.astype(np.float32).copy(); n = len(x)
    if temp <= 0 or n == 1: return int(np.argmax(x))
    x = (x / np.float32(temp)).astype(np.float32); m = n
    if 0 < top_k < n:
        keys = [okey(v) for v in x]; prefix = 0; need = top_k; mask = 0
        for shift in (24, 16, 8, 0):
            cnt = [0] * 256
            for u in keys:
                if (u & mask) == prefix: cnt[(u >> shift) & 255] += 1
            for b in range(255, -1, -1):
                if cnt[b] >= need: prefix |= b << shift; break
                need -= cnt[b]
            mask |= 255 << shift
        K = prefix; r = 0; cut = -1
        for i in range(n):
            if keys[i] == K:
                r += 1
                if r == need: cut = i; break
        for i in range(n):
            if not (keys[i] > K or (keys[i] == K and i <= cut)): x[i] = -np.inf
        m = top_k
    mx = x.max(); p = np.full(n, -1.0, dtype=np.float32); s = 0.0
    for i in range(n):
        cand = m == n or x[i] != -np.inf
        if cand:
            e = np.float32(math.exp(np.float32(x[i] - mx))); p[i] = e; s += float(e)
    for i in range(n):
        if p[i] >= 0: p[i] = np.float32(float(p[i]) / s)
    def descent(goal, strict):
        prefix = 0; above = 0.0; reached = False; mask = 0
        for shift in (24, 16, 8, 0):
            cnt = [0] * 256; mass = [0.0] * 256
            for i in range(n):
                if p[i] >= 0:
                    u = fbits(p[i])
                    if (u & mask) == prefix: cnt[(u >> shift) & 255] += 1; mass[(u >> shift) & 255] += float(p[i])
            chosen = -1; lowest = -1
            for b in range(255, -1, -1):
                if cnt[b] == 0: continue
                lowest = b; mm = above + mass[b]
                if (mm > goal) if strict else (mm >= goal): chosen = b; break
                above = mm
            if chosen < 0:
                chosen = max(lowest, 0); above -= mass[chosen] if lowest >= 0 else 0
            elif shift == 0: reached = True
            prefix |= chosen << shift; mask |= 255 << shift
        V = np.uint32(prefix).view(np.float32).item(); count_eq = cnt[prefix & 255]; r = count_eq
        if reached and V > 0:
            need = (goal - above) / V; r = 1 if need < 1 else int(math.ceil(need)); r = min(r, count_eq)
            reach = (lambda v: v > goal) if strict else (lambda v: v >= goal)
            while r > 1 and reach(above + (r - 1) * V): r -= 1
            while r < count_eq and not reach(above + r * V): r += 1
        return prefix, max(r, 1)
    def nth(rank, V):
        c = 0
        for i in range(n):
            if p[i] >= 0 and fbits(p[i]) == V:
                c += 1
                if c == rank: return i
        return -1
    if 0 < top_p < 1:
        floor_p = np.float32((np.float32(1) - np.float32(top_p)) / np.float32(m))
        p[(p >= 0) & (p < floor_p)] = -1
        V, r = descent(float(np.float32(top_p)), 0); cut = nth(r, V)
        for i in range(n):
            if p[i] >= 0 and not (fbits(p[i]) > V or (fbits(p[i]) == V and i <= cut)): p[i] = -1
        total = float(sum(float(v) for v in p if v >= 0))
        V2, r2 = descent(coin * total, 1); return nth(r2, V2)
    total = sum(float(v) for v in p if v >= 0); target = coin * total; acc = 0.0; last = -1
    for i in range(n):
        if p[i] >= 0:
            last = i; acc += float(p[i])
            if target < acc: return i
    return last

rng = np.random.default_rng(3); bad = 0; tot = 0
for n, scale in ((300, 6.0), (2000, 3.0), (1000, 0.02)):
    logits = bf(rng.uniform(-scale, scale, n))
    for temp, k, tp in ((0.7, 0, 1.0), (1.0, 0, 0.9), (0.8, 40, 0.95), (2.0, 0, 0.5), (1.0, 7, 0.3), (1.0, 0, 0.999)):
        for coin in (0.0, 0.137, 0.5, 0.861, 0.9999):
            a, b = cpu(logits, temp, k, tp, coin), gpu(logits, temp, k, tp, coin); tot += 1
            if a != b: bad += 1; print("DIFF", n, temp, k, tp, coin, a, b)
print(f"{tot - bad}/{tot} identical")
