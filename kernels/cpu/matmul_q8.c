/* 8-bit weights (kernels.h, Q8Matrix): quantization at load and the GEMM / GEMV.
 *
 * Layout: panels of 32 weight rows; a panel holds its blocks of 32 inputs in
 * order, each block 1088 bytes:
 *   u[quad][c][4]  (8 quads x 32 columns x 4 bytes) = q + 128 as unsigned bytes
 *   d[c]           (32 fp16 scales)
 * so the inner loop reads one contiguous stream, and one 64-byte load holds
 * 4 inputs of 16 rows, the operand layout of AVX512-VNNI's vpdpbusd
 * (unsigned bytes x signed bytes, 4 products summed into each 32-bit lane).
 *
 * The activations are quantized per token and block like the weights (fp32
 * scale dx, signed bytes qx) and their sums kept, so
 *   sum_i qx_i q_i = sum_i qx_i (q_i + 128) - 128 sum_i qx_i
 * comes out of vpdpbusd exactly (integer arithmetic), then
 *   y += dx d (that sum) in fp32 block by block.
 * AVX2 (no VNNI) and plain C compute the same integers. Rows past the
 * matrix's end are padded with zero scales. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels/cpu/matmul_q8.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

#define QB 32                                /* inputs per block */
#define PANEL 32                             /* weight rows per panel */
#define BLOCK_BYTES (QB * PANEL + 2 * PANEL) /* 1024 weight bytes + 32 fp16 scales */
#define MAX_GEMV_IN 16384
#define K_BLOCKS 8 /* blocks per pass over a panel in the prompt GEMM: 8.5 KiB, stays in L1 */

/* float -> fp16, round to nearest even (subnormals and overflow to inf handled). */
static uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a >= 0x47800000u) /* >= 65536, inf, NaN */
        return (uint16_t)(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (a < 0x38800000u) { /* fp16 subnormal or zero: multiples of 2^-24 */
        float af;
        memcpy(&af, &a, sizeof af);
        return (uint16_t)(sign | (uint32_t)nearbyintf(af * 16777216.0f));
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static const char *forced_kernel; /* matmul_q8_force_kernel */

/* The SIMD level the q8 code runs at: the forced one (tests), else simd_ops()'s. */
static const char *q8_level(void) {
    return forced_kernel ? forced_kernel : simd_ops()->name;
}

/* ---- quantization at load */

typedef struct {
    Q8Matrix *m;
    const bf16 *w;
    int level; /* 2 = AVX-512, 1 = AVX2, 0 = plain C */
} QuantJob;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define Q512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define AVX2Q __attribute__((target("avx2,fma,f16c")))

/* One panel block, all 32 rows present: 16 lanes at a time, rounding to nearest even. */
Q512 static void quantize_block_avx512(uint8_t *blk, uint16_t *d16, const bf16 *w, size_t ldw) {
    for (int c = 0; c < PANEL; c++) {
        const bf16 *src = w + (size_t)c * ldw;
        __m512 v0 = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)src)), 16));
        __m512 v1 = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + 16))), 16));
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        d16[c] = f32_to_f16(d);
        __m512 vid = _mm512_set1_ps(id);
        __m512i off = _mm512_set1_epi32(128);
        __m512i q0 = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)), off);
        __m512i q1 = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v1, vid)), off);
        uint8_t b[32];
        _mm_storeu_si128((__m128i *)b, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(b + 16), _mm512_cvtepi32_epi8(q1));
        for (int q = 0; q < 8; q++)
            memcpy(blk + q * PANEL * 4 + c * 4, b + 4 * q, 4);
    }
}

/* The same block with AVX2, 8 lanes at a time (packs interleave the 128-bit lanes; the
 * permute puts the 4-byte groups back in order). */
AVX2Q static void quantize_block_avx2(uint8_t *blk, uint16_t *d16, const bf16 *w, size_t ldw) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), off = _mm256_set1_epi32(128);
    for (int c = 0; c < PANEL; c++) {
        const bf16 *src = w + (size_t)c * ldw;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            __m128i raw = _mm_loadu_si128((const __m128i *)(src + 8 * k));
            v[k] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
            m = _mm256_max_ps(m, _mm256_and_ps(v[k], abs_mask));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h);
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        d16[c] = f32_to_f16(d);
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[k], vid)), off);
        __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        uint8_t b[32];
        _mm256_storeu_si256((__m256i *)b, _mm256_permutevar8x32_epi32(bytes, order));
        for (int g = 0; g < 8; g++)
            memcpy(blk + g * PANEL * 4 + c * 4, b + 4 * g, 4);
    }
}
#endif

/* Panels [start, end). */
static void quantize_panels(void *ctx, int start, int end) {
    const QuantJob *j = ctx;
    const Q8Matrix *m = j->m;
    int nb = m->cols / QB;
    for (int p = start; p < end; p++)
        for (int b = 0; b < nb; b++) {
            uint8_t *blk = m->data + (size_t)p * m->panel_bytes + (size_t)b * BLOCK_BYTES;
            uint16_t d16[PANEL];
#if defined(__x86_64__) && defined(__GNUC__)
            if (j->level > 0 && (p + 1) * PANEL <= m->rows) {
                const bf16 *src = j->w + (size_t)p * PANEL * m->cols + b * QB;
                if (j->level == 2)
                    quantize_block_avx512(blk, d16, src, (size_t)m->cols);
                else
                    quantize_block_avx2(blk, d16, src, (size_t)m->cols);
                memcpy(blk + QB * PANEL, d16, sizeof d16);
                continue;
            }
#endif
            for (int c = 0; c < PANEL; c++) {
                int o = p * PANEL + c;
                float v[QB], amax = 0.0f;
                for (int i = 0; i < QB; i++) {
                    v[i] = o < m->rows ? bf16_to_f32(j->w[(size_t)o * m->cols + b * QB + i]) : 0.0f;
                    amax = fmaxf(amax, fabsf(v[i]));
                }
                float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
                d16[c] = f32_to_f16(d);
                for (int i = 0; i < QB; i++)
                    blk[(i / 4) * PANEL * 4 + c * 4 + i % 4] = (uint8_t)((int)nearbyintf(v[i] * id) + 128);
            }
            memcpy(blk + QB * PANEL, d16, sizeof d16);
        }
}

/* A matrix of 2 MiB or more starts on a huge page and its whole huge pages are
 * advised for THP (decode streams it once per token: fewer TLB misses; the
 * partial last one stays in 4 KiB pages, so no memory is added); smaller ones
 * are cache-line aligned. */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

static void *alloc_matrix(size_t bytes) {
    if (bytes < HUGE_PAGE_BYTES)
        return aligned_alloc(64, (bytes + 63) / 64 * 64);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE_BYTES, bytes) != 0)
        return NULL;
    madvise(p, bytes / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES, MADV_HUGEPAGE); /* advice: no THP, 4 KiB pages */
    return p;
}

int q8_quantize(Q8Matrix *m, const bf16 *w, int rows, int cols) {
    memset(m, 0, sizeof *m);
    if (rows < 1 || cols < QB || cols % QB != 0 || cols > MAX_GEMV_IN)
        return -1;
    int n_panels = (rows + PANEL - 1) / PANEL;
    size_t panel_bytes = (size_t)(cols / QB) * BLOCK_BYTES;
    m->data = alloc_matrix(panel_bytes * n_panels);
    if (!m->data)
        return -1;
    m->rows = rows;
    m->cols = cols;
    m->panel_bytes = panel_bytes;
    const char *level = q8_level();
    QuantJob job = {m, w, !strcmp(level, "avx512") ? 2 : !strcmp(level, "avx2") ? 1 : 0};
    parallel_for(n_panels, 1, quantize_panels, &job);
    return 0;
}

void q8_free(Q8Matrix *m) {
    free(m->data);
    memset(m, 0, sizeof *m);
}

size_t q8_bytes(const Q8Matrix *m) {
    return m->panel_bytes * (size_t)((m->rows + PANEL - 1) / PANEL);
}

/* ---- activations: per block of 32, dx = max |x| / 127, qx = round(x / dx); xc = -128 sum qx */

#if defined(__x86_64__) && defined(__GNUC__)
Q512 static void quantize_row_avx512(int8_t *qx, float *dx, int32_t *xc, const float *x, int n) {
    for (int b = 0; b < n / QB; b++) {
        __m512 v0 = _mm512_loadu_ps(x + b * QB), v1 = _mm512_loadu_ps(x + b * QB + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)),
                q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
        _mm_storeu_si128((__m128i *)(qx + b * QB), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(qx + b * QB + 16), _mm512_cvtepi32_epi8(q1));
        dx[b] = d;
        xc[b] = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

/* The same numbers with AVX2: |x| by clearing the sign bit, cvtps rounds to nearest even like
 * nearbyintf, and the 4 x 8 int32 are packed to bytes in order (packs interleave the 128-bit
 * lanes; the permute puts the 4-byte groups back). */
AVX2Q static void quantize_row_avx2(int8_t *qx, float *dx, int32_t *xc, const float *x, int n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int b = 0; b < n / QB; b++) {
        const float *v = x + b * QB;
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), v2 = _mm256_loadu_ps(v + 16),
               v3 = _mm256_loadu_ps(v + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask)),
                                 _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h);
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid)),
                q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid)),
                q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid)),
                q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
        __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
        _mm256_storeu_si256((__m256i *)(qx + b * QB), _mm256_permutevar8x32_epi32(bytes, order));
        __m256i sum8 = _mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3));
        __m128i sum4 = _mm_add_epi32(_mm256_castsi256_si128(sum8), _mm256_extracti128_si256(sum8, 1));
        sum4 = _mm_add_epi32(sum4, _mm_shuffle_epi32(sum4, 0x4e));
        sum4 = _mm_add_epi32(sum4, _mm_shuffle_epi32(sum4, 0xb1));
        dx[b] = d;
        xc[b] = -128 * _mm_cvtsi128_si32(sum4);
    }
}
#endif

static void quantize_row(int8_t *qx, float *dx, int32_t *xc, const float *x, int n) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (!strcmp(q8_level(), "avx512")) {
        quantize_row_avx512(qx, dx, xc, x, n);
        return;
    }
    if (!strcmp(q8_level(), "avx2")) {
        quantize_row_avx2(qx, dx, xc, x, n);
        return;
    }
#endif
    for (int b = 0; b < n / QB; b++) {
        const float *v = x + b * QB;
        float amax = 0.0f;
        for (int i = 0; i < QB; i++)
            amax = fmaxf(amax, fabsf(v[i]));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < QB; i++) {
            int q = (int)nearbyintf(v[i] * id);
            qx[b * QB + i] = (int8_t)q;
            sum += q;
        }
        dx[b] = d;
        xc[b] = -128 * sum;
    }
}

/* ---- kernels: rows (1..4) tokens x 32 columns over blocks [0, nb) of a panel;
 * y[r, c] = (accumulate ? y[r, c] : 0) + sum_b dx[r, b] d[c, b] sum_{i in b} qx[r, i] q[c, i].
 * ldq: bytes per token row of qx; lds: floats (ints) per row of dx (xc). */
typedef void (*Q8Kernel)(float *y, int ldy, const int8_t *qx, int ldq, const float *dx, const int32_t *xc,
                         int lds, const uint8_t *blocks, int nb, int rows, int n_cols, int accumulate);

static void kernel_scalar(float *y, int ldy, const int8_t *qx, int ldq, const float *dx, const int32_t *xc,
                          int lds, const uint8_t *blocks, int nb, int rows, int n_cols, int accumulate) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < n_cols; c++) {
            float acc = accumulate ? y[(size_t)r * ldy + c] : 0.0f;
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = blocks + (size_t)b * BLOCK_BYTES;
                const int8_t *xr = qx + (size_t)r * ldq + b * QB;
                int32_t s = 0;
                for (int i = 0; i < QB; i++)
                    s += (int32_t)xr[i] * ((int32_t)blk[(i / 4) * PANEL * 4 + c * 4 + i % 4] - 128);
                uint16_t d16;
                memcpy(&d16, blk + QB * PANEL + 2 * c, 2);
                acc += (float)s * (f16_to_f32(d16) * dx[(size_t)r * lds + b]);
            }
            y[(size_t)r * ldy + c] = acc;
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

/* One token row (R = 1 after inlining) x 32 columns: the decode GEMV. */
VNNI static inline __attribute__((always_inline)) void
kernel_vnni_r(float *y, int ldy, const int8_t *qx, int ldq, const float *dx, const int32_t *xc, int lds,
              const uint8_t *blocks, int nb, const int R, int n_cols, int accumulate) {
    __mmask16 m0 = n_cols >= 16 ? 0xffff : (__mmask16)((1u << n_cols) - 1);
    __mmask16 m1 = n_cols >= 32 ? 0xffff : n_cols <= 16 ? 0 : (__mmask16)((1u << (n_cols - 16)) - 1);
    __m512 out[4][2];
    for (int r = 0; r < R; r++) {
        out[r][0] = accumulate ? _mm512_maskz_loadu_ps(m0, y + (size_t)r * ldy) : _mm512_setzero_ps();
        out[r][1] = accumulate ? _mm512_maskz_loadu_ps(m1, y + (size_t)r * ldy + 16) : _mm512_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = blocks + (size_t)b * BLOCK_BYTES;
        __m512i acc[4][2];
        for (int r = 0; r < R; r++)
            acc[r][0] = acc[r][1] = _mm512_set1_epi32(xc[(size_t)r * lds + b]);
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
            __m512i w0 = _mm512_load_si512(blk + q * 128), w1 = _mm512_load_si512(blk + q * 128 + 64);
            for (int r = 0; r < R; r++) {
                int32_t quad;
                memcpy(&quad, qx + (size_t)r * ldq + b * QB + q * 4, 4);
                __m512i bx = _mm512_set1_epi32(quad);
                acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], w0, bx);
                acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], w1, bx);
            }
        }
        __m512 d0 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(blk + QB * PANEL)));
        __m512 d1 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(blk + QB * PANEL + 32)));
        for (int r = 0; r < R; r++) {
            __m512 s = _mm512_set1_ps(dx[(size_t)r * lds + b]);
            out[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][0]), _mm512_mul_ps(d0, s), out[r][0]);
            out[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][1]), _mm512_mul_ps(d1, s), out[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm512_mask_storeu_ps(y + (size_t)r * ldy, m0, out[r][0]);
        _mm512_mask_storeu_ps(y + (size_t)r * ldy + 16, m1, out[r][1]);
    }
}

/* 4 token rows x 32 columns, written out so that the 8 integer and 8 float
 * accumulators stay in registers. */
VNNI static void kernel_vnni4(float *y, int ldy, const int8_t *qx, int ldq, const float *dx,
                              const int32_t *xc, int lds, const uint8_t *blocks, int nb, int n_cols,
                              int accumulate) {
    __mmask16 m0 = n_cols >= 16 ? 0xffff : (__mmask16)((1u << n_cols) - 1);
    __mmask16 m1 = n_cols >= 32 ? 0xffff : n_cols <= 16 ? 0 : (__mmask16)((1u << (n_cols - 16)) - 1);
    __m512 o00, o01, o10, o11, o20, o21, o30, o31;
#define Q8_INIT(r, a, b)                                                                                     \
    a = accumulate ? _mm512_maskz_loadu_ps(m0, y + (size_t)(r)*ldy) : _mm512_setzero_ps();                   \
    b = accumulate ? _mm512_maskz_loadu_ps(m1, y + (size_t)(r)*ldy + 16) : _mm512_setzero_ps()
    Q8_INIT(0, o00, o01);
    Q8_INIT(1, o10, o11);
    Q8_INIT(2, o20, o21);
    Q8_INIT(3, o30, o31);
#undef Q8_INIT
    const int8_t *x0 = qx, *x1 = qx + ldq, *x2 = qx + 2 * (size_t)ldq, *x3 = qx + 3 * (size_t)ldq;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = blocks + (size_t)b * BLOCK_BYTES;
        __m512i a00 = _mm512_set1_epi32(xc[b]), a01 = a00;
        __m512i a10 = _mm512_set1_epi32(xc[lds + b]), a11 = a10;
        __m512i a20 = _mm512_set1_epi32(xc[2 * (size_t)lds + b]), a21 = a20;
        __m512i a30 = _mm512_set1_epi32(xc[3 * (size_t)lds + b]), a31 = a30;
        const int8_t *p0 = x0 + b * QB, *p1 = x1 + b * QB, *p2 = x2 + b * QB, *p3 = x3 + b * QB;
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
            __m512i w0 = _mm512_load_si512(blk + q * 128), w1 = _mm512_load_si512(blk + q * 128 + 64);
            int32_t v0, v1, v2, v3;
            memcpy(&v0, p0 + 4 * q, 4), memcpy(&v1, p1 + 4 * q, 4), memcpy(&v2, p2 + 4 * q, 4);
            memcpy(&v3, p3 + 4 * q, 4);
            __m512i b0 = _mm512_set1_epi32(v0), b1 = _mm512_set1_epi32(v1);
            __m512i b2 = _mm512_set1_epi32(v2), b3 = _mm512_set1_epi32(v3);
            a00 = _mm512_dpbusd_epi32(a00, w0, b0), a01 = _mm512_dpbusd_epi32(a01, w1, b0);
            a10 = _mm512_dpbusd_epi32(a10, w0, b1), a11 = _mm512_dpbusd_epi32(a11, w1, b1);
            a20 = _mm512_dpbusd_epi32(a20, w0, b2), a21 = _mm512_dpbusd_epi32(a21, w1, b2);
            a30 = _mm512_dpbusd_epi32(a30, w0, b3), a31 = _mm512_dpbusd_epi32(a31, w1, b3);
        }
        __m512 d0 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(blk + QB * PANEL)));
        __m512 d1 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(blk + QB * PANEL + 32)));
#define Q8_ACC(r, oa, ob, aa, ab)                                                                            \
    do {                                                                                                     \
        __m512 s_ = _mm512_set1_ps(dx[(size_t)(r)*lds + b]);                                                 \
        oa = _mm512_fmadd_ps(_mm512_cvtepi32_ps(aa), _mm512_mul_ps(d0, s_), oa);                             \
        ob = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ab), _mm512_mul_ps(d1, s_), ob);                             \
    } while (0)
        Q8_ACC(0, o00, o01, a00, a01);
        Q8_ACC(1, o10, o11, a10, a11);
        Q8_ACC(2, o20, o21, a20, a21);
        Q8_ACC(3, o30, o31, a30, a31);
#undef Q8_ACC
    }
#define Q8_STORE(r, a, b)                                                                                    \
    _mm512_mask_storeu_ps(y + (size_t)(r)*ldy, m0, a), _mm512_mask_storeu_ps(y + (size_t)(r)*ldy + 16, m1, b)
    Q8_STORE(0, o00, o01);
    Q8_STORE(1, o10, o11);
    Q8_STORE(2, o20, o21);
    Q8_STORE(3, o30, o31);
#undef Q8_STORE
}

VNNI static void kernel_vnni(float *y, int ldy, const int8_t *qx, int ldq, const float *dx, const int32_t *xc,
                             int lds, const uint8_t *blocks, int nb, int rows, int n_cols, int accumulate) {
    if (rows == 4) {
        kernel_vnni4(y, ldy, qx, ldq, dx, xc, lds, blocks, nb, n_cols, accumulate);
        return;
    }
    for (int r = 0; r < rows; r++)
        kernel_vnni_r(y + (size_t)r * ldy, ldy, qx + (size_t)r * ldq, ldq, dx + (size_t)r * lds,
                      xc + (size_t)r * lds, lds, blocks, nb, 1, n_cols, accumulate);
}

/* AVX2: bytes back to signed (u ^ 0x80 = q), |qx| x sign(q, qx) with
 * vpmaddubsw (pairs <= 2 * 127 * 127, no saturation), then vpmaddwd to 32 bits. */
AVX2Q static void kernel_avx2(float *y, int ldy, const int8_t *qx, int ldq, const float *dx,
                              const int32_t *xc, int lds, const uint8_t *blocks, int nb, int rows, int n_cols,
                              int accumulate) {
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * ldy;
        float tmp[32];
        for (int c = 0; c < 32; c++)
            tmp[c] = accumulate && c < n_cols ? yr[c] : 0.0f;
        /* named accumulators: arrays here were kept in memory by the compiler (a load and a
         * store per add) */
        __m256 o0 = _mm256_loadu_ps(tmp), o1 = _mm256_loadu_ps(tmp + 8), o2 = _mm256_loadu_ps(tmp + 16),
               o3 = _mm256_loadu_ps(tmp + 24);
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = blocks + (size_t)b * BLOCK_BYTES;
            __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
            for (int q = 0; q < 8; q++) {
                int32_t quad;
                memcpy(&quad, qx + (size_t)r * ldq + b * QB + q * 4, 4);
                __m256i bx = _mm256_set1_epi32(quad), ax = _mm256_abs_epi8(bx);
#define Q8_AVX2_STEP(h, acc)                                                                                 \
    do {                                                                                                     \
        __m256i w_ = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(blk + q * 128 + (h)*32)), flip);   \
        __m256i p_ = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w_, bx));                                     \
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p_, ones));                                            \
    } while (0)
                Q8_AVX2_STEP(0, c0);
                Q8_AVX2_STEP(1, c1);
                Q8_AVX2_STEP(2, c2);
                Q8_AVX2_STEP(3, c3);
#undef Q8_AVX2_STEP
            }
            __m256 s = _mm256_set1_ps(dx[(size_t)r * lds + b]);
            const __m128i *d = (const __m128i *)(blk + QB * PANEL);
            o0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c0), _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128(d)), s),
                                 o0);
            o1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c1),
                                 _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128(d + 1)), s), o1);
            o2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c2),
                                 _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128(d + 2)), s), o2);
            o3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c3),
                                 _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128(d + 3)), s), o3);
        }
        _mm256_storeu_ps(tmp, o0), _mm256_storeu_ps(tmp + 8, o1);
        _mm256_storeu_ps(tmp + 16, o2), _mm256_storeu_ps(tmp + 24, o3);
        for (int c = 0; c < n_cols; c++)
            yr[c] = tmp[c];
    }
}

static int have_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni");
}
#endif

int matmul_q8_force_kernel(const char *name) {
    if (name && strcmp(name, "scalar") != 0) {
#if defined(__x86_64__) && defined(__GNUC__)
        if (!simd_ops_named(!strcmp(name, "avx512") ? "avx512" : "avx2") ||
            (!strcmp(name, "avx512") && !have_vnni()))
            return -1;
#else
        return -1;
#endif
    }
    forced_kernel = name;
    return 0;
}

/* The kernel for the SIMD level in force (MEDGEMMA_SIMD applies here too). */
static Q8Kernel pick_kernel(void) {
    const char *name = q8_level();
#if defined(__x86_64__) && defined(__GNUC__)
    if (!strcmp(name, "avx512") && have_vnni())
        return kernel_vnni;
    if (strcmp(name, "scalar") != 0)
        return kernel_avx2;
#endif
    return kernel_scalar;
}

/* ---- the GEMM / GEMV */

typedef struct {
    float *y;
    const Q8Matrix *w;
    const bf16 *bias;
    const int8_t *qx;
    const float *dx;
    const int32_t *xc;
    int n_rows, nb;
    Q8Kernel kernel;
} Q8Job;

static void q8_panels(void *ctx, int start, int end) {
    const Q8Job *j = ctx;
    const Q8Matrix *m = j->w;
    int K = m->cols;
    /* token rows per pass: their quantized activations stay in L2 (~256 KiB) */
    int tb = (256 << 10) / K / 4 * 4;
    tb = tb < 4 ? 4 : tb;
    for (int t0 = 0; t0 < j->n_rows; t0 += tb) {
        int t1 = t0 + tb < j->n_rows ? t0 + tb : j->n_rows;
        for (int p = start; p < end; p++) {
            int o = p * PANEL, n_cols = m->rows - o < PANEL ? m->rows - o : PANEL;
            const uint8_t *panel = m->data + (size_t)p * m->panel_bytes;
            int kb = j->n_rows < 4 ? j->nb : K_BLOCKS; /* decode: one pass over the panel */
            for (int b0 = 0; b0 < j->nb; b0 += kb) {
                int nbc = j->nb - b0 < kb ? j->nb - b0 : kb;
                for (int t = t0; t < t1; t += 4)
                    j->kernel(j->y + (size_t)t * m->rows + o, m->rows, j->qx + (size_t)t * K + b0 * QB, K,
                              j->dx + (size_t)t * j->nb + b0, j->xc + (size_t)t * j->nb + b0, j->nb,
                              panel + (size_t)b0 * BLOCK_BYTES, nbc, t1 - t < 4 ? t1 - t : 4, n_cols, b0 > 0);
            }
        }
    }
    if (j->bias) {
        int o1 = end * PANEL < m->rows ? end * PANEL : m->rows;
        for (int t = 0; t < j->n_rows; t++)
            for (int o = start * PANEL; o < o1; o++)
                j->y[(size_t)t * m->rows + o] += bf16_to_f32(j->bias[o]);
    }
}

typedef struct {
    const float *x;
    int8_t *qx;
    float *dx;
    int32_t *xc;
    int K;
} QuantRowsJob;

static void quantize_rows(void *ctx, int start, int end) {
    const QuantRowsJob *j = ctx;
    int nb = j->K / QB;
    for (int t = start; t < end; t++)
        quantize_row(j->qx + (size_t)t * j->K, j->dx + (size_t)t * nb, j->xc + (size_t)t * nb,
                     j->x + (size_t)t * j->K, j->K);
}

/* Quantized prompt activations, grown on demand; only the calling thread touches it. */
static void *scratch;
static size_t scratch_cap;

void matmul_q8_release(void) {
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
}

void matmul_q8(float *y, const float *x, const Q8Matrix *w, const bf16 *bias, int n_rows) {
    int K = w->cols, nb = K / QB;
    Q8Job job = {y, w, bias, NULL, NULL, NULL, n_rows, nb, pick_kernel()};
    int n_panels = (w->rows + PANEL - 1) / PANEL;
    if (n_rows < 4 && K <= MAX_GEMV_IN) {
        int8_t qx[3 * MAX_GEMV_IN] __attribute__((aligned(64)));
        float dx[3 * MAX_GEMV_IN / QB];
        int32_t xc[3 * MAX_GEMV_IN / QB];
        for (int t = 0; t < n_rows; t++)
            quantize_row(qx + (size_t)t * K, dx + (size_t)t * nb, xc + (size_t)t * nb, x + (size_t)t * K, K);
        job.qx = qx, job.dx = dx, job.xc = xc;
        parallel_for_dynamic(n_panels, 2, q8_panels, &job);
        return;
    }
    size_t need = (size_t)n_rows * K + (size_t)n_rows * nb * 8;
    if (need > scratch_cap) {
        free(scratch);
        scratch = aligned_alloc(64, (need + 63) / 64 * 64);
        scratch_cap = scratch ? need : 0;
    }
    if (!scratch) { /* no memory for the scratch: token by token through the stack (slow, correct) */
        for (int t = 0; t < n_rows; t++)
            matmul_q8(y + (size_t)t * w->rows, x + (size_t)t * K, w, bias, 1);
        return;
    }
    /* scratch: [T * nb] scales, [T * nb] sums, then [T * K] bytes */
    float *dx = scratch;
    int32_t *xc = (int32_t *)((char *)scratch + (size_t)n_rows * nb * sizeof(float));
    int8_t *qx = (int8_t *)((char *)scratch + (size_t)n_rows * nb * 8);
    QuantRowsJob qj = {x, qx, dx, xc, K};
    parallel_for(n_rows, 4, quantize_rows, &qj);
    job.qx = qx, job.dx = dx, job.xc = xc;
    parallel_for_dynamic(n_panels, 1, q8_panels, &job);
}

void matmul_q8_multi(int n, float *const *ys, const float *x, const Q8Matrix *const *ws, int n_rows) {
    int K = ws[0]->cols, nb = K / QB, same = n <= MATMUL_MULTI_MAX;
    for (int m = 1; m < n && same; m++)
        same = ws[m]->cols == K;
    if (n_rows >= 4 || K > MAX_GEMV_IN || !same) {
        for (int m = 0; m < n; m++)
            matmul_q8(ys[m], x, ws[m], NULL, n_rows);
        return;
    }
    int8_t qx[3 * MAX_GEMV_IN] __attribute__((aligned(64)));
    float dx[3 * MAX_GEMV_IN / QB];
    int32_t xc[3 * MAX_GEMV_IN / QB];
    for (int t = 0; t < n_rows; t++)
        quantize_row(qx + (size_t)t * K, dx + (size_t)t * nb, xc + (size_t)t * nb, x + (size_t)t * K, K);
    /* one loop over the panels of all the matrices (q8_panels per piece) */
    Q8Job jobs[MATMUL_MULTI_MAX];
    void *ctxs[MATMUL_MULTI_MAX];
    int n_panels[MATMUL_MULTI_MAX];
    Q8Kernel kernel = pick_kernel();
    for (int m = 0; m < n; m++) {
        Q8Job job = {ys[m], ws[m], NULL, qx, dx, xc, n_rows, nb, kernel};
        jobs[m] = job;
        ctxs[m] = &jobs[m];
        n_panels[m] = (ws[m]->rows + PANEL - 1) / PANEL;
    }
    parallel_for_dynamic_parts(n, n_panels, 2, q8_panels, ctxs);
}
