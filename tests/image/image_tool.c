/* build/image-tool: drives image/ from the command line for the parity test
 * (tests/image/test_parity.py), the CT checks and the benchmark
 * (bench/image/). Not part of the service.
 *
 *   image-tool tensor [--pad] [--white] [--size N] [--base64] IN OUT [IN OUT]...
 *       file -> float32 tensor (3*N*N, channels first) written raw to OUT
 *   image-tool decode [--gray] IN OUT      raw pixels; prints "W H C DEPTH"
 *   image-tool ct [--slope S] [--intercept I] [--signed] [--windows r0,r1,g0,g1,b0,b1] IN OUT
 *       16-bit gray PNG -> windowed 8-bit RGB written raw to OUT
 *   image-tool mri OUTPREFIX IN...         volume-normalized 8-bit RGB per slice
 *   image-tool sample N MAX                the sampled slice indices
 *   image-tool bench [--ct] REPEAT IN      median and min wall ms of image_to_tensor (file in
 *                                          memory), CPU ms per run (all threads);
 *                                          --ct: ct_png_to_tensor, intercept -1024
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image/base64.h"
#include "image/ct_window.h"
#include "image/image.h"

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "cannot read %s\n", path);
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f);
}

static double cpu_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_tensor(int argc, char **argv) {
    PreprocessOptions opt = {0};
    int is_base64 = 0, i = 0;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (!strcmp(argv[i], "--pad"))
            opt.pad_to_square = 1;
        else if (!strcmp(argv[i], "--white"))
            opt.alpha_on_white = 1;
        else if (!strcmp(argv[i], "--base64"))
            is_base64 = 1;
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            opt.size = atoi(argv[++i]);
        else
            return fprintf(stderr, "tensor: unknown option %s\n", argv[i]), 2;
    }
    if ((argc - i) < 2 || (argc - i) % 2)
        return fprintf(stderr, "tensor: expected IN OUT pairs\n"), 2;
    int size = opt.size > 0 ? opt.size : IMAGE_MODEL_SIZE;
    float *t = malloc(sizeof(float) * 3 * size * size);
    int status = 0;
    for (; i + 1 < argc; i += 2) {
        size_t n;
        uint8_t *data = read_file(argv[i], &n);
        if (!data) {
            free(t);
            return 1;
        }
        Error err = {{0}};
        uint8_t *bytes = data;
        size_t n_bytes = n;
        if (is_base64 && base64_decode_strict((const char *)data, n, &bytes, &n_bytes, &err) != 0) {
            printf("error %s: %s\n", argv[i], err.message);
            status = 1;
        } else if (image_to_tensor(bytes, n_bytes, NULL, &opt, t, &err) != 0) {
            printf("error %s: %s\n", argv[i], err.message);
            status = 1;
        } else if (write_file(argv[i + 1], t, sizeof(float) * 3 * size * size) != 0) {
            status = 1;
        }
        if (bytes != data)
            free(bytes);
        free(data);
    }
    free(t);
    return status;
}

static int cmd_decode(int argc, char **argv) {
    ImageDecodeMode mode = IMAGE_DECODE_RGB8;
    int i = 0;
    if (i < argc && !strcmp(argv[i], "--gray"))
        mode = IMAGE_DECODE_GRAY_RAW, i++;
    if (argc - i != 2)
        return fprintf(stderr, "decode: expected IN OUT\n"), 2;
    size_t n;
    uint8_t *data = read_file(argv[i], &n);
    if (!data)
        return 1;
    DecodedImage img;
    Error err = {{0}};
    int rc = image_decode(data, n, NULL, mode, &img, &err);
    free(data);
    if (rc != 0) {
        printf("error: %s\n", err.message);
        return 1;
    }
    printf("%d %d %d %d\n", img.width, img.height, img.channels, img.bit_depth);
    size_t bytes = (size_t)img.width * img.height * img.channels * (img.bit_depth / 8);
    rc = write_file(argv[i + 1], img.pixels, bytes);
    decoded_image_free(&img);
    return rc ? 1 : 0;
}

static int parse_rescale(int argc, char **argv, int *i, RescaleParams *r, CtWindows *w) {
    for (; *i < argc && strncmp(argv[*i], "--", 2) == 0; (*i)++) {
        if (!strcmp(argv[*i], "--slope") && *i + 1 < argc)
            r->rescale_slope = strtof(argv[++*i], NULL);
        else if (!strcmp(argv[*i], "--intercept") && *i + 1 < argc)
            r->rescale_intercept = strtof(argv[++*i], NULL);
        else if (!strcmp(argv[*i], "--signed"))
            r->pixels_signed = 1;
        else if (w && !strcmp(argv[*i], "--windows") && *i + 1 < argc) {
            float v[6];
            if (sscanf(argv[++*i], "%f,%f,%f,%f,%f,%f", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
                return fprintf(stderr, "--windows wants 6 numbers\n"), -1;
            *w = (CtWindows){{v[0], v[1]}, {v[2], v[3]}, {v[4], v[5]}};
        } else
            return fprintf(stderr, "unknown option %s\n", argv[*i]), -1;
    }
    return 0;
}

static int cmd_ct(int argc, char **argv) {
    RescaleParams r = {1.0f, 0.0f, 0};
    CtWindows w = CT_WINDOWS_DEFAULT;
    int i = 0;
    if (parse_rescale(argc, argv, &i, &r, &w) != 0 || argc - i != 2)
        return fprintf(stderr, "ct: expected [options] IN OUT\n"), 2;
    size_t n;
    uint8_t *data = read_file(argv[i], &n);
    if (!data)
        return 1;
    DecodedImage gray, rgb;
    Error err = {{0}};
    int rc = image_decode(data, n, NULL, IMAGE_DECODE_GRAY_RAW, &gray, &err);
    free(data);
    if (rc == 0) {
        rc = ct_slice_to_rgb8(&gray, &r, &w, &rgb, &err);
        decoded_image_free(&gray);
    }
    if (rc != 0) {
        printf("error: %s\n", err.message);
        return 1;
    }
    rc = write_file(argv[i + 1], rgb.pixels, (size_t)rgb.width * rgb.height * 3);
    decoded_image_free(&rgb);
    return rc ? 1 : 0;
}

static int cmd_mri(int argc, char **argv) {
    RescaleParams r = {1.0f, 0.0f, 0};
    int i = 0;
    if (parse_rescale(argc, argv, &i, &r, NULL) != 0 || argc - i < 2)
        return fprintf(stderr, "mri: expected [options] OUTPREFIX IN...\n"), 2;
    const char *prefix = argv[i++];
    int n_slices = argc - i;
    DecodedImage *slices = calloc((size_t)n_slices, sizeof *slices);
    Error err = {{0}};
    int rc = 0;
    for (int s = 0; s < n_slices && rc == 0; s++) {
        size_t n;
        uint8_t *data = read_file(argv[i + s], &n);
        if (!data) {
            rc = -1;
            break;
        }
        rc = image_decode(data, n, NULL, IMAGE_DECODE_GRAY_RAW, &slices[s], &err);
        free(data);
    }
    float vmin = 0, vmax = 0;
    if (rc == 0)
        rc = mri_volume_range(slices, n_slices, &r, &vmin, &vmax, &err);
    for (int s = 0; s < n_slices && rc == 0; s++) {
        DecodedImage rgb;
        rc = mri_slice_to_rgb8(&slices[s], &r, vmin, vmax, &rgb, &err);
        if (rc == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s%d.rgb", prefix, s);
            rc = write_file(path, rgb.pixels, (size_t)rgb.width * rgb.height * 3);
            decoded_image_free(&rgb);
        }
    }
    for (int s = 0; s < n_slices; s++)
        decoded_image_free(&slices[s]);
    free(slices);
    if (rc != 0) {
        printf("error: %s\n", err.message);
        return 1;
    }
    printf("%g %g\n", vmin, vmax);
    return 0;
}

static int cmd_sample(int argc, char **argv) {
    if (argc != 2)
        return fprintf(stderr, "sample: expected N MAX\n"), 2;
    int n = atoi(argv[0]), max_n = atoi(argv[1]);
    int *idx = malloc(sizeof(int) * (size_t)(max_n > 0 ? max_n : 1));
    int k = sample_slices_evenly(n, max_n, idx);
    if (k < 0) {
        free(idx);
        return printf("error: bad arguments\n"), 1;
    }
    for (int j = 0; j < k; j++)
        printf("%d%c", idx[j], j + 1 < k ? ' ' : '\n');
    free(idx);
    return 0;
}

static int cmd_bench(int argc, char **argv) {
    int ct = argc > 0 && !strcmp(argv[0], "--ct");
    if (ct)
        argc--, argv++;
    if (argc != 2)
        return fprintf(stderr, "bench: expected [--ct] REPEAT IN\n"), 2;
    int repeat = atoi(argv[0]);
    size_t n;
    uint8_t *data = read_file(argv[1], &n);
    if (!data || repeat < 1)
        return 1;
    float *t = malloc(sizeof(float) * 3 * IMAGE_MODEL_SIZE * IMAGE_MODEL_SIZE);
    double *ms = malloc(sizeof(double) * (size_t)repeat);
    double cpu0 = cpu_now_ms();
    for (int r = 0; r < repeat; r++) {
        Error err = {{0}};
        double t0 = now_ms();
        RescaleParams rescale = {1.0, -1024.0, 0};
        int rc = ct ? ct_png_to_tensor(data, n, NULL, &rescale, NULL, NULL, t, &err)
                    : image_to_tensor(data, n, NULL, NULL, t, &err);
        if (rc != 0) {
            printf("error: %s\n", err.message);
            free(ms);
            free(t);
            free(data);
            return 1;
        }
        ms[r] = now_ms() - t0;
    }
    double cpu_per_run = (cpu_now_ms() - cpu0) / repeat;
    qsort(ms, (size_t)repeat, sizeof(double), cmp_double);
    printf("median_ms %.3f min_ms %.3f cpu_ms %.3f\n", ms[repeat / 2], ms[0], cpu_per_run);
    free(ms);
    free(t);
    free(data);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: image-tool tensor|decode|ct|mri|sample|bench ...\n");
        return 2;
    }
    const char *cmd = argv[1];
    argc -= 2;
    argv += 2;
    if (!strcmp(cmd, "tensor"))
        return cmd_tensor(argc, argv);
    if (!strcmp(cmd, "decode"))
        return cmd_decode(argc, argv);
    if (!strcmp(cmd, "ct"))
        return cmd_ct(argc, argv);
    if (!strcmp(cmd, "mri"))
        return cmd_mri(argc, argv);
    if (!strcmp(cmd, "sample"))
        return cmd_sample(argc, argv);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc, argv);
    fprintf(stderr, "image-tool: unknown command %s\n", cmd);
    return 2;
}
