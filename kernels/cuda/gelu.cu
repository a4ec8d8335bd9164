/* GELU (tanh approximation): Gemma's gated MLP and SigLIP's MLP. Twin: kernels/cpu/gelu.c.
 * Math: gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in fp32.
 * Rounded like transformers in bf16: g = bf16(gelu(gate)), out = bf16(g * up). */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

__device__ __forceinline__ float gelu_tanh_f(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

/* out, gate, up: n_rows rows of `width` values, row stride ld (out may alias gate). */
__global__ void gelu_tanh_gate_kernel(bf16_t *out, const bf16_t *gate, const bf16_t *up, int ld, int n_rows,
                                      int width) {
    long long n = (long long)n_rows * width;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        long long at = idx / width * ld + idx % width;
        float g = to_f32(to_bf16(gelu_tanh_f(to_f32(gate[at]))));
        out[at] = to_bf16(g * to_f32(up[at]));
    }
}

__global__ void gelu_tanh_kernel(bf16_t *x, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        x[i] = to_bf16(gelu_tanh_f(to_f32(x[i])));
}

// ---- launchers

static unsigned elementwise_blocks(long long n) {
    long long b = (n + 255) / 256;
    return (unsigned)(b < 65535 * 8 ? b : 65535 * 8);
}

extern "C" cudaError_t cuda_gelu_tanh_gate(bf16 *out, const bf16 *gate, const bf16 *up, int ld, int n_rows,
                                           int width, cudaStream_t stream) {
    long long n = (long long)n_rows * width;
    if (n <= 0)
        return cudaSuccess;
    if (ld < width)
        return cudaErrorInvalidValue;
    CUDA_LAUNCH(gelu_tanh_gate_kernel, elementwise_blocks(n), 256, 0, stream, (bf16_t *)out,
                (const bf16_t *)gate, (const bf16_t *)up, ld, n_rows, width);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_gelu_tanh(bf16 *x, long long n, cudaStream_t stream) {
    if (n <= 0)
        return cudaSuccess;
    CUDA_LAUNCH(gelu_tanh_kernel, elementwise_blocks(n), 256, 0, stream, (bf16_t *)x, n);
    return cudaGetLastError();
}
