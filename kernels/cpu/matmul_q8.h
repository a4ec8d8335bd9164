/* Scratch of the 8-bit-weight GEMM (kernels.h, matmul_q8). Private to kernels/cpu. */
#ifndef KERNELS_CPU_MATMUL_Q8_H
#define KERNELS_CPU_MATMUL_Q8_H

/* Frees the prompt scratch (kernels_shutdown). */
void matmul_q8_release(void);

/* Tests: forces the kernel of one SIMD level ("scalar", "avx2", "avx512" =
 * AVX512-VNNI) for later calls, NULL back to the automatic choice; -1 when
 * this processor lacks it. */
int matmul_q8_force_kernel(const char *name);

#endif
