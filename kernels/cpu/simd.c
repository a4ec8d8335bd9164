/* Vector inner loops (see simd.h): one scalar version, one AVX2+FMA version and
 * one AVX-512 version of each, compiled with per-function target attributes so
 * the rest of the build needs no -march flag. */
#include "kernels/cpu/simd.h"

#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- plain C */

static float dot_bf16_scalar(const float *x, const bf16 *w, int n) {
    float acc[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++)
            acc[j] += x[i + j] * bf16_to_f32(w[i + j]);
    for (; i < n; i++)
        acc[0] += x[i] * bf16_to_f32(w[i]);
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static void gemv4_bf16_scalar(float *y, const float *x, const bf16 *w, size_t ldw, int n) {
    for (int o = 0; o < 4; o++)
        y[o] = dot_bf16_scalar(x, w + o * ldw, n);
}

static float dot_f32_scalar(const float *a, const float *b, int n) {
    float acc[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++)
            acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++)
        acc[0] += a[i] * b[i];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static void axpy_f32_scalar(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void scale_f32_scalar(float *y, float s, int n) {
    for (int i = 0; i < n; i++)
        y[i] *= s;
}

static void tile4x4_bf16_scalar(float *y, int ldy, const float *x, int ldx, const bf16 *w, int ldw, int n) {
    for (int t = 0; t < 4; t++)
        for (int o = 0; o < 4; o++)
            y[t * ldy + o] = dot_bf16_scalar(x + (size_t)t * ldx, w + (size_t)o * ldw, n);
}

static void gemm_panel_scalar(float *y, int ldy, const float *x, int ldx, const float *panel, int rows, int k,
                              int n_cols, int accumulate) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < n_cols; c++) {
            float acc = accumulate ? y[(size_t)r * ldy + c] : 0.0f;
            for (int i = 0; i < k; i++)
                acc = fmaf(x[(size_t)r * ldx + i], panel[(size_t)i * 8 + c], acc);
            y[(size_t)r * ldy + c] = acc;
        }
}

/* panel[i][c] = w[c * ldw + i] (rows read as n_cols streams, panel written in order). */
static void pack_panel_generic(float *panel, int panel_cols, const bf16 *w, size_t ldw, int n_cols, int k) {
    for (int i = 0; i < k; i++) {
        float *dst = panel + (size_t)i * panel_cols;
        int c = 0;
        for (; c < n_cols; c++)
            dst[c] = bf16_to_f32(w[(size_t)c * ldw + i]);
        for (; c < panel_cols; c++)
            dst[c] = 0.0f;
    }
}

#define GELU_BETA 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_KAPPA 0.044715f

static void gelu_scalar(float *out, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        float x = gate[i], u = GELU_BETA * (x + GELU_KAPPA * x * x * x);
        float g = x / (1.0f + expf(-2.0f * u));
        out[i] = up ? g * up[i] : g;
    }
}

static void pack_panel8(float *panel, const bf16 *w, size_t ldw, int n_cols, int k) {
    pack_panel_generic(panel, 8, w, ldw, n_cols, k);
}

static const SimdOps ops_scalar = {
    .name = "scalar",
    .dot_bf16 = dot_bf16_scalar,
    .gemv4_bf16 = gemv4_bf16_scalar,
    .dot_f32 = dot_f32_scalar,
    .axpy_f32 = axpy_f32_scalar,
    .scale_f32 = scale_f32_scalar,
    .tile4x4_bf16 = tile4x4_bf16_scalar,
    .gemm_panel = gemm_panel_scalar,
    .panel_cols = 8,
    .pack_panel = pack_panel8,
    .gelu = gelu_scalar,
};

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* ---- AVX2 + FMA (8 lanes) */
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 load8_bf16(const bf16 *w) {
    __m128i h = _mm_loadu_si128((const __m128i *)w);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static float dot_bf16_avx2(const float *x, const bf16 *w, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), load8_bf16(w + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), load8_bf16(w + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), load8_bf16(w + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), load8_bf16(w + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), load8_bf16(w + i), a0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++)
        s += x[i] * bf16_to_f32(w[i]);
    return s;
}

/* Software prefetch for the decode GEMV, two schemes by row length:
 * - long rows (n > GEMV_LINEAR_MAX_N): each of the 4 row streams is fetched
 *   GEMV_PREFETCH inputs ahead of its loads; near a row's end the stream
 *   continues into the same row of the next 4-row pass (w + 4 ldw).
 * - short rows: the 4 rows of a pass are one contiguous block (ldw == n in
 *   matmul_rows), so the block and the next are fetched in address order,
 *   GEMV_LINEAR_AHEAD bytes ahead of the pass's start, 4 lines per 32 inputs
 *   (exactly the pass's bytes per pass). Measured on Zen 3 with 2 threads
 *   (bench/results/2026-12-07-gemv-prefetch.md): the 270M head (640 inputs)
 *   13 -> 18 GB/s, the row-stream scheme stays ahead from 2560 inputs on.
 * A thread's rows are one contiguous span, so both run ahead over the bytes
 * it reads next (the last pass prefetches a little past the span: harmless,
 * prefetches do not fault). Prefetching changes no result. */
#ifndef GEMV_PREFETCH
#define GEMV_PREFETCH 512 /* inputs (1 KiB per row, 4 KiB per pass); -D to tune, 0 = off */
#endif
#define GEMV_LINEAR_MAX_N 2048
#define GEMV_LINEAR_AHEAD 4096 /* bytes */

/* 4 rows x 2 accumulators: 8 independent FMA chains, one x load per 4 rows.
 * Per row: a sums inputs i % 16 < 8, b the others, each in order of i. */
AVX2 static void gemv4_bf16_avx2(float *y, const float *x, const bf16 *w, size_t ldw, int n) {
    const bf16 *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
#define GEMV4_AVX2_STEP(i)                                                                                   \
    do {                                                                                                     \
        __m256 xa = _mm256_loadu_ps(x + (i)), xb = _mm256_loadu_ps(x + (i) + 8);                             \
        a0 = _mm256_fmadd_ps(xa, load8_bf16(w0 + (i)), a0);                                                  \
        b0 = _mm256_fmadd_ps(xb, load8_bf16(w0 + (i) + 8), b0);                                              \
        a1 = _mm256_fmadd_ps(xa, load8_bf16(w1 + (i)), a1);                                                  \
        b1 = _mm256_fmadd_ps(xb, load8_bf16(w1 + (i) + 8), b1);                                              \
        a2 = _mm256_fmadd_ps(xa, load8_bf16(w2 + (i)), a2);                                                  \
        b2 = _mm256_fmadd_ps(xb, load8_bf16(w2 + (i) + 8), b2);                                              \
        a3 = _mm256_fmadd_ps(xa, load8_bf16(w3 + (i)), a3);                                                  \
        b3 = _mm256_fmadd_ps(xb, load8_bf16(w3 + (i) + 8), b3);                                              \
    } while (0)
    int i = 0;
#if GEMV_PREFETCH > 0
    if (n <= GEMV_LINEAR_MAX_N) {
        /* 32 inputs of 4 rows = 256 bytes of the pass per step, fetched in address order */
        const char *ahead = (const char *)w + GEMV_LINEAR_AHEAD;
        for (; i + 32 <= n; i += 32) {
            const char *line = ahead + (size_t)i * 8;
            _mm_prefetch(line, _MM_HINT_T0);
            _mm_prefetch(line + 64, _MM_HINT_T0);
            _mm_prefetch(line + 128, _MM_HINT_T0);
            _mm_prefetch(line + 192, _MM_HINT_T0);
            GEMV4_AVX2_STEP(i);
            GEMV4_AVX2_STEP(i + 16);
        }
    }
    /* long rows: 32 inputs (one 64-byte line per row) per step, one prefetch per row */
    const bf16 *p0 = w0 + GEMV_PREFETCH, *p1 = w1 + GEMV_PREFETCH, *p2 = w2 + GEMV_PREFETCH,
               *p3 = w3 + GEMV_PREFETCH;
    for (; i + 32 <= n; i += 32) {
        ptrdiff_t d = i + GEMV_PREFETCH < n ? 0 : (ptrdiff_t)(4 * ldw - (size_t)n);
        _mm_prefetch((const char *)(p0 + i + d), _MM_HINT_T0);
        _mm_prefetch((const char *)(p1 + i + d), _MM_HINT_T0);
        _mm_prefetch((const char *)(p2 + i + d), _MM_HINT_T0);
        _mm_prefetch((const char *)(p3 + i + d), _MM_HINT_T0);
        GEMV4_AVX2_STEP(i);
        GEMV4_AVX2_STEP(i + 16);
    }
#endif
    for (; i + 16 <= n; i += 16)
        GEMV4_AVX2_STEP(i);
#undef GEMV4_AVX2_STEP
    for (; i + 8 <= n; i += 8) {
        __m256 xa = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(xa, load8_bf16(w0 + i), a0), a1 = _mm256_fmadd_ps(xa, load8_bf16(w1 + i), a1);
        a2 = _mm256_fmadd_ps(xa, load8_bf16(w2 + i), a2), a3 = _mm256_fmadd_ps(xa, load8_bf16(w3 + i), a3);
    }
    float s[4] = {hsum8(_mm256_add_ps(a0, b0)), hsum8(_mm256_add_ps(a1, b1)), hsum8(_mm256_add_ps(a2, b2)),
                  hsum8(_mm256_add_ps(a3, b3))};
    for (; i < n; i++)
        for (int o = 0; o < 4; o++)
            s[o] += x[i] * bf16_to_f32(w[o * ldw + i]);
    for (int o = 0; o < 4; o++)
        y[o] = s[o];
}

AVX2 static float dot_f32_avx2(const float *a, const float *b, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
    float s = hsum8(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

AVX2 static void axpy_f32_avx2(float *y, float a, const float *x, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

AVX2 static void scale_f32_avx2(float *y, float s, int n) {
    __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(vs, _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] *= s;
}

/* 2 tokens x 4 weight rows per pass keeps 8 accumulators in registers. */
AVX2 static void tile2x4_bf16_avx2(float *y, int ldy, const float *x, int ldx, const bf16 *w, int ldw,
                                   int n) {
    __m256 acc[2][4];
    for (int t = 0; t < 2; t++)
        for (int o = 0; o < 4; o++)
            acc[t][o] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 w0 = load8_bf16(w + i), w1 = load8_bf16(w + ldw + i);
        __m256 w2 = load8_bf16(w + 2 * (size_t)ldw + i), w3 = load8_bf16(w + 3 * (size_t)ldw + i);
        for (int t = 0; t < 2; t++) {
            __m256 xv = _mm256_loadu_ps(x + (size_t)t * ldx + i);
            acc[t][0] = _mm256_fmadd_ps(xv, w0, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(xv, w1, acc[t][1]);
            acc[t][2] = _mm256_fmadd_ps(xv, w2, acc[t][2]);
            acc[t][3] = _mm256_fmadd_ps(xv, w3, acc[t][3]);
        }
    }
    for (int t = 0; t < 2; t++)
        for (int o = 0; o < 4; o++) {
            float s = hsum8(acc[t][o]);
            for (int j = i; j < n; j++)
                s += x[(size_t)t * ldx + j] * bf16_to_f32(w[(size_t)o * ldw + j]);
            y[t * ldy + o] = s;
        }
}

AVX2 static void tile4x4_bf16_avx2(float *y, int ldy, const float *x, int ldx, const bf16 *w, int ldw,
                                   int n) {
    tile2x4_bf16_avx2(y, ldy, x, ldx, w, ldw, n);
    tile2x4_bf16_avx2(y + 2 * ldy, ldy, x + 2 * (size_t)ldx, ldx, w, ldw, n);
}

/* 6 token rows x 16 panel columns: 12 accumulators in registers. Fewer rows run
 * the same 6-row loop with the missing rows reading row 0 again (not stored): each
 * stored sum is the same FMA chain in order of i. A full panel (n_cols == 16) loads
 * and stores y plainly: masked stores (vmaskmovps) are microcoded and slow on AMD
 * Zen, ~10% of a 4B prefill when every tile used them. */
AVX2 static void gemm_panel_avx2(float *y, int ldy, const float *x, int ldx, const float *panel, int rows,
                                 int k, int n_cols, int accumulate) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n_cols), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n_cols - 8), lane);
    const int full = n_cols == 16;
    __m256 acc[GEMM_ROWS][2];
    const float *xr[GEMM_ROWS];
    for (int r = 0; r < GEMM_ROWS; r++) {
        xr[r] = x + (size_t)(r < rows ? r : 0) * ldx;
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        if (accumulate && r < rows) {
            float *yr = y + (size_t)r * ldy;
            acc[r][0] = full ? _mm256_loadu_ps(yr) : _mm256_maskload_ps(yr, m0);
            acc[r][1] = full ? _mm256_loadu_ps(yr + 8) : _mm256_maskload_ps(yr + 8, m1);
        }
    }
    /* named accumulators: with acc[][] the compiler stored all 12 to the stack every step
     * (store-bound at half the FMA rate) */
    const float *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3], *x4 = xr[4], *x5 = xr[5];
    __m256 c00 = acc[0][0], c01 = acc[0][1], c10 = acc[1][0], c11 = acc[1][1], c20 = acc[2][0],
           c21 = acc[2][1];
    __m256 c30 = acc[3][0], c31 = acc[3][1], c40 = acc[4][0], c41 = acc[4][1], c50 = acc[5][0],
           c51 = acc[5][1];
    for (int i = 0; i < k; i++) {
        __m256 w0 = _mm256_loadu_ps(panel + (size_t)i * 16), w1 = _mm256_loadu_ps(panel + (size_t)i * 16 + 8);
        __m256 b;
        b = _mm256_broadcast_ss(x0 + i), c00 = _mm256_fmadd_ps(b, w0, c00), c01 = _mm256_fmadd_ps(b, w1, c01);
        b = _mm256_broadcast_ss(x1 + i), c10 = _mm256_fmadd_ps(b, w0, c10), c11 = _mm256_fmadd_ps(b, w1, c11);
        b = _mm256_broadcast_ss(x2 + i), c20 = _mm256_fmadd_ps(b, w0, c20), c21 = _mm256_fmadd_ps(b, w1, c21);
        b = _mm256_broadcast_ss(x3 + i), c30 = _mm256_fmadd_ps(b, w0, c30), c31 = _mm256_fmadd_ps(b, w1, c31);
        b = _mm256_broadcast_ss(x4 + i), c40 = _mm256_fmadd_ps(b, w0, c40), c41 = _mm256_fmadd_ps(b, w1, c41);
        b = _mm256_broadcast_ss(x5 + i), c50 = _mm256_fmadd_ps(b, w0, c50), c51 = _mm256_fmadd_ps(b, w1, c51);
    }
    acc[0][0] = c00, acc[0][1] = c01, acc[1][0] = c10, acc[1][1] = c11, acc[2][0] = c20, acc[2][1] = c21;
    acc[3][0] = c30, acc[3][1] = c31, acc[4][0] = c40, acc[4][1] = c41, acc[5][0] = c50, acc[5][1] = c51;
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * ldy;
        if (full) {
            _mm256_storeu_ps(yr, acc[r][0]);
            _mm256_storeu_ps(yr + 8, acc[r][1]);
        } else {
            _mm256_maskstore_ps(yr, m0, acc[r][0]);
            _mm256_maskstore_ps(yr + 8, m1, acc[r][1]);
        }
    }
}

/* 16-column panel, 8 inputs x 8 columns at a time: 8 row loads widened to
 * fp32, an 8 x 8 transpose in registers, 8 stores (the widening is exact). */
AVX2 static void pack_panel16_avx2(float *panel, const bf16 *w, size_t ldw, int n_cols, int k) {
    int i = 0;
    for (; i + 8 <= k; i += 8)
        for (int h = 0; h < 2; h++) {
            __m256 v[8];
            for (int j = 0; j < 8; j++)
                v[j] =
                    8 * h + j < n_cols ? load8_bf16(w + (size_t)(8 * h + j) * ldw + i) : _mm256_setzero_ps();
            __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
            __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
            __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
            __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = panel + (size_t)i * 16 + 8 * h;
            _mm256_storeu_ps(d + 0 * 16, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + 1 * 16, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * 16, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * 16, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * 16, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * 16, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * 16, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * 16, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    if (i < k)
        pack_panel_generic(panel + (size_t)i * 16, 16, w + i, ldw, n_cols, k - i);
}

/* exp(x) for 8 lanes: the AVX-512 exp16 below lane for lane (Cephes' expf, the same
 * operations; 2^n applied by building the float 2^n, exact for n in [-126, 127]). */
AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* As gelu_avx512, 8 lanes at a time (the tail through a zero-padded copy). */
AVX2 static void gelu_avx2(float *out, const float *gate, const float *up, int n) {
    const __m256 beta = _mm256_set1_ps(GELU_BETA), kappa = _mm256_set1_ps(GELU_KAPPA);
    const __m256 one = _mm256_set1_ps(1.0f), minus2 = _mm256_set1_ps(-2.0f);
    for (int i = 0; i < n; i += 8) {
        int m = n - i < 8 ? n - i : 8;
        float xg[8] = {0}, xu[8] = {0}, res[8];
        const float *g = gate + i, *u = up ? up + i : NULL;
        if (m < 8) {
            memcpy(xg, g, (size_t)m * sizeof *xg), g = xg;
            if (u)
                memcpy(xu, u, (size_t)m * sizeof *xu), u = xu;
        }
        __m256 x = _mm256_loadu_ps(g);
        __m256 v = _mm256_mul_ps(beta, _mm256_fmadd_ps(_mm256_mul_ps(kappa, x), _mm256_mul_ps(x, x), x));
        __m256 y = _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_mul_ps(minus2, v))));
        if (u)
            y = _mm256_mul_ps(y, _mm256_loadu_ps(u));
        if (m == 8)
            _mm256_storeu_ps(out + i, y);
        else {
            _mm256_storeu_ps(res, y);
            memcpy(out + i, res, (size_t)m * sizeof *res);
        }
    }
}

static const SimdOps ops_avx2 = {
    .name = "avx2",
    .dot_bf16 = dot_bf16_avx2,
    .gemv4_bf16 = gemv4_bf16_avx2,
    .dot_f32 = dot_f32_avx2,
    .axpy_f32 = axpy_f32_avx2,
    .scale_f32 = scale_f32_avx2,
    .tile4x4_bf16 = tile4x4_bf16_avx2,
    .gemm_panel = gemm_panel_avx2,
    .panel_cols = 16,
    .pack_panel = pack_panel16_avx2,
    .gelu = gelu_avx2,
};

/* ---- AVX-512 (16 lanes) */
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

AVX512 static inline __m512 load16_bf16(const bf16 *w) {
    __m256i h = _mm256_loadu_si256((const __m256i *)w);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AVX512 static inline __m512 load16_bf16_masked(const bf16 *w, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, w);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AVX512 static float dot_bf16_avx512(const float *x, const bf16 *w, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), load16_bf16(w + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), load16_bf16(w + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), load16_bf16(w + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), load16_bf16(w + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16)
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), load16_bf16(w + i), a0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), load16_bf16_masked(w + i, m), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* 4 rows x 2 accumulators (8 FMA chains), 32 inputs per step: one pair of x
 * loads serves the 4 rows. The tail is masked. */
AVX512 static void gemv4_bf16_avx512(float *y, const float *x, const bf16 *w, size_t ldw, int n) {
    const bf16 *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int i = 0;
    /* Short rows (<= 8 KiB) end before the hardware prefetcher is up to speed: fetch the
     * next 4 rows (the caller's next pass) at the same offset, so their streams start
     * warm. Measured on Zen 4: +10% on 2560-wide rows, -15% on 10240-wide ones (hence the limit). */
    const int prefetch_next = n <= 4096;
    for (; i + 32 <= n; i += 32) {
        if (prefetch_next) {
            _mm_prefetch((const char *)(w0 + 4 * ldw + i), _MM_HINT_T0);
            _mm_prefetch((const char *)(w1 + 4 * ldw + i), _MM_HINT_T0);
            _mm_prefetch((const char *)(w2 + 4 * ldw + i), _MM_HINT_T0);
            _mm_prefetch((const char *)(w3 + 4 * ldw + i), _MM_HINT_T0);
        }
        __m512 xa = _mm512_loadu_ps(x + i), xb = _mm512_loadu_ps(x + i + 16);
        a0 = _mm512_fmadd_ps(xa, load16_bf16(w0 + i), a0),
        b0 = _mm512_fmadd_ps(xb, load16_bf16(w0 + i + 16), b0);
        a1 = _mm512_fmadd_ps(xa, load16_bf16(w1 + i), a1),
        b1 = _mm512_fmadd_ps(xb, load16_bf16(w1 + i + 16), b1);
        a2 = _mm512_fmadd_ps(xa, load16_bf16(w2 + i), a2),
        b2 = _mm512_fmadd_ps(xb, load16_bf16(w2 + i + 16), b2);
        a3 = _mm512_fmadd_ps(xa, load16_bf16(w3 + i), a3),
        b3 = _mm512_fmadd_ps(xb, load16_bf16(w3 + i + 16), b3);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 xa = _mm512_maskz_loadu_ps(m, x + i);
        a0 = _mm512_fmadd_ps(xa, load16_bf16_masked(w0 + i, m), a0);
        a1 = _mm512_fmadd_ps(xa, load16_bf16_masked(w1 + i, m), a1);
        a2 = _mm512_fmadd_ps(xa, load16_bf16_masked(w2 + i, m), a2);
        a3 = _mm512_fmadd_ps(xa, load16_bf16_masked(w3 + i, m), a3);
    }
    y[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0));
    y[1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1));
    y[2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2));
    y[3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3));
}

AVX512 static float dot_f32_avx512(const float *a, const float *b, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), a1);
    }
    for (; i + 16 <= n; i += 16)
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), a0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

AVX512 static void axpy_f32_avx512(float *y, float a, const float *x, int n) {
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 r = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

AVX512 static void scale_f32_avx512(float *y, float s, int n) {
    __m512 vs = _mm512_set1_ps(s);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(vs, _mm512_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] *= s;
}

/* Sums each of 16 vectors with a transpose-add tree; the sum of v[4k + j]
 * lands in element 4j + k. */
AVX512 static inline __m512 reduce16(__m512 v[16]) {
    /* pairwise: lanes of (a, b) folded so that halves interleave, 4 levels */
    __m512 l1[8], l2[4], l3[2];
    for (int i = 0; i < 8; i++) {
        __m512 a = v[2 * i], b = v[2 * i + 1];
        /* 256-bit halves: lo = a.lo256 + a.hi256 | b.lo256 + b.hi256 */
        __m512 x = _mm512_shuffle_f32x4(a, b, 0x44); /* a0 a1 b0 b1 (128-bit lanes) */
        __m512 y = _mm512_shuffle_f32x4(a, b, 0xEE); /* a2 a3 b2 b3 */
        l1[i] = _mm512_add_ps(x, y);                 /* [a01+a23 | b01+b23] as 4 lanes of 4 */
    }
    for (int i = 0; i < 4; i++) {
        __m512 a = l1[2 * i], b = l1[2 * i + 1];
        __m512 x = _mm512_shuffle_f32x4(a, b, 0x88); /* a0 a2 b0 b2 */
        __m512 y = _mm512_shuffle_f32x4(a, b, 0xDD); /* a1 a3 b1 b3 */
        l2[i] = _mm512_add_ps(x, y);                 /* each 128-bit lane: 4 partial sums of one vector */
    }
    for (int i = 0; i < 2; i++) {
        __m512 a = l2[2 * i], b = l2[2 * i + 1];
        __m512 x = _mm512_shuffle_ps(a, b, 0x44); /* a0 a1 b0 b1 per 128-bit lane */
        __m512 y = _mm512_shuffle_ps(a, b, 0xEE); /* a2 a3 b2 b3 */
        l3[i] = _mm512_add_ps(x, y);
    }
    __m512 x = _mm512_shuffle_ps(l3[0], l3[1], 0x88);
    __m512 y = _mm512_shuffle_ps(l3[0], l3[1], 0xDD);
    return _mm512_add_ps(x, y);
}

/* 4 tokens x 4 weight rows: 16 accumulators of the 32 registers (written out
 * so the compiler keeps them in registers). */
AVX512 static void tile4x4_bf16_avx512(float *y, int ldy, const float *x, int ldx, const bf16 *w, int ldw,
                                       int n) {
    const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * (size_t)ldx, *x3 = x + 3 * (size_t)ldx;
    const bf16 *w0p = w, *w1p = w + ldw, *w2p = w + 2 * (size_t)ldw, *w3p = w + 3 * (size_t)ldw;
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
    __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    __m512 a30 = a00, a31 = a00, a32 = a00, a33 = a00;
#define TILE_STEP(LOADW, LOADX)                                                                              \
    do {                                                                                                     \
        __m512 w0 = LOADW(w0p + i), w1 = LOADW(w1p + i), w2 = LOADW(w2p + i), w3 = LOADW(w3p + i);           \
        __m512 xv = LOADX(x0 + i);                                                                           \
        a00 = _mm512_fmadd_ps(xv, w0, a00), a01 = _mm512_fmadd_ps(xv, w1, a01);                              \
        a02 = _mm512_fmadd_ps(xv, w2, a02), a03 = _mm512_fmadd_ps(xv, w3, a03);                              \
        xv = LOADX(x1 + i);                                                                                  \
        a10 = _mm512_fmadd_ps(xv, w0, a10), a11 = _mm512_fmadd_ps(xv, w1, a11);                              \
        a12 = _mm512_fmadd_ps(xv, w2, a12), a13 = _mm512_fmadd_ps(xv, w3, a13);                              \
        xv = LOADX(x2 + i);                                                                                  \
        a20 = _mm512_fmadd_ps(xv, w0, a20), a21 = _mm512_fmadd_ps(xv, w1, a21);                              \
        a22 = _mm512_fmadd_ps(xv, w2, a22), a23 = _mm512_fmadd_ps(xv, w3, a23);                              \
        xv = LOADX(x3 + i);                                                                                  \
        a30 = _mm512_fmadd_ps(xv, w0, a30), a31 = _mm512_fmadd_ps(xv, w1, a31);                              \
        a32 = _mm512_fmadd_ps(xv, w2, a32), a33 = _mm512_fmadd_ps(xv, w3, a33);                              \
    } while (0)
    int i = 0;
    for (; i + 16 <= n; i += 16)
        TILE_STEP(load16_bf16, _mm512_loadu_ps);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
#define LOADW_M(p) load16_bf16_masked((p), m)
#define LOADX_M(p) _mm512_maskz_loadu_ps(m, (p))
        TILE_STEP(LOADW_M, LOADX_M);
#undef LOADW_M
#undef LOADX_M
    }
#undef TILE_STEP
    __m512 acc[16] = {a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33};
    float sums[16];
    _mm512_storeu_ps(sums, reduce16(acc));
    for (int t = 0; t < 4; t++)
        for (int o = 0; o < 4; o++)
            y[t * ldy + o] = sums[o * 4 + t]; /* reduce16 leaves sum(v[4k + j]) at 4j + k */
}

/* 6 token rows x 32 panel columns: 12 accumulators, a broadcast per row and
 * two panel loads per step; no horizontal sums. */
AVX512 static void gemm_panel_avx512(float *y, int ldy, const float *x, int ldx, const float *panel, int rows,
                                     int k, int n_cols, int accumulate) {
    __mmask16 m0 = n_cols >= 16 ? 0xffff : (__mmask16)((1u << n_cols) - 1);
    __mmask16 m1 = n_cols >= 32 ? 0xffff : n_cols <= 16 ? 0 : (__mmask16)((1u << (n_cols - 16)) - 1);
    if (rows == GEMM_ROWS) {
        const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * (size_t)ldx, *x3 = x + 3 * (size_t)ldx;
        const float *x4 = x + 4 * (size_t)ldx, *x5 = x + 5 * (size_t)ldx;
        __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        if (accumulate) {
#define LOADY(r, a0, a1)                                                                                     \
    a0 = _mm512_maskz_loadu_ps(m0, y + (size_t)(r)*ldy),                                                     \
    a1 = _mm512_maskz_loadu_ps(m1, y + (size_t)(r)*ldy + 16)
            LOADY(0, c00, c01);
            LOADY(1, c10, c11);
            LOADY(2, c20, c21);
            LOADY(3, c30, c31);
            LOADY(4, c40, c41);
            LOADY(5, c50, c51);
#undef LOADY
        }
        for (int i = 0; i < k; i++) {
            __m512 w0 = _mm512_loadu_ps(panel + (size_t)i * 32),
                   w1 = _mm512_loadu_ps(panel + (size_t)i * 32 + 16);
            __m512 b;
            b = _mm512_set1_ps(x0[i]), c00 = _mm512_fmadd_ps(b, w0, c00), c01 = _mm512_fmadd_ps(b, w1, c01);
            b = _mm512_set1_ps(x1[i]), c10 = _mm512_fmadd_ps(b, w0, c10), c11 = _mm512_fmadd_ps(b, w1, c11);
            b = _mm512_set1_ps(x2[i]), c20 = _mm512_fmadd_ps(b, w0, c20), c21 = _mm512_fmadd_ps(b, w1, c21);
            b = _mm512_set1_ps(x3[i]), c30 = _mm512_fmadd_ps(b, w0, c30), c31 = _mm512_fmadd_ps(b, w1, c31);
            b = _mm512_set1_ps(x4[i]), c40 = _mm512_fmadd_ps(b, w0, c40), c41 = _mm512_fmadd_ps(b, w1, c41);
            b = _mm512_set1_ps(x5[i]), c50 = _mm512_fmadd_ps(b, w0, c50), c51 = _mm512_fmadd_ps(b, w1, c51);
        }
#define STOREY(r, a0, a1)                                                                                    \
    _mm512_mask_storeu_ps(y + (size_t)(r)*ldy, m0, a0),                                                      \
        _mm512_mask_storeu_ps(y + (size_t)(r)*ldy + 16, m1, a1)
        STOREY(0, c00, c01);
        STOREY(1, c10, c11);
        STOREY(2, c20, c21);
        STOREY(3, c30, c31);
        STOREY(4, c40, c41);
        STOREY(5, c50, c51);
#undef STOREY
        return;
    }
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * ldy;
        const float *xr = x + (size_t)r * ldx;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        if (accumulate)
            a0 = _mm512_maskz_loadu_ps(m0, yr), a1 = _mm512_maskz_loadu_ps(m1, yr + 16);
        for (int i = 0; i < k; i++) {
            __m512 b = _mm512_set1_ps(xr[i]);
            a0 = _mm512_fmadd_ps(b, _mm512_loadu_ps(panel + (size_t)i * 32), a0);
            a1 = _mm512_fmadd_ps(b, _mm512_loadu_ps(panel + (size_t)i * 32 + 16), a1);
        }
        _mm512_mask_storeu_ps(yr, m0, a0);
        _mm512_mask_storeu_ps(yr + 16, m1, a1);
    }
}

/* 32-column panel: one 32-bit gather takes w[c][i..i+1] of 16 rows; its low
 * halves are column i, its high halves column i + 1. */
AVX512 static void pack_panel32_avx512(float *panel, const bf16 *w, size_t ldw, int n_cols, int k) {
    if (ldw * 2 * 31 > 0x7fffffffu) {
        pack_panel_generic(panel, 32, w, ldw, n_cols, k);
        return;
    }
    __m512i offsets =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32((int)(ldw * 2)));
    __mmask16 m0 = n_cols >= 16 ? 0xffff : (__mmask16)((1u << n_cols) - 1);
    __mmask16 m1 = n_cols >= 32 ? 0xffff : n_cols <= 16 ? 0 : (__mmask16)((1u << (n_cols - 16)) - 1);
    const char *base0 = (const char *)w, *base1 = (const char *)(w + 16 * ldw);
    __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    int i = 0;
    for (; i + 2 <= k; i += 2) {
        __m512i g0 =
            _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m0, offsets, base0 + 2 * (size_t)i, 1);
        __m512i g1 =
            m1 ? _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m1, offsets, base1 + 2 * (size_t)i, 1)
               : _mm512_setzero_si512();
        float *d = panel + (size_t)i * 32;
        _mm512_storeu_ps(d, _mm512_castsi512_ps(_mm512_slli_epi32(g0, 16)));
        _mm512_storeu_ps(d + 16, _mm512_castsi512_ps(_mm512_slli_epi32(g1, 16)));
        _mm512_storeu_ps(d + 32, _mm512_castsi512_ps(_mm512_and_si512(g0, hi_mask)));
        _mm512_storeu_ps(d + 48, _mm512_castsi512_ps(_mm512_and_si512(g1, hi_mask)));
    }
    if (i < k)
        pack_panel_generic(panel + (size_t)i * 32, 32, w + i, ldw, n_cols, k - i);
}

/* exp(x) for 16 lanes: Cephes' expf (x = n ln2 + r, degree-6 polynomial in r,
 * times 2^n); about 1 ulp over the clamped range [-87.3, 88.3]. */
AVX512 static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

AVX512 static void gelu_avx512(float *out, const float *gate, const float *up, int n) {
    const __m512 beta = _mm512_set1_ps(GELU_BETA), kappa = _mm512_set1_ps(GELU_KAPPA);
    const __m512 one = _mm512_set1_ps(1.0f), minus2 = _mm512_set1_ps(-2.0f);
    int i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 x = _mm512_maskz_loadu_ps(m, gate + i);
        __m512 u = _mm512_mul_ps(beta, _mm512_fmadd_ps(_mm512_mul_ps(kappa, x), _mm512_mul_ps(x, x), x));
        __m512 g = _mm512_div_ps(x, _mm512_add_ps(one, exp16(_mm512_mul_ps(minus2, u))));
        if (up)
            g = _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, up + i));
        _mm512_mask_storeu_ps(out + i, m, g);
    }
}

static const SimdOps ops_avx512 = {
    .name = "avx512",
    .dot_bf16 = dot_bf16_avx512,
    .gemv4_bf16 = gemv4_bf16_avx512,
    .dot_f32 = dot_f32_avx512,
    .axpy_f32 = axpy_f32_avx512,
    .scale_f32 = scale_f32_avx512,
    .tile4x4_bf16 = tile4x4_bf16_avx512,
    .gemm_panel = gemm_panel_avx512,
    .panel_cols = 32,
    .pack_panel = pack_panel32_avx512,
    .gelu = gelu_avx512,
};

static int have_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int have_avx512(void) {
    __builtin_cpu_init();
    return have_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}
#endif

const SimdOps *simd_ops_named(const char *name) {
    if (!strcmp(name, "scalar"))
        return &ops_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
    if (!strcmp(name, "avx2"))
        return have_avx2() ? &ops_avx2 : NULL;
    if (!strcmp(name, "avx512"))
        return have_avx512() ? &ops_avx512 : NULL;
#endif
    return NULL;
}

static const SimdOps *chosen_ops;

static void choose_ops(void) {
    const char *forced = getenv("MEDGEMMA_SIMD");
    const SimdOps *ops = forced ? simd_ops_named(forced) : NULL;
#if defined(__x86_64__) && defined(__GNUC__)
    if (!ops && have_avx512())
        ops = &ops_avx512;
    if (!ops && have_avx2())
        ops = &ops_avx2;
#endif
    chosen_ops = ops ? ops : &ops_scalar;
}

const SimdOps *simd_ops(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose_ops);
    return chosen_ops;
}
