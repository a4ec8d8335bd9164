/* Helpers shared by the kernel tests: random inputs and error measures. */
#ifndef TESTS_UNIT_KERNEL_REF_H
#define TESTS_UNIT_KERNEL_REF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "util/bf16.h"

/* xorshift64*: deterministic inputs per seed. */
static inline float ref_rand(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    uint64_t r = *s * 2685821657736338717ull;
    return (float)((r >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; /* [-1, 1) */
}

static inline float *ref_rand_f32(size_t n, float scale, uint64_t seed) {
    float *x = malloc(n * sizeof *x);
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++)
        x[i] = ref_rand(&s) * scale;
    return x;
}

static inline bf16 *ref_rand_bf16(size_t n, float scale, uint64_t seed) {
    bf16 *x = malloc(n * sizeof *x);
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 7;
    for (size_t i = 0; i < n; i++)
        x[i] = f32_to_bf16(ref_rand(&s) * scale);
    return x;
}

/* ||a - b|| / ||b|| (NaN in a gives NaN, which fails every `<` check). */
static inline double ref_rel_err(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += b[i] * b[i];
    }
    if (den == 0)
        return sqrt(num);
    return sqrt(num / den);
}

static inline double ref_max_abs_diff(const float *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

#endif
