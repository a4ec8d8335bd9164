/* JPEG decoding through libturbojpeg (codecs.h). Default decoder settings
 * (accurate integer DCT, fancy upsampling) are what Pillow's libjpeg uses,
 * so the pixels match Image.open(...).convert("RGB"). EXIF orientation is
 * not applied, as neither Pillow's open nor transformers applies it. */
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "image/codecs.h"

int jpeg_probe(const uint8_t *bytes, size_t n, ImageInfo *info, Error *err) {
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return error_set(err, "JPEG: cannot initialize the decoder");
    int w = 0, h = 0, subsamp = 0, colorspace = 0;
    int rc = tjDecompressHeader3(tj, bytes, (unsigned long)n, &w, &h, &subsamp, &colorspace);
    if (rc != 0) {
        error_set(err, "JPEG header is corrupt or truncated (%s)", tjGetErrorStr2(tj));
        tjDestroy(tj);
        return -1;
    }
    tjDestroy(tj);
    /* libjpeg reports a stream that ends before its frame header as
     * "tables only", with no size. */
    if (w <= 0 || h <= 0)
        return error_set(err, "JPEG header is truncated or corrupt (no frame size found)");
    info->format = IMAGE_FORMAT_JPEG;
    info->width = w;
    info->height = h;
    info->bit_depth = 8;
    if (colorspace == TJCS_GRAY)
        info->channels = 1;
    else if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK)
        return error_set(err, "CMYK JPEG images are not supported (send RGB or grayscale)");
    else
        info->channels = 3;
    return 0;
}

int jpeg_decode(const uint8_t *bytes, size_t n, const ImageInfo *info, ImageDecodeMode mode,
                DecodedImage *out, Error *err) {
    memset(out, 0, sizeof *out);
    if (mode == IMAGE_DECODE_GRAY_RAW)
        return error_set(err, "a raw slice must be a lossless 8- or 16-bit grayscale PNG, not a JPEG");
    int gray = mode == IMAGE_DECODE_RGB8_OR_GRAY8 && info->channels == 1;
    size_t size = (size_t)info->width * (size_t)info->height * (gray ? 1 : 3);
    uint8_t *rgb = malloc(size);
    if (!rgb)
        return error_set(err, "JPEG: out of memory for %zu bytes of pixels", size);
    tjhandle tj = tjInitDecompress();
    if (!tj) {
        free(rgb);
        return error_set(err, "JPEG: cannot initialize the decoder");
    }
    /* LIMITSCANS refuses progressive files with absurd scan counts (a known
     * CPU-exhaustion attack); it changes nothing for real images. */
    int rc = tjDecompress2(tj, bytes, (unsigned long)n, rgb, info->width, 0, info->height,
                           gray ? TJPF_GRAY : TJPF_RGB, TJFLAG_LIMITSCANS);
    if (rc != 0) {
        const char *why = tjGetErrorStr2(tj);
        int is_warning = tjGetErrorCode(tj) == TJERR_WARNING;
        /* libjpeg warns and fills the rest with gray when data ends early;
         * Pillow refuses such a file, and so do we. Other warnings (e.g.
         * extraneous bytes before a marker) leave a complete image. */
        if (!is_warning || strstr(why, "Premature end") != NULL) {
            if (strstr(why, "Premature end") != NULL)
                error_set(err, "JPEG is truncated (%s)", why);
            else
                error_set(err, "JPEG is corrupt (%s)", why);
            tjDestroy(tj);
            free(rgb);
            return -1;
        }
    }
    tjDestroy(tj);
    out->width = info->width;
    out->height = info->height;
    out->channels = gray ? 1 : 3;
    out->bit_depth = 8;
    out->pixels = rgb;
    return 0;
}
