/* The bf16-precision GEMM / GEMV (kernels.h, PRECISION_BF16):
 *   y[t, o] = sum_i bf16(x[t, i]) * w[o, i] (+ bias[o])      w [out, in] bf16
 * on AVX512_BF16's vdpbf16ps, which multiplies 16 lanes of bf16 pairs exactly
 * and adds both products to an fp32 accumulator: 32 multiply-adds per
 * instruction, twice an fp32 FMA's.
 *
 * Decode (T < 4): x rounded into a stack buffer, 4 weight rows per pass over
 * it, threads splitting the rows in cache-line units (as matmul.c).
 * Prefill: x rounded once into a scratch grown on demand; threads split
 * panels of 32 outputs; each panel is repacked per K_CHUNK inputs into pair
 * layout (pair[kp][c] = (w[c, 2kp], w[c, 2kp + 1]), 16 KiB, stays in L1) and
 * used by every token row of a block that stays in L2. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/matmul_bf16.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

static KernelsPrecision precision = PRECISION_EXACT;

void kernels_set_precision(KernelsPrecision p) {
    precision = p;
}

KernelsPrecision kernels_precision(void) {
    return precision;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define GEMV_UNIT 16 /* weight rows per work unit: one cache line of y */
#define MAX_GEMV_IN 16384
#define K_CHUNK 256 /* inputs per packed panel: 128 pairs x 32 columns x 4 bytes = 16 KiB */
#define TOKEN_BLOCK                                                                                          \
    384 /* token rows per pass over a panel (a multiple of 6): their K_CHUNK slice, 192 KiB, stays in L2 */

int kernels_bf16_available(void) {
    static int ok = -1;
    if (ok < 0) {
        __builtin_cpu_init();
        ok = __builtin_cpu_supports("avx512bf16") && !strcmp(simd_ops()->name, "avx512");
    }
    return ok;
}

/* Rounds n floats to bf16 (nearest even). */
BF16 static void round_row(bf16 *dst, const float *src, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    for (; i < n; i++)
        dst[i] = f32_to_bf16(src[i]);
}

typedef struct {
    float *y;
    const float *x;
    const bf16 *xb; /* x rounded, [T, in] */
    bf16 *xb_out;
    const bf16 *w, *bias;
    int n_rows, in_dim, out_dim;
} Bf16Job;

static void round_rows(void *ctx, int start, int end) {
    const Bf16Job *j = ctx;
    for (int t = start; t < end; t++)
        round_row(j->xb_out + (size_t)t * j->in_dim, j->x + (size_t)t * j->in_dim, j->in_dim);
}

/* ---- decode */

/* y[o] = sum_i x[i] w[o, i] for 4 rows; n even. 8 accumulators, 64 inputs per step. */
BF16 static void gemv4(float *y, const bf16 *x, const bf16 *w, size_t ldw, int n) {
    const bf16 *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
#define LD(p) ((__m512bh)_mm512_loadu_si512(p))
    int i = 0;
    const int prefetch_next = n <= 4096; /* as simd.c's gemv4: short rows, next pass warmed */
    for (; i + 64 <= n; i += 64) {
        if (prefetch_next)
            for (int k = 0; k < 4; k++) {
                _mm_prefetch((const char *)(w + (4 + k) * ldw + i), _MM_HINT_T0);
                _mm_prefetch((const char *)(w + (4 + k) * ldw + i + 32), _MM_HINT_T0);
            }
        __m512bh xa = LD(x + i), xb = LD(x + i + 32);
        a0 = _mm512_dpbf16_ps(a0, xa, LD(w0 + i)), b0 = _mm512_dpbf16_ps(b0, xb, LD(w0 + i + 32));
        a1 = _mm512_dpbf16_ps(a1, xa, LD(w1 + i)), b1 = _mm512_dpbf16_ps(b1, xb, LD(w1 + i + 32));
        a2 = _mm512_dpbf16_ps(a2, xa, LD(w2 + i)), b2 = _mm512_dpbf16_ps(b2, xb, LD(w2 + i + 32));
        a3 = _mm512_dpbf16_ps(a3, xa, LD(w3 + i)), b3 = _mm512_dpbf16_ps(b3, xb, LD(w3 + i + 32));
    }
#undef LD
    for (; i < n; i += 32) {
        __mmask32 m = n - i >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
#define LM(p) ((__m512bh)_mm512_maskz_loadu_epi16(m, p))
        __m512bh xa = LM(x + i);
        a0 = _mm512_dpbf16_ps(a0, xa, LM(w0 + i)), a1 = _mm512_dpbf16_ps(a1, xa, LM(w1 + i));
        a2 = _mm512_dpbf16_ps(a2, xa, LM(w2 + i)), a3 = _mm512_dpbf16_ps(a3, xa, LM(w3 + i));
#undef LM
    }
    y[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0));
    y[1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1));
    y[2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2));
    y[3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3));
}

BF16 static float dot1(const bf16 *x, const bf16 *w, int n) {
    __m512 a = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 32) {
        __mmask32 m = n - i >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
        a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_maskz_loadu_epi16(m, x + i),
                             (__m512bh)_mm512_maskz_loadu_epi16(m, w + i));
    }
    return _mm512_reduce_add_ps(a);
}

static void gemv_units(void *ctx, int start, int end) {
    const Bf16Job *j = ctx;
    size_t in = (size_t)j->in_dim;
    int o0 = start * GEMV_UNIT, o1 = end * GEMV_UNIT < j->out_dim ? end * GEMV_UNIT : j->out_dim;
    int o = o0;
    for (; o + 4 <= o1; o += 4)
        for (int t = 0; t < j->n_rows; t++)
            gemv4(j->y + (size_t)t * j->out_dim + o, j->xb + (size_t)t * in, j->w + (size_t)o * in, in,
                  j->in_dim);
    for (; o < o1; o++)
        for (int t = 0; t < j->n_rows; t++)
            j->y[(size_t)t * j->out_dim + o] = dot1(j->xb + (size_t)t * in, j->w + (size_t)o * in, j->in_dim);
    if (j->bias)
        for (int t = 0; t < j->n_rows; t++)
            for (o = o0; o < o1; o++)
                j->y[(size_t)t * j->out_dim + o] += bf16_to_f32(j->bias[o]);
}

/* ---- prefill */

/* pairs[kp][c] = (w[c, k0 + 2kp], w[c, k0 + 2kp + 1]) for c < n_cols, 0 past
 * them; kp < kc / 2. One 32-bit gather fetches a pair from each of 16 rows. */
BF16 static void pack_pairs(uint32_t *pairs, const bf16 *w, size_t ldw, int n_cols, int kc) {
    __m512i offsets =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32((int)(ldw * 2)));
    __mmask16 m0 = n_cols >= 16 ? 0xffff : (__mmask16)((1u << n_cols) - 1);
    __mmask16 m1 = n_cols >= 32 ? 0xffff : n_cols <= 16 ? 0 : (__mmask16)((1u << (n_cols - 16)) - 1);
    const char *base0 = (const char *)w, *base1 = (const char *)(w + 16 * ldw);
    for (int kp = 0; kp < kc / 2; kp++) {
        __m512i g0 =
            _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m0, offsets, base0 + 4 * (size_t)kp, 1);
        __m512i g1 =
            m1 ? _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m1, offsets, base1 + 4 * (size_t)kp, 1)
               : _mm512_setzero_si512();
        _mm512_storeu_si512(pairs + (size_t)kp * 32, g0);
        _mm512_storeu_si512(pairs + (size_t)kp * 32 + 16, g1);
    }
}

/* rows (1..6) token rows x 32 panel columns over kc inputs (even):
 * y[r, c] = (accumulate ? y[r, c] : 0) + sum_kp dot(x[r, 2kp..], pairs[kp][c]). */
BF16 static void panel6x32(float *y, int ldy, const bf16 *x, int ldx, const uint32_t *pairs, int rows, int kc,
                           int n_cols, int accumulate) {
    __mmask16 m0 = n_cols >= 16 ? 0xffff : (__mmask16)((1u << n_cols) - 1);
    __mmask16 m1 = n_cols >= 32 ? 0xffff : n_cols <= 16 ? 0 : (__mmask16)((1u << (n_cols - 16)) - 1);
    __m512 c[6][2];
    for (int r = 0; r < 6; r++) {
        c[r][0] = c[r][1] = _mm512_setzero_ps();
        if (accumulate && r < rows) {
            c[r][0] = _mm512_maskz_loadu_ps(m0, y + (size_t)r * ldy);
            c[r][1] = _mm512_maskz_loadu_ps(m1, y + (size_t)r * ldy + 16);
        }
    }
    const int32_t *xr[6];
    for (int r = 0; r < 6; r++)
        xr[r] = (const int32_t *)(x + (size_t)(r < rows ? r : 0) * ldx);
    if (rows == 6) {
        for (int kp = 0; kp < kc / 2; kp++) {
            __m512bh p0 = (__m512bh)_mm512_loadu_si512(pairs + (size_t)kp * 32);
            __m512bh p1 = (__m512bh)_mm512_loadu_si512(pairs + (size_t)kp * 32 + 16);
#pragma GCC unroll 6
            for (int r = 0; r < 6; r++) {
                __m512bh b = (__m512bh)_mm512_set1_epi32(xr[r][kp]);
                c[r][0] = _mm512_dpbf16_ps(c[r][0], b, p0);
                c[r][1] = _mm512_dpbf16_ps(c[r][1], b, p1);
            }
        }
    } else {
        for (int r = 0; r < rows; r++)
            for (int kp = 0; kp < kc / 2; kp++) {
                __m512bh b = (__m512bh)_mm512_set1_epi32(xr[r][kp]);
                c[r][0] = _mm512_dpbf16_ps(c[r][0], b, (__m512bh)_mm512_loadu_si512(pairs + (size_t)kp * 32));
                c[r][1] =
                    _mm512_dpbf16_ps(c[r][1], b, (__m512bh)_mm512_loadu_si512(pairs + (size_t)kp * 32 + 16));
            }
    }
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(y + (size_t)r * ldy, m0, c[r][0]);
        _mm512_mask_storeu_ps(y + (size_t)r * ldy + 16, m1, c[r][1]);
    }
}

/* Output panels of 32 columns [start, end). */
static void gemm_panels(void *ctx, int start, int end) {
    const Bf16Job *j = ctx;
    uint32_t pairs[K_CHUNK / 2 * 32] __attribute__((aligned(64)));
    for (int t0 = 0; t0 < j->n_rows; t0 += TOKEN_BLOCK) {
        int t1 = t0 + TOKEN_BLOCK < j->n_rows ? t0 + TOKEN_BLOCK : j->n_rows;
        for (int p = start; p < end; p++) {
            int o = p * 32, n_cols = j->out_dim - o < 32 ? j->out_dim - o : 32;
            for (int k0 = 0; k0 < j->in_dim; k0 += K_CHUNK) {
                int kc = j->in_dim - k0 < K_CHUNK ? j->in_dim - k0 : K_CHUNK;
                pack_pairs(pairs, j->w + (size_t)o * j->in_dim + k0, (size_t)j->in_dim, n_cols, kc);
                for (int t = t0; t < t1; t += 6)
                    panel6x32(j->y + (size_t)t * j->out_dim + o, j->out_dim,
                              j->xb + (size_t)t * j->in_dim + k0, j->in_dim, pairs, t1 - t < 6 ? t1 - t : 6,
                              kc, n_cols, k0 > 0);
            }
        }
    }
    if (j->bias) {
        int o1 = end * 32 < j->out_dim ? end * 32 : j->out_dim;
        for (int t = 0; t < j->n_rows; t++)
            for (int o = start * 32; o < o1; o++)
                j->y[(size_t)t * j->out_dim + o] += bf16_to_f32(j->bias[o]);
    }
}

/* Rounded prompt activations, grown on demand; only the calling thread touches it. */
static bf16 *scratch;
static size_t scratch_cap;

void matmul_bf16_release(void) {
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
}

int matmul_bf16(float *y, const float *x, const bf16 *w, const bf16 *bias, int n_rows, int in_dim,
                int out_dim) {
    if (!kernels_bf16_available() || in_dim % 2 != 0)
        return -1;
    Bf16Job job = {y, x, NULL, NULL, w, bias, n_rows, in_dim, out_dim};
    size_t need = (size_t)n_rows * in_dim;
    if (n_rows < 4) {
        if (in_dim > MAX_GEMV_IN)
            return -1;
        bf16 xb[3 * MAX_GEMV_IN] __attribute__((aligned(64)));
        for (int t = 0; t < n_rows; t++)
            round_row(xb + (size_t)t * in_dim, x + (size_t)t * in_dim, in_dim);
        job.xb = xb;
        parallel_for((out_dim + GEMV_UNIT - 1) / GEMV_UNIT, 4, gemv_units, &job);
        return 0;
    }
    if (need > scratch_cap) {
        free(scratch);
        scratch = aligned_alloc(64, (need * 2 + 63) / 64 * 64);
        scratch_cap = scratch ? need : 0;
        if (!scratch)
            return -1;
    }
    job.xb = job.xb_out = scratch;
    parallel_for(n_rows, 8, round_rows, &job);
    parallel_for((out_dim + 31) / 32, 1, gemm_panels, &job);
    return 0;
}

#else /* no AVX512_BF16 kernels on this compiler / processor */
int kernels_bf16_available(void) {
    return 0;
}
int matmul_bf16(float *y, const float *x, const bf16 *w, const bf16 *bias, int n_rows, int in_dim,
                int out_dim) {
    return -1;
}
void matmul_bf16_release(void) {}
#endif
