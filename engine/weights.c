/* The weight table; see weights.h. */
#include "engine/weights.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Key prefixes of the three checkpoint layouts (MODEL.md "Checkpoint"). */
typedef struct {
    const char *text;      /* + "embed_tokens.weight", "layers.N...." */
    const char *lm_head;   /* optional untied output head */
    const char *vision;    /* + "embeddings...", "encoder.layers.N..." */
    const char *projector; /* + "mm_input_projection_weight" */
} KeyLayout;

static const KeyLayout layouts[] = {
    {"model.language_model.", "lm_head.weight", "model.vision_tower.vision_model.",
     "model.multi_modal_projector."},
    {"language_model.model.", "language_model.lm_head.weight", "vision_tower.vision_model.",
     "multi_modal_projector."},
    {"model.", "lm_head.weight", NULL, NULL},
};

typedef struct {
    ModelWeights *w;
    const Checkpoint *ckpt;
    Error *err;
} Loader;

static int remember_owned(ModelWeights *w, void *buf) {
    void **grown = realloc(w->owned, (size_t)(w->n_owned + 1) * sizeof *grown);
    if (!grown)
        return -1;
    w->owned = grown;
    w->owned[w->n_owned++] = buf;
    return 0;
}

/* Returns the tensor as bf16 with the expected shape (n_dims extents), or NULL
 * with err set. F16/F32 are converted into a buffer the table owns. */
static const bf16 *get_tensor(Loader *ld, const char *name, int n_dims, ...) {
    const TensorInfo *t = checkpoint_find(ld->ckpt, name);
    if (!t) {
        error_set(ld->err, "tensor '%s' is missing from the checkpoint", name);
        return NULL;
    }
    va_list ap;
    va_start(ap, n_dims);
    int64_t want[TENSOR_MAX_DIMS];
    for (int d = 0; d < n_dims; d++)
        want[d] = va_arg(ap, int64_t);
    va_end(ap);
    int same = t->n_dims == n_dims;
    for (int d = 0; same && d < n_dims; d++)
        same = t->shape[d] == want[d];
    if (!same) {
        char got[128] = "", exp[128] = "";
        for (int d = 0; d < t->n_dims; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "",
                     (long long)t->shape[d]);
        for (int d = 0; d < n_dims; d++)
            snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", d ? "," : "", (long long)want[d]);
        error_set(ld->err, "%s: tensor '%s' has shape [%s], the config implies [%s]", t->file, name, got,
                  exp);
        return NULL;
    }
    if (t->dtype == DTYPE_BF16 && (uintptr_t)t->data % sizeof(bf16) == 0)
        return t->data;
    if (t->dtype != DTYPE_BF16 && t->dtype != DTYPE_F16 && t->dtype != DTYPE_F32) {
        error_set(ld->err, "%s: tensor '%s' has dtype %s; weights must be BF16, F16 or F32", t->file, name,
                  dtype_name(t->dtype));
        return NULL;
    }
    bf16 *out = malloc((size_t)t->n_elements * sizeof *out + 1);
    if (!out || remember_owned(ld->w, out) != 0) {
        free(out);
        error_set(ld->err, "out of memory converting tensor '%s'", name);
        return NULL;
    }
    const uint8_t *src = t->data;
    for (int64_t i = 0; i < t->n_elements; i++) {
        if (t->dtype == DTYPE_BF16) {
            memcpy(&out[i], src + 2 * i, 2);
        } else if (t->dtype == DTYPE_F16) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = f32_to_bf16(f16_to_f32(h));
        } else {
            float f;
            memcpy(&f, src + 4 * i, 4);
            out[i] = f32_to_bf16(f);
        }
    }
    return out;
}

#define GET(dst, name, ...)                                                                                  \
    do {                                                                                                     \
        if (!((dst) = get_tensor(ld, (name), __VA_ARGS__)))                                                  \
            return -1;                                                                                       \
    } while (0)

static int load_text(Loader *ld, const TextConfig *c, const KeyLayout *kl) {
    ModelWeights *w = ld->w;
    char name[256];
    const int64_t H = c->hidden_size, I = c->intermediate_size, D = c->head_dim;
    const int64_t Q = (int64_t)c->num_heads * D, KV = (int64_t)c->num_kv_heads * D;
    snprintf(name, sizeof name, "%sembed_tokens.weight", kl->text);
    GET(w->embed, name, 2, (int64_t)c->vocab_size, H);
    snprintf(name, sizeof name, "%snorm.weight", kl->text);
    GET(w->final_norm, name, 1, H);
    w->lm_head = w->embed;
    if (!c->tie_word_embeddings || checkpoint_find(ld->ckpt, kl->lm_head))
        GET(w->lm_head, kl->lm_head, 2, (int64_t)c->vocab_size, H);

    w->layers = calloc((size_t)c->num_layers, sizeof *w->layers);
    if (!w->layers)
        return error_set(ld->err, "out of memory");
    for (int l = 0; l < c->num_layers; l++) {
        TextLayerWeights *lw = &w->layers[l];
        struct {
            const bf16 **dst;
            const char *key;
            int n_dims;
            int64_t d0, d1;
        } items[] = {
            {&lw->input_norm, "input_layernorm.weight", 1, H, 0},
            {&lw->q_proj, "self_attn.q_proj.weight", 2, Q, H},
            {&lw->k_proj, "self_attn.k_proj.weight", 2, KV, H},
            {&lw->v_proj, "self_attn.v_proj.weight", 2, KV, H},
            {&lw->o_proj, "self_attn.o_proj.weight", 2, H, Q},
            {&lw->q_norm, "self_attn.q_norm.weight", 1, D, 0},
            {&lw->k_norm, "self_attn.k_norm.weight", 1, D, 0},
            {&lw->post_attn_norm, "post_attention_layernorm.weight", 1, H, 0},
            {&lw->pre_ff_norm, "pre_feedforward_layernorm.weight", 1, H, 0},
            {&lw->post_ff_norm, "post_feedforward_layernorm.weight", 1, H, 0},
            {&lw->gate_proj, "mlp.gate_proj.weight", 2, I, H},
            {&lw->up_proj, "mlp.up_proj.weight", 2, I, H},
            {&lw->down_proj, "mlp.down_proj.weight", 2, H, I},
        };
        for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
            snprintf(name, sizeof name, "%slayers.%d.%s", kl->text, l, items[i].key);
            if (items[i].n_dims == 1)
                GET(*items[i].dst, name, 1, items[i].d0);
            else
                GET(*items[i].dst, name, 2, items[i].d0, items[i].d1);
        }
    }
    return 0;
}

static int load_vision(Loader *ld, const ModelConfig *mc, const KeyLayout *kl) {
    ModelWeights *w = ld->w;
    const VisionConfig *c = &mc->vision;
    char name[256];
    const int64_t H = c->hidden_size, I = c->intermediate_size, P = c->patch_size;
    const int64_t grid = c->image_size / c->patch_size;
    snprintf(name, sizeof name, "%sembeddings.patch_embedding.weight", kl->vision);
    GET(w->patch_w, name, 4, H, (int64_t)c->num_channels, P, P);
    snprintf(name, sizeof name, "%sembeddings.patch_embedding.bias", kl->vision);
    GET(w->patch_b, name, 1, H);
    snprintf(name, sizeof name, "%sembeddings.position_embedding.weight", kl->vision);
    GET(w->pos_embed, name, 2, grid * grid, H);
    snprintf(name, sizeof name, "%spost_layernorm.weight", kl->vision);
    GET(w->post_ln_w, name, 1, H);
    snprintf(name, sizeof name, "%spost_layernorm.bias", kl->vision);
    GET(w->post_ln_b, name, 1, H);
    snprintf(name, sizeof name, "%smm_soft_emb_norm.weight", kl->projector);
    GET(w->mm_soft_norm, name, 1, H);
    snprintf(name, sizeof name, "%smm_input_projection_weight", kl->projector);
    GET(w->mm_proj, name, 2, H, (int64_t)mc->text.hidden_size);

    w->vision_layers = calloc((size_t)c->num_layers, sizeof *w->vision_layers);
    if (!w->vision_layers)
        return error_set(ld->err, "out of memory");
    for (int l = 0; l < c->num_layers; l++) {
        VisionLayerWeights *vl = &w->vision_layers[l];
        struct {
            const bf16 **dst;
            const char *key;
            int64_t rows, cols; /* cols 0: a vector */
        } items[] = {
            {&vl->ln1_w, "layer_norm1.weight", H, 0},
            {&vl->ln1_b, "layer_norm1.bias", H, 0},
            {&vl->q_w, "self_attn.q_proj.weight", H, H},
            {&vl->q_b, "self_attn.q_proj.bias", H, 0},
            {&vl->k_w, "self_attn.k_proj.weight", H, H},
            {&vl->k_b, "self_attn.k_proj.bias", H, 0},
            {&vl->v_w, "self_attn.v_proj.weight", H, H},
            {&vl->v_b, "self_attn.v_proj.bias", H, 0},
            {&vl->out_w, "self_attn.out_proj.weight", H, H},
            {&vl->out_b, "self_attn.out_proj.bias", H, 0},
            {&vl->ln2_w, "layer_norm2.weight", H, 0},
            {&vl->ln2_b, "layer_norm2.bias", H, 0},
            {&vl->fc1_w, "mlp.fc1.weight", I, H},
            {&vl->fc1_b, "mlp.fc1.bias", I, 0},
            {&vl->fc2_w, "mlp.fc2.weight", H, I},
            {&vl->fc2_b, "mlp.fc2.bias", H, 0},
        };
        for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
            snprintf(name, sizeof name, "%sencoder.layers.%d.%s", kl->vision, l, items[i].key);
            if (items[i].cols == 0)
                GET(*items[i].dst, name, 1, items[i].rows);
            else
                GET(*items[i].dst, name, 2, items[i].rows, items[i].cols);
        }
    }
    return 0;
}

/* Picks the layout whose embedding key the checkpoint has. */
static const KeyLayout *detect_layout(const Checkpoint *ckpt, int has_vision) {
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        if (has_vision != (layouts[i].vision != NULL))
            continue;
        char name[256];
        snprintf(name, sizeof name, "%sembed_tokens.weight", layouts[i].text);
        if (checkpoint_find(ckpt, name))
            return &layouts[i];
    }
    return NULL;
}

int weights_load(ModelWeights *w, const ModelConfig *config, const Checkpoint *ckpt, Error *err) {
    memset(w, 0, sizeof *w);
    const KeyLayout *detected = detect_layout(ckpt, config->has_vision);
    /* transformers 5 can also write the vision tower without its "vision_model." level */
    KeyLayout flat;
    const KeyLayout *kl = detected;
    if (detected && detected->vision) {
        char probe[256];
        snprintf(probe, sizeof probe, "%sembeddings.patch_embedding.weight", detected->vision);
        static const char level[] = "vision_model.";
        size_t len = strlen(detected->vision);
        if (!checkpoint_find(ckpt, probe) && len > sizeof level - 1) {
            static char flat_prefix[128];
            snprintf(flat_prefix, sizeof flat_prefix, "%.*s", (int)(len - (sizeof level - 1)),
                     detected->vision);
            snprintf(probe, sizeof probe, "%sembeddings.patch_embedding.weight", flat_prefix);
            if (checkpoint_find(ckpt, probe)) {
                flat = *detected;
                flat.vision = flat_prefix;
                kl = &flat;
            }
        }
    }
    if (!kl) {
        weights_free(w, config);
        return error_set(
            err,
            config->has_vision
                ? "no text embedding found: expected 'model.language_model.embed_tokens.weight' or "
                  "'language_model.model.embed_tokens.weight' (a Gemma3ForConditionalGeneration checkpoint)"
                : "no text embedding found: expected 'model.embed_tokens.weight' (a Gemma3ForCausalLM "
                  "checkpoint)");
    }
    Loader ld = {w, ckpt, err};
    if (load_text(&ld, &config->text, kl) != 0 || (config->has_vision && load_vision(&ld, config, kl) != 0)) {
        weights_free(w, config);
        return -1;
    }
    return 0;
}

void weights_free(ModelWeights *w, const ModelConfig *config) {
    (void)config;
    for (int i = 0; i < w->n_owned; i++)
        free(w->owned[i]);
    free(w->owned);
    free(w->layers);
    free(w->vision_layers);
    memset(w, 0, sizeof *w);
}
