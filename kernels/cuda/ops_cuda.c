/* The CUDA op table (kernels/ops.h) over the CUDA launchers (kernels/cuda/kernels_cuda.h)
 * and cuBLASLt (engine/cuda/gemm.h); see ops_cuda.h. Twin: kernels/cpu/ops_cpu.c.
 *
 * Tensors are bf16 device memory (fp32 for ALLOC_F32: logits, pixels), packed
 * (ld == cols); weights are bf16 uploaded by prepare() into carves of the one
 * allocation (the patch conv with its rows padded to a multiple of 8 values, which
 * cuBLASLt's 16-byte row alignment wants; a tied output head shares the embedding's
 * carve). Each op picks its kernel:
 *  - linear: the GEMV for one row, for sizes that are not multiples of 8 and for fp32
 *    output (the logits); cuBLASLt otherwise (and the GEMV per row, said once, when
 *    cuBLASLt has no algorithm for a shape);
 *  - attention: flash prefill for a batch at position 0; over the cache by position (split
 *    over the keys, flash-decoding) for one decode token or a prompt continuing a prefix;
 *  - qk_rope_store, rmsnorm_residual_norm, gelu_gate: the fused kernels.
 * Positions: 0 is a NULL position pointer; another first position is uploaded once
 * (kept while it does not change); in the decode graph's mode every op reads the
 * graph's device position and embed its device token instead.
 * Errors: an op reports nothing; its first failed CUDA call is kept (the call, the
 * CUDA error: cuda_check.h, which also remembers it for the backend's classification),
 * every later op does nothing, and status() answers it once. */
#include "kernels/cuda/ops_cuda.h"

#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/upload.h"
#include "engine/engine.h"
#include "kernels/cuda/kernels_cuda.h"
#include "util/log.h"

#define STAGE_ELEMS ((size_t)1 << 20) /* pinned staging for write/read: 2 MiB of bf16 */

typedef struct {
    const void *host; /* the checkpoint bf16 the carve holds */
    void *dev;
    int rows, cols, conv;
} Uploaded;

typedef struct {
    CudaOpsOptions opt;
    cudaStream_t stream;
    Gemm *gemm;
    Uploader *up;
    /* scratch carved from the arena */
    int32_t *d_ids, *d_image_block, *d_pos; /* d_pos [3]: a call's first position; graph position, token */
    float *d_decode_scratch;
    bf16 *d_patches;
    /* host side */
    void *h_stage;          /* pinned, STAGE_ELEMS bf16 (the conversions go through it) */
    int32_t *h_pos;         /* pinned [1] */
    int pos_on_device;      /* the first position d_pos[0] holds (-1: unknown) */
    int32_t *h_image_block; /* [max_rows]: what d_image_block holds */
    int image_block_n;      /* its rows (0: unknown) */
    Uploaded *uploaded;     /* prepared weights, to share a tied head's carve */
    int n_uploaded, cap_uploaded;
    int graph;  /* the decode graph's mode */
    int failed; /* the first failure since status() last answered */
    Error first;
} CudaOps;

/* ---- failures */

static void fail_cuda(CudaOps *c, cudaError_t e, const char *file, int line, const char *call) {
    if (c->failed)
        return;
    c->failed = 1;
    cuda_check_failed(&c->first, e, file, line, call);
}

static void fail_msg(CudaOps *c, const char *msg) {
    if (c->failed)
        return;
    c->failed = 1;
    error_set(&c->first, "cuda ops: %s", msg);
    log_msg(LOG_ERROR, "cuda ops: %s", msg);
}

/* Runs a launcher or runtime call unless an earlier one failed; keeps its failure. */
#define RUN(c, call)                                                                                         \
    do {                                                                                                     \
        if (!(c)->failed) {                                                                                  \
            cudaError_t e_ = (call);                                                                         \
            if (e_ != cudaSuccess)                                                                           \
                fail_cuda((c), e_, __FILE__, __LINE__, #call);                                               \
        }                                                                                                    \
    } while (0)

static const bf16 *wd(const Weight *w) {
    return w ? (const bf16 *)w->data : NULL;
}
static bf16 *bd(Tensor t) {
    return (bf16 *)t.data;
}

/* Every op takes packed tensors of its dtype. */
static int packed(CudaOps *c, Tensor t, TensorType type, const char *op) {
    if (t.ld == t.cols && t.dtype == type && t.data)
        return 1;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: a %d x %d tensor (ld %d, %s) where packed %s was expected", op, t.rows,
             t.cols, t.ld, t.dtype == TENSOR_F32 ? "fp32" : "bf16", type == TENSOR_F32 ? "fp32" : "bf16");
    fail_msg(c, msg);
    return 0;
}

/* The device pointer of a batch's first position (NULL = position 0). */
static const int32_t *position(CudaOps *c, const Batch *b) {
    if (c->graph)
        return c->d_pos + 1;
    if (b->pos0 == 0)
        return NULL;
    if (c->pos_on_device != b->pos0) {
        *c->h_pos = b->pos0;
        RUN(c, cudaMemcpyAsync(c->d_pos, c->h_pos, sizeof(int32_t), cudaMemcpyHostToDevice, c->stream));
        RUN(c, cudaStreamSynchronize(c->stream)); /* h_pos is reused */
        c->pos_on_device = c->failed ? -1 : b->pos0;
    }
    return c->d_pos;
}

/* ---- memory */

static Tensor cuda_alloc(void *ctx, int rows, int cols, AllocKind kind) {
    CudaOps *c = ctx;
    Tensor t = {NULL, kind == ALLOC_F32 ? TENSOR_F32 : TENSOR_BF16, rows, cols, cols};
    size_t bytes = (size_t)rows * cols * (kind == ALLOC_F32 ? sizeof(float) : sizeof(bf16));
    t.data = device_arena_carve(c->opt.arena, bytes);
    if (!t.data) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "a %d x %d tensor (%zu bytes) does not fit the device plan (%zu of %zu bytes carved): "
                 "engine/cuda/device_plan.c does not plan what engine/forward.c allocates",
                 rows, cols, bytes, c->opt.arena->used, c->opt.arena->size);
        fail_msg(c, msg);
    }
    return t;
}

static void cuda_free_tensor(void *ctx, Tensor *t) {
    CudaOps *c = ctx;
    device_arena_free(c->opt.arena, t->data);
    t->data = NULL;
}

/* Copies between host floats and a bf16 tensor go through the pinned stage, a chunk of
 * rows at a time; fp32 tensors are copied as they are. */
static void cuda_write(void *ctx, Tensor t, const float *host) {
    CudaOps *c = ctx;
    if (c->graph) {
        fail_msg(c, "write() inside the decode graph");
        return;
    }
    if (!packed(c, t, t.dtype, "write"))
        return;
    size_t n = (size_t)t.rows * t.cols;
    if (t.dtype == TENSOR_F32) {
        RUN(c, cudaMemcpyAsync(t.data, host, n * sizeof(float), cudaMemcpyHostToDevice, c->stream));
        RUN(c, cudaStreamSynchronize(c->stream));
        return;
    }
    bf16 *stage = c->h_stage;
    for (size_t i0 = 0; i0 < n && !c->failed; i0 += STAGE_ELEMS) {
        size_t m = n - i0 < STAGE_ELEMS ? n - i0 : STAGE_ELEMS;
        for (size_t i = 0; i < m; i++)
            stage[i] = f32_to_bf16(host[i0 + i]);
        RUN(c, cudaMemcpyAsync(bd(t) + i0, stage, m * sizeof(bf16), cudaMemcpyHostToDevice, c->stream));
        RUN(c, cudaStreamSynchronize(c->stream)); /* the stage is reused */
    }
}

static void cuda_read(void *ctx, float *host, Tensor t) {
    CudaOps *c = ctx;
    if (!packed(c, t, t.dtype, "read"))
        return;
    size_t n = (size_t)t.rows * t.cols;
    if (t.dtype == TENSOR_F32) {
        RUN(c, cudaMemcpyAsync(host, t.data, n * sizeof(float), cudaMemcpyDeviceToHost, c->stream));
        if (!c->graph) /* the graph's copy goes to pinned memory; the backend waits after the launch */
            RUN(c, cudaStreamSynchronize(c->stream));
        return;
    }
    if (c->graph) {
        fail_msg(c, "read() of a bf16 tensor inside the decode graph");
        return;
    }
    bf16 *stage = c->h_stage;
    for (size_t i0 = 0; i0 < n && !c->failed; i0 += STAGE_ELEMS) {
        size_t m = n - i0 < STAGE_ELEMS ? n - i0 : STAGE_ELEMS;
        RUN(c, cudaMemcpyAsync(stage, bd(t) + i0, m * sizeof(bf16), cudaMemcpyDeviceToHost, c->stream));
        RUN(c, cudaStreamSynchronize(c->stream));
        if (c->failed)
            return;
        for (size_t i = 0; i < m; i++)
            host[i0 + i] = bf16_to_f32(stage[i]);
    }
}

/* Copies bytes of host memory to the device: through the uploader between
 * ops_cuda_upload_begin and _end, else one synchronous copy. */
static int upload(CudaOps *c, void *dst, const void *src, size_t bytes, Error *err) {
    if (c->up)
        return uploader_copy(c->up, dst, src, bytes, err);
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return 0;
}

static int cuda_prepare(void *ctx, Weight *w, Error *err) {
    CudaOps *c = ctx;
    if (w->format != WEIGHT_BF16)
        return error_set(err, "cuda ops: only bf16 weights (a %d x %d matrix of format %d)", w->rows, w->cols,
                         (int)w->format);
    for (int i = 0; i < c->n_uploaded && w->tied; i++) { /* a tied output head: the embedding's carve */
        const Uploaded *u = &c->uploaded[i];
        if (u->host == w->data && u->rows == w->rows && u->cols == w->cols && !u->conv) {
            w->data = u->dev;
            w->owned = NULL;
            return 0;
        }
    }
    if (w->tied)
        return error_set(err, "cuda ops: a tied %d x %d weight prepared before what it is tied to", w->rows,
                         w->cols);
    if (c->n_uploaded == c->cap_uploaded) {
        int cap = c->cap_uploaded ? 2 * c->cap_uploaded : 256;
        Uploaded *p = realloc(c->uploaded, (size_t)cap * sizeof *p);
        if (!p)
            return error_set(err, "cuda ops: out of host memory");
        c->uploaded = p;
        c->cap_uploaded = cap;
    }
    int ld = w->conv ? (w->cols + 7) / 8 * 8 : w->cols;
    size_t bytes = (size_t)w->rows * ld * sizeof(bf16);
    void *dev = device_arena_carve(c->opt.arena, bytes);
    if (!dev)
        return error_set(
            err,
            "cuda ops: a %d x %d weight (%zu bytes) does not fit the device plan (%zu of %zu bytes "
            "carved): engine/cuda/device_plan.c does not plan what engine/forward.c binds",
            w->rows, w->cols, bytes, c->opt.arena->used, c->opt.arena->size);
    int rc;
    if (ld == w->cols) {
        rc = upload(c, dev, w->data, bytes, err);
    } else { /* zero columns up to ld */
        bf16 *padded = calloc((size_t)w->rows * ld, sizeof *padded);
        if (!padded) {
            device_arena_free(c->opt.arena, dev);
            return error_set(err, "cuda ops: out of host memory");
        }
        for (int r = 0; r < w->rows; r++)
            memcpy(padded + (size_t)r * ld, wd(w) + (size_t)r * w->cols, (size_t)w->cols * sizeof(bf16));
        rc = upload(c, dev, padded, bytes, err); /* the uploader copies it before returning */
        free(padded);
    }
    if (rc != 0) {
        device_arena_free(c->opt.arena, dev);
        return -1;
    }
    c->uploaded[c->n_uploaded++] = (Uploaded){w->data, dev, w->rows, w->cols, w->conv};
    w->data = dev;
    w->owned = dev;
    return 0;
}

static void cuda_release(void *ctx, Weight *w) {
    CudaOps *c = ctx;
    if (!w->owned)
        return;
    for (int i = 0; i < c->n_uploaded; i++)
        if (c->uploaded[i].dev == w->owned) {
            c->uploaded[i] = c->uploaded[--c->n_uploaded];
            break;
        }
    device_arena_free(c->opt.arena, w->owned);
    w->owned = NULL;
}

static int cuda_status(void *ctx, Error *err) {
    CudaOps *c = ctx;
    if (!c->failed)
        return 0;
    if (err)
        *err = c->first;
    c->failed = 0;
    c->pos_on_device = -1; /* what the device holds is unknown after a failure */
    c->image_block_n = 0;
    return ENGINE_ERR_INTERNAL; /* the backend classifies the CUDA error (cuda_check.h) */
}

/* ---- ops */

static void cuda_embed(void *ctx, Tensor out, const Weight *table, const int32_t *ids, float scale) {
    CudaOps *c = ctx;
    if (!packed(c, out, TENSOR_BF16, "embed"))
        return;
    const int32_t *d_ids = c->d_pos + 2;
    if (!c->graph) {
        if (out.rows > c->opt.max_rows) {
            fail_msg(c, "embed: more rows than the op table's scratch holds");
            return;
        }
        RUN(c, cudaMemcpyAsync(c->d_ids, ids, (size_t)out.rows * sizeof(int32_t), cudaMemcpyHostToDevice,
                               c->stream));
        d_ids = c->d_ids;
    }
    RUN(c, cuda_embedding_lookup(bd(out), wd(table), d_ids, out.rows, out.cols, scale, c->stream));
}

static void cuda_rmsnorm_op(void *ctx, Tensor out, Tensor x, const Weight *w, float eps) {
    CudaOps *c = ctx;
    if (packed(c, out, TENSOR_BF16, "rmsnorm") && packed(c, x, TENSOR_BF16, "rmsnorm"))
        RUN(c, cuda_rmsnorm(bd(out), bd(x), wd(w), x.rows, x.cols, eps, c->stream));
}

static void cuda_rmsnorm_residual_op(void *ctx, Tensor x, Tensor h, const Weight *w, float eps) {
    CudaOps *c = ctx;
    if (packed(c, x, TENSOR_BF16, "rmsnorm_residual") && packed(c, h, TENSOR_BF16, "rmsnorm_residual"))
        RUN(c, cuda_rmsnorm_residual(bd(x), bd(h), wd(w), x.rows, x.cols, eps, c->stream));
}

static void cuda_rmsnorm_residual_norm_op(void *ctx, Tensor x, Tensor out, Tensor h, const Weight *w_post,
                                          const Weight *w_next, float eps) {
    CudaOps *c = ctx;
    if (packed(c, x, TENSOR_BF16, "rmsnorm_residual_norm") &&
        packed(c, out, TENSOR_BF16, "rmsnorm_residual_norm") &&
        packed(c, h, TENSOR_BF16, "rmsnorm_residual_norm"))
        RUN(c, cuda_rmsnorm_residual_norm(bd(x), bd(out), bd(h), wd(w_post), wd(w_next), x.rows, x.cols, eps,
                                          c->stream));
}

static void cuda_layernorm_op(void *ctx, Tensor out, Tensor x, const Weight *w, const Weight *b, float eps) {
    CudaOps *c = ctx;
    if (packed(c, out, TENSOR_BF16, "layernorm") && packed(c, x, TENSOR_BF16, "layernorm"))
        RUN(c, cuda_layernorm(bd(out), bd(x), wd(w), wd(b), x.rows, x.cols, eps, c->stream));
}

/* y [T, out] = x [T, in] w^T (+ bias), w [out, in] bf16, all packed: the GEMV for one
 * row and for sizes that are not multiples of 8; cuBLASLt otherwise, the GEMV per row
 * when cuBLASLt has no algorithm for the shape (said once). */
static void gemm_or_gemv(CudaOps *c, bf16 *y, const bf16 *x, const bf16 *w, const bf16 *bias, int T, int in,
                         int out) {
    if (T > 1 && in % 8 == 0 && out % 8 == 0 && !c->failed) {
        GemmShape s = {T, in, out, GEMM_W_OUT_IN, bias != NULL, 0};
        Error err;
        int rc = gemm_run(c->gemm, &s, y, x, w, bias, c->stream, &err);
        if (rc == 0)
            return;
        if (rc != GEMM_NO_PLAN) {
            c->failed = 1;
            c->first = err;
            return;
        }
        static int warned;
        if (!warned++)
            log_msg(LOG_WARNING, "cuda ops: %s; using the GEMV per row for such shapes", err.message);
    }
    for (int t = 0; t < T; t++)
        RUN(c, cuda_gemv(y + (size_t)t * out, x + (size_t)t * in, w, bias, in, out, c->stream));
}

static void cuda_linear(void *ctx, Tensor y, Tensor x, const Weight *w, const Weight *bias) {
    CudaOps *c = ctx;
    if (!packed(c, x, TENSOR_BF16, "linear") || !packed(c, y, y.dtype, "linear"))
        return;
    if (y.dtype == TENSOR_F32) { /* the logits: fp32 GEMV per row, no bias */
        if (bias || w->in_out) {
            fail_msg(c, "linear: fp32 output only for an [out, in] weight without bias");
            return;
        }
        for (int t = 0; t < x.rows; t++)
            RUN(c, cuda_gemv_f32((float *)y.data + (size_t)t * y.cols, bd(x) + (size_t)t * x.cols, wd(w),
                                 x.cols, y.cols, c->stream));
        return;
    }
    if (w->in_out) { /* the projector [in, out]: cuBLASLt only */
        GemmShape s = {x.rows, w->rows, w->cols, GEMM_W_IN_OUT, bias != NULL, 0};
        Error err;
        if (!c->failed && gemm_run(c->gemm, &s, bd(y), bd(x), wd(w), wd(bias), c->stream, &err) != 0) {
            c->failed = 1;
            c->first = err;
        }
        return;
    }
    gemm_or_gemv(c, bd(y), bd(x), wd(w), wd(bias), x.rows, x.cols, y.cols);
}

/* One GEMV or GEMM per matrix (a fused launch may follow). */
static void cuda_linear_multi(void *ctx, int n, const Tensor *ys, Tensor x, const Weight *const *ws) {
    for (int m = 0; m < n; m++)
        cuda_linear(ctx, ys[m], x, ws[m], NULL);
}

static void cuda_qk_rope_store(void *ctx, Tensor q, Tensor k, Tensor v, const Weight *q_norm,
                               const Weight *k_norm, KvLayer *kv, const Batch *b, const AttnShape *s,
                               const RopeParams *r) {
    CudaOps *c = ctx;
    if (!kv) {
        fail_msg(c, "qk_rope_store without a KV cache");
        return;
    }
    if (!packed(c, kv->k, TENSOR_BF16, "qk_rope_store") || !packed(c, kv->v, TENSOR_BF16, "qk_rope_store"))
        return;
    float scale = r->scale > 0 ? r->scale : 1.0f;
    RUN(c, cuda_qkv_rope_store(bd(q), q.ld, bd(k), k.ld, bd(v), v.ld, wd(q_norm), wd(k_norm), b->n,
                               s->n_heads, s->n_kv_heads, s->head_dim, position(c, b), r->theta, scale,
                               r->eps, bd(kv->k), bd(kv->v), kv->capacity, c->stream));
}

/* The image blocks of a batch on the device (uploaded when they changed). */
static const int32_t *device_image_block(CudaOps *c, const int32_t *image_block, int n) {
    if (!image_block)
        return NULL;
    if (n > c->opt.max_rows) {
        fail_msg(c, "attention: more rows than the op table's scratch holds");
        return NULL;
    }
    if (c->image_block_n != n || memcmp(c->h_image_block, image_block, (size_t)n * sizeof(int32_t)) != 0) {
        memcpy(c->h_image_block, image_block, (size_t)n * sizeof(int32_t));
        RUN(c, cudaMemcpyAsync(c->d_image_block, c->h_image_block, (size_t)n * sizeof(int32_t),
                               cudaMemcpyHostToDevice, c->stream));
        RUN(c, cudaStreamSynchronize(c->stream)); /* h_image_block may change with the next upload */
        c->image_block_n = c->failed ? 0 : n;
    }
    return c->d_image_block;
}

static void cuda_attention_op(void *ctx, Tensor out, Tensor q, Tensor k, Tensor v, const KvLayer *kv,
                              const int32_t *image_block, const Batch *b, const AttnShape *s) {
    CudaOps *c = ctx;
    if (!packed(c, out, TENSOR_BF16, "attention"))
        return;
    if (b->pos0 == 0 && !c->graph) { /* a batch over its own k, v: flash prefill */
        if (k.ld != v.ld) {
            fail_msg(c, "attention: k and v with different row strides");
            return;
        }
        const int32_t *d_blocks = device_image_block(c, image_block, b->n);
        if (!c->failed)
            RUN(c, cuda_attention_prefill(bd(out), bd(q), q.ld, bd(k), bd(v), k.ld, d_blocks, b->n,
                                          s->n_heads, s->n_kv_heads, s->head_dim, s->causal, s->window,
                                          s->scale, c->stream));
        return;
    }
    /* over the cache by position: one decode token, or a prompt continuing a cached prefix.
     * Splits over a row's keys (at most the window, or the capacity): one per 32 keys, up to
     * what the scratch holds for all rows of a launch. */
    if (!kv || !packed(c, kv->k, TENSOR_BF16, "attention") || !packed(c, kv->v, TENSOR_BF16, "attention"))
        return;
    int keys = s->window > 0 && s->window < kv->capacity ? s->window : kv->capacity;
    int splits = keys / 32, per_row = DEVICE_PLAN_DECODE_SPLITS /
                                      (b->n < DEVICE_PLAN_DECODE_SPLITS ? b->n : DEVICE_PLAN_DECODE_SPLITS);
    splits = splits < 1 ? 1 : splits > per_row ? per_row : splits;
    const int32_t *d_blocks = device_image_block(c, image_block, b->n);
    const int32_t *d_pos0 = position(c, b);
    if (!c->failed)
        RUN(c,
            cuda_attention_cached(bd(out), out.ld, bd(q), q.ld, bd(kv->k), bd(kv->v), kv->capacity, d_pos0,
                                  d_blocks, b->n, s->window, s->n_heads, s->n_kv_heads, s->head_dim, s->scale,
                                  c->d_decode_scratch, DEVICE_PLAN_DECODE_SPLITS, splits, c->stream));
}

static void cuda_gelu_gate_op(void *ctx, Tensor out, Tensor gate, Tensor up) {
    CudaOps *c = ctx;
    if (packed(c, out, TENSOR_BF16, "gelu_gate") && packed(c, gate, TENSOR_BF16, "gelu_gate") &&
        packed(c, up, TENSOR_BF16, "gelu_gate"))
        RUN(c, cuda_gelu_tanh_gate(bd(out), bd(gate), bd(up), gate.cols, gate.rows, gate.cols, c->stream));
}

static void cuda_gelu_op(void *ctx, Tensor x) {
    CudaOps *c = ctx;
    if (packed(c, x, TENSOR_BF16, "gelu"))
        RUN(c, cuda_gelu_tanh(bd(x), (long long)x.rows * x.cols, c->stream));
}

static void cuda_add(void *ctx, Tensor x, Tensor y) {
    CudaOps *c = ctx;
    if (packed(c, x, TENSOR_BF16, "add") && packed(c, y, TENSOR_BF16, "add"))
        RUN(c, cuda_residual_add(bd(x), bd(y), (long long)x.rows * x.cols, c->stream));
}

/* im2col (rows padded like the conv weight) + the patch GEMM with its bias + positions. */
static void cuda_patch_embed(void *ctx, Tensor out, Tensor pixels, const Weight *w, const Weight *bias,
                             const Weight *pos_embed, int image_size, int patch) {
    CudaOps *c = ctx;
    if (!packed(c, out, TENSOR_BF16, "patch_embed") || !packed(c, pixels, TENSOR_F32, "patch_embed"))
        return;
    int grid = image_size / patch, n = grid * grid, k_pad = (w->cols + 7) / 8 * 8;
    if (!w->conv || (size_t)n * k_pad * sizeof(bf16) > c->opt.patch_bytes) {
        fail_msg(c, "patch_embed: not a conv weight, or the im2col does not fit the op table's scratch");
        return;
    }
    RUN(c, cuda_patch_im2col(c->d_patches, (const float *)pixels.data, image_size, patch, pixels.rows, k_pad,
                             c->stream));
    gemm_or_gemv(c, bd(out), c->d_patches, wd(w), wd(bias), n, k_pad, out.cols);
    RUN(c, cuda_residual_add(bd(out), wd(pos_embed), (long long)n * out.cols, c->stream));
}

static void cuda_avgpool(void *ctx, Tensor out, Tensor x, int grid, int k) {
    CudaOps *c = ctx;
    if (packed(c, out, TENSOR_BF16, "avgpool") && packed(c, x, TENSOR_BF16, "avgpool"))
        RUN(c, cuda_avgpool_grid(bd(out), bd(x), grid, k, x.cols, c->stream));
}

/* ---- create / destroy */

void ops_cuda_graph_mode(Ops *ops, int on) {
    ((CudaOps *)ops->ctx)->graph = on;
}

int32_t *ops_cuda_graph_inputs(const Ops *ops) {
    return ((CudaOps *)ops->ctx)->d_pos + 1;
}

cudaStream_t ops_cuda_stream(const Ops *ops) {
    return ((CudaOps *)ops->ctx)->stream;
}

int ops_cuda_upload_begin(Ops *ops, Error *err) {
    CudaOps *c = ops->ctx;
    if (uploader_create(&c->up, (size_t)64 << 20, 4, 4, err) != 0) {
        uploader_destroy(c->up);
        c->up = NULL;
        return -1;
    }
    return 0;
}

int ops_cuda_upload_end(Ops *ops, Error *err) {
    CudaOps *c = ops->ctx;
    int rc = c->up ? uploader_finish(c->up, err) : 0;
    uploader_destroy(c->up);
    c->up = NULL;
    return rc;
}

void ops_cuda_destroy(Ops *ops) {
    CudaOps *c = ops->ctx;
    if (!c)
        return;
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    uploader_destroy(c->up);
    gemm_destroy(c->gemm);
    if (c->h_stage)
        cudaFreeHost(c->h_stage);
    if (c->h_pos)
        cudaFreeHost(c->h_pos);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c->h_image_block);
    free(c->uploaded);
    free(c);
    ops->ctx = NULL;
}

/* Carves the table's scratch; -1 (err) when the arena is too small. */
static int carve_scratch(CudaOps *c, Error *err) {
    DeviceArena *a = c->opt.arena;
    size_t rows = (size_t)c->opt.max_rows * sizeof(int32_t);
    c->d_ids = device_arena_carve(a, rows);
    c->d_image_block = device_arena_carve(a, rows);
    c->d_pos = device_arena_carve(a, 3 * sizeof(int32_t));
    c->d_decode_scratch = device_arena_carve(a, c->opt.decode_scratch_bytes);
    c->d_patches = c->opt.patch_bytes ? device_arena_carve(a, c->opt.patch_bytes) : NULL;
    void *workspace = device_arena_carve(a, c->opt.gemm_workspace);
    if (!c->d_ids || !c->d_image_block || !c->d_pos || !c->d_decode_scratch ||
        (c->opt.patch_bytes && !c->d_patches) || !workspace)
        return error_set(err, "cuda ops: the op table's scratch does not fit the device plan (%zu bytes)",
                         a->size);
    return gemm_create_with_workspace(&c->gemm, workspace, c->opt.gemm_workspace, err);
}

int ops_cuda_create(Ops *ops, const CudaOpsOptions *options, Error *err) {
    memset(ops, 0, sizeof *ops);
    CudaOps *c = calloc(1, sizeof *c);
    if (!c)
        return error_set(err, "cuda ops: out of host memory");
    ops->ctx = c;
    c->opt = *options;
    c->pos_on_device = -1;
    if (!(c->h_image_block =
              malloc((size_t)(options->max_rows > 0 ? options->max_rows : 1) * sizeof(int32_t)))) {
        ops_cuda_destroy(ops);
        return error_set(err, "cuda ops: out of host memory");
    }
    int rc = carve_scratch(c, err);
    if (rc == 0 && cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess)
        rc = error_set(err, "cuda ops: cudaStreamCreate failed");
    if (rc == 0 && (cudaMallocHost(&c->h_stage, STAGE_ELEMS * sizeof(bf16)) != cudaSuccess ||
                    cudaMallocHost((void **)&c->h_pos, sizeof(int32_t)) != cudaSuccess))
        rc = error_set(err, "cuda ops: cudaMallocHost of the staging buffers failed");
    if (rc != 0) {
        ops_cuda_destroy(ops);
        return -1;
    }
    *ops = (Ops){
        .name = "cuda",
        .ctx = c,
        .alloc = cuda_alloc,
        .free_tensor = cuda_free_tensor,
        .write = cuda_write,
        .read = cuda_read,
        .prepare = cuda_prepare,
        .release = cuda_release,
        .status = cuda_status,
        .embed = cuda_embed,
        .rmsnorm = cuda_rmsnorm_op,
        .rmsnorm_residual = cuda_rmsnorm_residual_op,
        .rmsnorm_residual_norm = cuda_rmsnorm_residual_norm_op,
        .layernorm = cuda_layernorm_op,
        .linear = cuda_linear,
        .linear_multi = cuda_linear_multi,
        .qk_rope_store = cuda_qk_rope_store,
        .attention = cuda_attention_op,
        .gelu_gate = cuda_gelu_gate_op,
        .gelu = cuda_gelu_op,
        .add = cuda_add,
        .patch_embed = cuda_patch_embed,
        .avgpool = cuda_avgpool,
    };
    return 0;
}
