/* Pillow's BILINEAR resize, bit for bit (libImaging/Resample.c).
 *
 * Math: output pixel x samples the input around center = (x + 0.5) * scale
 * with the triangle filter w(t) = max(0, 1 - |t|) stretched by
 * max(scale, 1) (so shrinking averages every input pixel it covers, which is
 * the antialiasing), weights normalized to sum 1, then rounded to fixed point
 * with 22 fraction bits. Two passes like Pillow: one into an 8-bit temporary
 * (rounded, clipped), then the other; the order follows Pillow 13's rule.
 * Integer sums make the result independent of summation order, so rows can
 * be split across threads.
 *
 * Used by preprocess.c (whose last pass writes the normalized float tensor
 * directly, channels first) and exposed as image_resize_bilinear_u8. The
 * RGB horizontal pass has an AVX2 twin in resize_rgb_avx2.c. */
#if defined(__GNUC__) && !defined(__clang__)
/* The row loops below are plain C; -O3 lets GCC vectorize them. */
#pragma GCC optimize("O3")
#endif
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"
#include "image/resize.h"
#include "image/resize_rgb_avx2.h"

#define PRECISION_BITS (32 - 8 - 2)

typedef struct {
    int out_size, ksize;
    int *bounds;    /* per output: first input index, tap count */
    int32_t *coeff; /* per output: ksize fixed-point weights */
} Coeffs;

static double bilinear_filter(double x) {
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* precompute_coeffs + normalize_coeffs_8bpc of Pillow, box = whole input. */
static int coeffs_build(int in_size, int out_size, Coeffs *c, Error *err) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    c->out_size = out_size;
    c->ksize = ksize;
    c->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    c->coeff = malloc(sizeof(int32_t) * (size_t)ksize * (size_t)out_size);
    double *k = malloc(sizeof(double) * (size_t)ksize);
    if (!c->bounds || !c->coeff || !k) {
        free(c->bounds);
        free(c->coeff);
        free(k);
        c->bounds = NULL;
        c->coeff = NULL;
        return error_set(err, "resize: out of memory");
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = bilinear_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        int32_t *kk = c->coeff + (size_t)xx * ksize;
        for (int x = 0; x < ksize; x++) {
            double w = x < xmax ? (ww != 0.0 ? k[x] / ww : k[x]) : 0.0;
            kk[x] = w < 0 ? (int32_t)(-0.5 + w * (1 << PRECISION_BITS))
                          : (int32_t)(0.5 + w * (1 << PRECISION_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    free(k);
    return 0;
}

static void coeffs_free(Coeffs *c) {
    free(c->bounds);
    free(c->coeff);
}

static inline uint8_t clip8(int32_t in) {
    if (in >= (1 << PRECISION_BITS << 8))
        return 255;
    if (in <= 0)
        return 0;
    return (uint8_t)(in >> PRECISION_BITS);
}

/* ---- the two passes, each over a range of output rows ---- */

/* Where the final pass's rows go. */
typedef struct {
    int dst_w, dst_h, channels;
    uint8_t *dst_u8;  /* interleaved; or NULL */
    float *dst_chw;   /* channels first through lut; or NULL */
    const float *lut; /* 256 entries */
} Output;

typedef struct {
    int vertical;      /* 0: horizontal pass, 1: vertical pass */
    const uint8_t *in; /* interleaved rows of in_w pixels */
    int in_w;
    int row0; /* horizontal pass: first input row it reads */
    const Coeffs *co;
    const RgbBlocks *blocks; /* horizontal RGB pass: AVX2 tables, or NULL */
    const uint8_t *in_end;   /* one past the input buffer */
    int out_w;               /* pixels per output row */
    uint8_t *out;            /* intermediate output rows; NULL for the final pass */
    const Output *final;
    int channels;
} Pass;

static void store_final_row(const Output *o, int yy, const uint8_t *row) {
    const int C = o->channels;
    if (o->dst_u8) {
        memcpy(o->dst_u8 + (size_t)yy * o->dst_w * C, row, (size_t)o->dst_w * C);
        return;
    }
    const size_t plane = (size_t)o->dst_w * o->dst_h;
    float *dst = o->dst_chw + (size_t)yy * o->dst_w;
    if (C == 1) { /* gray: the same value in R, G and B */
        for (int x = 0; x < o->dst_w; x++)
            dst[x] = dst[plane + x] = dst[2 * plane + x] = o->lut[row[x]];
        return;
    }
    for (int c = 0; c < C; c++)
        for (int x = 0; x < o->dst_w; x++)
            dst[c * plane + x] = o->lut[row[x * C + c]];
}

/* Rows r0..r1 of a pass; row and acc are scratch of out_w * channels.
 * Built twice on x86-64 (AVX2 and baseline), picked at load time: the
 * vertical sums then run 8 lanes of 32-bit multiplies at a time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
/* (not under ThreadSanitizer: the load-time resolver would run before its runtime; make test-tsan) */
__attribute__((target_clones("avx2", "default")))
#endif
static void
pass_rows(const Pass *p, int r0, int r1, uint8_t *row, int32_t *acc) {
    const int C = p->channels, ks = p->co->ksize;
    const size_t row_len = (size_t)p->out_w * C;
    for (int r = r0; r < r1; r++) {
        uint8_t *out = p->out ? p->out + (size_t)r * row_len : row;
        if (!p->vertical) {
            const uint8_t *in = p->in + (size_t)(p->row0 + r) * p->in_w * C;
            int first = 0;
            /* The AVX2 kernel reads one byte past the row's end. */
            if (p->blocks && in + (size_t)p->in_w * C < p->in_end)
                first = rgb_row_avx2(p->blocks, in, out);
            for (int xx = first; xx < p->out_w; xx++) {
                int xmin = p->co->bounds[2 * xx], xn = p->co->bounds[2 * xx + 1];
                const int32_t *k = p->co->coeff + (size_t)xx * ks;
                const uint8_t *px = in + (size_t)xmin * C;
                if (C == 3) { /* the common case: three sums in one loop */
                    int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                    for (int x = 0; x < xn; x++) {
                        s0 += px[3 * x] * k[x];
                        s1 += px[3 * x + 1] * k[x];
                        s2 += px[3 * x + 2] * k[x];
                    }
                    out[3 * xx] = clip8(s0);
                    out[3 * xx + 1] = clip8(s1);
                    out[3 * xx + 2] = clip8(s2);
                    continue;
                }
                for (int c = 0; c < C; c++) {
                    int32_t ss = 1 << (PRECISION_BITS - 1);
                    for (int x = 0; x < xn; x++)
                        ss += px[x * C + c] * k[x];
                    out[xx * C + c] = clip8(ss);
                }
            }
        } else {
            /* Same sums as Pillow's per-pixel loop, accumulated a whole row
             * at a time so the input is read in order. */
            int ymin = p->co->bounds[2 * r], yn = p->co->bounds[2 * r + 1];
            const int32_t *k = p->co->coeff + (size_t)r * ks;
            for (size_t i = 0; i < row_len; i++)
                acc[i] = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < yn; y++) {
                const uint8_t *in = p->in + (size_t)(ymin + y) * row_len;
                int32_t w = k[y];
                for (size_t i = 0; i < row_len; i++)
                    acc[i] += in[i] * w;
            }
            for (size_t i = 0; i < row_len; i++)
                out[i] = clip8(acc[i]);
        }
        if (!p->out)
            store_final_row(p->final, r, row);
    }
}

/* ---- a small parallel-for over rows ---- */

typedef struct {
    const Pass *pass;
    int r0, r1;
    int failed;
} Slice;

static void *run_slice(void *arg) {
    Slice *s = arg;
    size_t row_len = (size_t)s->pass->out_w * s->pass->channels;
    uint8_t *row = malloc(row_len);
    int32_t *acc = malloc(sizeof(int32_t) * row_len);
    if (!row || !acc)
        s->failed = 1;
    else
        pass_rows(s->pass, s->r0, s->r1, row, acc);
    free(row);
    free(acc);
    return NULL;
}

#define MAX_THREADS 8

static int thread_count(int64_t work) {
    /* Below ~1M multiply-adds a thread costs more than it saves. */
    if (work < (1 << 20))
        return 1;
    const char *env = getenv("MEDGEMMA_IMAGE_THREADS");
    long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static int run_pass(const Pass *pass, int n_rows, Error *err) {
    if (n_rows <= 0)
        return 0; /* nothing to compute (the output is all padding) */
    int64_t work = (int64_t)n_rows * pass->out_w * pass->channels * pass->co->ksize;
    int n_threads = thread_count(work);
    if (n_threads > n_rows)
        n_threads = n_rows;
    Slice slices[MAX_THREADS] = {{pass, 0, n_rows, 0}};
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < n_threads; t++)
        slices[t] = (Slice){pass, (int)((int64_t)n_rows * t / n_threads),
                            (int)((int64_t)n_rows * (t + 1) / n_threads), 0};
    /* Slice 0 runs on this thread; the others on new ones (or here too when
     * a thread cannot be created). */
    for (int t = 1; t < n_threads; t++)
        started[t] = pthread_create(&tids[t], NULL, run_slice, &slices[t]) == 0;
    run_slice(&slices[0]);
    int failed = slices[0].failed;
    for (int t = 1; t < n_threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run_slice(&slices[t]);
        failed |= slices[t].failed;
    }
    return failed ? error_set(err, "resize: out of memory") : 0;
}

/* Restricts every output's taps to input indices [lo, hi) and renumbers
 * them from lo: the inputs outside are zero padding, which adds nothing to
 * Pillow's sums, so skipping them gives the same integers. */
static void coeffs_clip(Coeffs *c, int lo, int hi) {
    for (int o = 0; o < c->out_size; o++) {
        int start = c->bounds[2 * o], n = c->bounds[2 * o + 1];
        int s = start < lo ? lo : start, e = start + n > hi ? hi : start + n;
        int32_t *k = c->coeff + (size_t)o * c->ksize;
        if (e <= s) {
            c->bounds[2 * o] = 0;
            c->bounds[2 * o + 1] = 0;
            continue;
        }
        memmove(k, k + (s - start), sizeof(int32_t) * (size_t)(e - s));
        c->bounds[2 * o] = s - lo;
        c->bounds[2 * o + 1] = e - s;
    }
}

int resize_bilinear(const uint8_t *src, int src_w, int src_h, int channels, const ResizeCanvas *canvas,
                    int dst_w, int dst_h, uint8_t *dst_u8, float *dst_chw, const float *lut, Error *err) {
    ResizeCanvas cv = canvas ? *canvas : (ResizeCanvas){src_w, src_h, 0, 0};
    if (!src || src_w < 1 || src_h < 1 || dst_w < 1 || dst_h < 1 || channels < 1 || channels > 4 ||
        (!dst_u8 && (!dst_chw || !lut)) || cv.x0 < 0 || cv.y0 < 0 || cv.x0 + src_w > cv.width ||
        cv.y0 + src_h > cv.height)
        return error_set(err, "resize: bad arguments (%dx%dx%d -> %dx%d)", src_w, src_h, channels, dst_w,
                         dst_h);
    /* Weights are those of the whole canvas (what Pillow would resize),
     * then clipped to the real pixels. */
    Coeffs h = {0}, v = {0};
    if (coeffs_build(cv.width, dst_w, &h, err) != 0)
        return -1;
    if (coeffs_build(cv.height, dst_h, &v, err) != 0) {
        coeffs_free(&h);
        return -1;
    }
    Output final = {dst_w, dst_h, channels, dst_u8, dst_chw, lut};
    /* Pillow >= 13: when the height shrinks more than twice as much as the
     * width (in pixels), the vertical pass runs first. The order changes
     * the rounding of the 8-bit intermediate, so it must match. A pass whose
     * size does not change is skipped; the other then writes the output. */
    int horizontal_first = !(cv.height - dst_h > 0 && cv.height - dst_h > (cv.width - dst_w) * 2);
    int need_h = cv.width != dst_w || src_w != cv.width, need_v = cv.height != dst_h || src_h != cv.height;
    if (!need_h && !need_v)
        need_h = 1; /* same size: one pass with identity weights copies */
    coeffs_clip(&h, cv.x0, cv.x0 + src_w);
    coeffs_clip(&v, cv.y0, cv.y0 + src_h);
    RgbBlocks blocks;
    const RgbBlocks *hb = NULL;
    if (channels == 3 && rgb_blocks_build(h.bounds, h.coeff, dst_w, h.ksize, &blocks) == 0)
        hb = &blocks;
    const uint8_t *src_end = src + (size_t)src_w * src_h * channels;
    Pass passes[2];
    int rows[2], n_passes = 0;
    if (horizontal_first) {
        if (need_h) {
            int row0 = 0, row1 = src_h;
            if (need_v) {
                /* Only the rows the vertical pass will read (Pillow's ybox). */
                row0 = src_h, row1 = 0;
                for (int i = 0; i < dst_h; i++) {
                    int b = v.bounds[2 * i], n = v.bounds[2 * i + 1];
                    if (n > 0) {
                        row0 = b < row0 ? b : row0;
                        row1 = b + n > row1 ? b + n : row1;
                    }
                }
                if (row1 <= row0)
                    row0 = row1 = 0;
                for (int i = 0; i < dst_h; i++)
                    v.bounds[2 * i] -= v.bounds[2 * i + 1] > 0 ? row0 : 0;
            }
            passes[n_passes] = (Pass){0, src, src_w, row0, &h, hb, src_end, dst_w, NULL, &final, channels};
            rows[n_passes++] = row1 - row0;
        }
        if (need_v) {
            int w = need_h ? dst_w : src_w;
            passes[n_passes] = (Pass){1, src, w, 0, &v, NULL, src_end, w, NULL, &final, channels};
            rows[n_passes++] = dst_h;
        }
    } else {
        passes[n_passes] = (Pass){1, src, src_w, 0, &v, NULL, src_end, src_w, NULL, &final, channels};
        rows[n_passes++] = dst_h;
        if (need_h) {
            passes[n_passes] = (Pass){0, src, src_w, 0, &h, hb, src_end, dst_w, NULL, &final, channels};
            rows[n_passes++] = dst_h;
        }
    }
    int rc = 0;
    uint8_t *tmp = NULL;
    if (n_passes == 2) {
        /* The first pass writes an 8-bit temporary that the second reads. */
        tmp = malloc((size_t)(rows[0] > 0 ? rows[0] : 1) * passes[0].out_w * channels);
        if (!tmp) {
            rc = error_set(err, "resize: out of memory");
            goto done;
        }
        passes[0].out = tmp;
        passes[1].in = tmp;
        passes[1].in_end = tmp + (size_t)rows[0] * passes[0].out_w * channels;
    }
    for (int i = 0; i < n_passes && rc == 0; i++)
        rc = run_pass(&passes[i], rows[i], err);
done:
    if (hb)
        rgb_blocks_free(&blocks);
    free(tmp);
    coeffs_free(&h);
    coeffs_free(&v);
    return rc;
}

int image_resize_bilinear_u8(const uint8_t *src, int src_w, int src_h, int channels, uint8_t *dst, int dst_w,
                             int dst_h, Error *err) {
    return resize_bilinear(src, src_w, src_h, channels, NULL, dst_w, dst_h, dst, NULL, NULL, err);
}
