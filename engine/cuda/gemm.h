/* bf16 GEMMs through cuBLASLt, for more than one row (prefill, the vision tower,
 * the projector). The batch-1 decode GEMV is kernels/cuda/matmul.cu.
 *
 * Owns: the cuBLASLt handle, one workspace (its own, or the caller's: the
 * backend's is a region of its device memory plan), and a table of plans (descriptors,
 * layouts and the heuristic's algorithm) keyed by shape: a plan is built the
 * first time a shape is seen (at load for the fixed shapes, gemm_prepare) and
 * reused after; nothing is created per call. All calls must use the same
 * stream (they share the workspace).
 *
 * Row-major Y[T, out] = X[T, in] W^T with W [out, in] (nn.Linear) is, in
 * cuBLAS's column-major terms, Y^T = W^T' X^T: A = W with TRANSA = T (in x out,
 * ld in), B = X with N (in x T, ld in), D (out x T, ld out) — the "TN" mapping.
 * W stored [in, out] (the projector) uses TRANSA = N (out x in, ld out).
 * bf16 A/B, bf16 or fp32 D, CUBLAS_COMPUTE_32F, fp32 alpha/beta, optional
 * bf16 bias through the BIAS epilogue. */
#ifndef ENGINE_CUDA_GEMM_H
#define ENGINE_CUDA_GEMM_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "util/bf16.h"
#include "util/error.h"

typedef struct Gemm Gemm;

typedef enum {
    GEMM_W_OUT_IN, /* w [out, in] (nn.Linear) */
    GEMM_W_IN_OUT, /* w [in, out] (mm_input_projection_weight) */
} GemmWeightLayout;

typedef struct {
    int n_rows, in_dim, out_dim;
    GemmWeightLayout layout;
    int has_bias; /* bf16 bias [out] added in the epilogue */
    int out_f32;  /* D is fp32 (logits) instead of bf16 */
} GemmShape;

/* workspace_bytes: 32 MiB on Hopper, 4 MiB elsewhere is enough. gemm_create
 * allocates the workspace (tests, benchmarks); gemm_create_with_workspace uses
 * the caller's device memory, which must outlive the Gemm. */
int gemm_create(Gemm **out, size_t workspace_bytes, Error *err);
int gemm_create_with_workspace(Gemm **out, void *workspace, size_t workspace_bytes, Error *err);
void gemm_destroy(Gemm *gemm);

/* Returned (with err filled) when no plan could be built for a shape: cuBLASLt has
 * no algorithm for it, or rejected a descriptor. Other failures return -1. */
#define GEMM_NO_PLAN (-2)

/* Builds the plan for a shape now (at load); fails when cuBLASLt has no algorithm. */
int gemm_prepare(Gemm *gemm, const GemmShape *shape, Error *err);

/* y = x w^T (+ bias) (or x w for GEMM_W_IN_OUT) on `stream`. y is bf16, or
 * float when shape->out_f32. Pointers 16-byte aligned. */
int gemm_run(Gemm *gemm, const GemmShape *shape, void *y, const bf16 *x, const bf16 *w, const bf16 *bias,
             cudaStream_t stream, Error *err);

/* Plans built so far (tests). */
int gemm_plan_count(const Gemm *gemm);

#endif
