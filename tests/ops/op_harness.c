/* Op conformance harness (in the spirit of llama.cpp's test-backend-ops): every
 * op of the op table (kernels/ops.h) is declared once below with its shapes (the
 * MedGemma ones and odd edge sizes), its tolerance and a naive reference in
 * double; every backend's table is checked from that one list.
 *
 *   op_harness            check mode: one line per (backend, op, shape):
 *                         "ok ..." / "FAIL ...: rel err E > tol T"
 *   op_harness --perf     perf mode: the time of each (backend, op, shape), no reference
 *   op_harness --list     the rows
 *
 *   op_harness --cuda     the same for the CUDA table: on a GPU (tests/gpu/run.sh), or
 *                         on the CPU as build/op_harness_emu (the real kernels through
 *                         cudaemu, tests/gpu/cudaemu/cudaemu.mk; make test)
 *
 * Backends: the CPU table exact, with bf16 GEMM activations, and with q8 weights
 * (the three CPU precision modes); the CUDA table (bf16 activations: its tolerances
 * are the bf16 envelope). An op in OPS_FOR_EACH without a row here, or a backend
 * leaving an op NULL, fails; so does an op whose backend reports a failure.
 * Error measure: ||out - ref|| / ||ref||. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#ifdef MEDGEMMA_CUDA
#include "kernels/cuda/ops_cuda.h"
#endif

/* ---- inputs */

static uint64_t rng_state;
static float rnd(void) { /* [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 2685821657736338717ull;
    return (float)((r >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static float *rand_f32(size_t n, float scale) {
    float *x = malloc(n * sizeof *x + 1);
    for (size_t i = 0; i < n; i++)
        x[i] = rnd() * scale;
    return x;
}
static bf16 *rand_bf16(size_t n, float scale) {
    bf16 *x = malloc(n * sizeof *x + 1);
    for (size_t i = 0; i < n; i++)
        x[i] = f32_to_bf16(rnd() * scale);
    return x;
}
static double wv(const bf16 *w, size_t i) {
    return (double)bf16_to_f32(w[i]);
}

/* ---- a run: the backend, its tensors, the error so far */

typedef struct {
    const Ops *ops;
    void (*sync)(const Ops *ops); /* waits for the backend's queued work (perf; NULL: synchronous) */
    int perf;                     /* time the op instead of checking it */
    double seconds;               /* perf: per call */
    double err;                   /* check: worst relative error of the outputs compared */
} Run;

static Tensor up_kind(Run *r, const float *host, int rows, int cols, AllocKind kind) {
    Tensor t = r->ops->alloc(r->ops->ctx, rows, cols, kind);
    if (!t.data) {
        printf("FAIL ops_%s_alloc: no memory for a %d x %d tensor\n", r->ops->name, rows, cols);
        exit(1);
    }
    if (host)
        r->ops->write(r->ops->ctx, t, host);
    return t;
}
static Tensor up(Run *r, const float *host, int rows, int cols) {
    return up_kind(r, host, rows, cols, ALLOC_ACTIVATIONS);
}
/* A checkpoint view as the backend keeps it (prepare: uploaded, quantized). */
static Weight prep_weight(Run *r, Weight w) {
    Error err;
    if (r->ops->prepare(r->ops->ctx, &w, &err) != 0) {
        printf("FAIL ops_%s_prepare: %s\n", r->ops->name, err.message);
        exit(1);
    }
    return w;
}
static Weight prep(Run *r, const bf16 *data, int rows, int cols) {
    return prep_weight(r, weight_bf16(data, rows, cols));
}
static void unprep(Run *r, Weight *w) {
    r->ops->release(r->ops->ctx, w);
}
static void drop(Run *r, Tensor *t) {
    r->ops->free_tensor(r->ops->ctx, t);
}
/* Compares tensor t (rows whose index % stride == 0) with ref [rows, cols]. */
static void compare(Run *r, Tensor t, const double *ref, int stride) {
    size_t n = (size_t)t.rows * t.cols;
    float *got = malloc(n * sizeof *got + 1);
    r->ops->read(r->ops->ctx, got, t);
    double num = 0, den = 0;
    for (int row = 0; row < t.rows; row += stride)
        for (int c = 0; c < t.cols; c++) {
            size_t i = (size_t)row * t.cols + c;
            double d = (double)got[i] - ref[i];
            num += d * d;
            den += ref[i] * ref[i];
        }
    double e = den > 0 ? sqrt(num / den) : sqrt(num);
    if (!(e <= r->err))
        r->err = e;
    free(got);
}
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
/* Runs CALL once (check) or times it (perf: repeated for >= 0.2 s, first call not timed). */
#define TIMED(r, CALL)                                                                                       \
    do {                                                                                                     \
        CALL;                                                                                                \
        if ((r)->perf) {                                                                                     \
            int iters_ = 0;                                                                                  \
            if ((r)->sync)                                                                                   \
                (r)->sync((r)->ops);                                                                         \
            double t0_ = now();                                                                              \
            do {                                                                                             \
                CALL;                                                                                        \
                if ((r)->sync)                                                                               \
                    (r)->sync((r)->ops);                                                                     \
                iters_++;                                                                                    \
            } while (now() - t0_ < 0.2);                                                                     \
            (r)->seconds = (now() - t0_) / iters_;                                                           \
        }                                                                                                    \
    } while (0)

/* A shape: up to six sizes whose meaning each row's comment gives. */
typedef struct {
    int a, b, c, d, e, f;
    const char *label;
} Shape;

/* ---- rows: one function per op (reference + call) */

/* embed: a = rows, b = vocab, c = dim */
static void op_embed(Run *r, const Shape *s) {
    int n = s->a, V = s->b, D = s->c;
    bf16 *table = rand_bf16((size_t)V * D, 1.0f);
    int32_t *ids = malloc(n * sizeof *ids);
    for (int t = 0; t < n; t++)
        ids[t] = (t * 7919 + 3) % V;
    ids[n - 1] = V - 1;
    Weight w = prep(r, table, V, D);
    Tensor out = up(r, NULL, n, D);
    float scale = 50.5f;
    TIMED(r, r->ops->embed(r->ops->ctx, out, &w, ids, scale));
    if (!r->perf) {
        double *ref = malloc((size_t)n * D * sizeof *ref);
        for (int t = 0; t < n; t++)
            for (int i = 0; i < D; i++)
                ref[(size_t)t * D + i] = wv(table, (size_t)ids[t] * D + i) * scale;
        compare(r, out, ref, 1);
        free(ref);
    }
    drop(r, &out);
    unprep(r, &w);
    free(table), free(ids);
}

static void ref_rmsnorm(double *out, const double *x, const bf16 *w, int n, int D, double eps) {
    for (int t = 0; t < n; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++)
            ss += x[(size_t)t * D + i] * x[(size_t)t * D + i];
        double inv = 1.0 / sqrt(ss / D + eps);
        for (int i = 0; i < D; i++)
            out[(size_t)t * D + i] = x[(size_t)t * D + i] * inv * (1.0 + wv(w, i));
    }
}
static double *to_double(const float *x, size_t n) {
    double *d = calloc(n + 1, sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* rmsnorm, rmsnorm_residual, rmsnorm_residual_norm: a = rows, b = dim */
static void op_rmsnorm(Run *r, const Shape *s) {
    int n = s->a, D = s->b;
    size_t N = (size_t)n * D;
    float *x = rand_f32(N, 3.0f);
    bf16 *w = rand_bf16(D, 0.5f);
    Weight W = prep(r, w, 1, D);
    Tensor tx = up(r, x, n, D), out = up(r, NULL, n, D);
    TIMED(r, r->ops->rmsnorm(r->ops->ctx, out, tx, &W, 1e-6f));
    if (!r->perf) {
        double *xd = to_double(x, N), *ref = malloc(N * sizeof *ref);
        ref_rmsnorm(ref, xd, w, n, D, 1e-6);
        compare(r, out, ref, 1);
        free(xd), free(ref);
    }
    drop(r, &tx), drop(r, &out);
    unprep(r, &W);
    free(x), free(w);
}

static void op_rmsnorm_residual(Run *r, const Shape *s) {
    int n = s->a, D = s->b;
    size_t N = (size_t)n * D;
    float *x = rand_f32(N, 1.0f), *h = rand_f32(N, 20.0f);
    bf16 *w = rand_bf16(D, 0.5f);
    Weight W = prep(r, w, 1, D);
    Tensor tx = up(r, x, n, D), th = up(r, h, n, D);
    r->ops->rmsnorm_residual(r->ops->ctx, tx, th, &W, 1e-6f);
    if (r->perf)
        TIMED(r, r->ops->rmsnorm_residual(r->ops->ctx, tx, th, &W, 1e-6f));
    else {
        double *hd = to_double(h, N), *ref = malloc(N * sizeof *ref);
        ref_rmsnorm(ref, hd, w, n, D, 1e-6);
        for (size_t i = 0; i < N; i++)
            ref[i] += x[i];
        compare(r, tx, ref, 1);
        free(hd), free(ref);
    }
    drop(r, &tx), drop(r, &th);
    unprep(r, &W);
    free(x), free(h), free(w);
}

static void op_rmsnorm_residual_norm(Run *r, const Shape *s) {
    int n = s->a, D = s->b;
    size_t N = (size_t)n * D;
    float *x = rand_f32(N, 1.0f), *h = rand_f32(N, 20.0f);
    bf16 *w1 = rand_bf16(D, 0.5f), *w2 = rand_bf16(D, 0.5f);
    Weight W1 = prep(r, w1, 1, D), W2 = prep(r, w2, 1, D);
    Tensor tx = up(r, x, n, D), th = up(r, h, n, D), out = up(r, NULL, n, D);
    r->ops->rmsnorm_residual_norm(r->ops->ctx, tx, out, th, &W1, &W2, 1e-6f);
    if (r->perf)
        TIMED(r, r->ops->rmsnorm_residual_norm(r->ops->ctx, tx, out, th, &W1, &W2, 1e-6f));
    else {
        double *hd = to_double(h, N), *ref = calloc(N, sizeof *ref), *ref2 = calloc(N, sizeof *ref2);
        ref_rmsnorm(ref, hd, w1, n, D, 1e-6);
        for (size_t i = 0; i < N; i++)
            ref[i] += x[i];
        ref_rmsnorm(ref2, ref, w2, n, D, 1e-6);
        compare(r, tx, ref, 1);
        compare(r, out, ref2, 1);
        free(hd), free(ref), free(ref2);
    }
    drop(r, &tx), drop(r, &th), drop(r, &out);
    unprep(r, &W2), unprep(r, &W1);
    free(x), free(h), free(w1), free(w2);
}

/* layernorm: a = rows, b = dim */
static void op_layernorm(Run *r, const Shape *s) {
    int n = s->a, D = s->b;
    size_t N = (size_t)n * D;
    float *x = rand_f32(N, 2.0f);
    for (size_t i = 0; i < N; i++)
        x[i] += 5.0f; /* a mean far from 0 */
    bf16 *w = rand_bf16(D, 1.0f), *b = rand_bf16(D, 0.5f);
    Weight W = prep(r, w, 1, D), B = prep(r, b, 1, D);
    Tensor tx = up(r, x, n, D), out = up(r, NULL, n, D);
    TIMED(r, r->ops->layernorm(r->ops->ctx, out, tx, &W, &B, 1e-6f));
    if (!r->perf) {
        double *ref = calloc(N ? N : 1, sizeof *ref);
        for (int t = 0; t < n; t++) {
            double mean = 0, var = 0;
            for (int i = 0; i < D; i++)
                mean += x[(size_t)t * D + i];
            mean /= D;
            for (int i = 0; i < D; i++)
                var += (x[(size_t)t * D + i] - mean) * (x[(size_t)t * D + i] - mean);
            var /= D;
            for (int i = 0; i < D; i++)
                ref[(size_t)t * D + i] =
                    (x[(size_t)t * D + i] - mean) / sqrt(var + 1e-6) * wv(w, i) + wv(b, i);
        }
        compare(r, out, ref, 1);
        free(ref);
    }
    drop(r, &tx), drop(r, &out);
    unprep(r, &B), unprep(r, &W);
    free(x), free(w), free(b);
}

/* linear: a = rows, b = in, c = out, d = variant (0 plain, 1 bias, 2 stored [in, out], 3 fp32 weights) */
static void op_linear(Run *r, const Shape *s) {
    int n = s->a, in = s->b, out = s->c, variant = s->d;
    float *x = rand_f32((size_t)n * in, 1.0f);
    bf16 *w = rand_bf16((size_t)in * out, 0.05f), *b = rand_bf16(out, 1.0f);
    float *wf = NULL;
    Weight W = weight_bf16(w, out, in), B = weight_bf16(b, 1, out);
    if (variant == 2) {
        W.rows = in, W.cols = out, W.in_out = 1;
    } else if (variant == 3) {
        wf = malloc((size_t)in * out * sizeof *wf);
        for (size_t i = 0; i < (size_t)in * out; i++)
            wf[i] = bf16_to_f32(w[i]);
        W.format = WEIGHT_F32, W.data = wf;
    } else {
        W.quantizable = 1; /* the decoder's projections: q8 when the backend's options say so */
    }
    Error err;
    if (r->ops->prepare(r->ops->ctx, &W, &err) != 0) { /* refused (the CUDA table: fp32 weights) */
        fprintf(stderr, "prepare: %s\n", err.message);
        r->err = INFINITY;
        goto done;
    }
    B = prep_weight(r, B);
    Tensor tx = up(r, x, n, in), ty = up(r, NULL, n, out);
    TIMED(r, r->ops->linear(r->ops->ctx, ty, tx, &W, variant == 1 ? &B : NULL));
    if (!r->perf) {
        int stride = n > 8 ? 7 : 1;
        double *ref = calloc((size_t)n * out, sizeof *ref);
        for (int t = 0; t < n; t += stride)
            for (int o = 0; o < out; o++) {
                double sum = variant == 1 ? wv(b, o) : 0.0;
                for (int i = 0; i < in; i++)
                    sum += (double)x[(size_t)t * in + i] *
                           (variant == 2 ? wv(w, (size_t)i * out + o) : wv(w, (size_t)o * in + i));
                ref[(size_t)t * out + o] = sum;
            }
        compare(r, ty, ref, stride);
        free(ref);
    }
    drop(r, &tx), drop(r, &ty);
    unprep(r, &B), unprep(r, &W);
done:
    free(x), free(w), free(b), free(wf);
}

/* linear_multi: a = rows, b = in, c, d, e = the matrices' outs (e = 0: two matrices); decoder
 * projections (quantizable), no bias */
static void op_linear_multi(Run *r, const Shape *s) {
    int n = s->a, in = s->b, outs[3] = {s->c, s->d, s->e}, count = s->e ? 3 : 2;
    float *x = rand_f32((size_t)n * in, 1.0f);
    bf16 *w[3] = {NULL, NULL, NULL};
    Weight W[3];
    const Weight *ws[3];
    Tensor ys[3];
    for (int m = 0; m < count; m++) {
        w[m] = rand_bf16((size_t)in * outs[m], 0.05f);
        W[m] = weight_bf16(w[m], outs[m], in);
        W[m].quantizable = 1;
        W[m] = prep_weight(r, W[m]);
        ws[m] = &W[m];
        ys[m] = up(r, NULL, n, outs[m]);
    }
    Tensor tx = up(r, x, n, in);
    TIMED(r, r->ops->linear_multi(r->ops->ctx, count, ys, tx, ws));
    for (int m = 0; m < count && !r->perf; m++) {
        double *ref = calloc((size_t)n * outs[m], sizeof *ref);
        for (int t = 0; t < n; t++)
            for (int o = 0; o < outs[m]; o++) {
                double sum = 0.0;
                for (int i = 0; i < in; i++)
                    sum += (double)x[(size_t)t * in + i] * wv(w[m], (size_t)o * in + i);
                ref[(size_t)t * outs[m] + o] = sum;
            }
        compare(r, ys[m], ref, 1);
        free(ref);
    }
    for (int m = 0; m < count; m++) {
        drop(r, &ys[m]);
        unprep(r, &W[m]);
        free(w[m]);
    }
    drop(r, &tx);
    free(x);
}

/* Reference RoPE after the per-head norm, angles in fp32 as the spec (kernels.h) says. */
static void ref_qk_norm_rope(double *x, const bf16 *w, int n, int heads, int Dh, int pos0, float theta) {
    int half = Dh / 2;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < heads; h++) {
            double *v = x + ((size_t)t * heads + h) * Dh;
            double ss = 0;
            for (int i = 0; i < Dh; i++)
                ss += v[i] * v[i];
            double inv = 1.0 / sqrt(ss / Dh + 1e-6);
            for (int i = 0; i < Dh; i++)
                v[i] = v[i] * inv * (1.0 + wv(w, i));
            for (int i = 0; i < half; i++) {
                float inv_freq =
                    (1.0f / (float)pow((double)theta, (double)((float)(2 * i) / (float)Dh))) / 1.0f;
                float a = (float)(pos0 + t) * inv_freq;
                double x1 = v[i], x2 = v[i + half];
                v[i] = x1 * cos(a) - x2 * sin(a);
                v[i + half] = x2 * cos(a) + x1 * sin(a);
            }
        }
}

/* qk_rope_store: a = rows, b = heads, c = kv heads, d = head dim, e = pos0, f = cache capacity */
static void op_qk_rope_store(Run *r, const Shape *s) {
    int n = s->a, H = s->b, KVH = s->c, Dh = s->d, pos0 = s->e, cap = s->f;
    int qd = H * Dh, kd = KVH * Dh;
    float theta = 10000.0f;
    float *q = rand_f32((size_t)n * qd, 2.0f), *k = rand_f32((size_t)n * kd, 2.0f),
          *v = rand_f32((size_t)n * kd, 1);
    bf16 *qn = rand_bf16(Dh, 0.5f), *kn = rand_bf16(Dh, 0.5f);
    Weight QN = prep(r, qn, 1, Dh), KN = prep(r, kn, 1, Dh);
    Tensor tq = up(r, q, n, qd), tk = up(r, k, n, kd), tv = up(r, v, n, kd);
    float *zero = calloc((size_t)cap * kd, sizeof *zero);
    KvLayer kv = {up(r, zero, cap, kd), up(r, zero, cap, kd), cap};
    Batch b = {n, pos0};
    AttnShape sh = {H, KVH, Dh, 0.0625f, 1, 0};
    RopeParams rp = {theta, 1.0f, 1e-6f};
    TIMED(r, r->ops->qk_rope_store(r->ops->ctx, tq, tk, tv, &QN, &KN, &kv, &b, &sh, &rp));
    if (!r->perf) {
        double *rq = to_double(q, (size_t)n * qd), *rk = to_double(k, (size_t)n * kd);
        ref_qk_norm_rope(rq, qn, n, H, Dh, pos0, theta);
        ref_qk_norm_rope(rk, kn, n, KVH, Dh, pos0, theta);
        compare(r, tq, rq, 1);
        compare(r, tk, rk, 1);
        /* the cache: slot (pos0 + t) % cap holds row t for the last cap rows; others stay 0 */
        double *ck = calloc((size_t)cap * kd, sizeof *ck), *cv = calloc((size_t)cap * kd, sizeof *cv);
        for (int t = n - cap > 0 ? n - cap : 0; t < n; t++) {
            size_t slot = (size_t)((pos0 + t) % cap) * kd;
            for (int i = 0; i < kd; i++)
                ck[slot + i] = rk[(size_t)t * kd + i], cv[slot + i] = v[(size_t)t * kd + i];
        }
        compare(r, kv.k, ck, 1);
        compare(r, kv.v, cv, 1);
        free(rq), free(rk), free(ck), free(cv);
    }
    drop(r, &tq), drop(r, &tk), drop(r, &tv), drop(r, &kv.k), drop(r, &kv.v);
    unprep(r, &KN), unprep(r, &QN);
    free(q), free(k), free(v), free(qn), free(kn), free(zero);
}

/* attention: a = rows, b = heads, c = kv heads, d = head dim,
 * e = mode (0 bidirectional, 1 causal, 2 causal + window 64 + an image block, 3 decode over the cache,
 *           4 a prompt continuing a cached prefix: causal + window 64 + an image block, keys from the cache),
 * f = decode: position (cache capacity min(f + 1, 1024)); continued: the first row's position */
static void op_attention(Run *r, const Shape *s) {
    int n = s->a, H = s->b, KVH = s->c, Dh = s->d, mode = s->e;
    int decode = mode == 3, cached = mode == 4, pos = decode || cached ? s->f : 0;
    int keys = decode ? (pos + 1 < 1024 ? pos + 1 : 1024) : cached ? pos + n : n;
    int qd = H * Dh, kd = KVH * Dh;
    float *q = rand_f32((size_t)n * qd, 1.0f), *k = rand_f32((size_t)keys * kd, 1.0f),
          *v = rand_f32((size_t)keys * kd, 1.0f);
    int32_t *blocks = NULL;
    if (mode == 2 || cached) {
        blocks = malloc(n * sizeof *blocks);
        for (int t = 0; t < n; t++) /* 80 soft tokens, longer than the window (continued: 16) */
            blocks[t] = t >= n / 4 && t < n / 4 + (cached ? 16 : 80) && t < n ? 0 : -1;
    }
    float scale = 1.0f / sqrtf((float)Dh);
    AttnShape sh = {H, KVH, Dh, scale, mode != 0, mode == 2 || cached ? 64 : 0};
    Batch b = {n, pos};
    Tensor tq = up(r, q, n, qd), tout = up(r, NULL, n, qd);
    Tensor tk = up(r, k, keys, kd), tv = up(r, v, keys, kd);
    KvLayer kv = {tk, tv, keys};
    TIMED(r,
          r->ops->attention(r->ops->ctx, tout, tq, tk, tv, decode || cached ? &kv : NULL, blocks, &b, &sh));
    if (!r->perf) {
        double *ref = calloc((size_t)n * qd, sizeof *ref), *p = malloc((size_t)keys * sizeof *p);
        int group = H / KVH;
        for (int t = 0; t < n; t++)
            for (int h = 0; h < H; h++) {
                const float *qv = q + (size_t)t * qd + h * Dh;
                double mx = -INFINITY;
                for (int j = 0; j < keys; j++) {
                    int allowed = 1, a = pos + t, bj = j - (cached ? pos : 0); /* query position, key row */
                    if (!decode && mode != 0) {
                        int same = blocks && blocks[t] >= 0 && bj >= 0 && bj < n && blocks[t] == blocks[bj];
                        allowed = (j <= a || same) && (sh.window <= 0 || j > a - sh.window);
                    }
                    p[j] = -INFINITY;
                    if (!allowed)
                        continue;
                    double dot = 0;
                    for (int i = 0; i < Dh; i++)
                        dot += (double)qv[i] * k[(size_t)j * kd + (h / group) * Dh + i];
                    p[j] = dot * scale;
                    if (p[j] > mx)
                        mx = p[j];
                }
                double sum = 0;
                for (int j = 0; j < keys; j++)
                    sum += p[j] = p[j] == -INFINITY ? 0 : exp(p[j] - mx);
                for (int j = 0; j < keys; j++)
                    for (int i = 0; i < Dh; i++)
                        ref[(size_t)t * qd + h * Dh + i] +=
                            p[j] / sum * v[(size_t)j * kd + (h / group) * Dh + i];
            }
        compare(r, tout, ref, 1);
        free(ref), free(p);
    }
    drop(r, &tq), drop(r, &tout), drop(r, &tk), drop(r, &tv);
    free(q), free(k), free(v), free(blocks);
}

static double ref_gelu(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* gelu_gate, gelu, add: a = rows, b = cols */
static void op_gelu_gate(Run *r, const Shape *s) {
    size_t N = (size_t)s->a * s->b;
    float *g = rand_f32(N, 4.0f), *u = rand_f32(N, 2.0f);
    Tensor tg = up(r, g, s->a, s->b), tu = up(r, u, s->a, s->b), out = up(r, NULL, s->a, s->b);
    TIMED(r, r->ops->gelu_gate(r->ops->ctx, out, tg, tu));
    if (!r->perf) {
        double *ref = malloc(N * sizeof *ref);
        for (size_t i = 0; i < N; i++)
            ref[i] = ref_gelu(g[i]) * u[i];
        compare(r, out, ref, 1);
        free(ref);
    }
    drop(r, &tg), drop(r, &tu), drop(r, &out);
    free(g), free(u);
}

static void op_gelu(Run *r, const Shape *s) {
    size_t N = (size_t)s->a * s->b;
    float *x = rand_f32(N, 4.0f);
    Tensor tx = up(r, x, s->a, s->b);
    r->ops->gelu(r->ops->ctx, tx);
    if (r->perf)
        TIMED(r, r->ops->gelu(r->ops->ctx, tx));
    else {
        double *ref = malloc(N * sizeof *ref);
        for (size_t i = 0; i < N; i++)
            ref[i] = ref_gelu(x[i]);
        compare(r, tx, ref, 1);
        free(ref);
    }
    drop(r, &tx);
    free(x);
}

static void op_add(Run *r, const Shape *s) {
    size_t N = (size_t)s->a * s->b;
    float *x = rand_f32(N, 1.0f), *y = rand_f32(N, 1.0f);
    Tensor tx = up(r, x, s->a, s->b), ty = up(r, y, s->a, s->b);
    r->ops->add(r->ops->ctx, tx, ty);
    if (r->perf)
        TIMED(r, r->ops->add(r->ops->ctx, tx, ty));
    else {
        double *ref = malloc(N * sizeof *ref);
        for (size_t i = 0; i < N; i++)
            ref[i] = (double)x[i] + y[i];
        compare(r, tx, ref, 1);
        free(ref);
    }
    drop(r, &tx), drop(r, &ty);
    free(x), free(y);
}

/* patch_embed: a = image size, b = patch, c = channels, d = hidden */
static void op_patch_embed(Run *r, const Shape *s) {
    int S = s->a, P = s->b, C = s->c, D = s->d, G = S / P, N = G * G, K = C * P * P;
    float *px = rand_f32((size_t)C * S * S, 1.0f);
    bf16 *w = rand_bf16((size_t)D * K, 0.05f), *b = rand_bf16(D, 1.0f), *pe = rand_bf16((size_t)N * D, 1.0f);
    Weight W = weight_bf16(w, D, K);
    W.conv = 1; /* as engine/forward.c binds it: only patch_embed reads it */
    W = prep_weight(r, W);
    Weight B = prep(r, b, 1, D), PE = prep(r, pe, N, D);
    Tensor tp = up_kind(r, px, C, S * S, ALLOC_F32), out = up(r, NULL, N, D);
    TIMED(r, r->ops->patch_embed(r->ops->ctx, out, tp, &W, &B, &PE, S, P));
    if (!r->perf) {
        int stride = N > 64 ? 37 : 1;
        size_t n_ref = (size_t)N * D;
        double *ref = calloc(n_ref > 0 ? n_ref : 1, sizeof *ref);
        for (int p = 0; p < N; p += stride)
            for (int o = 0; o < D; o++) {
                double sum = wv(b, o) + wv(pe, (size_t)p * D + o);
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < P; ky++)
                        for (int kx = 0; kx < P; kx++)
                            sum += (double)px[((size_t)c * S + (p / G) * P + ky) * S + (p % G) * P + kx] *
                                   wv(w, (size_t)o * K + (c * P + ky) * P + kx);
                ref[(size_t)p * D + o] = sum;
            }
        compare(r, out, ref, stride);
        free(ref);
    }
    drop(r, &tp), drop(r, &out);
    unprep(r, &PE), unprep(r, &B), unprep(r, &W);
    free(px), free(w), free(b), free(pe);
}

/* avgpool: a = grid, b = window k, c = dim */
static void op_avgpool(Run *r, const Shape *s) {
    int G = s->a, k = s->b, D = s->c, g = G / k;
    float *x = rand_f32((size_t)G * G * D, 1.0f);
    Tensor tx = up(r, x, G * G, D), out = up(r, NULL, g * g, D);
    TIMED(r, r->ops->avgpool(r->ops->ctx, out, tx, G, k));
    if (!r->perf) {
        double *ref = calloc((size_t)g * g * D, sizeof *ref);
        for (int row = 0; row < G; row++)
            for (int col = 0; col < G; col++)
                for (int i = 0; i < D; i++)
                    ref[((size_t)(row / k) * g + col / k) * D + i] +=
                        x[((size_t)row * G + col) * D + i] / (k * k);
        compare(r, out, ref, 1);
        free(ref);
    }
    drop(r, &tx), drop(r, &out);
    free(x);
}

/* ---- the table: every op once, its shapes, its tolerances */

typedef struct {
    const char *op;
    void (*run)(Run *r, const Shape *s);
    double tol;      /* exact backends */
    double tol_lowp; /* bf16 GEMM activations / q8 weights (ops whose math they change) */
    double tol_bf16; /* bf16 activations everywhere (CUDA): inputs and outputs rounded to bf16 */
    Shape shapes[8];
} OpRow;

/* MedGemma 4B: text hidden 2560, MLP 10240, 8 heads / 4 KV heads of 256, vocab 262208;
 * SigLIP: 896 px, patch 14 (64 x 64 = 4096 patches), hidden 1152, MLP 4304, 16 heads of 72;
 * projector: 4 x 4 pooling to 256 tokens. Odd sizes catch tails of vector loops and tiles. */
static const OpRow rows[] = {
    {"embed",
     op_embed,
     1e-6,
     1e-6,
     4e-3,
     {{1, 7, 1, .label = "1x1"}, {5, 300, 2560, .label = "D2560"}, {3, 1000, 1153}}},
    {"rmsnorm",
     op_rmsnorm,
     1e-6,
     1e-6,
     8e-3,
     {{1, 2560, .label = "decode D2560"}, {37, 2560}, {3, 1}, {2, 17}, {256, 1152, .label = "projector"}}},
    {"rmsnorm_residual", op_rmsnorm_residual, 1e-6, 1e-6, 8e-3, {{1, 2560}, {33, 2560}, {4, 15}}},
    {"rmsnorm_residual_norm", op_rmsnorm_residual_norm, 1e-6, 1e-6, 8e-3, {{1, 2560}, {19, 2560}, {2, 33}}},
    {"layernorm", op_layernorm, 1e-6, 1e-6, 1.5e-2, {{64, 1152, .label = "siglip"}, {1, 1}, {7, 31}}},
    {"linear",
     op_linear,
     1e-5,
     2e-2,
     6e-3,
     {{1, 2560, 2048, .label = "decode q_proj"},
      {1, 2560, 10240, .label = "decode gate"},
      {3, 10240, 2560, .label = "down"},
      {37, 1152, 1153, 1, .label = "siglip qkv+bias, odd out"},
      {17, 1152, 2560, 2, .label = "projector [in,out]"},
      {5, 33, 7, 3, .label = "fp32 weights"},
      {2, 70, 9, .label = "in % 32 != 0 (stays bf16)"},
      {64, 256, 256, .label = "tile edges"}}},
    {"linear_multi",
     op_linear_multi,
     1e-5,
     2e-2,
     6e-3,
     {{1, 640, 1024, 256, 256, .label = "270M decode q|k|v"},
      {1, 2560, 10240, 10240, .label = "decode gate|up"},
      {2, 2560, 2048, 1024, 1024, .label = "q|k|v, 2 rows"},
      {5, 96, 33, 7, 64, .label = "prompt rows, odd outs"},
      {1, 70, 9, 17, .label = "in % 32 != 0 (stays bf16)"}}},
    {"qk_rope_store",
     op_qk_rope_store,
     1e-5,
     1e-5,
     6e-3,
     {{1, 8, 4, 256, 4100, 1024, .label = "decode ring"},
      {40, 8, 4, 256, 0, 4096, .label = "prefill global"},
      {70, 2, 1, 6, 0, 32, .label = "prompt longer than the ring"},
      {3, 4, 4, 2, 31000, 32768, .label = "far position"}}},
    {"attention",
     op_attention,
     1e-5,
     1e-5,
     1e-2,
     {{1, 8, 4, 256, 3, 4100, .label = "decode ring 1024"},
      {1, 8, 4, 256, 3, 9, .label = "decode short"},
      {150, 8, 4, 256, 2, .label = "causal window 64 + image"},
      {33, 3, 1, 6, 1, .label = "causal odd"},
      {33, 3, 1, 8, 1, .label = "causal odd, head dim 8"},
      {40, 8, 4, 256, 4, 100, .label = "continued prompt over the cache"},
      {256, 16, 16, 72, 0, .label = "siglip"},
      {5, 2, 2, 1, 0, .label = "head dim 1"}}},
    {"gelu_gate", op_gelu_gate, 1e-6, 1e-6, 8e-3, {{1, 10240}, {3, 17}}},
    {"gelu", op_gelu, 1e-6, 1e-6, 8e-3, {{64, 4304}, {1, 5}}},
    {"add", op_add, 1e-7, 1e-7, 8e-3, {{64, 1152}, {1, 3}}},
    {"patch_embed",
     op_patch_embed,
     1e-5,
     1e-5,
     6e-3,
     {{896, 14, 3, 1152, .label = "siglip 896/14"}, {28, 14, 3, 33}, {8, 4, 1, 5}}},
    {"avgpool",
     op_avgpool,
     1e-6,
     1e-6,
     8e-3,
     {{64, 4, 1152, .label = "projector 64->16"}, {6, 3, 5}, {4, 1, 3}}},
};
#define N_ROWS ((int)(sizeof rows / sizeof rows[0]))

/* ---- backends */

/* Every op table under test: a name, how to make and free it, which tolerance applies
 * (0 exact, 1 lowp: GEMMs that change the math, 2 bf16: bf16 activations everywhere),
 * how to wait for its queued work (perf), and the shapes it does not take (with why).
 * A new backend is one more line here. */
typedef struct {
    const char *name;
    int (*create)(Ops *ops, const OpsOptions *options, Error *err);
    void (*destroy)(Ops *ops);
    OpsOptions opt;
    int tol_class;
    void (*sync)(const Ops *ops);
    const char *(*unsupported)(const char *op, const Shape *s); /* NULL: every shape */
} BackendSpec;

#ifdef MEDGEMMA_CUDA
/* The CUDA table over one device allocation of its own (the backend's is the device
 * plan's; here one arena large enough for the largest row). Run on a GPU
 * (tests/gpu/run.sh) or on the CPU through cudaemu (build/op_harness_emu, make test). */
#define CUDA_ARENA ((size_t)384 << 20)
static void *cuda_device;
static DeviceArena cuda_arena;

static int cuda_create(Ops *ops, const OpsOptions *options, Error *err) {
    if (cudaMalloc(&cuda_device, CUDA_ARENA) != cudaSuccess)
        return error_set(err, "cudaMalloc of %zu MiB failed (no CUDA device?)", CUDA_ARENA >> 20);
    device_arena_init(&cuda_arena, cuda_device, CUDA_ARENA);
    CudaOpsOptions o = {&cuda_arena, 4096, (size_t)64 * 16 * (256 + 2) * sizeof(float),
                        (size_t)4096 * 592 * sizeof(bf16), (size_t)4 << 20};
    return ops_cuda_create(ops, &o, err);
}
static void cuda_destroy_all(Ops *ops) {
    ops_cuda_destroy(ops);
    device_arena_destroy(&cuda_arena);
    cudaFree(cuda_device);
}
static void cuda_sync(const Ops *ops) {
    cudaStreamSynchronize(ops_cuda_stream(ops));
}
/* What the CUDA table refuses by design (the backend refuses such models at create): the
 * harness checks that it does refuse them (a failed op or prepare), not a wrong answer. */
static const char *cuda_unsupported(const char *op, const Shape *s) {
    if (!strcmp(op, "attention") && (s->d % 8 || s->d > 256))
        return "head_dim not a multiple of 8 up to 256 (the CUDA attention kernels' tiles)";
    if (!strcmp(op, "linear") && s->d == 3)
        return "fp32 weights (the CUDA table keeps bf16 weights; fp32 ones exist only in the CPU's tests)";
    return NULL;
}
#endif

static const BackendSpec cpu_backends[] = {
    {"cpu", ops_cpu_create, ops_cpu_destroy, {0, 0, 0}, 0, NULL, NULL},
    {"cpu-bf16", ops_cpu_create, ops_cpu_destroy, {0, 1, 0}, 1, NULL, NULL},
    {"cpu-q8", ops_cpu_create, ops_cpu_destroy, {0, 0, 1}, 1, NULL, NULL},
};
#ifdef MEDGEMMA_CUDA
static const BackendSpec cuda_backends[] = {
    {"cuda", cuda_create, cuda_destroy_all, {0, 0, 0}, 2, cuda_sync, cuda_unsupported},
};
#endif

static const OpRow *find_row(const char *op) {
    for (int i = 0; i < N_ROWS; i++)
        if (!strcmp(rows[i].op, op))
            return &rows[i];
    return NULL;
}

/* Every row of every shape on one backend; 0, or 1 when one failed. */
static int run_backend(const BackendSpec *be, int perf, int list, const char *only) {
    Ops ops;
    Error err;
    int failed = 0;
    if (be->create(&ops, &be->opt, &err) != 0) {
        printf("FAIL ops_%s_create: %s\n", be->name, err.message);
        return 1;
    }
    if (be->opt.precision_bf16 && !kernels_bf16_available())
        printf("skip ops_%s: this processor lacks AVX512_BF16, bf16 precision runs the exact GEMM\n",
               be->name);
    int missing = 0;
#define CHECK_FILLED(op_)                                                                                    \
    if (!ops.op_) {                                                                                          \
        printf("FAIL ops_%s_%s: the backend leaves the op NULL\n", be->name, #op_);                          \
        missing = failed = 1;                                                                                \
    }
    OPS_FOR_EACH(CHECK_FILLED)
    for (int i = 0; i < N_ROWS && !missing; i++) {
        const OpRow *row = &rows[i];
        for (int si = 0; si < 8 && row->shapes[si].a; si++) {
            const Shape *s = &row->shapes[si];
            char name[160];
            snprintf(name, sizeof name, "ops_%s_%s[%d,%d,%d,%d,%d,%d%s%s]", be->name, row->op, s->a, s->b,
                     s->c, s->d, s->e, s->f, s->label ? " " : "", s->label ? s->label : "");
            char key[96];
            snprintf(key, sizeof key, "%s %s", be->name, row->op);
            if (only && !strstr(key, only))
                continue;
            if (list) {
                printf("%s\n", name);
                continue;
            }
            const char *why = be->unsupported ? be->unsupported(row->op, s) : NULL;
            if (why && perf)
                continue;
            rng_state = 0x9e3779b97f4a7c15ull * (uint64_t)(i * 8 + si + 1);
            Run r = {&ops, be->sync, perf, 0, 0};
            row->run(&r, s);
            double tol = be->tol_class == 2 ? row->tol_bf16 : be->tol_class == 1 ? row->tol_lowp : row->tol;
            Error op_err;
            int op_failed = ops.status(ops.ctx, &op_err) != 0;
            if (why) { /* a shape the backend must refuse (as it refuses such models) */
                if (op_failed || isinf(r.err))
                    printf("ok %s refused: %s\n", name, why);
                else {
                    printf("FAIL %s: accepted a shape it cannot take (%s)\n", name, why);
                    failed = 1;
                }
            } else if (op_failed) {
                printf("FAIL %s: the backend failed: %s\n", name, op_err.message);
                failed = 1;
            } else if (perf)
                printf("perf %-70s %10.3f ms\n", name, r.seconds * 1e3);
            else if (r.err <= tol)
                printf("ok %s (rel err %.2e)\n", name, r.err);
            else {
                printf("FAIL %s: rel err %.3e > tol %.1e\n", name, r.err, tol);
                failed = 1;
            }
            fflush(stdout);
        }
    }
    be->destroy(&ops);
    return failed;
}

int main(int argc, char **argv) {
    int perf = 0, list = 0, cuda = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--perf"))
            perf = 1;
        else if (!strcmp(argv[i], "--list"))
            list = 1;
        else if (!strcmp(argv[i], "--cuda"))
            cuda = 1;
        else {
            fprintf(stderr, "usage: op_harness [--cuda] [--perf | --list]\n");
            return 2;
        }
    }
    const char *only = getenv("OPS_FILTER"); /* substring of "backend op" */
    int failed = 0;

    /* every op of the table has a row */
#define CHECK_ROW(name)                                                                                      \
    if (!find_row(#name)) {                                                                                  \
        printf("FAIL ops_table_rows: op '%s' has no row in tests/ops/op_harness.c\n", #name);                \
        failed = 1;                                                                                          \
    }
    OPS_FOR_EACH(CHECK_ROW)
    if (!failed)
        printf("ok ops_table_rows (%d ops, each with a harness row)\n", OPS_COUNT);

    const BackendSpec *backends = cpu_backends;
    size_t n_backends = sizeof cpu_backends / sizeof cpu_backends[0];
    if (cuda) {
#ifdef MEDGEMMA_CUDA
        backends = cuda_backends;
        n_backends = sizeof cuda_backends / sizeof cuda_backends[0];
#else
        printf("FAIL ops_cuda: this build has no CUDA backend (built without nvcc)\n");
        return 1;
#endif
    }
    for (size_t bi = 0; bi < n_backends; bi++)
        failed |= run_backend(&backends[bi], perf, list, only);
    kernels_shutdown();
    return failed;
}
