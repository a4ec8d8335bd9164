/* k x k average pooling (stride k) over a G x G grid of rows (the projector's
 * 64x64 patch grid -> 16x16 soft tokens):
 *   out[(r/k) * (G/k) + c/k, :] = (sum of rows r * G + c in the window) / k^2 */
#include <stddef.h>

#include "kernels/kernels.h"

void avgpool_grid(float *out, const float *x, int grid, int k, int dim) {
    int g = grid / k;
    float count = (float)(k * k);
    for (int pr = 0; pr < g; pr++)
        for (int pc = 0; pc < g; pc++) {
            float *o = out + ((size_t)pr * g + pc) * dim;
            for (int i = 0; i < dim; i++)
                o[i] = 0.0f;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float *row = x + ((size_t)(pr * k + ky) * grid + pc * k + kx) * dim;
                    for (int i = 0; i < dim; i++)
                        o[i] += row[i];
                }
            for (int i = 0; i < dim; i++)
                o[i] /= count;
        }
}
