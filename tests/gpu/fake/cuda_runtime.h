/* See cuda_runtime_api.h (the fake runtime). */
#include "cuda_runtime_api.h"
