/* The CPU backend (engine/backend.h): Gemma 3's decoder on kernels/cpu, in
 * fp32 with bf16 weights read in place from the checkpoint mapping.
 *
 * forward_prompt() and forward_token() read top to bottom like llama2.c's
 * forward(); per layer, with the residual stream x:
 *   h = attn(rmsnorm_in(x));     x += rmsnorm_post_attn(h)
 *   h = mlp(rmsnorm_pre_ff(x));  x += rmsnorm_post_ff(h)
 * Every buffer is sized in create(); decode allocates nothing, and prefill
 * only the AMX GEMM's scratch inside kernels/cpu (grown once, see kernels.h). */
#include "engine/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kv_cache.h"
#include "engine/vision_cpu.h"
#include "kernels/kernels.h"

/* Prompt rows per MLP pass: bounds the [rows, intermediate] buffers. */
#define MLP_CHUNK 256

typedef struct {
    const ModelConfig *config;
    const ModelWeights *w;
    BackendOptions opt;
    int D, F, H, KVH, Dh, L, V, q_dim, kv_dim;
    float attn_scale;
    /* activations, [max_prefill rows, ...]; decode uses row 0 */
    float *x;         /* [P, D] residual stream */
    float *xn;        /* [P, D] normed input of a block, then its output */
    float *q;         /* [P, q_dim] */
    float *k, *v;     /* [P, kv_dim] */
    float *att;       /* [P, q_dim] attention output */
    float *gate, *up; /* [MLP_CHUNK, F] */
    KvCache cache;
    VisionCpu *vision; /* NULL for text-only models */
    BackendCapture cap;
    int has_cap;
} CpuState;

static float theta_of(const TextConfig *tc, int layer) {
    return tc->layer_is_global[layer] ? tc->rope_theta_global : tc->rope_theta_local;
}
static float rope_scale_of(const TextConfig *tc, int layer) {
    return tc->layer_is_global[layer] ? tc->rope_scale_global : tc->rope_scale_local;
}

/* The MLP of one layer over rows [0, n) of xn, in chunks; result into xn. */
static void mlp_rows(CpuState *s, const TextLayerWeights *lw, int n) {
    for (int r0 = 0; r0 < n; r0 += MLP_CHUNK) {
        int rows = n - r0 < MLP_CHUNK ? n - r0 : MLP_CHUNK;
        float *in = s->xn + (size_t)r0 * s->D;
        matmul(s->gate, in, lw->gate_proj, NULL, rows, s->D, s->F);
        matmul(s->up, in, lw->up_proj, NULL, rows, s->D, s->F);
        gelu_tanh_gate(s->gate, s->gate, s->up, rows * s->F);
        matmul(in, s->gate, lw->down_proj, NULL, rows, s->F, s->D);
    }
}

static void capture_hidden(CpuState *s, int index, const float *rows, int n) {
    if (s->has_cap && s->cap.hidden && n <= s->cap.hidden_capacity)
        memcpy(s->cap.hidden + (size_t)index * n * s->D, rows, (size_t)n * s->D * sizeof(float));
}

/* The prompt at positions 0..n-1; logits of the last row (or all rows into the capture). */
static void forward_prompt(CpuState *s, const int32_t *tokens, int n, const int32_t *image_block,
                           const float *image_embeds, float *logits) {
    const TextConfig *tc = &s->config->text;
    const ModelWeights *w = s->w;
    int D = s->D;
    float eps = tc->rms_norm_eps;

    /* embeddings: text rows scaled, image rows replaced by the projector's output */
    embedding_lookup(s->x, w->embed, tokens, n, D, s->opt.embed_scale);
    if (image_block && image_embeds) {
        size_t next = 0;
        for (int t = 0; t < n; t++)
            if (image_block[t] >= 0)
                memcpy(s->x + (size_t)t * D, image_embeds + next++ * D, (size_t)D * sizeof(float));
    }
    capture_hidden(s, 0, s->x, n);

    for (int l = 0; l < s->L; l++) {
        const TextLayerWeights *lw = &w->layers[l];
        int global = tc->layer_is_global[l];
        /* attention block */
        rmsnorm(s->xn, s->x, lw->input_norm, n, D, eps);
        matmul(s->q, s->xn, lw->q_proj, NULL, n, D, s->q_dim);
        matmul(s->k, s->xn, lw->k_proj, NULL, n, D, s->kv_dim);
        matmul(s->v, s->xn, lw->v_proj, NULL, n, D, s->kv_dim);
        qk_norm_rope(s->q, lw->q_norm, n, s->H, s->Dh, 0, theta_of(tc, l), rope_scale_of(tc, l), eps);
        qk_norm_rope(s->k, lw->k_norm, n, s->KVH, s->Dh, 0, theta_of(tc, l), rope_scale_of(tc, l), eps);
        kv_cache_store_prompt(&s->cache, l, s->k, s->v, n);
        attention_prefill(s->att, s->q, s->k, s->v, image_block, n, s->H, s->KVH, s->Dh, 1,
                          global ? 0 : tc->sliding_window, s->attn_scale);
        matmul(s->xn, s->att, lw->o_proj, NULL, n, s->q_dim, D);
        rmsnorm_residual(s->x, s->xn, lw->post_attn_norm, n, D, eps);
        /* MLP block */
        rmsnorm(s->xn, s->x, lw->pre_ff_norm, n, D, eps);
        mlp_rows(s, lw, n);
        rmsnorm_residual(s->x, s->xn, lw->post_ff_norm, n, D, eps);
        if (l < s->L - 1)
            capture_hidden(s, l + 1, s->x, n);
    }

    /* final norm and output head: every row when the test capture asks, else the last */
    int all = s->has_cap && (s->cap.hidden || s->cap.all_logits);
    int first = all ? 0 : n - 1;
    rmsnorm(s->xn + (size_t)first * D, s->x + (size_t)first * D, w->final_norm, n - first, D, eps);
    capture_hidden(s, s->L, s->xn, n);
    if (s->has_cap && s->cap.all_logits && n <= s->cap.logits_capacity)
        matmul(s->cap.all_logits, s->xn, w->lm_head, NULL, n, D, s->V);
    matmul(logits, s->xn + (size_t)(n - 1) * D, w->lm_head, NULL, 1, D, s->V);
}

/* One token at position pos over the KV cache. */
static void forward_token(CpuState *s, int32_t token, int pos, float *logits) {
    const TextConfig *tc = &s->config->text;
    const ModelWeights *w = s->w;
    int D = s->D;
    float eps = tc->rms_norm_eps;

    embedding_lookup(s->x, w->embed, &token, 1, D, s->opt.embed_scale);
    for (int l = 0; l < s->L; l++) {
        const TextLayerWeights *lw = &w->layers[l];
        float *k_row = s->cache.k[l] + kv_slot(&s->cache, l, pos);
        float *v_row = s->cache.v[l] + kv_slot(&s->cache, l, pos);
        /* attention block: K and V go straight into the cache slot */
        rmsnorm(s->xn, s->x, lw->input_norm, 1, D, eps);
        matmul(s->q, s->xn, lw->q_proj, NULL, 1, D, s->q_dim);
        matmul(k_row, s->xn, lw->k_proj, NULL, 1, D, s->kv_dim);
        matmul(v_row, s->xn, lw->v_proj, NULL, 1, D, s->kv_dim);
        qk_norm_rope(s->q, lw->q_norm, 1, s->H, s->Dh, pos, theta_of(tc, l), rope_scale_of(tc, l), eps);
        qk_norm_rope(k_row, lw->k_norm, 1, s->KVH, s->Dh, pos, theta_of(tc, l), rope_scale_of(tc, l), eps);
        attention_decode(s->att, s->q, s->cache.k[l], s->cache.v[l], kv_keys(&s->cache, l, pos), s->H, s->KVH,
                         s->Dh, s->attn_scale);
        matmul(s->xn, s->att, lw->o_proj, NULL, 1, s->q_dim, D);
        rmsnorm_residual(s->x, s->xn, lw->post_attn_norm, 1, D, eps);
        /* MLP block */
        rmsnorm(s->xn, s->x, lw->pre_ff_norm, 1, D, eps);
        mlp_rows(s, lw, 1);
        rmsnorm_residual(s->x, s->xn, lw->post_ff_norm, 1, D, eps);
    }
    rmsnorm(s->xn, s->x, w->final_norm, 1, D, eps);
    matmul(logits, s->xn, w->lm_head, NULL, 1, D, s->V);
}

static void cpu_destroy(void *state) {
    CpuState *s = state;
    if (!s)
        return;
    free(s->x), free(s->xn), free(s->q), free(s->k), free(s->v), free(s->att), free(s->gate), free(s->up);
    kv_cache_free(&s->cache);
    vision_cpu_destroy(s->vision);
    free(s);
}

static int cpu_create(void **state, const ModelConfig *config, const ModelWeights *weights,
                      const BackendOptions *options, Error *err) {
    const TextConfig *tc = &config->text;
    if (options->max_context < 1 || options->max_prefill < 1 || options->max_prefill > options->max_context)
        return error_set(err, "cpu backend: bad sizes (max_context %d, max_prefill %d)", options->max_context,
                         options->max_prefill);
    if (tc->attn_logit_softcapping != 0 || tc->final_logit_softcapping != 0)
        return error_set(err, "cpu backend: logit soft-capping is not implemented (config.json)");
    if (tc->num_kv_heads < 1 || tc->num_heads % tc->num_kv_heads != 0)
        return error_set(err, "cpu backend: %d query heads do not split over %d KV heads", tc->num_heads,
                         tc->num_kv_heads);
    if (tc->head_dim > 1024)
        return error_set(err, "cpu backend: head_dim %d is over 1024", tc->head_dim);
    if (config->has_vision &&
        config->vision.num_channels * config->vision.patch_size * config->vision.patch_size > 4 * 32 * 32)
        return error_set(err, "cpu backend: patch vector of %d values is over 4096",
                         config->vision.num_channels * config->vision.patch_size * config->vision.patch_size);
    if (config->has_vision && config->vision.hidden_size % config->vision.num_heads != 0)
        return error_set(err, "cpu backend: vision hidden %d does not split over %d heads",
                         config->vision.hidden_size, config->vision.num_heads);

    CpuState *s = calloc(1, sizeof *s);
    if (!s)
        return error_set(err, "cpu backend: out of memory");
    s->config = config;
    s->w = weights;
    s->opt = *options;
    s->D = tc->hidden_size;
    s->F = tc->intermediate_size;
    s->H = tc->num_heads;
    s->KVH = tc->num_kv_heads;
    s->Dh = tc->head_dim;
    s->L = tc->num_layers;
    s->V = tc->vocab_size;
    s->q_dim = s->H * s->Dh;
    s->kv_dim = s->KVH * s->Dh;
    s->attn_scale = 1.0f / sqrtf(tc->query_pre_attn_scalar);
    size_t P = (size_t)options->max_prefill;
    size_t mlp_rows_n = P < MLP_CHUNK ? P : MLP_CHUNK;
    s->x = malloc(P * s->D * sizeof(float));
    s->xn = malloc(P * (s->D > s->q_dim ? s->D : s->q_dim) * sizeof(float));
    s->q = malloc(P * s->q_dim * sizeof(float));
    s->k = malloc(P * s->kv_dim * sizeof(float));
    s->v = malloc(P * s->kv_dim * sizeof(float));
    s->att = malloc(P * s->q_dim * sizeof(float));
    s->gate = malloc(mlp_rows_n * s->F * sizeof(float));
    s->up = malloc(mlp_rows_n * s->F * sizeof(float));
    if (!s->x || !s->xn || !s->q || !s->k || !s->v || !s->att || !s->gate || !s->up) {
        cpu_destroy(s);
        return error_set(err, "cpu backend: out of memory for %zu prompt rows", P);
    }
    if (kv_cache_init(&s->cache, tc, options->max_context, err) != 0 ||
        (config->has_vision && vision_cpu_create(&s->vision, config, weights, err) != 0)) {
        cpu_destroy(s);
        return -1;
    }
    kernels_set_threads(options->n_threads);
    *state = s;
    return 0;
}

static const char *cpu_device_name(void *state) {
    return NULL;
}

static int cpu_encode_image(void *state, const float *pixels, float *out, Error *err) {
    CpuState *s = state;
    if (!s->vision)
        return error_set(err, "this model has no vision tower (text-only checkpoint)");
    vision_cpu_encode(s->vision, pixels, out, s->has_cap ? s->cap.vision_hidden : NULL);
    return 0;
}

static int cpu_prefill(void *state, const int32_t *tokens, int n, const int32_t *image_block,
                       const float *image_embeds, float *logits, Error *err) {
    CpuState *s = state;
    if (n < 1 || n > s->opt.max_prefill)
        return error_set(err, "prefill of %d tokens (this backend takes 1..%d)", n, s->opt.max_prefill);
    forward_prompt(s, tokens, n, image_block, image_embeds, logits);
    return 0;
}

static int cpu_decode(void *state, int32_t token, int pos, float *logits, Error *err) {
    CpuState *s = state;
    if (pos < 1 || pos >= s->opt.max_context)
        return error_set(err, "decode at position %d (the KV cache holds %d)", pos, s->opt.max_context);
    forward_token(s, token, pos, logits);
    return 0;
}

static void cpu_set_capture(void *state, const BackendCapture *capture) {
    CpuState *s = state;
    s->has_cap = capture != NULL;
    if (capture)
        s->cap = *capture;
}

static const Backend cpu_backend = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .device_name = cpu_device_name,
    .encode_image = cpu_encode_image,
    .prefill = cpu_prefill,
    .decode = cpu_decode,
    .set_capture = cpu_set_capture,
};

const Backend *backend_cpu_get(void) {
    return &cpu_backend;
}
