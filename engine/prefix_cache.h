/* Prefix reuse (docs/caching.md): what the backend's KV cache holds, and which
 * prefix of a new prompt can continue from it instead of being prefilled again.
 *
 * Owns: the record of the cached sequence (tenant, prompt token ids, image block
 * of each position and each image's pixel hash, positions written) and the plan
 * for a new prompt. No model math: the engine (engine.c) asks prefix_plan, runs
 * the backend's continue_prefill from the planned position, then prefix_record.
 *
 * Exactness (the plan's rules, each checked by tests/unit/test_prefix_cache.c):
 *  - a prefix never ends inside an image block unless the whole block matched
 *    (an image's soft tokens are equal only when the pixel hashes are);
 *  - only prompt positions are reusable: decoded tokens' keys come from the decode
 *    kernels, whose sums differ from a prompt's (not bit-exact);
 *  - the continued part starts at a multiple of PREFIX_ALIGN and has at least
 *    PREFIX_MIN_ROWS rows, so every GEMM of it takes the same kernel path (and the
 *    same row chunks) as a cold prefill of the whole prompt;
 *  - a local layer's ring must still hold the window before the start, and the
 *    continued part must not overwrite what its own first rows read. */
#ifndef ENGINE_PREFIX_CACHE_H
#define ENGINE_PREFIX_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* forward.c's MLP_CHUNK: the decoder's MLP runs the prompt in chunks of this many rows. */
#define PREFIX_ALIGN 256
/* kernels/cpu/matmul_amx.h AMX_MIN_ROWS (>= matmul.c's MIN_PANEL_ROWS): from this many
 * rows on, a GEMM's path does not depend on the row count. */
#define PREFIX_MIN_ROWS 32

/* A 128-bit hash of the preprocessed pixels of one image. */
typedef struct {
    uint64_t a, b;
} ImageHash;

ImageHash image_hash_pixels(const float *pixels, size_t n_values);

typedef struct {
    int window;        /* local layers' sliding window (0: no local layers) */
    int ring_capacity; /* local layers' ring slots */
    int max_context;   /* global layers' slots; ring_capacity >= max_context: never wraps */
} PrefixGeometry;

typedef struct {
    int valid;
    uint64_t tenant;
    int32_t *tokens;      /* [n_tokens] prompt ids at positions 0..n_tokens-1 */
    int32_t *image_block; /* [n_tokens] */
    ImageHash *images;    /* [n_images] */
    int n_tokens, n_images, cap_tokens, cap_images;
    int written;      /* positions written since the sequence began (prompt + decode) */
    double last_used; /* seconds (monotonic) */
} PrefixRecord;

typedef enum {
    PREFIX_COLD_EMPTY, /* nothing cached, another tenant's, expired, or no common prefix */
    PREFIX_COLD_SHORT, /* the common prefix is shorter than one aligned chunk */
    PREFIX_COLD_RING,  /* a local layer's ring no longer holds the window before the prefix */
    PREFIX_COLD_LONG,  /* the new part is longer than the ring's extra slots allow */
    PREFIX_HIT,        /* continue from the planned position */
} PrefixOutcome;

const char *prefix_outcome_name(PrefixOutcome o);

/* The position a new prompt's prefill can start at (0 = a full prefill); *outcome
 * says why. image_block [n] as engine.c fills it (block index = image index). */
int prefix_plan(const PrefixRecord *rec, const PrefixGeometry *g, uint64_t tenant, const int32_t *tokens,
                int n, const int32_t *image_block, const ImageHash *images, int n_images,
                PrefixOutcome *outcome);

/* The cache now holds this prompt (positions 0..n-1, written = n). 0, or -1 (out of
 * memory: the record is left invalid). */
int prefix_record(PrefixRecord *rec, uint64_t tenant, const int32_t *tokens, int n,
                  const int32_t *image_block, const ImageHash *images, int n_images, double now);
void prefix_forget(PrefixRecord *rec);
void prefix_record_free(PrefixRecord *rec);

#endif
