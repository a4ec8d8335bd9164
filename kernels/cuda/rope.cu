/* Q/K head norm + rotate-half RoPE, fused. Twin: kernels/cpu/rope.c.
 * Math, per head of head_dim values at position p = pos0 + t:
 *   y = bf16(rmsnorm(x) * (1 + w))                       (fp32, rounded like q_norm's output)
 *   inv_i = 1 / theta^(2i / Dh) / rope_scale,  a = p * inv_i   (fp32, as transformers)
 *   x'[i] = y[i] cos a - y[i + Dh/2] sin a,   x'[i + Dh/2] = y[i + Dh/2] cos a + y[i] sin a
 * One block of 128 threads per (token, head); a thread owns pairs (i, i + Dh/2). */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

__global__ void qk_norm_rope_kernel(bf16_t *x, int ld, const bf16_t *norm_w, int n_heads, int head_dim,
                                    const int32_t *d_pos0, float theta, float rope_scale, float eps) {
    __shared__ float scratch[33];
    int t = blockIdx.x / n_heads, head = blockIdx.x % n_heads;
    bf16_t *v = x + (size_t)t * ld + (size_t)head * head_dim;
    int half = head_dim / 2;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < head_dim; i += blockDim.x) {
        float f = to_f32(v[i]);
        ss += f * f;
    }
    ss = block_sum(ss, scratch); /* also orders every read above before the writes below */
    float r = rsqrtf(ss / (float)head_dim + eps);
    float pos = (float)((d_pos0 ? *d_pos0 : 0) + t);
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float y0 = to_f32(to_bf16(to_f32(v[i]) * r * (1.0f + to_f32(norm_w[i]))));
        float y1 = to_f32(to_bf16(to_f32(v[i + half]) * r * (1.0f + to_f32(norm_w[i + half]))));
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim) / rope_scale;
        float s, c;
        sincosf(pos * inv, &s, &c);
        v[i] = to_bf16(y0 * c - y1 * s);
        v[i + half] = to_bf16(y1 * c + y0 * s);
    }
}

// ---- launchers

extern "C" cudaError_t cuda_qk_norm_rope(bf16 *x, int ld, const bf16 *norm_w, int n_tokens, int n_heads,
                                         int head_dim, const int32_t *d_pos0, float theta, float rope_scale,
                                         float eps, cudaStream_t stream) {
    if (n_tokens <= 0 || n_heads <= 0)
        return cudaSuccess;
    if (head_dim <= 0 || head_dim % 2)
        return cudaErrorInvalidValue;
    qk_norm_rope_kernel<<<n_tokens * n_heads, 128, 0, stream>>>(
        (bf16_t *)x, ld, (const bf16_t *)norm_w, n_heads, head_dim, d_pos0, theta, rope_scale, eps);
    return cudaGetLastError();
}
