/* image/dicom's command-line driver for its parity tests and benchmark.
 *   dicom-tool rgb OUT [--modality M] [--voi K] [--max-slices N] [--windows rlo,rhi,glo,ghi,blo,bhi] FILE...
 *       the files -> 8-bit RGB images (dicom_files_to_rgb8), written one
 *       after another to OUT; a JSON summary on stdout.
 *   dicom-tool hu OUT FILE
 *       one file's physical values (stored * slope + intercept, float64,
 *       all frames) to OUT (grayscale), or its RGB (colour); JSON on stdout.
 *   dicom-tool tensors N FILE...
 *       decode + window + resize to 896x896 tensors, N times (benchmark);
 *       prints the seconds per run.
 * Errors go to stderr as "error: ..." with exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image/dicom/dicom.h"

static int read_file(const char *path, uint8_t **bytes, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *bytes = malloc(len > 0 ? (size_t)len : 1);
    *n = len > 0 ? (size_t)len : 0;
    int ok = *bytes && fread(*bytes, 1, *n, f) == *n;
    fclose(f);
    return ok ? 0 : -1;
}

static int load(int argc, char **argv, uint8_t ***files, size_t **sizes) {
    *files = calloc((size_t)argc + 1, sizeof **files);
    *sizes = calloc((size_t)argc + 1, sizeof **sizes);
    for (int i = 0; i < argc; i++)
        if (read_file(argv[i], &(*files)[i], &(*sizes)[i]) != 0) {
            fprintf(stderr, "error: cannot read %s\n", argv[i]);
            return -1;
        }
    return 0;
}

static int cmd_rgb(int argc, char **argv) {
    const char *out_path = argv[0];
    DicomOptions opt = {0};
    CtWindows win;
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
        if (i + 1 >= argc)
            return fprintf(stderr, "error: %s needs a value\n", argv[i]), 1;
        if (!strcmp(argv[i], "--modality"))
            opt.modality = argv[i + 1];
        else if (!strcmp(argv[i], "--voi"))
            opt.voi_index = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-slices"))
            opt.max_slices = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--windows")) {
            if (sscanf(argv[i + 1], "%f,%f,%f,%f,%f,%f", &win.r.lo, &win.r.hi, &win.g.lo, &win.g.hi,
                       &win.b.lo, &win.b.hi) != 6)
                return fprintf(stderr, "error: --windows wants 6 numbers\n"), 1;
            opt.windows = &win;
        } else
            return fprintf(stderr, "error: unknown option %s\n", argv[i]), 1;
    }
    uint8_t **files;
    size_t *sizes;
    int n = argc - i;
    if (load(n, argv + i, &files, &sizes) != 0)
        return 1;
    DicomResult r;
    Error err = {{0}};
    if (dicom_files_to_rgb8((const uint8_t *const *)files, sizes, n, NULL, &opt, &r, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.message);
        return 1;
    }
    FILE *f = fopen(out_path, "wb");
    printf("{\"n\": %d, \"volume\": %d, \"kind\": %d, \"order\": %d, \"total\": %d, \"images\": [", r.n,
           r.volume, (int)r.kind, (int)r.order, r.n_total_slices);
    for (int k = 0; k < r.n; k++) {
        fwrite(r.rgb[k].pixels, 1, (size_t)r.rgb[k].width * r.rgb[k].height * 3, f);
        printf("%s[%d, %d, %d, %d]", k ? ", " : "", r.file[k], r.frame[k], r.rgb[k].width, r.rgb[k].height);
    }
    printf("]}\n");
    fclose(f);
    dicom_result_free(&r);
    for (int k = 0; k < n; k++)
        free(files[k]);
    free(files);
    free(sizes);
    return 0;
}

static int cmd_hu(const char *out_path, const char *path) {
    uint8_t **files;
    size_t *sizes;
    if (load(1, (char **)&path, &files, &sizes) != 0)
        return 1;
    DicomImage img;
    Error err = {{0}};
    if (dicom_read(files[0], sizes[0], NULL, &img, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.message);
        return 1;
    }
    const DicomHeader *h = &img.h;
    FILE *f = fopen(out_path, "wb");
    size_t plane = (size_t)h->rows * h->cols;
    if (img.values) {
        double *v = malloc(plane * sizeof *v);
        for (int k = 0; k < h->frames; k++) {
            dicom_frame_physical(&img, k, v, &err);
            fwrite(v, sizeof *v, plane, f);
        }
        free(v);
    } else {
        fwrite(img.rgb, 1, plane * 3 * (size_t)h->frames, f);
    }
    fclose(f);
    printf(
        "{\"rows\": %d, \"cols\": %d, \"frames\": %d, \"samples\": %d, \"bits_stored\": %d, \"signed\": %d, "
        "\"photometric\": \"%s\", \"transfer_syntax\": \"%s\"}\n",
        h->rows, h->cols, h->frames, h->samples_per_pixel, h->bits_stored, h->pixel_signed, h->photometric,
        h->transfer_syntax);
    dicom_image_free(&img);
    free(files[0]);
    free(files);
    free(sizes);
    return 0;
}

static int cmd_tensors(int runs, int argc, char **argv) {
    uint8_t **files;
    size_t *sizes;
    if (load(argc, argv, &files, &sizes) != 0)
        return 1;
    for (int r = 0; r < runs; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        DicomResult res;
        float *t = NULL;
        Error err = {{0}};
        PreprocessOptions po = {0};
        if (dicom_files_to_tensors((const uint8_t *const *)files, sizes, argc, NULL, NULL, &po, &t, &res,
                                   &err)) {
            fprintf(stderr, "error: %s\n", err.message);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%d %.4f\n", res.n,
               (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
        free(t);
        dicom_result_free(&res);
    }
    for (int k = 0; k < argc; k++)
        free(files[k]);
    free(files);
    free(sizes);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "rgb"))
        return cmd_rgb(argc - 2, argv + 2);
    if (argc == 4 && !strcmp(argv[1], "hu"))
        return cmd_hu(argv[2], argv[3]);
    if (argc >= 4 && !strcmp(argv[1], "tensors"))
        return cmd_tensors(atoi(argv[2]), argc - 3, argv + 3);
    fprintf(stderr, "usage: dicom-tool rgb OUT [options] FILE... | hu OUT FILE | tensors N FILE...\n");
    return 2;
}
