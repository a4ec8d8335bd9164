/* Gemma RMSNorm, plain and fused with the residual add. Twin: kernels/cpu/rmsnorm.c.
 * Math (fp32, one rounding to bf16 at the store, like Gemma3RMSNorm):
 *   rmsnorm(x) = x / sqrt(mean(x^2) + eps) * (1 + w)      (w stored as scale - 1)
 * One block per row; the row is read twice (sum of squares, then scale), the
 * second read hits L1/L2. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

/* 1 / sqrt(mean(x^2) + eps) of one row, for every thread of the block. */
__device__ __forceinline__ float row_rms_inv(const bf16_t *x, int dim, float eps, float *scratch) {
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = to_f32(x[i]);
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    return rsqrtf(ss / (float)dim + eps);
}

__global__ void rmsnorm_kernel(bf16_t *out, const bf16_t *x, const bf16_t *w, int dim, float eps) {
    __shared__ float scratch[33];
    const bf16_t *xr = x + (size_t)blockIdx.x * dim;
    bf16_t *o = out + (size_t)blockIdx.x * dim;
    float r = row_rms_inv(xr, dim, eps, scratch);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        o[i] = to_bf16(to_f32(xr[i]) * r * (1.0f + to_f32(w[i])));
}

/* x += bf16(rmsnorm(h) * (1 + w_post)); then, when out != NULL,
 * out = rmsnorm(x) * (1 + w_next). Each thread re-reads only the x elements
 * it wrote itself, so one block barrier (inside block_sum) is enough. */
__global__ void rmsnorm_residual_kernel(bf16_t *x, bf16_t *out, const bf16_t *h, const bf16_t *w_post,
                                        const bf16_t *w_next, int dim, float eps) {
    __shared__ float scratch[33];
    size_t base = (size_t)blockIdx.x * dim;
    float r = row_rms_inv(h + base, dim, eps, scratch);
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float n = to_f32(to_bf16(to_f32(h[base + i]) * r * (1.0f + to_f32(w_post[i]))));
        bf16_t xn = to_bf16(to_f32(x[base + i]) + n);
        x[base + i] = xn;
        float xv = to_f32(xn);
        ss += xv * xv;
    }
    if (out == nullptr)
        return;
    ss = block_sum(ss, scratch);
    float r2 = rsqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        out[base + i] = to_bf16(to_f32(x[base + i]) * r2 * (1.0f + to_f32(w_next[i])));
}

// ---- launchers

static int norm_threads(int dim) {
    return dim >= 2048 ? 512 : dim >= 512 ? 256 : 128;
}

extern "C" cudaError_t cuda_rmsnorm(bf16 *out, const bf16 *x, const bf16 *w, int n_rows, int dim, float eps,
                                    cudaStream_t stream) {
    if (n_rows <= 0 || dim <= 0)
        return cudaSuccess;
    CUDA_LAUNCH(rmsnorm_kernel, n_rows, norm_threads(dim), 0, stream, (bf16_t *)out, (const bf16_t *)x,
                (const bf16_t *)w, dim, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_rmsnorm_residual(bf16 *x, const bf16 *h, const bf16 *w, int n_rows, int dim,
                                             float eps, cudaStream_t stream) {
    if (n_rows <= 0 || dim <= 0)
        return cudaSuccess;
    CUDA_LAUNCH(rmsnorm_residual_kernel, n_rows, norm_threads(dim), 0, stream, (bf16_t *)x, nullptr,
                (const bf16_t *)h, (const bf16_t *)w, nullptr, dim, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_rmsnorm_residual_norm(bf16 *x, bf16 *out, const bf16 *h, const bf16 *w_post,
                                                  const bf16 *w_next, int n_rows, int dim, float eps,
                                                  cudaStream_t stream) {
    if (n_rows <= 0 || dim <= 0)
        return cudaSuccess;
    CUDA_LAUNCH(rmsnorm_residual_kernel, n_rows, norm_threads(dim), 0, stream, (bf16_t *)x, (bf16_t *)out,
                (const bf16_t *)h, (const bf16_t *)w_post, (const bf16_t *)w_next, dim, eps);
    return cudaGetLastError();
}
