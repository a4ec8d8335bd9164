/* Plain-C stand-ins for kernels/cuda/kernels_cuda.h on the fake device: the
 * same math and the same bf16 rounding points as the .cu kernels, run on the
 * host through fake_launch so a captured decode graph replays them. They test
 * the backend's host code, not the kernels, and are kept for speed: the
 * server tests (medgemma-fakegpu) and MedGemma 4B's full shape
 * (tests/gpu/test_full_shape.sh) would take far longer on the emulated real
 * kernels. The real kernels run on the CPU in tests/gpu/test_cudaemu.sh. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"

/* A launch: runs now, or is recorded into the graph being captured (fake_runtime.c). */
#define SUBMIT(fn, args) fake_launch(fn, &(args), sizeof(args))
static float f(bf16 v) {
    return bf16_to_f32(v);
}
static bf16 b(float v) {
    return f32_to_bf16(v);
}
static float rb(float v) {
    return round_to_bf16(v);
}

/* ---- embedding */
typedef struct {
    bf16 *out;
    const bf16 *table;
    const int32_t *ids;
    int n, dim;
    float scale;
} EmbArgs;
static void run_emb(void *p) {
    EmbArgs *a = p;
    for (int t = 0; t < a->n; t++)
        for (int i = 0; i < a->dim; i++)
            a->out[(size_t)t * a->dim + i] = b(f(a->table[(size_t)a->ids[t] * a->dim + i]) * a->scale);
}
cudaError_t cuda_embedding_lookup(bf16 *out, const bf16 *table, const int32_t *ids, int n_tokens, int dim,
                                  float scale, cudaStream_t stream) {
    EmbArgs a = {out, table, ids, n_tokens, dim, scale};
    return SUBMIT(run_emb, a);
}
/* ---- rmsnorm */
static float inv_rms(const bf16 *x, int dim, float eps) {
    float ss = 0;
    for (int i = 0; i < dim; i++)
        ss += f(x[i]) * f(x[i]);
    return 1.0f / sqrtf(ss / dim + eps);
}
typedef struct {
    bf16 *x, *out;
    const bf16 *h, *w1, *w2;
    int rows, dim;
    float eps;
    int mode;
} NormArgs;
static void run_norm(void *p) {
    NormArgs *a = p;
    for (int t = 0; t < a->rows; t++) {
        size_t o = (size_t)t * a->dim;
        if (a->mode == 0) { /* out = rmsnorm(x) (x may be out) */
            float r = inv_rms(a->x + o, a->dim, a->eps);
            for (int i = 0; i < a->dim; i++)
                a->out[o + i] = b(f(a->x[o + i]) * r * (1 + f(a->w1[i])));
            continue;
        }
        float r = inv_rms(a->h + o, a->dim, a->eps);
        for (int i = 0; i < a->dim; i++)
            a->x[o + i] = b(f(a->x[o + i]) + rb(f(a->h[o + i]) * r * (1 + f(a->w1[i]))));
        if (a->mode == 2) {
            float r2 = inv_rms(a->x + o, a->dim, a->eps);
            for (int i = 0; i < a->dim; i++)
                a->out[o + i] = b(f(a->x[o + i]) * r2 * (1 + f(a->w2[i])));
        }
    }
}
cudaError_t cuda_rmsnorm(bf16 *out, const bf16 *x, const bf16 *w, int n_rows, int dim, float eps,
                         cudaStream_t s) {
    NormArgs a = {(bf16 *)x, out, NULL, w, NULL, n_rows, dim, eps, 0};
    return SUBMIT(run_norm, a);
}
cudaError_t cuda_rmsnorm_residual(bf16 *x, const bf16 *h, const bf16 *w, int n_rows, int dim, float eps,
                                  cudaStream_t s) {
    NormArgs a = {x, NULL, h, w, NULL, n_rows, dim, eps, 1};
    return SUBMIT(run_norm, a);
}
cudaError_t cuda_rmsnorm_residual_norm(bf16 *x, bf16 *out, const bf16 *h, const bf16 *w_post,
                                       const bf16 *w_next, int n_rows, int dim, float eps, cudaStream_t s) {
    NormArgs a = {x, out, h, w_post, w_next, n_rows, dim, eps, 2};
    return SUBMIT(run_norm, a);
}

/* ---- rope (+ KV store) */
static void norm_rope(bf16 *v, const bf16 *w, int dh, float pos, float theta, float scale, float eps,
                      bf16 *copy) {
    float r = inv_rms(v, dh, eps);
    int half = dh / 2;
    for (int i = 0; i < half; i++) {
        float y0 = rb(f(v[i]) * r * (1 + f(w[i]))), y1 = rb(f(v[i + half]) * r * (1 + f(w[i + half])));
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)dh) / scale;
        float sn = sinf(pos * inv), cs = cosf(pos * inv);
        v[i] = b(y0 * cs - y1 * sn);
        v[i + half] = b(y1 * cs + y0 * sn);
        if (copy)
            copy[i] = v[i], copy[i + half] = v[i + half];
    }
}
typedef struct {
    bf16 *q, *k;
    const bf16 *v;
    int ld_q, ld_k, ld_v;
    const bf16 *qn, *kn;
    int n, H, KVH, dh;
    const int32_t *pos;
    float theta, scale, eps;
    bf16 *kc, *vc;
    int ring;
} RopeArgs;
static void run_rope(void *p) {
    RopeArgs *a = p;
    int pos0 = a->pos ? *a->pos : 0;
    size_t kvd = (size_t)a->KVH * a->dh;
    for (int t = 0; t < a->n; t++) {
        int pp = pos0 + t;
        int store = !(a->ring > 0 && pp <= pos0 + a->n - 1 - a->ring);
        size_t slot = a->ring > 0 ? (size_t)(pp % a->ring) : (size_t)pp;
        for (int hh = 0; hh < a->H; hh++)
            norm_rope(a->q + (size_t)t * a->ld_q + (size_t)hh * a->dh, a->qn, a->dh, (float)pp, a->theta,
                      a->scale, a->eps, NULL);
        for (int hh = 0; hh < a->KVH; hh++) {
            norm_rope(a->k + (size_t)t * a->ld_k + (size_t)hh * a->dh, a->kn, a->dh, (float)pp, a->theta,
                      a->scale, a->eps, store ? a->kc + slot * kvd + (size_t)hh * a->dh : NULL);
            if (store)
                memcpy(a->vc + slot * kvd + (size_t)hh * a->dh,
                       a->v + (size_t)t * a->ld_v + (size_t)hh * a->dh, a->dh * sizeof(bf16));
        }
    }
}
cudaError_t cuda_qkv_rope_store(bf16 *q, int ld_q, bf16 *k, int ld_k, const bf16 *v, int ld_v,
                                const bf16 *q_norm, const bf16 *k_norm, int n_tokens, int n_heads,
                                int n_kv_heads, int head_dim, const int32_t *d_pos0, float theta,
                                float rope_scale, float eps, bf16 *k_cache, bf16 *v_cache, int ring,
                                cudaStream_t s) {
    if (!k_cache || !v_cache)
        return cudaErrorInvalidValue;
    RopeArgs a = {q,          k,        v,      ld_q,  ld_k,       ld_v, q_norm,  k_norm,  n_tokens, n_heads,
                  n_kv_heads, head_dim, d_pos0, theta, rope_scale, eps,  k_cache, v_cache, ring};
    return SUBMIT(run_rope, a);
}

/* ---- attention */
typedef struct {
    bf16 *out;
    const bf16 *q;
    int ld_q;
    const bf16 *k, *v;
    int ld_kv;
    const int32_t *ib;
    int T, H, KVH, dh, causal, window;
    float scale;
} PrefArgs;
/* Long sequences (SigLIP's 4096 patches, prompts with an image at MedGemma's
 * shape) run on the CPU twin, kernels/cpu/attention.c, which keeps the
 * probabilities in fp32 where the tensor-core P.V takes them in bf16 (~1e-3
 * relative): the naive loop below would take hours there. The goldens' short
 * prompts keep the loop and its bf16 probabilities. */
#define PREFILL_ON_CPU_TWIN_FROM 256
static void run_pref_on_cpu_twin(PrefArgs *a) {
    const size_t T = a->T, qd = (size_t)a->H * a->dh, kvd = (size_t)a->KVH * a->dh;
    float *q = malloc(T * qd * sizeof *q), *k = malloc(T * kvd * sizeof *k), *v = malloc(T * kvd * sizeof *v);
    float *o = malloc(T * qd * sizeof *o);
    for (size_t t = 0; t < T; t++) {
        for (size_t i = 0; i < qd; i++)
            q[t * qd + i] = f(a->q[t * a->ld_q + i]);
        for (size_t i = 0; i < kvd; i++) {
            k[t * kvd + i] = f(a->k[t * a->ld_kv + i]);
            v[t * kvd + i] = f(a->v[t * a->ld_kv + i]);
        }
    }
    attention_prefill(o, q, k, v, a->ib, a->T, a->H, a->KVH, a->dh, a->causal, a->window, a->scale);
    for (size_t i = 0; i < T * qd; i++)
        a->out[i] = b(o[i]);
    free(q), free(k), free(v), free(o);
}
static void run_pref(void *p) {
    PrefArgs *a = p;
    if (a->T >= PREFILL_ON_CPU_TWIN_FROM) {
        run_pref_on_cpu_twin(a);
        return;
    }
    float *sc = malloc((size_t)a->T * sizeof *sc), *acc = malloc((size_t)a->dh * sizeof *acc);
    for (int t = 0; t < a->T; t++)
        for (int h = 0; h < a->H; h++) {
            int kvh = h / (a->H / a->KVH);
            const bf16 *q = a->q + (size_t)t * a->ld_q + (size_t)h * a->dh;
            float mx = -INFINITY;
            for (int j = 0; j < a->T; j++) {
                int same = a->ib && a->ib[t] >= 0 && a->ib[t] == a->ib[j];
                int ok = !a->causal || ((j <= t || same) && (a->window <= 0 || j > t - a->window));
                float s = -INFINITY;
                if (ok) {
                    s = 0;
                    for (int d = 0; d < a->dh; d++)
                        s += f(q[d]) * f(a->k[(size_t)j * a->ld_kv + (size_t)kvh * a->dh + d]);
                    s *= a->scale;
                }
                sc[j] = s;
                mx = fmaxf(mx, s);
            }
            float l = 0;
            memset(acc, 0, a->dh * sizeof *acc);
            for (int j = 0; j < a->T; j++) {
                if (sc[j] == -INFINITY)
                    continue;
                float pj = expf(sc[j] - mx);
                l += pj;
                float pb = rb(pj); /* the tensor-core P.V takes bf16 probabilities */
                for (int d = 0; d < a->dh; d++)
                    acc[d] += pb * f(a->v[(size_t)j * a->ld_kv + (size_t)kvh * a->dh + d]);
            }
            for (int d = 0; d < a->dh; d++)
                a->out[(size_t)t * a->H * a->dh + (size_t)h * a->dh + d] = b(acc[d] / l);
        }
    free(sc), free(acc);
}
cudaError_t cuda_attention_prefill(bf16 *out, const bf16 *q, int ld_q, const bf16 *k, const bf16 *v,
                                   int ld_kv, const int32_t *image_block, int n_tokens, int n_heads,
                                   int n_kv_heads, int head_dim, int causal, int window, float scale,
                                   cudaStream_t s) {
    if (head_dim % 8 || head_dim > 256 || ld_q % 8 || ld_kv % 8 || n_heads % n_kv_heads)
        return cudaErrorInvalidValue;
    PrefArgs a = {out,      q,       ld_q,       k,        v,      ld_kv,  image_block,
                  n_tokens, n_heads, n_kv_heads, head_dim, causal, window, scale};
    return SUBMIT(run_pref, a);
}
size_t cuda_attention_decode_scratch_floats(int n_heads, int head_dim, int n_splits) {
    return (size_t)n_splits * n_heads * (head_dim + 2);
}
/* Attention over the cache by position (decode and a continued prompt): the kernel's key
 * range and slot order, one softmax per (row, head). */
typedef struct {
    bf16 *out;
    int ld_out;
    const bf16 *q;
    int ld_q;
    const bf16 *kc, *vc;
    int capacity;
    const int32_t *pos0, *ib;
    int n, window, H, KVH, dh;
    float scale;
} CachedArgs;
static void run_cached(void *p) {
    CachedArgs *a = p;
    size_t kvd = (size_t)a->KVH * a->dh;
    for (int t = 0; t < a->n; t++) {
        int end = t;
        if (a->ib && a->ib[t] >= 0)
            while (end + 1 < a->n && a->ib[end + 1] == a->ib[t])
                end++;
        int pos = *a->pos0 + t, hi = *a->pos0 + end;
        int lo = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
        if (hi - a->capacity + 1 > lo)
            lo = hi - a->capacity + 1;
        int n_keys = hi - lo + 1, first = n_keys == a->capacity ? 0 : lo % a->capacity;
        float *sc = malloc((size_t)n_keys * sizeof *sc);
        for (int h = 0; h < a->H; h++) {
            int kvh = h / (a->H / a->KVH);
            const bf16 *q = a->q + (size_t)t * a->ld_q + (size_t)h * a->dh;
            float mx = -INFINITY, l = 0;
            for (int j = 0; j < n_keys; j++) {
                size_t slot = (size_t)((first + j) % a->capacity);
                float d = 0;
                for (int i = 0; i < a->dh; i++)
                    d += f(q[i]) * f(a->kc[slot * kvd + (size_t)kvh * a->dh + i]);
                sc[j] = d * a->scale;
                mx = fmaxf(mx, sc[j]);
            }
            for (int j = 0; j < n_keys; j++)
                l += (sc[j] = expf(sc[j] - mx));
            for (int i = 0; i < a->dh; i++) {
                float acc = 0;
                for (int j = 0; j < n_keys; j++)
                    acc +=
                        sc[j] * f(a->vc[(size_t)((first + j) % a->capacity) * kvd + (size_t)kvh * a->dh + i]);
                a->out[(size_t)t * a->ld_out + (size_t)h * a->dh + i] = b(acc / l);
            }
        }
        free(sc);
    }
}
cudaError_t cuda_attention_cached(bf16 *out, int ld_out, const bf16 *q, int ld_q, const bf16 *k_cache,
                                  const bf16 *v_cache, int capacity, const int32_t *d_pos0,
                                  const int32_t *image_block, int n_rows, int window, int n_heads,
                                  int n_kv_heads, int head_dim, float scale, float *scratch,
                                  int scratch_units, int n_splits, cudaStream_t s) {
    if (!d_pos0 || !scratch || n_splits <= 0 || n_splits > scratch_units || capacity <= 0)
        return cudaErrorInvalidValue;
    CachedArgs a = {out,         ld_out, q,      ld_q,    k_cache,    v_cache,  capacity, d_pos0,
                    image_block, n_rows, window, n_heads, n_kv_heads, head_dim, scale};
    return SUBMIT(run_cached, a);
}
/* ---- gelu, residual, layernorm, im2col, pool, GEMV */
static float gelu(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
typedef struct {
    bf16 *out;
    const bf16 *gate, *up;
    bf16 *x;
    long long n;
    int ld, rows, width;
} GeluArgs;
static void run_gelu(void *p) {
    GeluArgs *a = p;
    if (a->x) {
        for (long long i = 0; i < a->n; i++)
            a->x[i] = b(gelu(f(a->x[i])));
        return;
    }
    for (int t = 0; t < a->rows; t++)
        for (int i = 0; i < a->width; i++) {
            size_t at = (size_t)t * a->ld + i;
            a->out[at] = b(rb(gelu(f(a->gate[at]))) * f(a->up[at]));
        }
}
cudaError_t cuda_gelu_tanh_gate(bf16 *out, const bf16 *gate, const bf16 *up, int ld, int n_rows, int width,
                                cudaStream_t s) {
    GeluArgs a = {out, gate, up, NULL, 0, ld, n_rows, width};
    return SUBMIT(run_gelu, a);
}
cudaError_t cuda_gelu_tanh(bf16 *x, long long n, cudaStream_t s) {
    GeluArgs a = {NULL, NULL, NULL, x, n, 0, 0, 0};
    return SUBMIT(run_gelu, a);
}
typedef struct {
    bf16 *x;
    const bf16 *y;
    long long n;
} ResArgs;
static void run_res(void *p) {
    ResArgs *a = p;
    for (long long i = 0; i < a->n; i++)
        a->x[i] = b(f(a->x[i]) + f(a->y[i]));
}
cudaError_t cuda_residual_add(bf16 *x, const bf16 *y, long long n, cudaStream_t s) {
    ResArgs a = {x, y, n};
    return SUBMIT(run_res, a);
}
typedef struct {
    bf16 *out;
    const bf16 *x, *w, *bb;
    int rows, dim;
    float eps;
} LnArgs;
static void run_ln(void *p) {
    LnArgs *a = p;
    for (int t = 0; t < a->rows; t++) {
        const bf16 *x = a->x + (size_t)t * a->dim;
        float mean = 0, var = 0;
        for (int i = 0; i < a->dim; i++)
            mean += f(x[i]);
        mean /= a->dim;
        for (int i = 0; i < a->dim; i++)
            var += (f(x[i]) - mean) * (f(x[i]) - mean);
        float r = 1.0f / sqrtf(var / a->dim + a->eps);
        for (int i = 0; i < a->dim; i++)
            a->out[(size_t)t * a->dim + i] = b((f(x[i]) - mean) * r * f(a->w[i]) + f(a->bb[i]));
    }
}
cudaError_t cuda_layernorm(bf16 *out, const bf16 *x, const bf16 *w, const bf16 *bb, int n_rows, int dim,
                           float eps, cudaStream_t s) {
    LnArgs a = {out, x, w, bb, n_rows, dim, eps};
    return SUBMIT(run_ln, a);
}
typedef struct {
    bf16 *patches;
    const float *pix;
    int S, P, C, kpad;
} ImArgs;
static void run_im(void *p) {
    ImArgs *a = p;
    int G = a->S / a->P, pp = a->P * a->P;
    for (int q = 0; q < G * G; q++)
        for (int j = 0; j < a->kpad; j++) {
            float v = 0;
            if (j < a->C * pp) {
                int c = j / pp, ky = (j / a->P) % a->P, kx = j % a->P;
                v = a->pix[((size_t)c * a->S + (q / G) * a->P + ky) * a->S + (q % G) * a->P + kx];
            }
            a->patches[(size_t)q * a->kpad + j] = b(v);
        }
}
cudaError_t cuda_patch_im2col(bf16 *patches, const float *pixels, int image_size, int patch, int channels,
                              int k_pad, cudaStream_t s) {
    ImArgs a = {patches, pixels, image_size, patch, channels, k_pad};
    return SUBMIT(run_im, a);
}
typedef struct {
    bf16 *out;
    const bf16 *x;
    int grid, k, dim;
} PoolArgs;
static void run_pool(void *p) {
    PoolArgs *a = p;
    int go = a->grid / a->k;
    for (int o = 0; o < go * go; o++)
        for (int d = 0; d < a->dim; d++) {
            float s = 0;
            for (int dy = 0; dy < a->k; dy++)
                for (int dx = 0; dx < a->k; dx++)
                    s += f(
                        a->x[((size_t)((o / go) * a->k + dy) * a->grid + (o % go) * a->k + dx) * a->dim + d]);
            a->out[(size_t)o * a->dim + d] = b(s / (a->k * a->k));
        }
}
cudaError_t cuda_avgpool_grid(bf16 *out, const bf16 *x, int grid, int k, int dim, cudaStream_t s) {
    PoolArgs a = {out, x, grid, k, dim};
    return SUBMIT(run_pool, a);
}
typedef struct {
    void *y;
    int f32;
    const bf16 *x, *w, *bias;
    int in, out;
} GemvArgs;
/* On the CPU twin's GEMV (kernels/cpu/matmul.c: fp32 accumulation). */
static void run_gemv(void *p) {
    GemvArgs *a = p;
    float *x = malloc((size_t)a->in * sizeof *x), *y = malloc((size_t)a->out * sizeof *y);
    for (int i = 0; i < a->in; i++)
        x[i] = f(a->x[i]);
    matmul(y, x, a->w, a->bias, 1, a->in, a->out);
    for (int o = 0; o < a->out; o++) {
        if (a->f32)
            ((float *)a->y)[o] = y[o];
        else
            ((bf16 *)a->y)[o] = b(y[o]);
    }
    free(x), free(y);
}
cudaError_t cuda_gemv(bf16 *y, const bf16 *x, const bf16 *w, const bf16 *bias, int in_dim, int out_dim,
                      cudaStream_t s) {
    GemvArgs a = {y, 0, x, w, bias, in_dim, out_dim};
    return SUBMIT(run_gemv, a);
}
cudaError_t cuda_gemv_f32(float *y, const bf16 *x, const bf16 *w, int in_dim, int out_dim, cudaStream_t s) {
    GemvArgs a = {y, 1, x, w, NULL, in_dim, out_dim};
    return SUBMIT(run_gemv, a);
}
