/* Synthetic prompts for the prefix-reuse tests (prompt_builder.h): owns the xorshift
 * generator and the token/image appenders shared by tests/unit/test_prefix_cache.c and
 * tests/gpu/gpu_prefix.c. */
#include "tests/unit/prompt_builder.h"

#include <stdio.h>
#include <stdlib.h>

/* A test that outgrows the fixed arrays is a bug in the test: say so and stop. */
static void need_room(const Prompt *p, int tokens, int images) {
    if (p->n + tokens > PROMPT_MAX_TOKENS || p->n_images + images > PROMPT_MAX_IMAGES) {
        fprintf(stderr,
                "prompt_builder: prompt of %d tokens, %d images cannot take %d + %d more (max %d, %d)\n",
                p->n, p->n_images, tokens, images, PROMPT_MAX_TOKENS, PROMPT_MAX_IMAGES);
        abort();
    }
}

/* xorshift64 (13, 7, 17). */
uint64_t prompt_rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Text: ids drawn from [id_base, id_base + id_range), no image block. */
void prompt_add_text(Prompt *p, int n, uint64_t seed, int32_t id_base, uint32_t id_range) {
    need_room(p, n, 0);
    for (int i = 0; i < n; i++) {
        p->ids[p->n] = id_base + (int32_t)(prompt_rng_next(&seed) % id_range);
        p->block[p->n++] = -1;
    }
}

/* An image: its soft tokens carry its index as their block; the hash derives from the seed. */
void prompt_add_image(Prompt *p, int tokens_per_image, int32_t image_token, uint64_t image_seed) {
    need_room(p, tokens_per_image, 1);
    for (int i = 0; i < tokens_per_image; i++) {
        p->ids[p->n] = image_token;
        p->block[p->n++] = p->n_images;
    }
    p->image_seed[p->n_images] = image_seed;
    p->hash[p->n_images] = (ImageHash){image_seed * 7919 + 1, image_seed};
    p->n_images++;
}
