/* Per-kernel timing: see bench_kernels.h. */
#include "bench/gpu/bench_kernels.h"

#include <cuda_runtime_api.h>
#include <string.h>

#include "engine/cuda/gemm.h"
#include "kernels/cuda/kernels_cuda.h"

#define REPS 20

typedef struct {
    BenchKernelTimes *out;
    cudaEvent_t e0, e1;
    int failed;
} Timer;

static void *zalloc(size_t bytes, Timer *t) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess || cudaMemset(p, 0, bytes) != cudaSuccess) {
        fprintf(stderr, "bench_kernels: cudaMalloc(%zu) failed\n", bytes);
        t->failed = 1;
        return NULL;
    }
    return p;
}

static void record(Timer *t, const char *name, float ms_total, double bytes, double flops) {
    if (t->out->n >= BENCH_MAX_KERNELS)
        return;
    BenchKernel *k = &t->out->k[t->out->n++];
    k->name = name;
    k->us = ms_total * 1e3 / REPS;
    k->gbps = bytes > 0 ? bytes / (k->us * 1e-6) / 1e9 : 0;
    k->tflops = flops > 0 ? flops / (k->us * 1e-6) / 1e12 : 0;
}

/* Times `call` (an expression returning cudaError_t): 3 warm-ups, then REPS launches. */
#define TIME_KERNEL(t, name, bytes, flops, call)                                                             \
    do {                                                                                                     \
        if ((t)->failed)                                                                                     \
            break;                                                                                           \
        cudaError_t e_ = cudaSuccess;                                                                        \
        for (int r_ = 0; r_ < 3 && e_ == cudaSuccess; r_++)                                                  \
            e_ = (call);                                                                                     \
        cudaEventRecord((t)->e0, 0);                                                                         \
        for (int r_ = 0; r_ < REPS && e_ == cudaSuccess; r_++)                                               \
            e_ = (call);                                                                                     \
        cudaEventRecord((t)->e1, 0);                                                                         \
        if (e_ == cudaSuccess)                                                                               \
            e_ = cudaEventSynchronize((t)->e1);                                                              \
        float ms_ = 0;                                                                                       \
        cudaEventElapsedTime(&ms_, (t)->e0, (t)->e1);                                                        \
        if (e_ != cudaSuccess) {                                                                             \
            fprintf(stderr, "bench_kernels: %s: %s\n", name, cudaGetErrorString(e_));                        \
            (t)->failed = 1;                                                                                 \
        } else {                                                                                             \
            record((t), name, ms_, bytes, flops);                                                            \
        }                                                                                                    \
    } while (0)

static cudaError_t run_gemm(Gemm *g, const GemmShape *s, void *y, const bf16 *x, const bf16 *w) {
    Error err;
    return gemm_run(g, s, y, x, w, NULL, 0, &err) == 0 ? cudaSuccess : cudaErrorUnknown;
}

int bench_kernels(BenchKernelTimes *out) {
    memset(out, 0, sizeof *out);
    Timer t = {out, 0, 0, 0};
    cudaEventCreate(&t.e0);
    cudaEventCreate(&t.e1);
    const int D = 2560, I = 10240, H = 8, KVH = 4, DH = 256, V = 262208, QKV = (H + 2 * KVH) * DH;
    const size_t big = (size_t)V * D; /* the largest matrix: the output head */
    bf16 *w = zalloc(big * sizeof(bf16), &t);
    bf16 *x = zalloc((size_t)4096 * 3 * 1152 * sizeof(bf16) + (size_t)1024 * 2 * I * sizeof(bf16), &t);
    bf16 *y = zalloc((size_t)4096 * 3 * 1152 * sizeof(bf16) + (size_t)1024 * 2 * I * sizeof(bf16), &t);
    float *logits = zalloc((size_t)V * sizeof(float), &t);
    bf16 *kc = zalloc((size_t)4096 * KVH * DH * sizeof(bf16), &t),
         *vc = zalloc((size_t)4096 * KVH * DH * sizeof(bf16), &t);
    float *scratch = zalloc(cuda_attention_decode_scratch_floats(H, DH, 64) * sizeof(float), &t);
    int32_t *pos = zalloc(sizeof(int32_t), &t);
    Gemm *gemm = NULL;
    Error err;
    if (!t.failed && gemm_create(&gemm, (size_t)32 << 20, &err) != 0) {
        fprintf(stderr, "bench_kernels: %s\n", err.message);
        t.failed = 1;
    }
    if (!t.failed) {
        int p = 4095;
        cudaMemcpy(pos, &p, sizeof p, cudaMemcpyHostToDevice);
    }
    /* decode-step kernels (one token) */
    TIME_KERNEL(&t, "gemv_qkv_2560x4096", 2.0 * QKV * D, 0, cuda_gemv(y, x, w, NULL, D, QKV, 0));
    TIME_KERNEL(&t, "gemv_o_2048x2560", 2.0 * D * H * DH, 0, cuda_gemv(y, x, w, NULL, H * DH, D, 0));
    TIME_KERNEL(&t, "gemv_gate_up_2560x20480", 2.0 * 2 * I * D, 0, cuda_gemv(y, x, w, NULL, D, 2 * I, 0));
    TIME_KERNEL(&t, "gemv_down_10240x2560", 2.0 * D * I, 0, cuda_gemv(y, x, w, NULL, I, D, 0));
    TIME_KERNEL(&t, "gemv_head_f32_2560x262208", 2.0 * V * D, 0, cuda_gemv_f32(logits, x, w, D, V, 0));
    TIME_KERNEL(&t, "attn_decode_global_4096keys", 2.0 * 2 * 4096 * KVH * DH, 0,
                cuda_attention_cached(y, H * DH, x, H * DH, kc, vc, 4096, pos, NULL, 1, 0, H, KVH, DH,
                                      0.0625f, scratch, 64, 64, 0));
    TIME_KERNEL(&t, "attn_decode_local_ring1024", 2.0 * 2 * 1024 * KVH * DH, 0,
                cuda_attention_cached(y, H * DH, x, H * DH, kc, vc, 1024, pos, NULL, 1, 0, H, KVH, DH,
                                      0.0625f, scratch, 64, 32, 0));
    TIME_KERNEL(&t, "rmsnorm_residual_norm_1x2560", 0, 0,
                cuda_rmsnorm_residual_norm(x, y, x + D, w, w, 1, D, 1e-6f, 0));
    TIME_KERNEL(&t, "qkv_rope_store_1x8x256", 0, 0,
                cuda_qkv_rope_store(y, QKV, y + H * DH, QKV, y + (H + KVH) * DH, QKV, w, w, 1, H, KVH, DH,
                                    pos, 1e4f, 1.0f, 1e-6f, kc, vc, 0, 0));
    TIME_KERNEL(&t, "gelu_gate_1x10240", 0, 0, cuda_gelu_tanh_gate(y, x, x + I, 2 * I, 1, I, 0));
    /* prefill (1024 tokens) and SigLIP (4096 patches) */
    const int T = 1024, NP = 4096, DV = 1152;
    GemmShape up = {T, D, 2 * I, GEMM_W_OUT_IN, 0, 0}, vq = {NP, DV, 3 * DV, GEMM_W_OUT_IN, 0, 0};
    TIME_KERNEL(&t, "gemm_prefill_gate_up_1024x2560x20480", 0, 2.0 * T * D * 2 * I,
                run_gemm(gemm, &up, y, x, w));
    TIME_KERNEL(&t, "gemm_siglip_qkv_4096x1152x3456", 0, 2.0 * NP * DV * 3 * DV,
                run_gemm(gemm, &vq, y, x, w));
    TIME_KERNEL(&t, "flash_prefill_causal_1024x8x256", 0, 4.0 * T * T / 2 * H * DH,
                cuda_attention_prefill(y, x, QKV, x + H * DH, x + (H + KVH) * DH, QKV, NULL, T, H, KVH, DH, 1,
                                       0, 0.0625f, 0));
    TIME_KERNEL(&t, "flash_siglip_4096x16x72", 0, 4.0 * NP * NP * 16 * 72,
                cuda_attention_prefill(y, x, 3 * DV, x + DV, x + 2 * DV, 3 * DV, NULL, NP, 16, 16, 72, 0, 0,
                                       0.11785f, 0));
    gemm_destroy(gemm);
    cudaFree(w), cudaFree(x), cudaFree(y), cudaFree(logits), cudaFree(kc), cudaFree(vc), cudaFree(scratch),
        cudaFree(pos);
    cudaEventDestroy(t.e0);
    cudaEventDestroy(t.e1);
    return t.failed ? -1 : 0;
}

void bench_kernels_print(const BenchKernelTimes *t, FILE *f) {
    fprintf(f, "\n| kernel | us | GB/s | TFLOP/s |\n|---|---|---|---|\n");
    for (int i = 0; i < t->n; i++)
        fprintf(f, "| %s | %.1f | %.0f | %.1f |\n", t->k[i].name, t->k[i].us, t->k[i].gbps, t->k[i].tflops);
}

void bench_kernels_json(const BenchKernelTimes *t, FILE *f) {
    fprintf(f, "  \"kernels\": {");
    for (int i = 0; i < t->n; i++)
        fprintf(f, "%s\n    \"%s\": {\"us\": %.2f, \"gbps\": %.1f, \"tflops\": %.2f}", i ? "," : "",
                t->k[i].name, t->k[i].us, t->k[i].gbps, t->k[i].tflops);
    fprintf(f, "\n  }");
}
