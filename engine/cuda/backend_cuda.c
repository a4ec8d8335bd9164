/* The CUDA backend (engine/backend.h) on one GPU.
 *
 * Owns: ONE device allocation planned at create (engine/cuda/device_plan.h):
 * the weights (bf16, q|k|v and gate|up fused into one matrix per layer so each
 * is one GEMM/GEMV), the bf16 KV cache (global layers: max_context slots;
 * local layers: a ring of sliding_window slots), the activations sized for
 * max_prefill rows and one image, and cuBLASLt's workspace, every buffer a
 * 256-byte aligned region of it; the cuBLASLt plans (engine/cuda/gemm.h); a few
 * pinned host buffers; and the decode step captured once as a CUDA graph: the
 * token id and position live in device memory behind fixed pointers, so one
 * graph replays unchanged every token. Nothing is allocated on the device
 * after create.
 *
 * Errors at request time (backend.h's codes): a sticky CUDA error (illegal
 * address, launch failure: real CUDA then fails every later call) loses the
 * device for good, and every later call says so; an allocation failure
 * (the driver's, e.g. loading a kernel module lazily) fails only that call.
 *
 * Activations are bf16 like transformers in bf16; every kernel computes in
 * fp32 (kernels/cuda/). Logits are fp32. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_plan.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/upload.h"
#include "kernels/cuda/kernels_cuda.h"
#include "util/log.h"

/* Device memory create leaves free besides the plan: for the driver (kernel
 * modules loaded at their first launch, cuBLASLt's own buffers, graphs). */
#define DEVICE_HEADROOM ((size_t)256 << 20)

typedef struct {
    bf16 *wqkv;  /* [(H + 2 KVH) * Dh, D]: q_proj | k_proj | v_proj rows */
    bf16 *wo;    /* [D, H * Dh] */
    bf16 *wgu;   /* [2 I, D]: gate_proj | up_proj rows */
    bf16 *wdown; /* [D, I] */
    bf16 *in_norm, *post_attn_norm, *pre_ff_norm, *post_ff_norm; /* [D] */
    bf16 *q_norm, *k_norm;                                       /* [Dh] */
    bf16 *k_cache, *v_cache;                                     /* [slots, KVH * Dh] */
    int global, ring, n_splits;
    float theta, rope_scale;
} CudaTextLayer;

typedef struct {
    bf16 *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* [Dv] */
    bf16 *wqkv, *bqkv;                   /* [3 Dv, Dv], [3 Dv] */
    bf16 *wo, *bo;                       /* [Dv, Dv], [Dv] */
    bf16 *fc1_w, *fc1_b, *fc2_w, *fc2_b; /* [Iv, Dv], [Iv], [Dv, Iv], [Dv] */
} CudaVisionLayer;

typedef struct {
    ModelConfig cfg;
    BackendOptions opt;
    char device_name[256];
    cudaStream_t stream;
    Gemm *gemm;
    DevicePlan plan;
    void *device;     /* the one allocation: plan.total bytes */
    cudaError_t lost; /* the sticky error that lost the device; cudaSuccess while it works */

    /* text dims */
    int D, I, H, KVH, Dh, QKV, V, L, P;
    float attn_scale;
    /* weights */
    bf16 *embed, *lm_head, *final_norm;
    CudaTextLayer *layers;
    /* text activations, P rows */
    bf16 *x, *h, *qkv, *attn, *proj, *gu, *mlp;
    float *d_logits, *h_logits; /* [V] device, pinned host */
    int32_t *d_ids, *d_image_block, *d_rows, *d_pos, *d_token;
    int32_t *h_pos_token; /* pinned [2] */
    int32_t *host_rows;   /* [P] */
    bf16 *h_stage;        /* pinned, stage_rows x max(D, Dv) bf16 */
    int stage_rows;
    float *dec_scratch;
    cudaGraphExec_t decode_graph;

    /* vision (has_vision) */
    int Dv, Iv, Hv, Np, grid, pool_k, n_img_tokens, patch_k, patch_k_pad;
    bf16 *patch_w, *patch_b, *pos_embed, *post_ln_w, *post_ln_b, *mm_soft_norm, *mm_proj;
    CudaVisionLayer *vlayers;
    float *pixels;
    bf16 *patches, *vx, *vh, *vqkv, *vattn, *vproj, *vmlp, *pooled, *mm_out;

    /* test capture */
    BackendCapture cap;
    int has_cap;
    bf16 *cap_stage; /* host, cap_stage_elems */
    size_t cap_stage_elems;
} CudaState;

/* Slice i of a region of the plan. */
static void *slice(const CudaState *st, DeviceRegionId region, size_t i) {
    return device_plan_slice(&st->plan, st->device, region, i);
}

/* Every device pointer, carved from the one allocation. */
static void point_buffers(CudaState *st) {
    const TextConfig *tc = &st->cfg.text;
    st->embed = slice(st, REGION_EMBED, 0);
    st->lm_head = st->plan.region[REGION_LM_HEAD].count ? slice(st, REGION_LM_HEAD, 0) : st->embed;
    st->final_norm = slice(st, REGION_FINAL_NORM, 0);
    int n_full = 0, n_ring = 0;
    for (int l = 0; l < st->L; l++) {
        CudaTextLayer *cl = &st->layers[l];
        cl->wqkv = slice(st, REGION_WQKV, l);
        cl->wo = slice(st, REGION_WO, l);
        cl->wgu = slice(st, REGION_WGU, l);
        cl->wdown = slice(st, REGION_WDOWN, l);
        cl->in_norm = slice(st, REGION_INPUT_NORM, l);
        cl->post_attn_norm = slice(st, REGION_POST_ATTN_NORM, l);
        cl->pre_ff_norm = slice(st, REGION_PRE_FF_NORM, l);
        cl->post_ff_norm = slice(st, REGION_POST_FF_NORM, l);
        cl->q_norm = slice(st, REGION_Q_NORM, l);
        cl->k_norm = slice(st, REGION_K_NORM, l);
        cl->global = tc->layer_is_global[l];
        cl->theta = cl->global ? tc->rope_theta_global : tc->rope_theta_local;
        cl->rope_scale = cl->global ? tc->rope_scale_global : tc->rope_scale_local;
        if (!(cl->rope_scale > 0))
            cl->rope_scale = 1.0f;
        cl->ring = device_plan_kv_ring(&st->cfg, st->opt.max_context, l);
        int slots = cl->ring ? cl->ring : st->opt.max_context;
        cl->n_splits = slots / 32 < 1                           ? 1
                       : slots / 32 > DEVICE_PLAN_DECODE_SPLITS ? DEVICE_PLAN_DECODE_SPLITS
                                                                : slots / 32;
        DeviceRegionId kv = cl->ring ? REGION_KV_RING : REGION_KV_FULL;
        int *nth = cl->ring ? &n_ring : &n_full;
        cl->k_cache = slice(st, kv, 2 * (size_t)*nth);
        cl->v_cache = slice(st, kv, 2 * (size_t)*nth + 1);
        ++*nth;
    }
    st->x = slice(st, REGION_X, 0);
    st->h = slice(st, REGION_H, 0);
    st->proj = slice(st, REGION_PROJ, 0);
    st->qkv = slice(st, REGION_QKV, 0);
    st->attn = slice(st, REGION_ATTN, 0);
    st->gu = slice(st, REGION_GU, 0);
    st->mlp = slice(st, REGION_MLP, 0);
    st->d_logits = slice(st, REGION_LOGITS, 0);
    st->d_ids = slice(st, REGION_IDS, 0);
    st->d_image_block = slice(st, REGION_IMAGE_BLOCK, 0);
    st->d_rows = slice(st, REGION_ROWS, 0);
    st->d_pos = slice(st, REGION_POS_TOKEN, 0);
    st->d_token = st->d_pos + 1;
    st->dec_scratch = slice(st, REGION_DECODE_SCRATCH, 0);
    if (!st->cfg.has_vision)
        return;
    st->patch_w = slice(st, REGION_PATCH_W, 0);
    st->patch_b = slice(st, REGION_PATCH_B, 0);
    st->pos_embed = slice(st, REGION_POS_EMBED, 0);
    st->post_ln_w = slice(st, REGION_POST_LN_W, 0);
    st->post_ln_b = slice(st, REGION_POST_LN_B, 0);
    st->mm_soft_norm = slice(st, REGION_MM_SOFT_NORM, 0);
    st->mm_proj = slice(st, REGION_MM_PROJ, 0);
    for (int l = 0; l < st->cfg.vision.num_layers; l++) {
        CudaVisionLayer *vl = &st->vlayers[l];
        vl->ln1_w = slice(st, REGION_V_LN1_W, l);
        vl->ln1_b = slice(st, REGION_V_LN1_B, l);
        vl->ln2_w = slice(st, REGION_V_LN2_W, l);
        vl->ln2_b = slice(st, REGION_V_LN2_B, l);
        vl->wqkv = slice(st, REGION_V_WQKV, l);
        vl->bqkv = slice(st, REGION_V_BQKV, l);
        vl->wo = slice(st, REGION_V_WO, l);
        vl->bo = slice(st, REGION_V_BO, l);
        vl->fc1_w = slice(st, REGION_V_FC1_W, l);
        vl->fc1_b = slice(st, REGION_V_FC1_B, l);
        vl->fc2_w = slice(st, REGION_V_FC2_W, l);
        vl->fc2_b = slice(st, REGION_V_FC2_B, l);
    }
    st->pixels = slice(st, REGION_PIXELS, 0);
    st->patches = slice(st, REGION_PATCHES, 0);
    st->vx = slice(st, REGION_VX, 0);
    st->vh = slice(st, REGION_VH, 0);
    st->vattn = slice(st, REGION_VATTN, 0);
    st->vproj = slice(st, REGION_VPROJ, 0);
    st->vqkv = slice(st, REGION_VQKV, 0);
    st->vmlp = slice(st, REGION_VMLP, 0);
    st->pooled = slice(st, REGION_POOLED, 0);
    st->mm_out = slice(st, REGION_MM_OUT, 0);
}

/* ---- weights: copied into their regions of the plan */

typedef struct {
    CudaState *st;
    Uploader *up;
} Upload;

/* Copies the concatenation of srcs[0..count) (n[i] bf16 each) into slice i of
 * a region; the plan must have sized that slice for exactly these bytes. */
static int put(Upload *u, DeviceRegionId region, size_t i, const bf16 *const *srcs, const size_t *n,
               int count, Error *err) {
    const DeviceRegion *r = &u->st->plan.region[region];
    char *dst = slice(u->st, region, i);
    size_t bytes = 0;
    for (int k = 0; k < count; k++)
        bytes += n[k] * sizeof(bf16);
    if (!dst || bytes != r->bytes_each)
        return error_set(err, "cuda backend: %s[%zu] is planned for %zu bytes, the weights have %zu", r->name,
                         i, dst ? r->bytes_each : 0, bytes);
    for (int k = 0; k < count; k++) {
        if (uploader_copy(u->up, dst, srcs[k], n[k] * sizeof(bf16), err) != 0)
            return -1;
        dst += n[k] * sizeof(bf16);
    }
    return 0;
}

#define PUT1(region, i, src, count)                                                                          \
    put(u, (region), (i), (const bf16 *const[]){(src)}, (const size_t[]){(count)}, 1, err)

/* The conv weight [Dv, C*P*P] re-laid out as [Dv, k_pad] with zero columns
 * (cuBLASLt wants 16-byte aligned rows). */
static bf16 *padded_patch_weight(const CudaState *st, const bf16 *w) {
    bf16 *out = calloc((size_t)st->Dv * st->patch_k_pad, sizeof(bf16));
    if (!out)
        return NULL;
    for (int o = 0; o < st->Dv; o++)
        memcpy(out + (size_t)o * st->patch_k_pad, w + (size_t)o * st->patch_k, st->patch_k * sizeof(bf16));
    return out;
}

static int put_weights(Upload *u, const ModelWeights *w, const bf16 *patch_w_padded, Error *err) {
    CudaState *st = u->st;
    const size_t D = st->D, I = st->I, qd = (size_t)st->H * st->Dh, kvd = (size_t)st->KVH * st->Dh;
    if (PUT1(REGION_EMBED, 0, w->embed, (size_t)st->V * D) || PUT1(REGION_FINAL_NORM, 0, w->final_norm, D))
        return -1;
    if (st->plan.region[REGION_LM_HEAD].count && PUT1(REGION_LM_HEAD, 0, w->lm_head, (size_t)st->V * D))
        return -1;
    for (int l = 0; l < st->L; l++) {
        const TextLayerWeights *tw = &w->layers[l];
        if (put(u, REGION_WQKV, l, (const bf16 *const[]){tw->q_proj, tw->k_proj, tw->v_proj},
                (const size_t[]){qd * D, kvd * D, kvd * D}, 3, err) ||
            PUT1(REGION_WO, l, tw->o_proj, D * qd) ||
            put(u, REGION_WGU, l, (const bf16 *const[]){tw->gate_proj, tw->up_proj},
                (const size_t[]){I * D, I * D}, 2, err) ||
            PUT1(REGION_WDOWN, l, tw->down_proj, D * I) || PUT1(REGION_INPUT_NORM, l, tw->input_norm, D) ||
            PUT1(REGION_POST_ATTN_NORM, l, tw->post_attn_norm, D) ||
            PUT1(REGION_PRE_FF_NORM, l, tw->pre_ff_norm, D) ||
            PUT1(REGION_POST_FF_NORM, l, tw->post_ff_norm, D) ||
            PUT1(REGION_Q_NORM, l, tw->q_norm, (size_t)st->Dh) ||
            PUT1(REGION_K_NORM, l, tw->k_norm, (size_t)st->Dh))
            return -1;
    }
    if (!st->cfg.has_vision)
        return 0;
    const size_t Dv = st->Dv, Iv = st->Iv;
    if (PUT1(REGION_PATCH_W, 0, patch_w_padded, Dv * st->patch_k_pad) ||
        PUT1(REGION_PATCH_B, 0, w->patch_b, Dv) ||
        PUT1(REGION_POS_EMBED, 0, w->pos_embed, (size_t)st->Np * Dv) ||
        PUT1(REGION_POST_LN_W, 0, w->post_ln_w, Dv) || PUT1(REGION_POST_LN_B, 0, w->post_ln_b, Dv) ||
        PUT1(REGION_MM_SOFT_NORM, 0, w->mm_soft_norm, Dv) || PUT1(REGION_MM_PROJ, 0, w->mm_proj, Dv * D))
        return -1;
    for (int l = 0; l < st->cfg.vision.num_layers; l++) {
        const VisionLayerWeights *vw = &w->vision_layers[l];
        if (PUT1(REGION_V_LN1_W, l, vw->ln1_w, Dv) || PUT1(REGION_V_LN1_B, l, vw->ln1_b, Dv) ||
            PUT1(REGION_V_LN2_W, l, vw->ln2_w, Dv) || PUT1(REGION_V_LN2_B, l, vw->ln2_b, Dv) ||
            put(u, REGION_V_WQKV, l, (const bf16 *const[]){vw->q_w, vw->k_w, vw->v_w},
                (const size_t[]){Dv * Dv, Dv * Dv, Dv * Dv}, 3, err) ||
            put(u, REGION_V_BQKV, l, (const bf16 *const[]){vw->q_b, vw->k_b, vw->v_b},
                (const size_t[]){Dv, Dv, Dv}, 3, err) ||
            PUT1(REGION_V_WO, l, vw->out_w, Dv * Dv) || PUT1(REGION_V_BO, l, vw->out_b, Dv) ||
            PUT1(REGION_V_FC1_W, l, vw->fc1_w, Iv * Dv) || PUT1(REGION_V_FC1_B, l, vw->fc1_b, Iv) ||
            PUT1(REGION_V_FC2_W, l, vw->fc2_w, Dv * Iv) || PUT1(REGION_V_FC2_B, l, vw->fc2_b, Dv))
            return -1;
    }
    return 0;
}

static int upload_weights(CudaState *st, const ModelWeights *w, Error *err) {
    bf16 *patch_w_padded = NULL;
    if (st->cfg.has_vision && !(patch_w_padded = padded_patch_weight(st, w->patch_w)))
        return error_set(err, "cuda backend: out of host memory");
    Upload u = {st, NULL};
    int rc = uploader_create(&u.up, (size_t)64 << 20, 4, 4, err);
    if (rc == 0)
        rc = put_weights(&u, w, patch_w_padded, err);
    if (rc == 0)
        rc = uploader_finish(u.up, err);
    uploader_destroy(u.up);
    free(patch_w_padded);
    return rc;
}

/* ---- request-time failures */

/* The errors after which real CUDA fails every later call of the process. */
static int is_sticky(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure:
    case cudaErrorECCUncorrectable:
        return 1;
    default:
        return 0;
    }
}

/* What a failed entry point (encode_image, prefill, decode) returns. No CUDA
 * call failed: it refused its arguments (ENGINE_ERR_INPUT). A sticky error,
 * or a device that no longer synchronizes, loses the device for good. An
 * allocation failure was this request's (the next may work). Anything else
 * is a failed call that leaves the device working (ENGINE_ERR_INTERNAL). */
static int request_failed(CudaState *st, Error *err) {
    cudaError_t e = cuda_check_take_failure();
    if (e == cudaSuccess)
        return ENGINE_ERR_INPUT;
    cudaError_t probe = cudaDeviceSynchronize();
    if (is_sticky(e) || probe != cudaSuccess) {
        st->lost = is_sticky(e) ? e : probe;
        if (!is_sticky(e) && err) { /* e.g. cuBLASLt's "execution failed": say what the device says */
            char failed[sizeof err->message];
            snprintf(failed, sizeof failed, "%s", err->message);
            error_set(err, "%s; then the device: %s", failed, cudaGetErrorString(probe));
        }
        return ENGINE_ERR_DEVICE_LOST;
    }
    (void)cudaGetLastError(); /* a launch's error stays "last" until read: the next launch must not see it */
    return e == cudaErrorMemoryAllocation ? ENGINE_ERR_OUT_OF_MEMORY : ENGINE_ERR_INTERNAL;
}

/* Every call after the device was lost. */
static int refuse_lost(const CudaState *st, Error *err) {
    error_set(err, "the GPU failed earlier (%s) and cannot be used by this process any more",
              cudaGetErrorString(st->lost));
    return ENGINE_ERR_DEVICE_LOST;
}

/* ---- the text forward pass */

/* y [T, out] = x [T, in] w^T (+ bias): the GEMV for one row, cuBLASLt for more
 * (per-row GEMV when a dimension is not a multiple of 8: tiny test models). */
static int linear(CudaState *st, bf16 *y, const bf16 *x, const bf16 *w, const bf16 *bias, int T, int in,
                  int out, Error *err) {
    if (T == 1 || in % 8 || out % 8) {
        for (int t = 0; t < T; t++)
            CUDA_TRY(cuda_gemv(y + (size_t)t * out, x + (size_t)t * in, w, bias, in, out, st->stream));
        return 0;
    }
    GemmShape s = {T, in, out, GEMM_W_OUT_IN, bias != NULL, 0};
    int rc = gemm_run(st->gemm, &s, y, x, w, bias, st->stream, err);
    if (rc != GEMM_NO_PLAN)
        return rc;
    /* cuBLASLt has no plan for this shape: correct but slow, and said once */
    static int warned;
    if (!warned++)
        log_msg(LOG_WARNING, "cuda backend: %s; using the GEMV per row for such shapes", err->message);
    for (int t = 0; t < T; t++)
        CUDA_TRY(cuda_gemv(y + (size_t)t * out, x + (size_t)t * in, w, bias, in, out, st->stream));
    return 0;
}

/* Copies T rows of a bf16 device matrix [T, dim] into host floats. */
static int download_rows(CudaState *st, float *dst, const bf16 *src, size_t n, Error *err) {
    if (n > st->cap_stage_elems)
        return error_set(err, "cuda backend: capture buffer too small");
    CUDA_TRY(cudaMemcpyAsync(st->cap_stage, src, n * sizeof(bf16), cudaMemcpyDeviceToHost, st->stream));
    CUDA_TRY(cudaStreamSynchronize(st->stream));
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_to_f32(st->cap_stage[i]);
    return 0;
}

/* One decoder layer over T rows at positions pos0.. (prefill: d_pos NULL, pos 0;
 * decode: T = 1, position *d_pos). On entry h = rmsnorm_in(x); on exit x is
 * the layer's output and h = next_norm(x). */
static int text_layer(CudaState *st, int l, int T, const int32_t *d_pos, const int32_t *d_image_block,
                      const bf16 *next_norm, Error *err) {
    CudaTextLayer *cl = &st->layers[l];
    const TextConfig *tc = &st->cfg.text;
    const int qd = st->H * st->Dh, kvd = st->KVH * st->Dh;
    bf16 *q = st->qkv, *k = st->qkv + qd, *v = st->qkv + qd + kvd;
    cudaStream_t s = st->stream;
    if (linear(st, st->qkv, st->h, cl->wqkv, NULL, T, st->D, st->QKV, err))
        return -1;
    /* q, k: norm + RoPE in place; k and v also into this layer's cache */
    CUDA_TRY(cuda_qkv_rope_store(st->qkv, st->QKV, cl->q_norm, cl->k_norm, T, st->H, st->KVH, st->Dh, d_pos,
                                 cl->theta, cl->rope_scale, tc->rms_norm_eps, cl->k_cache, cl->v_cache,
                                 cl->ring, s));
    if (d_pos) /* decode: the query against the cache */
        CUDA_TRY(cuda_attention_decode(st->attn, q, cl->k_cache, cl->v_cache, d_pos, cl->ring, st->H, st->KVH,
                                       st->Dh, st->attn_scale, st->dec_scratch, cl->n_splits, s));
    else
        CUDA_TRY(cuda_attention_prefill(st->attn, q, st->QKV, k, v, st->QKV, d_image_block, T, st->H, st->KVH,
                                        st->Dh, 1, cl->global ? 0 : tc->sliding_window, st->attn_scale, s));
    if (linear(st, st->proj, st->attn, cl->wo, NULL, T, qd, st->D, err))
        return -1;
    CUDA_TRY(cuda_rmsnorm_residual_norm(st->x, st->h, st->proj, cl->post_attn_norm, cl->pre_ff_norm, T, st->D,
                                        tc->rms_norm_eps, s));
    if (linear(st, st->gu, st->h, cl->wgu, NULL, T, st->D, 2 * st->I, err))
        return -1;
    CUDA_TRY(cuda_gelu_tanh_gate(st->mlp, st->gu, T, st->I, s));
    if (linear(st, st->proj, st->mlp, cl->wdown, NULL, T, st->I, st->D, err))
        return -1;
    CUDA_TRY(cuda_rmsnorm_residual_norm(st->x, st->h, st->proj, cl->post_ff_norm, next_norm, T, st->D,
                                        tc->rms_norm_eps, s));
    return 0;
}

static const bf16 *next_norm_of(const CudaState *st, int l) {
    return l + 1 < st->L ? st->layers[l + 1].in_norm : st->final_norm;
}

/* The decode step, enqueued once under stream capture: embedding of *d_token,
 * every layer at position *d_pos, logits into pinned host memory. */
static int decode_enqueue(CudaState *st, Error *err) {
    cudaStream_t s = st->stream;
    CUDA_TRY(cuda_embedding_lookup(st->x, st->embed, st->d_token, 1, st->D, st->opt.embed_scale, s));
    CUDA_TRY(cuda_rmsnorm(st->h, st->x, st->layers[0].in_norm, 1, st->D, st->cfg.text.rms_norm_eps, s));
    for (int l = 0; l < st->L; l++)
        if (text_layer(st, l, 1, st->d_pos, NULL, next_norm_of(st, l), err))
            return -1;
    CUDA_TRY(cuda_gemv_f32(st->d_logits, st->h, st->lm_head, st->D, st->V, s));
    CUDA_TRY(cudaMemcpyAsync(st->h_logits, st->d_logits, (size_t)st->V * sizeof(float),
                             cudaMemcpyDeviceToHost, s));
    return 0;
}

static int capture_decode_graph(CudaState *st, Error *err) {
    CUDA_TRY(cudaStreamBeginCapture(st->stream, cudaStreamCaptureModeThreadLocal));
    int rc = decode_enqueue(st, err);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(st->stream, &graph);
    if (rc != 0) {
        if (graph)
            cudaGraphDestroy(graph);
        return error_prefix(err, "capturing the decode graph");
    }
    if (e != cudaSuccess)
        return error_set(err, "%s:%d: cudaStreamEndCapture: %s", __FILE__, __LINE__, cudaGetErrorString(e));
    e = cudaGraphInstantiate(&st->decode_graph, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess)
        return error_set(err, "%s:%d: cudaGraphInstantiate: %s", __FILE__, __LINE__, cudaGetErrorString(e));
    return 0;
}

static int decode_run(CudaState *st, int32_t token, int pos, float *logits, Error *err) {
    if (pos < 0 || pos >= st->opt.max_context)
        return error_set(err, "decode position %d outside the KV cache (0..%d)", pos,
                         st->opt.max_context - 1);
    if (token < 0 || token >= st->V)
        return error_set(err, "token id %d outside the vocabulary (0..%d)", token, st->V - 1);
    st->h_pos_token[0] = pos;
    st->h_pos_token[1] = token;
    CUDA_TRY(
        cudaMemcpyAsync(st->d_pos, &st->h_pos_token[0], sizeof(int32_t), cudaMemcpyHostToDevice, st->stream));
    CUDA_TRY(cudaMemcpyAsync(st->d_token, &st->h_pos_token[1], sizeof(int32_t), cudaMemcpyHostToDevice,
                             st->stream));
    CUDA_TRY(cudaGraphLaunch(st->decode_graph, st->stream));
    CUDA_TRY(cudaStreamSynchronize(st->stream));
    memcpy(logits, st->h_logits, (size_t)st->V * sizeof(float));
    return 0;
}

/* Uploads the image rows (host fp32, converted to bf16 through the pinned
 * stage) into st->proj and scatters them over the soft-token rows of x. */
static int scatter_image_rows(CudaState *st, const int32_t *image_block, int n, const float *image_embeds,
                              Error *err) {
    int n_soft = 0;
    for (int t = 0; t < n; t++)
        if (image_block[t] >= 0)
            st->host_rows[n_soft++] = t;
    if (n_soft == 0)
        return 0;
    const size_t D = st->D;
    for (int r0 = 0; r0 < n_soft; r0 += st->stage_rows) {
        int rows = n_soft - r0 < st->stage_rows ? n_soft - r0 : st->stage_rows;
        for (size_t i = 0; i < (size_t)rows * D; i++)
            st->h_stage[i] = f32_to_bf16(image_embeds[(size_t)r0 * D + i]);
        CUDA_TRY(cudaMemcpyAsync(st->proj + (size_t)r0 * D, st->h_stage, (size_t)rows * D * sizeof(bf16),
                                 cudaMemcpyHostToDevice, st->stream));
        CUDA_TRY(cudaStreamSynchronize(st->stream)); /* the stage is reused */
    }
    CUDA_TRY(cudaMemcpyAsync(st->d_rows, st->host_rows, (size_t)n_soft * sizeof(int32_t),
                             cudaMemcpyHostToDevice, st->stream));
    CUDA_TRY(cuda_rows_scatter(st->x, st->proj, st->d_rows, n_soft, st->D, st->stream));
    CUDA_TRY(cudaStreamSynchronize(st->stream)); /* host_rows is pageable and reused */
    return 0;
}

static int prefill_run(CudaState *st, const int32_t *tokens, int n, const int32_t *image_block,
                       const float *image_embeds, float *logits, Error *err) {
    if (n <= 0 || n > st->P)
        return error_set(err, "prefill of %d tokens (this backend takes 1..%d)", n, st->P);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= st->V)
            return error_set(err, "token id %d at position %d outside the vocabulary (0..%d)", tokens[t], t,
                             st->V - 1);
    int has_images = 0;
    if (image_block)
        for (int t = 0; t < n && !has_images; t++)
            has_images = image_block[t] >= 0;
    if (has_images && !image_embeds)
        return error_set(err, "prefill: image soft tokens without image embeddings");
    cudaStream_t s = st->stream;
    const size_t D = st->D;
    CUDA_TRY(cudaMemcpyAsync(st->d_ids, tokens, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice, s));
    CUDA_TRY(cuda_embedding_lookup(st->x, st->embed, st->d_ids, n, st->D, st->opt.embed_scale, s));
    if (has_images) {
        CUDA_TRY(cudaMemcpyAsync(st->d_image_block, image_block, (size_t)n * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, s));
        if (scatter_image_rows(st, image_block, n, image_embeds, err))
            return -1;
    }
    const BackendCapture *cap = st->has_cap ? &st->cap : NULL;
    int cap_hidden = cap && cap->hidden && n <= cap->hidden_capacity;
    if (cap_hidden && download_rows(st, cap->hidden, st->x, (size_t)n * D, err))
        return -1;
    CUDA_TRY(cuda_rmsnorm(st->h, st->x, st->layers[0].in_norm, n, st->D, st->cfg.text.rms_norm_eps, s));
    for (int l = 0; l < st->L; l++) {
        if (text_layer(st, l, n, NULL, has_images ? st->d_image_block : NULL, next_norm_of(st, l), err))
            return error_prefix(err, "prefill layer %d", l);
        if (cap_hidden) {
            float *dst = cap->hidden + (size_t)(l + 1) * n * D;
            if (download_rows(st, dst, l + 1 < st->L ? st->x : st->h, (size_t)n * D, err))
                return -1;
        }
    }
    if (cap && cap->all_logits && n <= cap->logits_capacity) {
        for (int t = 0; t < n; t++) {
            CUDA_TRY(cuda_gemv_f32(st->d_logits, st->h + (size_t)t * D, st->lm_head, st->D, st->V, s));
            CUDA_TRY(cudaMemcpyAsync(cap->all_logits + (size_t)t * st->V, st->d_logits,
                                     (size_t)st->V * sizeof(float), cudaMemcpyDeviceToHost, s));
            CUDA_TRY(cudaStreamSynchronize(s));
        }
    }
    CUDA_TRY(cuda_gemv_f32(st->d_logits, st->h + (size_t)(n - 1) * D, st->lm_head, st->D, st->V, s));
    CUDA_TRY(cudaMemcpyAsync(st->h_logits, st->d_logits, (size_t)st->V * sizeof(float),
                             cudaMemcpyDeviceToHost, s));
    CUDA_TRY(cudaStreamSynchronize(s));
    memcpy(logits, st->h_logits, (size_t)st->V * sizeof(float));
    return 0;
}

/* ---- the vision tower and projector */

static int vision_linear(CudaState *st, bf16 *y, const bf16 *x, const bf16 *w, const bf16 *bias, int in,
                         int out, Error *err) {
    return linear(st, y, x, w, bias, st->Np, in, out, err);
}

static int encode_image_run(CudaState *st, const float *pixels, float *out, Error *err) {
    if (!st->cfg.has_vision)
        return error_set(err, "this model has no vision tower");
    const VisionConfig *vc = &st->cfg.vision;
    cudaStream_t s = st->stream;
    const int Dv = st->Dv, Np = st->Np, dh = Dv / st->Hv;
    const size_t n_pix = (size_t)vc->num_channels * vc->image_size * vc->image_size;
    CUDA_TRY(cudaMemcpyAsync(st->pixels, pixels, n_pix * sizeof(float), cudaMemcpyHostToDevice, s));
    CUDA_TRY(cuda_patch_im2col(st->patches, st->pixels, vc->image_size, vc->patch_size, vc->num_channels,
                               st->patch_k_pad, s));
    if (vision_linear(st, st->vx, st->patches, st->patch_w, st->patch_b, st->patch_k_pad, Dv, err))
        return -1;
    CUDA_TRY(cuda_residual_add(st->vx, st->pos_embed, (long long)Np * Dv, s));
    for (int l = 0; l < vc->num_layers; l++) {
        const CudaVisionLayer *vl = &st->vlayers[l];
        CUDA_TRY(cuda_layernorm(st->vh, st->vx, vl->ln1_w, vl->ln1_b, Np, Dv, vc->layer_norm_eps, s));
        if (vision_linear(st, st->vqkv, st->vh, vl->wqkv, vl->bqkv, Dv, 3 * Dv, err))
            return -1;
        CUDA_TRY(cuda_attention_prefill(st->vattn, st->vqkv, 3 * Dv, st->vqkv + Dv, st->vqkv + 2 * Dv, 3 * Dv,
                                        NULL, Np, st->Hv, st->Hv, dh, 0, 0, 1.0f / sqrtf((float)dh), s));
        if (vision_linear(st, st->vproj, st->vattn, vl->wo, vl->bo, Dv, Dv, err))
            return -1;
        CUDA_TRY(cuda_residual_add(st->vx, st->vproj, (long long)Np * Dv, s));
        CUDA_TRY(cuda_layernorm(st->vh, st->vx, vl->ln2_w, vl->ln2_b, Np, Dv, vc->layer_norm_eps, s));
        if (vision_linear(st, st->vmlp, st->vh, vl->fc1_w, vl->fc1_b, Dv, st->Iv, err))
            return -1;
        CUDA_TRY(cuda_gelu_tanh(st->vmlp, (long long)Np * st->Iv, s));
        if (vision_linear(st, st->vproj, st->vmlp, vl->fc2_w, vl->fc2_b, st->Iv, Dv, err))
            return -1;
        CUDA_TRY(cuda_residual_add(st->vx, st->vproj, (long long)Np * Dv, s));
    }
    CUDA_TRY(cuda_layernorm(st->vh, st->vx, st->post_ln_w, st->post_ln_b, Np, Dv, vc->layer_norm_eps, s));
    if (st->has_cap && st->cap.vision_hidden &&
        download_rows(st, st->cap.vision_hidden, st->vh, (size_t)Np * Dv, err))
        return -1;
    CUDA_TRY(cuda_avgpool_grid(st->pooled, st->vh, st->grid, st->pool_k, Dv, s));
    CUDA_TRY(
        cuda_rmsnorm(st->pooled, st->pooled, st->mm_soft_norm, st->n_img_tokens, Dv, vc->layer_norm_eps, s));
    GemmShape ps = {st->n_img_tokens, Dv, st->D, GEMM_W_IN_OUT, 0, 0};
    if (gemm_run(st->gemm, &ps, st->mm_out, st->pooled, st->mm_proj, NULL, s, err))
        return -1;
    const size_t n_out = (size_t)st->n_img_tokens * st->D;
    for (size_t r0 = 0; r0 < n_out; r0 += (size_t)st->stage_rows * st->D) {
        size_t cnt =
            n_out - r0 < (size_t)st->stage_rows * st->D ? n_out - r0 : (size_t)st->stage_rows * st->D;
        CUDA_TRY(
            cudaMemcpyAsync(st->h_stage, st->mm_out + r0, cnt * sizeof(bf16), cudaMemcpyDeviceToHost, s));
        CUDA_TRY(cudaStreamSynchronize(s));
        for (size_t i = 0; i < cnt; i++)
            out[r0 + i] = bf16_to_f32(st->h_stage[i]);
    }
    return 0;
}

/* ---- the entry points: a lost device refuses at once; failures are classified */

static int cuda_encode_image(void *state, const float *pixels, float *out, Error *err) {
    CudaState *st = state;
    if (st->lost)
        return refuse_lost(st, err);
    cuda_check_take_failure();
    return encode_image_run(st, pixels, out, err) == 0 ? 0 : request_failed(st, err);
}

static int cuda_prefill(void *state, const int32_t *tokens, int n, const int32_t *image_block,
                        const float *image_embeds, float *logits, Error *err) {
    CudaState *st = state;
    if (st->lost)
        return refuse_lost(st, err);
    cuda_check_take_failure();
    return prefill_run(st, tokens, n, image_block, image_embeds, logits, err) == 0 ? 0
                                                                                   : request_failed(st, err);
}

static int cuda_decode(void *state, int32_t token, int pos, float *logits, Error *err) {
    CudaState *st = state;
    if (st->lost)
        return refuse_lost(st, err);
    cuda_check_take_failure();
    return decode_run(st, token, pos, logits, err) == 0 ? 0 : request_failed(st, err);
}

/* ---- create / destroy */

static void cuda_destroy(void *state) {
    CudaState *st = state;
    if (!st)
        return;
    if (st->stream)
        cudaStreamSynchronize(st->stream);
    if (st->decode_graph)
        cudaGraphExecDestroy(st->decode_graph);
    gemm_destroy(st->gemm);
    if (st->device)
        cudaFree(st->device);
    if (st->h_logits)
        cudaFreeHost(st->h_logits);
    if (st->h_pos_token)
        cudaFreeHost(st->h_pos_token);
    if (st->h_stage)
        cudaFreeHost(st->h_stage);
    if (st->stream)
        cudaStreamDestroy(st->stream);
    free(st->layers);
    free(st->vlayers);
    free(st->host_rows);
    free(st->cap_stage);
    free(st);
}

static int check_dims(const CudaState *st, Error *err) {
    const TextConfig *tc = &st->cfg.text;
    if (st->H <= 0 || st->KVH <= 0 || st->H % st->KVH)
        return error_set(err, "cuda backend: %d query heads do not split over %d KV heads", st->H, st->KVH);
    int group = st->H / st->KVH;
    if (group != 1 && group != 2 && group != 4 && group != 8)
        return error_set(err, "cuda backend: %d query heads per KV head (supported: 1, 2, 4, 8)", group);
    if (st->Dh % 8 || st->Dh > 256)
        return error_set(err, "cuda backend: head_dim %d (needs a multiple of 8, at most 256)", st->Dh);
    if (tc->attn_logit_softcapping > 0 || tc->final_logit_softcapping > 0)
        return error_set(err, "cuda backend: logit soft-capping is not implemented");
    if (!st->cfg.has_vision)
        return 0;
    const VisionConfig *vc = &st->cfg.vision;
    if (vc->num_heads <= 0 || vc->hidden_size % vc->num_heads || (vc->hidden_size / vc->num_heads) % 8 ||
        vc->hidden_size / vc->num_heads > 256)
        return error_set(err, "cuda backend: vision head size %d/%d (needs a multiple of 8, at most 256)",
                         vc->hidden_size, vc->num_heads);
    if (vc->patch_size <= 0 || vc->image_size % vc->patch_size)
        return error_set(err, "cuda backend: image size %d is not a multiple of the patch %d", vc->image_size,
                         vc->patch_size);
    int side = (int)lround(sqrt((double)st->cfg.mm_tokens_per_image));
    int grid = vc->image_size / vc->patch_size;
    if (side <= 0 || side * side != st->cfg.mm_tokens_per_image || grid % side)
        return error_set(err, "cuda backend: %d image tokens do not pool a %dx%d patch grid",
                         st->cfg.mm_tokens_per_image, grid, grid);
    if (st->D % 8 || vc->hidden_size % 8)
        return error_set(err, "cuda backend: the projector GEMM needs hidden sizes that are multiples of 8");
    return 0;
}

/* Plans the device memory, checks that it fits, makes the one allocation and
 * points every buffer into it. */
static int allocate_device_memory(CudaState *st, const ModelWeights *w, int cc_major, Error *err) {
    DevicePlanOptions po = {
        .max_context = st->opt.max_context,
        .max_prefill = st->opt.max_prefill,
        .separate_lm_head = w->lm_head && w->lm_head != w->embed,
        .gemm_workspace = device_plan_gemm_workspace(cc_major),
    };
    if (device_plan_build(&st->plan, &st->cfg, &po, err) != 0)
        return error_prefix(err, "cuda backend");
    size_t need =
        cuda_attention_decode_scratch_floats(st->H, st->Dh, DEVICE_PLAN_DECODE_SPLITS) * sizeof(float);
    if (need > st->plan.region[REGION_DECODE_SCRATCH].bytes_each)
        return error_set(err,
                         "cuda backend: the decode attention needs %zu bytes of scratch, the plan has %zu",
                         need, st->plan.region[REGION_DECODE_SCRATCH].bytes_each);
    char summary[400];
    device_plan_summary(&st->plan, summary, sizeof summary);
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (st->plan.total + DEVICE_HEADROOM > free_bytes) {
        char free_text[32], total_text[32];
        return error_set(
            err,
            "cuda backend: the model needs %s, plus %zu MiB for the driver; %s has %s free of %s "
            "(a smaller --max-context shrinks the KV cache and the activations)",
            summary, DEVICE_HEADROOM >> 20, st->device_name,
            device_plan_bytes(free_bytes, free_text, sizeof free_text),
            device_plan_bytes(total_bytes, total_text, sizeof total_text));
    }
    cudaError_t e = cudaMalloc(&st->device, st->plan.total);
    if (e != cudaSuccess) {
        st->device = NULL;
        return error_set(err, "cuda backend: cudaMalloc of %s failed: %s", summary, cudaGetErrorString(e));
    }
    point_buffers(st);
    device_plan_guard(&st->plan, st->device); /* a no-op except on the emulated device under ASan */
    log_msg(LOG_INFO, "cuda backend: device memory %s", summary);
    return 0;
}

/* The pinned host buffers and the host row list. */
static int allocate_host_buffers(CudaState *st, Error *err) {
    CUDA_TRY(cudaMallocHost((void **)&st->h_logits, (size_t)st->V * sizeof(float)));
    CUDA_TRY(cudaMallocHost((void **)&st->h_pos_token, 2 * sizeof(int32_t)));
    int stage_dim = st->D > st->Dv ? st->D : st->Dv;
    st->stage_rows = 256;
    CUDA_TRY(cudaMallocHost((void **)&st->h_stage, (size_t)st->stage_rows * stage_dim * sizeof(bf16)));
    if (!(st->host_rows = malloc((size_t)st->P * sizeof(int32_t))))
        return error_set(err, "cuda backend: out of host memory");
    return 0;
}

/* The vision shapes never change: their GEMMs are planned now. */
static int prepare_vision_gemms(CudaState *st, Error *err) {
    GemmShape shapes[] = {
        {st->Np, st->patch_k_pad, st->Dv, GEMM_W_OUT_IN, 1, 0},
        {st->Np, st->Dv, 3 * st->Dv, GEMM_W_OUT_IN, 1, 0},
        {st->Np, st->Dv, st->Dv, GEMM_W_OUT_IN, 1, 0},
        {st->Np, st->Dv, st->Iv, GEMM_W_OUT_IN, 1, 0},
        {st->Np, st->Iv, st->Dv, GEMM_W_OUT_IN, 1, 0},
        {st->n_img_tokens, st->Dv, st->D, GEMM_W_IN_OUT, 0, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (shapes[i].layout == GEMM_W_OUT_IN && (shapes[i].in_dim % 8 || shapes[i].out_dim % 8))
            continue; /* linear() takes the GEMV path for these */
        int rc = gemm_prepare(st->gemm, &shapes[i], err);
        if (rc == GEMM_NO_PLAN && shapes[i].layout == GEMM_W_OUT_IN)
            continue; /* linear() falls back to the GEMV for it (and says so) */
        if (rc != 0)
            return error_prefix(err, "cuda backend: vision GEMM plan");
    }
    return 0;
}

static int cuda_create(void **state, const ModelConfig *config, const ModelWeights *weights,
                       const BackendOptions *options, Error *err) {
    *state = NULL;
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0)
        return error_set(err, "cuda backend: no CUDA device");
    int dev = 0, major = 0, minor = 0;
    CUDA_TRY(cudaSetDevice(dev));
    CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_TRY(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    if (major * 10 + minor < 89)
        return error_set(err,
                         "cuda backend: compute capability %d.%d; this build has code for 8.9 (L4) and 9.0 "
                         "(H100/H200) and up",
                         major, minor);
    if (options->max_context <= 0 || options->max_prefill <= 0 || options->max_prefill > options->max_context)
        return error_set(err, "cuda backend: bad sizes (max_context %d, max_prefill %d)",
                         options->max_context, options->max_prefill);
    CudaState *st = calloc(1, sizeof *st);
    if (!st)
        return error_set(err, "cuda backend: out of host memory");
    st->cfg = *config;
    st->opt = *options;
    const TextConfig *tc = &config->text;
    st->D = tc->hidden_size;
    st->I = tc->intermediate_size;
    st->H = tc->num_heads;
    st->KVH = tc->num_kv_heads;
    st->Dh = tc->head_dim;
    st->QKV = (st->H + 2 * st->KVH) * st->Dh;
    st->V = tc->vocab_size;
    st->L = tc->num_layers;
    st->P = options->max_prefill;
    st->attn_scale = 1.0f / sqrtf(tc->query_pre_attn_scalar);
    if (config->has_vision) {
        const VisionConfig *vc = &config->vision;
        st->Dv = vc->hidden_size;
        st->Iv = vc->intermediate_size;
        st->Hv = vc->num_heads;
        st->grid = vc->patch_size > 0 ? vc->image_size / vc->patch_size : 0;
        st->Np = st->grid * st->grid;
        st->n_img_tokens = config->mm_tokens_per_image;
        int side = (int)lround(sqrt((double)st->n_img_tokens));
        st->pool_k = side > 0 ? st->grid / side : 0;
        st->patch_k = vc->num_channels * vc->patch_size * vc->patch_size;
        st->patch_k_pad = (st->patch_k + 7) / 8 * 8;
    }
    struct cudaDeviceProp prop;
    snprintf(st->device_name, sizeof st->device_name, "the GPU");
    if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
        snprintf(st->device_name, sizeof st->device_name, "%s", prop.name);
    int rc = check_dims(st, err);
    if (rc == 0 &&
        (!(st->layers = calloc(st->L, sizeof *st->layers)) ||
         (config->has_vision && !(st->vlayers = calloc(config->vision.num_layers, sizeof *st->vlayers)))))
        rc = error_set(err, "cuda backend: out of host memory");
    if (rc == 0)
        rc = allocate_device_memory(st, weights, major, err);
    if (rc == 0 && cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking) != cudaSuccess)
        rc = error_set(err, "cuda backend: cudaStreamCreate failed");
    if (rc == 0)
        rc = gemm_create_with_workspace(&st->gemm, slice(st, REGION_GEMM_WORKSPACE, 0),
                                        st->plan.region[REGION_GEMM_WORKSPACE].bytes_each, err);
    if (rc == 0)
        rc = upload_weights(st, weights, err);
    if (rc == 0)
        rc = allocate_host_buffers(st, err);
    if (rc == 0 && config->has_vision)
        rc = prepare_vision_gemms(st, err);
    if (rc == 0)
        rc = capture_decode_graph(st, err);
    if (rc != 0) {
        cuda_destroy(st);
        return -1;
    }
    *state = st;
    return 0;
}

static const char *cuda_device_name(void *state) {
    return ((CudaState *)state)->device_name;
}

static void cuda_set_capture(void *state, const BackendCapture *capture) {
    CudaState *st = state;
    st->has_cap = capture != NULL;
    if (!capture)
        return;
    st->cap = *capture;
    size_t need = 0;
    if (capture->hidden)
        need = (size_t)capture->hidden_capacity * st->D;
    if (capture->vision_hidden && (size_t)st->Np * st->Dv > need)
        need = (size_t)st->Np * st->Dv;
    if (need > st->cap_stage_elems) {
        bf16 *p = realloc(st->cap_stage, need * sizeof(bf16));
        if (!p) { /* the capture stays empty; the test sees its poisoned buffers */
            fprintf(stderr, "cuda backend: no host memory for the capture stage\n");
            st->has_cap = 0;
            return;
        }
        st->cap_stage = p;
        st->cap_stage_elems = need;
    }
}

static const Backend cuda_backend = {
    .name = "cuda",
    .create = cuda_create,
    .destroy = cuda_destroy,
    .device_name = cuda_device_name,
    .encode_image = cuda_encode_image,
    .prefill = cuda_prefill,
    .decode = cuda_decode,
    .set_capture = cuda_set_capture,
};

const Backend *backend_cuda_get(void) {
    return &cuda_backend;
}

int backend_cuda_available(void) {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
