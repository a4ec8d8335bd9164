/* The model, written once: Gemma 3's decoder and the SigLIP vision tower +
 * projector over the op table (kernels/ops.h). A backend fills the table and
 * calls these; prompt and decode are the same code (decode is one token).
 *
 * Owns: the weights as the backend keeps them (bound from the checkpoint and
 * prepared by the ops: quantized, uploaded), the activations, the KV cache
 * (engine/kv_cache.h), all sized in forward_create; the calls allocate nothing.
 * What forward_create allocates (the CUDA backend plans its device memory from it,
 * engine/cuda/device_plan.c): text x [P, D], xn [P, max(D, H Dh)], q, att [P, H Dh],
 * k, v [P, KVH Dh], gate, up [min(P, FORWARD_MLP_CHUNK), I], fp32 logits [1, V]; the KV
 * cache; with vision fp32 pixels [C, S * S], x, xn, q, k, v, att [N, Dv], mlp [N, Iv],
 * pooled [tokens, Dv], soft [tokens, D]; then every weight through ops->prepare. */
#ifndef ENGINE_FORWARD_H
#define ENGINE_FORWARD_H

#include <stdint.h>

#include "engine/backend.h"
#include "engine/config.h"
#include "engine/weights.h"
#include "kernels/ops.h"
#include "util/error.h"

typedef struct Forward Forward;

/* Prompt rows per MLP pass: bounds the [rows, intermediate] buffers. */
#define FORWARD_MLP_CHUNK 256

typedef struct {
    int max_context; /* KV capacity in positions */
    int max_prefill; /* most tokens one call may pass */
    float embed_scale;
    int ring_extra; /* local layers' ring slots past the window (kv_cache.h; prefix reuse) */
} ForwardOptions;

/* Binds the weights (ops->prepare on each), sizes activations and the KV cache.
 * ops outlives the Forward. 0, or -1 (err). */
int forward_create(Forward **out, const Ops *ops, const ModelConfig *config, const ModelWeights *weights,
                   const ForwardOptions *options, Error *err);
void forward_destroy(Forward *f);

/* tokens[0..n) at positions pos0..pos0+n-1: pos0 = 0 starts a sequence (a prompt,
 * image rows replaced as backend.h's prefill says), n = 1 at pos0 > 0 appends one
 * token over the KV cache, n > 1 at pos0 > 0 continues a cached prefix (backend.h
 * continue_prefill; image_block and image_embeds cover the n tokens). logits [vocab] of the last position.
 * cap (tests) may be NULL. 0, or an ENGINE_ERR_* code from ops->status (err). */
int forward_text(Forward *f, const int32_t *tokens, int n, int pos0, const int32_t *image_block,
                 const float *image_embeds, float *logits, const BackendCapture *cap, Error *err);

/* One image: pixels [3, S, S] -> out [mm_tokens_per_image, text hidden]; vision_hidden
 * (tests, may be NULL) receives the tower's output after the post LayerNorm. */
int forward_image(Forward *f, const float *pixels, float *out, float *vision_hidden, Error *err);

#endif
