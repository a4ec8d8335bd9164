/* GEMM / GEMV with bf16 weights, fp32 activations and accumulation.
 *   matmul:        y[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o])    w [out, in]
 *   matmul_in_out: y[t, o] = sum_i x[t, i] * w[i, o]                w [in, out]
 * Threads split the output columns (weight rows), so each thread streams its
 * own slice of the weights once per block of tokens. */
#include <stddef.h>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

/* Tokens per block: the block's activations stay in L2 while the thread walks
 * its weight rows. */
#define TOKEN_BLOCK 64

typedef struct {
    float *y;
    const float *x;
    const bf16 *w;
    const bf16 *bias;
    int n_rows, in_dim, out_dim;
} MatmulJob;

/* Columns [o0, o1) of y for all tokens; ranges are in units of 4 columns. */
static void matmul_range(void *ctx, int start, int end) {
    const MatmulJob *j = ctx;
    const SimdOps *ops = simd_ops();
    int o0 = start * 4, o1 = end * 4 < j->out_dim ? end * 4 : j->out_dim;
    size_t in = (size_t)j->in_dim;
    float tile[16];
    for (int t0 = 0; t0 < j->n_rows; t0 += TOKEN_BLOCK) {
        int t1 = t0 + TOKEN_BLOCK < j->n_rows ? t0 + TOKEN_BLOCK : j->n_rows;
        for (int o = o0; o < o1; o += 4) {
            int t = t0;
            if (o + 4 <= o1) {
                for (; t + 4 <= t1; t += 4) {
                    ops->tile4x4_bf16(tile, 4, j->x + (size_t)t * in, j->in_dim, j->w + (size_t)o * in,
                                      j->in_dim, j->in_dim);
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++)
                            j->y[(size_t)(t + a) * j->out_dim + o + b] = tile[a * 4 + b];
                }
            }
            int ob = o + 4 <= o1 ? o + 4 : o1;
            for (; t < t1; t++)
                for (int oo = o; oo < ob; oo++)
                    j->y[(size_t)t * j->out_dim + oo] =
                        ops->dot_bf16(j->x + (size_t)t * in, j->w + (size_t)oo * in, j->in_dim);
        }
    }
    if (j->bias)
        for (int t = 0; t < j->n_rows; t++)
            for (int o = o0; o < o1; o++)
                j->y[(size_t)t * j->out_dim + o] += bf16_to_f32(j->bias[o]);
}

void matmul(float *y, const float *x, const bf16 *w, const bf16 *bias, int n_rows, int in_dim, int out_dim) {
    MatmulJob job = {y, x, w, bias, n_rows, in_dim, out_dim};
    int groups = (out_dim + 3) / 4;
    parallel_for(groups, 8, matmul_range, &job);
}

/* [in, out] weights: y[t, :] = sum_i x[t, i] * w[i, :], an axpy per input row,
 * threads splitting the output columns. */
typedef struct {
    float *y;
    const float *x;
    const bf16 *w;
    int n_rows, in_dim, out_dim;
} MatmulInOutJob;

static void matmul_in_out_range(void *ctx, int start, int end) {
    const MatmulInOutJob *j = ctx;
    int o0 = start * 16, o1 = end * 16 < j->out_dim ? end * 16 : j->out_dim;
    int width = o1 - o0;
    float wrow[256];
    for (int t = 0; t < j->n_rows; t++) {
        float *yt = j->y + (size_t)t * j->out_dim;
        for (int o = o0; o < o1; o++)
            yt[o] = 0.0f;
    }
    const SimdOps *ops = simd_ops();
    for (int c0 = 0; c0 < width; c0 += 256) {
        int cw = width - c0 < 256 ? width - c0 : 256;
        for (int i = 0; i < j->in_dim; i++) {
            const bf16 *wi = j->w + (size_t)i * j->out_dim + o0 + c0;
            for (int c = 0; c < cw; c++)
                wrow[c] = bf16_to_f32(wi[c]);
            for (int t = 0; t < j->n_rows; t++)
                ops->axpy_f32(j->y + (size_t)t * j->out_dim + o0 + c0, j->x[(size_t)t * j->in_dim + i], wrow,
                              cw);
        }
    }
}

void matmul_in_out(float *y, const float *x, const bf16 *w, int n_rows, int in_dim, int out_dim) {
    MatmulInOutJob job = {y, x, w, n_rows, in_dim, out_dim};
    parallel_for((out_dim + 15) / 16, 4, matmul_in_out_range, &job);
}
