/* Per-kernel times at MedGemma 4B shapes (decode: one token; prefill: 1024
 * tokens; SigLIP: 4096 patches), each the mean of 20 launches timed with CUDA
 * events on zero-filled buffers, with the memory bandwidth or math rate it
 * reached. Part of build/gpu_bench. */
#ifndef BENCH_GPU_BENCH_KERNELS_H
#define BENCH_GPU_BENCH_KERNELS_H

#include <stdio.h>

#define BENCH_MAX_KERNELS 32

typedef struct {
    const char *name;
    double us;
    double gbps;   /* bytes moved / time, 0 when not meaningful */
    double tflops; /* math / time, 0 when not meaningful */
} BenchKernel;

typedef struct {
    BenchKernel k[BENCH_MAX_KERNELS];
    int n;
} BenchKernelTimes;

/* Returns 0, or -1 after printing what failed. */
int bench_kernels(BenchKernelTimes *out);
void bench_kernels_print(const BenchKernelTimes *t, FILE *f);
/* Writes `"kernels": {...}` (no trailing comma). */
void bench_kernels_json(const BenchKernelTimes *t, FILE *f);

#endif
