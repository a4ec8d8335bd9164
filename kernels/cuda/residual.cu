/* Residual add (SigLIP; also the position embedding add). Twin: kernels/cpu/residual.c.
 * Math: x[i] = bf16(x[i] + y[i]), the sum in fp32. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

__global__ void residual_add_kernel(bf16_t *x, const bf16_t *y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        x[i] = to_bf16(to_f32(x[i]) + to_f32(y[i]));
}

// ---- launchers

extern "C" cudaError_t cuda_residual_add(bf16 *x, const bf16 *y, long long n, cudaStream_t stream) {
    if (n <= 0)
        return cudaSuccess;
    long long blocks = (n + 255) / 256;
    if (blocks > 65535 * 8)
        blocks = 65535 * 8;
    CUDA_LAUNCH(residual_add_kernel, (unsigned)blocks, 256, 0, stream, (bf16_t *)x, (const bf16_t *)y, n);
    return cudaGetLastError();
}
