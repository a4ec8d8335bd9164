/* LayerNorm with bias (SigLIP), fp32 with the statistics in double:
 *   out = (x - mean) / sqrt(var + eps) * w + b     (var biased, over the row) */
#include <math.h>
#include <stddef.h>

#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

typedef struct {
    float *out;
    const float *x;
    const bf16 *w, *b;
    int dim;
    float eps;
} LnJob;

static void layernorm_range(void *ctx, int start, int end) {
    const LnJob *j = ctx;
    for (int t = start; t < end; t++) {
        const float *x = j->x + (size_t)t * j->dim;
        float *o = j->out + (size_t)t * j->dim;
        double sum = 0.0;
        for (int i = 0; i < j->dim; i++)
            sum += x[i];
        double mean = sum / j->dim, var = 0.0;
        for (int i = 0; i < j->dim; i++)
            var += (x[i] - mean) * (x[i] - mean);
        var /= j->dim;
        float m = (float)mean, r = (float)(1.0 / sqrt(var + j->eps));
        for (int i = 0; i < j->dim; i++)
            o[i] = (x[i] - m) * r * bf16_to_f32(j->w[i]) + bf16_to_f32(j->b[i]);
    }
}

void layernorm(float *out, const float *x, const bf16 *w, const bf16 *b, int n_rows, int dim, float eps) {
    LnJob job = {out, x, w, b, dim, eps};
    parallel_for(n_rows, 16, layernorm_range, &job);
}
