/* The opt-in CPU GEMMs against naive double-precision references:
 *  - PRECISION_BF16: y = bf16(x) W^T (activations rounded to nearest even);
 *  - q8 weights: quantization (block 32, fp16 scale) and the Q8_0 x Q8_0
 *    product, every SIMD level this processor runs (VNNI, AVX2, plain C);
 *  - the decode GEMV's 4-row kernel of every SIMD level.
 * Odd token counts, ragged outputs, 1 and 2 threads, decode and prompt paths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/matmul_q8.h"
#include "kernels/cpu/simd.h"
#include "kernels/kernels.h"
#include "tests/unit/kernel_ref.h"
#include "tests/unit/test.h"

/* ---- bf16 precision */

static void check_bf16(int T, int in, int out, int with_bias, int threads) {
    kernels_set_threads(threads);
    float *x = ref_rand_f32((size_t)T * in, 3.0f, T * 7 + in);
    bf16 *w = ref_rand_bf16((size_t)out * in, 0.5f, out + 5);
    bf16 *b = with_bias ? ref_rand_bf16(out, 1.0f, 17) : NULL;
    float *y = malloc((size_t)T * out * sizeof *y);
    double *r = malloc((size_t)T * out * sizeof *r), *r_exact = malloc((size_t)T * out * sizeof *r);
    for (size_t i = 0; i < (size_t)T * out; i++)
        y[i] = NAN;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = b ? bf16_to_f32(b[o]) : 0.0, se = s;
            for (int i = 0; i < in; i++) {
                double wi = bf16_to_f32(w[(size_t)o * in + i]);
                s += (double)round_to_bf16(x[(size_t)t * in + i]) * wi;
                se += (double)x[(size_t)t * in + i] * wi;
            }
            r[(size_t)t * out + o] = s;
            r_exact[(size_t)t * out + o] = se;
        }
    kernels_set_precision(PRECISION_BF16);
    matmul(y, x, w, b, T, in, out);
    kernels_set_precision(PRECISION_EXACT);
    double e = ref_rel_err(y, r, (size_t)T * out);
    CHECK_MSG(e < 1e-6, "bf16 matmul T=%d in=%d out=%d threads=%d: rel err %g vs bf16(x) W^T", T, in, out,
              threads, e);
    /* and it is not the exact product: the rounding of x shows (about 2^-9 relative) */
    double e_exact = ref_rel_err(y, r_exact, (size_t)T * out);
    CHECK_MSG(e_exact > 1e-5 && e_exact < 1e-2, "bf16 matmul vs exact: rel err %g", e_exact);
    free(x), free(w), free(b), free(y), free(r), free(r_exact);
}

TEST(kernels_matmul_bf16_precision) {
    if (!kernels_bf16_available())
        test_skip("no AVX512_BF16 on this processor (or MEDGEMMA_SIMD below avx512): bf16 mode stays exact");
    check_bf16(1, 640, 1024, 0, 1); /* decode GEMV */
    check_bf16(1, 2562, 67, 1, 2);  /* ragged: masked tail, rows not a multiple of 4 */
    check_bf16(3, 100, 30, 1, 2);   /* 3 tokens: still the GEMV path */
    check_bf16(7, 514, 70, 0, 2);   /* prompt path: token rows not a multiple of 6, K over one chunk */
    check_bf16(400, 66, 33, 1, 1);  /* crosses the 384-token block */
}

TEST(kernels_matmul_bf16_falls_back_exact_on_odd_inputs) {
    int T = 5, in = 37, out = 9;
    float *x = ref_rand_f32((size_t)T * in, 1.0f, 3);
    bf16 *w = ref_rand_bf16((size_t)out * in, 1.0f, 4);
    float *y1 = malloc((size_t)T * out * sizeof *y1), *y2 = malloc((size_t)T * out * sizeof *y2);
    kernels_set_threads(1);
    matmul(y1, x, w, NULL, T, in, out);
    kernels_set_precision(PRECISION_BF16);
    matmul(y2, x, w, NULL, T, in, out);
    kernels_set_precision(PRECISION_EXACT);
    CHECK(memcmp(y1, y2, (size_t)T * out * sizeof *y1) == 0);
    free(x), free(w), free(y1), free(y2);
}

/* ---- q8 */

/* d rounded to fp16 (nearest even): 11 significant bits, or a multiple of 2^-24 below 2^-14. */
static float round_f16(float d) {
    if (d == 0)
        return 0;
    int e;
    double m = frexp(d, &e);
    if (e < -13)
        return (float)(nearbyint(d * 16777216.0) / 16777216.0);
    return (float)ldexp(nearbyint(ldexp(m, 11)), e - 11);
}

/* The reference of matmul_q8: weights and activations quantized per block of
 * 32 (fp16 weight scales, fp32 activation scales), products in double. */
static double *ref_q8(const float *x, const bf16 *w, const bf16 *bias, int T, int in, int out) {
    int nb = in / 32;
    float *wd = malloc((size_t)out * nb * sizeof *wd);
    int *wq = malloc((size_t)out * in * sizeof *wq);
    for (int o = 0; o < out; o++)
        for (int b = 0; b < nb; b++) {
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmaxf(amax, fabsf(bf16_to_f32(w[(size_t)o * in + b * 32 + i])));
            float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
            for (int i = 0; i < 32; i++)
                wq[(size_t)o * in + b * 32 + i] =
                    (int)nearbyintf(bf16_to_f32(w[(size_t)o * in + b * 32 + i]) * id);
            /* the stored scale is fp16 */
            wd[(size_t)o * nb + b] = round_f16(d);
        }
    double *y = malloc((size_t)T * out * sizeof *y);
    for (int t = 0; t < T; t++) {
        int qx[16384];
        float dx[512];
        for (int b = 0; b < nb; b++) {
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmaxf(amax, fabsf(x[(size_t)t * in + b * 32 + i]));
            float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
            for (int i = 0; i < 32; i++)
                qx[b * 32 + i] = (int)nearbyintf(x[(size_t)t * in + b * 32 + i] * id);
            dx[b] = d;
        }
        for (int o = 0; o < out; o++) {
            double s = bias ? bf16_to_f32(bias[o]) : 0.0;
            for (int b = 0; b < nb; b++) {
                long long acc = 0;
                for (int i = 0; i < 32; i++)
                    acc += (long long)qx[b * 32 + i] * wq[(size_t)o * in + b * 32 + i];
                s += (double)acc * wd[(size_t)o * nb + b] * dx[b];
            }
            y[(size_t)t * out + o] = s;
        }
    }
    free(wd), free(wq);
    return y;
}

static void check_q8(int T, int in, int out, int with_bias, int threads) {
    kernels_set_threads(threads);
    float *x = ref_rand_f32((size_t)T * in, 2.0f, T * 13 + in);
    bf16 *w = ref_rand_bf16((size_t)out * in, 0.3f, out + 11);
    bf16 *b = with_bias ? ref_rand_bf16(out, 1.0f, 23) : NULL;
    /* a block of zeros (scale 0) and one with a single large value */
    for (int i = 0; i < 32 && out > 2; i++) {
        w[i] = 0;
        w[(size_t)in + i] = f32_to_bf16(i == 5 ? 40.0f : 0.001f);
    }
    Q8Matrix q;
    CHECK(q8_quantize(&q, w, out, in) == 0);
    CHECK(q8_bytes(&q) == (size_t)((out + 31) / 32) * (in / 32) * (32 * 32 + 64));
    float *y = malloc((size_t)T * out * sizeof *y);
    for (size_t i = 0; i < (size_t)T * out; i++)
        y[i] = NAN;
    matmul_q8(y, x, &q, b, T);
    double *r = ref_q8(x, w, b, T, in, out);
    double e = ref_rel_err(y, r, (size_t)T * out);
    CHECK_MSG(e < 1e-6, "q8 matmul T=%d in=%d out=%d threads=%d: rel err %g vs the Q8_0 x Q8_0 reference", T,
              in, out, threads, e);
    /* and close to the exact product: 8-bit weights and activations, ~1% */
    double *re = malloc((size_t)T * out * sizeof *re);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = b ? bf16_to_f32(b[o]) : 0.0;
            for (int i = 0; i < in; i++)
                s += (double)x[(size_t)t * in + i] * bf16_to_f32(w[(size_t)o * in + i]);
            re[(size_t)t * out + o] = s;
        }
    double e_exact = ref_rel_err(y, re, (size_t)T * out);
    CHECK_MSG(e_exact < 0.02, "q8 matmul vs exact: rel err %g", e_exact);
    q8_free(&q);
    CHECK(q.data == NULL);
    free(x), free(w), free(b), free(y), free(r), free(re);
}

TEST(kernels_matmul_q8_every_simd_level) {
    const char *names[] = {"scalar", "avx2", "avx512"};
    int ran = 0;
    for (int v = 0; v < 3; v++) {
        if (matmul_q8_force_kernel(names[v]) != 0)
            continue;
        ran++;
        check_q8(1, 640, 1024, 0, 1); /* decode GEMV */
        check_q8(1, 96, 45, 1, 2);    /* ragged last panel */
        check_q8(3, 128, 70, 1, 2);   /* 3 tokens: the GEMV path */
        check_q8(9, 320, 33, 0, 2);   /* prompt: token groups of 4 and a remainder, K over one pass */
        check_q8(70, 2048, 64, 1, 1); /* crosses the token block (256 KiB of activations / K) */
    }
    matmul_q8_force_kernel(NULL);
    CHECK(ran >= 1);
}

TEST(kernels_q8_quantize_rejects_bad_shapes) {
    bf16 w[64] = {0};
    Q8Matrix q;
    CHECK(q8_quantize(&q, w, 2, 31) == -1);
    CHECK(q.data == NULL);
    CHECK(q8_quantize(&q, w, 0, 32) == -1);
    CHECK(q8_quantize(&q, w, 1, 20000) == -1);
    CHECK(q8_quantize(&q, w, 2, 32) == 0);
    q8_free(&q);
}

TEST(kernels_matmul_q8_threads_bitwise_equal) {
    int T = 11, in = 256, out = 100;
    float *x = ref_rand_f32((size_t)T * in, 1.0f, 41);
    bf16 *w = ref_rand_bf16((size_t)out * in, 1.0f, 42);
    Q8Matrix q;
    CHECK(q8_quantize(&q, w, out, in) == 0);
    float *y1 = malloc((size_t)T * out * sizeof *y1), *y2 = malloc((size_t)T * out * sizeof *y2);
    kernels_set_threads(1);
    matmul_q8(y1, x, &q, NULL, T);
    kernels_set_threads(2);
    matmul_q8(y2, x, &q, NULL, T);
    CHECK(memcmp(y1, y2, (size_t)T * out * sizeof *y1) == 0);
    q8_free(&q);
    free(x), free(w), free(y1), free(y2);
}

/* matmul_q8_multi gives every value matmul_q8 gives (x quantized once, panels of all the
 * matrices in one loop): decode rows and prompt rows (one by one), ragged panels, 1-2 threads. */
TEST(kernels_matmul_q8_multi_equals_separate) {
    int in = 256, outs[3] = {100, 32, 65}, rows[] = {1, 3, 6};
    bf16 *w[3];
    Q8Matrix q[3];
    const Q8Matrix *qs[3];
    float *ys[3], *sep[3];
    for (int m = 0; m < 3; m++) {
        w[m] = ref_rand_bf16((size_t)outs[m] * in, 1.0f, 50 + m);
        CHECK(q8_quantize(&q[m], w[m], outs[m], in) == 0);
        qs[m] = &q[m];
        ys[m] = malloc((size_t)6 * outs[m] * sizeof(float));
        sep[m] = malloc((size_t)6 * outs[m] * sizeof(float));
    }
    float *x = ref_rand_f32((size_t)6 * in, 1.0f, 49);
    for (int threads = 1; threads <= 2; threads++)
        for (int r = 0; r < 3; r++) {
            kernels_set_threads(threads);
            for (int m = 0; m < 3; m++) {
                matmul_q8(sep[m], x, &q[m], NULL, rows[r]);
                memset(ys[m], 0xff, (size_t)rows[r] * outs[m] * sizeof(float));
            }
            matmul_q8_multi(3, ys, x, qs, rows[r]);
            for (int m = 0; m < 3; m++)
                CHECK_MSG(memcmp(ys[m], sep[m], (size_t)rows[r] * outs[m] * sizeof(float)) == 0,
                          "threads %d, %d rows: matrix %d differs from matmul_q8", threads, rows[r], m);
        }
    kernels_set_threads(0);
    for (int m = 0; m < 3; m++)
        q8_free(&q[m]), free(w[m]), free(ys[m]), free(sep[m]);
    free(x);
}

/* ---- the decode GEMV's 4-row kernel */

TEST(kernels_gemv4_every_simd_level) {
    const char *names[] = {"scalar", "avx2", "avx512"};
    /* 640 and 2048: short rows (linear prefetch), 2080 and 10240: long rows (per-row streams) */
    int ns[] = {1, 15, 16, 33, 203, 640, 2048, 2080, 10240};
    int ran = 0;
    for (int v = 0; v < 3; v++) {
        const SimdOps *ops = simd_ops_named(names[v]);
        if (!ops)
            continue;
        ran++;
        for (int k = 0; k < (int)(sizeof ns / sizeof ns[0]); k++) {
            int n = ns[k];
            float *x = ref_rand_f32(n, 1.0f, 50 + k);
            bf16 *w = ref_rand_bf16(4 * (size_t)(n + 3), 1.0f, 60 + k);
            float y[4];
            ops->gemv4_bf16(y, x, w, (size_t)n + 3, n); /* ldw > n: rows are read with a stride */
            /* error relative to sum |x_i w_i| (what fp32 rounding scales with): one
             * dropped or repeated product of average size is ~1/n of it, far above 1e-6 */
            for (int o = 0; o < 4; o++) {
                double r = 0, magnitude = 0;
                for (int i = 0; i < n; i++) {
                    double p = (double)x[i] * bf16_to_f32(w[(size_t)o * (n + 3) + i]);
                    r += p;
                    magnitude += fabs(p);
                }
                double e = fabs(y[o] - r) / magnitude;
                CHECK_MSG(e < 1e-6, "%s gemv4 n=%d row %d: error %g of sum |x w|", names[v], n, o, e);
            }
            free(x), free(w);
        }
    }
    CHECK(ran >= 1);
}
