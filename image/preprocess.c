/* From decoded RGB pixels to the vision tower's input (image.h):
 * optional centered zero-pad to a square (virtual), Pillow BILINEAR resize to
 * size x size, then x/255 and (x - 0.5)/0.5 per channel, channels first.
 * The last two steps are a 256-entry table applied as the resize writes. */
#include <stdlib.h>
#include <string.h>

#include "image/dicom/dicom.h"
#include "image/image.h"
#include "image/resize.h"

/* transformers computes float32(v * (1/255) in float64), then
 * (x - 0.5) / 0.5 in float32; the table holds exactly those values. */
static void build_lut(float lut[256]) {
    for (int v = 0; v < 256; v++) {
        float x = (float)((double)v * (1.0 / 255.0));
        lut[v] = (x - 0.5f) / 0.5f;
    }
}

int image_rgb8_to_tensor(const DecodedImage *rgb8, const PreprocessOptions *opt, float *out_chw, Error *err) {
    if (!rgb8 || !rgb8->pixels || (rgb8->channels != 3 && rgb8->channels != 1) || rgb8->bit_depth != 8 ||
        rgb8->width < 1 || rgb8->height < 1)
        return error_set(err, "preprocess: expected a non-empty 8-bit RGB or gray image");
    int size = opt && opt->size > 0 ? opt->size : IMAGE_MODEL_SIZE;
    float lut[256];
    build_lut(lut);
    int w = rgb8->width, h = rgb8->height;
    ResizeCanvas canvas = {w, h, 0, 0};
    if (opt && opt->pad_to_square && w != h) {
        /* MedGemma's X-ray notebooks: np.pad with d//2 before and d - d//2
         * after. The zeros are never stored: resize treats them as a canvas,
         * so a 16384x1 image does not become a 16384x16384 buffer. */
        int side = w > h ? w : h;
        canvas = (ResizeCanvas){side, side, (side - w) / 2, (side - h) / 2};
    }
    return resize_bilinear(rgb8->pixels, w, h, rgb8->channels, &canvas, size, size, NULL, out_chw, lut, err);
}

int image_to_tensor(const uint8_t *bytes, size_t n, const ImageLimits *limits, const PreprocessOptions *opt,
                    float *out_chw, Error *err) {
    if (dicom_is_dicom(bytes, n))
        return dicom_file_to_tensor(bytes, n, opt, out_chw, err);
    DecodedImage img;
    ImageDecodeMode mode =
        opt && opt->alpha_on_white ? IMAGE_DECODE_RGB8_ON_WHITE : IMAGE_DECODE_RGB8_OR_GRAY8;
    if (image_decode(bytes, n, limits, mode, &img, err) != 0)
        return -1;
    int rc = image_rgb8_to_tensor(&img, opt, out_chw, err);
    decoded_image_free(&img);
    return rc;
}
