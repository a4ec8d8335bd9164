/* The op set the forward pass is written in: every op of the Gemma 3 decoder,
 * the SigLIP vision tower and the projector, as plain C functions.
 *
 * Owns: the math. kernels/cpu/<op>.c holds the CPU twin of each op (the
 * reference every GPU kernel is checked against); kernels/cuda/<op>.cu holds
 * the GPU version with the same name and the same math.
 *
 * Conventions (all ops):
 *  - activations are fp32, row-major; a "row" is one token (or one patch);
 *  - weights are bf16 (util/bf16.h), read as given: [out, in] like nn.Linear
 *    unless the name says otherwise;
 *  - accumulation is fp32; outputs may not alias inputs unless the comment
 *    says "in place"; nothing allocates, except the CPU GEMMs' scratch (AMX,
 *    bf16 and q8 activations), grown once on the first long prompt (never
 *    on the decode path);
 *  - the CPU twins split their outer loop over the kernels' thread pool
 *    (kernels_set_threads) where that pays; results do not depend on the
 *    thread count. The CPU twins pick AVX-512 / AVX2 / plain C and AMX at run
 *    time; env MEDGEMMA_SIMD=avx512|avx2|scalar and MEDGEMMA_NO_AMX=1 force a
 *    path (tests, comparisons).
 *
 * Shapes below use: T tokens (rows), D hidden size, H query heads, KVH key/value
 * heads (query head h reads KV head h / (H / KVH)), Dh head dim, V vocab. */
#ifndef KERNELS_KERNELS_H
#define KERNELS_KERNELS_H

#include <stdint.h>

#include "util/bf16.h"

/* ---- threads (CPU twins only) */

/* Sets the worker count of the CPU kernels' pool (0 = all online cores).
 * Safe to call again; the pool is created on first use. */
void kernels_set_threads(int n_threads);
int kernels_threads(void);
/* Joins the pool's threads (tests, program exit). */
void kernels_shutdown(void);

/* ---- embedding.c */

/* out[t, :] = table[ids[t], :] * scale            table [V, D], out [T, D] */
void embedding_lookup(float *out, const bf16 *table, const int32_t *ids, int n_tokens, int dim, float scale);

/* ---- rmsnorm.c (Gemma: weights stored as scale - 1, eps 1e-6) */

/* out[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * (1 + w)   x, out [T, D]; in place ok */
void rmsnorm(float *out, const float *x, const bf16 *w, int n_rows, int dim, float eps);

/* x[t, :] += h[t, :] / sqrt(mean(h[t, :]^2) + eps) * (1 + w)     (the post-attn / post-ff form) */
void rmsnorm_residual(float *x, const float *h, const bf16 *w, int n_rows, int dim, float eps);

/* ---- rope.c */

/* Per head of every row: x = rope(rmsnorm(x) * (1 + norm_w)) at position pos0 + t.
 * rmsnorm over Dh (eps), then rotate-half RoPE: for i < Dh/2, with
 * inv_freq_i = 1 / (theta ^ (2i / Dh)) / rope_scale (linear scaling) and
 * a = (pos) * inv_freq_i computed in fp32:
 *   x'[i] = x[i] cos a - x[i + Dh/2] sin a,  x'[i + Dh/2] = x[i + Dh/2] cos a + x[i] sin a.
 * x [T, n_heads * Dh], in place. norm_w [Dh], stored as scale - 1. */
void qk_norm_rope(float *x, const bf16 *norm_w, int n_tokens, int n_heads, int head_dim, int pos0,
                  float theta, float rope_scale, float eps);

/* ---- attention.c */

/* Prefill attention over T tokens at positions 0..T-1 (one sequence).
 * o[t, h] = sum_j softmax_j(q[t, h] . k[j, kvh] * scale + mask(t, j)) v[j, kvh]
 * causal (transformers 5.24's rule, tests/golden/README.md): with
 *   same(t, j) = image_block[t] >= 0 AND image_block[t] == image_block[j],
 *   allowed(t, j) = (j <= t OR same(t, j)) AND (window <= 0 OR j > t - window)
 * (the window applies after the image OR; it matters only for blocks longer than the window).
 * Each image's soft tokens must form one contiguous run of equal ids.
 * causal = 0: every key allowed (SigLIP; image_block and window ignored).
 * q, out [T, H * Dh]; k, v [T, KVH * Dh]; image_block [T] (-1 = text) or NULL. */
void attention_prefill(float *out, const float *q, const float *k, const float *v, const int32_t *image_block,
                       int n_tokens, int n_heads, int n_kv_heads, int head_dim, int causal, int window,
                       float scale);

/* Single-token decode over a KV cache: the query attends to cache slots 0..n_keys-1
 * (slot order does not matter: a local layer's ring of `window` slots, slot = pos % window,
 * holds exactly the keys its window allows; a global layer's slots are positions).
 * o[h] = sum_s softmax_s(q[h] . k_cache[s, kvh] * scale) v_cache[s, kvh]
 * q, out [H * Dh]; k_cache, v_cache [slots, KVH * Dh]. */
void attention_decode(float *out, const float *q, const float *k_cache, const float *v_cache, int n_keys,
                      int n_heads, int n_kv_heads, int head_dim, float scale);

/* The same prompt attention for T tokens at positions pos0..pos0+T-1 continuing a cached
 * sequence (prefix reuse, docs/caching.md): keys of every position (earlier ones and the
 * batch's own, already stored) are read from the cache, position p in slot p % capacity.
 * Bit for bit the rows attention_prefill gives for the same positions of the whole sequence
 * (query blocks and key chunks are aligned to positions, not to the batch). image_block [T]
 * covers the batch (rows before pos0 of an image block are cached; they see it whole already). */
void attention_cached(float *out, const float *q, const float *k_cache, const float *v_cache, int capacity,
                      const int32_t *image_block, int n_tokens, int pos0, int n_heads, int n_kv_heads,
                      int head_dim, int window, float scale);

/* One query at position pos over a ring of `capacity` slots (slot = p % capacity): keys
 * [max(0, pos - window + 1, pos - capacity + 1), pos] in position order (window 0 = all). */
void attention_decode_ring(float *out, const float *q, const float *k_cache, const float *v_cache,
                           int capacity, int pos, int window, int n_heads, int n_kv_heads, int head_dim,
                           float scale);

/* ---- gelu.c */

/* gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  */
/* out[i] = gelu_tanh(gate[i]) * up[i]       (Gemma MLP; out may alias gate or up) */
void gelu_tanh_gate(float *out, const float *gate, const float *up, int n);
/* x[i] = gelu_tanh(x[i])                     (SigLIP MLP; in place) */
void gelu_tanh(float *x, int n);

/* ---- matmul.c */

/* y[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o])   x [T, in], w [out, in], bias [out] or NULL,
 * y [T, out]. T = 1 is the decode GEMV. */
void matmul(float *y, const float *x, const bf16 *w, const bf16 *bias, int n_rows, int in_dim, int out_dim);

/* The projections of one input (q|k|v, gate|up): ys[m] = matmul(x, ws[m]) for m < n
 * (1 <= n <= MATMUL_MULTI_MAX, out_dims[m] rows each, no bias), every value as matmul computes
 * it. Decode (T < 4, exact precision) runs them as one loop of the thread pool whose
 * chunks run across the matrices: one wait for the slowest thread instead of n. */
#define MATMUL_MULTI_MAX 4
void matmul_multi(int n, float *const *ys, const float *x, const bf16 *const *ws, const int *out_dims,
                  int n_rows, int in_dim);

/* y[t, o] = sum_i x[t, i] * w[i, o]                x [T, in], w [in, out] (the projector's
 * mm_input_projection_weight layout), y [T, out]. */
void matmul_in_out(float *y, const float *x, const bf16 *w, int n_rows, int in_dim, int out_dim);

/* ---- precision of the CPU GEMMs (matmul.c, matmul_bf16.c) */

/* PRECISION_EXACT (the default): fp32 activations, products exact, fp32 sums.
 * PRECISION_BF16: matmul() rounds its activations x to bf16 (nearest even, as
 * torch's .to(bfloat16)) and multiplies with AVX512_BF16 dot products (pairs
 * of bf16 products summed in fp32): y = bf16(x) W^T, about twice the exact
 * path's prefill rate. Where the processor lacks AVX512_BF16, or for odd
 * inputs, matmul() stays exact. Process-wide, like the thread count. */
typedef enum { PRECISION_EXACT = 0, PRECISION_BF16 = 1 } KernelsPrecision;
void kernels_set_precision(KernelsPrecision precision);
KernelsPrecision kernels_precision(void);
/* 1 when PRECISION_BF16 runs its own kernels here (AVX512_BF16, not forced off by MEDGEMMA_SIMD). */
int kernels_bf16_available(void);

/* ---- matmul_q8.c: 8-bit weights (block of 32 inputs, one fp16 scale each, as Q8_0) */

/* A [rows, cols] weight matrix quantized per block of 32 inputs:
 *   d = max |w| / 127 (stored as fp16), q = round(w / d) in [-127, 127],
 * w ~ d q. Stored in panels of 32 rows, block by block (the layout the
 * kernels stream; opaque to callers). */
typedef struct {
    uint8_t *data;
    int rows, cols;
    size_t panel_bytes;
} Q8Matrix;

/* Quantizes w [rows, cols] (bf16) into m (allocates; threads split the rows).
 * cols must be a multiple of 32, at most 16384. 0, or -1 (m zeroed) on bad shape or no memory. */
int q8_quantize(Q8Matrix *m, const bf16 *w, int rows, int cols);
void q8_free(Q8Matrix *m);
/* Bytes a pass over the matrix reads (weights and scales). */
size_t q8_bytes(const Q8Matrix *m);
/* y[t, o] = sum_b dx[t, b] d[o, b] sum_{i in b} qx[t, i] q[o, i] (+ bias[o]), with the activations
 * quantized the same way per token and block (dx = max |x| / 127, fp32): Q8_0 x Q8_0 as llama.cpp.
 * Integer dot products (AVX512-VNNI; AVX2 or plain C elsewhere), fp32 sums over blocks.
 * x [T, cols], y [T, rows]. Prompts use a scratch grown on demand (like the AMX GEMM). */
void matmul_q8(float *y, const float *x, const Q8Matrix *w, const bf16 *bias, int n_rows);
/* ys[m] = matmul_q8(x, ws[m]) for m < n (1 <= n <= MATMUL_MULTI_MAX, equal cols, no bias), every
 * value as matmul_q8 computes it; decode quantizes x once and runs one loop across the matrices. */
void matmul_q8_multi(int n, float *const *ys, const float *x, const Q8Matrix *const *ws, int n_rows);

/* ---- residual.c */

/* x[i] += y[i]   (SigLIP's residual adds; in place) */
void residual_add(float *x, const float *y, int n);

/* ---- layernorm.c (SigLIP) */

/* out[t, :] = (x[t, :] - mean) / sqrt(var + eps) * w + b   (biased variance); in place ok */
void layernorm(float *out, const float *x, const bf16 *w, const bf16 *b, int n_rows, int dim, float eps);

/* ---- patch_embed.c (SigLIP) */

/* Conv 2d P x P, stride P, as a GEMM, plus bias and position embedding.
 * Patch p = row * G + col (G = image_size / P); its vector
 *   u[c * P * P + ky * P + kx] = pixels[c, row * P + ky, col * P + kx]
 * out[p, o] = sum_j u[j] * w[o, j] + bias[o] + pos_embed[p, o]
 * pixels [C, S, S] (normalized), w [hidden, C, P, P], bias [hidden], pos_embed [G * G, hidden],
 * out [G * G, hidden]. */
void patch_embed(float *out, const float *pixels, const bf16 *w, const bf16 *bias, const bf16 *pos_embed,
                 int image_size, int patch, int channels, int hidden);

/* ---- avgpool.c (projector) */

/* x is a G x G grid of rows (row r * G + c), pooled by k x k windows with stride k:
 * out[(r / k) * (G / k) + c / k, :] = mean of the k * k rows of that window.
 * x [G * G, D], out [(G / k)^2, D]; G % k == 0. */
void avgpool_grid(float *out, const float *x, int grid, int k, int dim);

/* ---- sampling.c */

/* x = softmax(x) in place (max-subtracted, fp32). */
void softmax(float *x, int n);

/* Index of the largest value (the first one on ties; NaN never wins). */
int argmax(const float *x, int n);

/* Samples one index from logits[0..n): logits / temperature, keep the top_k largest
 * (top_k <= 0: all), softmax, keep the smallest prefix by probability whose mass
 * reaches top_p (top_p >= 1: all), renormalize, pick with coin in [0, 1).
 * temperature <= 0 means greedy (argmax). logits is overwritten (scratch).
 * scratch_idx needs n ints. */
int sample_logits(float *logits, int n, float temperature, int top_k, float top_p, float coin,
                  int32_t *scratch_idx);

#endif
