/* Header probing, limits and format dispatch for image_decode (image.h).
 * The PNG header is parsed here by hand (IHDR is the first chunk, at a fixed
 * offset), the JPEG header by libturbojpeg (codecs.h). */
#include <stdlib.h>
#include <string.h>

#include "image/codecs.h"
#include "image/dicom/dicom.h"
#include "image/image.h"

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static uint32_t read_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static ImageLimits effective_limits(const ImageLimits *limits) {
    ImageLimits l = {0};
    if (limits)
        l = *limits;
    if (l.max_encoded_bytes == 0)
        l.max_encoded_bytes = IMAGE_DEFAULT_MAX_ENCODED_BYTES;
    if (l.max_pixels <= 0)
        l.max_pixels = IMAGE_DEFAULT_MAX_PIXELS;
    if (l.max_side <= 0)
        l.max_side = IMAGE_DEFAULT_MAX_SIDE;
    return l;
}

/* PNG IHDR: width, height, bit depth, color type; checked against the spec's
 * allowed combinations so the decoder never sees a nonsense header. */
static int png_probe(const uint8_t *b, size_t n, ImageInfo *info, Error *err) {
    if (n < 33)
        return error_set(err, "PNG is truncated: %zu bytes, shorter than its header", n);
    if (read_be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4) != 0)
        return error_set(err, "PNG is corrupt: the first chunk is not a 13-byte IHDR");
    uint32_t w = read_be32(b + 16), h = read_be32(b + 20);
    int depth = b[24], color = b[25];
    if (w > INT32_MAX || h > INT32_MAX)
        return error_set(err, "PNG is corrupt: width or height over 2^31");
    if (b[26] != 0 || b[27] != 0 || b[28] > 1)
        return error_set(err, "PNG is corrupt: unknown compression, filter or interlace method");
    int channels;
    int depth_ok;
    switch (color) {
    case 0: /* gray */
        channels = 1;
        depth_ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
        break;
    case 2: /* RGB */
        channels = 3;
        depth_ok = depth == 8 || depth == 16;
        break;
    case 3: /* palette */
        channels = 3;
        depth_ok = depth == 1 || depth == 2 || depth == 4 || depth == 8;
        break;
    case 4: /* gray + alpha */
        channels = 2;
        depth_ok = depth == 8 || depth == 16;
        break;
    case 6: /* RGBA */
        channels = 4;
        depth_ok = depth == 8 || depth == 16;
        break;
    default:
        return error_set(err, "PNG is corrupt: unknown color type %d", color);
    }
    if (!depth_ok)
        return error_set(err, "PNG is corrupt: bit depth %d is not allowed with color type %d", depth, color);
    info->format = IMAGE_FORMAT_PNG;
    info->width = (int)w;
    info->height = (int)h;
    info->channels = channels;
    info->bit_depth = depth;
    info->png_color_type = color;
    return 0;
}

int image_probe(const uint8_t *bytes, size_t n, const ImageLimits *limits, ImageInfo *info, Error *err) {
    ImageLimits l = effective_limits(limits);
    memset(info, 0, sizeof *info);
    if (!bytes || n == 0)
        return error_set(err, "image is empty (0 bytes)");
    if (dicom_is_dicom(bytes, n)) {
        info->format = IMAGE_FORMAT_DICOM;
        if (n > DICOM_DEFAULT_MAX_FILE_BYTES)
            return error_set(err, "DICOM file is %zu bytes, over the limit of %zu", n,
                             DICOM_DEFAULT_MAX_FILE_BYTES);
        return 0;
    }
    if (n > l.max_encoded_bytes)
        return error_set(err, "image file is %zu bytes, over the limit of %zu", n, l.max_encoded_bytes);
    int rc;
    if (n >= 8 && memcmp(bytes, png_signature, 8) == 0)
        rc = png_probe(bytes, n, info, err);
    else if (n >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
        rc = jpeg_probe(bytes, n, info, err);
    else if (n >= 4 && memcmp(bytes, "GIF8", 4) == 0)
        return error_set(err, "GIF images are not supported (send PNG or JPEG)");
    else if (n >= 12 && memcmp(bytes, "RIFF", 4) == 0 && memcmp(bytes + 8, "WEBP", 4) == 0)
        return error_set(err, "WebP images are not supported (send PNG or JPEG)");
    else if (n >= 2 && bytes[0] == 'B' && bytes[1] == 'M')
        return error_set(err, "BMP images are not supported (send PNG or JPEG)");
    else
        return error_set(err, "not a PNG or JPEG image (unrecognized signature)");
    if (rc != 0)
        return rc;
    if (info->width <= 0 || info->height <= 0)
        return error_set(err, "image has zero size (%dx%d)", info->width, info->height);
    if (info->width > l.max_side || info->height > l.max_side)
        return error_set(err, "image is %dx%d pixels, over the limit of %d per side", info->width,
                         info->height, l.max_side);
    if ((int64_t)info->width * info->height > l.max_pixels)
        return error_set(err, "image is %dx%d = %lld pixels, over the limit of %lld", info->width,
                         info->height, (long long)info->width * info->height, (long long)l.max_pixels);
    return 0;
}

int image_decode(const uint8_t *bytes, size_t n, const ImageLimits *limits, ImageDecodeMode mode,
                 DecodedImage *out, Error *err) {
    memset(out, 0, sizeof *out);
    ImageInfo info;
    if (image_probe(bytes, n, limits, &info, err) != 0)
        return -1;
    if (info.format == IMAGE_FORMAT_DICOM)
        return error_set(err, "DICOM files are not accepted directly by image_decode: they go through "
                              "image/dicom (image_to_tensor, or /analyze's \"dicom\" field)");
    if (info.format == IMAGE_FORMAT_PNG)
        return png_decode(bytes, n, &info, mode, out, err);
    return jpeg_decode(bytes, n, &info, mode, out, err);
}

void decoded_image_free(DecodedImage *img) {
    if (!img)
        return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}
