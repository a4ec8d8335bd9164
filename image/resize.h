/* Internal to image/: Pillow-exact BILINEAR resize (resize.c). */
#ifndef IMAGE_RESIZE_H
#define IMAGE_RESIZE_H

#include <stdint.h>

#include "util/error.h"

/* Zero padding around the source, without materializing it: the source is
 * placed at (x0, y0) in a width x height canvas of zeros, and the canvas is
 * what gets resized (exactly as Pillow would resize the padded image). */
typedef struct {
    int width, height;
    int x0, y0;
} ResizeCanvas;

/* Resizes interleaved 8-bit pixels (or the canvas around them; NULL: none). Exactly one of dst_u8
 * (interleaved, dst_w*dst_h*channels) and dst_chw (channels-first floats, each 8-bit result v written as
 * lut[v]) receives the output. Rows are split across threads for large images (MEDGEMMA_IMAGE_THREADS caps
 * the count; default: online CPUs, at most 8). */
int resize_bilinear(const uint8_t *src, int src_w, int src_h, int channels, const ResizeCanvas *canvas,
                    int dst_w, int dst_h, uint8_t *dst_u8, float *dst_chw, const float *lut, Error *err);

#endif
