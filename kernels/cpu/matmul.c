/* GEMM / GEMV with bf16 weights, fp32 activations and accumulation.
 *   matmul:        y[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o])    w [out, in]
 *   matmul_in_out: y[t, o] = sum_i x[t, i] * w[i, o]                w [in, out]
 * Threads split the output columns (weight rows), so each thread streams its
 * own slice of the weights once per block of tokens. Every output is summed
 * in order of i whatever the blocking and thread count. */
#include <stddef.h>

#include "kernels/cpu/matmul_amx.h"
#include "kernels/cpu/matmul_bf16.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

/* Prefill GEMM blocking: TOKEN_BLOCK rows of x stay in L2 while a thread
 * walks its weight panels; each panel is K_CHUNK inputs x panel_cols weight
 * rows, widened to fp32 on the stack (L1) and used by every token row. */
#define TOKEN_BLOCK 510 /* a multiple of GEMM_ROWS; 510 x K_CHUNK floats = 510 KiB */
#define K_CHUNK 256
#define MAX_PANEL_COLS 32
/* Below this many rows the weights are streamed once per row instead (decode GEMV). */
#define MIN_PANEL_ROWS 4

typedef struct {
    float *y;
    const float *x;
    const bf16 *w;
    const bf16 *bias;
    int n_rows, in_dim, out_dim;
} MatmulJob;

/* Output columns of panels [start, end). */
static void matmul_panels(void *ctx, int start, int end) {
    const MatmulJob *j = ctx;
    const SimdOps *ops = simd_ops();
    int pc = ops->panel_cols;
    float panel[K_CHUNK * MAX_PANEL_COLS];
    for (int t0 = 0; t0 < j->n_rows; t0 += TOKEN_BLOCK) {
        int t1 = t0 + TOKEN_BLOCK < j->n_rows ? t0 + TOKEN_BLOCK : j->n_rows;
        for (int p = start; p < end; p++) {
            int o = p * pc, n_cols = j->out_dim - o < pc ? j->out_dim - o : pc;
            for (int k0 = 0; k0 < j->in_dim; k0 += K_CHUNK) {
                int kc = j->in_dim - k0 < K_CHUNK ? j->in_dim - k0 : K_CHUNK;
                ops->pack_panel(panel, j->w + (size_t)o * j->in_dim + k0, (size_t)j->in_dim, n_cols, kc);
                for (int t = t0; t < t1; t += GEMM_ROWS) {
                    int rows = t1 - t < GEMM_ROWS ? t1 - t : GEMM_ROWS;
                    ops->gemm_panel(j->y + (size_t)t * j->out_dim + o, j->out_dim,
                                    j->x + (size_t)t * j->in_dim + k0, j->in_dim, panel, rows, kc, n_cols,
                                    k0 > 0);
                }
            }
        }
    }
    if (j->bias) {
        int o1 = end * pc < j->out_dim ? end * pc : j->out_dim;
        for (int t = 0; t < j->n_rows; t++)
            for (int o = start * pc; o < o1; o++)
                j->y[(size_t)t * j->out_dim + o] += bf16_to_f32(j->bias[o]);
    }
}

/* Few rows (decode): weight rows in units of GEMV_UNIT, so threads write
 * whole cache lines of y and never share one; 4 rows per pass over x. */
#define GEMV_UNIT 16

static void matmul_rows(void *ctx, int start, int end) {
    const MatmulJob *j = ctx;
    const SimdOps *ops = simd_ops();
    size_t in = (size_t)j->in_dim;
    int o0 = start * GEMV_UNIT, o1 = end * GEMV_UNIT < j->out_dim ? end * GEMV_UNIT : j->out_dim;
    int o = o0;
    for (; o + 4 <= o1; o += 4) /* tokens inner: the 4 rows stay in cache for T = 2, 3 */
        for (int t = 0; t < j->n_rows; t++)
            ops->gemv4_bf16(j->y + (size_t)t * j->out_dim + o, j->x + (size_t)t * in, j->w + (size_t)o * in,
                            in, j->in_dim);
    for (; o < o1; o++)
        for (int t = 0; t < j->n_rows; t++)
            j->y[(size_t)t * j->out_dim + o] =
                ops->dot_bf16(j->x + (size_t)t * in, j->w + (size_t)o * in, j->in_dim);
    if (j->bias)
        for (int t = 0; t < j->n_rows; t++)
            for (o = o0; o < o1; o++)
                j->y[(size_t)t * j->out_dim + o] += bf16_to_f32(j->bias[o]);
}

void matmul(float *y, const float *x, const bf16 *w, const bf16 *bias, int n_rows, int in_dim, int out_dim) {
    MatmulJob job = {y, x, w, bias, n_rows, in_dim, out_dim};
    if (kernels_precision() == PRECISION_BF16 && matmul_bf16(y, x, w, bias, n_rows, in_dim, out_dim) == 0)
        return;
    if (n_rows < MIN_PANEL_ROWS) {
        int units = (out_dim + GEMV_UNIT - 1) / GEMV_UNIT;
        parallel_for_dynamic(units, 4, matmul_rows, &job);
        return;
    }
    if (n_rows >= AMX_MIN_ROWS && amx_available() && matmul_amx(y, x, w, bias, n_rows, in_dim, out_dim) == 0)
        return;
    int pc = simd_ops()->panel_cols, n_panels = (out_dim + pc - 1) / pc;
    parallel_for_dynamic(n_panels, 1, matmul_panels, &job);
}

/* Several matrices of one x (decode): the units of all of them form one loop
 * (parallel_for_dynamic_parts), each piece running matmul_rows on its matrix,
 * so every value is what matmul computes. */
void matmul_multi(int n, float *const *ys, const float *x, const bf16 *const *ws, const int *out_dims,
                  int n_rows, int in_dim) {
    if (n_rows >= MIN_PANEL_ROWS || n > MATMUL_MULTI_MAX || kernels_precision() == PRECISION_BF16) {
        for (int m = 0; m < n; m++)
            matmul(ys[m], x, ws[m], NULL, n_rows, in_dim, out_dims[m]);
        return;
    }
    MatmulJob jobs[MATMUL_MULTI_MAX];
    void *ctxs[MATMUL_MULTI_MAX];
    int n_units[MATMUL_MULTI_MAX];
    for (int m = 0; m < n; m++) {
        MatmulJob job = {ys[m], x, ws[m], NULL, n_rows, in_dim, out_dims[m]};
        jobs[m] = job;
        ctxs[m] = &jobs[m];
        n_units[m] = (out_dims[m] + GEMV_UNIT - 1) / GEMV_UNIT;
    }
    parallel_for_dynamic_parts(n, n_units, 4, matmul_rows, ctxs);
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
