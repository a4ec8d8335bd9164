/* Vector inner loops shared by the CPU kernels, picked once at run time for
 * the processor (AVX-512, AVX2+FMA, or plain C). Private to kernels/cpu.
 * All accumulate in fp32; bf16 weights are widened exactly (a shift). */
#ifndef KERNELS_CPU_SIMD_H
#define KERNELS_CPU_SIMD_H

#include "util/bf16.h"

typedef struct {
    const char *name;
    /* sum_i x[i] * w[i] */
    float (*dot_bf16)(const float *x, const bf16 *w, int n);
    /* The decode GEMV's inner loop, 4 weight rows per pass over x so each
     * activation load serves 4 rows: y[o] = sum_i x[i] * w[o * ldw + i], o < 4. */
    void (*gemv4_bf16)(float *y, const float *x, const bf16 *w, size_t ldw, int n);
    /* sum_i a[i] * b[i] */
    float (*dot_f32)(const float *a, const float *b, int n);
    /* y[i] += a * x[i] */
    void (*axpy_f32)(float *y, float a, const float *x, int n);
    /* y[i] = y[i] * s  */
    void (*scale_f32)(float *y, float s, int n);
    /* A 4 x 4 tile of x W^T: y[t * ldy + o] = sum_i x[t * ldx + i] * w[o * ldw + i]
     * for t < 4, o < 4 (4 token rows, 4 weight rows). */
    void (*tile4x4_bf16)(float *y, int ldy, const float *x, int ldx, const bf16 *w, int ldw, int n);
    /* GEMM micro-kernel on a packed panel (the prefill GEMM's inner loop):
     * panel [k][panel_cols] fp32 holds panel_cols weight rows transposed (zero
     * past n_cols). For r < rows (1..GEMM_ROWS), c < n_cols:
     *   y[r * ldy + c] = (accumulate ? y[r * ldy + c] : 0) + sum_i x[r * ldx + i] * panel[i][c]
     * summed in order of i, one fused multiply-add per term. */
    void (*gemm_panel)(float *y, int ldy, const float *x, int ldx, const float *panel, int rows, int k,
                       int n_cols, int accumulate);
    int panel_cols;
    /* Packs a panel: panel[i][c] = w[c * ldw + i] widened to fp32 for c < n_cols,
     * 0 for n_cols <= c < panel_cols; i < k. */
    void (*pack_panel)(float *panel, const bf16 *w, size_t ldw, int n_cols, int k);
    /* out[i] = gelu_tanh(gate[i]) * (up ? up[i] : 1), computed as
     * x / (1 + exp(-2u)) with u = sqrt(2/pi) (x + 0.044715 x^3) (= 0.5 x (1 + tanh u)). */
    void (*gelu)(float *out, const float *gate, const float *up, int n);
} SimdOps;

/* Token rows per gemm_panel call. */
#define GEMM_ROWS 6

/* The best implementation this processor runs (env MEDGEMMA_SIMD=avx512|avx2|scalar
 * forces one, for tests). */
const SimdOps *simd_ops(void);
/* A given implementation, or NULL when the processor lacks it. */
const SimdOps *simd_ops_named(const char *name);

#endif
