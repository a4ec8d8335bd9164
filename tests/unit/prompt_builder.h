/* Synthetic prompts for the prefix-reuse tests (tests/unit/test_prefix_cache.c on the CPU
 * backend, tests/gpu/gpu_prefix.c on the CUDA one): token ids, image blocks, one seed and
 * hash per image, built from a xorshift generator so every run sees the same ids. Linked
 * into build/unit_tests and the GPU test programs (kernels/cuda/cuda.mk, cudaemu.mk). */
#ifndef TESTS_UNIT_PROMPT_BUILDER_H
#define TESTS_UNIT_PROMPT_BUILDER_H

#include <stdint.h>

#include "engine/prefix_cache.h"

#define PROMPT_MAX_TOKENS 1024
#define PROMPT_MAX_IMAGES 16

/* A prompt: block[t] is the image index of a soft token, -1 for text; an image's
 * embeddings come from its seed, and its hash is what the prefix cache compares. */
typedef struct {
    int32_t ids[PROMPT_MAX_TOKENS], block[PROMPT_MAX_TOKENS];
    int n, n_images;
    uint64_t image_seed[PROMPT_MAX_IMAGES];
    ImageHash hash[PROMPT_MAX_IMAGES];
} Prompt;

/* One xorshift64 step: advances *s and returns it. */
uint64_t prompt_rng_next(uint64_t *s);

/* Appends n text tokens with ids id_base + (xorshift(seed) % id_range). */
void prompt_add_text(Prompt *p, int n, uint64_t seed, int32_t id_base, uint32_t id_range);

/* Appends one image: tokens_per_image copies of image_token, its seed and hash. */
void prompt_add_image(Prompt *p, int tokens_per_image, int32_t image_token, uint64_t image_seed);

#endif
