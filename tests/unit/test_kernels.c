/* CPU kernels vs naive double-precision references: GEMM/GEMV, norms, RoPE,
 * GELU, embedding, SigLIP ops, pooling; odd sizes, 1 and 2 threads, and every
 * SIMD variant this processor runs. Attention and sampling: test_kernels_attention.c,
 * test_kernels_sampling.c. */
#include <stdlib.h>
#include <time.h>

#include "kernels/cpu/matmul_amx.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"
#include "tests/unit/kernel_ref.h"
#include "tests/unit/test.h"

static double *ref_matmul(const float *x, const bf16 *w, const bf16 *bias, int T, int in, int out) {
    double *y = malloc((size_t)T * out * sizeof *y);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = bias ? bf16_to_f32(bias[o]) : 0.0;
            for (int i = 0; i < in; i++)
                s += (double)x[(size_t)t * in + i] * bf16_to_f32(w[(size_t)o * in + i]);
            y[(size_t)t * out + o] = s;
        }
    return y;
}

static void check_matmul(int T, int in, int out, int with_bias, int threads) {
    kernels_set_threads(threads);
    float *x = ref_rand_f32((size_t)T * in, 2.0f, T * 31 + in);
    bf16 *w = ref_rand_bf16((size_t)out * in, 0.5f, out + 3);
    bf16 *b = with_bias ? ref_rand_bf16(out, 1.0f, 99) : NULL;
    float *y = malloc((size_t)T * out * sizeof *y);
    for (size_t i = 0; i < (size_t)T * out; i++)
        y[i] = NAN; /* poison: every element must be written */
    matmul(y, x, w, b, T, in, out);
    double *r = ref_matmul(x, w, b, T, in, out);
    double e = ref_rel_err(y, r, (size_t)T * out);
    CHECK_MSG(e < 1e-6, "matmul T=%d in=%d out=%d bias=%d threads=%d: rel err %g", T, in, out, with_bias,
              threads, e);
    free(x), free(w), free(b), free(y), free(r);
}

TEST(kernels_matmul_shapes) {
    check_matmul(1, 640, 1024, 0, 1); /* decode GEMV */
    check_matmul(1, 37, 13, 1, 2);    /* odd sizes */
    check_matmul(7, 100, 30, 1, 2);   /* tokens not a multiple of 4 */
    check_matmul(70, 257, 67, 0, 2);  /* crosses the token block, odd in/out */
    check_matmul(9, 16, 4, 0, 1);
}

TEST(kernels_matmul_amx_split_matches_fp32) {
    if (!amx_available())
        test_skip(
            "no AMX-BF16 on this processor (or MEDGEMMA_NO_AMX set): the AMX GEMM path is not exercised");
    check_matmul(32, 64, 32, 0, 1);   /* exactly one tile block */
    check_matmul(45, 301, 50, 1, 2);  /* ragged everything, odd input count */
    check_matmul(97, 1152, 70, 1, 2); /* SigLIP width */
    /* activations with a wide dynamic range: the three bf16 terms keep fp32 accuracy */
    int T = 33, in = 96, out = 40;
    float *x = ref_rand_f32((size_t)T * in, 1.0f, 77);
    for (int i = 0; i < T * in; i++)
        x[i] *= (i % 3 == 0) ? 1e4f : (i % 3 == 1) ? 1e-4f : 1.0f;
    bf16 *w = ref_rand_bf16((size_t)out * in, 1.0f, 78);
    float *y = malloc((size_t)T * out * sizeof *y);
    matmul(y, x, w, NULL, T, in, out);
    double *r = ref_matmul(x, w, NULL, T, in, out);
    double e = ref_rel_err(y, r, (size_t)T * out);
    CHECK_MSG(e < 1e-6, "wide-range activations: rel err %g", e);
    free(x), free(w), free(y), free(r);
}

static void check_threads_bitwise(int T, int in, int out) {
    float *x = ref_rand_f32((size_t)T * in, 1.0f, 5);
    bf16 *w = ref_rand_bf16((size_t)out * in, 1.0f, 6);
    float *y1 = malloc((size_t)T * out * sizeof *y1), *y2 = malloc((size_t)T * out * sizeof *y2);
    kernels_set_threads(1);
    matmul(y1, x, w, NULL, T, in, out);
    for (int threads = 2; threads <= 3; threads++) {
        kernels_set_threads(threads);
        matmul(y2, x, w, NULL, T, in, out);
        CHECK_MSG(memcmp(y1, y2, (size_t)T * out * sizeof *y1) == 0, "T=%d out=%d: %d threads differ from 1",
                  T, out, threads);
    }
    kernels_set_threads(0);
    free(x), free(w), free(y1), free(y2);
}

TEST(kernels_matmul_threads_bitwise_equal) {
    check_threads_bitwise(13, 300, 77);  /* a few panels */
    check_threads_bitwise(13, 64, 1601); /* ~100 panels: several dynamic chunks per thread */
    check_threads_bitwise(1, 96, 4001);  /* decode GEMV, ragged last unit */
}

/* matmul_multi gives every value matmul gives (its chunks cross the matrices' boundaries):
 * decode and prompt rows, ragged outs (a matrix ending inside a unit of 16), 1-3 threads. */
TEST(kernels_matmul_multi_equals_separate_matmuls) {
    int in = 96, outs[3] = {77, 16, 301}, rows[] = {1, 3, 5};
    bf16 *w[3];
    float *ys[3], *sep[3];
    for (int m = 0; m < 3; m++) {
        w[m] = ref_rand_bf16((size_t)outs[m] * in, 1.0f, 20 + m);
        ys[m] = malloc((size_t)5 * outs[m] * sizeof(float));
        sep[m] = malloc((size_t)5 * outs[m] * sizeof(float));
    }
    float *x = ref_rand_f32((size_t)5 * in, 1.0f, 19);
    for (int threads = 1; threads <= 3; threads++)
        for (int r = 0; r < 3; r++) {
            kernels_set_threads(threads);
            for (int m = 0; m < 3; m++) {
                matmul(sep[m], x, w[m], NULL, rows[r], in, outs[m]);
                memset(ys[m], 0xff, (size_t)rows[r] * outs[m] * sizeof(float)); /* NaN until written */
            }
            matmul_multi(3, ys, x, (const bf16 *const *)w, outs, rows[r], in);
            for (int m = 0; m < 3; m++)
                CHECK_MSG(memcmp(ys[m], sep[m], (size_t)rows[r] * outs[m] * sizeof(float)) == 0,
                          "threads %d, %d rows: matrix %d differs from matmul", threads, rows[r], m);
        }
    kernels_set_threads(0);
    for (int m = 0; m < 3; m++)
        free(w[m]), free(ys[m]), free(sep[m]);
    free(x);
}

typedef struct {
    int *seen;
    int n; /* items of this loop: a range outside [0, n) is bad */
    int n_calls, bad_range;
} CoverJob;

static void cover_range(void *ctx, int start, int end) {
    CoverJob *j = ctx;
    if (start >= end || start < 0 || end > j->n) {
        __atomic_store_n(&j->bad_range, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int i = start; i < end; i++)
        __atomic_fetch_add(&j->seen[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&j->n_calls, 1, __ATOMIC_RELAXED);
}

/* Every item of [0, n) exactly once, in non-empty ranges, whatever n, chunk and threads. */
TEST(kernels_parallel_for_dynamic_covers_each_item_once) {
    int sizes[] = {1, 2, 7, 64, 1000, 16389};
    for (int threads = 1; threads <= 3; threads++) {
        kernels_set_threads(threads);
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
            for (int min_chunk = 1; min_chunk <= 5; min_chunk += 4) {
                int n = sizes[si];
                CoverJob j = {calloc((size_t)n, sizeof(int)), n, 0, 0};
                parallel_for_dynamic(n, min_chunk, cover_range, &j);
                int wrong = 0;
                for (int i = 0; i < n; i++)
                    wrong += j.seen[i] != 1;
                CHECK_MSG(wrong == 0 && !j.bad_range,
                          "n=%d min_chunk=%d threads=%d: %d items not run exactly once", n, min_chunk,
                          threads, wrong);
                CHECK(j.n_calls >= 1 && j.n_calls <= n);
                free(j.seen);
            }
    }
    kernels_set_threads(0);
}

/* Parts laid end to end: each part's items exactly once, in ranges local to the
 * part; empty parts never called; more parts than PARALLEL_MAX_PARTS too. */
TEST(kernels_parallel_for_dynamic_parts_covers_each_part_once) {
    int sizes[] = {5, 0, 1, 37, 1000, 3, 64, 2, 9, 130}; /* first 5: one loop; all 10: one loop per part */
    int counts[] = {1, 2, 5, 10};
    for (int threads = 1; threads <= 3; threads++) {
        kernels_set_threads(threads);
        for (size_t ci = 0; ci < sizeof counts / sizeof *counts; ci++)
            for (int min_chunk = 1; min_chunk <= 5; min_chunk += 4) {
                int n_parts = counts[ci];
                CoverJob jobs[10];
                void *ctxs[10];
                for (int p = 0; p < n_parts; p++) {
                    CoverJob j = {calloc((size_t)sizes[p] + 1, sizeof(int)), sizes[p], 0, 0};
                    jobs[p] = j;
                    ctxs[p] = &jobs[p];
                }
                parallel_for_dynamic_parts(n_parts, sizes, min_chunk, cover_range, ctxs);
                for (int p = 0; p < n_parts; p++) {
                    int wrong = 0;
                    for (int i = 0; i < sizes[p]; i++)
                        wrong += jobs[p].seen[i] != 1;
                    CHECK_MSG(wrong == 0 && !jobs[p].bad_range,
                              "%d parts, part %d (%d items), min_chunk=%d threads=%d: %d items not run "
                              "exactly once%s",
                              n_parts, p, sizes[p], min_chunk, threads, wrong,
                              jobs[p].bad_range ? ", a range outside the part" : "");
                    CHECK_MSG(sizes[p] > 0 || jobs[p].n_calls == 0, "empty part %d was called", p);
                    free(jobs[p].seen);
                }
            }
    }
    kernels_set_threads(0);
}

/* 3 ms: longer than the pool's 1 ms spin, so a thread waiting that long sleeps. */
static void pause_past_spin(void) {
    struct timespec pause = {0, 3000000};
    nanosleep(&pause, NULL);
}

/* A range function whose parts after the caller's take 3 ms: the caller
 * finishes first and has to sleep until the workers wake it. */
typedef struct {
    CoverJob cover;
    int slow_from;
} SlowJob;

static void slow_cover_range(void *ctx, int start, int end) {
    SlowJob *j = ctx;
    if (start >= j->slow_from)
        pause_past_spin();
    cover_range(&j->cover, start, end);
}

/* The pool's two sleeping paths hand over every loop: workers idle past their
 * spin (a 3 ms gap before each loop) must be woken, and a caller done before
 * its workers (their parts take 3 ms) must be woken at the end; back-to-back
 * loops in between run on the spinning path. A lost wake-up hangs the test. */
TEST(kernels_pool_wakes_sleeping_threads) {
    for (int threads = 2; threads <= 3; threads++) {
        kernels_set_threads(threads);
        long w0, c0, w1, c1;
        parallel_pool_sleeps(&w0, &c0);
        int n = 64, wrong = 0;
        for (int round = 0; round < 30; round++) {
            int idle = round % 3 == 0, slow = round % 3 == 1;
            if (idle)
                pause_past_spin();
            SlowJob j = {{calloc((size_t)n, sizeof(int)), n, 0, 0}, slow ? 1 : n};
            parallel_for(n, 1, slow_cover_range, &j);
            for (int i = 0; i < n; i++)
                wrong += j.cover.seen[i] != 1;
            free(j.cover.seen);
        }
        parallel_pool_sleeps(&w1, &c1);
        CHECK_MSG(wrong == 0, "threads=%d: %d items not run exactly once", threads, wrong);
        CHECK_MSG(w1 - w0 >= 5 && c1 - c0 >= 5,
                  "threads=%d: the sleeping paths were not taken (%ld worker sleeps, %ld caller sleeps)",
                  threads, w1 - w0, c1 - c0);
    }
    kernels_set_threads(0);
}

/* The micro-kernel with fewer than GEMM_ROWS rows runs the full tile with the
 * missing rows reading row 0: every stored row must equal the full call's, bit
 * for bit, with and without accumulate, and nothing past `rows` is written. */
TEST(kernels_gemm_panel_short_rows_match_full) {
    const char *names[] = {"scalar", "avx2", "avx512"};
    int k = 37, ran = 0;
    for (int v = 0; v < 3; v++) {
        const SimdOps *ops = simd_ops_named(names[v]);
        if (!ops)
            continue;
        ran++;
        int pc = ops->panel_cols;
        float *x = ref_rand_f32((size_t)GEMM_ROWS * k, 1.0f, 21),
              *panel = ref_rand_f32((size_t)k * pc, 1.0f, 22);
        float *init = ref_rand_f32((size_t)GEMM_ROWS * pc, 1.0f, 23);
        for (int n_cols = pc; n_cols >= pc - 3; n_cols -= 3)
            for (int acc = 0; acc <= 1; acc++) {
                float full[GEMM_ROWS * 32], part[GEMM_ROWS * 32];
                memcpy(full, init, (size_t)GEMM_ROWS * pc * sizeof *full);
                ops->gemm_panel(full, pc, x, k, panel, GEMM_ROWS, k, n_cols, acc);
                for (int rows = 1; rows < GEMM_ROWS; rows++) {
                    memcpy(part, init, (size_t)GEMM_ROWS * pc * sizeof *part);
                    ops->gemm_panel(part, pc, x, k, panel, rows, k, n_cols, acc);
                    int bad = 0, first = -1;
                    for (int r = 0; r < GEMM_ROWS; r++)
                        for (int c = 0; c < pc; c++) {
                            float want = r < rows && c < n_cols ? full[r * pc + c] : init[r * pc + c];
                            if (part[r * pc + c] != want && bad++ == 0) /* finite values */
                                first = r * pc + c;
                        }
                    CHECK_MSG(bad == 0, "%s rows=%d n_cols=%d acc=%d: %d outputs differ, first y[%d][%d]",
                              names[v], rows, n_cols, acc, bad, first / pc, first % pc);
                }
            }
        free(x), free(panel), free(init);
    }
    CHECK(ran >= 1);
}

TEST(kernels_simd_variants_agree) {
    const char *names[] = {"scalar", "avx2", "avx512"};
    int n = 203, ran = 0;
    float *x = ref_rand_f32(4 * (size_t)n, 1.0f, 11), *x2 = ref_rand_f32(n, 1.0f, 12);
    bf16 *w = ref_rand_bf16(4 * (size_t)n, 1.0f, 13);
    double rdot = 0, rdotf = 0, rtile[16];
    for (int i = 0; i < n; i++) {
        rdot += (double)x[i] * bf16_to_f32(w[i]);
        rdotf += (double)x[i] * x2[i];
    }
    for (int t = 0; t < 4; t++)
        for (int o = 0; o < 4; o++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += (double)x[t * n + i] * bf16_to_f32(w[o * n + i]);
            rtile[t * 4 + o] = s;
        }
    for (int v = 0; v < 3; v++) {
        const SimdOps *ops = simd_ops_named(names[v]);
        if (!ops)
            continue;
        ran++;
        CHECK_NEAR(ops->dot_bf16(x, w, n), rdot, 1e-4);
        CHECK_NEAR(ops->dot_f32(x, x2, n), rdotf, 1e-4);
        float tile[16];
        ops->tile4x4_bf16(tile, 4, x, n, w, n, n);
        double e = ref_rel_err(tile, rtile, 16);
        CHECK_MSG(e < 1e-6, "%s tile4x4 rel err %g", names[v], e);
        float y[203], yr[203];
        for (int i = 0; i < n; i++)
            y[i] = yr[i] = x2[i];
        ops->axpy_f32(y, 0.5f, x, n);
        ops->scale_f32(y, 2.0f, n);
        for (int i = 0; i < n; i++)
            yr[i] = (yr[i] + 0.5f * x[i]) * 2.0f;
        for (int i = 0; i < n; i++)
            CHECK_NEAR(y[i], yr[i], 1e-5);
    }
    CHECK(ran >= 1);
    free(x), free(x2), free(w);
}

TEST(kernels_matmul_in_out) {
    int T = 5, in = 37, out = 300;
    kernels_set_threads(2);
    float *x = ref_rand_f32((size_t)T * in, 1.0f, 21);
    bf16 *w = ref_rand_bf16((size_t)in * out, 1.0f, 22);
    float *y = malloc((size_t)T * out * sizeof *y);
    double *r = malloc((size_t)T * out * sizeof *r);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < in; i++)
                s += (double)x[t * in + i] * bf16_to_f32(w[(size_t)i * out + o]);
            r[t * out + o] = s;
        }
    matmul_in_out(y, x, w, T, in, out);
    double e = ref_rel_err(y, r, (size_t)T * out);
    CHECK_MSG(e < 1e-6, "rel err %g", e);
    free(x), free(w), free(y), free(r);
}

TEST(kernels_embedding_lookup) {
    int V = 50, D = 33;
    bf16 *table = ref_rand_bf16((size_t)V * D, 1.0f, 31);
    int32_t ids[4] = {0, 49, 7, 7};
    float out[4 * 33];
    embedding_lookup(out, table, ids, 4, D, 50.5f);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < D; i++)
            CHECK(out[t * D + i] == bf16_to_f32(table[ids[t] * D + i]) * 50.5f);
    free(table);
}

static void ref_rmsnorm(double *out, const float *x, const bf16 *w, int dim, double eps) {
    double ss = 0;
    for (int i = 0; i < dim; i++)
        ss += (double)x[i] * x[i];
    double r = 1.0 / sqrt(ss / dim + eps);
    for (int i = 0; i < dim; i++)
        out[i] = x[i] * r * (1.0 + bf16_to_f32(w[i]));
}

TEST(kernels_rmsnorm_and_residual) {
    int T = 19, D = 135;
    kernels_set_threads(2);
    float *x = ref_rand_f32((size_t)T * D, 3.0f, 41);
    float *h = ref_rand_f32((size_t)T * D, 0.01f, 42); /* small rows: eps matters */
    bf16 *w = ref_rand_bf16(D, 0.5f, 43);
    float *out = malloc((size_t)T * D * sizeof *out), *res = malloc((size_t)T * D * sizeof *res);
    double *r = malloc((size_t)T * D * sizeof *r), *rr = malloc((size_t)T * D * sizeof *rr);
    rmsnorm(out, x, w, T, D, 1e-6f);
    memcpy(res, x, (size_t)T * D * sizeof *res);
    rmsnorm_residual(res, h, w, T, D, 1e-2f);
    for (int t = 0; t < T; t++) {
        ref_rmsnorm(r + t * D, x + t * D, w, D, 1e-6);
        ref_rmsnorm(rr + t * D, h + t * D, w, D, 1e-2);
        for (int i = 0; i < D; i++)
            rr[t * D + i] += x[t * D + i];
    }
    CHECK_MSG(ref_rel_err(out, r, (size_t)T * D) < 1e-6, "rmsnorm err %g",
              ref_rel_err(out, r, (size_t)T * D));
    CHECK_MSG(ref_rel_err(res, rr, (size_t)T * D) < 1e-6, "residual err %g",
              ref_rel_err(res, rr, (size_t)T * D));
    /* in place */
    rmsnorm(x, x, w, T, D, 1e-6f);
    CHECK(memcmp(x, out, (size_t)T * D * sizeof *x) == 0);
    free(x), free(h), free(w), free(out), free(res), free(r), free(rr);
}

TEST(kernels_qk_norm_rope) {
    int T = 6, H = 3, Dh = 32, pos0 = 1500;
    float theta = 1e6f, scale = 8.0f;
    kernels_set_threads(2);
    float *x = ref_rand_f32((size_t)T * H * Dh, 2.0f, 51);
    bf16 *w = ref_rand_bf16(Dh, 0.3f, 52);
    double *r = malloc((size_t)T * H * Dh * sizeof *r);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *xh = x + ((size_t)t * H + h) * Dh;
            double n[64];
            ref_rmsnorm(n, xh, w, Dh, 1e-6);
            for (int i = 0; i < Dh / 2; i++) {
                /* the angle in fp32 as the header specifies (transformers does so) */
                float inv = (1.0f / (float)pow(theta, (double)((float)(2 * i) / (float)Dh))) / scale;
                float a = (float)(pos0 + t) * inv;
                double c = cos((double)a), s = sin((double)a);
                r[((size_t)t * H + h) * Dh + i] = n[i] * c - n[i + Dh / 2] * s;
                r[((size_t)t * H + h) * Dh + i + Dh / 2] = n[i + Dh / 2] * c + n[i] * s;
            }
        }
    qk_norm_rope(x, w, T, H, Dh, pos0, theta, scale, 1e-6f);
    double e = ref_rel_err(x, r, (size_t)T * H * Dh);
    CHECK_MSG(e < 1e-6, "rope rel err %g", e);
    free(x), free(w), free(r);
}

TEST(kernels_rope_position_zero_is_identity_after_norm) {
    int Dh = 16;
    float *x = ref_rand_f32(Dh, 1.0f, 53);
    bf16 w[16] = {0};
    double r[16];
    ref_rmsnorm(r, x, w, Dh, 1e-6);
    qk_norm_rope(x, w, 1, 1, Dh, 0, 1e4f, 1.0f, 1e-6f);
    CHECK(ref_max_abs_diff(x, r, Dh) < 1e-6);
    free(x);
}

static double ref_gelu(double x) {
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(kernels_gelu_tanh) {
    int n = 9001;
    kernels_set_threads(2);
    float *g = ref_rand_f32(n, 6.0f, 61), *u = ref_rand_f32(n, 2.0f, 62), *o = malloc(n * sizeof *o);
    double *r = malloc(n * sizeof *r), *r2 = malloc(n * sizeof *r2);
    for (int i = 0; i < n; i++) {
        r[i] = ref_gelu(g[i]) * u[i];
        r2[i] = ref_gelu(g[i]);
    }
    gelu_tanh_gate(o, g, u, n);
    CHECK_MSG(ref_rel_err(o, r, n) < 1e-6, "gate err %g", ref_rel_err(o, r, n));
    gelu_tanh(g, n);
    CHECK_MSG(ref_rel_err(g, r2, n) < 1e-6, "gelu err %g", ref_rel_err(g, r2, n));
    /* tails: exp overflow/underflow must not give NaN or lose the limits */
    float ext[9] = {-100, -30, -10, -1e-8f, 0, 1e-8f, 10, 30, 100}, ext_out[9];
    gelu_tanh_gate(ext_out, ext, ext, 0); /* n = 0 writes nothing */
    memcpy(ext_out, ext, sizeof ext);
    gelu_tanh(ext_out, 9);
    for (int i = 0; i < 9; i++)
        CHECK_MSG(fabs(ext_out[i] - ref_gelu(ext[i])) <= 1e-6 * fmax(1.0, fabs(ext[i])),
                  "gelu(%g) = %g, expected %g", ext[i], ext_out[i], ref_gelu(ext[i]));
    free(g), free(u), free(o), free(r), free(r2);
}

TEST(kernels_layernorm) {
    int T = 9, D = 77;
    kernels_set_threads(2);
    float *x = ref_rand_f32((size_t)T * D, 5.0f, 71), *o = malloc((size_t)T * D * sizeof *o);
    bf16 *w = ref_rand_bf16(D, 1.0f, 72), *b = ref_rand_bf16(D, 1.0f, 73);
    double *r = malloc((size_t)T * D * sizeof *r);
    for (int t = 0; t < T; t++) {
        double m = 0, v = 0;
        for (int i = 0; i < D; i++)
            m += x[t * D + i];
        m /= D;
        for (int i = 0; i < D; i++)
            v += (x[t * D + i] - m) * (x[t * D + i] - m);
        v /= D;
        for (int i = 0; i < D; i++)
            r[t * D + i] = (x[t * D + i] - m) / sqrt(v + 1e-6) * bf16_to_f32(w[i]) + bf16_to_f32(b[i]);
    }
    layernorm(o, x, w, b, T, D, 1e-6f);
    CHECK_MSG(ref_rel_err(o, r, (size_t)T * D) < 1e-6, "err %g", ref_rel_err(o, r, (size_t)T * D));
    free(x), free(o), free(w), free(b), free(r);
}

TEST(kernels_residual_add) {
    float x[5] = {1, 2, 3, 4, 5}, y[5] = {0.5f, -2, 0, 1, 1e-3f};
    residual_add(x, y, 5);
    CHECK(x[0] == 1.5f && x[1] == 0 && x[2] == 3 && x[3] == 5 && x[4] == 5.001f);
}

static void check_patch_embed(int S, int P, int C, int hid) {
    int G = S / P, vec = C * P * P;
    kernels_set_threads(2);
    float *px = ref_rand_f32((size_t)C * S * S, 1.0f, 81), *o = malloc((size_t)G * G * hid * sizeof *o);
    bf16 *w = ref_rand_bf16((size_t)hid * vec, 0.2f, 82), *b = ref_rand_bf16(hid, 1.0f, 83);
    bf16 *pe = ref_rand_bf16((size_t)G * G * hid, 1.0f, 84);
    double *r = malloc((size_t)G * G * hid * sizeof *r);
    for (int row = 0; row < G; row++)
        for (int col = 0; col < G; col++)
            for (int oc = 0; oc < hid; oc++) { /* the convolution, written as a convolution */
                double s = bf16_to_f32(b[oc]) + bf16_to_f32(pe[(size_t)(row * G + col) * hid + oc]);
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < P; ky++)
                        for (int kx = 0; kx < P; kx++)
                            s += (double)px[((size_t)c * S + row * P + ky) * S + col * P + kx] *
                                 bf16_to_f32(w[(((size_t)oc * C + c) * P + ky) * P + kx]);
                r[(size_t)(row * G + col) * hid + oc] = s;
            }
    for (size_t i = 0; i < (size_t)G * G * hid; i++)
        o[i] = NAN;
    patch_embed(o, px, w, b, pe, S, P, C, hid);
    double e = ref_rel_err(o, r, (size_t)G * G * hid);
    CHECK_MSG(e < 1e-6, "patch_embed S=%d P=%d hid=%d rel err %g", S, P, hid, e);
    free(px), free(o), free(w), free(b), free(pe), free(r);
}

TEST(kernels_patch_embed) {
    check_patch_embed(28, 14, 3, 16); /* 2x2 grid: one group of 4 patches */
    check_patch_embed(42, 14, 3, 10); /* 3x3 grid: a partial group, odd hidden */
    check_patch_embed(35, 7, 3, 8);
}

TEST(kernels_avgpool_grid) {
    int G = 8, k = 4, D = 5;
    float *x = ref_rand_f32((size_t)G * G * D, 1.0f, 91), o[4 * 5];
    double r[4 * 5] = {0};
    for (int row = 0; row < G; row++)
        for (int col = 0; col < G; col++)
            for (int i = 0; i < D; i++)
                r[((row / k) * (G / k) + col / k) * D + i] += x[(row * G + col) * D + i] / 16.0;
    avgpool_grid(o, x, G, k, D);
    CHECK(ref_max_abs_diff(o, r, 20) < 1e-6);
    free(x);
}
