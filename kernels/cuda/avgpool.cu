/* The projector's k x k average pool over the vision grid. Twin: kernels/cpu/avgpool.c.
 * Math: out[(r / k) * (G / k) + c / k, :] = mean of the k * k rows (r, c) of the
 * window, summed in fp32. One block per output row. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

__global__ void avgpool_grid_kernel(bf16_t *out, const bf16_t *x, int grid, int k, int dim) {
    int g_out = grid / k;
    int orow = blockIdx.x / g_out, ocol = blockIdx.x % g_out;
    float inv = 1.0f / (float)(k * k);
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        float s = 0.0f;
        for (int dy = 0; dy < k; dy++)
            for (int dx = 0; dx < k; dx++)
                s += to_f32(x[((size_t)(orow * k + dy) * grid + (ocol * k + dx)) * dim + d]);
        out[(size_t)blockIdx.x * dim + d] = to_bf16(s * inv);
    }
}

// ---- launchers

extern "C" cudaError_t cuda_avgpool_grid(bf16 *out, const bf16 *x, int grid, int k, int dim,
                                         cudaStream_t stream) {
    if (k <= 0 || grid <= 0 || grid % k || dim <= 0)
        return cudaErrorInvalidValue;
    int g_out = grid / k;
    CUDA_LAUNCH(avgpool_grid_kernel, g_out * g_out, 256, 0, stream, (bf16_t *)out, (const bf16_t *)x, grid, k,
                dim);
    return cudaGetLastError();
}
