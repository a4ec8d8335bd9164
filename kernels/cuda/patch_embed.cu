/* SigLIP patch embedding, first half: im2col. Twin: kernels/cpu/patch_embed.c.
 * The conv P x P / stride P is a GEMM: im2col here, then the cuBLASLt GEMM
 * (engine/cuda/gemm.h) with the conv weight as [hidden, C*P*P] (padded to
 * k_pad columns) and its bias, then cuda_residual_add of the position embedding.
 * Math: patches[p, c*P*P + ky*P + kx] = bf16(pixels[c, row*P + ky, col*P + kx]),
 * p = row * G + col; columns >= C*P*P are zero. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

__global__ void patch_im2col_kernel(bf16_t *patches, const float *pixels, int image_size, int patch,
                                    int channels, int k_pad) {
    int grid = image_size / patch;
    long long n = (long long)grid * grid * k_pad;
    int pp = patch * patch;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        int p = (int)(idx / k_pad), j = (int)(idx % k_pad);
        float v = 0.0f;
        if (j < channels * pp) {
            int c = j / pp, ky = (j / patch) % patch, kx = j % patch;
            int y = (p / grid) * patch + ky, x = (p % grid) * patch + kx;
            v = pixels[((size_t)c * image_size + y) * image_size + x];
        }
        patches[idx] = to_bf16(v);
    }
}

// ---- launchers

extern "C" cudaError_t cuda_patch_im2col(bf16 *patches, const float *pixels, int image_size, int patch,
                                         int channels, int k_pad, cudaStream_t stream) {
    if (patch <= 0 || image_size % patch || k_pad < channels * patch * patch)
        return cudaErrorInvalidValue;
    int grid = image_size / patch;
    long long n = (long long)grid * grid * k_pad;
    long long blocks = (n + 255) / 256;
    if (blocks > 65535 * 8)
        blocks = 65535 * 8;
    CUDA_LAUNCH(patch_im2col_kernel, (unsigned)blocks, 256, 0, stream, (bf16_t *)patches, pixels, image_size,
                patch, channels, k_pad);
    return cudaGetLastError();
}
