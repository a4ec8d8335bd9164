/* CT windowing, MRI volume normalization and slice sampling (ct_window.h),
 * written to reproduce Google's MedGemma 1.5 CT notebook number for number:
 * HU in double (pydicom's apply_rescale), clip, then float32 arithmetic and
 * numpy's round-half-to-even. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/ct_window.h"

static int check_gray(const DecodedImage *g, Error *err) {
    if (!g || !g->pixels || g->channels != 1 || (g->bit_depth != 8 && g->bit_depth != 16) || g->width < 1 ||
        g->height < 1)
        return error_set(err, "windowing needs a decoded 8- or 16-bit grayscale slice");
    return 0;
}

/* Stored value of pixel i (int16 when PixelRepresentation says signed). */
static inline int stored_value(const DecodedImage *g, size_t i, const RescaleParams *r) {
    if (g->bit_depth == 16) {
        uint16_t u = ((const uint16_t *)g->pixels)[i];
        return r->pixels_signed ? (int)(int16_t)u : (int)u;
    }
    return ((const uint8_t *)g->pixels)[i];
}

/* Physical value of pixel i (DICOM: stored * slope + intercept). */
static inline double physical(const DecodedImage *g, size_t i, const RescaleParams *r) {
    double slope = r->rescale_slope == 0.0 ? 1.0 : r->rescale_slope;
    return (double)stored_value(g, i, r) * slope + r->rescale_intercept;
}

static int check_rescale(const RescaleParams *r, Error *err) {
    if (!isfinite(r->rescale_slope) || !isfinite(r->rescale_intercept))
        return error_set(err, "rescale_slope and rescale_intercept must be finite numbers");
    return 0;
}

static int alloc_rgb(const DecodedImage *g, DecodedImage *out, Error *err) {
    memset(out, 0, sizeof *out);
    out->pixels = malloc((size_t)g->width * g->height * 3);
    if (!out->pixels)
        return error_set(err, "windowing: out of memory");
    out->width = g->width;
    out->height = g->height;
    out->channels = 3;
    out->bit_depth = 8;
    return 0;
}

/* The notebook's norm(): clip, float32, -= lo, /= (hi - lo), *= 255, then
 * np.round (ties to even) and uint8. */
static inline uint8_t window_value(double hu, float lo, float hi) {
    double clipped = hu < lo ? lo : (hu > hi ? hi : hu);
    float v = (float)clipped;
    v -= lo;
    v /= (hi - lo);
    v *= 255.0f;
    return (uint8_t)rintf(v);
}

int ct_windows_validate(const CtWindows *w, Error *err) {
    const HuWindow *ch[3] = {&w->r, &w->g, &w->b};
    const char *names[3] = {"r", "g", "b"};
    for (int c = 0; c < 3; c++) {
        if (!isfinite(ch[c]->lo) || !isfinite(ch[c]->hi) || !(ch[c]->lo < ch[c]->hi))
            return error_set(err, "CT window \"%s\" must have finite lo < hi (got %g..%g)", names[c],
                             (double)ch[c]->lo, (double)ch[c]->hi);
    }
    return 0;
}

int ct_slice_to_rgb8(const DecodedImage *gray, const RescaleParams *rescale, const CtWindows *windows,
                     DecodedImage *out_rgb8, Error *err) {
    static const CtWindows defaults = CT_WINDOWS_DEFAULT;
    static const RescaleParams identity = {1.0, 0.0, 0};
    const CtWindows *w = windows ? windows : &defaults;
    const RescaleParams *r = rescale ? rescale : &identity;
    if (check_gray(gray, err) || check_rescale(r, err) || ct_windows_validate(w, err))
        return -1;
    if (alloc_rgb(gray, out_rgb8, err))
        return -1;
    /* Each stored value maps to one RGB triple: compute a table over the
     * values this slice uses (a CT slice spans a few thousand of the 65536),
     * then look every pixel up. Same arithmetic per value as per pixel. */
    size_t n = (size_t)gray->width * gray->height;
    int lo = INT32_MAX, hi = INT32_MIN;
    for (size_t i = 0; i < n; i++) {
        int v = stored_value(gray, i, r);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    uint8_t *table = malloc((size_t)(hi - lo + 1) * 3);
    if (!table) {
        decoded_image_free(out_rgb8);
        return error_set(err, "windowing: out of memory");
    }
    double slope = r->rescale_slope == 0.0 ? 1.0 : r->rescale_slope;
    for (int v = lo; v <= hi; v++) {
        double hu = (double)v * slope + r->rescale_intercept;
        uint8_t *t = table + (size_t)(v - lo) * 3;
        t[0] = window_value(hu, w->r.lo, w->r.hi);
        t[1] = window_value(hu, w->g.lo, w->g.hi);
        t[2] = window_value(hu, w->b.lo, w->b.hi);
    }
    uint8_t *rgb = out_rgb8->pixels;
    for (size_t i = 0; i < n; i++)
        memcpy(rgb + 3 * i, table + (size_t)(stored_value(gray, i, r) - lo) * 3, 3);
    free(table);
    return 0;
}

int mri_volume_range(const DecodedImage *slices, int n_slices, const RescaleParams *rescale, float *vmin,
                     float *vmax, Error *err) {
    static const RescaleParams identity = {1.0, 0.0, 0};
    const RescaleParams *r = rescale ? rescale : &identity;
    if (n_slices < 1)
        return error_set(err, "MRI volume has no slices");
    if (check_rescale(r, err))
        return -1;
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < n_slices; s++) {
        if (check_gray(&slices[s], err))
            return error_prefix(err, "slice %d", s + 1);
        size_t n = (size_t)slices[s].width * slices[s].height;
        for (size_t i = 0; i < n; i++) {
            double v = physical(&slices[s], i, r);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    *vmin = (float)lo;
    *vmax = (float)hi;
    return 0;
}

int mri_slice_to_rgb8(const DecodedImage *gray, const RescaleParams *rescale, float vmin, float vmax,
                      DecodedImage *out_rgb8, Error *err) {
    static const RescaleParams identity = {1.0, 0.0, 0};
    const RescaleParams *r = rescale ? rescale : &identity;
    if (check_gray(gray, err) || check_rescale(r, err))
        return -1;
    if (!isfinite(vmin) || !isfinite(vmax) || vmax < vmin)
        return error_set(err, "MRI range must be finite with min <= max (got %g..%g)", (double)vmin,
                         (double)vmax);
    if (alloc_rgb(gray, out_rgb8, err))
        return -1;
    uint8_t *rgb = out_rgb8->pixels;
    size_t n = (size_t)gray->width * gray->height;
    for (size_t i = 0; i < n; i++) {
        uint8_t v = 0;
        if (vmax > vmin) {
            float f = (float)physical(gray, i, r);
            f = f < vmin ? vmin : (f > vmax ? vmax : f);
            f -= vmin;
            f /= (vmax - vmin);
            f *= 255.0f;
            v = (uint8_t)rintf(f);
        }
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
    }
    return 0;
}

int sample_slices_evenly(int n_total, int max_n, int *indices) {
    if (n_total < 1 || max_n < 1 || !indices)
        return -1;
    if (n_total <= max_n) {
        for (int i = 0; i < n_total; i++)
            indices[i] = i;
        return n_total;
    }
    /* Python: int(round(i / MAX * (n - 1))) for i in 1..MAX; round() ties to
     * even like rint() in the default rounding mode. */
    for (int i = 1; i <= max_n; i++)
        indices[i - 1] = (int)rint((double)i / max_n * (n_total - 1));
    return max_n;
}

int ct_png_to_tensor(const uint8_t *bytes, size_t n, const ImageLimits *limits, const RescaleParams *rescale,
                     const CtWindows *windows, const PreprocessOptions *opt, float *out_chw, Error *err) {
    DecodedImage gray, rgb;
    if (image_decode(bytes, n, limits, IMAGE_DECODE_GRAY_RAW, &gray, err) != 0)
        return -1;
    int rc = ct_slice_to_rgb8(&gray, rescale, windows, &rgb, err);
    decoded_image_free(&gray);
    if (rc != 0)
        return -1;
    rc = image_rgb8_to_tensor(&rgb, opt, out_chw, err);
    decoded_image_free(&rgb);
    return rc;
}
