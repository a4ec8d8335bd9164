/* Q/K head norm + rotate-half RoPE, fused (and, for the decoder, with the KV-cache
 * store). Twin: kernels/cpu/rope.c (the store is a copy into the slots of kernels/cpu/ops_cpu.c's
 * qk_rope_store).
 * Math, per head of head_dim values at position p = pos0 + t:
 *   y = bf16(rmsnorm(x) * (1 + w))                       (fp32, rounded like q_norm's output)
 *   inv_i = 1 / theta^(2i / Dh) / rope_scale,  a = p * inv_i   (fp32, as transformers)
 *   x'[i] = y[i] cos a - y[i + Dh/2] sin a,   x'[i + Dh/2] = y[i + Dh/2] cos a + y[i] sin a
 * One block of 128 threads per (token, head); a thread owns pairs (i, i + Dh/2). */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

/* Norm + RoPE of one head in place; when copy_to is not NULL the result is also
 * stored there (the K cache slot). Called by every thread of the block. */
__device__ __forceinline__ void norm_rope_head(bf16_t *v, const bf16_t *norm_w, int head_dim, float pos,
                                               float theta, float rope_scale, float eps, bf16_t *copy_to,
                                               float *scratch) {
    int half = head_dim / 2;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < head_dim; i += blockDim.x) {
        float f = to_f32(v[i]);
        ss += f * f;
    }
    ss = block_sum(ss, scratch); /* also orders every read above before the writes below */
    float r = rsqrtf(ss / (float)head_dim + eps);
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float y0 = to_f32(to_bf16(to_f32(v[i]) * r * (1.0f + to_f32(norm_w[i]))));
        float y1 = to_f32(to_bf16(to_f32(v[i + half]) * r * (1.0f + to_f32(norm_w[i + half]))));
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim) / rope_scale;
        float s, c;
        sincosf(pos * inv, &s, &c);
        bf16_t o0 = to_bf16(y0 * c - y1 * s), o1 = to_bf16(y1 * c + y0 * s);
        v[i] = o0;
        v[i + half] = o1;
        if (copy_to) {
            copy_to[i] = o0;
            copy_to[i + half] = o1;
        }
    }
}

/* Row t of q holds H heads, of k and v KVH heads (row strides ld_q, ld_k, ld_v). Blocks
 * per row: H q heads (norm + RoPE), KVH k heads (norm + RoPE, also stored into k_cache),
 * KVH v heads (copied into v_cache). Cache slot of position p: p % ring (ring > 0;
 * positions older than the last `ring` of this call are not stored) or p. */
__global__ void qkv_rope_store_kernel(bf16_t *q, int ld_q, bf16_t *k, int ld_k, const bf16_t *v, int ld_v,
                                      const bf16_t *q_norm, const bf16_t *k_norm, int n_tokens, int n_heads,
                                      int n_kv_heads, int head_dim, const int32_t *d_pos0, float theta,
                                      float rope_scale, float eps, bf16_t *k_cache, bf16_t *v_cache,
                                      int ring) {
    __shared__ float scratch[33];
    const int per_row = n_heads + 2 * n_kv_heads;
    const int t = blockIdx.x / per_row, head = blockIdx.x % per_row;
    const int pos0 = d_pos0 ? *d_pos0 : 0, p = pos0 + t;
    const bool store = !(ring > 0 && p <= pos0 + n_tokens - 1 - ring);
    const size_t slot = ring > 0 ? (size_t)(p % ring) : (size_t)p;
    const size_t kv_dim = (size_t)n_kv_heads * head_dim;
    if (head < n_heads) {
        norm_rope_head(q + (size_t)t * ld_q + (size_t)head * head_dim, q_norm, head_dim, (float)p, theta,
                       rope_scale, eps, nullptr, scratch);
    } else if (head < n_heads + n_kv_heads) {
        int j = head - n_heads;
        bf16_t *dst = store ? k_cache + slot * kv_dim + (size_t)j * head_dim : nullptr;
        norm_rope_head(k + (size_t)t * ld_k + (size_t)j * head_dim, k_norm, head_dim, (float)p, theta,
                       rope_scale, eps, dst, scratch);
    } else if (store) {
        int j = head - n_heads - n_kv_heads;
        const bf16_t *src = v + (size_t)t * ld_v + (size_t)j * head_dim;
        bf16_t *dst = v_cache + slot * kv_dim + (size_t)j * head_dim;
        for (int i = threadIdx.x; i < head_dim; i += blockDim.x)
            dst[i] = src[i];
    }
}

// ---- launchers

extern "C" cudaError_t cuda_qkv_rope_store(bf16 *q, int ld_q, bf16 *k, int ld_k, const bf16 *v, int ld_v,
                                           const bf16 *q_norm, const bf16 *k_norm, int n_tokens, int n_heads,
                                           int n_kv_heads, int head_dim, const int32_t *d_pos0, float theta,
                                           float rope_scale, float eps, bf16 *k_cache, bf16 *v_cache,
                                           int ring, cudaStream_t stream) {
    if (n_tokens <= 0)
        return cudaSuccess;
    if (n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || head_dim % 2 || !q || !k || !v || !k_cache ||
        !v_cache || ld_q < n_heads * head_dim || ld_k < n_kv_heads * head_dim || ld_v < n_kv_heads * head_dim)
        return cudaErrorInvalidValue;
    long long blocks = (long long)n_tokens * (n_heads + 2 * n_kv_heads);
    if (blocks > 0x7fffffffLL)
        return cudaErrorInvalidValue;
    CUDA_LAUNCH(qkv_rope_store_kernel, (unsigned)blocks, 128, 0, stream, (bf16_t *)q, ld_q, (bf16_t *)k, ld_k,
                (const bf16_t *)v, ld_v, (const bf16_t *)q_norm, (const bf16_t *)k_norm, n_tokens, n_heads,
                n_kv_heads, head_dim, d_pos0, theta, rope_scale, eps, (bf16_t *)k_cache, (bf16_t *)v_cache,
                ring);
    return cudaGetLastError();
}
