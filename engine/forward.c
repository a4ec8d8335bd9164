/* The model, written once (forward.h), over the op table (kernels/ops.h).
 *
 * Gemma 3 decoder (MODEL.md "Text decoder"), per layer with the residual stream x:
 *   h = attn(rmsnorm_in(x));     x += rmsnorm_post_attn(h)
 *   h = mlp(rmsnorm_pre_ff(x));  x += rmsnorm_post_ff(h)
 *   attn: q, k, v = linear (one linear_multi); q, k = rope(rmsnorm_head); K/V into the cache;
 *         softmax(q k^T) v; o_proj
 *   mlp:  down(gelu_tanh(gate(x)) * up(x))            (gate, up: one linear_multi)
 * logits = lm_head(rmsnorm_final(x)). A prompt runs every row at once; decode is
 * the same code with one row (its attention reads the cache).
 *
 * SigLIP tower + projector (MODEL.md "Vision tower", "Projector"):
 *   x = patch_embed(pixels) + pos_embed
 *   per layer: x += out(attn(ln1(x)));  x += fc2(gelu_tanh(fc1(ln2(x))))
 *   x = post_ln(x);  soft = rmsnorm(avgpool_k(x)) . mm_proj   (mm_proj stored [in, out]) */
#include "engine/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kv_cache.h"

#define MLP_CHUNK FORWARD_MLP_CHUNK

typedef struct {
    Weight input_norm, q, k, v, q_norm, k_norm, o, post_attn_norm, pre_ff_norm, gate, up, down, post_ff_norm;
} DecoderLayer;

typedef struct {
    Weight ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} VisionLayer;

struct Forward {
    const Ops *ops;
    const ModelConfig *config;
    ForwardOptions opt;
    int D, F, H, KVH, Dh, L, V, q_dim, kv_dim;
    /* weights as the backend keeps them */
    Weight embed, final_norm, lm_head;
    DecoderLayer *layers;
    Weight patch_w, patch_b, pos_embed, post_ln_w, post_ln_b, mm_soft_norm, mm_proj;
    VisionLayer *vlayers;
    /* text activations, [max_prefill rows, ...]; decode uses row 0 */
    Tensor x, xn, q, k, v, att; /* x, xn [P, max(D, q_dim)]; q, att [P, q_dim]; k, v [P, kv_dim] */
    Tensor gate, up;            /* [min(P, MLP_CHUNK), F] */
    Tensor logits;              /* [1, V] */
    KvCache cache;
    /* vision activations (has_vision) */
    Tensor pixels, vx, vxn, vq, vk, vv, vatt, vmlp, pooled, soft;
};

#define OP(f, name, ...) (f)->ops->name((f)->ops->ctx, __VA_ARGS__)

/* ---- Gemma 3 decoder */

static float theta_of(const TextConfig *tc, int l) {
    return tc->layer_is_global[l] ? tc->rope_theta_global : tc->rope_theta_local;
}
static float rope_scale_of(const TextConfig *tc, int l) {
    return tc->layer_is_global[l] ? tc->rope_scale_global : tc->rope_scale_local;
}

static void capture_hidden(Forward *f, const BackendCapture *cap, int index, Tensor rows) {
    if (cap && cap->hidden && rows.rows <= cap->hidden_capacity)
        f->ops->read(f->ops->ctx, cap->hidden + (size_t)index * rows.rows * f->D, rows);
}

int forward_text(Forward *f, const int32_t *tokens, int n, int pos0, const int32_t *image_block,
                 const float *image_embeds, float *logits, const BackendCapture *cap, Error *err) {
    const TextConfig *tc = &f->config->text;
    const Ops *ops = f->ops;
    float eps = tc->rms_norm_eps;
    Batch batch = {n, pos0};
    Tensor x = tensor_rows(f->x, 0, n), xn = tensor_rows(f->xn, 0, n), att = tensor_rows(f->att, 0, n);
    Tensor q = tensor_rows(f->q, 0, n), k = tensor_rows(f->k, 0, n), v = tensor_rows(f->v, 0, n);

    /* embeddings: text rows scaled, image rows replaced by the projector's output
     * (each run of consecutive image rows written at once) */
    OP(f, embed, x, &f->embed, tokens, f->opt.embed_scale);
    if (image_block && image_embeds) {
        size_t next = 0;
        for (int t = 0; t < n;) {
            int run = 0;
            while (t + run < n && image_block[t + run] >= 0)
                run++;
            if (run == 0) {
                t++;
                continue;
            }
            ops->write(ops->ctx, tensor_rows(x, t, run), image_embeds + next * f->D);
            next += (size_t)run;
            t += run;
        }
    }
    capture_hidden(f, cap, 0, x);

    OP(f, rmsnorm, xn, x, &f->layers[0].input_norm, eps); /* later layers get xn from the layer before */
    for (int l = 0; l < f->L; l++) {
        const DecoderLayer *lw = &f->layers[l];
        KvLayer *kv = &f->cache.layers[l];
        AttnShape shape = {f->H,  f->KVH,
                           f->Dh, 1.0f / sqrtf(tc->query_pre_attn_scalar),
                           1,     tc->layer_is_global[l] ? 0 : tc->sliding_window};
        RopeParams rope = {theta_of(tc, l), rope_scale_of(tc, l), eps};
        /* attention block on xn = rmsnorm_in(x) */
        const Tensor qkv[3] = {q, k, v};
        const Weight *qkv_w[3] = {&lw->q, &lw->k, &lw->v};
        OP(f, linear_multi, 3, qkv, xn, qkv_w);
        OP(f, qk_rope_store, q, k, v, &lw->q_norm, &lw->k_norm, kv, &batch, &shape, &rope);
        OP(f, attention, att, q, k, v, kv, image_block, &batch, &shape);
        OP(f, linear, xn, att, &lw->o, NULL);
        OP(f, rmsnorm_residual_norm, x, xn, xn, &lw->post_attn_norm, &lw->pre_ff_norm, eps);
        /* MLP block, in chunks of rows */
        for (int r0 = 0; r0 < n; r0 += MLP_CHUNK) {
            int rows = n - r0 < MLP_CHUNK ? n - r0 : MLP_CHUNK;
            Tensor in = tensor_rows(xn, r0, rows), gate = tensor_rows(f->gate, 0, rows);
            Tensor up = tensor_rows(f->up, 0, rows);
            const Tensor gate_up[2] = {gate, up};
            const Weight *gate_up_w[2] = {&lw->gate, &lw->up};
            OP(f, linear_multi, 2, gate_up, in, gate_up_w);
            OP(f, gelu_gate, gate, gate, up);
            OP(f, linear, in, gate, &lw->down, NULL);
        }
        if (l < f->L - 1) { /* x += rmsnorm_post_ff(h), fused with the next layer's xn = rmsnorm_in(x) */
            OP(f, rmsnorm_residual_norm, x, xn, xn, &lw->post_ff_norm, &f->layers[l + 1].input_norm, eps);
            capture_hidden(f, cap, l + 1, x);
        } else {
            OP(f, rmsnorm_residual, x, xn, &lw->post_ff_norm, eps);
        }
    }

    /* final norm and output head: every row when the test capture asks, else the last */
    int all = cap && (cap->hidden || cap->all_logits);
    int first = all ? 0 : n - 1;
    OP(f, rmsnorm, tensor_rows(xn, first, n - first), tensor_rows(x, first, n - first), &f->final_norm, eps);
    capture_hidden(f, cap, f->L, xn);
    if (cap && cap->all_logits && n <= cap->logits_capacity)
        for (int t = 0; t < n; t++) { /* a row at a time through the one logits buffer */
            OP(f, linear, f->logits, tensor_rows(xn, t, 1), &f->lm_head, NULL);
            ops->read(ops->ctx, cap->all_logits + (size_t)t * f->V, f->logits);
        }
    OP(f, linear, f->logits, tensor_rows(xn, n - 1, 1), &f->lm_head, NULL);
    ops->read(ops->ctx, logits, f->logits);
    return ops->status(ops->ctx, err);
}

/* ---- SigLIP tower + projector */

int forward_image(Forward *f, const float *pixels, float *out, float *vision_hidden, Error *err) {
    const VisionConfig *vc = &f->config->vision;
    const Ops *ops = f->ops;
    float eps = vc->layer_norm_eps;
    int heads = vc->num_heads, head_dim = vc->hidden_size / heads;
    int grid = vc->image_size / vc->patch_size;
    int side = (int)lround(sqrt((double)f->config->mm_tokens_per_image));
    AttnShape shape = {heads, heads, head_dim, 1.0f / sqrtf((float)head_dim), 0, 0};
    Batch batch = {grid * grid, 0};

    ops->write(ops->ctx, f->pixels, pixels);
    OP(f, patch_embed, f->vx, f->pixels, &f->patch_w, &f->patch_b, &f->pos_embed, vc->image_size,
       vc->patch_size);
    for (int l = 0; l < vc->num_layers; l++) {
        const VisionLayer *lw = &f->vlayers[l];
        /* attention block (no mask) */
        OP(f, layernorm, f->vxn, f->vx, &lw->ln1_w, &lw->ln1_b, eps);
        OP(f, linear, f->vq, f->vxn, &lw->q_w, &lw->q_b);
        OP(f, linear, f->vk, f->vxn, &lw->k_w, &lw->k_b);
        OP(f, linear, f->vv, f->vxn, &lw->v_w, &lw->v_b);
        OP(f, attention, f->vatt, f->vq, f->vk, f->vv, NULL, NULL, &batch, &shape);
        OP(f, linear, f->vxn, f->vatt, &lw->out_w, &lw->out_b);
        OP(f, add, f->vx, f->vxn);
        /* MLP block */
        OP(f, layernorm, f->vxn, f->vx, &lw->ln2_w, &lw->ln2_b, eps);
        OP(f, linear, f->vmlp, f->vxn, &lw->fc1_w, &lw->fc1_b);
        OP(f, gelu, f->vmlp);
        OP(f, linear, f->vxn, f->vmlp, &lw->fc2_w, &lw->fc2_b);
        OP(f, add, f->vx, f->vxn);
    }
    OP(f, layernorm, f->vx, f->vx, &f->post_ln_w, &f->post_ln_b, eps);
    if (vision_hidden)
        ops->read(ops->ctx, vision_hidden, f->vx);

    /* projector */
    OP(f, avgpool, f->pooled, f->vx, grid, grid / side);
    OP(f, rmsnorm, f->pooled, f->pooled, &f->mm_soft_norm, eps);
    OP(f, linear, f->soft, f->pooled, &f->mm_proj, NULL);
    ops->read(ops->ctx, out, f->soft);
    return ops->status(ops->ctx, err);
}

/* ---- create / destroy */

/* Binds a bf16 checkpoint matrix [rows, cols] and lets the backend prepare it. */
static int bind(Forward *f, Weight *w, const bf16 *data, int rows, int cols, int quantizable, Error *err) {
    *w = weight_bf16(data, rows, cols);
    w->quantizable = quantizable;
    return data ? f->ops->prepare(f->ops->ctx, w, err) : 0;
}

static int bind_text(Forward *f, const ModelWeights *mw, Error *err) {
    int D = f->D, F = f->F;
    f->layers = calloc((size_t)f->L, sizeof *f->layers);
    if (!f->layers)
        return error_set(err, "forward: out of memory");
    for (int l = 0; l < f->L; l++) {
        const TextLayerWeights *s = &mw->layers[l];
        DecoderLayer *d = &f->layers[l];
        if (bind(f, &d->input_norm, s->input_norm, 1, D, 0, err) ||
            bind(f, &d->q, s->q_proj, f->q_dim, D, 1, err) ||
            bind(f, &d->k, s->k_proj, f->kv_dim, D, 1, err) ||
            bind(f, &d->v, s->v_proj, f->kv_dim, D, 1, err) ||
            bind(f, &d->o, s->o_proj, D, f->q_dim, 1, err) ||
            bind(f, &d->q_norm, s->q_norm, 1, f->Dh, 0, err) ||
            bind(f, &d->k_norm, s->k_norm, 1, f->Dh, 0, err) ||
            bind(f, &d->post_attn_norm, s->post_attn_norm, 1, D, 0, err) ||
            bind(f, &d->pre_ff_norm, s->pre_ff_norm, 1, D, 0, err) ||
            bind(f, &d->gate, s->gate_proj, F, D, 1, err) || bind(f, &d->up, s->up_proj, F, D, 1, err) ||
            bind(f, &d->down, s->down_proj, D, F, 1, err) ||
            bind(f, &d->post_ff_norm, s->post_ff_norm, 1, D, 0, err))
            return error_prefix(err, "layer %d", l);
    }
    if (bind(f, &f->embed, mw->embed, f->V, D, 0, err) ||
        bind(f, &f->final_norm, mw->final_norm, 1, D, 0, err))
        return error_prefix(err, "output head");
    f->lm_head = weight_bf16(mw->lm_head, f->V, D);
    f->lm_head.quantizable = 1;
    f->lm_head.tied = mw->lm_head == mw->embed; /* one copy on a device (the CPU may quantize the head) */
    if (mw->lm_head && f->ops->prepare(f->ops->ctx, &f->lm_head, err) != 0)
        return error_prefix(err, "output head");
    return 0;
}

static int bind_vision(Forward *f, const ModelWeights *mw, Error *err) {
    const VisionConfig *vc = &f->config->vision;
    int D = vc->hidden_size, F = vc->intermediate_size, N = (vc->image_size / vc->patch_size);
    N *= N;
    f->vlayers = calloc((size_t)vc->num_layers, sizeof *f->vlayers);
    if (!f->vlayers)
        return error_set(err, "forward: out of memory");
    for (int l = 0; l < vc->num_layers; l++) {
        const VisionLayerWeights *s = &mw->vision_layers[l];
        VisionLayer *d = &f->vlayers[l];
        if (bind(f, &d->ln1_w, s->ln1_w, 1, D, 0, err) || bind(f, &d->ln1_b, s->ln1_b, 1, D, 0, err) ||
            bind(f, &d->q_w, s->q_w, D, D, 0, err) || bind(f, &d->q_b, s->q_b, 1, D, 0, err) ||
            bind(f, &d->k_w, s->k_w, D, D, 0, err) || bind(f, &d->k_b, s->k_b, 1, D, 0, err) ||
            bind(f, &d->v_w, s->v_w, D, D, 0, err) || bind(f, &d->v_b, s->v_b, 1, D, 0, err) ||
            bind(f, &d->out_w, s->out_w, D, D, 0, err) || bind(f, &d->out_b, s->out_b, 1, D, 0, err) ||
            bind(f, &d->ln2_w, s->ln2_w, 1, D, 0, err) || bind(f, &d->ln2_b, s->ln2_b, 1, D, 0, err) ||
            bind(f, &d->fc1_w, s->fc1_w, F, D, 0, err) || bind(f, &d->fc1_b, s->fc1_b, 1, F, 0, err) ||
            bind(f, &d->fc2_w, s->fc2_w, D, F, 0, err) || bind(f, &d->fc2_b, s->fc2_b, 1, D, 0, err))
            return error_prefix(err, "vision layer %d", l);
    }
    int K = vc->num_channels * vc->patch_size * vc->patch_size;
    f->patch_w = weight_bf16(mw->patch_w, D, K);
    f->patch_w.conv = 1; /* only patch_embed reads it: the backend may re-lay it out */
    if (f->ops->prepare(f->ops->ctx, &f->patch_w, err) || bind(f, &f->patch_b, mw->patch_b, 1, D, 0, err) ||
        bind(f, &f->pos_embed, mw->pos_embed, N, D, 0, err) ||
        bind(f, &f->post_ln_w, mw->post_ln_w, 1, D, 0, err) ||
        bind(f, &f->post_ln_b, mw->post_ln_b, 1, D, 0, err) ||
        bind(f, &f->mm_soft_norm, mw->mm_soft_norm, 1, D, 0, err) ||
        bind(f, &f->mm_proj, mw->mm_proj, D, f->D, 0, err))
        return error_prefix(err, "vision tower");
    f->mm_proj.in_out = 1;
    return 0;
}

/* Allocates each tensor of the list (shape: rows, cols, AllocKind); 0, or -1 when one failed. */
static int alloc_all(Forward *f, Tensor **t, const int (*shape)[3], int n) {
    int ok = 1;
    for (int i = 0; i < n; i++) {
        *t[i] = f->ops->alloc(f->ops->ctx, shape[i][0], shape[i][1], (AllocKind)shape[i][2]);
        ok &= t[i]->data != NULL;
    }
    return ok ? 0 : -1;
}

static int create(Forward *f, const ModelWeights *weights, Error *err);

int forward_create(Forward **out, const Ops *ops, const ModelConfig *config, const ModelWeights *weights,
                   const ForwardOptions *options, Error *err) {
    const TextConfig *tc = &config->text;
    if (tc->attn_logit_softcapping != 0 || tc->final_logit_softcapping != 0)
        return error_set(err, "%s backend: logit soft-capping is not implemented (config.json)", ops->name);
    if (tc->num_kv_heads < 1 || tc->num_heads % tc->num_kv_heads != 0)
        return error_set(err, "%s backend: %d query heads do not split over %d KV heads", ops->name,
                         tc->num_heads, tc->num_kv_heads);
    if (config->has_vision && config->vision.hidden_size % config->vision.num_heads != 0)
        return error_set(err, "%s backend: vision hidden %d does not split over %d heads", ops->name,
                         config->vision.hidden_size, config->vision.num_heads);
    Forward *f = calloc(1, sizeof *f);
    if (!f)
        return error_set(err, "%s backend: out of memory", ops->name);
    f->ops = ops;
    f->config = config;
    f->opt = *options;
    f->D = tc->hidden_size;
    f->F = tc->intermediate_size;
    f->H = tc->num_heads;
    f->KVH = tc->num_kv_heads;
    f->Dh = tc->head_dim;
    f->L = tc->num_layers;
    f->V = tc->vocab_size;
    f->q_dim = f->H * f->Dh;
    f->kv_dim = f->KVH * f->Dh;
    if (create(f, weights, err) != 0) {
        forward_destroy(f);
        return -1;
    }
    *out = f;
    return 0;
}

/* Activations, KV cache, weights; -1 (err) leaves what was made for forward_destroy. */
static int create(Forward *f, const ModelWeights *weights, Error *err) {
    const Ops *ops = f->ops;
    const ModelConfig *config = f->config;
    const TextConfig *tc = &config->text;
    const ForwardOptions *options = &f->opt;

    int P = options->max_prefill, chunk = P < MLP_CHUNK ? P : MLP_CHUNK,
        wide = f->D > f->q_dim ? f->D : f->q_dim;
    Tensor *text[] = {&f->x, &f->xn, &f->q, &f->k, &f->v, &f->att, &f->gate, &f->up, &f->logits};
    const int A = ALLOC_ACTIVATIONS;
    const int text_shape[][3] = {{P, f->D, A},      {P, wide, A},      {P, f->q_dim, A},
                                 {P, f->kv_dim, A}, {P, f->kv_dim, A}, {P, f->q_dim, A},
                                 {chunk, f->F, A},  {chunk, f->F, A},  {1, f->V, ALLOC_F32}};
    if (alloc_all(f, text, text_shape, 9) != 0)
        return error_set(err, "%s backend: out of memory for %d prompt rows", ops->name, P);
    f->xn.cols = f->xn.ld = f->D; /* sized for max(D, q_dim) rows of D */
    if (kv_cache_init(&f->cache, ops, tc, options->max_context, options->ring_extra, err) != 0)
        return -1;
    if (config->has_vision) {
        const VisionConfig *vc = &config->vision;
        int N = (vc->image_size / vc->patch_size) * (vc->image_size / vc->patch_size), D = vc->hidden_size;
        Tensor *vis[] = {&f->pixels, &f->vx,   &f->vxn,  &f->vq,     &f->vk,
                         &f->vv,     &f->vatt, &f->vmlp, &f->pooled, &f->soft};
        const int vis_shape[][3] = {{vc->num_channels, vc->image_size * vc->image_size, ALLOC_F32},
                                    {N, D, A},
                                    {N, D, A},
                                    {N, D, A},
                                    {N, D, A},
                                    {N, D, A},
                                    {N, D, A},
                                    {N, vc->intermediate_size, A},
                                    {config->mm_tokens_per_image, D, A},
                                    {config->mm_tokens_per_image, f->D, A}};
        if (alloc_all(f, vis, vis_shape, 10) != 0)
            return error_set(err, "vision: out of memory for %d patches", N);
        if (bind_vision(f, weights, err) != 0)
            return -1;
    }
    return bind_text(f, weights, err);
}

static void release_all(Forward *f, Weight *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        f->ops->release(f->ops->ctx, &w[i]);
}

void forward_destroy(Forward *f) {
    if (!f)
        return;
    const Ops *ops = f->ops;
    Tensor *all[] = {&f->x,  &f->xn,     &f->q,      &f->k,      &f->v,   &f->att, &f->gate,
                     &f->up, &f->logits, &f->pixels, &f->vx,     &f->vxn, &f->vq,  &f->vk,
                     &f->vv, &f->vatt,   &f->vmlp,   &f->pooled, &f->soft};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->data)
            ops->free_tensor(ops->ctx, all[i]);
    kv_cache_free(&f->cache, ops);
    if (f->layers)
        release_all(f, (Weight *)f->layers, (size_t)f->L * sizeof(DecoderLayer) / sizeof(Weight));
    if (f->vlayers)
        release_all(f, (Weight *)f->vlayers,
                    (size_t)f->config->vision.num_layers * sizeof(VisionLayer) / sizeof(Weight));
    Weight *single[] = {&f->embed,     &f->final_norm, &f->lm_head,   &f->patch_w,      &f->patch_b,
                        &f->pos_embed, &f->post_ln_w,  &f->post_ln_b, &f->mm_soft_norm, &f->mm_proj};
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
        ops->release(ops->ctx, single[i]);
    free(f->layers);
    free(f->vlayers);
    free(f);
}
