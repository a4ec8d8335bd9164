/* Per-head QK-norm then rotary position embedding (rotate-half), fused:
 *   x_h = rmsnorm(x_h) * (1 + w);  for i < Dh/2, a = pos * inv_freq_i,
 *   x'[i] = x[i] cos a - x[i + Dh/2] sin a,  x'[i + Dh/2] = x[i + Dh/2] cos a + x[i] sin a
 * inv_freq_i = 1 / theta^(2i / Dh) / rope_scale, rounded to fp32 step by step
 * as transformers computes it, and the angle pos * inv_freq_i in fp32. */
#include <math.h>
#include <stddef.h>

#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

#define MAX_HEAD_DIM 1024

typedef struct {
    float *x;
    const bf16 *norm_w;
    int n_heads, head_dim, pos0;
    float theta, rope_scale, eps;
} RopeJob;

static void rope_range(void *ctx, int start, int end) {
    const RopeJob *j = ctx;
    int half = j->head_dim / 2;
    float inv_freq[MAX_HEAD_DIM / 2], cos_a[MAX_HEAD_DIM / 2], sin_a[MAX_HEAD_DIM / 2];
    for (int i = 0; i < half; i++) {
        float exponent = (float)(2 * i) / (float)j->head_dim;
        float base_pow = (float)pow((double)j->theta, (double)exponent);
        inv_freq[i] = (1.0f / base_pow) / j->rope_scale;
    }
    for (int t = start; t < end; t++) {
        float pos = (float)(j->pos0 + t);
        for (int i = 0; i < half; i++) {
            float a = pos * inv_freq[i];
            cos_a[i] = cosf(a);
            sin_a[i] = sinf(a);
        }
        for (int h = 0; h < j->n_heads; h++) {
            float *x = j->x + ((size_t)t * j->n_heads + h) * j->head_dim;
            double ss = 0.0;
            for (int i = 0; i < j->head_dim; i++)
                ss += (double)x[i] * x[i];
            float r = 1.0f / sqrtf((float)(ss / j->head_dim) + j->eps);
            for (int i = 0; i < j->head_dim; i++)
                x[i] = (x[i] * r) * (1.0f + bf16_to_f32(j->norm_w[i]));
            for (int i = 0; i < half; i++) {
                float x1 = x[i], x2 = x[i + half];
                x[i] = x1 * cos_a[i] - x2 * sin_a[i];
                x[i + half] = x2 * cos_a[i] + x1 * sin_a[i];
            }
        }
    }
}

void qk_norm_rope(float *x, const bf16 *norm_w, int n_tokens, int n_heads, int head_dim, int pos0,
                  float theta, float rope_scale, float eps) {
    if (head_dim > MAX_HEAD_DIM || head_dim % 2)
        return; /* the engine rejects such configs at load */
    RopeJob job = {x, norm_w, n_heads, head_dim, pos0, theta, rope_scale, eps};
    parallel_for(n_tokens, 8, rope_range, &job);
}
