/* Per-op CPU timing and the machine's read bandwidth.
 *
 *   bench_ops bandwidth [--mb N]            read bandwidth of the kernels' thread pool
 *   bench_ops gemv|gemm [--shape 4b|270m] [--rows T] [--mode exact|bf16|q8]
 *   bench_ops peak                          fp32 FMA and bf16-dot peak GFLOP/s
 *
 * bandwidth: every thread of the pool (the same threads the GEMV runs on)
 * sums its contiguous share of an N MiB buffer with 64-byte loads; the median
 * of 9 passes is reported in GB/s (1e9 bytes/s). This is the ceiling decode
 * can reach: a decode step reads every weight once.
 * gemv: matmul with T = 1 (decode) on the model's projection shapes, weight
 * copies cycled so that at least 512 MiB pass between reuses (nothing comes
 * from cache); reports GB/s of weights read. gemm: T rows (prefill), GFLOP/s.
 * caller_cpu_ms is the calling thread's CPU time per call: with MEDGEMMA_THREADS=1
 * it prices a kernel on a machine whose other jobs preempt it.
 * peak: what the vector units can do with no memory traffic (best of 5), the
 * ceiling a prefill GEMM is compared with.
 * One JSON object per line. Threads: env MEDGEMMA_THREADS (default all cores). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread: with one thread, what the kernel cost even
 * while other jobs preempt it (a shared machine). */
static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- read bandwidth */

typedef struct {
    const uint8_t *buf;
    size_t bytes;
    uint64_t sums[256 * 8]; /* one cache line per thread part */
} ReadJob;

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static uint64_t read_range(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}
#else
static uint64_t read_range(const uint8_t *p, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        s ^= v;
    }
    return s;
}
#endif

/* Parts are 4 KiB pages; each thread reads one contiguous run of them. */
static void read_pages(void *ctx, int start, int end) {
    ReadJob *j = ctx;
    j->sums[(size_t)(start % 256) * 8] ^=
        read_range(j->buf + (size_t)start * 4096, (size_t)(end - start) * 4096);
}

/* GB/s by wall time; *cpu_gbs by the calling thread's CPU time (meaningful with one thread). */
static double bandwidth_gbs(size_t mib, double *cpu_gbs) {
    size_t bytes = mib << 20;
    uint8_t *buf = aligned_alloc(4096, bytes);
    *cpu_gbs = 0;
    if (!buf)
        return 0;
    for (size_t i = 0; i < bytes; i++)
        buf[i] = (uint8_t)(i * 131u);
    ReadJob *job = calloc(1, sizeof *job);
    job->buf = buf;
    job->bytes = bytes;
    double t[9], tc[9];
    parallel_for((int)(bytes / 4096), 1, read_pages, job); /* warm the pool and the TLB */
    for (int r = 0; r < 9; r++) {
        double t0 = now_s(), c0 = thread_cpu_s();
        parallel_for((int)(bytes / 4096), 1, read_pages, job);
        t[r] = now_s() - t0;
        tc[r] = thread_cpu_s() - c0;
    }
    double gbs = (double)bytes / median(t, 9) / 1e9;
    *cpu_gbs = (double)bytes / median(tc, 9) / 1e9;
    uint64_t x = 0;
    for (int i = 0; i < 256; i++)
        x ^= job->sums[i * 8];
    if (x == 42) /* keeps the reads from being optimized away */
        fprintf(stderr, "\n");
    free(job);
    free(buf);
    return gbs;
}

/* ---- peak arithmetic: register-only loops on every pool thread
 *
 * Each thread runs PEAK_CHAINS independent multiply-add chains (enough to
 * cover the instruction's latency on both FMA pipes) for PEAK_ITERS steps;
 * nothing touches memory. GFLOP/s counts a multiply-add as 2 flops:
 * vfmadd ymm = 16, vfmadd zmm = 32, vdpbf16ps zmm = 64 (32 bf16 pairs, each
 * pair 2 products and their sum into fp32). */
#define PEAK_CHAINS 12
#define PEAK_ITERS 20000000

typedef struct {
    int kind; /* 0 fma ymm, 1 fma zmm, 2 vdpbf16ps zmm */
    float sink[256 * 16];
} PeakJob;

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static float peak_fma256(void) {
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    __m256 c[PEAK_CHAINS];
    for (int k = 0; k < PEAK_CHAINS; k++)
        c[k] = _mm256_set1_ps((float)k);
    for (int i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 12
        for (int k = 0; k < PEAK_CHAINS; k++)
            c[k] = _mm256_fmadd_ps(c[k], a, b);
    __m256 s = c[0];
    for (int k = 1; k < PEAK_CHAINS; k++)
        s = _mm256_add_ps(s, c[k]);
    return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f,fma"))) static float peak_fma512(void) {
    __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
    __m512 c[PEAK_CHAINS];
    for (int k = 0; k < PEAK_CHAINS; k++)
        c[k] = _mm512_set1_ps((float)k);
    for (int i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 12
        for (int k = 0; k < PEAK_CHAINS; k++)
            c[k] = _mm512_fmadd_ps(c[k], a, b);
    __m512 s = c[0];
    for (int k = 1; k < PEAK_CHAINS; k++)
        s = _mm512_add_ps(s, c[k]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bf16"))) static float peak_dpbf16(void) {
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380); /* 1, ~6e-8 */
    __m512 c[PEAK_CHAINS];
    for (int k = 0; k < PEAK_CHAINS; k++)
        c[k] = _mm512_set1_ps((float)k);
    for (int i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 12
        for (int k = 0; k < PEAK_CHAINS; k++)
            c[k] = _mm512_dpbf16_ps(c[k], a, b);
    __m512 s = c[0];
    for (int k = 1; k < PEAK_CHAINS; k++)
        s = _mm512_add_ps(s, c[k]);
    return _mm512_reduce_add_ps(s);
}

static int peak_supported(int kind) {
    __builtin_cpu_init();
    if (kind == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (kind == 1)
        return __builtin_cpu_supports("avx512f");
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

static void peak_threads(void *ctx, int start, int end) {
    PeakJob *j = ctx;
    for (int t = start; t < end; t++)
        j->sink[(t % 256) * 16] = j->kind == 0 ? peak_fma256() : j->kind == 1 ? peak_fma512() : peak_dpbf16();
}
#else
static int peak_supported(int kind) {
    (void)kind;
    return 0;
}
static void peak_threads(void *ctx, int start, int end) {
    (void)ctx, (void)start, (void)end;
}
#endif

static void run_peak(void) {
    static const char *names[] = {"fma_fp32_ymm", "fma_fp32_zmm", "dpbf16_zmm"};
    static const double flops_per_instr[] = {16, 32, 64};
    int n = kernels_threads();
    for (int kind = 0; kind < 3; kind++) {
        if (!peak_supported(kind)) {
            printf("{\"op\": \"peak\", \"kind\": \"%s\", \"threads\": %d, \"supported\": false}\n",
                   names[kind], n);
            continue;
        }
        PeakJob *job = calloc(1, sizeof *job);
        job->kind = kind;
        double t[5];
        parallel_for(n, 1, peak_threads, job); /* warm */
        for (int r = 0; r < 5; r++) {
            double t0 = now_s();
            parallel_for(n, 1, peak_threads, job);
            t[r] = now_s() - t0;
        }
        double best = t[0];
        for (int r = 1; r < 5; r++)
            best = t[r] < best ? t[r] : best;
        double flops = (double)n * PEAK_ITERS * PEAK_CHAINS * flops_per_instr[kind];
        /* best of 5: the machine's capability (a shared machine only slows a run down) */
        printf(
            "{\"op\": \"peak\", \"kind\": \"%s\", \"threads\": %d, \"supported\": true, \"gflop_s\": %.1f, "
            "\"gflop_s_median\": %.1f}\n",
            names[kind], n, flops / best / 1e9, flops / median(t, 5) / 1e9);
        fflush(stdout);
        if (job->sink[0] == 42.0f)
            fprintf(stderr, "\n");
        free(job);
    }
}

/* ---- GEMV / GEMM on model shapes */

typedef struct {
    const char *name;
    int in, out;
} Shape;

static const Shape shapes_4b[] = {{"q_proj", 2560, 2048},     {"k_proj", 2560, 1024},
                                  {"o_proj", 2048, 2560},     {"gate_proj", 2560, 10240},
                                  {"down_proj", 10240, 2560}, {"lm_head", 2560, 262208}};
static const Shape shapes_270m[] = {{"q_proj", 640, 1024},    {"k_proj", 640, 256},
                                    {"o_proj", 1024, 640},    {"gate_proj", 640, 2048},
                                    {"down_proj", 2048, 640}, {"lm_head", 640, 262144}};

static void run_shape(const Shape *sh, int rows, const char *mode) {
    size_t wcount = (size_t)sh->in * sh->out;
    size_t wbytes = wcount * 2;
    int copies = (int)((512u << 20) / wbytes) + 1;
    if (rows > 1 || copies < 2)
        copies = rows > 1 ? 1 : 2;
    bf16 *w = malloc(wcount * 2 * copies);
    float *x = malloc((size_t)rows * sh->in * sizeof *x), *y = malloc((size_t)rows * sh->out * sizeof *y);
    if (!w || !x || !y) {
        fprintf(stderr, "bench_ops: out of memory for %s\n", sh->name);
        exit(1);
    }
    for (size_t i = 0; i < wcount * copies; i++)
        w[i] = f32_to_bf16((float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f);
    for (size_t i = 0; i < (size_t)rows * sh->in; i++)
        x[i] = (float)((i * 40503u) % 1001) / 500.0f - 1.0f;
    Q8Matrix *q = NULL;
    if (!strcmp(mode, "q8")) {
        q = calloc((size_t)copies, sizeof *q);
        for (int c = 0; c < copies; c++)
            if (q8_quantize(&q[c], w + wcount * c, sh->out, sh->in) != 0) {
                fprintf(stderr, "bench_ops: q8 quantization failed for %s\n", sh->name);
                exit(1);
            }
    }
    kernels_set_precision(!strcmp(mode, "bf16") ? PRECISION_BF16 : PRECISION_EXACT);
    int reps = rows > 1 ? 5 : 3 * copies;
    if (reps > 60)
        reps = 60;
    double *t = malloc(sizeof *t * reps), *tc = malloc(sizeof *tc * reps);
    for (int r = -1; r < reps; r++) {
        int c = (r + copies) % copies;
        double t0 = now_s(), c0 = thread_cpu_s();
        if (q)
            matmul_q8(y, x, &q[c], NULL, rows);
        else
            matmul(y, x, w + wcount * c, NULL, rows, sh->in, sh->out);
        if (r >= 0) {
            t[r] = now_s() - t0;
            tc[r] = thread_cpu_s() - c0;
        }
    }
    double s = median(t, reps), sc = median(tc, reps);
    double bytes = q ? (double)q8_bytes(&q[0]) : (double)wbytes;
    printf("{\"op\": \"%s\", \"mode\": \"%s\", \"rows\": %d, \"in\": %d, \"out\": %d, \"ms\": %.3f, "
           "\"weight_gb_s\": %.2f, \"gflop_s\": %.1f, \"caller_cpu_ms\": %.3f, \"gflop_per_cpu_s\": %.1f}\n",
           sh->name, mode, rows, sh->in, sh->out, s * 1e3, bytes / s / 1e9, 2.0 * rows * wcount / s / 1e9,
           sc * 1e3, 2.0 * rows * wcount / sc / 1e9);
    fflush(stdout);
    if (q) {
        for (int c = 0; c < copies; c++)
            q8_free(&q[c]);
        free(q);
    }
    free(t), free(tc), free(w), free(x), free(y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_ops bandwidth [--mb N] | gemv|gemm [--shape 4b|270m] [--rows T] "
                        "[--mode exact|bf16|q8] [--op NAME] | peak\n");
        return 2;
    }
    const char *what = argv[1], *shape = "4b", *mode = "exact", *only = NULL;
    int mb = 1024, rows = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mb"))
            mb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--shape"))
            shape = argv[i + 1];
        else if (!strcmp(argv[i], "--rows"))
            rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mode"))
            mode = argv[i + 1];
        else if (!strcmp(argv[i], "--op"))
            only = argv[i + 1];
        else {
            fprintf(stderr, "bench_ops: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    const char *threads = getenv("MEDGEMMA_THREADS");
    kernels_set_threads(threads ? atoi(threads) : 0);
    if (!strcmp(what, "bandwidth")) {
        double cpu_gbs, gbs = bandwidth_gbs((size_t)(mb > 64 ? mb : 64), &cpu_gbs);
        printf("{\"op\": \"read_bandwidth\", \"threads\": %d, \"mib\": %d, \"gb_s\": %.2f, "
               "\"gb_per_caller_cpu_s\": %.2f}\n",
               kernels_threads(), mb, gbs, cpu_gbs);
        return 0;
    }
    if (!strcmp(what, "peak")) {
        run_peak();
        kernels_shutdown();
        return 0;
    }
    int is_gemv = !strcmp(what, "gemv");
    if (!is_gemv && strcmp(what, "gemm") != 0) {
        fprintf(stderr, "bench_ops: unknown benchmark %s\n", what);
        return 2;
    }
    if (rows <= 0)
        rows = is_gemv ? 1 : 128;
    const Shape *list = !strcmp(shape, "270m") ? shapes_270m : shapes_4b;
    for (int i = 0; i < 6; i++)
        if (!only || !strcmp(only, list[i].name))
            run_shape(&list[i], rows, mode);
    kernels_shutdown();
    return 0;
}
