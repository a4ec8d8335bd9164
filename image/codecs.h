/* Internal to image/: the PNG and JPEG decoders behind image_decode. Both
 * are called only after image_probe accepted the header and the limits. */
#ifndef IMAGE_CODECS_H
#define IMAGE_CODECS_H

#include "image/image.h"

/* PNG through libspng. IMAGE_DECODE_RGB8 follows Pillow: low-bit gray scaled
 * to 8 bits, 16-bit color reduced to its high byte, 16-bit gray clipped at 255
 * (Pillow's "I;16" -> "RGB"), palette expanded, alpha and tRNS ignored;
 * IMAGE_DECODE_RGB8_ON_WHITE composites transparency onto white first;
 * IMAGE_DECODE_RGB8_OR_GRAY8 keeps gray (color type 0) as one channel. */
int png_decode(const uint8_t *bytes, size_t n, const ImageInfo *info, ImageDecodeMode mode, DecodedImage *out,
               Error *err);

/* JPEG through libturbojpeg: gray or YCbCr/RGB to 8-bit RGB (accurate DCT,
 * fancy upsampling: what Pillow's libjpeg does by default); gray stays one
 * channel in IMAGE_DECODE_RGB8_OR_GRAY8 mode. */
int jpeg_decode(const uint8_t *bytes, size_t n, const ImageInfo *info, ImageDecodeMode mode,
                DecodedImage *out, Error *err);

/* Header only: dimensions and components (no pixel is decoded). */
int jpeg_probe(const uint8_t *bytes, size_t n, ImageInfo *info, Error *err);

#endif
