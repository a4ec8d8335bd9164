/* The CPU op table (kernels/ops.h) over the CPU kernels (kernels/kernels.h).
 *
 * Owns: the CPU context (options, what prepare() quantized) and the mapping of
 * each op onto its kernel. Tensors are packed fp32 host arrays (ld == cols);
 * weights are read in place from the checkpoint mapping (bf16) or quantized
 * once by prepare() (q8: weights q8 and a quantizable matrix whose input width
 * is a multiple of 32). linear() picks the GEMM by the weight's format; the
 * GEMMs' precision (exact / bf16) is the kernels' process-wide setting, set
 * here from the options. Fused ops are composed from the plain kernels. */
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "util/log.h"

typedef struct {
    OpsOptions opt;
    size_t q8_bytes; /* what prepare() quantized so far */
} CpuOps;

static float *f32(Tensor t) {
    return (float *)t.data;
}
static const bf16 *bf(const Weight *w) {
    return w ? (const bf16 *)w->data : NULL;
}

/* ---- memory */

static Tensor cpu_alloc(void *ctx, int rows, int cols, AllocKind kind) { /* both kinds are fp32 here */
    Tensor t = {NULL, TENSOR_F32, rows, cols, cols};
    t.data = malloc((size_t)rows * cols * sizeof(float) + 1);
    return t;
}

static void cpu_free_tensor(void *ctx, Tensor *t) {
    free(t->data);
    t->data = NULL;
}

static void cpu_write(void *ctx, Tensor t, const float *host) {
    memcpy(t.data, host, (size_t)t.rows * t.cols * sizeof(float));
}

static void cpu_read(void *ctx, float *host, Tensor t) {
    memcpy(host, t.data, (size_t)t.rows * t.cols * sizeof(float));
}

static int cpu_prepare(void *ctx, Weight *w, Error *err) {
    CpuOps *c = ctx;
    if (!c->opt.weights_q8 || !w->quantizable || w->format != WEIGHT_BF16 || w->in_out || w->cols % 32 != 0)
        return 0;
    Q8Matrix *m = calloc(1, sizeof *m);
    if (!m || q8_quantize(m, bf(w), w->rows, w->cols) != 0) {
        free(m);
        return error_set(err, "out of memory quantizing a %d x %d matrix to q8", w->rows, w->cols);
    }
    c->q8_bytes += q8_bytes(m);
    w->format = WEIGHT_Q8;
    w->data = m;
    w->owned = m;
    return 0;
}

static void cpu_release(void *ctx, Weight *w) {
    if (w->owned && w->format == WEIGHT_Q8)
        q8_free(w->owned);
    free(w->owned);
    w->owned = NULL;
}

static int cpu_status(void *ctx, Error *err) {
    return 0; /* the CPU kernels cannot fail once their inputs are checked */
}

/* ---- ops */

static void cpu_embed(void *ctx, Tensor out, const Weight *table, const int32_t *ids, float scale) {
    embedding_lookup(f32(out), bf(table), ids, out.rows, out.cols, scale);
}

static void cpu_rmsnorm(void *ctx, Tensor out, Tensor x, const Weight *w, float eps) {
    rmsnorm(f32(out), f32(x), bf(w), x.rows, x.cols, eps);
}

static void cpu_rmsnorm_residual(void *ctx, Tensor x, Tensor h, const Weight *w, float eps) {
    rmsnorm_residual(f32(x), f32(h), bf(w), x.rows, x.cols, eps);
}

static void cpu_rmsnorm_residual_norm(void *ctx, Tensor x, Tensor out, Tensor h, const Weight *w_post,
                                      const Weight *w_next, float eps) {
    rmsnorm_residual(f32(x), f32(h), bf(w_post), x.rows, x.cols, eps);
    rmsnorm(f32(out), f32(x), bf(w_next), x.rows, x.cols, eps);
}

static void cpu_layernorm(void *ctx, Tensor out, Tensor x, const Weight *w, const Weight *b, float eps) {
    layernorm(f32(out), f32(x), bf(w), bf(b), x.rows, x.cols, eps);
}

/* y = x W^T (+ bias) with fp32 weights: plain loops (tests, small matrices). */
static void linear_f32(float *y, const float *x, const float *w, const bf16 *bias, int n, int in, int out) {
    for (int t = 0; t < n; t++)
        for (int o = 0; o < out; o++) {
            float sum = 0.0f;
            for (int i = 0; i < in; i++)
                sum += x[(size_t)t * in + i] * w[(size_t)o * in + i];
            y[(size_t)t * out + o] = sum + (bias ? bf16_to_f32(bias[o]) : 0.0f);
        }
}

static void cpu_linear(void *ctx, Tensor y, Tensor x, const Weight *w, const Weight *bias) {
    switch (w->format) {
    case WEIGHT_Q8:
        matmul_q8(f32(y), f32(x), w->data, bf(bias), x.rows);
        break;
    case WEIGHT_F32:
        linear_f32(f32(y), f32(x), w->data, bf(bias), x.rows, w->cols, w->rows);
        break;
    case WEIGHT_BF16:
        if (w->in_out)
            matmul_in_out(f32(y), f32(x), bf(w), x.rows, w->rows, w->cols);
        else
            matmul(f32(y), f32(x), bf(w), bf(bias), x.rows, w->cols, w->rows);
        break;
    }
}

/* One kernel call for matrices of one format (bf16 [out, in] or q8) and input width; else one by one. */
static void cpu_linear_multi(void *ctx, int n, const Tensor *ys, Tensor x, const Weight *const *ws) {
    float *y[OPS_LINEAR_MULTI_MAX];
    const bf16 *w_bf16[OPS_LINEAR_MULTI_MAX];
    const Q8Matrix *w_q8[OPS_LINEAR_MULTI_MAX];
    int out[OPS_LINEAR_MULTI_MAX], together = n <= OPS_LINEAR_MULTI_MAX && ws[0]->format != WEIGHT_F32;
    for (int m = 0; m < n && together; m++) {
        together = ws[m]->format == ws[0]->format && !ws[m]->in_out && ws[m]->cols == ws[0]->cols;
        y[m] = f32(ys[m]), out[m] = ws[m]->rows;
        w_bf16[m] = bf(ws[m]), w_q8[m] = ws[m]->data;
    }
    if (!together) {
        for (int m = 0; m < n; m++)
            cpu_linear(ctx, ys[m], x, ws[m], NULL);
    } else if (ws[0]->format == WEIGHT_Q8) {
        matmul_q8_multi(n, y, f32(x), w_q8, x.rows);
    } else {
        matmul_multi(n, y, f32(x), w_bf16, out, x.rows, ws[0]->cols);
    }
}

static void cpu_qk_rope_store(void *ctx, Tensor q, Tensor k, Tensor v, const Weight *q_norm,
                              const Weight *k_norm, KvLayer *kv, const Batch *b, const AttnShape *s,
                              const RopeParams *r) {
    qk_norm_rope(f32(q), bf(q_norm), b->n, s->n_heads, s->head_dim, b->pos0, r->theta, r->scale, r->eps);
    qk_norm_rope(f32(k), bf(k_norm), b->n, s->n_kv_heads, s->head_dim, b->pos0, r->theta, r->scale, r->eps);
    if (!kv)
        return;
    /* the last `capacity` rows of the batch, each into slot pos % capacity */
    size_t row = (size_t)k.cols * sizeof(float);
    int first = b->n - kv->capacity > 0 ? b->n - kv->capacity : 0;
    for (int t = first; t < b->n; t++) {
        size_t slot = (size_t)((b->pos0 + t) % kv->capacity) * kv->k.ld;
        memcpy(f32(kv->k) + slot, f32(k) + (size_t)t * k.ld, row);
        memcpy(f32(kv->v) + slot, f32(v) + (size_t)t * v.ld, row);
    }
}

static void cpu_attention(void *ctx, Tensor out, Tensor q, Tensor k, Tensor v, const KvLayer *kv,
                          const int32_t *image_block, const Batch *b, const AttnShape *s) {
    if (b->pos0 == 0) {
        attention_prefill(f32(out), f32(q), f32(k), f32(v), image_block, b->n, s->n_heads, s->n_kv_heads,
                          s->head_dim, s->causal, s->window, s->scale);
        return;
    }
    if (b->n > 1) { /* a prompt continuing a cached prefix: every key from the cache, by position */
        attention_cached(f32(out), f32(q), f32(kv->k), f32(kv->v), kv->capacity, image_block, b->n, b->pos0,
                         s->n_heads, s->n_kv_heads, s->head_dim, s->window, s->scale);
        return;
    }
    /* one token over the cache: the window's positions, slot = pos % capacity */
    attention_decode_ring(f32(out), f32(q), f32(kv->k), f32(kv->v), kv->capacity, b->pos0, s->window,
                          s->n_heads, s->n_kv_heads, s->head_dim, s->scale);
}

static void cpu_gelu_gate(void *ctx, Tensor out, Tensor gate, Tensor up) {
    gelu_tanh_gate(f32(out), f32(gate), f32(up), gate.rows * gate.cols);
}

static void cpu_gelu(void *ctx, Tensor x) {
    gelu_tanh(f32(x), x.rows * x.cols);
}

static void cpu_add(void *ctx, Tensor x, Tensor y) {
    residual_add(f32(x), f32(y), x.rows * x.cols);
}

static void cpu_patch_embed(void *ctx, Tensor out, Tensor pixels, const Weight *w, const Weight *bias,
                            const Weight *pos_embed, int image_size, int patch) {
    patch_embed(f32(out), f32(pixels), bf(w), bf(bias), bf(pos_embed), image_size, patch, pixels.rows,
                out.cols);
}

static void cpu_avgpool(void *ctx, Tensor out, Tensor x, int grid, int k) {
    avgpool_grid(f32(out), f32(x), grid, k, x.cols);
}

int ops_cpu_create(Ops *ops, const OpsOptions *options, Error *err) {
    CpuOps *c = calloc(1, sizeof *c);
    if (!c)
        return error_set(err, "cpu ops: out of memory");
    c->opt = *options;
    kernels_set_threads(options->n_threads);
    kernels_set_precision(options->precision_bf16 ? PRECISION_BF16 : PRECISION_EXACT);
    if (options->precision_bf16 && !kernels_bf16_available())
        log_msg(LOG_WARNING, "cpu backend: precision bf16 needs AVX512_BF16, which this processor lacks; "
                             "the GEMMs stay exact (fp32)");
    *ops = (Ops){
        .name = "cpu",
        .ctx = c,
        .alloc = cpu_alloc,
        .free_tensor = cpu_free_tensor,
        .write = cpu_write,
        .read = cpu_read,
        .prepare = cpu_prepare,
        .release = cpu_release,
        .status = cpu_status,
        .embed = cpu_embed,
        .rmsnorm = cpu_rmsnorm,
        .rmsnorm_residual = cpu_rmsnorm_residual,
        .rmsnorm_residual_norm = cpu_rmsnorm_residual_norm,
        .layernorm = cpu_layernorm,
        .linear = cpu_linear,
        .linear_multi = cpu_linear_multi,
        .qk_rope_store = cpu_qk_rope_store,
        .attention = cpu_attention,
        .gelu_gate = cpu_gelu_gate,
        .gelu = cpu_gelu,
        .add = cpu_add,
        .patch_embed = cpu_patch_embed,
        .avgpool = cpu_avgpool,
    };
    return 0;
}

size_t ops_cpu_q8_bytes(const Ops *ops) {
    return ((const CpuOps *)ops->ctx)->q8_bytes;
}

void ops_cpu_destroy(Ops *ops) {
    free(ops->ctx);
    ops->ctx = NULL;
}
