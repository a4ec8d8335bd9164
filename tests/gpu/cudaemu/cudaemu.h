/* cudaemu: the CUDA device constructs our kernels use (kernels/cuda/<op>.cu), as
 * host C++, so the unmodified kernels run on the CPU against the fake runtime
 * (tests/gpu/fake/). Built with clang++ -DCUDAEMU (tests/gpu/cudaemu/cudaemu.mk).
 *
 * Execution model (cudaemu.cpp): a launch runs its blocks one at a time; each
 * CUDA thread of the block is a fiber with its own small stack. A fiber runs
 * until it reaches a rendezvous point: __syncthreads (the whole block) or a
 * warp collective (__shfl_*_sync, mma.sync: the lanes of the mask). Which
 * fiber runs next is the schedule (CUDAEMU_SCHEDULE). Deadlocks, divergent
 * barriers, a collective whose lanes exited or diverged abort the program with
 * the kernel, the block and where every thread waits. Static __shared__
 * variables live in one linker section and dynamic shared memory in an
 * exact-size heap block; both are filled with NaN (all bits set) at every
 * block start. Launches are checked against the limits of the selected
 * architecture (CUDAEMU_ARCH=sm_89, the default, or sm_90).
 *
 * Environment:
 *   CUDAEMU_SCHEDULE   forward (default) | reverse | random | warp-greedy-asc | warp-greedy-desc
 *                      (warp-greedy = warp-greedy-asc)
 *   CUDAEMU_SEED       the random schedule's seed (default 1)
 *   CUDAEMU_ARCH       sm_89 | sm_90
 *   CUDAEMU_STACK_KB   each fiber's stack (default 64; 256 under ASan) */
#ifndef CUDAEMU_H
#define CUDAEMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <utility>

#include <cuda_runtime_api.h>

#include "cuda_bf16.h"
#include "cudaemu_types.h"

#ifndef CUDAEMU
#define CUDAEMU 1
#endif

/* ---- qualifiers */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* Static shared memory: one copy per program (one block runs at a time) in the
 * section cudaemu_shared, which the emulator poisons at every block start. */
#define __shared__ static __attribute__((section("cudaemu_shared"), aligned(16)))

/* ---- the thread's coordinates (set by the scheduler at each switch) */
extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;

namespace cudaemu {

/* ---- rendezvous points (cudaemu.cpp) */
void syncthreads(const char *file, int line);
enum WarpOp { OP_SHFL_XOR, OP_SHFL_DOWN, OP_SHFL_UP, OP_SHFL_IDX, OP_SYNCWARP, OP_MMA };
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width, const char *file,
                         int line);
void mma_m16n8k16_bf16(float c[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                       uint32_t b1);
void *dynamic_smem(void);

template <typename T> T shfl(WarpOp op, unsigned mask, T v, int arg, int width, const char *file, int line) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    uint64_t r = warp_collective(op, mask, bits, arg, width, file, line);
    T out;
    memcpy(&out, &r, sizeof out);
    return out;
}

/* ---- launches (CUDA_LAUNCH in kernels/cuda/common.cuh) */
struct LaunchConfig {
    const char *name;
    const void *func;
    dim3 grid, block;
    size_t smem;
    void (*thread_main)(const void *launch); /* runs the kernel body of the current thread */
};
/* cudaSuccess, or the error the launch gets (printed with the kernel's name). */
cudaError_t check_launch(const LaunchConfig &cfg);
void run_grid(const LaunchConfig *cfg, const void *launch);
void reject_launch(cudaError_t e);

template <typename... P> struct Launch {
    LaunchConfig cfg; /* first: run_grid gets the Launch as a LaunchConfig */
    void (*kernel)(P...);
    std::tuple<P...> args;
    static void thread_main(const void *self) {
        const Launch *l = static_cast<const Launch *>(self);
        std::apply(l->kernel, l->args);
    }
    static void run(void *self) {
        Launch *l = static_cast<Launch *>(self);
        run_grid(&l->cfg, l);
    }
};

/* kernel<<<grid, block, smem, stream>>>(args...): checked now, then submitted to
 * the fake runtime (run now, or recorded when the stream is captured). */
template <typename... P, typename... A>
void launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            A &&...a) {
    (void)stream; /* the fake runtime has one in-order queue */
    Launch<P...> l{{name, (const void *)kernel, grid, block, smem, &Launch<P...>::thread_main},
                   kernel,
                   std::tuple<P...>(std::forward<A>(a)...)};
    cudaError_t e = check_launch(l.cfg);
    if (e != cudaSuccess) {
        reject_launch(e);
        return;
    }
    fake_submit(&Launch<P...>::run, &l, sizeof l);
}

} // namespace cudaemu

/* ---- the intrinsics */
#define __syncthreads() cudaemu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) cudaemu::syncwarp_at(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, v, lane_mask, ...)                                                             \
    cudaemu::shfl(cudaemu::OP_SHFL_XOR, mask, v, lane_mask, cudaemu::width_or_32(__VA_ARGS__), __FILE__,     \
                  __LINE__)
#define __shfl_down_sync(mask, v, delta, ...)                                                                \
    cudaemu::shfl(cudaemu::OP_SHFL_DOWN, mask, v, delta, cudaemu::width_or_32(__VA_ARGS__), __FILE__,        \
                  __LINE__)
#define __shfl_up_sync(mask, v, delta, ...)                                                                  \
    cudaemu::shfl(cudaemu::OP_SHFL_UP, mask, v, delta, cudaemu::width_or_32(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_sync(mask, v, src_lane, ...)                                                                  \
    cudaemu::shfl(cudaemu::OP_SHFL_IDX, mask, v, src_lane, cudaemu::width_or_32(__VA_ARGS__), __FILE__,      \
                  __LINE__)

namespace cudaemu {
static inline int width_or_32(int w = 32) {
    return w;
}
static inline void syncwarp_at(const char *file, int line, unsigned mask = 0xffffffffu) {
    warp_collective(OP_SYNCWARP, mask, 0, 0, 32, file, line);
}
} // namespace cudaemu

/* Atomics: one host thread runs a block's fibers and none is preempted
 * between two rendezvous points, so a plain read-modify-write is atomic. */
template <typename T> static inline T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> static inline T atomicMin(T *p, T v) {
    T old = *p;
    *p = v < old ? v : old;
    return old;
}
template <typename T> static inline T atomicMax(T *p, T v) {
    T old = *p;
    *p = v > old ? v : old;
    return old;
}

/* Cache-hinted loads are plain loads. */
template <typename T> static inline T __ldg(const T *p) {
    return *p;
}
template <typename T> static inline T __ldcs(const T *p) {
    return *p;
}

static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline int __float_as_int(float f) {
    int u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float __int_as_float(int u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline float rsqrtf(float x) {
    return 1.0f / sqrtf(x);
}
static inline int min(int a, int b) {
    return a < b ? a : b;
}
static inline int max(int a, int b) {
    return a > b ? a : b;
}
static inline unsigned min(unsigned a, unsigned b) {
    return a < b ? a : b;
}
static inline unsigned max(unsigned a, unsigned b) {
    return a > b ? a : b;
}
static inline long long min(long long a, long long b) {
    return a < b ? a : b;
}
static inline long long max(long long a, long long b) {
    return a > b ? a : b;
}

/* ---- cudaFuncSetAttribute (the opt-in to more than 48 KB of dynamic shared memory) */
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
namespace cudaemu {
cudaError_t func_set_attribute(const void *func, cudaFuncAttribute attr, int value);
}
template <typename F>
static inline cudaError_t cudaFuncSetAttribute(F *func, cudaFuncAttribute attr, int value) {
    return cudaemu::func_set_attribute((const void *)func, attr, value);
}

#endif
