/* The backend interface: what the engine's generation loop (engine.c) calls
 * to run the model on one device. engine/backend_cpu.c implements it with the
 * model of engine/forward.c over the CPU op table (kernels/ops.h,
 * kernels/cpu/ops_cpu.c); engine/cuda/backend_cuda.c with kernels/cuda.
 *
 * A backend owns its copy (or view) of the weights, its activations and its
 * KV cache, all sized once in create(): prefill/decode allocate nothing.
 * One sequence at a time: prefill starts a new sequence at position 0 (the
 * previous one's cache is forgotten), decode appends one token.
 *
 * KV cache: global layers keep every position (max_context slots); local
 * (sliding-window) layers keep a ring of `sliding_window` slots, slot =
 * pos % sliding_window, which holds exactly the keys the window allows. */
#ifndef ENGINE_BACKEND_H
#define ENGINE_BACKEND_H

#include <stdint.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/weights.h"
#include "util/error.h"

typedef struct {
    int n_threads;      /* CPU threads (0 = all cores) */
    int max_context;    /* KV capacity in positions (already resolved by the engine, > 0) */
    int max_prefill;    /* most tokens one prefill call may pass (<= max_context) */
    int precision_bf16; /* CPU: GEMM activations rounded to bf16 (kernels.h PRECISION_BF16) */
    int weights_q8;     /* CPU: decoder projections and output head quantized to 8 bits at load */
    float embed_scale;  /* text embedding factor: sqrt(hidden) rounded to the embedding's
                           storage dtype (bf16: 50.5 for 2560), computed by the engine */
} BackendOptions;

/* Optional capture buffers for tests (golden comparisons). Every pointer may
 * be NULL; a non-NULL one is filled by the next calls until replaced. */
typedef struct {
    /* prefill: the residual stream as transformers' output_hidden_states gives it:
     * [num_layers + 1, n_tokens, text hidden] — entry 0 the scaled embeddings (image
     * rows replaced), entry i the output of layer i - 1, the last entry after the
     * final norm. Needs n_tokens <= hidden_capacity. */
    float *hidden;
    int hidden_capacity;
    /* prefill: logits of every position [n_tokens, vocab] (n_tokens <= logits_capacity). */
    float *all_logits;
    int logits_capacity;
    /* encode_image: the vision tower's output after the post LayerNorm
     * [num_patches, vision hidden] (before pooling). */
    float *vision_hidden;
} BackendCapture;

typedef struct Backend {
    const char *name; /* "cpu", "cuda" */

    /* Builds the backend's state for this model. The config and weights
     * outlive the state. Fails (returns -1, err filled) e.g. out of memory,
     * no device. */
    int (*create)(void **state, const ModelConfig *config, const ModelWeights *weights,
                  const BackendOptions *options, Error *err);
    void (*destroy)(void *state);

    /* Device name for engine_info/health ("NVIDIA L4"), NULL for the CPU. */
    const char *(*device_name)(void *state);

    /* encode_image, prefill and decode return 0, or on failure (err filled)
     * one of engine.h's ENGINE_ERR_* codes: -1 (ENGINE_ERR_INPUT) for
     * arguments they refuse; a device backend also tells a request that ran
     * out of device memory, a failed device call, and a lost device (after
     * which every call fails) apart. */

    /* Vision tower + projector for one image: pixels [3, S, S] normalized CHW
     * (S = vision image_size) -> out [mm_tokens_per_image, text hidden], the
     * soft-token embeddings (not scaled). Host pointers. */
    int (*encode_image)(void *state, const float *pixels, float *out, Error *err);

    /* Runs the prompt tokens[0..n) at positions 0..n-1 and fills the KV cache.
     * image_block[t] is -1 for text and the image's index for its soft tokens;
     * the rows of image_embeds [n_soft, text hidden] replace the embeddings of
     * the positions with image_block >= 0, in order of position. image_block
     * may be NULL (no images). logits [vocab] receives the last position's
     * logits. n <= max_prefill. */
    int (*prefill)(void *state, const int32_t *tokens, int n, const int32_t *image_block,
                   const float *image_embeds, float *logits, Error *err);

    /* Appends `token` at position pos (== tokens so far) and writes the
     * logits of that position [vocab]. pos < max_context. */
    int (*decode)(void *state, int32_t token, int pos, float *logits, Error *err);

    /* Tests: sets (or clears with NULL) the capture buffers. */
    void (*set_capture)(void *state, const BackendCapture *capture);
} Backend;

const Backend *backend_cpu_get(void);

#ifdef MEDGEMMA_CUDA
/* NULL-free: always returns the CUDA backend; its create() fails when no
 * GPU is present. */
const Backend *backend_cuda_get(void);
/* 1 when a CUDA device is present (engine_open asks this before create). */
int backend_cuda_available(void);
#endif

#endif
