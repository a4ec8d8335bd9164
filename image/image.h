/* Image input: decoding PNG/JPEG and turning a picture into the vision
 * tower's input tensor (image/ owns this; docs/images.md is its manual).
 *
 * The pipeline matches transformers' Gemma3ImageProcessor on PIL images:
 * convert to RGB (alpha dropped by default, or composited onto white as
 * transformers 5 does; 16-bit samples treated the way Pillow opens them),
 * resize to size x size with PIL's BILINEAR filter (an antialiased triangle
 * filter when shrinking, computed bit-exactly in Pillow 13's fixed point),
 * then x/255, (x - 0.5)/0.5, channels first.
 *
 * Limits are checked from the file header before any pixel is decoded, so a
 * decompression bomb costs a few bytes of parsing. Ancillary metadata (PNG
 * text chunks, EXIF) is never read into messages, logs or replies: it can
 * carry patient identifiers. */
#ifndef IMAGE_IMAGE_H
#define IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Size limits checked before decoding. Zero in a field means the default. */
typedef struct {
    size_t max_encoded_bytes; /* PNG/JPEG file size (after base64); default 32 MiB */
    int64_t max_pixels;       /* width * height; default 40,000,000 (e.g. 6000 x 6666) */
    int max_side;             /* width and height each; default 16384 */
} ImageLimits;

#define IMAGE_DEFAULT_MAX_ENCODED_BYTES ((size_t)32 << 20)
#define IMAGE_DEFAULT_MAX_PIXELS ((int64_t)40000000)
#define IMAGE_DEFAULT_MAX_SIDE 16384

/* IMAGE_FORMAT_DICOM: a DICOM Part 10 file ("DICM" at offset 128); image_probe
 * checks only its size (image/dicom reads the header when it decodes), and
 * image_to_tensor turns a single-frame one into a tensor through image/dicom. */
typedef enum { IMAGE_FORMAT_PNG = 1, IMAGE_FORMAT_JPEG = 2, IMAGE_FORMAT_DICOM = 3 } ImageFormat;

/* What the header says, read without decoding pixels. */
typedef struct {
    ImageFormat format;
    int width, height;
    int channels;       /* as stored: 1 gray, 2 gray+alpha, 3 RGB (also palette, YCbCr), 4 RGBA/CMYK */
    int bit_depth;      /* bits per sample as stored: 1, 2, 4, 8 or 16 */
    int png_color_type; /* PNG only: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA */
} ImageInfo;

/* Reads the header (PNG IHDR, JPEG SOF) and checks the limits (NULL limits:
 * defaults). Returns 0, or -1 with a message such as "image is 70000x70000
 * pixels, over the limit of 16384 per side" or "not a PNG or JPEG image". */
int image_probe(const uint8_t *bytes, size_t n, const ImageLimits *limits, ImageInfo *info, Error *err);

/* Decoded pixels, row-major, channels interleaved, no row padding. 16-bit
 * samples are native-endian uint16_t. */
typedef struct {
    int width, height;
    int channels;  /* 1 (gray) or 3 (RGB) */
    int bit_depth; /* 8 or 16 */
    void *pixels;  /* malloc'd; width*height*channels samples */
} DecodedImage;

typedef enum {
    /* 8-bit RGB exactly as Pillow's Image.open(...).convert("RGB") gives it
     * (what the model path uses). */
    IMAGE_DECODE_RGB8 = 0,
    /* One gray channel at the stored depth (8 or 16 bit): raw CT/MRI slices
     * (grayscale PNG only; anything else is an error naming the color type). */
    IMAGE_DECODE_GRAY_RAW = 1,
    /* 8-bit RGB with transparency (alpha channel or tRNS) composited onto
     * white, as transformers >= 5 converts images with alpha. */
    IMAGE_DECODE_RGB8_ON_WHITE = 2,
    /* Like IMAGE_DECODE_RGB8, but a gray source (gray PNG without alpha,
     * gray JPEG) comes out as 1 channel, since R = G = B: the model path
     * then resizes one channel instead of three. */
    IMAGE_DECODE_RGB8_OR_GRAY8 = 3,
} ImageDecodeMode;

/* Decodes a PNG or JPEG (limits checked first). On success *out owns its
 * pixels: release them with decoded_image_free. */
int image_decode(const uint8_t *bytes, size_t n, const ImageLimits *limits, ImageDecodeMode mode,
                 DecodedImage *out, Error *err);
void decoded_image_free(DecodedImage *img);

typedef struct {
    int size;           /* output side in pixels; 0 means 896 */
    int pad_to_square;  /* 1: zero-pad to a square (centered) before resizing, as
                           MedGemma's X-ray notebooks do */
    int alpha_on_white; /* 1: composite transparency onto white (transformers >= 5);
                           0 (default): drop alpha, as transformers 4.x and MODEL.md */
} PreprocessOptions;

#define IMAGE_MODEL_SIZE 896

/* An 8-bit RGB (or gray: replicated to R, G, B) image -> out_chw
 * (3*size*size floats, channel-major, values in [-1, 1]). Returns -1 only
 * for a wrong input (not 8-bit RGB or gray, empty). */
int image_rgb8_to_tensor(const DecodedImage *rgb8, const PreprocessOptions *opt, float *out_chw, Error *err);

/* The one call the server makes per image: file bytes -> model tensor
 * (decode as IMAGE_DECODE_RGB8_OR_GRAY8, or IMAGE_DECODE_RGB8_ON_WHITE with
 * opt->alpha_on_white, then image_rgb8_to_tensor). NULL limits / opt mean
 * the defaults. Safe to call from several threads at once. */
int image_to_tensor(const uint8_t *bytes, size_t n, const ImageLimits *limits, const PreprocessOptions *opt,
                    float *out_chw, Error *err);

/* Pillow's BILINEAR resize of 8-bit interleaved pixels (any channel count),
 * bit-exact with Image.resize(..., Image.BILINEAR). Exposed for tests. */
int image_resize_bilinear_u8(const uint8_t *src, int src_w, int src_h, int channels, uint8_t *dst, int dst_w,
                             int dst_h, Error *err);

#endif
