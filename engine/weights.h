/* The weight table: every tensor the forward pass reads, by role, whatever the
 * checkpoint's key layout (`language_model.model.*` from transformers 4.50,
 * `model.language_model.*` from newer versions, `model.*` for text-only
 * Gemma3ForCausalLM). All pointers are bf16 in host memory: bf16 tensors
 * point into the mmap'd checkpoint, F16/F32 ones are converted once at load
 * into buffers the table owns. Shapes are checked against the config.
 *
 * Text RMSNorm weights are stored as (scale - 1), as in the checkpoint. */
#ifndef ENGINE_WEIGHTS_H
#define ENGINE_WEIGHTS_H

#include "engine/config.h"
#include "engine/safetensors.h"
#include "util/bf16.h"
#include "util/error.h"

typedef struct {
    const bf16 *input_norm;     /* [hidden] */
    const bf16 *q_proj;         /* [heads*head_dim, hidden] */
    const bf16 *k_proj;         /* [kv_heads*head_dim, hidden] */
    const bf16 *v_proj;         /* [kv_heads*head_dim, hidden] */
    const bf16 *o_proj;         /* [hidden, heads*head_dim] */
    const bf16 *q_norm;         /* [head_dim] */
    const bf16 *k_norm;         /* [head_dim] */
    const bf16 *post_attn_norm; /* [hidden] */
    const bf16 *pre_ff_norm;    /* [hidden] */
    const bf16 *post_ff_norm;   /* [hidden] */
    const bf16 *gate_proj;      /* [intermediate, hidden] */
    const bf16 *up_proj;        /* [intermediate, hidden] */
    const bf16 *down_proj;      /* [hidden, intermediate] */
} TextLayerWeights;

typedef struct {
    const bf16 *ln1_w, *ln1_b;             /* [hidden] */
    const bf16 *q_w, *q_b, *k_w, *k_b;     /* [hidden, hidden], [hidden] */
    const bf16 *v_w, *v_b, *out_w, *out_b; /* [hidden, hidden], [hidden] */
    const bf16 *ln2_w, *ln2_b;             /* [hidden] */
    const bf16 *fc1_w, *fc1_b;             /* [intermediate, hidden], [intermediate] */
    const bf16 *fc2_w, *fc2_b;             /* [hidden, intermediate], [hidden] */
} VisionLayerWeights;

typedef struct {
    const bf16 *embed;      /* [vocab, hidden] */
    const bf16 *lm_head;    /* [vocab, hidden]; == embed when tied */
    const bf16 *final_norm; /* [hidden] */
    TextLayerWeights *layers;

    /* vision tower (NULL when the model has none) */
    const bf16 *patch_w;   /* [hidden, channels, patch, patch] (conv weight) */
    const bf16 *patch_b;   /* [hidden] */
    const bf16 *pos_embed; /* [(image/patch)^2, hidden] */
    VisionLayerWeights *vision_layers;
    const bf16 *post_ln_w, *post_ln_b; /* [hidden] */

    /* projector */
    const bf16 *mm_soft_norm; /* [vision hidden], stored as (scale - 1) */
    const bf16 *mm_proj;      /* [vision hidden, text hidden] (in x out!) */

    /* buffers converted from F16/F32 at load, freed with the table */
    void **owned;
    int n_owned;
} ModelWeights;

/* Maps every tensor of the config's architecture; fails naming the missing
 * tensor or the one with the wrong shape. */
int weights_load(ModelWeights *weights, const ModelConfig *config, const Checkpoint *ckpt, Error *err);
void weights_free(ModelWeights *weights, const ModelConfig *config);

#endif
