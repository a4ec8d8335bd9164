/* The CUDA backend's device memory plan: see device_plan.h. */
#include "engine/cuda/device_plan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* device_arena_carve poisons the redzones only in an ASan build of the emulated
 * device (tests/gpu/cudaemu/cudaemu.mk sets DEVICE_PLAN_REDZONE), where "device"
 * memory is host memory. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PLAN_ASAN 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define PLAN_ASAN 1
#endif
#if DEVICE_PLAN_REDZONE > 0 && defined(PLAN_ASAN)
#include <sanitizer/asan_interface.h>
#define PLAN_CAN_POISON 1
#endif

static const char *const group_names[PLAN_GROUP_COUNT] = {
    "weights", "kv cache", "text activations", "vision activations", "cuBLASLt workspace",
};

const char *device_plan_group_name(DevicePlanGroup group) {
    return (unsigned)group < PLAN_GROUP_COUNT ? group_names[group] : "?";
}

int device_plan_kv_ring(const ModelConfig *config, int max_context, int layer) {
    const TextConfig *tc = &config->text;
    int local = !tc->layer_is_global[layer];
    return local && tc->sliding_window > 0 && tc->sliding_window < max_context ? tc->sliding_window : 0;
}

size_t device_plan_gemm_workspace(int cc_major) {
    return cc_major >= 9 ? (size_t)32 << 20 : (size_t)4 << 20;
}

/* The sizing pass: products of config numbers, with overflow caught once. */
typedef struct {
    DevicePlan *plan;
    int overflow;
} Sizer;

static size_t mul(Sizer *s, size_t a, size_t b) {
    size_t r;
    if (__builtin_mul_overflow(a, b, &r)) {
        s->overflow = 1;
        return 0;
    }
    return r;
}

size_t device_plan_stride(size_t bytes) {
    return (bytes + DEVICE_PLAN_REDZONE + DEVICE_PLAN_ALIGN - 1) / DEVICE_PLAN_ALIGN * DEVICE_PLAN_ALIGN;
}

/* Region `id` holds `count` slices of `elems` elements of `elem_bytes` each. */
static void set(Sizer *s, DeviceRegionId id, const char *name, DevicePlanGroup group, size_t count,
                size_t elems, size_t elem_bytes) {
    DeviceRegion *r = &s->plan->region[id];
    r->name = name;
    r->group = group;
    r->count = count;
    r->bytes_each = mul(s, elems, elem_bytes);
    if (r->bytes_each > SIZE_MAX - DEVICE_PLAN_ALIGN - DEVICE_PLAN_REDZONE)
        s->overflow = 1;
    r->stride = device_plan_stride(r->bytes_each);
    r->bytes = mul(s, count, r->stride);
}

#define BF16 2
#define F32 4
#define I32 4

/* Slots of layer l's KV cache, as engine/kv_cache.c sizes them. */
static size_t kv_slots(const ModelConfig *c, const DevicePlanOptions *o, int l) {
    const TextConfig *t = &c->text;
    if (!t->layer_is_global[l] && t->sliding_window + o->ring_extra < o->max_context)
        return (size_t)t->sliding_window + (size_t)o->ring_extra;
    return (size_t)o->max_context;
}

/* What engine/forward.c allocates and binds (forward.h lists it), plus the CUDA op
 * table's own scratch (kernels/cuda/ops_cuda.c). */
static void size_text(Sizer *s, const ModelConfig *c, const DevicePlanOptions *o) {
    const TextConfig *t = &c->text;
    const size_t D = t->hidden_size, I = t->intermediate_size, L = t->num_layers, V = t->vocab_size;
    const size_t Dh = t->head_dim, qd = (size_t)t->num_heads * Dh, kvd = (size_t)t->num_kv_heads * Dh;
    const size_t P = o->max_prefill, chunk = P < FORWARD_MLP_CHUNK ? P : FORWARD_MLP_CHUNK;
    set(s, REGION_EMBED, "embed", PLAN_WEIGHTS, 1, mul(s, V, D), BF16);
    set(s, REGION_LM_HEAD, "lm_head", PLAN_WEIGHTS, o->separate_lm_head ? 1 : 0, mul(s, V, D), BF16);
    set(s, REGION_FINAL_NORM, "final_norm", PLAN_WEIGHTS, 1, D, BF16);
    set(s, REGION_WQ, "layers.q_proj", PLAN_WEIGHTS, L, mul(s, qd, D), BF16);
    set(s, REGION_WK, "layers.k_proj", PLAN_WEIGHTS, L, mul(s, kvd, D), BF16);
    set(s, REGION_WV, "layers.v_proj", PLAN_WEIGHTS, L, mul(s, kvd, D), BF16);
    set(s, REGION_WO, "layers.o_proj", PLAN_WEIGHTS, L, mul(s, D, qd), BF16);
    set(s, REGION_WGATE, "layers.gate_proj", PLAN_WEIGHTS, L, mul(s, I, D), BF16);
    set(s, REGION_WUP, "layers.up_proj", PLAN_WEIGHTS, L, mul(s, I, D), BF16);
    set(s, REGION_WDOWN, "layers.down_proj", PLAN_WEIGHTS, L, mul(s, D, I), BF16);
    set(s, REGION_INPUT_NORM, "layers.input_norm", PLAN_WEIGHTS, L, D, BF16);
    set(s, REGION_POST_ATTN_NORM, "layers.post_attn_norm", PLAN_WEIGHTS, L, D, BF16);
    set(s, REGION_PRE_FF_NORM, "layers.pre_ff_norm", PLAN_WEIGHTS, L, D, BF16);
    set(s, REGION_POST_FF_NORM, "layers.post_ff_norm", PLAN_WEIGHTS, L, D, BF16);
    set(s, REGION_Q_NORM, "layers.q_norm", PLAN_WEIGHTS, L, Dh, BF16);
    set(s, REGION_K_NORM, "layers.k_norm", PLAN_WEIGHTS, L, Dh, BF16);

    DevicePlan *p = s->plan;
    p->n_full_layers = p->n_ring_layers = 0;
    size_t ring = 0;
    for (int l = 0; l < t->num_layers; l++) {
        if (kv_slots(c, o, l) < (size_t)o->max_context) {
            p->n_ring_layers++;
            ring = kv_slots(c, o, l);
        } else {
            p->n_full_layers++;
        }
    }
    set(s, REGION_KV_FULL, "kv_cache.full", PLAN_KV_CACHE, 2 * (size_t)p->n_full_layers,
        mul(s, (size_t)o->max_context, kvd), BF16);
    set(s, REGION_KV_RING, "kv_cache.ring", PLAN_KV_CACHE, 2 * (size_t)p->n_ring_layers, mul(s, ring, kvd),
        BF16);

    set(s, REGION_X, "act.x", PLAN_TEXT_ACTIVATIONS, 1, mul(s, P, D), BF16);
    set(s, REGION_XN, "act.xn", PLAN_TEXT_ACTIVATIONS, 1, mul(s, P, D > qd ? D : qd), BF16);
    set(s, REGION_Q, "act.q", PLAN_TEXT_ACTIVATIONS, 1, mul(s, P, qd), BF16);
    set(s, REGION_K, "act.k", PLAN_TEXT_ACTIVATIONS, 1, mul(s, P, kvd), BF16);
    set(s, REGION_V, "act.v", PLAN_TEXT_ACTIVATIONS, 1, mul(s, P, kvd), BF16);
    set(s, REGION_ATTN, "act.attn", PLAN_TEXT_ACTIVATIONS, 1, mul(s, P, qd), BF16);
    set(s, REGION_GATE, "act.gate", PLAN_TEXT_ACTIVATIONS, 1, mul(s, chunk, I), BF16);
    set(s, REGION_UP, "act.up", PLAN_TEXT_ACTIVATIONS, 1, mul(s, chunk, I), BF16);
    set(s, REGION_LOGITS, "act.logits", PLAN_TEXT_ACTIVATIONS, 1, V, F32);
    set(s, REGION_IDS, "act.ids", PLAN_TEXT_ACTIVATIONS, 1, P, I32);
    set(s, REGION_IMAGE_BLOCK, "act.image_block", PLAN_TEXT_ACTIVATIONS, 1, P, I32);
    set(s, REGION_POS_TOKEN, "act.pos_token", PLAN_TEXT_ACTIVATIONS, 1, 3, I32);
    /* kernels/cuda/attention.cu: cuda_attention_decode_scratch_floats (the backend checks the two agree) */
    set(s, REGION_DECODE_SCRATCH, "act.decode_scratch", PLAN_TEXT_ACTIVATIONS, 1,
        mul(s, (size_t)DEVICE_PLAN_DECODE_SPLITS * t->num_heads, Dh + 2), F32);
}

static void size_vision(Sizer *s, const ModelConfig *c) {
    const VisionConfig *v = &c->vision;
    const int on = c->has_vision && v->patch_size > 0;
    const size_t n = on ? 1 : 0, Lv = on ? (size_t)v->num_layers : 0;
    const size_t Dv = v->hidden_size, Iv = v->intermediate_size, D = c->text.hidden_size;
    const size_t grid = on ? (size_t)(v->image_size / v->patch_size) : 0, Np = grid * grid;
    const size_t patch_k = (size_t)v->num_channels * v->patch_size * v->patch_size;
    const size_t patch_k_pad = (patch_k + 7) / 8 * 8, tokens = c->mm_tokens_per_image;
    set(s, REGION_PATCH_W, "vision.patch_w", PLAN_WEIGHTS, n, mul(s, Dv, patch_k_pad), BF16);
    set(s, REGION_PATCH_B, "vision.patch_b", PLAN_WEIGHTS, n, Dv, BF16);
    set(s, REGION_POS_EMBED, "vision.pos_embed", PLAN_WEIGHTS, n, mul(s, Np, Dv), BF16);
    set(s, REGION_POST_LN_W, "vision.post_ln_w", PLAN_WEIGHTS, n, Dv, BF16);
    set(s, REGION_POST_LN_B, "vision.post_ln_b", PLAN_WEIGHTS, n, Dv, BF16);
    set(s, REGION_MM_SOFT_NORM, "projector.soft_norm", PLAN_WEIGHTS, n, Dv, BF16);
    set(s, REGION_MM_PROJ, "projector.proj", PLAN_WEIGHTS, n, mul(s, Dv, D), BF16);
    set(s, REGION_V_LN1_W, "vision.layers.ln1_w", PLAN_WEIGHTS, Lv, Dv, BF16);
    set(s, REGION_V_LN1_B, "vision.layers.ln1_b", PLAN_WEIGHTS, Lv, Dv, BF16);
    set(s, REGION_V_LN2_W, "vision.layers.ln2_w", PLAN_WEIGHTS, Lv, Dv, BF16);
    set(s, REGION_V_LN2_B, "vision.layers.ln2_b", PLAN_WEIGHTS, Lv, Dv, BF16);
    set(s, REGION_V_WQ, "vision.layers.q_w", PLAN_WEIGHTS, Lv, mul(s, Dv, Dv), BF16);
    set(s, REGION_V_BQ, "vision.layers.q_b", PLAN_WEIGHTS, Lv, Dv, BF16);
    set(s, REGION_V_WK, "vision.layers.k_w", PLAN_WEIGHTS, Lv, mul(s, Dv, Dv), BF16);
    set(s, REGION_V_BK, "vision.layers.k_b", PLAN_WEIGHTS, Lv, Dv, BF16);
    set(s, REGION_V_WV, "vision.layers.v_w", PLAN_WEIGHTS, Lv, mul(s, Dv, Dv), BF16);
    set(s, REGION_V_BV, "vision.layers.v_b", PLAN_WEIGHTS, Lv, Dv, BF16);
    set(s, REGION_V_WO, "vision.layers.out_w", PLAN_WEIGHTS, Lv, mul(s, Dv, Dv), BF16);
    set(s, REGION_V_BO, "vision.layers.out_b", PLAN_WEIGHTS, Lv, Dv, BF16);
    set(s, REGION_V_FC1_W, "vision.layers.fc1_w", PLAN_WEIGHTS, Lv, mul(s, Iv, Dv), BF16);
    set(s, REGION_V_FC1_B, "vision.layers.fc1_b", PLAN_WEIGHTS, Lv, Iv, BF16);
    set(s, REGION_V_FC2_W, "vision.layers.fc2_w", PLAN_WEIGHTS, Lv, mul(s, Dv, Iv), BF16);
    set(s, REGION_V_FC2_B, "vision.layers.fc2_b", PLAN_WEIGHTS, Lv, Dv, BF16);

    const size_t n_pix =
        mul(s, (size_t)v->num_channels, mul(s, (size_t)v->image_size, (size_t)v->image_size));
    set(s, REGION_PIXELS, "vision.act.pixels", PLAN_VISION_ACTIVATIONS, n, n_pix, F32);
    set(s, REGION_PATCHES, "vision.act.patches", PLAN_VISION_ACTIVATIONS, n, mul(s, Np, patch_k_pad), BF16);
    set(s, REGION_VX, "vision.act.x", PLAN_VISION_ACTIVATIONS, n, mul(s, Np, Dv), BF16);
    set(s, REGION_VXN, "vision.act.xn", PLAN_VISION_ACTIVATIONS, n, mul(s, Np, Dv), BF16);
    set(s, REGION_VQ, "vision.act.q", PLAN_VISION_ACTIVATIONS, n, mul(s, Np, Dv), BF16);
    set(s, REGION_VK, "vision.act.k", PLAN_VISION_ACTIVATIONS, n, mul(s, Np, Dv), BF16);
    set(s, REGION_VV, "vision.act.v", PLAN_VISION_ACTIVATIONS, n, mul(s, Np, Dv), BF16);
    set(s, REGION_VATTN, "vision.act.attn", PLAN_VISION_ACTIVATIONS, n, mul(s, Np, Dv), BF16);
    set(s, REGION_VMLP, "vision.act.mlp", PLAN_VISION_ACTIVATIONS, n, mul(s, Np, Iv), BF16);
    set(s, REGION_POOLED, "projector.act.pooled", PLAN_VISION_ACTIVATIONS, n, mul(s, tokens, Dv), BF16);
    set(s, REGION_MM_OUT, "projector.act.out", PLAN_VISION_ACTIVATIONS, n, mul(s, tokens, D), BF16);
}

int device_plan_build(DevicePlan *plan, const ModelConfig *config, const DevicePlanOptions *options,
                      Error *err) {
    memset(plan, 0, sizeof *plan);
    const TextConfig *t = &config->text;
    if (options->max_context <= 0 || options->max_prefill <= 0 || options->max_prefill > options->max_context)
        return error_set(err, "device plan: bad sizes (max_context %d, max_prefill %d)", options->max_context,
                         options->max_prefill);
    if (t->num_layers <= 0 || t->num_layers > CONFIG_MAX_LAYERS || t->hidden_size <= 0 ||
        t->intermediate_size <= 0 || t->num_heads <= 0 || t->num_kv_heads <= 0 || t->head_dim <= 0 ||
        t->vocab_size <= 0)
        return error_set(err, "device plan: the text config has a size <= 0");
    if (config->has_vision) {
        const VisionConfig *v = &config->vision;
        if (v->num_layers < 0 || v->hidden_size <= 0 || v->intermediate_size <= 0 || v->patch_size <= 0 ||
            v->image_size <= 0 || v->num_channels <= 0 || config->mm_tokens_per_image <= 0)
            return error_set(err, "device plan: the vision config has a size <= 0");
    }
    plan->options = *options;
    Sizer s = {plan, 0};
    size_text(&s, config, options);
    size_vision(&s, config);
    set(&s, REGION_GEMM_WORKSPACE, "gemm.workspace", PLAN_GEMM_WORKSPACE, 1, options->gemm_workspace, 1);
    /* Regions one after the other in enum order: every stride is a multiple
     * of the alignment, so every slice starts aligned. */
    size_t off = 0;
    for (int i = 0; i < REGION_COUNT && !s.overflow; i++) {
        DeviceRegion *r = &plan->region[i];
        r->offset = off;
        if (__builtin_add_overflow(off, r->bytes, &off))
            s.overflow = 1;
        plan->group_bytes[r->group] += r->bytes;
    }
    if (s.overflow)
        return error_set(err, "device plan: the model's sizes overflow (corrupt config?)");
    plan->total = off;
    return 0;
}

void device_arena_init(DeviceArena *a, void *base, size_t size) {
    memset(a, 0, sizeof *a);
    a->base = base;
    a->size = size;
}

void *device_arena_carve(DeviceArena *a, size_t bytes) {
    size_t stride = device_plan_stride(bytes);
    if (stride < bytes || stride > a->size - a->used)
        return NULL;
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 256;
        size_t *ends = realloc(a->ends, (size_t)cap * sizeof *ends);
        if (!ends)
            return NULL;
        a->ends = ends;
        char *freed = realloc(a->freed, (size_t)cap);
        if (!freed)
            return NULL;
        a->freed = freed;
        a->cap = cap;
    }
    char *p = a->base + a->used;
    a->used += stride;
    if (a->used > a->peak)
        a->peak = a->used;
    a->ends[a->n] = a->used;
    a->freed[a->n++] = 0;
#ifdef PLAN_CAN_POISON
    ASAN_UNPOISON_MEMORY_REGION(p, bytes);
    uintptr_t from = ((uintptr_t)p + bytes + 7) & ~(uintptr_t)7, to = (uintptr_t)p + stride;
    if (to > from)
        ASAN_POISON_MEMORY_REGION((void *)from, to - from);
#endif
    return p;
}

void device_arena_free(DeviceArena *a, void *p) {
    if (!p)
        return;
    for (int i = a->n - 1; i >= 0; i--) {
        char *start = a->base + (i ? a->ends[i - 1] : 0);
        if (start == (char *)p) {
            a->freed[i] = 1;
            break;
        }
    }
    while (a->n > 0 && a->freed[a->n - 1]) { /* give back the freed slices on top */
        a->n--;
        a->used = a->n ? a->ends[a->n - 1] : 0;
    }
#ifdef PLAN_CAN_POISON
    ASAN_UNPOISON_MEMORY_REGION(a->base + a->used, a->size - a->used);
#endif
}

void device_arena_destroy(DeviceArena *a) {
    free(a->ends);
    free(a->freed);
    memset(a, 0, sizeof *a);
}

void *device_plan_slice(const DevicePlan *plan, void *base, DeviceRegionId region, size_t i) {
    const DeviceRegion *r = &plan->region[region];
    if (i >= r->count)
        return NULL;
    return (char *)base + r->offset + i * r->stride;
}

static double gib(size_t bytes) {
    return bytes / 1073741824.0;
}

const char *device_plan_bytes(size_t bytes, char *buf, size_t n) {
    if (bytes >= ((size_t)1 << 30))
        snprintf(buf, n, "%.2f GiB", gib(bytes));
    else
        snprintf(buf, n, "%.1f MiB", bytes / 1048576.0);
    return buf;
}

void device_plan_summary(const DevicePlan *plan, char *out, size_t out_size) {
    const size_t *g = plan->group_bytes;
    char a[32], b[32], c[32], d[32], e[32], f[32];
    snprintf(out, out_size,
             "%s in one allocation: weights %s, KV cache %s (%d positions), text activations %s (%d prefill "
             "rows), vision %s, cuBLASLt workspace %s",
             device_plan_bytes(plan->total, a, sizeof a), device_plan_bytes(g[PLAN_WEIGHTS], b, sizeof b),
             device_plan_bytes(g[PLAN_KV_CACHE], c, sizeof c), plan->options.max_context,
             device_plan_bytes(g[PLAN_TEXT_ACTIVATIONS], d, sizeof d), plan->options.max_prefill,
             device_plan_bytes(g[PLAN_VISION_ACTIVATIONS], e, sizeof e),
             device_plan_bytes(g[PLAN_GEMM_WORKSPACE], f, sizeof f));
}

void device_plan_print(const DevicePlan *plan, FILE *f, int all_regions) {
    fprintf(f, "device memory plan (one allocation, regions %d-byte aligned)\n", DEVICE_PLAN_ALIGN);
    fprintf(f, "  max_context %d, max_prefill %d, KV layers: %d full, %d ring\n", plan->options.max_context,
            plan->options.max_prefill, plan->n_full_layers, plan->n_ring_layers);
    if (all_regions) {
        fprintf(f, "  %-26s %-20s %14s %7s %14s %14s\n", "region", "group", "offset", "slices", "bytes each",
                "bytes");
        for (int i = 0; i < REGION_COUNT; i++) {
            const DeviceRegion *r = &plan->region[i];
            fprintf(f, "  %-26s %-20s %14zu %7zu %14zu %14zu\n", r->name, group_names[r->group], r->offset,
                    r->count, r->bytes_each, r->bytes);
        }
    }
    for (int g = 0; g < PLAN_GROUP_COUNT; g++)
        fprintf(f, "  %-20s %14zu bytes  %8.3f GiB\n", group_names[g], plan->group_bytes[g],
                gib(plan->group_bytes[g]));
    fprintf(f, "  %-20s %14zu bytes  %8.3f GiB\n", "total", plan->total, gib(plan->total));
}
