/* Token embedding lookup with Gemma's scale.
 *   out[t, :] = table[ids[t], :] * scale      (ids already checked by the engine) */
#include <stddef.h>

#include "kernels/kernels.h"

void embedding_lookup(float *out, const bf16 *table, const int32_t *ids, int n_tokens, int dim, float scale) {
    for (int t = 0; t < n_tokens; t++) {
        const bf16 *row = table + (size_t)ids[t] * dim;
        float *o = out + (size_t)t * dim;
        for (int i = 0; i < dim; i++)
            o[i] = bf16_to_f32(row[i]) * scale;
    }
}
