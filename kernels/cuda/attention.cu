/* Attention: prefill (flash attention on tensor cores), single-token decode
 * (flash-decoding split over the KV sequence); the KV-cache store is rope.cu's fused step.
 * Twin: kernels/cpu/attention.c (attention_prefill, attention_decode).
 *
 * Math: o[t, h] = sum_j softmax_j(q[t, h] . k[j, kvh] * scale + mask(t, j)) v[j, kvh],
 * kvh = h / (H / KVH). Mask as transformers builds it (tests/golden/README.md), with
 * same(t, j) = ib[t] >= 0 AND ib[t] == ib[j] (soft tokens of one image):
 *   allowed = !causal OR ((j <= t OR same(t, j)) AND (window <= 0 OR j > t - window)).
 * (kernels.h's "base OR same" differs only when an image block is longer than the
 * window: never for MedGemma, 256 < 1024.)
 * Softmax in fp32 (exp2 of log2e-scaled scores, running max and sum). The
 * prefill rounds the probabilities to bf16 for the tensor-core P.V product (as
 * transformers does); decode keeps them in fp32. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

#include <climits>

#define LOG2E 1.4426950408889634f

// ---- kernels: prefill

/* mma_bf16_16816 (one tensor-core MMA) is in common.cuh. */

__device__ __forceinline__ uint32_t lds32(const bf16_t *p) {
    return *reinterpret_cast<const uint32_t *>(p);
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

#define FA_BR 64 /* query rows per block: 4 warps x 16 */
#define FA_BC 32 /* keys per tile */
#define FA_WARPS 4
#define FA_VT_STRIDE (FA_BC + 8) /* padded so B-fragment reads of V^T hit 32 distinct banks */

/* Shared memory of one block, in bf16 elements: Q [BR][DP+8], K [BC][DP+8], V^T [DP][BC+8]. */
template <int DP> struct FlashSmem {
    static constexpr int q_stride = DP + 8, k_stride = DP + 8;
    static constexpr int q_elems = FA_BR * q_stride, k_elems = FA_BC * k_stride, vt_elems = DP * FA_VT_STRIDE;
    static constexpr size_t bytes =
        (size_t)(q_elems + k_elems + vt_elems) * sizeof(bf16_t) + FA_BC * sizeof(int);
};

__device__ __forceinline__ bool attn_allowed(int t, int j, int ib_t, int ib_j, int causal, int window) {
    if (!causal)
        return true;
    return (j <= t || (ib_t >= 0 && ib_t == ib_j)) && (window <= 0 || j > t - window);
}

/* Grid (ceil(T / 64), H), 128 threads. Warp w owns query rows q0 + 16w .. +15 of head h.
 * DP is head_dim rounded up to a multiple of 16; columns head_dim..DP-1 are zero in smem. */
template <int DP>
__global__ void __launch_bounds__(FA_WARPS * 32)
    flash_prefill_kernel(bf16_t *out, const bf16_t *q, int ld_q, const bf16_t *k, const bf16_t *v, int ld_kv,
                         const int32_t *image_block, int T, int n_heads, int n_kv_heads, int head_dim,
                         int causal, int window, float scale) {
    using S = FlashSmem<DP>;
    CUDA_DYNAMIC_SMEM(unsigned char, fa_smem);
    bf16_t *Qs = reinterpret_cast<bf16_t *>(fa_smem);
    bf16_t *Ks = Qs + S::q_elems;
    bf16_t *Vt = Ks + S::k_elems;
    int *kib = reinterpret_cast<int *>(Vt + S::vt_elems); /* image_block of the tile's keys */
    __shared__ int k_range[2];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
    const int q0 = blockIdx.x * FA_BR, h = blockIdx.y;
    const int kvh = h / (n_heads / n_kv_heads);
    const int chunks = head_dim / 8; /* 16-byte chunks per head row */
    const bf16_t *qh = q + (size_t)h * head_dim;
    const bf16_t *kh = k + (size_t)kvh * head_dim;
    const bf16_t *vh = v + (size_t)kvh * head_dim;

    /* The key range this block needs: the union of its rows' allowed ranges. */
    if (tid == 0) {
        k_range[0] = INT_MAX;
        k_range[1] = 0;
    }
    __syncthreads();
    if (tid < FA_BR && q0 + tid < T) {
        int t = q0 + tid;
        int lo = 0, hi = T;
        if (causal) {
            hi = t + 1;
            if (image_block && image_block[t] >= 0) { /* an image's soft tokens are contiguous */
                int b = image_block[t], e = t + 1;
                while (e < T && image_block[e] == b)
                    e++;
                hi = e;
            }
            if (window > 0)
                lo = max(0, t - window + 1);
        }
        atomicMin(&k_range[0], lo);
        atomicMax(&k_range[1], hi);
    }

    /* Q tile -> smem (zero rows past T and columns past head_dim). */
    for (int c = tid; c < FA_BR * (DP / 8); c += blockDim.x) {
        int r = c / (DP / 8), cc = c % (DP / 8);
        uint4 val = make_uint4(0, 0, 0, 0);
        if (q0 + r < T && cc < chunks)
            val = *reinterpret_cast<const uint4 *>(qh + (size_t)(q0 + r) * ld_q + cc * 8);
        *reinterpret_cast<uint4 *>(Qs + r * S::q_stride + cc * 8) = val;
    }
    __syncthreads();
    const int k_begin = (k_range[0] / FA_BC) * FA_BC, k_end = k_range[1];

    /* This thread's two query rows (g and g + 8 of the warp's 16). */
    const int t_row0 = q0 + warp * 16 + g, t_row1 = t_row0 + 8;
    const int ib_row0 = (image_block && t_row0 < T) ? image_block[t_row0] : -1;
    const int ib_row1 = (image_block && t_row1 < T) ? image_block[t_row1] : -1;
    const float scale_log2 = scale * LOG2E;

    float o_acc[DP / 8][4];
#pragma unroll
    for (int j = 0; j < DP / 8; j++)
        o_acc[j][0] = o_acc[j][1] = o_acc[j][2] = o_acc[j][3] = 0.0f;
    float m_row[2] = {-INFINITY, -INFINITY}, l_row[2] = {0.0f, 0.0f};

    const bf16_t *qs_w = Qs + (warp * 16) * S::q_stride;
    for (int kt = k_begin; kt < k_end; kt += FA_BC) {
        __syncthreads(); /* previous tile fully consumed */
        for (int c = tid; c < FA_BC * (DP / 8); c += blockDim.x) {
            int r = c / (DP / 8), cc = c % (DP / 8);
            uint4 val = make_uint4(0, 0, 0, 0);
            if (kt + r < T && cc < chunks)
                val = *reinterpret_cast<const uint4 *>(kh + (size_t)(kt + r) * ld_kv + cc * 8);
            *reinterpret_cast<uint4 *>(Ks + r * S::k_stride + cc * 8) = val;
        }
        /* V transposed: consecutive threads take consecutive keys of one 8-dim chunk. */
        for (int c = tid; c < FA_BC * (DP / 8); c += blockDim.x) {
            int r = c % FA_BC, cc = c / FA_BC;
            uint4 val = make_uint4(0, 0, 0, 0);
            if (kt + r < T && cc < chunks)
                val = *reinterpret_cast<const uint4 *>(vh + (size_t)(kt + r) * ld_kv + cc * 8);
            const bf16_t *e = reinterpret_cast<const bf16_t *>(&val);
#pragma unroll
            for (int i = 0; i < 8; i++)
                Vt[(cc * 8 + i) * FA_VT_STRIDE + r] = e[i];
        }
        if (tid < FA_BC)
            kib[tid] = (image_block && kt + tid < T) ? image_block[kt + tid] : -1;
        __syncthreads();

        /* S = Q K^T for this warp's 16 rows x 32 keys (4 n-tiles of 8 keys). */
        float s_acc[FA_BC / 8][4];
#pragma unroll
        for (int j = 0; j < FA_BC / 8; j++)
            s_acc[j][0] = s_acc[j][1] = s_acc[j][2] = s_acc[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < DP / 16; kk++) {
            const bf16_t *qa = qs_w + kk * 16 + 2 * tq;
            uint32_t a0 = lds32(qa + g * S::q_stride), a1 = lds32(qa + (g + 8) * S::q_stride);
            uint32_t a2 = lds32(qa + g * S::q_stride + 8), a3 = lds32(qa + (g + 8) * S::q_stride + 8);
#pragma unroll
            for (int j = 0; j < FA_BC / 8; j++) {
                const bf16_t *kb = Ks + (j * 8 + g) * S::k_stride + kk * 16 + 2 * tq;
                mma_bf16_16816(s_acc[j], a0, a1, a2, a3, lds32(kb), lds32(kb + 8));
            }
        }

        /* Mask, scale (log2 domain), online softmax per row. */
        float m_tile[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int j = 0; j < FA_BC / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int kl = j * 8 + 2 * tq + (e & 1);
                int key = kt + kl;
                int r = e >> 1;
                int t = r ? t_row1 : t_row0;
                bool ok = key < T && attn_allowed(t, key, r ? ib_row1 : ib_row0, kib[kl], causal, window);
                float sv = ok ? s_acc[j][e] * scale_log2 : -INFINITY;
                s_acc[j][e] = sv;
                m_tile[r] = fmaxf(m_tile[r], sv);
            }
        }
        float corr[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            m_tile[r] = fmaxf(m_tile[r], __shfl_xor_sync(0xffffffffu, m_tile[r], 1));
            m_tile[r] = fmaxf(m_tile[r], __shfl_xor_sync(0xffffffffu, m_tile[r], 2));
            float m_new = fmaxf(m_row[r], m_tile[r]);
            float m_use = m_new == -INFINITY ? 0.0f : m_new; /* a row with nothing allowed yet */
            corr[r] = exp2f(m_row[r] - m_use);
            m_row[r] = m_new;
            l_row[r] *= corr[r];
            m_tile[r] = m_use;
        }
#pragma unroll
        for (int j = 0; j < FA_BC / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2f(s_acc[j][e] - m_tile[e >> 1]);
                s_acc[j][e] = p;
                l_row[e >> 1] += p; /* this thread's share; the quad is summed at the end */
            }
        }
#pragma unroll
        for (int j = 0; j < DP / 8; j++) {
            o_acc[j][0] *= corr[0];
            o_acc[j][1] *= corr[0];
            o_acc[j][2] *= corr[1];
            o_acc[j][3] *= corr[1];
        }

        /* O += P V: P's accumulator layout is the A-fragment layout of 16 keys. */
#pragma unroll
        for (int kk = 0; kk < FA_BC / 16; kk++) {
            uint32_t a0 = pack_bf16x2(s_acc[2 * kk][0], s_acc[2 * kk][1]);
            uint32_t a1 = pack_bf16x2(s_acc[2 * kk][2], s_acc[2 * kk][3]);
            uint32_t a2 = pack_bf16x2(s_acc[2 * kk + 1][0], s_acc[2 * kk + 1][1]);
            uint32_t a3 = pack_bf16x2(s_acc[2 * kk + 1][2], s_acc[2 * kk + 1][3]);
#pragma unroll
            for (int j = 0; j < DP / 8; j++) {
                const bf16_t *vb = Vt + (j * 8 + g) * FA_VT_STRIDE + kk * 16 + 2 * tq;
                mma_bf16_16816(o_acc[j], a0, a1, a2, a3, lds32(vb), lds32(vb + 8));
            }
        }
    }

    /* Normalize and store this thread's two rows. */
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l_row[r] += __shfl_xor_sync(0xffffffffu, l_row[r], 1);
        l_row[r] += __shfl_xor_sync(0xffffffffu, l_row[r], 2);
    }
    const int out_ld = n_heads * head_dim;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int t = r ? t_row1 : t_row0;
        if (t >= T)
            continue;
        float inv = l_row[r] > 0.0f ? 1.0f / l_row[r] : 0.0f;
        bf16_t *dst = out + (size_t)t * out_ld + (size_t)h * head_dim;
#pragma unroll
        for (int j = 0; j < DP / 8; j++) {
            int d = j * 8 + 2 * tq;
            if (d < head_dim)
                *reinterpret_cast<__nv_bfloat162 *>(dst + d) =
                    __floats2bfloat162_rn(o_acc[j][2 * r] * inv, o_acc[j][2 * r + 1] * inv);
        }
    }
}

template <int DP>
static cudaError_t launch_flash_prefill(bf16_t *out, const bf16_t *q, int ld_q, const bf16_t *k,
                                        const bf16_t *v, int ld_kv, const int32_t *image_block, int T,
                                        int n_heads, int n_kv_heads, int head_dim, int causal, int window,
                                        float scale, cudaStream_t stream) {
    size_t smem = FlashSmem<DP>::bytes;
    static bool attr_set = false; /* once per instantiation (host-side, not a stream op) */
    if (!attr_set && smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(flash_prefill_kernel<DP>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess)
            return e;
        attr_set = true;
    }
    dim3 grid(ceil_div_u(T, FA_BR), n_heads);
    CUDA_LAUNCH(flash_prefill_kernel<DP>, grid, FA_WARPS * 32, smem, stream, out, q, ld_q, k, v, ld_kv,
                image_block, T, n_heads, n_kv_heads, head_dim, causal, window, scale);
    return cudaGetLastError();
}

// ---- kernels: attention over the KV cache (decode, and a prompt continuing a cached prefix)

#define DEC_WARPS 4

/* The key positions [*lo, *hi] of query row t (position pos0 + t) over a cache of `capacity`
 * slots: up to the row's position, extended to the end of its image run within the batch
 * (image_block [n_rows] or NULL), from max(0, position - window + 1 when window > 0,
 * hi - capacity + 1) (the ring holds the last `capacity` positions). */
__device__ __forceinline__ void cached_key_range(int pos0, int t, const int32_t *image_block, int n_rows,
                                                 int window, int capacity, int *lo, int *hi) {
    int end = t;
    if (image_block && image_block[t] >= 0)
        while (end + 1 < n_rows && image_block[end + 1] == image_block[t])
            end++;
    int a = pos0 + t;
    *hi = pos0 + end;
    *lo = window > 0 && a - window + 1 > 0 ? a - window + 1 : 0;
    if (*hi - capacity + 1 > *lo)
        *lo = *hi - capacity + 1;
}

/* Grid (n_splits, KVH, rows of this launch), 128 threads. The block reduces its split of
 * the keys of query row t = r0 + blockIdx.z for the G query heads sharing KV head kvh:
 * warp w takes every 4th key (U of them per step, loads first), lane l holds dims
 * 8l..8l+7 (16-byte loads). Key j of the row's range is position lo + j, in slot
 * (lo + j) % capacity, or slot j when the range fills the cache (the same keys in slot
 * order). Writes per (row, split, head) the unnormalized accumulator, the running max and
 * the sum: scratch[((z * n_splits + split) * H + h) * (head_dim + 2) + {0..head_dim-1,
 * head_dim (m), head_dim+1 (l)}]. */
template <int G>
__global__ void __launch_bounds__(DEC_WARPS * 32)
    cached_split_kernel(float *scratch, const bf16_t *q, int ld_q, const bf16_t *k_cache,
                        const bf16_t *v_cache, int capacity, const int32_t *d_pos0,
                        const int32_t *image_block, int n_rows, int r0, int window, int n_heads,
                        int n_kv_heads, int head_dim, float scale) {
    __shared__ float sm_m[DEC_WARPS][G], sm_l[DEC_WARPS][G];
    __shared__ float sm_acc[DEC_WARPS][G][256];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int split = blockIdx.x, n_splits = gridDim.x, kvh = blockIdx.y, t = r0 + (int)blockIdx.z;
    int lo, hi;
    cached_key_range(*d_pos0, t, image_block, n_rows, window, capacity, &lo, &hi);
    const int n_keys = hi - lo + 1, first_slot = n_keys == capacity ? 0 : lo % capacity;
    const int chunk = (n_keys + n_splits - 1) / n_splits;
    const int start = split * chunk, end = min(start + chunk, n_keys);
    const int kv_dim = n_kv_heads * head_dim;
    const bool active = lane * 8 < head_dim;
    const float scale_log2 = scale * LOG2E;
    const bf16_t *qrow = q + (size_t)t * ld_q;

    float qf[G][8], acc[G][8], m[G], l[G];
#pragma unroll
    for (int gi = 0; gi < G; gi++) {
        int h = kvh * G + gi;
        uint4 raw = active ? *reinterpret_cast<const uint4 *>(qrow + (size_t)h * head_dim + lane * 8)
                           : make_uint4(0, 0, 0, 0);
        bf16x8_to_f32(*reinterpret_cast<const bf16x8 *>(&raw), qf[gi]);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            qf[gi][i] *= scale_log2;
            acc[gi][i] = 0.0f;
        }
        m[gi] = -INFINITY;
        l[gi] = 0.0f;
    }

    /* U keys per warp per step: their K and V loads are issued together (memory-level
     * parallelism), then folded into the running softmax one by one. */
    constexpr int U = G >= 8 ? 2 : 4;
    for (int j0 = start + warp; j0 < end; j0 += DEC_WARPS * U) {
        uint4 kr[U], vr[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int j = j0 + u * DEC_WARPS;
            kr[u] = vr[u] = make_uint4(0, 0, 0, 0);
            if (active && j < end) {
                size_t slot = (size_t)((first_slot + j) % capacity);
                size_t off = slot * kv_dim + (size_t)kvh * head_dim + lane * 8;
                kr[u] = *reinterpret_cast<const uint4 *>(k_cache + off);
                vr[u] = *reinterpret_cast<const uint4 *>(v_cache + off);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (j0 + u * DEC_WARPS >= end) /* the same for the whole warp */
                break;
            float kf[8], vf[8];
            bf16x8_to_f32(*reinterpret_cast<const bf16x8 *>(&kr[u]), kf);
            bf16x8_to_f32(*reinterpret_cast<const bf16x8 *>(&vr[u]), vf);
#pragma unroll
            for (int gi = 0; gi < G; gi++) {
                float d = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    d = fmaf(qf[gi][i], kf[i], d);
                d = warp_sum(d);
                float m_new = fmaxf(m[gi], d);
                float c = exp2f(m[gi] - m_new);
                float p = exp2f(d - m_new);
                l[gi] = l[gi] * c + p;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    acc[gi][i] = acc[gi][i] * c + p * vf[i];
                m[gi] = m_new;
            }
        }
    }

    /* Merge the 4 warps. */
#pragma unroll
    for (int gi = 0; gi < G; gi++) {
        if (lane == 0) {
            sm_m[warp][gi] = m[gi];
            sm_l[warp][gi] = l[gi];
        }
        if (active)
#pragma unroll
            for (int i = 0; i < 8; i++)
                sm_acc[warp][gi][lane * 8 + i] = acc[gi][i];
    }
    __syncthreads();
    float *row_scratch = scratch + (size_t)blockIdx.z * n_splits * n_heads * (head_dim + 2);
    for (int idx = threadIdx.x; idx < G * (head_dim + 2); idx += blockDim.x) {
        int gi = idx / (head_dim + 2), d = idx % (head_dim + 2);
        float mm = -INFINITY;
        for (int w = 0; w < DEC_WARPS; w++)
            mm = fmaxf(mm, sm_m[w][gi]);
        float val = 0.0f;
        if (d == head_dim) {
            val = mm;
        } else {
            for (int w = 0; w < DEC_WARPS; w++) {
                float f = sm_m[w][gi] == -INFINITY ? 0.0f : exp2f(sm_m[w][gi] - mm);
                val += f * (d < head_dim ? sm_acc[w][gi][d] : sm_l[w][gi]);
            }
        }
        int h = kvh * G + gi;
        row_scratch[((size_t)split * n_heads + h) * (head_dim + 2) + d] = val;
    }
}

/* Grid (H, rows of this launch), 256 threads: out[r0 + z, h, d] = sum_s f_s acc_s[d] / sum_s f_s l_s,
 * f_s = 2^(m_s - max m). */
__global__ void cached_merge_kernel(bf16_t *out, int ld_out, const float *scratch, int n_splits, int r0,
                                    int n_heads, int head_dim) {
    int h = blockIdx.x;
    const size_t stride = (size_t)n_heads * (head_dim + 2);
    const float *base = scratch + (size_t)blockIdx.y * n_splits * stride + (size_t)h * (head_dim + 2);
    float mm = -INFINITY;
    for (int s = 0; s < n_splits; s++)
        mm = fmaxf(mm, base[s * stride + head_dim]);
    float l = 0.0f;
    for (int s = 0; s < n_splits; s++) {
        float ms = base[s * stride + head_dim];
        if (ms != -INFINITY)
            l += exp2f(ms - mm) * base[s * stride + head_dim + 1];
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    bf16_t *o = out + (size_t)(r0 + (int)blockIdx.y) * ld_out + (size_t)h * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < n_splits; s++) {
            float ms = base[s * stride + head_dim];
            if (ms != -INFINITY)
                a += exp2f(ms - mm) * base[s * stride + d];
        }
        o[d] = to_bf16(a * inv);
    }
}

// ---- launchers

extern "C" cudaError_t cuda_attention_prefill(bf16 *out, const bf16 *q, int ld_q, const bf16 *k,
                                              const bf16 *v, int ld_kv, const int32_t *image_block,
                                              int n_tokens, int n_heads, int n_kv_heads, int head_dim,
                                              int causal, int window, float scale, cudaStream_t stream) {
    if (n_tokens <= 0)
        return cudaSuccess;
    if (n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads || head_dim <= 0 || head_dim % 8 ||
        head_dim > 256 || ld_q % 8 || ld_kv % 8 || ((uintptr_t)q & 15) || ((uintptr_t)k & 15) ||
        ((uintptr_t)v & 15))
        return cudaErrorInvalidValue;
    bf16_t *o = (bf16_t *)out;
    const bf16_t *qq = (const bf16_t *)q, *kk = (const bf16_t *)k, *vv = (const bf16_t *)v;
#define FA_CASE(DP)                                                                                          \
    return launch_flash_prefill<DP>(o, qq, ld_q, kk, vv, ld_kv, image_block, n_tokens, n_heads, n_kv_heads,  \
                                    head_dim, causal, window, scale, stream)
    if (head_dim <= 32)
        FA_CASE(32);
    if (head_dim <= 64)
        FA_CASE(64);
    if (head_dim <= 80)
        FA_CASE(80);
    if (head_dim <= 128)
        FA_CASE(128);
    FA_CASE(256);
#undef FA_CASE
}

extern "C" size_t cuda_attention_decode_scratch_floats(int n_heads, int head_dim, int n_splits) {
    return (size_t)n_splits * n_heads * (head_dim + 2);
}

extern "C" cudaError_t cuda_attention_cached(bf16 *out, int ld_out, const bf16 *q, int ld_q,
                                             const bf16 *k_cache, const bf16 *v_cache, int capacity,
                                             const int32_t *d_pos0, const int32_t *image_block, int n_rows,
                                             int window, int n_heads, int n_kv_heads, int head_dim,
                                             float scale, float *scratch, int scratch_units, int n_splits,
                                             cudaStream_t stream) {
    if (n_rows <= 0)
        return cudaSuccess;
    if (n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads || head_dim <= 0 || head_dim % 8 ||
        head_dim > 256 || n_splits <= 0 || n_splits > 65535 || n_splits > scratch_units || capacity <= 0 ||
        !d_pos0 || !scratch || ld_q % 8 || ((uintptr_t)q & 15) || ((uintptr_t)k_cache & 15) ||
        ((uintptr_t)v_cache & 15))
        return cudaErrorInvalidValue;
    const int group = n_heads / n_kv_heads, rows_per_launch = min(scratch_units / n_splits, 65535);
    const bf16_t *qq = (const bf16_t *)q, *kc = (const bf16_t *)k_cache, *vc = (const bf16_t *)v_cache;
    for (int r0 = 0; r0 < n_rows; r0 += rows_per_launch) {
        int rows = min(rows_per_launch, n_rows - r0);
        dim3 grid(n_splits, n_kv_heads, rows);
#define CACHED_CASE(G)                                                                                       \
    case G:                                                                                                  \
        CUDA_LAUNCH(cached_split_kernel<G>, grid, DEC_WARPS * 32, 0, stream, scratch, qq, ld_q, kc, vc,      \
                    capacity, d_pos0, image_block, n_rows, r0, window, n_heads, n_kv_heads, head_dim,        \
                    scale);                                                                                  \
        break
        switch (group) {
            CACHED_CASE(1);
            CACHED_CASE(2);
            CACHED_CASE(4);
            CACHED_CASE(8);
        default:
            return cudaErrorInvalidValue;
        }
#undef CACHED_CASE
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess)
            return e;
        CUDA_LAUNCH(cached_merge_kernel, dim3(n_heads, rows), 256, 0, stream, (bf16_t *)out, ld_out, scratch,
                    n_splits, r0, n_heads, head_dim);
        e = cudaGetLastError();
        if (e != cudaSuccess)
            return e;
    }
    return cudaSuccess;
}
