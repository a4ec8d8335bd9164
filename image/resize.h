/* Internal to image/: Pillow-exact BILINEAR resize (resize.c). */
#ifndef IMAGE_RESIZE_H
#define IMAGE_RESIZE_H

#include <stdint.h>

#include "util/error.h"

/* Resizes interleaved 8-bit pixels. Exactly one of dst_u8 (interleaved,
 * dst_w*dst_h*channels) and dst_chw (channels-first floats, each 8-bit result
 * v written as lut[v]) receives the output. Rows are split across threads for
 * large images (MEDGEMMA_IMAGE_THREADS caps the count; default: online CPUs,
 * at most 8). */
int resize_bilinear(const uint8_t *src, int src_w, int src_h, int channels, int dst_w, int dst_h,
                    uint8_t *dst_u8, float *dst_chw, const float *lut, Error *err);

#endif
