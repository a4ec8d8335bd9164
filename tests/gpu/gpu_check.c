/* Helpers of the GPU test program: see gpu_check.h. */
#include "tests/gpu/gpu_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_pass, n_fail;
static uint64_t rng_state = 0x853c49e6748fea9bull;
int gpu_small;
const char *gpu_filter;

static FILE *table(void) {
    static FILE *f;
    static int tried;
    if (!tried) {
        tried = 1;
        const char *path = getenv("GPU_TEST_TABLE");
        if (path && *path)
            f = fopen(path, "a");
    }
    return f;
}

void gpu_report(const char *name, double err, double tol) {
    FILE *t = table();
    if (err < tol) { /* NaN fails */
        n_pass++;
        printf("ok %s rel_err=%.3g tol=%.3g\n", name, err, tol);
    } else {
        n_fail++;
        printf("FAIL %s: rel_err=%.3g, tolerance %.3g\n", name, err, tol);
    }
    if (t) {
        fprintf(t, "| %s | %.3g | %.3g | %s |\n", name, err, tol, err < tol ? "ok" : "FAIL");
        fflush(t);
    }
    fflush(stdout);
}

void gpu_fail(const char *name, const char *fmt, ...) {
    n_fail++;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

void gpu_pass(const char *name, const char *fmt, ...) {
    n_pass++;
    printf("ok %s ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

int gpu_failures(void) {
    return n_fail;
}
int gpu_passes(void) {
    return n_pass;
}

void gpu_ok(cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess)
        return;
    printf("FAIL cuda_call: %s:%d: %s: %s\n", file, line, what, cudaGetErrorString(e));
    fflush(stdout);
    exit(1);
}

void gpu_seed(uint64_t seed) {
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
}

static float rand_unit(void) { /* xorshift64*, [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 2685821657736338717ull;
    return (float)((r >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        printf("FAIL host_memory: malloc(%zu)\n", n);
        exit(1);
    }
    return p;
}

float *rand_f32_bf16exact(size_t n, float scale) {
    float *x = xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = round_to_bf16(rand_unit() * scale);
    return x;
}

bf16 *to_bf16_host(const float *x, size_t n) {
    bf16 *b = xmalloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++)
        b[i] = f32_to_bf16(x[i]);
    return b;
}

void *dev_poisoned(size_t bytes) {
    void *p;
    GPU_OK(cudaMalloc(&p, bytes ? bytes : 16));
    GPU_OK(cudaMemset(p, 0xFF, bytes ? bytes : 16));
    return p;
}

void *dev_copy(const void *host, size_t bytes) {
    void *p;
    GPU_OK(cudaMalloc(&p, bytes ? bytes : 16));
    GPU_OK(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice));
    return p;
}

bf16 *dev_from_f32_as_bf16(const float *x, size_t n) {
    bf16 *h = to_bf16_host(x, n);
    bf16 *d = dev_copy(h, n * sizeof(bf16));
    free(h);
    return d;
}

float *host_from_dev_bf16(const bf16 *dev, size_t n) {
    GPU_OK(cudaDeviceSynchronize());
    bf16 *h = xmalloc(n * sizeof *h);
    GPU_OK(cudaMemcpy(h, dev, n * sizeof(bf16), cudaMemcpyDeviceToHost));
    float *f = xmalloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++)
        f[i] = bf16_to_f32(h[i]);
    free(h);
    return f;
}

float *host_from_dev_f32(const float *dev, size_t n) {
    GPU_OK(cudaDeviceSynchronize());
    float *f = xmalloc(n * sizeof *f);
    GPU_OK(cudaMemcpy(f, dev, n * sizeof(float), cudaMemcpyDeviceToHost));
    return f;
}

double rel_err(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return NAN;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The filter is one substring or several separated by commas. */
int gpu_selected(const char *name) {
    if (!gpu_filter)
        return 1;
    const char *p = gpu_filter;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char part[128];
        if (len > 0 && len < sizeof part) {
            memcpy(part, p, len);
            part[len] = 0;
            if (strstr(name, part))
                return 1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}
