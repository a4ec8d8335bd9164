/* The CPU backend (engine/backend.h): Gemma 3's decoder on kernels/cpu, in
 * fp32 with bf16 weights read in place from the checkpoint mapping.
 *
 * forward_prompt() and forward_token() read top to bottom like llama2.c's
 * forward(); per layer, with the residual stream x:
 *   h = attn(rmsnorm_in(x));     x += rmsnorm_post_attn(h)
 *   h = mlp(rmsnorm_pre_ff(x));  x += rmsnorm_post_ff(h)
 * Every buffer is sized in create(); decode allocates nothing, and prefill
 * only the GEMMs' scratch inside kernels/cpu (grown once, see kernels.h).
 * Options: precision bf16 sets the kernels' PRECISION_BF16; weights q8
 * quantizes every decoder projection and the output head at create() and
 * runs them through matmul_q8 (linear() below picks). */
#include "engine/backend.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kv_cache.h"
#include "util/log.h"
#include "engine/vision_cpu.h"
#include "kernels/kernels.h"

/* Prompt rows per MLP pass: bounds the [rows, intermediate] buffers. */
#define MLP_CHUNK 256

/* One layer's projections quantized to 8 bits (weights q8); data NULL = use the bf16 weights. */
typedef struct {
    Q8Matrix q, k, v, o, gate, up, down;
} LayerQ8;

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
    LayerQ8 *q8;       /* [L] with weights q8, else NULL */
    Q8Matrix q8_head;  /* the output head, quantized (weights q8) */
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

/* y = x w^T through the 8-bit copy when there is one (weights q8), else the bf16 weights. */
static void linear(float *y, const float *x, const bf16 *w, const Q8Matrix *q, int n, int in, int out) {
    if (q && q->data)
        matmul_q8(y, x, q, NULL, n);
    else
        matmul(y, x, w, NULL, n, in, out);
}

static const Q8Matrix *layer_q8(const CpuState *s, int l, size_t offset) {
    return s->q8 ? (const Q8Matrix *)((const char *)&s->q8[l] + offset) : NULL;
}
#define Q8(s, l, name) layer_q8(s, l, offsetof(LayerQ8, name))

/* The MLP of layer l over rows [0, n) of xn, in chunks; result into xn. */
static void mlp_rows(CpuState *s, int l, int n) {
    const TextLayerWeights *lw = &s->w->layers[l];
    for (int r0 = 0; r0 < n; r0 += MLP_CHUNK) {
        int rows = n - r0 < MLP_CHUNK ? n - r0 : MLP_CHUNK;
        float *in = s->xn + (size_t)r0 * s->D;
        linear(s->gate, in, lw->gate_proj, Q8(s, l, gate), rows, s->D, s->F);
        linear(s->up, in, lw->up_proj, Q8(s, l, up), rows, s->D, s->F);
        gelu_tanh_gate(s->gate, s->gate, s->up, rows * s->F);
        linear(in, s->gate, lw->down_proj, Q8(s, l, down), rows, s->F, s->D);
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
        linear(s->q, s->xn, lw->q_proj, Q8(s, l, q), n, D, s->q_dim);
        linear(s->k, s->xn, lw->k_proj, Q8(s, l, k), n, D, s->kv_dim);
        linear(s->v, s->xn, lw->v_proj, Q8(s, l, v), n, D, s->kv_dim);
        qk_norm_rope(s->q, lw->q_norm, n, s->H, s->Dh, 0, theta_of(tc, l), rope_scale_of(tc, l), eps);
        qk_norm_rope(s->k, lw->k_norm, n, s->KVH, s->Dh, 0, theta_of(tc, l), rope_scale_of(tc, l), eps);
        kv_cache_store_prompt(&s->cache, l, s->k, s->v, n);
        attention_prefill(s->att, s->q, s->k, s->v, image_block, n, s->H, s->KVH, s->Dh, 1,
                          global ? 0 : tc->sliding_window, s->attn_scale);
        linear(s->xn, s->att, lw->o_proj, Q8(s, l, o), n, s->q_dim, D);
        rmsnorm_residual(s->x, s->xn, lw->post_attn_norm, n, D, eps);
        /* MLP block */
        rmsnorm(s->xn, s->x, lw->pre_ff_norm, n, D, eps);
        mlp_rows(s, l, n);
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
        linear(s->cap.all_logits, s->xn, w->lm_head, &s->q8_head, n, D, s->V);
    linear(logits, s->xn + (size_t)(n - 1) * D, w->lm_head, &s->q8_head, 1, D, s->V);
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
        linear(s->q, s->xn, lw->q_proj, Q8(s, l, q), 1, D, s->q_dim);
        linear(k_row, s->xn, lw->k_proj, Q8(s, l, k), 1, D, s->kv_dim);
        linear(v_row, s->xn, lw->v_proj, Q8(s, l, v), 1, D, s->kv_dim);
        qk_norm_rope(s->q, lw->q_norm, 1, s->H, s->Dh, pos, theta_of(tc, l), rope_scale_of(tc, l), eps);
        qk_norm_rope(k_row, lw->k_norm, 1, s->KVH, s->Dh, pos, theta_of(tc, l), rope_scale_of(tc, l), eps);
        attention_decode(s->att, s->q, s->cache.k[l], s->cache.v[l], kv_keys(&s->cache, l, pos), s->H, s->KVH,
                         s->Dh, s->attn_scale);
        linear(s->xn, s->att, lw->o_proj, Q8(s, l, o), 1, s->q_dim, D);
        rmsnorm_residual(s->x, s->xn, lw->post_attn_norm, 1, D, eps);
        /* MLP block */
        rmsnorm(s->xn, s->x, lw->pre_ff_norm, 1, D, eps);
        mlp_rows(s, l, 1);
        rmsnorm_residual(s->x, s->xn, lw->post_ff_norm, 1, D, eps);
    }
    rmsnorm(s->xn, s->x, w->final_norm, 1, D, eps);
    linear(logits, s->xn, w->lm_head, &s->q8_head, 1, D, s->V);
}

static void cpu_destroy(void *state) {
    CpuState *s = state;
    if (!s)
        return;
    free(s->x), free(s->xn), free(s->q), free(s->k), free(s->v), free(s->att), free(s->gate), free(s->up);
    kv_cache_free(&s->cache);
    if (s->q8)
        for (int l = 0; l < s->L; l++) {
            LayerQ8 *q = &s->q8[l];
            q8_free(&q->q), q8_free(&q->k), q8_free(&q->v), q8_free(&q->o);
            q8_free(&q->gate), q8_free(&q->up), q8_free(&q->down);
        }
    free(s->q8);
    q8_free(&s->q8_head);
    vision_cpu_destroy(s->vision);
    free(s);
}

/* weights q8: every decoder projection and the output head, quantized from the
 * bf16 checkpoint (threads split the rows). A matrix whose input width is not
 * a multiple of 32 stays bf16. */
static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int quantize_weights(CpuState *s, Error *err) {
    double t0 = seconds_now();
    s->q8 = calloc((size_t)s->L, sizeof *s->q8);
    if (!s->q8)
        return error_set(err, "cpu backend: out of memory for the q8 weights");
    size_t bytes = 0;
    for (int l = 0; l < s->L; l++) {
        const TextLayerWeights *lw = &s->w->layers[l];
        LayerQ8 *q = &s->q8[l];
        struct {
            Q8Matrix *m;
            const bf16 *w;
            int rows, cols;
        } mats[] = {{&q->q, lw->q_proj, s->q_dim, s->D},   {&q->k, lw->k_proj, s->kv_dim, s->D},
                    {&q->v, lw->v_proj, s->kv_dim, s->D},  {&q->o, lw->o_proj, s->D, s->q_dim},
                    {&q->gate, lw->gate_proj, s->F, s->D}, {&q->up, lw->up_proj, s->F, s->D},
                    {&q->down, lw->down_proj, s->D, s->F}};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            if (mats[i].cols % 32 != 0)
                continue;
            if (q8_quantize(mats[i].m, mats[i].w, mats[i].rows, mats[i].cols) != 0)
                return error_set(err, "cpu backend: out of memory quantizing layer %d to q8", l);
            bytes += q8_bytes(mats[i].m);
        }
    }
    if (s->D % 32 == 0) {
        if (q8_quantize(&s->q8_head, s->w->lm_head, s->V, s->D) != 0)
            return error_set(err, "cpu backend: out of memory quantizing the output head to q8");
        bytes += q8_bytes(&s->q8_head);
    }
    log_msg(LOG_INFO, "cpu backend: weights quantized to q8 (%.2f GB) in %.2f s", (double)bytes / 1e9,
            seconds_now() - t0);
    return 0;
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
    kernels_set_precision(options->precision_bf16 ? PRECISION_BF16 : PRECISION_EXACT);
    if (options->precision_bf16 && !kernels_bf16_available())
        log_msg(LOG_WARNING, "cpu backend: precision bf16 needs AVX512_BF16, which this processor lacks; "
                             "the GEMMs stay exact (fp32)");
    if (options->weights_q8 && quantize_weights(s, err) != 0) {
        cpu_destroy(s);
        return -1;
    }
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
