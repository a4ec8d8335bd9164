/* Picking the next token from logits: greedy, or temperature / top-k /
 * top-p sampling driven by a seeded generator (same seed, same tokens).
 * Ids past the text vocabulary (>= 262144: image and special pieces of
 * MedGemma's 262208-row embedding) are never picked. */
#ifndef ENGINE_SAMPLER_H
#define ENGINE_SAMPLER_H

#include <stdint.h>

typedef struct {
    float temperature; /* <= 0: greedy */
    int top_k;         /* <= 0: off */
    float top_p;       /* >= 1: off */
    uint64_t rng;      /* generator state */
    int n_sampled;     /* ids [0, n_sampled) may be picked */
} Sampler;

/* Gemma 3's text vocabulary: ids from here up are never generated. */
#define TEXT_VOCAB 262144

void sampler_init(Sampler *sampler, int vocab_size, float temperature, int top_k, float top_p, uint64_t seed);

/* Picks a token; logits [vocab] are overwritten; scratch holds vocab ints. */
int32_t sampler_next(Sampler *sampler, float *logits, int32_t *scratch);

/* The same, picking only among ids whose bit is set in mask (bit i of
 * mask[i / 32]; constrained decoding): the others get -inf logits first. */
int32_t sampler_next_masked(Sampler *sampler, float *logits, const uint32_t *mask, int32_t *scratch);

#endif
