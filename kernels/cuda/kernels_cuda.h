/* The CUDA versions of the op set (kernels/kernels.h), as C-callable launchers.
 *
 * Owns: the GPU math. kernels/cuda/<op>.cu holds the kernels of the ops whose
 * CPU twin is kernels/cpu/<op>.c; tests/gpu/gpu_tests.c checks each launcher
 * against its twin. The bf16 GEMMs for more than one row go through cuBLASLt
 * (engine/cuda/gemm.h), not through these launchers.
 *
 * Conventions (differences from kernels.h):
 *  - every pointer is device memory; activations are bf16 (like transformers
 *    in bf16), each kernel computes in fp32 and rounds once when it stores.
 *    Logits are fp32 (sampling stays on the host: engine/sampler.c);
 *  - "ld" is a row stride in elements, so an op can read its part of a fused
 *    projection output (q|k|v or gate|up side by side in one row);
 *  - positions come from device memory (d_pos) where the decode step reads
 *    them, so one captured CUDA graph replays unchanged every token;
 *  - each launcher enqueues on `stream` and returns cudaGetLastError()
 *    (cudaSuccess = 0); it never synchronizes. */
#ifndef KERNELS_CUDA_KERNELS_CUDA_H
#define KERNELS_CUDA_KERNELS_CUDA_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "util/bf16.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- embedding.cu */

/* out[t, :] = bf16(table[ids[t], :] * scale)             ids on the device */
cudaError_t cuda_embedding_lookup(bf16 *out, const bf16 *table, const int32_t *ids, int n_tokens, int dim,
                                  float scale, cudaStream_t stream);

/* ---- rmsnorm.cu (Gemma: w stored as scale - 1) */

/* out = rmsnorm(x) * (1 + w); in place ok                 x, out [T, dim] */
cudaError_t cuda_rmsnorm(bf16 *out, const bf16 *x, const bf16 *w, int n_rows, int dim, float eps,
                         cudaStream_t stream);
/* x += bf16(rmsnorm(h) * (1 + w))                          (post-attn / post-ff) */
cudaError_t cuda_rmsnorm_residual(bf16 *x, const bf16 *h, const bf16 *w, int n_rows, int dim, float eps,
                                  cudaStream_t stream);
/* Fused end of a sub-layer: x += bf16(rmsnorm(h) * (1 + w_post)); out = rmsnorm(x) * (1 + w_next). */
cudaError_t cuda_rmsnorm_residual_norm(bf16 *x, bf16 *out, const bf16 *h, const bf16 *w_post,
                                       const bf16 *w_next, int n_rows, int dim, float eps,
                                       cudaStream_t stream);

/* ---- rope.cu */

/* The decoder's fused step after the q, k, v projections: rows t of q (H heads), k and v
 * (KVH heads each; row strides ld_q, ld_k, ld_v). q and k heads get norm + RoPE in place
 * (q_norm, k_norm); the roped k and the v rows of positions p = pos0 + t are also stored
 * into the caches [slots, KVH * head_dim] at slot p % ring (ring > 0; rows older than
 * the last `ring` skipped) or p. Math as kernels.h qk_norm_rope, in one launch. */
cudaError_t cuda_qkv_rope_store(bf16 *q, int ld_q, bf16 *k, int ld_k, const bf16 *v, int ld_v,
                                const bf16 *q_norm, const bf16 *k_norm, int n_tokens, int n_heads,
                                int n_kv_heads, int head_dim, const int32_t *d_pos0, float theta,
                                float rope_scale, float eps, bf16 *k_cache, bf16 *v_cache, int ring,
                                cudaStream_t stream);

/* ---- attention.cu */

/* Prefill attention (flash attention on tensor cores, mma.sync bf16, sm_80+).
 * Math and mask as kernels.h attention_prefill; head h of q row t is
 * q[t * ld_q + h * head_dim], of k/v row j is k[j * ld_kv + kvh * head_dim].
 * out [T, H * head_dim]. image_block [T] on the device or NULL. head_dim <= 256. */
cudaError_t cuda_attention_prefill(bf16 *out, const bf16 *q, int ld_q, const bf16 *k, const bf16 *v,
                                   int ld_kv, const int32_t *image_block, int n_tokens, int n_heads,
                                   int n_kv_heads, int head_dim, int causal, int window, float scale,
                                   cudaStream_t stream);

/* Attention of n_rows queries at positions pos0 + t (pos0 = *d_pos0) over a KV cache of
 * `capacity` slots read by position (slot = p % capacity): row t sees keys [lo, hi], hi its
 * position extended to the end of its image run within the batch (image_block [n_rows] on
 * the device, or NULL), lo = max(0, position - window + 1 when window > 0, hi - capacity + 1).
 * Math and mask as attention_prefill over the whole sequence (kernels.h attention_cached is
 * the twin); the batch's own k, v must be in the cache already (cuda_qkv_rope_store). Split
 * over the keys like the decode (n_splits blocks per row and KV head, then a merge); scratch
 * holds scratch_units (row, split) partials (cuda_attention_decode_scratch_floats of
 * scratch_units), so rows go scratch_units / n_splits per launch. out [n_rows, ld_out]. */
cudaError_t cuda_attention_cached(bf16 *out, int ld_out, const bf16 *q, int ld_q, const bf16 *k_cache,
                                  const bf16 *v_cache, int capacity, const int32_t *d_pos0,
                                  const int32_t *image_block, int n_rows, int window, int n_heads,
                                  int n_kv_heads, int head_dim, float scale, float *scratch,
                                  int scratch_units, int n_splits, cudaStream_t stream);

/* Floats of scratch cuda_attention_cached needs for n_splits (row, split) partials. */
size_t cuda_attention_decode_scratch_floats(int n_heads, int head_dim, int n_splits);

/* ---- gelu.cu */

/* out[t, i] = bf16(bf16(gelu_tanh(gate[t, i])) * up[t, i])   rows of width values at stride ld;
 * out may alias gate */
cudaError_t cuda_gelu_tanh_gate(bf16 *out, const bf16 *gate, const bf16 *up, int ld, int n_rows, int width,
                                cudaStream_t stream);
/* x = gelu_tanh(x), in place */
cudaError_t cuda_gelu_tanh(bf16 *x, long long n, cudaStream_t stream);

/* ---- matmul.cu: batch-1 GEMV (cuBLASLt is slow at one row) */

/* y[o] = sum_i x[i] * w[o, i] (+ bias[o])   w [out, in]. Fast path (16-byte loads) when
 * in_dim % 8 == 0 and x, w are 16-byte aligned; a scalar kernel otherwise. */
cudaError_t cuda_gemv(bf16 *y, const bf16 *x, const bf16 *w, const bf16 *bias, int in_dim, int out_dim,
                      cudaStream_t stream);
/* The same with fp32 output (the logits). */
cudaError_t cuda_gemv_f32(float *y, const bf16 *x, const bf16 *w, int in_dim, int out_dim,
                          cudaStream_t stream);

/* ---- residual.cu */

/* x[i] = bf16(x[i] + y[i]) */
cudaError_t cuda_residual_add(bf16 *x, const bf16 *y, long long n, cudaStream_t stream);

/* ---- layernorm.cu (SigLIP) */

/* out = (x - mean) / sqrt(var + eps) * w + b (biased variance); in place ok */
cudaError_t cuda_layernorm(bf16 *out, const bf16 *x, const bf16 *w, const bf16 *b, int n_rows, int dim,
                           float eps, cudaStream_t stream);

/* ---- patch_embed.cu (SigLIP): the conv as im2col + GEMM */

/* patches[p, c * P * P + ky * P + kx] = bf16(pixels[c, row * P + ky, col * P + kx]), p = row * G + col,
 * columns k_pad > C * P * P zero-filled.  pixels fp32 [C, S, S]; patches [G * G, k_pad]. */
cudaError_t cuda_patch_im2col(bf16 *patches, const float *pixels, int image_size, int patch, int channels,
                              int k_pad, cudaStream_t stream);

/* ---- avgpool.cu (projector) */

/* out[(r / k) * (G / k) + c / k, :] = mean of the k x k rows of the window  x [G * G, dim] */
cudaError_t cuda_avgpool_grid(bf16 *out, const bf16 *x, int grid, int k, int dim, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
