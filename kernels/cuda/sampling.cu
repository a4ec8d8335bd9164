/* Softmax, argmax and the sampler on the device. Twin: kernels/cpu/sampling.c.
 * Math (as sample_logits in kernels.h): x /= temperature; keep the top_k largest
 * (ties: lower index first); p = softmax over the kept; with 0 < top_p < 1 keep
 * the tokens with p >= (1 - top_p) / m, sorted by p descending (ties: lower
 * index), and cut at the first whose cumulative mass reaches top_p; then walk
 * the kept tokens (sorted when top_p cut them, else by index) and return the
 * first whose cumulative mass exceeds coin * total.
 *
 * One block of 1024 threads does it all: no sort; "sorted by p" is found by
 * radix descent over the bits of p (8 bits per pass, a 256-bucket histogram of
 * counts or of probability mass per pass), and ties by a scan in index order.
 * Sums of mass are in double but in another order than the CPU's, so a coin
 * within ~1e-15 of a boundary may pick the neighbour. Known difference: with
 * top_k and no top_p the CPU walks its quickselect order, this walks by index. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

#define SAMPLE_THREADS 1024

// ---- kernels

/* float -> uint32 with the same order (NaN maps to 0, below everything). */
__device__ __forceinline__ uint32_t order_key(float f) {
    if (f != f)
        return 0;
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

struct SampleShared {
    unsigned cnt[256];
    double mass[256];
    double red[32];
    int seg_count[SAMPLE_THREADS];
    uint32_t prefix;
    int need, index;
    double above;
    int reached;
};

__device__ double block_sum_d(double v, SampleShared &sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0)
        sh.red[warp] = v;
    __syncthreads();
    double t = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++)
        t += sh.red[w];
    __syncthreads();
    return t;
}

/* Index of the rank-th (1-based) element i (in index order) with pred(i);
 * each thread scans a contiguous segment. Result in sh.index (-1 if none). */
template <typename Pred> __device__ void nth_in_index_order(int n, int rank, Pred pred, SampleShared &sh) {
    int seg = (n + blockDim.x - 1) / blockDim.x, lo = threadIdx.x * seg, hi = min(n, lo + seg);
    int c = 0;
    for (int i = lo; i < hi; i++)
        c += pred(i);
    sh.seg_count[threadIdx.x] = c;
    if (threadIdx.x == 0)
        sh.index = -1;
    __syncthreads();
    if (threadIdx.x == 0) { /* exclusive prefix over 1024 counts */
        int run = 0;
        for (int t = 0; t < (int)blockDim.x; t++) {
            int v = sh.seg_count[t];
            sh.seg_count[t] = run;
            run += v;
        }
    }
    __syncthreads();
    int before = sh.seg_count[threadIdx.x];
    if (before < rank && rank <= before + c) {
        int r = before;
        for (int i = lo; i < hi; i++)
            if (pred(i) && ++r == rank) {
                sh.index = i;
                break;
            }
    }
    __syncthreads();
}

/* Radix descent for the k-th largest order_key among x[i] (x[i] == -inf are
 * dropped candidates only when count_dropped is 0: here all count). Leaves the
 * key in sh.prefix and the rank among equal keys in sh.need. */
__device__ void kth_largest_key(const float *x, int n, int k, SampleShared &sh) {
    if (threadIdx.x == 0) {
        sh.prefix = 0;
        sh.need = k;
    }
    uint32_t mask = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x)
            sh.cnt[b] = 0;
        __syncthreads();
        uint32_t prefix = sh.prefix;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            uint32_t u = order_key(x[i]);
            if ((u & mask) == prefix)
                atomicAdd(&sh.cnt[(u >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int need = sh.need;
            for (int b = 255; b >= 0; b--) {
                if ((int)sh.cnt[b] >= need) {
                    sh.prefix = prefix | ((uint32_t)b << shift);
                    break;
                }
                need -= (int)sh.cnt[b];
            }
            sh.need = need;
        }
        mask |= 255u << shift;
        __syncthreads();
    }
}

/* Radix descent over candidates p[i] >= 0 (p < 0: not a candidate), sorted by p
 * descending, ties by index: finds the value V and count r so that the prefix
 * "all p > V, then the first r with p == V" is the shortest whose mass reaches
 * goal (>= when strict == 0, > when strict == 1). If no prefix does (rounding),
 * the whole candidate set. Leaves V in sh.prefix (bits), r in sh.need, the mass
 * above V in sh.above. */
__device__ void mass_descent(const float *p, int n, double goal, int strict, SampleShared &sh) {
    if (threadIdx.x == 0) {
        sh.prefix = 0;
        sh.above = 0;
        sh.reached = 0;
    }
    uint32_t mask = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) {
            sh.cnt[b] = 0;
            sh.mass[b] = 0;
        }
        __syncthreads();
        uint32_t prefix = sh.prefix;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float v = p[i];
            if (!(v >= 0.0f))
                continue;
            uint32_t u = __float_as_uint(v);
            if ((u & mask) == prefix) {
                atomicAdd(&sh.cnt[(u >> shift) & 255u], 1u);
                atomicAdd(&sh.mass[(u >> shift) & 255u], (double)v);
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            double above = sh.above;
            int chosen = -1, lowest = -1;
            for (int b = 255; b >= 0; b--) {
                if (sh.cnt[b] == 0)
                    continue;
                lowest = b;
                double m = above + sh.mass[b];
                if (strict ? m > goal : m >= goal) {
                    chosen = b;
                    break;
                }
                above = m;
            }
            if (chosen < 0) { /* not reached: take everything, i.e. end at the lowest bucket */
                chosen = lowest < 0 ? 0 : lowest;
                above -= lowest < 0 ? 0 : sh.mass[chosen];
            } else if (shift == 0) {
                sh.reached = 1;
            }
            sh.above = above;
            sh.prefix = prefix | ((uint32_t)chosen << shift);
        }
        mask |= 255u << shift;
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float V = __uint_as_float(sh.prefix);
        int count_eq = (int)sh.cnt[sh.prefix & 255u];
        int r = count_eq;
        if (sh.reached && V > 0.0f) {
            double need = (goal - sh.above) / (double)V;
            r = need < 1.0 ? 1 : (int)ceil(need);
            if (r > count_eq)
                r = count_eq;
            while (r > 1 &&
                   (strict ? sh.above + (r - 1) * (double)V > goal : sh.above + (r - 1) * (double)V >= goal))
                r--;
            while (r < count_eq &&
                   !(strict ? sh.above + r * (double)V > goal : sh.above + r * (double)V >= goal))
                r++;
        }
        sh.need = r < 1 ? 1 : r;
    }
    __syncthreads();
}

/* (1024, 1): one block per SM may use 64 registers a thread; without the 1, ptxas
 * gave sm_90 32 and spilled (tests/gpu/test_ptxas_resources.sh). */
__global__ void __launch_bounds__(SAMPLE_THREADS, 1)
    sample_kernel(int32_t *out, float *x, int n, float temperature, int top_k, float top_p, float coin,
                  int greedy) {
    __shared__ SampleShared sh;
    /* greedy: the first index of the largest value, NaN never wins */
    if (greedy) {
        float best = 0;
        int best_i = -1, best_nan = 1;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float v = x[i];
            int is_nan = v != v;
            if (best_i < 0 || (best_nan && !is_nan) || (!is_nan && v > best)) {
                best = v, best_i = i, best_nan = is_nan;
            }
        }
        /* reduce (nan flag, value, index) over the block through shared memory */
        __shared__ float bv[SAMPLE_THREADS];
        __shared__ int bi[SAMPLE_THREADS], bn[SAMPLE_THREADS];
        bv[threadIdx.x] = best, bi[threadIdx.x] = best_i, bn[threadIdx.x] = best_i < 0 ? 2 : best_nan;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if ((int)threadIdx.x < s) {
                int a = threadIdx.x, b = threadIdx.x + s;
                bool take = false;
                if (bn[b] < bn[a])
                    take = true;
                else if (bn[b] == bn[a] && bn[a] == 0)
                    take = bv[b] > bv[a] || (bv[b] == bv[a] && bi[b] < bi[a]);
                else if (bn[b] == bn[a])
                    take = bi[b] < bi[a];
                if (take)
                    bv[a] = bv[b], bi[a] = bi[b], bn[a] = bn[b];
            }
            __syncthreads();
        }
        if (threadIdx.x == 0)
            *out = bi[0] < 0 ? 0 : bi[0];
        return;
    }
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        x[i] = x[i] / temperature;
    __syncthreads();
    int m = n;
    if (top_k > 0 && top_k < n) { /* candidates: key > K, or key == K among the first `need` by index */
        kth_largest_key(x, n, top_k, sh);
        uint32_t K = sh.prefix;
        int need = sh.need;
        nth_in_index_order(
            n, need, [&](int i) { return order_key(x[i]) == K; }, sh);
        int cut = sh.index;
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            uint32_t u = order_key(x[i]);
            if (!(u > K || (u == K && i <= cut)))
                x[i] = -INFINITY; /* dropped: p becomes -1 below */
        }
        m = top_k;
        __syncthreads();
    }
    /* softmax over the candidates (x > -inf, or every token when top_k is off) */
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        mx = fmaxf(mx, x[i]);
    __shared__ float red_f[33];
    mx = block_max(mx, red_f);
    double s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        bool cand = m == n || x[i] != -INFINITY;
        float e = cand ? expf(x[i] - mx) : 0.0f;
        x[i] = cand ? e : -1.0f;
        s += e;
    }
    double sum = block_sum_d(s, sh);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (x[i] >= 0.0f)
            x[i] = (float)(x[i] / sum);
    __syncthreads();

    if (top_p < 1.0f && top_p > 0.0f) {
        float floor_p = (1.0f - top_p) / (float)m;
        for (int i = threadIdx.x; i < n; i += blockDim.x)
            if (x[i] >= 0.0f && x[i] < floor_p)
                x[i] = -1.0f;
        __syncthreads();
        mass_descent(x, n, (double)top_p, 0, sh);
        uint32_t V = sh.prefix;
        int r = sh.need;
        nth_in_index_order(
            n, r, [&](int i) { return x[i] >= 0.0f && __float_as_uint(x[i]) == V; }, sh);
        int cut = sh.index;
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float v = x[i];
            if (v >= 0.0f && !(__float_as_uint(v) > V || (__float_as_uint(v) == V && i <= cut)))
                x[i] = -1.0f;
        }
        __syncthreads();
        /* the kept set, sorted by p: total, then the token where the mass passes coin * total */
        double tot = 0;
        for (int i = threadIdx.x; i < n; i += blockDim.x)
            if (x[i] >= 0.0f)
                tot += x[i];
        double total = block_sum_d(tot, sh);
        mass_descent(x, n, (double)coin * total, 1, sh);
        uint32_t V2 = sh.prefix;
        nth_in_index_order(
            n, sh.need, [&](int i) { return x[i] >= 0.0f && __float_as_uint(x[i]) == V2; }, sh);
        if (threadIdx.x == 0)
            *out = sh.index < 0 ? 0 : sh.index;
        return;
    }
    /* no top_p: walk the candidates by index */
    double tot = 0;
    int seg = (n + blockDim.x - 1) / blockDim.x, lo = threadIdx.x * seg, hi = min(n, lo + seg);
    for (int i = lo; i < hi; i++)
        if (x[i] >= 0.0f)
            tot += x[i];
    double total = block_sum_d(tot, sh);
    double target = (double)coin * total;
    /* exclusive prefix of the segment masses (thread 0 over 1024 values, in double) */
    __shared__ double seg_mass[SAMPLE_THREADS];
    seg_mass[threadIdx.x] = tot;
    if (threadIdx.x == 0)
        sh.index = -1;
    __syncthreads();
    if (threadIdx.x == 0) {
        double run = 0;
        int last = -1;
        for (int t = 0; t < (int)blockDim.x; t++) {
            double v = seg_mass[t];
            seg_mass[t] = run;
            run += v;
        }
        for (int i = n - 1; i >= 0 && last < 0; i--) /* fallback: the last candidate */
            if (x[i] >= 0.0f)
                last = i;
        sh.index = last;
    }
    __syncthreads();
    double acc = seg_mass[threadIdx.x];
    int found = -1;
    if (acc <= target)
        for (int i = lo; i < hi; i++)
            if (x[i] >= 0.0f) {
                acc += x[i];
                if (target < acc) {
                    found = i;
                    break;
                }
            }
    __syncthreads();
    /* the first segment that crossed wins: the lowest thread with found >= 0 */
    sh.seg_count[threadIdx.x] = found;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int t = 0; t < (int)blockDim.x; t++)
            if (sh.seg_count[t] >= 0) {
                sh.index = sh.seg_count[t];
                break;
            }
        *out = sh.index < 0 ? 0 : sh.index;
    }
}

__global__ void __launch_bounds__(SAMPLE_THREADS) softmax_kernel(float *x, int n) {
    __shared__ float red[33];
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        mx = fmaxf(mx, x[i]);
    mx = block_max(mx, red);
    float s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float e = expf(x[i] - mx);
        x[i] = e;
        s += e;
    }
    float inv = 1.0f / block_sum(s, red);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        x[i] *= inv;
}

// ---- launchers

extern "C" cudaError_t cuda_softmax(float *x, int n, cudaStream_t stream) {
    if (n <= 0)
        return cudaSuccess;
    CUDA_LAUNCH(softmax_kernel, 1, SAMPLE_THREADS, 0, stream, x, n);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_argmax(int32_t *out, const float *x, int n, cudaStream_t stream) {
    if (n <= 0)
        return cudaErrorInvalidValue;
    CUDA_LAUNCH(sample_kernel, 1, SAMPLE_THREADS, 0, stream, out, (float *)x, n, 0.0f, 0, 1.0f, 0.0f, 1);
    return cudaGetLastError();
}

extern "C" size_t cuda_sample_scratch_bytes(int n) {
    (void)n;
    return 0; /* everything lives in shared memory and in the logits themselves */
}

extern "C" cudaError_t cuda_sample_logits(int32_t *out, float *logits, int n, float temperature, int top_k,
                                          float top_p, float coin, void *scratch, cudaStream_t stream) {
    (void)scratch;
    if (n <= 0)
        return cudaErrorInvalidValue;
    int greedy = temperature <= 0.0f || n == 1;
    CUDA_LAUNCH(sample_kernel, 1, SAMPLE_THREADS, 0, stream, out, logits, n, temperature, top_k, top_p, coin,
                greedy);
    return cudaGetLastError();
}
