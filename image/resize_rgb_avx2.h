/* Internal to image/: an AVX2 kernel for resize.c's horizontal pass over
 * RGB rows, bit-identical to the scalar loop (resize_rgb_avx2.c). */
#ifndef IMAGE_RESIZE_RGB_AVX2_H
#define IMAGE_RESIZE_RGB_AVX2_H

#include <stdint.h>

/* The horizontal weights regrouped for 8 outputs at a time. */
typedef struct {
    int n_blocks;     /* outputs [0, 8 * n_blocks) are covered */
    int max_taps;     /* stride of the tables: the pass's ksize */
    int *taps;        /* per block: its widest output's tap count */
    int32_t *offsets; /* [block][tap][8]: byte offset of the tap's pixel in the row */
    int32_t *weights; /* [block][tap][8]: fixed-point weight, 0 past an output's taps */
} RgbBlocks;

/* Builds the tables from resize.c's bounds (first input, count per output)
 * and coefficients (ksize per output). Returns -1 (and builds nothing) when
 * the CPU has no AVX2, MEDGEMMA_IMAGE_NO_SIMD is set, or out_size < 8. */
int rgb_blocks_build(const int *bounds, const int32_t *coeff, int out_size, int ksize, RgbBlocks *b);
void rgb_blocks_free(RgbBlocks *b);

/* Writes outputs [0, 8 * n_blocks) of one row (3 bytes each) and returns
 * their count; the caller computes the rest. Reads up to one byte past the
 * row's last pixel: the row must not be the last bytes of its buffer. */
int rgb_row_avx2(const RgbBlocks *b, const uint8_t *row, uint8_t *out);

#endif
