/* One DICOM file -> stored values -> 8-bit RGB (dicom.h). The arithmetic
 * follows pydicom (apply_modality_lut, apply_windowing, convert_color_space)
 * and Google's MedGemma 1.5 CT notebook, so parity tests can ask for a
 * difference of 0 levels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image/dicom/dicom.h"

static void limits_or_defaults(const DicomLimits *in, DicomLimits *out) {
    DicomLimits d = {0};
    if (in)
        d = *in;
    if (!d.max_file_bytes)
        d.max_file_bytes = DICOM_DEFAULT_MAX_FILE_BYTES;
    if (!d.max_request_bytes)
        d.max_request_bytes = DICOM_DEFAULT_MAX_REQUEST_BYTES;
    if (!d.max_frames)
        d.max_frames = DICOM_DEFAULT_MAX_FRAMES;
    if (!d.max_pixels)
        d.max_pixels = DICOM_DEFAULT_MAX_PIXELS;
    if (!d.max_side)
        d.max_side = DICOM_DEFAULT_MAX_SIDE;
    if (!d.max_decoded_bytes)
        d.max_decoded_bytes = DICOM_DEFAULT_MAX_DECODED_BYTES;
    *out = d;
}

int dicom_is_dicom(const uint8_t *bytes, size_t n) {
    return bytes && n >= 132 && !memcmp(bytes + 128, "DICM", 4);
}

/* Layout checks and limits on a parsed header: everything that decides how
 * much memory the pixels take is checked here, before allocation. */
static int check_header(const DicomHeader *h, const DicomLimits *lim, Error *err) {
    if (h->rows > lim->max_side || h->cols > lim->max_side)
        return error_set(err, "(0028,0010)/(0028,0011) image is %dx%d pixels, over the limit of %d per side",
                         h->cols, h->rows, lim->max_side);
    if ((int64_t)h->rows * h->cols > lim->max_pixels)
        return error_set(err, "(0028,0010)/(0028,0011) image is %dx%d pixels, over the limit of %lld",
                         h->cols, h->rows, (long long)lim->max_pixels);
    if (h->frames > lim->max_frames)
        return error_set(err, "(0028,0008) NumberOfFrames is %d, over the limit of %d", h->frames,
                         lim->max_frames);
    if (h->samples_per_pixel != 1 && h->samples_per_pixel != 3)
        return error_set(err, "(0028,0002) SamplesPerPixel is %d; 1 (gray) or 3 (colour) is supported",
                         h->samples_per_pixel);
    if (h->bits_allocated != 8 && h->bits_allocated != 16)
        return error_set(err, "(0028,0100) BitsAllocated is %d; 8 or 16 is supported", h->bits_allocated);
    if (h->bits_stored < 1 || h->bits_stored > h->bits_allocated)
        return error_set(err, "(0028,0101) BitsStored is %d, not within 1..BitsAllocated (%d)",
                         h->bits_stored, h->bits_allocated);
    if (h->samples_per_pixel == 3 && h->bits_allocated != 8)
        return error_set(err, "(0028,0100) BitsAllocated is %d; colour images must be 8-bit",
                         h->bits_allocated);
    int64_t bytes = (int64_t)h->rows * h->cols * h->frames * h->samples_per_pixel * (h->bits_allocated / 8);
    if (bytes > lim->max_decoded_bytes)
        return error_set(err, "(7FE0,0010) decoded pixel data would be %lld bytes, over the limit of %lld",
                         (long long)bytes, (long long)lim->max_decoded_bytes);
    return 0;
}

static int open_checked(const uint8_t *bytes, size_t n, const DicomLimits *limits, DicomGdcm **g,
                        DicomHeader *h, Error *err) {
    DicomLimits lim;
    limits_or_defaults(limits, &lim);
    *g = NULL;
    if (n > lim.max_file_bytes)
        return error_set(err, "the file is %zu bytes, over the limit of %zu", n, lim.max_file_bytes);
    if (dicom_gdcm_open(bytes, n, g, h, err) != 0)
        return -1;
    if (check_header(h, &lim, err) != 0) {
        dicom_gdcm_close(*g);
        *g = NULL;
        return -1;
    }
    return 0;
}

int dicom_read_header(const uint8_t *bytes, size_t n, const DicomLimits *limits, DicomHeader *h, Error *err) {
    DicomGdcm *g;
    if (open_checked(bytes, n, limits, &g, h, err) != 0)
        return -1;
    dicom_gdcm_close(g);
    return 0;
}

/* YBR_FULL -> RGB as pydicom's convert_color_space: float32 matrix, +0.5,
 * floor, clip to 0..255. */
static uint8_t clamp_floor(float v) {
    v = floorf(v + 0.5f);
    return v < 0.0f ? 0 : v > 255.0f ? 255 : (uint8_t)v;
}

static void ybr_full_to_rgb(uint8_t *p, size_t n_pixels) {
    const float cb_g = (float)(-0.114 * 1.772 / 0.587), cr_g = (float)(-0.299 * 1.402 / 0.587);
    const float cb_b = 1.772f, cr_r = 1.402f;
    for (size_t i = 0; i < n_pixels; i++, p += 3) {
        float y = p[0], cb = (float)p[1] - 128.0f, cr = (float)p[2] - 128.0f;
        float r = y + cb * 0.0f + cr * cr_r;
        float g = y + cb * cb_g + cr * cr_g;
        float b = y + cb * cb_b + cr * 0.0f;
        p[0] = clamp_floor(r);
        p[1] = clamp_floor(g);
        p[2] = clamp_floor(b);
    }
}

/* Colour photometric interpretations: 0 = RGB already, 1 = YBR_FULL to
 * convert, -1 = refused. JPEG 2000's YBR_RCT/YBR_ICT come out of OpenJPEG as
 * RGB; JPEG-coded YBR_FULL and YBR_FULL_422 come out of GDCM as YCbCr (the
 * 4:2:2 upsampled), converted here as pydicom does. Uncompressed YBR_FULL_422
 * (subsampled samples) is refused. */
static int color_mode(const DicomHeader *h) {
    const char *pi = h->photometric;
    if (!strcmp(pi, "RGB") || !strcmp(pi, "YBR_RCT") || !strcmp(pi, "YBR_ICT"))
        return 0;
    if (!strcmp(pi, "YBR_FULL"))
        return 1;
    if (!strcmp(pi, "YBR_FULL_422")) /* GDCM's JPEG decoder gives it upsampled, still YCbCr */
        return strstr(h->transfer_syntax, "1.2.840.10008.1.2.4.") ? 1 : -1;
    return -1;
}

/* Stored values from GDCM's buffer: BitsStored low bits, sign-extended when
 * PixelRepresentation is 1 (what pydicom's pixel_array gives). */
static void unpack_gray(const DicomHeader *h, const uint8_t *buf, int32_t *values, size_t n) {
    int bits = h->bits_stored;
    uint32_t mask = bits >= 32 ? 0xffffffffu : ((1u << bits) - 1u);
    uint32_t sign = 1u << (bits - 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = h->bits_allocated == 16 ? (uint32_t)(buf[2 * i] | (buf[2 * i + 1] << 8)) : buf[i];
        u &= mask;
        int32_t v = (int32_t)u;
        if (h->pixel_signed && (u & sign))
            v = (int32_t)(u | ~mask);
        values[i] = v;
    }
}

int dicom_read(const uint8_t *bytes, size_t n, const DicomLimits *limits, DicomImage *out, Error *err) {
    memset(out, 0, sizeof *out);
    DicomGdcm *g;
    if (open_checked(bytes, n, limits, &g, &out->h, err) != 0)
        return -1;
    const DicomHeader *h = &out->h;
    int rc = 0;
    if (h->samples_per_pixel == 3 && color_mode(h) < 0)
        rc = error_set(err, "(0028,0004) PhotometricInterpretation %s is not supported for colour images",
                       h->photometric);
    if (h->samples_per_pixel == 1 && strcmp(h->photometric, "MONOCHROME1") != 0 &&
        strcmp(h->photometric, "MONOCHROME2") != 0)
        rc = error_set(err,
                       "(0028,0004) PhotometricInterpretation %s is not supported (MONOCHROME1/2 or colour)",
                       h->photometric);
    size_t len = rc ? 0 : dicom_gdcm_decoded_length(g);
    size_t n_px = (size_t)h->rows * h->cols * h->frames;
    if (rc == 0 && len != n_px * h->samples_per_pixel * (h->bits_allocated / 8))
        rc = error_set(err, "(7FE0,0010) PixelData does not match Rows x Columns x frames x samples");
    uint8_t *buf = rc ? NULL : calloc(len ? len : 1, 1);
    if (rc == 0 && !buf)
        rc = error_set(err, "out of memory for %zu bytes of pixel data", len);
    if (rc == 0)
        rc = dicom_gdcm_decode(g, buf, len, err);
    dicom_gdcm_close(g);
    if (rc == 0 && h->samples_per_pixel == 1) {
        out->values = calloc(n_px ? n_px : 1, sizeof *out->values);
        if (!out->values)
            rc = error_set(err, "out of memory for %zu pixels", n_px);
        else
            unpack_gray(h, buf, out->values, n_px);
    } else if (rc == 0) {
        out->rgb = calloc(n_px ? n_px : 1, 3);
        if (!out->rgb) {
            rc = error_set(err, "out of memory for %zu pixels", n_px);
        } else if (h->planar_configuration == 1) {
            size_t plane = (size_t)h->rows * h->cols;
            for (int f = 0; f < h->frames; f++) {
                const uint8_t *src = buf + (size_t)f * plane * 3;
                uint8_t *dst = out->rgb + (size_t)f * plane * 3;
                for (size_t i = 0; i < plane; i++)
                    for (int c = 0; c < 3; c++)
                        dst[3 * i + c] = src[c * plane + i];
            }
        } else {
            memcpy(out->rgb, buf, n_px * 3);
        }
        if (rc == 0 && color_mode(h) == 1)
            ybr_full_to_rgb(out->rgb, n_px);
    }
    free(buf);
    if (rc != 0)
        dicom_image_free(out);
    return rc;
}

void dicom_image_free(DicomImage *img) {
    if (!img)
        return;
    free(img->values);
    free(img->rgb);
    img->values = NULL;
    img->rgb = NULL;
}

int dicom_kind(const DicomHeader *h, const char *modality, DicomKind *kind, Error *err) {
    const char *m = modality && modality[0] ? modality : h->modality;
    if (!strcasecmp(m, "SM") || !strcmp(h->sop_class_uid, "1.2.840.10008.5.1.4.1.1.77.1.6"))
        return error_set(err, "(0008,0060) Modality SM: whole-slide microscopy is not supported; send "
                              "tiles or a thumbnail as PNG/JPEG images");
    if (!strcasecmp(m, "CT"))
        *kind = DICOM_KIND_CT;
    else if (!strcasecmp(m, "MR") || !strcasecmp(m, "MRI"))
        *kind = DICOM_KIND_MR;
    else
        *kind = h->samples_per_pixel == 3 ? DICOM_KIND_COLOR : DICOM_KIND_GRAY;
    if ((*kind == DICOM_KIND_CT || *kind == DICOM_KIND_MR) && h->samples_per_pixel != 1)
        return error_set(err, "(0028,0002) SamplesPerPixel is %d: a %s image must be grayscale",
                         h->samples_per_pixel, *kind == DICOM_KIND_CT ? "CT" : "MR");
    return 0;
}

static int check_frame(const DicomImage *img, int frame, int want_gray, Error *err) {
    if (frame < 0 || frame >= img->h.frames)
        return error_set(err, "frame %d is out of range (the file has %d)", frame + 1, img->h.frames);
    if (want_gray ? !img->values : !img->rgb)
        return error_set(err, "(0028,0002) SamplesPerPixel is %d: not a %s image", img->h.samples_per_pixel,
                         want_gray ? "grayscale" : "colour");
    return 0;
}

static double slope_of(const DicomHeader *h) {
    return h->has_rescale ? h->rescale_slope : 1.0;
}
static double intercept_of(const DicomHeader *h) {
    return h->has_rescale ? h->rescale_intercept : 0.0;
}

int dicom_frame_physical(const DicomImage *img, int frame, double *out, Error *err) {
    if (check_frame(img, frame, 1, err))
        return -1;
    size_t n = (size_t)img->h.rows * img->h.cols;
    const int32_t *v = img->values + (size_t)frame * n;
    double s = slope_of(&img->h), b = intercept_of(&img->h);
    for (size_t i = 0; i < n; i++)
        out[i] = (double)v[i] * s + b;
    return 0;
}

int dicom_frame_gray16(const DicomImage *img, int frame, DecodedImage *out, RescaleParams *rescale,
                       Error *err) {
    memset(out, 0, sizeof *out);
    if (check_frame(img, frame, 1, err))
        return -1;
    size_t n = (size_t)img->h.rows * img->h.cols;
    uint16_t *p = malloc(n * sizeof *p);
    if (!p)
        return error_set(err, "out of memory");
    const int32_t *v = img->values + (size_t)frame * n;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint16_t)v[i]; /* two's complement when signed: ct_window.c reads it back as int16 */
    out->width = img->h.cols;
    out->height = img->h.rows;
    out->channels = 1;
    out->bit_depth = 16;
    out->pixels = p;
    rescale->rescale_slope = slope_of(&img->h);
    rescale->rescale_intercept = intercept_of(&img->h);
    rescale->pixels_signed = img->h.pixel_signed;
    return 0;
}

/* 1 when stored value v is padding ((0028,0120) alone, or the range it spans
 * with (0028,0121)). */
static int is_padding(const DicomHeader *h, int32_t v) {
    if (!h->has_padding)
        return 0;
    if (!h->has_padding_limit)
        return v == h->padding_value;
    long lo = h->padding_value < h->padding_limit ? h->padding_value : h->padding_limit;
    long hi = h->padding_value < h->padding_limit ? h->padding_limit : h->padding_value;
    return v >= lo && v <= hi;
}

int dicom_ct_frame_rgb8(const DicomImage *img, int frame, const CtWindows *windows, DecodedImage *out,
                        Error *err) {
    DecodedImage gray;
    RescaleParams r;
    memset(out, 0, sizeof *out);
    if (dicom_frame_gray16(img, frame, &gray, &r, err) != 0)
        return -1;
    int rc = ct_slice_to_rgb8(&gray, &r, windows, out, err);
    decoded_image_free(&gray);
    if (rc == 0 && img->h.has_padding) {
        size_t n = (size_t)img->h.rows * img->h.cols;
        const int32_t *v = img->values + (size_t)frame * n;
        uint8_t *rgb = out->pixels;
        for (size_t i = 0; i < n; i++)
            if (is_padding(&img->h, v[i]))
                rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = 0;
    }
    return rc;
}

static int alloc_rgb(int w, int h, DecodedImage *out, Error *err) {
    out->pixels = malloc((size_t)w * h * 3);
    if (!out->pixels)
        return error_set(err, "out of memory");
    out->width = w;
    out->height = h;
    out->channels = 3;
    out->bit_depth = 8;
    return 0;
}

/* pydicom's apply_windowing for one value (LINEAR, LINEAR_EXACT, SIGMOID). */
static double apply_window(double x, int fn, double center, double width, double y_min, double y_max) {
    double y_range = y_max - y_min;
    if (fn == 2)
        return y_range / (1 + exp(-4 * (x - center) / width)) + y_min;
    if (x <= center - width / 2)
        return y_min;
    if (x > center + width / 2)
        return y_max;
    return ((x - center) / width + 0.5) * y_range + y_min;
}

int dicom_gray_frame_rgb8(const DicomImage *img, int frame, int voi_index, DecodedImage *out, Error *err) {
    memset(out, 0, sizeof *out);
    if (check_frame(img, frame, 1, err))
        return -1;
    const DicomHeader *h = &img->h;
    size_t n = (size_t)h->rows * h->cols;
    double *v = malloc(n * sizeof *v);
    if (!v)
        return error_set(err, "out of memory");
    dicom_frame_physical(img, frame, v, err);
    double lo, hi;
    if (h->n_windows > 0) {
        if (voi_index < 0 || voi_index >= h->n_windows) {
            free(v);
            return error_set(err, "(0028,1050) WindowCenter has %d window%s; window %d was asked for",
                             h->n_windows, h->n_windows == 1 ? "" : "s", voi_index);
        }
        int fn = 0;
        if (!h->voi_function[0] || !strcmp(h->voi_function, "LINEAR"))
            fn = 0;
        else if (!strcmp(h->voi_function, "LINEAR_EXACT"))
            fn = 1;
        else if (!strcmp(h->voi_function, "SIGMOID"))
            fn = 2;
        else {
            free(v);
            return error_set(err, "(0028,1056) VOILUTFunction is not LINEAR, LINEAR_EXACT or SIGMOID");
        }
        double center = h->window_center[voi_index], width = h->window_width[voi_index];
        if ((fn == 0 && width < 1) || (fn != 0 && width <= 0)) {
            free(v);
            return error_set(err, "(0028,1051) WindowWidth is too small for the VOI LUT function");
        }
        if (fn == 0) {
            center -= 0.5;
            width -= 1;
        }
        /* the output range: the stored range, rescaled when the file rescales */
        double y_min = h->pixel_signed ? -ldexp(1.0, h->bits_stored - 1) : 0.0;
        double y_max = h->pixel_signed ? ldexp(1.0, h->bits_stored - 1) - 1 : ldexp(1.0, h->bits_stored) - 1;
        if (h->has_rescale) {
            y_min = y_min * h->rescale_slope + h->rescale_intercept;
            y_max = y_max * h->rescale_slope + h->rescale_intercept;
        }
        for (size_t i = 0; i < n; i++)
            v[i] = apply_window(v[i], fn, center, width, y_min, y_max);
        lo = y_min;
        hi = y_max;
    } else if (voi_index > 0) {
        free(v);
        return error_set(err, "(0028,1050) WindowCenter is absent: the file has no window %d to pick",
                         voi_index);
    } else {
        lo = INFINITY;
        hi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
        }
    }
    if (alloc_rgb(h->cols, h->rows, out, err) != 0) {
        free(v);
        return -1;
    }
    int invert = !strcmp(h->photometric, "MONOCHROME1");
    uint8_t *rgb = out->pixels;
    for (size_t i = 0; i < n; i++) {
        double s = hi > lo ? rint((v[i] - lo) / (hi - lo) * 255.0) : 0.0;
        uint8_t b = s < 0 ? 0 : s > 255 ? 255 : (uint8_t)s;
        if (invert)
            b = (uint8_t)(255 - b);
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = b;
    }
    free(v);
    return 0;
}

int dicom_color_frame_rgb8(const DicomImage *img, int frame, DecodedImage *out, Error *err) {
    memset(out, 0, sizeof *out);
    if (check_frame(img, frame, 0, err))
        return -1;
    if (alloc_rgb(img->h.cols, img->h.rows, out, err) != 0)
        return -1;
    size_t n = (size_t)img->h.rows * img->h.cols * 3;
    memcpy(out->pixels, img->rgb + (size_t)frame * n, n);
    return 0;
}
