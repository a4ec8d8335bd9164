/* Attention kernels vs a naive reference that builds the whole mask from its
 * definition (causal, sliding window, per-image bidirectional blocks, GQA),
 * and decode over a ring-buffer KV cache vs the prefill rows it must equal. */
#include <stdlib.h>

#include "kernels/kernels.h"
#include "tests/unit/kernel_ref.h"
#include "tests/unit/test.h"

static int allowed(int t, int j, const int32_t *blk, int causal, int window) {
    if (!causal)
        return 1;
    int same_image = blk && blk[t] >= 0 && blk[t] == blk[j];
    return (j <= t || same_image) && (window <= 0 || j > t - window);
}

static double *ref_attention(const float *q, const float *k, const float *v, const int32_t *blk, int T, int H,
                             int KVH, int Dh, int causal, int window, float scale) {
    double *o = calloc((size_t)T * H * Dh, sizeof *o);
    double *s = malloc((size_t)T * sizeof *s);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            int kvh = h / (H / KVH);
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < T; j++) {
                s[j] = -INFINITY;
                if (!allowed(t, j, blk, causal, window))
                    continue;
                double d = 0;
                for (int i = 0; i < Dh; i++)
                    d += (double)q[((size_t)t * H + h) * Dh + i] * k[((size_t)j * KVH + kvh) * Dh + i];
                s[j] = d * scale;
                if (s[j] > m)
                    m = s[j];
            }
            for (int j = 0; j < T; j++)
                if (s[j] != -INFINITY)
                    sum += exp(s[j] - m);
            for (int j = 0; j < T; j++) {
                if (s[j] == -INFINITY)
                    continue;
                double p = exp(s[j] - m) / sum;
                for (int i = 0; i < Dh; i++)
                    o[((size_t)t * H + h) * Dh + i] += p * v[((size_t)j * KVH + kvh) * Dh + i];
            }
        }
    free(s);
    return o;
}

static void check_prefill(int T, int H, int KVH, int Dh, int causal, int window, const int32_t *blk,
                          const char *label) {
    kernels_set_threads(2);
    float *q = ref_rand_f32((size_t)T * H * Dh, 2.0f, T + 1),
          *k = ref_rand_f32((size_t)T * KVH * Dh, 2.0f, T + 2);
    float *v = ref_rand_f32((size_t)T * KVH * Dh, 1.0f, T + 3), *o = malloc((size_t)T * H * Dh * sizeof *o);
    for (size_t i = 0; i < (size_t)T * H * Dh; i++)
        o[i] = NAN;
    float scale = 1.0f / sqrtf((float)Dh);
    attention_prefill(o, q, k, v, blk, T, H, KVH, Dh, causal, window, scale);
    double *r = ref_attention(q, k, v, blk, T, H, KVH, Dh, causal, window, scale);
    double e = ref_rel_err(o, r, (size_t)T * H * Dh);
    CHECK_MSG(e < 1e-5, "%s: rel err %g", label, e);
    free(q), free(k), free(v), free(o), free(r);
}

TEST(kernels_attention_prefill_causal_global) {
    check_prefill(37, 4, 2, 16, 1, 0, NULL, "global causal GQA");
}

TEST(kernels_attention_prefill_sliding_window) {
    check_prefill(41, 2, 1, 8, 1, 7, NULL, "window 7");
}

TEST(kernels_attention_prefill_long_rows_cross_chunks) {
    /* more keys than one stack chunk (256): the running softmax rescales */
    check_prefill(600, 1, 1, 8, 1, 0, NULL, "600 keys");
    check_prefill(600, 1, 1, 8, 1, 300, NULL, "600 keys window 300");
}

TEST(kernels_attention_prefill_image_blocks) {
    /* text, image 0 (6 soft tokens), text, image 1 (10 soft tokens, longer than the window), text */
    int32_t blk[40];
    for (int i = 0; i < 40; i++)
        blk[i] = -1;
    for (int i = 3; i < 9; i++)
        blk[i] = 0;
    for (int i = 15; i < 25; i++)
        blk[i] = 1;
    check_prefill(40, 4, 2, 16, 1, 0, blk, "images, global");
    check_prefill(40, 4, 2, 16, 1, 4, blk, "images, window 4");
}

TEST(kernels_attention_prefill_unmasked) {
    check_prefill(50, 3, 3, 12, 0, 0, NULL, "SigLIP no mask");
}

TEST(kernels_attention_decode_ring_matches_prefill) {
    /* Decode at position p over a ring of `window` slots (slot = pos % window)
     * must equal the prefill row p of a sliding-window layer; over a full cache
     * it must equal a global layer's row. */
    int T = 29, H = 4, KVH = 2, Dh = 16, W = 8;
    size_t kvd = (size_t)KVH * Dh;
    kernels_set_threads(2);
    float *q = ref_rand_f32((size_t)T * H * Dh, 2.0f, 201), *k = ref_rand_f32(T * kvd, 2.0f, 202);
    float *v = ref_rand_f32(T * kvd, 1.0f, 203);
    float *pre_local = malloc((size_t)T * H * Dh * sizeof(float)),
          *pre_global = malloc((size_t)T * H * Dh * sizeof(float));
    float scale = 0.25f;
    attention_prefill(pre_local, q, k, v, NULL, T, H, KVH, Dh, 1, W, scale);
    attention_prefill(pre_global, q, k, v, NULL, T, H, KVH, Dh, 1, 0, scale);
    float ring_k[8 * 32], ring_v[8 * 32], out[64];
    for (int p = 0; p < T; p++) {
        memcpy(ring_k + (p % W) * kvd, k + p * kvd, kvd * sizeof(float));
        memcpy(ring_v + (p % W) * kvd, v + p * kvd, kvd * sizeof(float));
        int n_keys = p + 1 < W ? p + 1 : W;
        attention_decode(out, q + (size_t)p * H * Dh, ring_k, ring_v, n_keys, H, KVH, Dh, scale);
        double ref[64];
        for (int i = 0; i < H * Dh; i++)
            ref[i] = pre_local[(size_t)p * H * Dh + i];
        CHECK_MSG(ref_rel_err(out, ref, H * Dh) < 1e-5, "local decode at %d", p);
        attention_decode(out, q + (size_t)p * H * Dh, k, v, p + 1, H, KVH, Dh, scale);
        for (int i = 0; i < H * Dh; i++)
            ref[i] = pre_global[(size_t)p * H * Dh + i];
        CHECK_MSG(ref_rel_err(out, ref, H * Dh) < 1e-5, "global decode at %d", p);
    }
    free(q), free(k), free(v), free(pre_local), free(pre_global);
}
