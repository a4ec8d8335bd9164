/* Medical windowing for MedGemma 1.5 volumes (image/ owns this; the request
 * fields that reach it are described in docs/images.md).
 *
 * CT: a raw slice (16-bit grayscale PNG of the stored DICOM values) becomes
 * Hounsfield units hu = stored * rescale_slope + rescale_intercept, and each of
 * R, G, B is one window: channel = round((clip(hu, lo, hi) - lo) / (hi - lo) * 255)
 * (float32, ties to even), as in Google's MedGemma 1.5 CT notebook. Defaults:
 * R -1024..1024 (wide), G -135..215 (soft tissue), B 0..80 (brain).
 * MRI: value = round((v - min) / (max - min) * 255) with min and max taken
 * over the whole volume, the same value in all three channels.
 * Long series are sampled evenly down to at most 85 slices. */
#ifndef IMAGE_CT_WINDOW_H
#define IMAGE_CT_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"
#include "util/error.h"

typedef struct {
    float lo, hi; /* Hounsfield units; lo < hi */
} HuWindow;

typedef struct {
    HuWindow r, g, b;
} CtWindows;

#define CT_WINDOWS_DEFAULT                                                                                   \
    {                                                                                                        \
        {-1024.0f, 1024.0f}, {-135.0f, 215.0f}, {                                                            \
            0.0f, 80.0f                                                                                      \
        }                                                                                                    \
    }

/* The most slices MedGemma 1.5's CT notebook gives the model. */
#define CT_MAX_SLICES 85

/* How stored sample values become physical values (DICOM tags). */
typedef struct {
    double rescale_slope;     /* (0028,1053); 0 means 1 */
    double rescale_intercept; /* (0028,1052); e.g. -1024 */
    int pixels_signed;        /* (0028,0103) PixelRepresentation: 1 = stored as int16 two's complement */
} RescaleParams;

/* Checks a window set (finite, lo < hi); the message names the channel. */
int ct_windows_validate(const CtWindows *w, Error *err);

/* A raw gray slice (1 channel, 8 or 16 bit, as from IMAGE_DECODE_GRAY_RAW)
 * -> 8-bit RGB with the three windows. *out_rgb8 owns new pixels
 * (decoded_image_free). NULL windows: CT_WINDOWS_DEFAULT. */
int ct_slice_to_rgb8(const DecodedImage *gray, const RescaleParams *rescale, const CtWindows *windows,
                     DecodedImage *out_rgb8, Error *err);

/* Min and max physical value over a whole volume of raw gray slices. */
int mri_volume_range(const DecodedImage *slices, int n_slices, const RescaleParams *rescale, float *vmin,
                     float *vmax, Error *err);

/* One raw gray slice -> 8-bit RGB gray scaled by the volume's [vmin, vmax]
 * (a constant volume gives zeros). */
int mri_slice_to_rgb8(const DecodedImage *gray, const RescaleParams *rescale, float vmin, float vmax,
                      DecodedImage *out_rgb8, Error *err);

/* Picks which of n_total slices (in series order) to keep: all of them when
 * n_total <= max_n, else index round(i / max_n * (n_total - 1)) for
 * i = 1..max_n (ties to even), exactly the CT notebook's choice: evenly
 * spread, ending at the last slice, ascending. Writes the count it chose (<= max_n) and returns it;
 * -1 on bad arguments (n_total < 1, max_n < 1). */
int sample_slices_evenly(int n_total, int max_n, int *indices);

/* The server's per-slice call: a CT slice (16-bit gray PNG bytes) -> model
 * tensor (3*size*size floats), like image_to_tensor. */
int ct_png_to_tensor(const uint8_t *bytes, size_t n, const ImageLimits *limits, const RescaleParams *rescale,
                     const CtWindows *windows, const PreprocessOptions *opt, float *out_chw, Error *err);

/* ---- whole series, as /analyze receives them (docs/images.md) ---- */

typedef struct {
    RescaleParams rescale;
    CtWindows windows; /* CT only */
    int max_slices;    /* 0 means CT_MAX_SLICES (85) */
} SeriesOptions;

/* How many tensors a series of n_slices yields: min(n_slices, max_slices). */
int series_output_count(int n_slices, const SeriesOptions *series);

/* A CT series (16-bit gray PNG bytes per slice, in series order) -> one
 * tensor per sampled slice, written one after another to out (room for
 * series_output_count() * 3*size*size floats). *n_out gets the count and
 * chosen[] (optional, same room) the 0-based slice indices used. An error
 * names the slice ("slice 7 of 120: PNG is truncated"). */
int ct_series_to_tensors(const uint8_t *const *slices, const size_t *sizes, int n_slices,
                         const ImageLimits *limits, const SeriesOptions *series, const PreprocessOptions *opt,
                         float *out, int *n_out, int *chosen, Error *err);

/* The same for MRI: the sampled slices are normalized by the min and max
 * over all sampled slices (series->windows is ignored). */
int mri_series_to_tensors(const uint8_t *const *slices, const size_t *sizes, int n_slices,
                          const ImageLimits *limits, const SeriesOptions *series,
                          const PreprocessOptions *opt, float *out, int *n_out, int *chosen, Error *err);

#endif
