/* The CUDA op table (kernels/ops.h) over the CUDA launchers (kernels/cuda/kernels_cuda.h)
 * and cuBLASLt (engine/cuda/gemm.h): the twin of kernels/cpu/ops_cpu.c.
 *
 * Owns: one stream, the cuBLASLt plans, the op table's scratch (token ids, image
 * blocks, positions, the split decode attention's partials, the patch im2col, the
 * cuBLASLt workspace), a pinned staging buffer for write/read, and the bookkeeping
 * of what alloc/prepare carved. It allocates no device memory: everything is
 * carved from the caller's one allocation (engine/cuda/device_plan.h DeviceArena),
 * which the device plan sized for exactly what the forward pass allocates. */
#ifndef KERNELS_CUDA_OPS_CUDA_H
#define KERNELS_CUDA_OPS_CUDA_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/cuda/device_plan.h"
#include "kernels/ops.h"
#include "util/error.h"

typedef struct {
    DeviceArena *arena;          /* outlives the table */
    int max_rows;                /* most rows of one call (token ids, image blocks): max_prefill */
    size_t decode_scratch_bytes; /* the split decode attention's partials (plan: act.decode_scratch) */
    size_t patch_bytes;          /* the patch im2col (plan: vision.act.patches; 0 = no vision) */
    size_t gemm_workspace;       /* cuBLASLt's workspace */
} CudaOpsOptions;

/* 0, or -1 (err): a CUDA call failed, or the scratch does not fit the arena. */
int ops_cuda_create(Ops *ops, const CudaOpsOptions *options, Error *err);
void ops_cuda_destroy(Ops *ops);

/* Weights uploaded by prepare() between begin and end go through a ring of pinned
 * buffers (engine/cuda/upload.h); outside, each is one synchronous copy. */
int ops_cuda_upload_begin(Ops *ops, Error *err);
int ops_cuda_upload_end(Ops *ops, Error *err);

/* The decode graph's mode (the backend captures forward_text of one token once under
 * stream capture): embed reads the token id from, and every op the position from,
 * ops_cuda_graph_inputs (device int32 [2]: position, token); read() of an fp32
 * tensor enqueues its copy into the host buffer (pinned) without waiting. */
void ops_cuda_graph_mode(Ops *ops, int on);
int32_t *ops_cuda_graph_inputs(const Ops *ops);
cudaStream_t ops_cuda_stream(const Ops *ops);

#endif
