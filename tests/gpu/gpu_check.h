/* Shared helpers of the GPU test program (tests/gpu/): results lines, device
 * buffers that start poisoned (all bits set: NaN in bf16 and fp32, so an output
 * a kernel forgot to write can never pass), random bf16-exact inputs and the
 * relative error ||out - ref|| / ||ref||. */
#ifndef TESTS_GPU_GPU_CHECK_H
#define TESTS_GPU_GPU_CHECK_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "util/bf16.h"

/* Prints "ok NAME rel_err=E tol=T" or "FAIL NAME: ..." (and a row of the
 * per-kernel table when GPU_TEST_TABLE names a file); counts the result. */
void gpu_report(const char *name, double rel_err, double tol);
void gpu_fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gpu_pass(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int gpu_failures(void);
int gpu_passes(void);

/* Aborts the program (counted as a failure by the runner) when a CUDA call fails. */
#define GPU_OK(call) gpu_ok((call), #call, __FILE__, __LINE__)
void gpu_ok(cudaError_t e, const char *what, const char *file, int line);

/* Random values in [-scale, scale), rounded to bf16 (so CPU and GPU see the same inputs). */
float *rand_f32_bf16exact(size_t n, float scale);
bf16 *to_bf16_host(const float *x, size_t n);
/* Device buffers. */
void *dev_poisoned(size_t bytes);
bf16 *dev_from_f32_as_bf16(const float *x, size_t n);
void *dev_copy(const void *host, size_t bytes);
float *host_from_dev_bf16(const bf16 *dev, size_t n);
float *host_from_dev_f32(const float *dev, size_t n);

/* ||a - ref|| / ||ref|| in double; NaN when a holds a NaN or infinity. */
double rel_err(const float *a, const float *ref, size_t n);

/* Test filter (argv: a substring, or several separated by commas); 1 when the named test should run. */
extern const char *gpu_filter;
int gpu_selected(const char *name);
/* Seeds the input generator (main picks a fresh seed per run and prints it). */
void gpu_seed(uint64_t seed);
/* Set by --small (compute-sanitizer runs): the largest shapes are skipped. */
extern int gpu_small;

void gpu_kernel_tests(void);
void gpu_golden_tests(const char *golden_dir);
void gpu_prefix_tests(const char *golden_dir);

#endif
