/* Gemma's RMSNorm, computed in fp32 as transformers does (weights stored as scale - 1):
 *   rmsnorm(x) = x / sqrt(mean(x^2) + eps) * (1 + w)
 * and its residual form x += rmsnorm(h) (after attention and after the MLP). */
#include <math.h>
#include <stddef.h>

#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

/* 1 / sqrt(mean(x^2) + eps); the sum of squares in double so the result does
 * not depend on the summation order. */
static float inv_rms(const float *x, int dim, float eps) {
    double ss = 0.0;
    for (int i = 0; i < dim; i++)
        ss += (double)x[i] * x[i];
    float mean = (float)(ss / dim);
    return 1.0f / sqrtf(mean + eps);
}

typedef struct {
    float *out;
    const float *x;
    const bf16 *w;
    int dim;
    float eps;
    int residual;
} RmsJob;

static void rmsnorm_range(void *ctx, int start, int end) {
    const RmsJob *j = ctx;
    for (int t = start; t < end; t++) {
        const float *x = j->x + (size_t)t * j->dim;
        float *o = j->out + (size_t)t * j->dim;
        float r = inv_rms(x, j->dim, j->eps);
        if (j->residual)
            for (int i = 0; i < j->dim; i++)
                o[i] += (x[i] * r) * (1.0f + bf16_to_f32(j->w[i]));
        else
            for (int i = 0; i < j->dim; i++)
                o[i] = (x[i] * r) * (1.0f + bf16_to_f32(j->w[i]));
    }
}

void rmsnorm(float *out, const float *x, const bf16 *w, int n_rows, int dim, float eps) {
    RmsJob job = {out, x, w, dim, eps, 0};
    parallel_for(n_rows, 16, rmsnorm_range, &job);
}

void rmsnorm_residual(float *x, const float *h, const bf16 *w, int n_rows, int dim, float eps) {
    RmsJob job = {x, h, w, dim, eps, 1};
    parallel_for(n_rows, 16, rmsnorm_range, &job);
}
