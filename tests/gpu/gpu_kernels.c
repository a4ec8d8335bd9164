/* Every CUDA kernel against its CPU twin (kernels/kernels.h) on fresh random
 * inputs: real MedGemma 4B shapes and odd sizes. Inputs are bf16-exact so both
 * sides see the same numbers; the GPU stores bf16, the twin computes in fp32,
 * so tolerances are bf16-sized (relative L2 error). Outputs start poisoned. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/gemm.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"
#include "tests/gpu/gpu_check.h"

#define TOL_BF16 1e-2 /* one bf16 rounding of the output: ~2e-3 typical */
#define TOL_ATTN 2e-2 /* + probabilities rounded to bf16 for the tensor-core P.V */
#define TOL_COPY 4e-3 /* outputs that are one rounding of an exact value */
#define TOL_F32 1e-4  /* fp32 outputs of fp32 accumulations */

static cudaStream_t S = 0; /* the legacy default stream: launches then cudaMemcpy order naturally */

/* ---- embedding */

static void test_embedding(const char *name, int vocab, int dim, int n_tokens, float scale) {
    if (!gpu_selected(name))
        return;
    float *table = rand_f32_bf16exact((size_t)vocab * dim, 0.05f);
    bf16 *table_b = to_bf16_host(table, (size_t)vocab * dim);
    int32_t *ids = malloc(n_tokens * sizeof *ids);
    for (int t = 0; t < n_tokens; t++)
        ids[t] = (int32_t)((t * 7919u + 13u) % (unsigned)vocab);
    ids[0] = vocab - 1;
    float *ref = malloc((size_t)n_tokens * dim * sizeof *ref);
    embedding_lookup(ref, table_b, ids, n_tokens, dim, scale);
    bf16 *d_table = dev_copy(table_b, (size_t)vocab * dim * sizeof(bf16));
    int32_t *d_ids = dev_copy(ids, n_tokens * sizeof *ids);
    bf16 *d_out = dev_poisoned((size_t)n_tokens * dim * sizeof(bf16));
    GPU_OK(cuda_embedding_lookup(d_out, d_table, d_ids, n_tokens, dim, scale, S));
    float *out = host_from_dev_bf16(d_out, (size_t)n_tokens * dim);
    gpu_report(name, rel_err(out, ref, (size_t)n_tokens * dim), TOL_COPY);
    cudaFree(d_table), cudaFree(d_ids), cudaFree(d_out);
    free(table), free(table_b), free(ids), free(ref), free(out);
}

/* ---- rmsnorm (plain, residual, fused residual + next norm) */

static void test_rmsnorm(const char *name, int rows, int dim) {
    if (!gpu_selected(name))
        return;
    size_t n = (size_t)rows * dim;
    float *x = rand_f32_bf16exact(n, 3.0f), *h = rand_f32_bf16exact(n, 20.0f);
    float *w1 = rand_f32_bf16exact(dim, 1.0f), *w2 = rand_f32_bf16exact(dim, 1.0f);
    bf16 *w1b = to_bf16_host(w1, dim), *w2b = to_bf16_host(w2, dim);
    float *ref = malloc(n * sizeof *ref), *ref_x = malloc(n * sizeof *ref_x);
    char sub[160];

    rmsnorm(ref, x, w1b, rows, dim, 1e-6f);
    bf16 *d_x = dev_from_f32_as_bf16(x, n), *d_h = dev_from_f32_as_bf16(h, n);
    bf16 *d_w1 = dev_copy(w1b, dim * sizeof(bf16)), *d_w2 = dev_copy(w2b, dim * sizeof(bf16));
    bf16 *d_out = dev_poisoned(n * sizeof(bf16));
    GPU_OK(cuda_rmsnorm(d_out, d_x, d_w1, rows, dim, 1e-6f, S));
    float *out = host_from_dev_bf16(d_out, n);
    snprintf(sub, sizeof sub, "%s_plain", name);
    gpu_report(sub, rel_err(out, ref, n), TOL_BF16);
    free(out);

    /* in place */
    bf16 *d_inplace = dev_from_f32_as_bf16(x, n);
    GPU_OK(cuda_rmsnorm(d_inplace, d_inplace, d_w1, rows, dim, 1e-6f, S));
    out = host_from_dev_bf16(d_inplace, n);
    snprintf(sub, sizeof sub, "%s_in_place", name);
    gpu_report(sub, rel_err(out, ref, n), TOL_BF16);
    free(out);

    /* x += rmsnorm(h) */
    memcpy(ref_x, x, n * sizeof *ref_x);
    rmsnorm_residual(ref_x, h, w1b, rows, dim, 1e-6f);
    GPU_OK(cuda_rmsnorm_residual(d_x, d_h, d_w1, rows, dim, 1e-6f, S));
    out = host_from_dev_bf16(d_x, n);
    snprintf(sub, sizeof sub, "%s_residual", name);
    gpu_report(sub, rel_err(out, ref_x, n), TOL_BF16);
    free(out);

    /* fused: x += rmsnorm(h, w1); out = rmsnorm(x, w2) */
    cudaFree(d_x);
    d_x = dev_from_f32_as_bf16(x, n);
    GPU_OK(cudaMemset(d_out, 0xFF, n * sizeof(bf16)));
    rmsnorm(ref, ref_x, w2b, rows, dim, 1e-6f);
    GPU_OK(cuda_rmsnorm_residual_norm(d_x, d_out, d_h, d_w1, d_w2, rows, dim, 1e-6f, S));
    float *gx = host_from_dev_bf16(d_x, n);
    out = host_from_dev_bf16(d_out, n);
    snprintf(sub, sizeof sub, "%s_fused_x", name);
    gpu_report(sub, rel_err(gx, ref_x, n), TOL_BF16);
    snprintf(sub, sizeof sub, "%s_fused_norm", name);
    gpu_report(sub, rel_err(out, ref, n), TOL_BF16);
    cudaFree(d_x), cudaFree(d_h), cudaFree(d_w1), cudaFree(d_w2), cudaFree(d_out), cudaFree(d_inplace);
    free(x), free(h), free(w1), free(w2), free(w1b), free(w2b), free(ref), free(ref_x), free(out), free(gx);
}

/* ---- rope */

/* qkv_rope_store: q and k heads as the twin's rope (theta, linear scaling); the caches hold
 * exactly the GPU's roped k rows and the v rows at the right slots; other slots untouched. */
static void test_qkv_rope_store(const char *name, int n_tokens, int H, int KVH, int Dh, int pos0, int ring,
                                int slots, float theta, float rope_scale) {
    if (!gpu_selected(name))
        return;
    int qd = H * Dh, kvd = KVH * Dh, ld = qd + 2 * kvd;
    size_t n = (size_t)n_tokens * ld;
    float *x = rand_f32_bf16exact(n, 4.0f), *qn = rand_f32_bf16exact(Dh, 1.0f),
          *kn = rand_f32_bf16exact(Dh, 1.0f);
    bf16 *qnb = to_bf16_host(qn, Dh), *knb = to_bf16_host(kn, Dh);
    float *rq = malloc((size_t)n_tokens * qd * sizeof *rq), *rk = malloc((size_t)n_tokens * kvd * sizeof *rk);
    for (int t = 0; t < n_tokens; t++) {
        memcpy(rq + (size_t)t * qd, x + (size_t)t * ld, qd * sizeof(float));
        memcpy(rk + (size_t)t * kvd, x + (size_t)t * ld + qd, kvd * sizeof(float));
    }
    qk_norm_rope(rq, qnb, n_tokens, H, Dh, pos0, theta, rope_scale, 1e-6f);
    qk_norm_rope(rk, knb, n_tokens, KVH, Dh, pos0, theta, rope_scale, 1e-6f);
    bf16 *d_x = dev_from_f32_as_bf16(x, n), *d_qn = dev_copy(qnb, Dh * sizeof(bf16)),
         *d_kn = dev_copy(knb, Dh * sizeof(bf16));
    bf16 *d_kc = dev_poisoned((size_t)slots * kvd * sizeof(bf16)),
         *d_vc = dev_poisoned((size_t)slots * kvd * sizeof(bf16));
    int32_t *d_pos = pos0 ? dev_copy(&pos0, sizeof pos0) : NULL;
    /* q, k, v: three views of one fused row buffer (row stride ld each), as strided tensors */
    GPU_OK(cuda_qkv_rope_store(d_x, ld, d_x + qd, ld, d_x + qd + kvd, ld, d_qn, d_kn, n_tokens, H, KVH, Dh,
                               d_pos, theta, rope_scale, 1e-6f, d_kc, d_vc, ring, S));
    GPU_OK(cudaDeviceSynchronize());
    bf16 *gx = malloc(n * sizeof(bf16)), *kc = malloc((size_t)slots * kvd * sizeof(bf16)),
         *vc = malloc((size_t)slots * kvd * sizeof(bf16));
    GPU_OK(cudaMemcpy(gx, d_x, n * sizeof(bf16), cudaMemcpyDeviceToHost));
    GPU_OK(cudaMemcpy(kc, d_kc, (size_t)slots * kvd * sizeof(bf16), cudaMemcpyDeviceToHost));
    GPU_OK(cudaMemcpy(vc, d_vc, (size_t)slots * kvd * sizeof(bf16), cudaMemcpyDeviceToHost));
    float *oq = malloc((size_t)n_tokens * qd * sizeof *oq),
          *ok_ = malloc((size_t)n_tokens * kvd * sizeof *ok_);
    for (int t = 0; t < n_tokens; t++) {
        for (int i = 0; i < qd; i++)
            oq[(size_t)t * qd + i] = bf16_to_f32(gx[(size_t)t * ld + i]);
        for (int i = 0; i < kvd; i++)
            ok_[(size_t)t * kvd + i] = bf16_to_f32(gx[(size_t)t * ld + qd + i]);
    }
    char sub[160];
    snprintf(sub, sizeof sub, "%s_q", name);
    gpu_report(sub, rel_err(oq, rq, (size_t)n_tokens * qd), TOL_BF16);
    snprintf(sub, sizeof sub, "%s_k", name);
    gpu_report(sub, rel_err(ok_, rk, (size_t)n_tokens * kvd), TOL_BF16);
    long bad = 0;
    for (int s = 0; s < slots; s++) {
        int t = -1;
        for (int tt = 0; tt < n_tokens; tt++) {
            int p = pos0 + tt;
            if (ring > 0 ? (p % ring == s && p > pos0 + n_tokens - 1 - ring) : p == s)
                t = tt;
        }
        for (int i = 0; i < kvd; i++) {
            bf16 ek = t < 0 ? 0xFFFF : gx[(size_t)t * ld + qd + i],
                 ev = t < 0 ? 0xFFFF : gx[(size_t)t * ld + qd + kvd + i];
            bad += kc[(size_t)s * kvd + i] != ek || vc[(size_t)s * kvd + i] != ev;
        }
    }
    snprintf(sub, sizeof sub, "%s_cache", name);
    if (bad)
        gpu_fail(sub, "%ld cache values differ from the roped k / the v rows", bad);
    else
        gpu_pass(sub, "exact (%d tokens from position %d, ring %d)", n_tokens, pos0, ring);
    cudaFree(d_x), cudaFree(d_qn), cudaFree(d_kn), cudaFree(d_kc), cudaFree(d_vc), cudaFree(d_pos);
    free(x), free(qn), free(kn), free(qnb), free(knb), free(rq), free(rk), free(gx), free(kc), free(vc),
        free(oq), free(ok_);
}

/* ---- attention */

/* q, k, v live in one fused row [T, (H + 2 KVH) * Dh] like the engine's qkv buffer. */
static void test_attention_prefill(const char *name, int T, int H, int KVH, int Dh, int causal, int window,
                                   const int32_t *image_block, int fused) {
    if (!gpu_selected(name))
        return;
    int qd = H * Dh, kvd = KVH * Dh;
    int ld_q = fused ? qd + 2 * kvd : qd, ld_kv = fused ? qd + 2 * kvd : kvd;
    float scale = 1.0f / sqrtf((float)Dh);
    float *q = rand_f32_bf16exact((size_t)T * qd, 2.0f), *k = rand_f32_bf16exact((size_t)T * kvd, 2.0f);
    float *v = rand_f32_bf16exact((size_t)T * kvd, 1.0f);
    float *ref = malloc((size_t)T * qd * sizeof *ref);
    attention_prefill(ref, q, k, v, image_block, T, H, KVH, Dh, causal, window, scale);
    bf16 *d_q, *d_k, *d_v, *d_qkv = NULL, *d_k2 = NULL, *d_v2 = NULL;
    if (fused) {
        float *qkv = malloc((size_t)T * ld_q * sizeof *qkv);
        for (int t = 0; t < T; t++) {
            memcpy(qkv + (size_t)t * ld_q, q + (size_t)t * qd, qd * sizeof(float));
            memcpy(qkv + (size_t)t * ld_q + qd, k + (size_t)t * kvd, kvd * sizeof(float));
            memcpy(qkv + (size_t)t * ld_q + qd + kvd, v + (size_t)t * kvd, kvd * sizeof(float));
        }
        d_qkv = dev_from_f32_as_bf16(qkv, (size_t)T * ld_q);
        free(qkv);
        d_q = d_qkv, d_k = d_qkv + qd, d_v = d_qkv + qd + kvd;
    } else {
        d_q = dev_from_f32_as_bf16(q, (size_t)T * qd);
        d_k = d_k2 = dev_from_f32_as_bf16(k, (size_t)T * kvd);
        d_v = d_v2 = dev_from_f32_as_bf16(v, (size_t)T * kvd);
    }
    int32_t *d_ib = image_block ? dev_copy(image_block, T * sizeof(int32_t)) : NULL;
    bf16 *d_out = dev_poisoned((size_t)T * qd * sizeof(bf16));
    GPU_OK(cuda_attention_prefill(d_out, d_q, ld_q, d_k, d_v, ld_kv, d_ib, T, H, KVH, Dh, causal, window,
                                  scale, S));
    float *out = host_from_dev_bf16(d_out, (size_t)T * qd);
    gpu_report(name, rel_err(out, ref, (size_t)T * qd), TOL_ATTN);
    if (fused)
        cudaFree(d_qkv);
    else
        cudaFree(d_q), cudaFree(d_k2), cudaFree(d_v2);
    cudaFree(d_ib), cudaFree(d_out);
    free(q), free(k), free(v), free(ref), free(out);
}

static void test_attention_decode(const char *name, int slots, int pos, int ring, int H, int KVH, int Dh,
                                  int n_splits) {
    if (!gpu_selected(name))
        return;
    int qd = H * Dh, kvd = KVH * Dh;
    int n_keys = ring > 0 && pos + 1 > ring ? ring : pos + 1;
    float scale = 1.0f / 16.0f;
    float *q = rand_f32_bf16exact(qd, 4.0f), *kc = rand_f32_bf16exact((size_t)slots * kvd, 2.0f);
    float *vc = rand_f32_bf16exact((size_t)slots * kvd, 1.0f);
    float *ref = malloc(qd * sizeof *ref);
    attention_decode(ref, q, kc, vc, n_keys, H, KVH, Dh, scale);
    bf16 *d_q = dev_from_f32_as_bf16(q, qd), *d_k = dev_from_f32_as_bf16(kc, (size_t)slots * kvd);
    bf16 *d_v = dev_from_f32_as_bf16(vc, (size_t)slots * kvd);
    int32_t *d_pos = dev_copy(&pos, sizeof pos);
    float *d_scratch = dev_poisoned(cuda_attention_decode_scratch_floats(H, Dh, n_splits) * sizeof(float));
    bf16 *d_out = dev_poisoned(qd * sizeof(bf16));
    GPU_OK(cuda_attention_cached(d_out, qd, d_q, qd, d_k, d_v, ring > 0 ? ring : slots, d_pos, NULL, 1, 0, H,
                                 KVH, Dh, scale, d_scratch, n_splits, n_splits, S));
    float *out = host_from_dev_bf16(d_out, qd);
    gpu_report(name, rel_err(out, ref, qd), TOL_BF16);
    cudaFree(d_q), cudaFree(d_k), cudaFree(d_v), cudaFree(d_pos), cudaFree(d_scratch), cudaFree(d_out);
    free(q), free(kc), free(vc), free(ref), free(out);
}

/* cached: n rows at positions pos0.. over a cache of `capacity` slots holding the last
 * `capacity` positions of the sequence (what the store leaves), against the CPU twin
 * attention_cached; an image run [img, img + img_len) of the batch sees itself whole. */
static void test_attention_cached(const char *name, int n, int pos0, int capacity, int window, int H, int KVH,
                                  int Dh, int img, int img_len, int n_splits) {
    if (!gpu_selected(name))
        return;
    int qd = H * Dh, kvd = KVH * Dh, total = pos0 + n;
    float scale = 1.0f / sqrtf((float)Dh);
    float *q = rand_f32_bf16exact((size_t)n * qd, 4.0f), *k = rand_f32_bf16exact((size_t)total * kvd, 2.0f);
    float *v = rand_f32_bf16exact((size_t)total * kvd, 1.0f);
    float *kc = calloc((size_t)capacity * kvd, sizeof *kc), *vc = calloc((size_t)capacity * kvd, sizeof *vc);
    for (int p = total - capacity > 0 ? total - capacity : 0; p < total; p++) {
        memcpy(kc + (size_t)(p % capacity) * kvd, k + (size_t)p * kvd, kvd * sizeof(float));
        memcpy(vc + (size_t)(p % capacity) * kvd, v + (size_t)p * kvd, kvd * sizeof(float));
    }
    int32_t *ib = malloc(n * sizeof *ib);
    for (int t = 0; t < n; t++)
        ib[t] = t >= img && t < img + img_len ? 0 : -1;
    float *ref = malloc((size_t)n * qd * sizeof *ref);
    attention_cached(ref, q, kc, vc, capacity, img_len ? ib : NULL, n, pos0, H, KVH, Dh, window, scale);
    bf16 *d_q = dev_from_f32_as_bf16(q, (size_t)n * qd),
         *d_k = dev_from_f32_as_bf16(kc, (size_t)capacity * kvd);
    bf16 *d_v = dev_from_f32_as_bf16(vc, (size_t)capacity * kvd);
    int32_t *d_pos = dev_copy(&pos0, sizeof pos0), *d_ib = img_len ? dev_copy(ib, n * sizeof *ib) : NULL;
    const int units = 64; /* the backend's scratch: DEVICE_PLAN_DECODE_SPLITS (row, split) partials */
    float *d_scratch = dev_poisoned(cuda_attention_decode_scratch_floats(H, Dh, units) * sizeof(float));
    bf16 *d_out = dev_poisoned((size_t)n * qd * sizeof(bf16));
    GPU_OK(cuda_attention_cached(d_out, qd, d_q, qd, d_k, d_v, capacity, d_pos, d_ib, n, window, H, KVH, Dh,
                                 scale, d_scratch, units, n_splits, S));
    float *out = host_from_dev_bf16(d_out, (size_t)n * qd);
    gpu_report(name, rel_err(out, ref, (size_t)n * qd), TOL_BF16);
    cudaFree(d_q), cudaFree(d_k), cudaFree(d_v), cudaFree(d_pos), cudaFree(d_ib), cudaFree(d_scratch),
        cudaFree(d_out);
    free(q), free(k), free(v), free(kc), free(vc), free(ib), free(ref), free(out);
}

/* ---- gelu */

static void test_gelu(const char *name, int rows, int width) {
    if (!gpu_selected(name))
        return;
    size_t n = (size_t)rows * width;
    float *gu = rand_f32_bf16exact(2 * n, 4.0f);
    float *gate = malloc(n * sizeof *gate), *up = malloc(n * sizeof *up), *ref = malloc(n * sizeof *ref);
    for (int t = 0; t < rows; t++) {
        memcpy(gate + (size_t)t * width, gu + (size_t)t * 2 * width, width * sizeof(float));
        memcpy(up + (size_t)t * width, gu + (size_t)t * 2 * width + width, width * sizeof(float));
    }
    gelu_tanh_gate(ref, gate, up, (int)n);
    bf16 *d_gate = dev_from_f32_as_bf16(gate, n), *d_up = dev_from_f32_as_bf16(up, n),
         *d_out = dev_poisoned(n * sizeof(bf16));
    GPU_OK(cuda_gelu_tanh_gate(d_out, d_gate, d_up, width, rows, width, S));
    float *out = host_from_dev_bf16(d_out, n);
    char sub[160];
    snprintf(sub, sizeof sub, "%s_gate", name);
    gpu_report(sub, rel_err(out, ref, n), TOL_BF16);
    free(out);
    /* in place over gate (the forward pass's out = gate), rows at the stride of a wider buffer */
    bf16 *d_gu = dev_from_f32_as_bf16(gu, 2 * n); /* rows: gate | up, stride 2 * width */
    GPU_OK(cuda_gelu_tanh_gate(d_gu, d_gu, d_gu + width, 2 * width, rows, width, S));
    float *gu_out = host_from_dev_bf16(d_gu, 2 * n);
    out = malloc(n * sizeof *out);
    for (int t = 0; t < rows; t++)
        memcpy(out + (size_t)t * width, gu_out + (size_t)t * 2 * width, width * sizeof(float));
    snprintf(sub, sizeof sub, "%s_gate_in_place_strided", name);
    gpu_report(sub, rel_err(out, ref, n), TOL_BF16);
    free(out), free(gu_out);
    /* plain gelu in place over the gate values */
    memcpy(ref, gate, n * sizeof *ref);
    gelu_tanh(ref, (int)n);
    bf16 *d_x = dev_from_f32_as_bf16(gate, n);
    GPU_OK(cuda_gelu_tanh(d_x, (long long)n, S));
    out = host_from_dev_bf16(d_x, n);
    snprintf(sub, sizeof sub, "%s_plain", name);
    gpu_report(sub, rel_err(out, ref, n), TOL_BF16);
    cudaFree(d_gu), cudaFree(d_gate), cudaFree(d_up), cudaFree(d_out), cudaFree(d_x);
    free(gu), free(gate), free(up), free(ref), free(out);
}

/* ---- matmul: the GEMV (one row) and the cuBLASLt GEMM */

static void test_gemv(const char *name, int in, int out_dim, int with_bias, int f32_out) {
    if (!gpu_selected(name))
        return;
    float *x = rand_f32_bf16exact(in, 1.0f), *w = rand_f32_bf16exact((size_t)out_dim * in, 0.05f);
    float *b = with_bias ? rand_f32_bf16exact(out_dim, 0.5f) : NULL;
    bf16 *wb = to_bf16_host(w, (size_t)out_dim * in), *bb = b ? to_bf16_host(b, out_dim) : NULL;
    float *ref = malloc(out_dim * sizeof *ref);
    matmul(ref, x, wb, bb, 1, in, out_dim);
    bf16 *d_x = dev_from_f32_as_bf16(x, in), *d_w = dev_copy(wb, (size_t)out_dim * in * sizeof(bf16));
    bf16 *d_b = bb ? dev_copy(bb, out_dim * sizeof(bf16)) : NULL;
    float *out;
    if (f32_out) {
        float *d_y = dev_poisoned(out_dim * sizeof(float));
        GPU_OK(cuda_gemv_f32(d_y, d_x, d_w, in, out_dim, S));
        out = host_from_dev_f32(d_y, out_dim);
        cudaFree(d_y);
    } else {
        bf16 *d_y = dev_poisoned(out_dim * sizeof(bf16));
        GPU_OK(cuda_gemv(d_y, d_x, d_w, d_b, in, out_dim, S));
        out = host_from_dev_bf16(d_y, out_dim);
        cudaFree(d_y);
    }
    gpu_report(name, rel_err(out, ref, out_dim), f32_out ? TOL_F32 : TOL_BF16);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_b);
    free(x), free(w), free(b), free(wb), free(bb), free(ref), free(out);
}

static void test_gemm(const char *name, Gemm *gemm, int T, int in, int out_dim, GemmWeightLayout layout,
                      int with_bias, int f32_out) {
    if (!gpu_selected(name))
        return;
    float *x = rand_f32_bf16exact((size_t)T * in, 1.0f), *w = rand_f32_bf16exact((size_t)out_dim * in, 0.05f);
    float *b = with_bias ? rand_f32_bf16exact(out_dim, 0.5f) : NULL;
    bf16 *wb = to_bf16_host(w, (size_t)out_dim * in), *bb = b ? to_bf16_host(b, out_dim) : NULL;
    float *ref = malloc((size_t)T * out_dim * sizeof *ref);
    if (layout == GEMM_W_OUT_IN)
        matmul(ref, x, wb, bb, T, in, out_dim);
    else
        matmul_in_out(ref, x, wb, T, in, out_dim);
    bf16 *d_x = dev_from_f32_as_bf16(x, (size_t)T * in),
         *d_w = dev_copy(wb, (size_t)out_dim * in * sizeof(bf16));
    bf16 *d_b = bb ? dev_copy(bb, out_dim * sizeof(bf16)) : NULL;
    size_t esz = f32_out ? sizeof(float) : sizeof(bf16);
    void *d_y = dev_poisoned((size_t)T * out_dim * esz);
    GemmShape shape = {T, in, out_dim, layout, with_bias, f32_out};
    Error err = {{0}};
    int plans_before = gemm_plan_count(gemm);
    int rc = gemm_run(gemm, &shape, d_y, d_x, d_w, d_b, S, &err);
    int plans_after_first = gemm_plan_count(gemm);
    if (rc == 0) /* the second call must reuse the plan */
        rc = gemm_run(gemm, &shape, d_y, d_x, d_w, d_b, S, &err);
    if (rc != 0) {
        gpu_fail(name, "%s", err.message);
    } else if (gemm_plan_count(gemm) != plans_after_first || plans_after_first > plans_before + 1) {
        gpu_fail(name, "plans not reused (%d -> %d -> %d)", plans_before, plans_after_first,
                 gemm_plan_count(gemm));
    } else {
        float *out = f32_out ? host_from_dev_f32(d_y, (size_t)T * out_dim)
                             : host_from_dev_bf16(d_y, (size_t)T * out_dim);
        gpu_report(name, rel_err(out, ref, (size_t)T * out_dim), f32_out ? TOL_F32 * 10 : TOL_BF16);
        free(out);
    }
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_b), cudaFree(d_y);
    free(x), free(w), free(b), free(wb), free(bb), free(ref);
}

/* ---- SigLIP ops */

static void test_residual(const char *name, long long n) {
    if (!gpu_selected(name))
        return;
    float *x = rand_f32_bf16exact(n, 2.0f), *y = rand_f32_bf16exact(n, 2.0f);
    float *ref = malloc(n * sizeof *ref);
    memcpy(ref, x, n * sizeof *ref);
    residual_add(ref, y, (int)n);
    bf16 *d_x = dev_from_f32_as_bf16(x, n), *d_y = dev_from_f32_as_bf16(y, n);
    GPU_OK(cuda_residual_add(d_x, d_y, n, S));
    float *out = host_from_dev_bf16(d_x, n);
    gpu_report(name, rel_err(out, ref, n), TOL_COPY);
    cudaFree(d_x), cudaFree(d_y);
    free(x), free(y), free(ref), free(out);
}

static void test_layernorm(const char *name, int rows, int dim) {
    if (!gpu_selected(name))
        return;
    size_t n = (size_t)rows * dim;
    float *x = rand_f32_bf16exact(n, 3.0f), *w = rand_f32_bf16exact(dim, 1.5f),
          *b = rand_f32_bf16exact(dim, 0.5f);
    for (size_t i = 0; i < n; i++) /* an offset, so the mean matters */
        x[i] = round_to_bf16(x[i] + 1.0f);
    bf16 *wb = to_bf16_host(w, dim), *bb = to_bf16_host(b, dim);
    float *ref = malloc(n * sizeof *ref);
    layernorm(ref, x, wb, bb, rows, dim, 1e-6f);
    bf16 *d_x = dev_from_f32_as_bf16(x, n), *d_w = dev_copy(wb, dim * sizeof(bf16)),
         *d_b = dev_copy(bb, dim * sizeof(bf16));
    bf16 *d_out = dev_poisoned(n * sizeof(bf16));
    GPU_OK(cuda_layernorm(d_out, d_x, d_w, d_b, rows, dim, 1e-6f, S));
    float *out = host_from_dev_bf16(d_out, n);
    gpu_report(name, rel_err(out, ref, n), TOL_BF16);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_b), cudaFree(d_out);
    free(x), free(w), free(b), free(wb), free(bb), free(ref), free(out);
}

/* im2col + cuBLASLt GEMM with the bias epilogue + position-embedding add = patch_embed. */
static void test_patch_embed(const char *name, Gemm *gemm, int image_size, int patch, int channels,
                             int hidden) {
    if (!gpu_selected(name))
        return;
    int grid = image_size / patch, np = grid * grid, k = channels * patch * patch, k_pad = (k + 7) / 8 * 8;
    size_t n_pix = (size_t)channels * image_size * image_size;
    float *pix = rand_f32_bf16exact(n_pix, 1.0f), *w = rand_f32_bf16exact((size_t)hidden * k, 0.05f);
    float *b = rand_f32_bf16exact(hidden, 0.5f), *pos = rand_f32_bf16exact((size_t)np * hidden, 0.5f);
    bf16 *wb = to_bf16_host(w, (size_t)hidden * k), *bb = to_bf16_host(b, hidden),
         *pb = to_bf16_host(pos, (size_t)np * hidden);
    float *ref = malloc((size_t)np * hidden * sizeof *ref);
    patch_embed(ref, pix, wb, bb, pb, image_size, patch, channels, hidden);
    bf16 *wpad = calloc((size_t)hidden * k_pad, sizeof(bf16));
    for (int o = 0; o < hidden; o++)
        memcpy(wpad + (size_t)o * k_pad, wb + (size_t)o * k, k * sizeof(bf16));
    float *d_pix = dev_copy(pix, n_pix * sizeof(float));
    bf16 *d_w = dev_copy(wpad, (size_t)hidden * k_pad * sizeof(bf16)),
         *d_b = dev_copy(bb, hidden * sizeof(bf16));
    bf16 *d_pos = dev_copy(pb, (size_t)np * hidden * sizeof(bf16));
    bf16 *d_patches = dev_poisoned((size_t)np * k_pad * sizeof(bf16)),
         *d_out = dev_poisoned((size_t)np * hidden * sizeof(bf16));
    GPU_OK(cuda_patch_im2col(d_patches, d_pix, image_size, patch, channels, k_pad, S));
    GemmShape shape = {np, k_pad, hidden, GEMM_W_OUT_IN, 1, 0};
    Error err = {{0}};
    if (gemm_run(gemm, &shape, d_out, d_patches, d_w, d_b, S, &err) != 0) {
        gpu_fail(name, "%s", err.message);
    } else {
        GPU_OK(cuda_residual_add(d_out, d_pos, (long long)np * hidden, S));
        float *out = host_from_dev_bf16(d_out, (size_t)np * hidden);
        gpu_report(name, rel_err(out, ref, (size_t)np * hidden), TOL_BF16);
        free(out);
    }
    cudaFree(d_pix), cudaFree(d_w), cudaFree(d_b), cudaFree(d_pos), cudaFree(d_patches), cudaFree(d_out);
    free(pix), free(w), free(b), free(pos), free(wb), free(bb), free(pb), free(ref), free(wpad);
}

static void test_avgpool(const char *name, int grid, int k, int dim) {
    if (!gpu_selected(name))
        return;
    size_t n = (size_t)grid * grid * dim, m = (size_t)(grid / k) * (grid / k) * dim;
    float *x = rand_f32_bf16exact(n, 2.0f), *ref = malloc(m * sizeof *ref);
    avgpool_grid(ref, x, grid, k, dim);
    bf16 *d_x = dev_from_f32_as_bf16(x, n), *d_out = dev_poisoned(m * sizeof(bf16));
    GPU_OK(cuda_avgpool_grid(d_out, d_x, grid, k, dim, S));
    float *out = host_from_dev_bf16(d_out, m);
    gpu_report(name, rel_err(out, ref, m), TOL_COPY);
    cudaFree(d_x), cudaFree(d_out);
    free(x), free(ref), free(out);
}

/* Image blocks: -1 text, b >= 0 for the soft tokens of image b. */
static int32_t *image_blocks(int T, int n_runs, const int *starts, const int *lens) {
    int32_t *ib = malloc(T * sizeof *ib);
    for (int t = 0; t < T; t++)
        ib[t] = -1;
    for (int r = 0; r < n_runs; r++)
        for (int t = starts[r]; t < starts[r] + lens[r] && t < T; t++)
            ib[t] = r;
    return ib;
}

void gpu_kernel_tests(void) {
    Gemm *gemm = NULL;
    Error err = {{0}};
    if (gemm_create(&gemm, (size_t)32 << 20, &err) != 0) {
        gpu_fail("gemm_create", "%s", err.message);
        return;
    }
    /* MedGemma 4B shapes: hidden 2560, MLP 10240, 8 q / 4 kv heads x 256, vocab 262208;
     * SigLIP: 4096 patches x 1152, 16 heads x 72, MLP 4304. Then odd sizes. */
    test_embedding("embedding_4b", 8192, 2560, 37, 50.5f);
    test_embedding("embedding_odd", 97, 76, 5, 8.6875f);

    test_rmsnorm("rmsnorm_4b", 33, 2560);
    test_rmsnorm("rmsnorm_siglip_proj", 256, 1152);
    test_rmsnorm("rmsnorm_odd", 5, 76);
    test_rmsnorm("rmsnorm_one", 1, 36);

    test_qkv_rope_store("rope_qkv_store_4b_decode_ring", 1, 8, 4, 256, 5000, 1024, 1024, 1e4f, 1.0f);
    test_qkv_rope_store("rope_qkv_store_4b_prefill_global", 40, 8, 4, 256, 0, 0, 64, 1e6f, 8.0f);
    test_qkv_rope_store("rope_qkv_store_4b_global_far", 3, 8, 4, 256, gpu_small ? 3000 : 70000, 0,
                        gpu_small ? 3003 : 70003, 1e6f, 8.0f);
    test_qkv_rope_store("rope_qkv_store_prefill_ring_wrap", 50, 4, 2, 16, 0, 16, 16, 1e4f, 1.0f);
    test_qkv_rope_store("rope_qkv_store_odd_continue", 7, 4, 1, 24, 37, 16, 16, 1e4f, 1.0f);

    {
        int st[2] = {100, 400}, ln[2] = {256, 64};
        int32_t *ib = image_blocks(600, 2, st, ln);
        test_attention_prefill("attn_prefill_4b_local_images", 600, 8, 4, 256, 1, 256, ib, 1);
        free(ib);
    }
    test_attention_prefill("attn_prefill_4b_global", gpu_small ? 130 : 777, 8, 4, 256, 1, 0, NULL, 1);
    test_attention_prefill("attn_prefill_siglip", gpu_small ? 200 : 1024, 16, 16, 72, 0, 0, NULL, 1);
    {
        int st[2] = {10, 30}, ln[2] = {10, 7};
        int32_t *ib = image_blocks(45, 2, st, ln);
        test_attention_prefill("attn_prefill_odd_mqa_images", 45, 4, 1, 24, 1, 16, ib, 0);
        free(ib);
    }
    test_attention_prefill("attn_prefill_one_token", 1, 8, 4, 256, 1, 0, NULL, 1);
    test_attention_prefill("attn_prefill_dh32_window", 70, 4, 2, 32, 1, 12, NULL, 0);
    test_attention_prefill("attn_prefill_dh128", 100, 4, 4, 128, 1, 0, NULL, 0);
    test_attention_prefill("attn_prefill_dh64_gqa", 90, 8, 2, 64, 1, 0, NULL, 1); /* the DP = 64 instance */

    test_attention_decode("attn_decode_4b_global", 4096, 2999, 0, 8, 4, 256, 64);
    test_attention_decode("attn_decode_4b_ring", 1024, 5000, 1024, 8, 4, 256, 32);
    test_attention_decode("attn_decode_first_token", 4096, 0, 0, 8, 4, 256, 64);
    test_attention_decode("attn_decode_odd_g4", 64, 36, 0, 4, 1, 24, 5);
    test_attention_decode("attn_decode_g8", 300, 250, 0, 8, 1, 64, 7);
    test_attention_decode("attn_decode_g1_ring", 16, 40, 16, 2, 2, 16, 3);
    /* a prompt continuing a cached prefix (issue 16): 4B local layer, window 1024 in a ring of
     * 2048 that has wrapped, an image block of 256 rows in the batch; 4B global layer; odd
     * sizes (MQA, head_dim 24) with a ring of window + 8 slots, more rows than one launch */
    test_attention_cached("attn_cached_4b_local_ring_wrap_image", gpu_small ? 12 : 40, 3000, 2048, 1024, 8, 4,
                          256, 4, gpu_small ? 6 : 16, 1);
    test_attention_cached("attn_cached_4b_global", gpu_small ? 4 : 12, gpu_small ? 1500 : 5000, 8192, 0, 8, 4,
                          256, 0, 0, 2);
    test_attention_cached("attn_cached_4b_decode_ring_extra", 1, 4100, 2048, 1024, 8, 4, 256, 0, 0, 32);
    test_attention_cached("attn_cached_odd_mqa_ring", 8, 50, 24, 16, 4, 1, 24, 3, 4, 1);
    test_attention_cached("attn_cached_odd_many_rows", 90, 7, 4096, 0, 2, 2, 16, 40, 10, 1);

    test_gelu("gelu_4b", 3, 10240);
    test_gelu("gelu_siglip", gpu_small ? 16 : 4096, 4304);
    test_gelu("gelu_odd", 1, 77);

    test_gemv("gemv_4b_qkv", 2560, 4096, 0, 0);
    test_gemv("gemv_4b_down", 10240, 2560, 0, 0);
    test_gemv("gemv_4b_head_f32", 2560, gpu_small ? 4096 : 65536, 0, 1);
    test_gemv("gemv_odd_bias_scalar", 36, 77, 1, 0);
    test_gemv("gemv_odd_f32", 76, 13, 0, 1);

    test_gemm("gemm_4b_qkv", gemm, 100, 2560, 4096, GEMM_W_OUT_IN, 0, 0);
    test_gemm("gemm_4b_down", gemm, 37, 10240, 2560, GEMM_W_OUT_IN, 0, 0);
    test_gemm("gemm_siglip_qkv_bias", gemm, gpu_small ? 64 : 512, 1152, 3456, GEMM_W_OUT_IN, 1, 0);
    test_gemm("gemm_projector_in_out", gemm, 256, 1152, 2560, GEMM_W_IN_OUT, 0, 0);
    test_gemm("gemm_logits_f32", gemm, 7, 2560, 8192, GEMM_W_OUT_IN, 0, 1);
    test_gemm("gemm_tiny", gemm, 3, 64, 40, GEMM_W_OUT_IN, 1, 0);

    test_residual("residual_siglip", 4096LL * 1152);
    test_residual("residual_odd", 1000003);
    test_layernorm("layernorm_siglip", 17, 1152);
    test_layernorm("layernorm_odd", 3, 76);
    test_patch_embed("patch_embed_siglip", gemm, 896, 14, 3, 1152);
    test_patch_embed("patch_embed_tiny", gemm, 64, 8, 3, 32);
    test_avgpool("avgpool_4b", 64, 4, 1152);
    test_avgpool("avgpool_odd", 6, 3, 20);

    gemm_destroy(gemm);
}
