/* SigLIP vision tower + Gemma 3 projector on the CPU (MODEL.md "Vision tower",
 * "Projector"), written top to bottom like the text forward pass:
 *   x = patch_embed(pixels) + pos_embed
 *   per layer: x += out(attn(ln1(x)));  x += fc2(gelu_tanh(fc1(ln2(x))))
 *   x = post_ln(x)
 *   soft = rmsnorm(avgpool_k(x)) . mm_proj            (mm_proj stored [in, out]) */
#include "engine/vision_cpu.h"

#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"

struct VisionCpu {
    const ModelConfig *config;
    const ModelWeights *w;
    int n_patches, grid, pool_k;
    float *x;               /* [patches, hidden] residual stream */
    float *xn;              /* [patches, hidden] normed */
    float *q, *k, *v, *att; /* [patches, hidden] */
    float *mlp;             /* [patches, intermediate] */
    float *pooled;          /* [tokens, hidden] */
};

int vision_cpu_create(VisionCpu **out, const ModelConfig *config, const ModelWeights *weights, Error *err) {
    const VisionConfig *vc = &config->vision;
    VisionCpu *v = calloc(1, sizeof *v);
    if (!v)
        return error_set(err, "vision: out of memory");
    v->config = config;
    v->w = weights;
    v->grid = vc->image_size / vc->patch_size;
    v->n_patches = v->grid * v->grid;
    int side = (int)lround(sqrt((double)config->mm_tokens_per_image));
    v->pool_k = v->grid / side;
    size_t rows = (size_t)v->n_patches, d = (size_t)vc->hidden_size;
    v->x = malloc(rows * d * sizeof(float));
    v->xn = malloc(rows * d * sizeof(float));
    v->q = malloc(rows * d * sizeof(float));
    v->k = malloc(rows * d * sizeof(float));
    v->v = malloc(rows * d * sizeof(float));
    v->att = malloc(rows * d * sizeof(float));
    v->mlp = malloc(rows * (size_t)vc->intermediate_size * sizeof(float));
    v->pooled = malloc((size_t)config->mm_tokens_per_image * d * sizeof(float));
    if (!v->x || !v->xn || !v->q || !v->k || !v->v || !v->att || !v->mlp || !v->pooled) {
        int n_patches = v->n_patches; /* v is freed below */
        vision_cpu_destroy(v);
        return error_set(err, "vision: out of memory for %d patches", n_patches);
    }
    *out = v;
    return 0;
}

void vision_cpu_destroy(VisionCpu *v) {
    if (!v)
        return;
    free(v->x), free(v->xn), free(v->q), free(v->k), free(v->v), free(v->att), free(v->mlp), free(v->pooled);
    free(v);
}

void vision_cpu_encode(VisionCpu *v, const float *pixels, float *out, float *last_hidden) {
    const VisionConfig *vc = &v->config->vision;
    const ModelWeights *w = v->w;
    int N = v->n_patches, D = vc->hidden_size, F = vc->intermediate_size;
    int heads = vc->num_heads, head_dim = D / heads;
    float eps = vc->layer_norm_eps, scale = 1.0f / sqrtf((float)head_dim);

    patch_embed(v->x, pixels, w->patch_w, w->patch_b, w->pos_embed, vc->image_size, vc->patch_size,
                vc->num_channels, D);
    for (int l = 0; l < vc->num_layers; l++) {
        const VisionLayerWeights *lw = &w->vision_layers[l];
        /* attention block (no mask) */
        layernorm(v->xn, v->x, lw->ln1_w, lw->ln1_b, N, D, eps);
        matmul(v->q, v->xn, lw->q_w, lw->q_b, N, D, D);
        matmul(v->k, v->xn, lw->k_w, lw->k_b, N, D, D);
        matmul(v->v, v->xn, lw->v_w, lw->v_b, N, D, D);
        attention_prefill(v->att, v->q, v->k, v->v, NULL, N, heads, heads, head_dim, 0, 0, scale);
        matmul(v->xn, v->att, lw->out_w, lw->out_b, N, D, D);
        residual_add(v->x, v->xn, N * D);
        /* MLP block */
        layernorm(v->xn, v->x, lw->ln2_w, lw->ln2_b, N, D, eps);
        matmul(v->mlp, v->xn, lw->fc1_w, lw->fc1_b, N, D, F);
        gelu_tanh(v->mlp, N * F);
        matmul(v->xn, v->mlp, lw->fc2_w, lw->fc2_b, N, F, D);
        residual_add(v->x, v->xn, N * D);
    }
    layernorm(v->x, v->x, w->post_ln_w, w->post_ln_b, N, D, eps);
    if (last_hidden)
        for (size_t i = 0; i < (size_t)N * D; i++)
            last_hidden[i] = v->x[i];

    /* projector */
    int tokens = v->config->mm_tokens_per_image;
    avgpool_grid(v->pooled, v->x, v->grid, v->pool_k, D);
    rmsnorm(v->pooled, v->pooled, w->mm_soft_norm, tokens, D, eps);
    matmul_in_out(out, v->pooled, w->mm_proj, tokens, D, v->config->text.hidden_size);
}
