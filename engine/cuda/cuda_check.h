/* Checks for CUDA runtime and cuBLASLt calls in the CUDA backend's host code.
 * Every call that can fail goes through one of these: a failure fills the
 * function's `Error *err` with file, line, the call and the library's message,
 * and returns -1 from the enclosing function. It also remembers the failure's
 * CUDA error on this thread, so the backend's entry points can tell a lost
 * device from a request that ran out of memory (backend_cuda.c). */
#ifndef ENGINE_CUDA_CUDA_CHECK_H
#define ENGINE_CUDA_CUDA_CHECK_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "util/error.h"

#define CUDA_TRY(call)                                                                                       \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess)                                                                               \
            return cuda_check_failed(err, e_, __FILE__, __LINE__, #call);                                    \
    } while (0)

#define CUBLAS_TRY(call)                                                                                     \
    do {                                                                                                     \
        cublasStatus_t s_ = (call);                                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                     \
            return cublas_check_failed(err, s_, __FILE__, __LINE__, #call);                                  \
    } while (0)

/* Fill err, remember the failure, return -1. */
int cuda_check_failed(Error *err, cudaError_t e, const char *file, int line, const char *call);
/* cuBLASLt's allocation failure is remembered as cudaErrorMemoryAllocation,
 * any other as cudaErrorUnknown (the backend then asks the device). */
int cublas_check_failed(Error *err, cublasStatus_t s, const char *file, int line, const char *call);
/* The CUDA error of the last failed check on this thread since the last
 * call (cudaSuccess: none); clears it. */
cudaError_t cuda_check_take_failure(void);

#ifdef __clang_analyzer__
/* As error.h: tell the analyzer that both return -1. */
#define cuda_check_failed(...) (cuda_check_failed(__VA_ARGS__), -1)
#define cublas_check_failed(...) (cublas_check_failed(__VA_ARGS__), -1)
#endif

#endif
