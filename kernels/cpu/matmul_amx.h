/* Prefill GEMM on Intel AMX tiles with fp32 accuracy. Private to kernels/cpu.
 *
 * AMX multiplies bf16 pairs exactly and accumulates in fp32, but the
 * activations are fp32: each is split into three bf16 terms x = h + m + l
 * (h = bf16(x), m = bf16(x - h), l = bf16(x - h - m): 24 significant bits,
 * as many as fp32 holds), and the weights, bf16 already, multiply each term.
 * So y = x W^T to fp32 accuracy at a third of AMX's bf16 rate, several times
 * what AVX-512 FMAs give. Used for prompts of at least AMX_MIN_ROWS tokens
 * when the processor and kernel allow AMX (env MEDGEMMA_NO_AMX=1 turns it off). */
#ifndef KERNELS_CPU_MATMUL_AMX_H
#define KERNELS_CPU_MATMUL_AMX_H

#include "util/bf16.h"

#define AMX_MIN_ROWS 32

/* 1 when AMX-BF16 (and AVX512-BF16) is present and the kernel granted the tile state. */
int amx_available(void);

/* y[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o]); 0, or -1 when the scratch
 * could not be allocated (the caller then uses the FMA path). */
int matmul_amx(float *y, const float *x, const bf16 *w, const bf16 *bias, int n_rows, int in_dim,
               int out_dim);

/* Frees the scratch (kernels_shutdown). */
void matmul_amx_release(void);

#endif
