/* Token picking (see sampler.h): splitmix64 for the coin, kernels' sampler
 * for the math. */
#include "engine/sampler.h"

#include <math.h>

#include "kernels/kernels.h"

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sampler_init(Sampler *s, int vocab_size, float temperature, int top_k, float top_p, uint64_t seed) {
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    s->rng = seed;
    s->n_sampled = vocab_size > TEXT_VOCAB ? TEXT_VOCAB : vocab_size;
}

int32_t sampler_next(Sampler *s, float *logits, int32_t *scratch) {
    float coin = (float)((splitmix64(&s->rng) >> 40) * (1.0 / 16777216.0)); /* [0, 1) */
    return sample_logits(logits, s->n_sampled, s->temperature, s->top_k, s->top_p, coin, scratch);
}

int32_t sampler_next_masked(Sampler *s, float *logits, const uint32_t *mask, int32_t *scratch) {
    for (int w = 0; w * 32 < s->n_sampled; w++) {
        uint32_t bits = mask[w];
        if (bits == UINT32_MAX)
            continue;
        int end = w * 32 + 32 < s->n_sampled ? w * 32 + 32 : s->n_sampled;
        for (int i = w * 32; i < end; i++)
            if (!(bits >> (i & 31) & 1))
                logits[i] = -INFINITY;
    }
    return sampler_next(s, logits, scratch);
}
