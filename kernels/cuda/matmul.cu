/* Batch-1 GEMV: the decode step's projections and the output head. Twin: kernels/cpu/matmul.c
 * (matmul with one row). Prefill and vision GEMMs go through cuBLASLt (engine/cuda/gemm.c).
 * Math: y[o] = sum_i x[i] * w[o, i] (+ bias[o]), fp32 accumulation, one rounding at the store.
 * Memory bound: a warp per output row, each lane streams 16-byte loads of 8 bf16
 * weights, 4 loads in flight, then a shuffle reduce; 8 rows (warps) per block. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

// ---- kernels

#define GEMV_WARPS 8
#define GEMV_UNROLL 4

__device__ __forceinline__ void store_out(bf16_t *y, float v) {
    *y = to_bf16(v);
}
__device__ __forceinline__ void store_out(float *y, float v) {
    *y = v;
}

template <typename OutT>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_kernel(OutT *y, const bf16_t *x, const bf16_t *w, const bf16_t *bias, int in_dim, int out_dim) {
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (row >= out_dim)
        return;
    const uint4 *wr = reinterpret_cast<const uint4 *>(w + (size_t)row * in_dim);
    const uint4 *xv = reinterpret_cast<const uint4 *>(x);
    int n_chunks = in_dim / 8; /* 16-byte chunks per row */
    float acc = 0.0f;
    int c = lane;
    for (; c + 32 * (GEMV_UNROLL - 1) < n_chunks; c += 32 * GEMV_UNROLL) {
        uint4 wv[GEMV_UNROLL], xx[GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            wv[u] = __ldcs(wr + c + 32 * u); /* streamed once per token: don't keep in cache */
            xx[u] = __ldg(xv + c + 32 * u);
        }
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            float wf[8], xf[8];
            bf16x8_to_f32(*reinterpret_cast<const bf16x8 *>(&wv[u]), wf);
            bf16x8_to_f32(*reinterpret_cast<const bf16x8 *>(&xx[u]), xf);
#pragma unroll
            for (int i = 0; i < 8; i++)
                acc = fmaf(wf[i], xf[i], acc);
        }
    }
    for (; c < n_chunks; c += 32) {
        uint4 wv = __ldcs(wr + c), xx = __ldg(xv + c);
        float wf[8], xf[8];
        bf16x8_to_f32(*reinterpret_cast<const bf16x8 *>(&wv), wf);
        bf16x8_to_f32(*reinterpret_cast<const bf16x8 *>(&xx), xf);
#pragma unroll
        for (int i = 0; i < 8; i++)
            acc = fmaf(wf[i], xf[i], acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) {
        if (bias)
            acc += to_f32(bias[row]);
        store_out(y + row, acc);
    }
}

/* Fallback for in_dim % 8 != 0 or unaligned rows (tiny test models): scalar loads. */
template <typename OutT>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_scalar_kernel(OutT *y, const bf16_t *x, const bf16_t *w, const bf16_t *bias, int in_dim,
                       int out_dim) {
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (row >= out_dim)
        return;
    const bf16_t *wr = w + (size_t)row * in_dim;
    float acc = 0.0f;
    for (int i = lane; i < in_dim; i += 32)
        acc = fmaf(to_f32(wr[i]), to_f32(x[i]), acc);
    acc = warp_sum(acc);
    if (lane == 0) {
        if (bias)
            acc += to_f32(bias[row]);
        store_out(y + row, acc);
    }
}

template <typename OutT>
static cudaError_t launch_gemv(OutT *y, const bf16_t *x, const bf16_t *w, const bf16_t *bias, int in_dim,
                               int out_dim, cudaStream_t stream) {
    if (in_dim <= 0 || out_dim <= 0 || !y || !x || !w)
        return cudaErrorInvalidValue;
    unsigned blocks = ceil_div_u(out_dim, GEMV_WARPS);
    if (in_dim % 8 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)w & 15) == 0)
        CUDA_LAUNCH(gemv_kernel<OutT>, blocks, GEMV_WARPS * 32, 0, stream, y, x, w, bias, in_dim, out_dim);
    else
        CUDA_LAUNCH(gemv_scalar_kernel<OutT>, blocks, GEMV_WARPS * 32, 0, stream, y, x, w, bias, in_dim,
                    out_dim);
    return cudaGetLastError();
}

// ---- launchers

extern "C" cudaError_t cuda_gemv(bf16 *y, const bf16 *x, const bf16 *w, const bf16 *bias, int in_dim,
                                 int out_dim, cudaStream_t stream) {
    return launch_gemv<bf16_t>((bf16_t *)y, (const bf16_t *)x, (const bf16_t *)w, (const bf16_t *)bias,
                               in_dim, out_dim, stream);
}

extern "C" cudaError_t cuda_gemv_f32(float *y, const bf16 *x, const bf16 *w, int in_dim, int out_dim,
                                     cudaStream_t stream) {
    return launch_gemv<float>(y, (const bf16_t *)x, (const bf16_t *)w, nullptr, in_dim, out_dim, stream);
}
