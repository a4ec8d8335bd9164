/* Shared device helpers of the CUDA kernels: bf16 <-> fp32, 16-byte vectors of
 * 8 bf16, warp and block reductions. Included by every kernels/cuda/<op>.cu.
 *
 * Storage on the GPU is bf16 (activations and weights, like transformers in
 * bf16); every kernel computes in fp32 and rounds once when it stores. */
#ifndef KERNELS_CUDA_COMMON_CUH
#define KERNELS_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16_t;

/* The three CUDA constructs the CPU emulator (tests/gpu/cudaemu/, which defines
 * CUDAEMU) cannot take as written, each behind one helper so the kernels
 * compile unmodified for both:
 *   CUDA_LAUNCH(kernel, grid, block, smem, stream, args...)  kernel<<<grid, block, smem, stream>>>(args...)
 *   CUDA_DYNAMIC_SMEM(type, name)                            extern __shared__ type name[] (16-byte aligned)
 *   mma_bf16_16816(c, a0..a3, b0, b1)                        one mma.sync.m16n8k16 (below) */
#ifdef CUDAEMU
#define CUDA_LAUNCH(kernel, grid, block, smem, stream, ...)                                                  \
    cudaemu::launch(#kernel, kernel, grid, block, smem, stream, __VA_ARGS__)
#define CUDA_DYNAMIC_SMEM(type, name) type *name = reinterpret_cast<type *>(cudaemu::dynamic_smem())
#else
#define CUDA_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<grid, block, smem, stream>>>(__VA_ARGS__)
#define CUDA_DYNAMIC_SMEM(type, name) extern __shared__ __align__(16) type name[]
#endif

/* D = A B + C on tensor cores: one m16n8k16 bf16 MMA with fp32 accumulators, a
 * warp-wide instruction (sm_80+: Ampere, Ada, Hopper). Fragment layout (PTX ISA,
 * "Matrix Fragments for mma.m16n8k16", g = lane / 4, t = lane % 4; each 32-bit
 * register holds two bf16, the lower column / k index in the low half):
 *   a0 (row g, k 2t..2t+1)  a1 (row g+8, k 2t..)  a2 (row g, k 2t+8..)  a3 (row g+8, k 2t+8..)
 *   b0 (k 2t..2t+1, col g)  b1 (k 2t+8.., col g)
 *   c0,c1 (row g, col 2t, 2t+1)  c2,c3 (row g+8, col 2t, 2t+1)
 * The emulator rebuilds the 16x16 A, 16x8 B and 16x8 C of the warp from these
 * layouts (tests/gpu/cudaemu/cudaemu.cpp); tests/gpu/run.sh pins it to the GPU. */
__device__ __forceinline__ void mma_bf16_16816(float c[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
#ifdef CUDAEMU
    cudaemu::mma_m16n8k16_bf16(c, a0, a1, a2, a3, b0, b1);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ float to_f32(bf16_t v) {
    return __bfloat162float(v);
}
__device__ __forceinline__ bf16_t to_bf16(float v) {
    return __float2bfloat16_rn(v);
}

/* 8 bf16 in one 16-byte load/store. */
struct __align__(16) bf16x8 {
    __nv_bfloat162 h[4];
};

__device__ __forceinline__ void bf16x8_to_f32(const bf16x8 &v, float out[8]) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 f = __bfloat1622float2(v.h[i]);
        out[2 * i] = f.x;
        out[2 * i + 1] = f.y;
    }
}

__device__ __forceinline__ bf16x8 f32_to_bf16x8(const float in[8]) {
    bf16x8 v;
#pragma unroll
    for (int i = 0; i < 4; i++)
        v.h[i] = __floats2bfloat162_rn(in[2 * i], in[2 * i + 1]);
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the whole block (blockDim.x a multiple of 32, <= 1024); every thread
 * gets the result. `scratch` holds 33 floats; the call syncs the block. */
__device__ __forceinline__ float block_sum(float v, float *scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* scratch may still be read by a previous call */
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float t = lane < n_warps ? scratch[lane] : 0.0f;
        t = warp_sum(t);
        if (lane == 0)
            scratch[32] = t;
    }
    __syncthreads();
    return scratch[32];
}

__device__ __forceinline__ float block_max(float v, float *scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float t = lane < n_warps ? scratch[lane] : -INFINITY;
        t = warp_max(t);
        if (lane == 0)
            scratch[32] = t;
    }
    __syncthreads();
    return scratch[32];
}

static inline unsigned ceil_div_u(long long a, long long b) {
    return (unsigned)((a + b - 1) / b);
}

#endif
