/* CUDA_TRY / CUBLAS_TRY failures: see cuda_check.h. */
#include "engine/cuda/cuda_check.h"

#undef cuda_check_failed /* the analyzer-only macros of cuda_check.h */
#undef cublas_check_failed

static _Thread_local cudaError_t last_failure = cudaSuccess;

int cuda_check_failed(Error *err, cudaError_t e, const char *file, int line, const char *call) {
    last_failure = e;
    return error_set(err, "%s:%d: %s: %s", file, line, call, cudaGetErrorString(e));
}

int cublas_check_failed(Error *err, cublasStatus_t s, const char *file, int line, const char *call) {
    last_failure = s == CUBLAS_STATUS_ALLOC_FAILED ? cudaErrorMemoryAllocation : cudaErrorUnknown;
    return error_set(err, "%s:%d: %s: %s", file, line, call, cublasLtGetStatusString(s));
}

cudaError_t cuda_check_take_failure(void) {
    cudaError_t e = last_failure;
    last_failure = cudaSuccess;
    return e;
}
