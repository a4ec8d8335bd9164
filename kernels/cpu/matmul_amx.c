/* Prefill GEMM on AMX tiles with activations split into three bf16 terms (see
 * matmul_amx.h). Tiles: C 0..3 (32 tokens x 32 outputs as 2 x 2 tiles of
 * 16 x 16 fp32), A 4..5 (16 tokens x 32 inputs, bf16), B 6..7 (32 inputs x 16
 * outputs in AMX's pair layout). Scratch, grown on demand (prompts only;
 * decode never comes here): the split activations of the whole prompt and the
 * weights repacked into pair layout. Each thread packs then multiplies its own
 * panels of 32 outputs, walking the prompt in groups of tokens whose split
 * activations fit in L2 while its packed panels stream by. */
#include "kernels/cpu/matmul_amx.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))
#define MAX_THREADS 256

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} TileConfig;

static int amx_ok;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void) {
    const char *off = getenv("MEDGEMMA_NO_AMX");
    if (off && *off && strcmp(off, "0") != 0)
        return;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1, avx512f = (b >> 16) & 1;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d))
        return;
    int avx512_bf16 = (a >> 5) & 1;
    if (!amx_bf16 || !amx_tile || !avx512f || !avx512_bf16)
        return;
    /* Linux hands out the 8 KiB tile state only on request */
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return;
    amx_ok = 1;
}

int amx_available(void) {
    pthread_once(&amx_once, amx_probe);
    return amx_ok;
}

/* Scratch, grown on demand; only the thread calling matmul touches the sizes. */
static uint16_t *split_buf; /* [3][rows_pad][in_pad] */
static size_t split_cap;    /* elements */
static uint32_t *panel_buf; /* [threads][2][in_pad / 2][16] pairs */
static size_t panel_cap;    /* pairs */

void matmul_amx_release(void) {
    free(split_buf);
    free(panel_buf);
    split_buf = NULL;
    panel_buf = NULL;
    split_cap = panel_cap = 0;
}

typedef struct {
    float *y;
    const float *x;
    const bf16 *w, *bias;
    int n_rows, in_dim, out_dim, rows_pad, in_pad;
    uint16_t *split;
    uint32_t *panels;
    size_t panel_pairs; /* per panel of 32 outputs */
} AmxJob;

/* x rows [start, end) -> three bf16 terms; padding (rows past n_rows, inputs
 * past in_dim) is zero. */
AMX static void split_rows(void *ctx, int start, int end) {
    const AmxJob *j = ctx;
    size_t plane = (size_t)j->rows_pad * j->in_pad;
    for (int t = start; t < end; t++) {
        uint16_t *h = j->split + (size_t)t * j->in_pad, *m = h + plane, *l = m + plane;
        if (t >= j->n_rows) {
            memset(h, 0, (size_t)j->in_pad * 2);
            memset(m, 0, (size_t)j->in_pad * 2);
            memset(l, 0, (size_t)j->in_pad * 2);
            continue;
        }
        const float *xr = j->x + (size_t)t * j->in_dim;
        for (int i = 0; i < j->in_pad; i += 16) {
            __mmask16 mk = j->in_dim - i >= 16 ? 0xffff
                           : j->in_dim <= i    ? 0
                                               : (__mmask16)((1u << (j->in_dim - i)) - 1);
            __m512 v = _mm512_maskz_loadu_ps(mk, xr + i);
            __m256bh bh = _mm512_cvtneps_pbh(v);
            __m512 fh = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)bh), 16));
            v = _mm512_sub_ps(v, fh);
            __m256bh bm = _mm512_cvtneps_pbh(v);
            __m512 fm = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)bm), 16));
            v = _mm512_sub_ps(v, fm);
            __m256bh bl = _mm512_cvtneps_pbh(v);
            _mm256_storeu_si256((__m256i *)(h + i), (__m256i)bh);
            _mm256_storeu_si256((__m256i *)(m + i), (__m256i)bm);
            _mm256_storeu_si256((__m256i *)(l + i), (__m256i)bl);
        }
    }
}

/* Packs outputs [o, o + 32) into two B-tile columns: pairs[half][kp][n] =
 * (w[o + 16 half + n, 2 kp], w[o + 16 half + n, 2 kp + 1]); zero past the
 * edges. One 32-bit gather fetches a pair from each of 16 rows. */
AMX static void pack_pairs(uint32_t *pairs, const AmxJob *j, int o) {
    int kp_n = j->in_pad / 2, full_pairs = j->in_dim / 2;
    __m512i offsets =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(j->in_dim * 2));
    for (int half = 0; half < 2; half++) {
        int row0 = o + half * 16, valid = j->out_dim - row0;
        __mmask16 m = valid >= 16 ? 0xffff : valid <= 0 ? 0 : (__mmask16)((1u << valid) - 1);
        uint32_t *dst = pairs + (size_t)half * kp_n * 16;
        const char *base = (const char *)(j->w + (size_t)(row0 < j->out_dim ? row0 : 0) * j->in_dim);
        int kp = 0;
        for (; kp < full_pairs; kp++)
            _mm512_storeu_si512(
                dst + (size_t)kp * 16,
                m ? _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, base + 4 * (size_t)kp, 1)
                  : _mm512_setzero_si512());
        for (; kp < kp_n; kp++) /* an odd last input (half a pair), then zero padding */
            for (int n = 0; n < 16; n++)
                dst[(size_t)kp * 16 + n] =
                    (2 * kp < j->in_dim && n < valid) ? j->w[(size_t)(row0 + n) * j->in_dim + 2 * kp] : 0;
    }
}

/* Tokens per group: their three split terms (6 bytes per input) fill about 1 MiB. */
static int group_rows(int in_pad) {
    int g = (1 << 20) / (6 * in_pad) / 32 * 32;
    return g < 32 ? 32 : g > 256 ? 256 : g;
}

/* Output panels of 32 columns [start, end). */
AMX static void amx_panels(void *ctx, int start, int end) {
    const AmxJob *j = ctx;
    TileConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    size_t plane = (size_t)j->rows_pad * j->in_pad;
    size_t a_stride = (size_t)j->in_pad * 2, kp_n = (size_t)j->in_pad / 2;
    for (int p = start; p < end; p++)
        pack_pairs(j->panels + (size_t)p * j->panel_pairs, j, p * 32);
    float c[32][32];
    int group = group_rows(j->in_pad);
    for (int g0 = 0; g0 < j->n_rows; g0 += group) {
        int g1 = g0 + group < j->n_rows ? g0 + group : j->n_rows;
        for (int p = start; p < end; p++) {
            int o = p * 32;
            const uint32_t *pairs = j->panels + (size_t)p * j->panel_pairs;
            for (int t0 = g0; t0 < g1; t0 += 32) {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (int k0 = 0; k0 < j->in_pad; k0 += 32) {
                    _tile_loadd(6, pairs + (size_t)(k0 / 2) * 16, 64);
                    _tile_loadd(7, pairs + kp_n * 16 + (size_t)(k0 / 2) * 16, 64);
                    for (int term = 0; term < 3; term++) {
                        const uint16_t *a = j->split + term * plane + (size_t)t0 * j->in_pad + k0;
                        _tile_loadd(4, a, a_stride);
                        _tile_loadd(5, a + 16 * (size_t)j->in_pad, a_stride);
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(1, 4, 7);
                        _tile_dpbf16ps(2, 5, 6);
                        _tile_dpbf16ps(3, 5, 7);
                    }
                }
                _tile_stored(0, &c[0][0], 128);
                _tile_stored(1, &c[0][16], 128);
                _tile_stored(2, &c[16][0], 128);
                _tile_stored(3, &c[16][16], 128);
                int rows = j->n_rows - t0 < 32 ? j->n_rows - t0 : 32;
                int cols = j->out_dim - o < 32 ? j->out_dim - o : 32;
                for (int r = 0; r < rows; r++) {
                    float *yr = j->y + (size_t)(t0 + r) * j->out_dim + o;
                    for (int cc = 0; cc < cols; cc++)
                        yr[cc] = j->bias ? c[r][cc] + bf16_to_f32(j->bias[o + cc]) : c[r][cc];
                }
            }
        }
    }
    _tile_release();
}

int matmul_amx(float *y, const float *x, const bf16 *w, const bf16 *bias, int n_rows, int in_dim,
               int out_dim) {
    int rows_pad = (n_rows + 31) / 32 * 32, in_pad = (in_dim + 31) / 32 * 32;
    size_t split_need = (size_t)3 * rows_pad * in_pad;
    size_t pairs_per_panel = (size_t)in_pad / 2 * 16 * 2;
    int n_panels = (out_dim + 31) / 32;
    size_t panel_need = pairs_per_panel * (size_t)n_panels;
    if (split_need > split_cap) {
        free(split_buf);
        split_buf = aligned_alloc(64, split_need * 2);
        split_cap = split_buf ? split_need : 0;
    }
    if (panel_need > panel_cap) {
        free(panel_buf);
        panel_buf = aligned_alloc(64, panel_need * 4);
        panel_cap = panel_buf ? panel_need : 0;
    }
    if (!split_buf || !panel_buf)
        return -1;
    AmxJob job = {y,       x,        w,      bias,      n_rows,    in_dim,
                  out_dim, rows_pad, in_pad, split_buf, panel_buf, pairs_per_panel};
    parallel_for(rows_pad, 8, split_rows, &job);
    parallel_for(n_panels, 1, amx_panels, &job);
    return 0;
}

#else /* not x86-64 Linux with GCC: no AMX */
int amx_available(void) {
    return 0;
}
int matmul_amx(float *y, const float *x, const bf16 *w, const bf16 *bias, int n_rows, int in_dim,
               int out_dim) {
    return -1;
}
void matmul_amx_release(void) {}
#endif
