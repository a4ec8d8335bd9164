/* PNG decoding through libspng (codecs.h). Pixels come out the way Pillow's
 * Image.open(...).convert("RGB") gives them, so the model sees what
 * transformers would feed it. Ancillary chunks (text chunks can carry patient
 * names) are parsed by libspng only to skip them: nothing here reads them, and
 * error messages are libspng's fixed strings, never chunk contents. */
#include <spng.h>
#include <stdlib.h>
#include <string.h>

#include "image/codecs.h"

/* Caps on what libspng may keep for ancillary chunks (iCCP, zTXt, ...), so a
 * small file cannot expand into a large allocation outside the pixels. */
#define PNG_CHUNK_SIZE_LIMIT ((size_t)16 << 20)
#define PNG_CHUNK_CACHE_LIMIT ((size_t)16 << 20)

static int spng_fail(int rc, Error *err) {
    if (rc == SPNG_EOF || rc == SPNG_IO_EOF || rc == SPNG_EIDAT_TOO_SHORT)
        return error_set(err, "PNG is truncated (%s)", spng_strerror(rc));
    return error_set(err, "PNG is corrupt (%s)", spng_strerror(rc));
}

static spng_ctx *open_ctx(const uint8_t *bytes, size_t n, const ImageInfo *info, Error *err) {
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) {
        error_set(err, "PNG: out of memory");
        return NULL;
    }
    int rc = spng_set_image_limits(ctx, (uint32_t)info->width, (uint32_t)info->height);
    if (!rc)
        rc = spng_set_chunk_limits(ctx, PNG_CHUNK_SIZE_LIMIT, PNG_CHUNK_CACHE_LIMIT);
    if (!rc)
        rc = spng_set_option(ctx, SPNG_KEEP_UNKNOWN_CHUNKS, 0);
    if (!rc)
        rc = spng_set_png_buffer(ctx, bytes, n);
    if (rc) {
        spng_fail(rc, err);
        spng_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Decodes the whole image in format fmt into a new buffer. */
static int decode_to(spng_ctx *ctx, int fmt, int flags, void **pixels, Error *err) {
    size_t size;
    int rc = spng_decoded_image_size(ctx, fmt, &size);
    if (rc)
        return spng_fail(rc, err);
    void *buf = malloc(size);
    if (!buf)
        return error_set(err, "PNG: out of memory for %zu bytes of pixels", size);
    rc = spng_decode_image(ctx, buf, size, fmt, flags);
    if (rc) {
        free(buf);
        return spng_fail(rc, err);
    }
    *pixels = buf;
    return 0;
}

/* Pillow's alpha_composite of (r,g,b,a) over opaque white, in its fixed
 * point (AlphaComposite.c, PRECISION_BITS 7), then the alpha dropped. */
static void composite_on_white(const uint8_t *rgba, uint8_t *rgb, size_t n_pixels) {
    enum { PREC = 7 };
    for (size_t i = 0; i < n_pixels; i++) {
        const uint8_t *s = rgba + 4 * i;
        uint8_t *d = rgb + 3 * i;
        uint32_t a = s[3];
        if (a == 0) {
            d[0] = d[1] = d[2] = 255;
            continue;
        }
        uint32_t blend = 255 * (255 - a);
        uint32_t outa255 = a * 255 + blend;
        uint32_t coef1 = a * 255 * 255 * (1u << PREC) / outa255;
        uint32_t coef2 = 255 * (1u << PREC) - coef1;
        for (int c = 0; c < 3; c++) {
            uint32_t t = s[c] * coef1 + 255 * coef2 + (0x80u << PREC);
            d[c] = (uint8_t)((((t >> 8) + t) >> 8) >> PREC);
        }
    }
}

static int has_transparency(spng_ctx *ctx, const ImageInfo *info) {
    if (info->png_color_type == 4 || info->png_color_type == 6)
        return 1;
    struct spng_trns trns;
    return spng_get_trns(ctx, &trns) == 0;
}

int png_decode(const uint8_t *bytes, size_t n, const ImageInfo *info, ImageDecodeMode mode, DecodedImage *out,
               Error *err) {
    memset(out, 0, sizeof *out);
    if (mode == IMAGE_DECODE_GRAY_RAW && (info->png_color_type != 0 || info->bit_depth < 8))
        return error_set(err,
                         "a raw slice must be an 8- or 16-bit grayscale PNG (this one has color type %d, "
                         "bit depth %d)",
                         info->png_color_type, info->bit_depth);
    spng_ctx *ctx = open_ctx(bytes, n, info, err);
    if (!ctx)
        return -1;
    size_t n_pixels = (size_t)info->width * (size_t)info->height;
    void *pixels = NULL;
    int rc = 0;
    out->width = info->width;
    out->height = info->height;

    if (mode == IMAGE_DECODE_GRAY_RAW) {
        /* SPNG_FMT_PNG: samples as stored, 16-bit ones host-endian. */
        rc = decode_to(ctx, SPNG_FMT_PNG, 0, &pixels, err);
        out->channels = 1;
        out->bit_depth = info->bit_depth;
    } else if (mode == IMAGE_DECODE_RGB8_ON_WHITE && has_transparency(ctx, info)) {
        rc = decode_to(ctx, SPNG_FMT_RGBA8, SPNG_DECODE_TRNS, &pixels, err);
        if (rc == 0) {
            uint8_t *rgb = malloc(n_pixels * 3);
            if (!rgb) {
                rc = error_set(err, "PNG: out of memory");
            } else {
                composite_on_white(pixels, rgb, n_pixels);
            }
            free(pixels);
            pixels = rgb;
        }
        out->channels = 3;
        out->bit_depth = 8;
    } else if (mode == IMAGE_DECODE_RGB8_OR_GRAY8 && info->png_color_type == 0) {
        /* One channel; 16-bit clipped like below, 1/2/4-bit scaled to 8. */
        rc = decode_to(ctx, info->bit_depth == 16 ? SPNG_FMT_PNG : SPNG_FMT_G8, 0, &pixels, err);
        if (rc == 0 && info->bit_depth == 16) {
            uint16_t *g = pixels;
            uint8_t *g8 = pixels; /* in place: each byte written lies before the next read */
            for (size_t i = 0; i < n_pixels; i++)
                g8[i] = g[i] > 255 ? 255 : (uint8_t)g[i];
        }
        out->channels = 1;
        out->bit_depth = 8;
    } else if (info->png_color_type == 0 && info->bit_depth == 16) {
        /* Pillow opens 16-bit gray as "I;16"; its conversion to RGB clips
         * each value at 255 (it does not scale). */
        rc = decode_to(ctx, SPNG_FMT_PNG, 0, &pixels, err);
        if (rc == 0) {
            uint8_t *rgb = malloc(n_pixels * 3);
            if (!rgb) {
                rc = error_set(err, "PNG: out of memory");
            } else {
                const uint16_t *g = pixels;
                for (size_t i = 0; i < n_pixels; i++) {
                    uint8_t v = g[i] > 255 ? 255 : (uint8_t)g[i];
                    rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
                }
            }
            free(pixels);
            pixels = rgb;
        }
        out->channels = 3;
        out->bit_depth = 8;
    } else {
        rc = decode_to(ctx, SPNG_FMT_RGB8, 0, &pixels, err);
        out->channels = 3;
        out->bit_depth = 8;
    }
    spng_ctx_free(ctx);
    if (rc != 0) {
        free(pixels);
        memset(out, 0, sizeof *out);
        return -1;
    }
    out->pixels = pixels;
    return 0;
}
