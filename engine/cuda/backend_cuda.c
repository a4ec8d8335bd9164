/* The CUDA backend (engine/backend.h) on one GPU: the model of engine/forward.c
 * over the CUDA op table (kernels/cuda/ops_cuda.c), like backend_cpu.c over the CPU's.
 *
 * Owns: ONE device allocation planned at create (engine/cuda/device_plan.h) from
 * which the op table carves everything the forward pass allocates and binds (the bf16
 * weights, the bf16 KV cache, the activations for max_prefill rows and one image) and
 * its own scratch (cuBLASLt's workspace among it); create checks that the carves used
 * exactly the plan. And the decode step, captured once as a CUDA graph: forward_text
 * of one token with the op table in its graph mode (the token id and the position in
 * device memory behind fixed pointers, the logits copied into a pinned buffer), so
 * one graph replays unchanged every token. Nothing is allocated on the device after
 * create. A prompt may continue a cached prefix (continue_prefill: forward_text at
 * pos0 > 0; the local layers' rings keep ring_extra slots past the window,
 * docs/caching.md).
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
#include "engine/forward.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/ops_cuda.h"
#include "util/log.h"

/* Device memory create leaves free besides the plan: for the driver (kernel
 * modules loaded at their first launch, cuBLASLt's own buffers, graphs). */
#define DEVICE_HEADROOM ((size_t)256 << 20)

typedef struct {
    ModelConfig cfg;
    BackendOptions opt;
    char device_name[256];
    DevicePlan plan;
    void *device; /* the one allocation: plan.total bytes */
    DeviceArena arena;
    Ops ops;
    Forward *forward;
    cudaError_t lost; /* the sticky error that lost the device; cudaSuccess while it works */
    cudaGraphExec_t decode_graph;
    int32_t *h_pos_token; /* pinned [2]: the graph's position and token */
    float *h_logits;      /* pinned [V]: the graph's logits */
    BackendCapture cap;
    int has_cap;
} CudaState;

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

/* ---- the entry points: arguments checked, the model run, failures classified */

static int check_tokens(const CudaState *st, const int32_t *tokens, int n, const int32_t *image_block,
                        const float *image_embeds, Error *err) {
    if (n <= 0 || n > st->opt.max_prefill)
        return error_set(err, "prefill of %d tokens (this backend takes 1..%d)", n, st->opt.max_prefill);
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= st->cfg.text.vocab_size)
            return error_set(err, "token id %d at position %d outside the vocabulary (0..%d)", tokens[t], t,
                             st->cfg.text.vocab_size - 1);
        if (image_block && image_block[t] >= 0 && !image_embeds)
            return error_set(err, "prefill: image soft tokens without image embeddings");
    }
    return 0;
}

static int cuda_encode_image(void *state, const float *pixels, float *out, Error *err) {
    CudaState *st = state;
    if (st->lost)
        return refuse_lost(st, err);
    cuda_check_take_failure();
    if (!st->cfg.has_vision)
        return error_set(err, "this model has no vision tower");
    int rc = forward_image(st->forward, pixels, out, st->has_cap ? st->cap.vision_hidden : NULL, err);
    return rc == 0 ? 0 : request_failed(st, err);
}

static int cuda_prefill(void *state, const int32_t *tokens, int n, const int32_t *image_block,
                        const float *image_embeds, float *logits, Error *err) {
    CudaState *st = state;
    if (st->lost)
        return refuse_lost(st, err);
    cuda_check_take_failure();
    if (check_tokens(st, tokens, n, image_block, image_embeds, err) != 0)
        return ENGINE_ERR_INPUT;
    int rc = forward_text(st->forward, tokens, n, 0, image_block, image_embeds, logits,
                          st->has_cap ? &st->cap : NULL, err);
    return rc == 0 ? 0 : request_failed(st, err);
}

/* tokens[0..n) at positions pos0.. over the cached prefix (backend.h continue_prefill). */
static int cuda_continue_prefill(void *state, const int32_t *tokens, int n, int pos0,
                                 const int32_t *image_block, const float *image_embeds, float *logits,
                                 Error *err) {
    CudaState *st = state;
    if (st->lost)
        return refuse_lost(st, err);
    cuda_check_take_failure();
    if (pos0 < 1 || pos0 + n > st->opt.max_context)
        return error_set(err, "prefill of %d tokens at position %d (the KV cache holds %d)", n, pos0,
                         st->opt.max_context);
    if (check_tokens(st, tokens, n, image_block, image_embeds, err) != 0)
        return ENGINE_ERR_INPUT;
    int rc = forward_text(st->forward, tokens, n, pos0, image_block, image_embeds, logits, NULL, err);
    return rc == 0 ? 0 : request_failed(st, err);
}

/* One token: the captured graph with the position and token uploaded first. */
static int decode_run(CudaState *st, int32_t token, int pos, float *logits, Error *err) {
    cudaStream_t s = ops_cuda_stream(&st->ops);
    st->h_pos_token[0] = pos;
    st->h_pos_token[1] = token;
    CUDA_TRY(cudaMemcpyAsync(ops_cuda_graph_inputs(&st->ops), st->h_pos_token, 2 * sizeof(int32_t),
                             cudaMemcpyHostToDevice, s));
    CUDA_TRY(cudaGraphLaunch(st->decode_graph, s));
    CUDA_TRY(cudaStreamSynchronize(s));
    memcpy(logits, st->h_logits, (size_t)st->cfg.text.vocab_size * sizeof(float));
    return 0;
}

static int cuda_decode(void *state, int32_t token, int pos, float *logits, Error *err) {
    CudaState *st = state;
    if (st->lost)
        return refuse_lost(st, err);
    cuda_check_take_failure();
    if (pos < 0 || pos >= st->opt.max_context)
        return error_set(err, "decode position %d outside the KV cache (0..%d)", pos,
                         st->opt.max_context - 1);
    if (token < 0 || token >= st->cfg.text.vocab_size)
        return error_set(err, "token id %d outside the vocabulary (0..%d)", token,
                         st->cfg.text.vocab_size - 1);
    return decode_run(st, token, pos, logits, err) == 0 ? 0 : request_failed(st, err);
}

/* ---- create / destroy */

static void cuda_destroy(void *state) {
    CudaState *st = state;
    if (!st)
        return;
    if (st->ops.ctx)
        cudaStreamSynchronize(ops_cuda_stream(&st->ops));
    if (st->decode_graph)
        cudaGraphExecDestroy(st->decode_graph);
    forward_destroy(st->forward);
    if (st->ops.ctx)
        ops_cuda_destroy(&st->ops);
    device_arena_destroy(&st->arena);
    if (st->device)
        cudaFree(st->device);
    if (st->h_logits)
        cudaFreeHost(st->h_logits);
    if (st->h_pos_token)
        cudaFreeHost(st->h_pos_token);
    free(st);
}

/* What the kernels support (kernels/cuda/: attention's head sizes and groups, 16-byte rows). */
static int check_dims(const ModelConfig *cfg, Error *err) {
    const TextConfig *tc = &cfg->text;
    if (tc->num_heads <= 0 || tc->num_kv_heads <= 0 || tc->num_heads % tc->num_kv_heads)
        return error_set(err, "cuda backend: %d query heads do not split over %d KV heads", tc->num_heads,
                         tc->num_kv_heads);
    int group = tc->num_heads / tc->num_kv_heads;
    if (group != 1 && group != 2 && group != 4 && group != 8)
        return error_set(err, "cuda backend: %d query heads per KV head (supported: 1, 2, 4, 8)", group);
    if (tc->head_dim % 8 || tc->head_dim > 256)
        return error_set(err, "cuda backend: head_dim %d (needs a multiple of 8, at most 256)", tc->head_dim);
    if (tc->attn_logit_softcapping > 0 || tc->final_logit_softcapping > 0)
        return error_set(err, "cuda backend: logit soft-capping is not implemented");
    if (!cfg->has_vision)
        return 0;
    const VisionConfig *vc = &cfg->vision;
    if (vc->num_heads <= 0 || vc->hidden_size % vc->num_heads || (vc->hidden_size / vc->num_heads) % 8 ||
        vc->hidden_size / vc->num_heads > 256)
        return error_set(err, "cuda backend: vision head size %d/%d (needs a multiple of 8, at most 256)",
                         vc->hidden_size, vc->num_heads);
    if (vc->patch_size <= 0 || vc->image_size % vc->patch_size)
        return error_set(err, "cuda backend: image size %d is not a multiple of the patch %d", vc->image_size,
                         vc->patch_size);
    int side = (int)lround(sqrt((double)cfg->mm_tokens_per_image));
    int grid = vc->image_size / vc->patch_size;
    if (side <= 0 || side * side != cfg->mm_tokens_per_image || grid % side)
        return error_set(err, "cuda backend: %d image tokens do not pool a %dx%d patch grid",
                         cfg->mm_tokens_per_image, grid, grid);
    if (tc->hidden_size % 8 || vc->hidden_size % 8)
        return error_set(err, "cuda backend: the projector GEMM needs hidden sizes that are multiples of 8");
    return 0;
}

/* Plans the device memory, checks that it fits and makes the one allocation. */
static int allocate_device_memory(CudaState *st, const ModelWeights *w, int cc_major, Error *err) {
    DevicePlanOptions po = {
        .max_context = st->opt.max_context,
        .max_prefill = st->opt.max_prefill,
        .separate_lm_head = w->lm_head && w->lm_head != w->embed,
        .gemm_workspace = device_plan_gemm_workspace(cc_major),
        .ring_extra = st->opt.ring_extra,
    };
    if (device_plan_build(&st->plan, &st->cfg, &po, err) != 0)
        return error_prefix(err, "cuda backend");
    const TextConfig *tc = &st->cfg.text;
    size_t need =
        cuda_attention_decode_scratch_floats(tc->num_heads, tc->head_dim, DEVICE_PLAN_DECODE_SPLITS) *
        sizeof(float);
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
    device_arena_init(&st->arena, st->device, st->plan.total);
    log_msg(LOG_INFO, "cuda backend: device memory %s", summary);
    return 0;
}

/* The op table over the allocation, the forward pass with its weights uploaded; then
 * every planned byte must have been carved (the plan and forward.c agree). */
static int build_model(CudaState *st, const ModelWeights *w, Error *err) {
    const DeviceRegion *r = st->plan.region;
    CudaOpsOptions oo = {&st->arena, st->opt.max_prefill, r[REGION_DECODE_SCRATCH].bytes_each,
                         r[REGION_PATCHES].count ? r[REGION_PATCHES].bytes_each : 0,
                         r[REGION_GEMM_WORKSPACE].bytes_each};
    if (ops_cuda_create(&st->ops, &oo, err) != 0)
        return -1;
    ForwardOptions fo = {st->opt.max_context, st->opt.max_prefill, st->opt.embed_scale, st->opt.ring_extra};
    if (ops_cuda_upload_begin(&st->ops, err) != 0)
        return -1;
    int rc = forward_create(&st->forward, &st->ops, &st->cfg, w, &fo, err);
    Error carve;
    if (rc != 0 && st->ops.status(st->ops.ctx, &carve) != 0)
        *err = carve; /* the op table's own message (e.g. a tensor the plan did not size) */
    Error up;
    if (ops_cuda_upload_end(&st->ops, &up) != 0 && rc == 0) {
        *err = up;
        rc = -1;
    }
    if (rc == 0 && st->arena.peak != st->plan.total)
        rc = error_set(err,
                       "cuda backend: the device plan has %zu bytes, the model carved %zu "
                       "(engine/cuda/device_plan.c and engine/forward.c disagree)",
                       st->plan.total, st->arena.peak);
    return rc;
}

/* forward_text of one token under stream capture, the op table in its graph mode. */
static int capture_decode_graph(CudaState *st, Error *err) {
    cudaStream_t s = ops_cuda_stream(&st->ops);
    int32_t token = 0;
    CUDA_TRY(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    ops_cuda_graph_mode(&st->ops, 1);
    int rc = forward_text(st->forward, &token, 1, 1, NULL, NULL, st->h_logits, NULL, err);
    ops_cuda_graph_mode(&st->ops, 0);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(s, &graph);
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
    if (check_dims(config, err) != 0)
        return -1;
    CudaState *st = calloc(1, sizeof *st);
    if (!st)
        return error_set(err, "cuda backend: out of host memory");
    st->cfg = *config;
    st->opt = *options;
    struct cudaDeviceProp prop;
    snprintf(st->device_name, sizeof st->device_name, "the GPU");
    if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
        snprintf(st->device_name, sizeof st->device_name, "%s", prop.name);
    int rc = allocate_device_memory(st, weights, major, err);
    if (rc == 0)
        rc = build_model(st, weights, err);
    if (rc == 0 && (cudaMallocHost((void **)&st->h_logits, (size_t)config->text.vocab_size * sizeof(float)) !=
                        cudaSuccess ||
                    cudaMallocHost((void **)&st->h_pos_token, 2 * sizeof(int32_t)) != cudaSuccess))
        rc = error_set(err, "cuda backend: cudaMallocHost failed");
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
    if (capture)
        st->cap = *capture;
}

static const Backend cuda_backend = {
    .name = "cuda",
    .create = cuda_create,
    .destroy = cuda_destroy,
    .device_name = cuda_device_name,
    .encode_image = cuda_encode_image,
    .prefill = cuda_prefill,
    .continue_prefill = cuda_continue_prefill,
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
