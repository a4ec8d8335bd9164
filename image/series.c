/* CT and MRI series -> model tensors (ct_window.h): sample the slices the
 * way the CT notebook does, decode each raw gray PNG, window (CT) or
 * normalize over the volume (MRI), then preprocess like any image. */
#include <stdlib.h>
#include <string.h>

#include "image/ct_window.h"

static int max_slices(const SeriesOptions *s) {
    return s && s->max_slices > 0 ? s->max_slices : CT_MAX_SLICES;
}

int series_output_count(int n_slices, const SeriesOptions *series) {
    int m = max_slices(series);
    return n_slices < m ? n_slices : m;
}

/* Samples and validates the common arguments; fills idx (count returned). */
static int pick_slices(const uint8_t *const *slices, const size_t *sizes, int n_slices,
                       const SeriesOptions *series, int **idx, Error *err) {
    if (n_slices < 1 || !slices || !sizes)
        return error_set(err, "the series has no slices");
    int m = max_slices(series);
    *idx = malloc(sizeof(int) * (size_t)(m < n_slices ? m : n_slices));
    if (!*idx)
        return error_set(err, "out of memory");
    int k = sample_slices_evenly(n_slices, m, *idx);
    if (k < 0) {
        free(*idx);
        *idx = NULL;
        return error_set(err, "cannot sample %d slices down to %d", n_slices, m);
    }
    return k;
}

static size_t tensor_floats(const PreprocessOptions *opt) {
    size_t s = opt && opt->size > 0 ? (size_t)opt->size : IMAGE_MODEL_SIZE;
    return 3 * s * s;
}

int ct_series_to_tensors(const uint8_t *const *slices, const size_t *sizes, int n_slices,
                         const ImageLimits *limits, const SeriesOptions *series, const PreprocessOptions *opt,
                         float *out, int *n_out, int *chosen, Error *err) {
    *n_out = 0;
    static const SeriesOptions defaults = {{1.0, 0.0, 0}, CT_WINDOWS_DEFAULT, 0};
    const SeriesOptions *s = series ? series : &defaults;
    if (ct_windows_validate(&s->windows, err) != 0)
        return -1;
    int *idx;
    int k = pick_slices(slices, sizes, n_slices, s, &idx, err);
    if (k < 0)
        return -1;
    for (int j = 0; j < k; j++) {
        int i = idx[j];
        if (ct_png_to_tensor(slices[i], sizes[i], limits, &s->rescale, &s->windows, opt,
                             out + (size_t)j * tensor_floats(opt), err) != 0) {
            free(idx);
            return error_prefix(err, "slice %d of %d", i + 1, n_slices);
        }
        if (chosen)
            chosen[j] = i;
    }
    free(idx);
    *n_out = k;
    return 0;
}

int mri_series_to_tensors(const uint8_t *const *slices, const size_t *sizes, int n_slices,
                          const ImageLimits *limits, const SeriesOptions *series,
                          const PreprocessOptions *opt, float *out, int *n_out, int *chosen, Error *err) {
    *n_out = 0;
    static const SeriesOptions defaults = {{1.0, 0.0, 0}, CT_WINDOWS_DEFAULT, 0};
    const SeriesOptions *s = series ? series : &defaults;
    int *idx;
    int k = pick_slices(slices, sizes, n_slices, s, &idx, err);
    if (k < 0)
        return -1;
    /* Two passes: all sampled slices are decoded first for the range. */
    DecodedImage *gray = calloc((size_t)k, sizeof *gray);
    int rc = gray ? 0 : error_set(err, "out of memory");
    for (int j = 0; j < k && rc == 0; j++) {
        int i = idx[j];
        if (image_decode(slices[i], sizes[i], limits, IMAGE_DECODE_GRAY_RAW, &gray[j], err) != 0)
            rc = error_prefix(err, "slice %d of %d", i + 1, n_slices);
    }
    float vmin = 0, vmax = 0;
    if (rc == 0)
        rc = mri_volume_range(gray, k, &s->rescale, &vmin, &vmax, err);
    for (int j = 0; j < k && rc == 0; j++) {
        DecodedImage rgb;
        rc = mri_slice_to_rgb8(&gray[j], &s->rescale, vmin, vmax, &rgb, err);
        if (rc == 0) {
            rc = image_rgb8_to_tensor(&rgb, opt, out + (size_t)j * tensor_floats(opt), err);
            decoded_image_free(&rgb);
        }
        if (rc != 0)
            error_prefix(err, "slice %d of %d", idx[j] + 1, n_slices);
        else if (chosen)
            chosen[j] = idx[j];
    }
    for (int j = 0; gray && j < k; j++)
        decoded_image_free(&gray[j]);
    free(gray);
    free(idx);
    if (rc == 0)
        *n_out = k;
    return rc;
}
