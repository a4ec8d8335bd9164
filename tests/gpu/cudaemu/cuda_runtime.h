/* cudaemu's <cuda_runtime.h> for kernels/cuda/<op>.cu compiled as C++ on the host:
 * the fake runtime's API (tests/gpu/fake/cuda_runtime_api.h) plus the device
 * side (cudaemu.h). */
#ifndef CUDAEMU_CUDA_RUNTIME_H
#define CUDAEMU_CUDA_RUNTIME_H

#include <cuda_runtime_api.h>

#include "cudaemu.h"

#endif
