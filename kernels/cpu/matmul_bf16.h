/* The bf16-precision GEMM behind matmul() (kernels.h, PRECISION_BF16).
 * Private to kernels/cpu. */
#ifndef KERNELS_CPU_MATMUL_BF16_H
#define KERNELS_CPU_MATMUL_BF16_H

#include "util/bf16.h"

/* y[t, o] = sum_i bf16(x[t, i]) * w[o, i] (+ bias[o]) on AVX512_BF16; 0, or -1
 * when it cannot run here (no AVX512_BF16, odd in_dim, no scratch memory):
 * the caller then computes the exact product. */
int matmul_bf16(float *y, const float *x, const bf16 *w, const bf16 *bias, int n_rows, int in_dim,
                int out_dim);

/* Frees the prompt scratch (kernels_shutdown). */
void matmul_bf16_release(void);

#endif
