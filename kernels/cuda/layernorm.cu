/* SigLIP LayerNorm. Twin: kernels/cpu/layernorm.c.
 * Math (fp32, two passes over the row for a stable variance):
 *   out = (x - mean) / sqrt(mean((x - mean)^2) + eps) * w + b
 * One block per row. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

__global__ void layernorm_kernel(bf16_t *out, const bf16_t *x, const bf16_t *w, const bf16_t *b, int dim,
                                 float eps) {
    __shared__ float scratch[33];
    const bf16_t *xr = x + (size_t)blockIdx.x * dim;
    bf16_t *o = out + (size_t)blockIdx.x * dim;
    float s = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        s += to_f32(xr[i]);
    float mean = block_sum(s, scratch) / (float)dim;
    float v = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float d = to_f32(xr[i]) - mean;
        v += d * d;
    }
    float r = rsqrtf(block_sum(v, scratch) / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        o[i] = to_bf16((to_f32(xr[i]) - mean) * r * to_f32(w[i]) + to_f32(b[i]));
}

// ---- launchers

extern "C" cudaError_t cuda_layernorm(bf16 *out, const bf16 *x, const bf16 *w, const bf16 *b, int n_rows,
                                      int dim, float eps, cudaStream_t stream) {
    if (n_rows <= 0 || dim <= 0)
        return cudaSuccess;
    CUDA_LAUNCH(layernorm_kernel, n_rows, dim >= 1024 ? 256 : 128, 0, stream, (bf16_t *)out,
                (const bf16_t *)x, (const bf16_t *)w, (const bf16_t *)b, dim, eps);
    return cudaGetLastError();
}
