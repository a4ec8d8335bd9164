/* Attention for prefill (masked, over the prompt) and decode (one query over
 * the KV cache). Per query head h reading KV head h / (H / KVH):
 *   o = sum_j softmax_j(q . k_j * scale) v_j   over the keys the mask allows.
 * Keys are processed in chunks whose scores sit on the stack; the softmax is
 * carried across chunks (running max and sum, rescaling the partial output),
 * so nothing is allocated whatever the sequence length. */
#include <math.h>
#include <stddef.h>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

#define KEY_CHUNK 256

/* out[0..Dh) = attention of q over keys [lo, hi] (inclusive) of k/v with row stride ld. */
static void attend(float *out, const float *q, const float *k, const float *v, size_t ld, int lo, int hi,
                   int head_dim, float scale, const SimdOps *ops) {
    float scores[KEY_CHUNK];
    float m = -INFINITY, l = 0.0f;
    for (int i = 0; i < head_dim; i++)
        out[i] = 0.0f;
    for (int c0 = lo; c0 <= hi; c0 += KEY_CHUNK) {
        int n = hi - c0 + 1 < KEY_CHUNK ? hi - c0 + 1 : KEY_CHUNK;
        float cm = -INFINITY;
        for (int j = 0; j < n; j++) {
            scores[j] = ops->dot_f32(q, k + (size_t)(c0 + j) * ld, head_dim) * scale;
            if (scores[j] > cm)
                cm = scores[j];
        }
        if (cm > m) {
            if (m != -INFINITY) {
                float r = expf(m - cm);
                l *= r;
                ops->scale_f32(out, r, head_dim);
            }
            m = cm;
        }
        for (int j = 0; j < n; j++) {
            float p = expf(scores[j] - m);
            l += p;
            ops->axpy_f32(out, p, v + (size_t)(c0 + j) * ld, head_dim);
        }
    }
    ops->scale_f32(out, 1.0f / l, head_dim);
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    const int32_t *image_block;
    int n_tokens, n_heads, n_kv_heads, head_dim, causal, window;
    float scale;
} PrefillJob;

/* Items are (query t, head h) pairs, t-major. */
static void prefill_range(void *ctx, int start, int end) {
    const PrefillJob *j = ctx;
    const SimdOps *ops = simd_ops();
    size_t q_ld = (size_t)j->n_heads * j->head_dim, kv_ld = (size_t)j->n_kv_heads * j->head_dim;
    int group = j->n_heads / j->n_kv_heads;
    for (int item = start; item < end; item++) {
        int t = item / j->n_heads, h = item % j->n_heads;
        int lo = 0, hi = j->n_tokens - 1;
        if (j->causal) {
            /* keys [0, t], extended to the end of t's image run, then cut by the window */
            hi = t;
            if (j->image_block && j->image_block[t] >= 0) {
                int b = j->image_block[t];
                while (hi + 1 < j->n_tokens && j->image_block[hi + 1] == b)
                    hi++;
            }
            if (j->window > 0 && t - j->window + 1 > 0)
                lo = t - j->window + 1;
        }
        int kvh = h / group;
        attend(j->out + (size_t)t * q_ld + (size_t)h * j->head_dim,
               j->q + (size_t)t * q_ld + (size_t)h * j->head_dim, j->k + (size_t)kvh * j->head_dim,
               j->v + (size_t)kvh * j->head_dim, kv_ld, lo, hi, j->head_dim, j->scale, ops);
    }
}

void attention_prefill(float *out, const float *q, const float *k, const float *v, const int32_t *image_block,
                       int n_tokens, int n_heads, int n_kv_heads, int head_dim, int causal, int window,
                       float scale) {
    PrefillJob job = {out,     q,          k,        v,      image_block, n_tokens,
                      n_heads, n_kv_heads, head_dim, causal, window,      scale};
    parallel_for(n_tokens * n_heads, 2, prefill_range, &job);
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    int n_keys, n_heads, n_kv_heads, head_dim;
    float scale;
} DecodeJob;

static void decode_range(void *ctx, int start, int end) {
    const DecodeJob *j = ctx;
    const SimdOps *ops = simd_ops();
    size_t kv_ld = (size_t)j->n_kv_heads * j->head_dim;
    int group = j->n_heads / j->n_kv_heads;
    for (int h = start; h < end; h++) {
        int kvh = h / group;
        attend(j->out + (size_t)h * j->head_dim, j->q + (size_t)h * j->head_dim,
               j->k + (size_t)kvh * j->head_dim, j->v + (size_t)kvh * j->head_dim, kv_ld, 0, j->n_keys - 1,
               j->head_dim, j->scale, ops);
    }
}

void attention_decode(float *out, const float *q, const float *k_cache, const float *v_cache, int n_keys,
                      int n_heads, int n_kv_heads, int head_dim, float scale) {
    DecodeJob job = {out, q, k_cache, v_cache, n_keys, n_heads, n_kv_heads, head_dim, scale};
    parallel_for(n_heads, 1, decode_range, &job);
}
