/* SigLIP patch embedding: the P x P stride-P convolution as a GEMM, plus bias
 * and the learned position embedding:
 *   out[p, o] = sum_j u_p[j] * w[o, j] + bias[o] + pos_embed[p, o],
 *   u_p[c*P*P + ky*P + kx] = pixels[c, row*P + ky, col*P + kx],  p = row * G + col.
 * Patches are gathered 4 at a time into a stack buffer and multiplied as one tile. */
#include <stddef.h>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

#define MAX_PATCH_VEC (4 * 32 * 32) /* channels * P * P */

typedef struct {
    float *out;
    const float *pixels;
    const bf16 *w, *bias, *pos_embed;
    int image_size, patch, channels, hidden, grid;
} PatchJob;

static void gather(float *u, const PatchJob *j, int p) {
    int row = p / j->grid, col = p % j->grid, P = j->patch;
    for (int c = 0; c < j->channels; c++)
        for (int ky = 0; ky < P; ky++)
            for (int kx = 0; kx < P; kx++)
                u[(c * P + ky) * P + kx] =
                    j->pixels[((size_t)c * j->image_size + row * P + ky) * j->image_size + col * P + kx];
}

/* Range over groups of 4 patches. */
static void patch_range(void *ctx, int start, int end) {
    const PatchJob *j = ctx;
    const SimdOps *ops = simd_ops();
    int n_patches = j->grid * j->grid, vec = j->channels * j->patch * j->patch;
    float u[4][MAX_PATCH_VEC], tile[16];
    for (int g = start; g < end; g++) {
        int p0 = g * 4, np = n_patches - p0 < 4 ? n_patches - p0 : 4;
        for (int a = 0; a < np; a++)
            gather(u[a], j, p0 + a);
        for (int o = 0; o < j->hidden; o += 4) {
            if (np == 4 && o + 4 <= j->hidden) {
                ops->tile4x4_bf16(tile, 4, u[0], MAX_PATCH_VEC, j->w + (size_t)o * vec, vec, vec);
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++)
                        j->out[(size_t)(p0 + a) * j->hidden + o + b] = tile[a * 4 + b];
            } else {
                for (int a = 0; a < np; a++)
                    for (int b = o; b < o + 4 && b < j->hidden; b++)
                        j->out[(size_t)(p0 + a) * j->hidden + b] =
                            ops->dot_bf16(u[a], j->w + (size_t)b * vec, vec);
            }
        }
        for (int a = 0; a < np; a++) {
            float *o = j->out + (size_t)(p0 + a) * j->hidden;
            const bf16 *pe = j->pos_embed + (size_t)(p0 + a) * j->hidden;
            for (int i = 0; i < j->hidden; i++)
                o[i] = (o[i] + bf16_to_f32(j->bias[i])) + bf16_to_f32(pe[i]);
        }
    }
}

void patch_embed(float *out, const float *pixels, const bf16 *w, const bf16 *bias, const bf16 *pos_embed,
                 int image_size, int patch, int channels, int hidden) {
    if (channels * patch * patch > MAX_PATCH_VEC)
        return; /* the engine rejects such configs at load */
    int grid = image_size / patch;
    PatchJob job = {out, pixels, w, bias, pos_embed, image_size, patch, channels, hidden, grid};
    parallel_for((grid * grid + 3) / 4, 2, patch_range, &job);
}
