/* mma.sync.m16n8k16 (bf16 in, fp32 accumulate) on random fragments, through the
 * kernels' own helper (mma_bf16_16816 in kernels/cuda/common.cuh). Built twice:
 * by nvcc for the GPU ($(BUILD)/mma_check) and by cudaemu for the CPU
 * ($(BUILD)/mma_check_emu), so the first GPU pins the emulator to the silicon
 * (tests/gpu/run.sh runs both with one seed and compares).
 *
 *   mma_check [--seed N] [--trials N] [--out FILE]     run; check against a double reference
 *   mma_check --compare GPU_FILE EMU_FILE              compare two runs' outputs
 *
 * Each trial is one warp: lane l holds a0..a3, b0, b1 and c0..c3 (random bf16 pairs
 * and fp32, magnitudes 2^-8..2^8 so rounding of the accumulation shows). The
 * reference rebuilds A (16x16), B (16x8) and C (16x8) from the PTX ISA fragment
 * layout (independently of cudaemu.cpp) and computes D = A B + C in double: a
 * wrong layout gives errors of the size of D, rounding a few ulps. --out writes
 * every D value as hex floats, one line per trial. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

/* Trial t is warp t of the grid (one warp per block). */
__global__ void mma_probe_kernel(float *d, const uint32_t *a, const uint32_t *b, const float *c) {
    int t = blockIdx.x, lane = threadIdx.x;
    const uint32_t *ap = a + ((size_t)t * 32 + lane) * 4, *bp = b + ((size_t)t * 32 + lane) * 2;
    float acc[4];
    for (int i = 0; i < 4; i++)
        acc[i] = c[((size_t)t * 32 + lane) * 4 + i];
    mma_bf16_16816(acc, ap[0], ap[1], ap[2], ap[3], bp[0], bp[1]);
    for (int i = 0; i < 4; i++)
        d[((size_t)t * 32 + lane) * 4 + i] = acc[i];
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
/* a random bf16: sign, exponent 2^-8..2^8, 7 random mantissa bits */
static uint16_t rand_bf16(void) {
    uint32_t r = next_u32();
    uint32_t exp = 127 - 8 + r % 17, mant = (r >> 8) & 0x7f, sign = (r >> 15) & 1;
    return (uint16_t)(sign << 15 | exp << 7 | mant);
}
static float bf16_lo(uint32_t r) {
    uint32_t u = r << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float bf16_hi(uint32_t r) {
    uint32_t u = r & 0xffff0000u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int fail(const char *what) {
    printf("FAIL mma_check: %s\n", what);
    return 1;
}

static int compare(const char *gpu_path, const char *emu_path) {
    FILE *g = fopen(gpu_path, "r"), *e = fopen(emu_path, "r");
    if (!g || !e)
        return fail("cannot open the two output files");
    double worst_ulp = 0;
    long n = 0, differ = 0;
    float x, y;
    while (fscanf(g, "%a", &x) == 1) {
        if (fscanf(e, "%a", &y) != 1)
            return fail("the emulator's file has fewer values");
        n++;
        if (x != y) {
            differ++;
            double ulp = fabs((double)x - y) / (ldexp(1.0, ilogb(fmax(fabs(x), fabs(y))) - 23));
            worst_ulp = fmax(worst_ulp, ulp);
        }
    }
    fclose(g), fclose(e);
    if (n == 0)
        return fail("no values in the GPU's file");
    /* the emulator rounds once from double; a tensor core's fp32 accumulation may differ by a few ulps */
    if (worst_ulp <= 4) {
        printf("ok mma_gpu_vs_emulator %ld values, %ld differ, worst %.0f ulp (limit 4)\n", n, differ,
               worst_ulp);
        return 0;
    }
    printf("FAIL mma_gpu_vs_emulator: %ld of %ld values differ, worst %.3g ulp (limit 4): the emulator's "
           "mma.sync (tests/gpu/cudaemu/cudaemu.cpp) does not match this GPU\n",
           differ, n, worst_ulp);
    return 1;
}

int main(int argc, char **argv) {
    int trials = 256;
    const char *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--compare") && i + 2 < argc)
            return compare(argv[i + 1], argv[i + 2]);
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            rng ^= strtoull(argv[++i], NULL, 10) * 0x9E3779B97F4A7C15ull;
        else if (!strcmp(argv[i], "--trials") && i + 1 < argc)
            trials = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out_path = argv[++i];
        else {
            fprintf(stderr, "usage: mma_check [--seed N] [--trials N] [--out FILE] | --compare GPU EMU\n");
            return 2;
        }
    }
    if (trials <= 0 || trials > 65535)
        return fail("--trials must be 1..65535");
    size_t n_lanes = (size_t)trials * 32;
    uint32_t *a = (uint32_t *)malloc(n_lanes * 4 * sizeof *a),
             *b = (uint32_t *)malloc(n_lanes * 2 * sizeof *b);
    float *c = (float *)malloc(n_lanes * 4 * sizeof *c), *d = (float *)malloc(n_lanes * 4 * sizeof *d);
    for (size_t i = 0; i < n_lanes * 4; i++)
        a[i] = (uint32_t)rand_bf16() | (uint32_t)rand_bf16() << 16;
    for (size_t i = 0; i < n_lanes * 2; i++)
        b[i] = (uint32_t)rand_bf16() | (uint32_t)rand_bf16() << 16;
    for (size_t i = 0; i < n_lanes * 4; i++)
        c[i] = ldexpf((float)(next_u32() % 2001) - 1000.0f, -4);
    void *da, *db, *dc, *dd;
    if (cudaMalloc(&da, n_lanes * 4 * 4) || cudaMalloc(&db, n_lanes * 2 * 4) ||
        cudaMalloc(&dc, n_lanes * 4 * 4) || cudaMalloc(&dd, n_lanes * 4 * 4))
        return fail("cudaMalloc");
    cudaMemcpy(da, a, n_lanes * 4 * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(db, b, n_lanes * 2 * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dc, c, n_lanes * 4 * 4, cudaMemcpyHostToDevice);
    CUDA_LAUNCH(mma_probe_kernel, (unsigned)trials, 32, 0, (cudaStream_t)0, (float *)dd, (const uint32_t *)da,
                (const uint32_t *)db, (const float *)dc);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        printf("FAIL mma_check: the kernel failed: %s\n", cudaGetErrorString(e));
        return 1;
    }
    cudaMemcpy(d, dd, n_lanes * 4 * 4, cudaMemcpyDeviceToHost);

    /* the reference, from the PTX ISA's fragment tables (g = lane / 4, t = lane % 4) */
    double worst = 0;
    for (int tr = 0; tr < trials; tr++) {
        double A[16][16], B[16][8], C[16][8];
        for (int lane = 0; lane < 32; lane++) {
            const uint32_t *ar = a + ((size_t)tr * 32 + lane) * 4, *br = b + ((size_t)tr * 32 + lane) * 2;
            const float *cr = c + ((size_t)tr * 32 + lane) * 4;
            int g = lane / 4, t = lane % 4;
            for (int h = 0; h < 2; h++) {
                A[g][2 * t + h] = h ? bf16_hi(ar[0]) : bf16_lo(ar[0]);
                A[g + 8][2 * t + h] = h ? bf16_hi(ar[1]) : bf16_lo(ar[1]);
                A[g][2 * t + 8 + h] = h ? bf16_hi(ar[2]) : bf16_lo(ar[2]);
                A[g + 8][2 * t + 8 + h] = h ? bf16_hi(ar[3]) : bf16_lo(ar[3]);
                B[2 * t + h][g] = h ? bf16_hi(br[0]) : bf16_lo(br[0]);
                B[2 * t + 8 + h][g] = h ? bf16_hi(br[1]) : bf16_lo(br[1]);
                C[g][2 * t + h] = cr[h];
                C[g + 8][2 * t + h] = cr[2 + h];
            }
        }
        for (int lane = 0; lane < 32; lane++) {
            int g = lane / 4, t = lane % 4;
            for (int i = 0; i < 4; i++) {
                int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
                double ref = C[row][col], mag = fabs(C[row][col]);
                for (int k = 0; k < 16; k++) {
                    ref += A[row][k] * B[k][col];
                    mag += fabs(A[row][k] * B[k][col]);
                }
                double err = fabs(d[((size_t)tr * 32 + lane) * 4 + i] - ref) / (mag > 0 ? mag : 1);
                worst = fmax(worst, err);
            }
        }
    }
    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (!f)
            return fail("cannot write --out");
        for (size_t i = 0; i < n_lanes * 4; i++)
            fprintf(f, "%a%c", d[i], (i + 1) % 128 ? ' ' : '\n');
        fclose(f);
    }
    /* fp32 accumulation of 17 terms: a few 2^-24 of the magnitude; a wrong layout: ~1 */
    int ok = worst < 1e-5;
    printf("%s mma_layout_vs_reference: %d warps of random fragments, worst |D - ref| / sum|terms| = %.3g "
           "(limit 1e-5)\n",
           ok ? "ok" : "FAIL", trials, worst);
    cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(dd);
    free(a), free(b), free(c), free(d);
    return ok ? 0 : 1;
}
