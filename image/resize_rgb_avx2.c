/* The horizontal pass of resize.c for RGB rows, 8 output pixels at a time
 * with AVX2 (resize_rgb_avx2.h). Same integers as the scalar loop:
 *   out[c] = clip8(2^21 + sum_t px[(xmin + t) * 3 + c] * k[t])
 * Each step gathers, for 8 outputs, the 4 bytes at their t-th tap (R, G, B
 * and one byte after), splits R, G and B, and adds the 32-bit products.
 * Outputs with fewer taps than the block's widest get weight 0 on a
 * repeated valid tap, so every read stays inside the row (plus one byte). */
#include "image/resize_rgb_avx2.h"

#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

int rgb_blocks_build(const int *bounds, const int32_t *coeff, int out_size, int ksize, RgbBlocks *b) {
    memset(b, 0, sizeof *b);
    if (!__builtin_cpu_supports("avx2") || getenv("MEDGEMMA_IMAGE_NO_SIMD") || out_size < 8)
        return -1;
    b->n_blocks = out_size / 8;
    b->max_taps = ksize;
    b->taps = malloc(sizeof(int) * (size_t)b->n_blocks);
    b->offsets = malloc(sizeof(int32_t) * (size_t)b->n_blocks * ksize * 8);
    b->weights = malloc(sizeof(int32_t) * (size_t)b->n_blocks * ksize * 8);
    if (!b->taps || !b->offsets || !b->weights) {
        rgb_blocks_free(b);
        return -1;
    }
    for (int blk = 0; blk < b->n_blocks; blk++) {
        int taps = 0;
        for (int l = 0; l < 8; l++) {
            int n = bounds[2 * (blk * 8 + l) + 1];
            taps = n > taps ? n : taps;
        }
        b->taps[blk] = taps;
        for (int t = 0; t < taps; t++)
            for (int l = 0; l < 8; l++) {
                int o = blk * 8 + l;
                int xmin = bounds[2 * o], n = bounds[2 * o + 1];
                int tt = n == 0 ? 0 : (t < n ? t : n - 1);
                size_t i = ((size_t)blk * ksize + t) * 8 + l;
                b->offsets[i] = (xmin + tt) * 3;
                b->weights[i] = t < n ? coeff[(size_t)o * ksize + t] : 0;
            }
    }
    return 0;
}

__attribute__((target("avx2"))) int rgb_row_avx2(const RgbBlocks *b, const uint8_t *row, uint8_t *out) {
    const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    const __m256i byte = _mm256_set1_epi32(0xff);
    const __m256i zero = _mm256_setzero_si256(), max8 = _mm256_set1_epi32(255);
    for (int blk = 0; blk < b->n_blocks; blk++) {
        __m256i r = half, g = half, bl = half;
        const int32_t *off = b->offsets + (size_t)blk * b->max_taps * 8;
        const int32_t *w = b->weights + (size_t)blk * b->max_taps * 8;
        for (int t = 0; t < b->taps[blk]; t++) {
            __m256i o = _mm256_loadu_si256((const __m256i *)(off + 8 * t));
            __m256i k = _mm256_loadu_si256((const __m256i *)(w + 8 * t));
            __m256i v = _mm256_i32gather_epi32((const int *)row, o, 1);
            r = _mm256_add_epi32(r, _mm256_mullo_epi32(_mm256_and_si256(v, byte), k));
            g = _mm256_add_epi32(g, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(v, 8), byte), k));
            bl =
                _mm256_add_epi32(bl, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(v, 16), byte), k));
        }
        /* clip8: (sum >> 22) clamped to 0..255 equals Pillow's table. */
        r = _mm256_min_epi32(_mm256_max_epi32(_mm256_srai_epi32(r, PRECISION_BITS), zero), max8);
        g = _mm256_min_epi32(_mm256_max_epi32(_mm256_srai_epi32(g, PRECISION_BITS), zero), max8);
        bl = _mm256_min_epi32(_mm256_max_epi32(_mm256_srai_epi32(bl, PRECISION_BITS), zero), max8);
        int32_t rr[8], gg[8], bb[8];
        _mm256_storeu_si256((__m256i *)rr, r);
        _mm256_storeu_si256((__m256i *)gg, g);
        _mm256_storeu_si256((__m256i *)bb, bl);
        uint8_t *o8 = out + (size_t)blk * 24;
        for (int l = 0; l < 8; l++) {
            o8[3 * l] = (uint8_t)rr[l];
            o8[3 * l + 1] = (uint8_t)gg[l];
            o8[3 * l + 2] = (uint8_t)bb[l];
        }
    }
    return b->n_blocks * 8;
}

#else

int rgb_blocks_build(const int *bounds, const int32_t *coeff, int out_size, int ksize, RgbBlocks *b) {
    (void)bounds, (void)coeff, (void)out_size, (void)ksize;
    memset(b, 0, sizeof *b);
    return -1;
}

int rgb_row_avx2(const RgbBlocks *b, const uint8_t *row, uint8_t *out) {
    (void)b, (void)row, (void)out;
    return 0;
}

#endif

void rgb_blocks_free(RgbBlocks *b) {
    free(b->taps);
    free(b->offsets);
    free(b->weights);
    memset(b, 0, sizeof *b);
}
