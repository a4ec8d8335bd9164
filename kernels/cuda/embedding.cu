/* Embedding lookup (text rows, scaled).
 * Twin: kernels/cpu/embedding.c.
 * Math: out[t, :] = bf16(table[ids[t], :] * scale); scale is sqrt(hidden) already
 * rounded to bf16 by the engine (50.5 for 2560), as transformers does. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

/* One block per token row; threads stride over the columns. */
__global__ void embedding_lookup_kernel(bf16_t *out, const bf16_t *table, const int32_t *ids, int dim,
                                        float scale) {
    int t = blockIdx.x;
    const bf16_t *row = table + (size_t)ids[t] * dim;
    bf16_t *dst = out + (size_t)t * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        dst[i] = to_bf16(to_f32(row[i]) * scale);
}

// ---- launchers

extern "C" cudaError_t cuda_embedding_lookup(bf16 *out, const bf16 *table, const int32_t *ids, int n_tokens,
                                             int dim, float scale, cudaStream_t stream) {
    if (n_tokens <= 0 || dim <= 0)
        return cudaSuccess;
    CUDA_LAUNCH(embedding_lookup_kernel, n_tokens, 256, 0, stream, (bf16_t *)out, (const bf16_t *)table, ids,
                dim, scale);
    return cudaGetLastError();
}
