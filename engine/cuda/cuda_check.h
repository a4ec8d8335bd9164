/* Checks for CUDA runtime and cuBLASLt calls in the CUDA backend's host code.
 * Every call that can fail goes through one of these: a failure fills the
 * function's `Error *err` with file, line, the call and the library's message,
 * and returns -1 from the enclosing function. */
#ifndef ENGINE_CUDA_CUDA_CHECK_H
#define ENGINE_CUDA_CUDA_CHECK_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "util/error.h"

#define CUDA_TRY(call)                                                                                       \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess)                                                                               \
            return error_set(err, "%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_));       \
    } while (0)

#define CUBLAS_TRY(call)                                                                                     \
    do {                                                                                                     \
        cublasStatus_t s_ = (call);                                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                     \
            return error_set(err, "%s:%d: %s: %s", __FILE__, __LINE__, #call, cublasLtGetStatusString(s_));  \
    } while (0)

#endif
