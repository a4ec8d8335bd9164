/* A fake CUDA runtime: just what the CUDA backend's host code and the GPU test
 * program call, with "device" memory in host RAM (each allocation exactly its
 * size, so ASan sees overruns) and stream capture recorded as a list of host
 * closures (fake_runtime.c). The kernels behind kernels/cuda/kernels_cuda.h are
 * either the real ones run by the CPU emulator (tests/gpu/cudaemu/, through
 * fake_submit) or plain-C stand-ins (fake_kernels.c). It lets the host code run
 * end to end where no GPU exists. */
#ifndef TESTS_GPU_FAKE_CUDA_RUNTIME_API_H
#define TESTS_GPU_FAKE_CUDA_RUNTIME_API_H

#include <stddef.h>

#ifdef __cplusplus /* kernels/cuda/<op>.cu compiled by cudaemu (tests/gpu/cudaemu/) */
extern "C" {
#endif

typedef enum { /* the real runtime's numbers */
               cudaSuccess = 0,
               cudaErrorInvalidValue = 1,
               cudaErrorMemoryAllocation = 2,
               cudaErrorInvalidConfiguration = 9,
               cudaErrorNoDevice = 100,
               cudaErrorECCUncorrectable = 214,
               cudaErrorIllegalAddress = 700,
               cudaErrorLaunchOutOfResources = 701,
               cudaErrorLaunchTimeout = 702,
               cudaErrorAssert = 710,
               cudaErrorHardwareStackError = 714,
               cudaErrorIllegalInstruction = 715,
               cudaErrorMisalignedAddress = 716,
               cudaErrorInvalidAddressSpace = 717,
               cudaErrorInvalidPc = 718,
               cudaErrorLaunchFailure = 719,
               cudaErrorUnknown = 999,
} cudaError_t;

typedef struct FakeStream *cudaStream_t;
typedef struct FakeEvent *cudaEvent_t;
typedef struct FakeGraph *cudaGraph_t;
typedef struct FakeGraph *cudaGraphExec_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3
};
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1 };
enum cudaDeviceAttr { cudaDevAttrComputeCapabilityMajor = 75, cudaDevAttrComputeCapabilityMinor = 76 };
#define cudaStreamNonBlocking 0x01
#define cudaEventDisableTiming 0x02

struct cudaDeviceProp {
    char name[256];
    int major, minor;
};

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int dev);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int dev);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);

/* fake_runtime.c: a kernel launch: runs fn(args) now, or records a copy of
 * args when the stream is being captured (replayed by cudaGraphLaunch).
 * Counted, and faulted when a fault is armed (below): as in real CUDA, a
 * failed launch is reported by the next cudaGetLastError(), a sticky fault
 * by every later call. */
void fake_submit(void (*fn)(void *args), const void *args, size_t args_bytes);
/* fake_submit, then what a launcher returns in real CUDA (cudaGetLastError()
 * after <<<>>>). */
cudaError_t fake_launch(void (*fn)(void *args), const void *args, size_t args_bytes);
/* A launch the caller found invalid (tests/gpu/cudaemu/: a block too large, too
 * much shared memory): not run, and the next cudaGetLastError() returns e. */
void fake_launch_rejected(cudaError_t e);
/* Launches recorded in the decode graph and replays done (tests). */
int fake_graph_replays(void);

/* Fault injection (tests). Kernel launches are counted as they execute (a
 * captured graph's kernels at each replay, cuBLASLt matmuls included).
 * fake_fail_launch(n, e): the n-th launch from now (n >= 1) fails with e.
 * fake_fail_malloc(n, e): the n-th cudaMalloc from now fails with e.
 * Sticky errors (fake_error_is_sticky: illegal address, launch failure, ...)
 * then stay, as in real CUDA: the faulting kernel does not run, the launch
 * itself succeeds (execution is asynchronous), and every later call returns
 * the error, until fake_reset(). Other errors fail that one call.
 * The same from the environment, for whole programs (the server):
 *   FAKE_CUDA_DEVICES=0       no device
 *   FAKE_CUDA_MEMORY_MB=N     device memory (default 80 GiB); cudaMalloc past it fails
 *   FAKE_CUDA_FAULT_FILE=P    when file P exists at a kernel launch, that launch fails
 *                             with the error named in it (illegal_address,
 *                             launch_failure, memory_allocation) and P is removed
 *   FAKE_CUDA_FAIL_MALLOC=N   the N-th cudaMalloc fails (out of memory) */
void fake_fail_launch(long n, cudaError_t error);
void fake_fail_malloc(long n, cudaError_t error);
void fake_set_device_memory(size_t bytes);
void fake_set_device_count(int n);
void fake_reset(void);
int fake_error_is_sticky(cudaError_t error);
/* Device allocations live now, and their bytes (pinned host memory is not counted). */
void fake_device_allocations(int *count, size_t *bytes);
/* Kernel launches executed so far. */
long fake_launch_count(void);

#ifdef __cplusplus
}
#endif

#endif
