/* libFuzzer target: the safetensors header parser and validator must never
 * crash, whatever the bytes; every accepted tensor must lie inside the input. */
#include <stdint.h>
#include <stdlib.h>

#include "engine/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    TensorInfo *tensors = NULL;
    size_t n = 0;
    Error err;
    if (safetensors_parse(data, size, "fuzz", &tensors, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = tensors[i].data;
            if (p < data || p + tensors[i].n_bytes > data + size)
                abort();
        }
    }
    tensor_infos_free(tensors, n);
    return 0;
}
