/* The op table: the one list of operations the model is written in
 * (engine/forward.c), which every backend fills with its own kernels.
 *
 * Owns: the op set's signatures and the types they share. kernels/cpu/ops_cpu.c
 * fills the table from the CPU kernels (kernels/kernels.h); a GPU backend fills
 * it from its own. tests/ops/ checks every op of every filled table against a
 * naive reference from one table of shapes (an op added here without a row
 * there fails the suite: OPS_FOR_EACH below lists them).
 *
 * Types:
 *  - Tensor: a 2-D activation, `rows` tokens (or patches) of `cols` values,
 *    row stride `ld` elements, in the backend's memory and dtype (the CPU:
 *    fp32 host memory; CUDA: bf16 device memory). The forward pass allocates
 *    them with ops->alloc: activations in the backend's dtype, or fp32 on every
 *    backend (the logits, the pixels: AllocKind).
 *  - Weight: one checkpoint matrix or vector as the backend keeps it (format
 *    bf16 as in the checkpoint, q8 = 8-bit blocks quantized at load, fp32).
 *    Matrices are [rows = out, cols = in] like nn.Linear unless `in_out`
 *    says stored [in, out] (the projector). ops->prepare turns a bf16 view of
 *    the checkpoint into the backend's form (quantizes, uploads; the patch
 *    conv, which only patch_embed reads, may be re-laid out: `conv`).
 *  - Batch: the tokens of one forward call: n rows at positions pos0..pos0+n-1.
 *  - KvLayer: one decoder layer's K/V cache, `capacity` slots; slot = pos % capacity
 *    (a local layer's ring of `window` slots or a global layer's positions).
 *  - AttnShape: heads, head dim, scale, mask (causal, sliding window).
 *
 * Every op works on the backend's context `ctx` (streams, scratch, options);
 * ops do not allocate except alloc/prepare (and the CPU GEMMs' scratch, grown
 * once on the first long prompt). Ops report nothing: a device backend keeps
 * its first failure and answers it from ops->status (engine.h's ENGINE_ERR_*
 * codes), which the forward pass asks once per call. */
#ifndef KERNELS_OPS_H
#define KERNELS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "util/bf16.h"
#include "util/error.h"

typedef enum { TENSOR_F32 = 0, TENSOR_BF16 = 1 } TensorType;

/* What ops->alloc makes: activations in the backend's dtype (CPU fp32, CUDA bf16),
 * or fp32 on every backend (the logits, the image pixels). */
typedef enum { ALLOC_ACTIVATIONS = 0, ALLOC_F32 = 1 } AllocKind;

typedef struct {
    void *data;
    TensorType dtype;
    int rows, cols;
    int ld; /* elements between rows (>= cols) */
} Tensor;

/* Rows [r0, r0 + n) of t. */
static inline Tensor tensor_rows(Tensor t, int r0, int n) {
    size_t elem = t.dtype == TENSOR_F32 ? sizeof(float) : sizeof(bf16);
    t.data = (char *)t.data + (size_t)r0 * t.ld * elem;
    t.rows = n;
    return t;
}

typedef enum { WEIGHT_BF16 = 0, WEIGHT_Q8 = 1, WEIGHT_F32 = 2 } WeightFormat;

typedef struct {
    WeightFormat format;
    const void *data; /* bf16: the values; q8: a Q8Matrix (kernels.h); f32: the values */
    int rows, cols;   /* a vector has rows = 1 */
    int in_out;       /* 1: stored [in = rows, out = cols] (y = x W), only bf16 */
    int quantizable;  /* prepare() may store it in 8 bits when the options ask (decoder projections) */
    int conv;         /* the patch conv [hidden, C*P*P]: only patch_embed reads it (CUDA pads its rows) */
    int tied;         /* the output head is the embedding: prepared after it, a device keeps one copy */
    void *owned;      /* what prepare() allocated for it (freed by ops->release) */
} Weight;

/* A bf16 view of checkpoint memory (format bf16, nothing owned). */
static inline Weight weight_bf16(const bf16 *data, int rows, int cols) {
    Weight w = {WEIGHT_BF16, data, rows, cols, 0, 0, 0, 0, NULL};
    return w;
}

/* The most matrices one linear_multi call takes. */
#define OPS_LINEAR_MULTI_MAX 4

typedef struct {
    int n;    /* tokens (rows) */
    int pos0; /* position of the first */
} Batch;

typedef struct {
    Tensor k, v;  /* [capacity, kv_heads * head_dim] */
    int capacity; /* slots */
} KvLayer;

typedef struct {
    int n_heads, n_kv_heads, head_dim; /* query head h reads KV head h / (n_heads / n_kv_heads) */
    float scale;                       /* on q . k */
    int causal;                        /* 0: every key (SigLIP) */
    int window;                        /* > 0: keys within the last `window` positions (local layers) */
} AttnShape;

typedef struct {
    float theta, scale; /* RoPE base and linear scaling factor of this layer */
    float eps;          /* of the per-head RMSNorm before it */
} RopeParams;

typedef struct {
    int n_threads;      /* CPU threads (0 = all cores) */
    int precision_bf16; /* GEMM activations rounded to bf16 (kernels.h PRECISION_BF16) */
    int weights_q8;     /* prepare() stores quantizable weights in 8 bits (cols % 32 == 0) */
} OpsOptions;

typedef struct Ops Ops;
struct Ops {
    const char *name; /* "cpu", "cuda" */
    void *ctx;        /* the backend's context, first argument of every op */

    /* ---- memory */
    /* A rows x cols tensor of `kind` (data NULL when out of memory). */
    Tensor (*alloc)(void *ctx, int rows, int cols, AllocKind kind);
    void (*free_tensor)(void *ctx, Tensor *t);
    /* t = host rows (fp32, rows x cols packed) / host = t (fp32), converting from/to the tensor's dtype.
     * read returns when host holds the values (a device backend waits for its stream). */
    void (*write)(void *ctx, Tensor t, const float *host);
    void (*read)(void *ctx, float *host, Tensor t);
    /* Turns w (a bf16 view) into the backend's form; 0, or -1 with err filled. */
    int (*prepare)(void *ctx, Weight *w, Error *err);
    void (*release)(void *ctx, Weight *w);
    /* 0, or the first failure since the last call (engine.h ENGINE_ERR_*, err filled). */
    int (*status)(void *ctx, Error *err);

    /* ---- ops (math in kernels/kernels.h under the same names) */
    /* out[t] = table[ids[t]] * scale                                       out [n, D] */
    void (*embed)(void *ctx, Tensor out, const Weight *table, const int32_t *ids, float scale);
    /* out = rmsnorm(x) * (1 + w)                                          in place ok */
    void (*rmsnorm)(void *ctx, Tensor out, Tensor x, const Weight *w, float eps);
    /* x += rmsnorm(h) * (1 + w)                                            (post-attn / post-ff) */
    void (*rmsnorm_residual)(void *ctx, Tensor x, Tensor h, const Weight *w, float eps);
    /* fused: x += rmsnorm(h) * (1 + w_post); out = rmsnorm(x) * (1 + w_next) */
    void (*rmsnorm_residual_norm)(void *ctx, Tensor x, Tensor out, Tensor h, const Weight *w_post,
                                  const Weight *w_next, float eps);
    /* out = (x - mean) / sqrt(var + eps) * w + b                           in place ok */
    void (*layernorm)(void *ctx, Tensor out, Tensor x, const Weight *w, const Weight *b, float eps);
    /* y = x W^T (+ bias), or x W for an in_out weight; W in any WeightFormat; y may be fp32 (logits) */
    void (*linear)(void *ctx, Tensor y, Tensor x, const Weight *w, const Weight *bias);
    /* ys[m] = x W_m^T for m < n (1 <= n <= OPS_LINEAR_MULTI_MAX, no bias), each as linear computes it:
     * the projections of one input (q|k|v, gate|up) in one call, which a backend may run as
     * one job (the CPU's decode: one loop of its threads across the matrices) */
    void (*linear_multi)(void *ctx, int n, const Tensor *ys, Tensor x, const Weight *const *ws);
    /* fused: q, k = rope(rmsnorm_head(q|k) * (1 + norm)) at batch positions; the batch's
     * k and v rows stored in the cache slots of their positions (the last `capacity`). */
    void (*qk_rope_store)(void *ctx, Tensor q, Tensor k, Tensor v, const Weight *q_norm, const Weight *k_norm,
                          KvLayer *kv, const Batch *batch, const AttnShape *shape, const RopeParams *rope);
    /* out = softmax(q k^T * scale + mask) v. A batch at pos0 = 0 attends to its own
     * k, v (image_block: kernels.h attention_prefill; NULL = text only); a batch at
     * pos0 > 0 (one decode token, or a prompt continuing a cached prefix) to the cache kv
     * by position (k, v ignored; the window, not the ring's size, bounds the keys).
     * kv may be NULL for pos0 = 0. */
    void (*attention)(void *ctx, Tensor out, Tensor q, Tensor k, Tensor v, const KvLayer *kv,
                      const int32_t *image_block, const Batch *batch, const AttnShape *shape);
    /* out = gelu_tanh(gate) * up                                           out may alias gate */
    void (*gelu_gate)(void *ctx, Tensor out, Tensor gate, Tensor up);
    /* x = gelu_tanh(x)                                                     in place */
    void (*gelu)(void *ctx, Tensor x);
    /* x += y */
    void (*add)(void *ctx, Tensor x, Tensor y);
    /* SigLIP patch conv + bias + position embedding: pixels (fp32) [channels, S * S] -> out [patches, hidden]
     */
    void (*patch_embed)(void *ctx, Tensor out, Tensor pixels, const Weight *w, const Weight *bias,
                        const Weight *pos_embed, int image_size, int patch);
    /* grid x grid rows pooled by k x k windows                             out [(grid / k)^2, D] */
    void (*avgpool)(void *ctx, Tensor out, Tensor x, int grid, int k);
};

/* Every op of the table by name (the conformance harness needs a row for each). */
#define OPS_FOR_EACH(X)                                                                                      \
    X(embed)                                                                                                 \
    X(rmsnorm)                                                                                               \
    X(rmsnorm_residual)                                                                                      \
    X(rmsnorm_residual_norm)                                                                                 \
    X(layernorm)                                                                                             \
    X(linear)                                                                                                \
    X(linear_multi)                                                                                          \
    X(qk_rope_store)                                                                                         \
    X(attention)                                                                                             \
    X(gelu_gate)                                                                                             \
    X(gelu)                                                                                                  \
    X(add)                                                                                                   \
    X(patch_embed)                                                                                           \
    X(avgpool)
#define OPS_COUNT_ONE_(name) +1
#define OPS_COUNT (0 OPS_FOR_EACH(OPS_COUNT_ONE_))
/* The table is its name, its context, 7 memory functions and the ops listed above. */
_Static_assert(sizeof(Ops) == 2 * sizeof(void *) + (7 + OPS_COUNT) * sizeof(void (*)(void)),
               "an op was added to struct Ops without OPS_FOR_EACH (and its harness row)");

/* The CPU table (kernels/cpu/ops_cpu.c): 0, or -1 (err) when out of memory. The CUDA
 * table is kernels/cuda/ops_cuda.h (it needs CUDA's types). */
int ops_cpu_create(Ops *ops, const OpsOptions *options, Error *err);
void ops_cpu_destroy(Ops *ops);
/* Bytes of the weights prepare() stored in 8 bits so far (the load log line). */
size_t ops_cpu_q8_bytes(const Ops *ops);

#endif
