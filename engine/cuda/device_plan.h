/* The CUDA backend's device memory, planned once (llm.c's malloc_and_point
 * style): every buffer the backend uses on the GPU is a region of ONE
 * cudaMalloc. The sizes come from the model's config and the backend options
 * alone, so the plan can be printed and checked where there is no GPU
 * (`medgemma gpu-plan`, tests/unit/test_device_plan.c). Nothing is allocated
 * on the device after create: a request can only fail for device memory
 * through the driver itself (docs/gpu.md, "Device memory").
 *
 * A region holds `count` slices of `stride` bytes: one slice per layer for the
 * per-layer weights, K and V of each layer for the KV caches, else one slice.
 * Every slice starts 256-byte aligned (what cudaMalloc itself guarantees;
 * cuBLASLt and the kernels' 16-byte vector loads need less). A region the
 * model does not use (an untied lm_head, the vision tower of a text-only
 * model) has count 0 and takes no bytes.
 *
 * Plain C with no CUDA header: the CLI and the unit tests use it in any build. */
#ifndef ENGINE_CUDA_DEVICE_PLAN_H
#define ENGINE_CUDA_DEVICE_PLAN_H

#include <stddef.h>
#include <stdio.h>

#include "engine/config.h"
#include "engine/forward.h"
#include "util/error.h"

#define DEVICE_PLAN_ALIGN 256
/* Bytes of redzone after every slice: 0, except in the emulated test build
 * (tests/gpu/cudaemu/cudaemu.mk), where an ASan build poisons them
 * (device_arena_carve) so a kernel overrunning its carve is reported. */
#ifndef DEVICE_PLAN_REDZONE
#define DEVICE_PLAN_REDZONE 0
#endif
/* Most blocks one decode attention splits its KV slots over; the decode
 * scratch is sized for it (kernels/cuda/attention.cu). */
#define DEVICE_PLAN_DECODE_SPLITS 64

typedef enum {
    PLAN_WEIGHTS,
    PLAN_KV_CACHE,
    PLAN_TEXT_ACTIVATIONS,
    PLAN_VISION_ACTIVATIONS,
    PLAN_GEMM_WORKSPACE,
    PLAN_GROUP_COUNT
} DevicePlanGroup;

typedef enum {
    /* text weights (bf16, as engine/forward.c binds them: one matrix per projection) */
    REGION_EMBED,      /* [V, D] */
    REGION_LM_HEAD,    /* [V, D], only when not tied to the embedding */
    REGION_FINAL_NORM, /* [D] */
    REGION_WQ,         /* per layer [H Dh, D] */
    REGION_WK,         /* per layer [KVH Dh, D], and v */
    REGION_WV,
    REGION_WO,    /* per layer [D, H Dh] */
    REGION_WGATE, /* per layer [I, D], and up */
    REGION_WUP,
    REGION_WDOWN,      /* per layer [D, I] */
    REGION_INPUT_NORM, /* per layer [D], and the three below */
    REGION_POST_ATTN_NORM,
    REGION_PRE_FF_NORM,
    REGION_POST_FF_NORM,
    REGION_Q_NORM, /* per layer [Dh], and k_norm */
    REGION_K_NORM,
    /* vision tower and projector weights (bf16) */
    REGION_PATCH_W,   /* [Dv, patch_k_pad]: the conv weight with zero columns up to a multiple of 8 */
    REGION_PATCH_B,   /* [Dv] */
    REGION_POS_EMBED, /* [Np, Dv] */
    REGION_POST_LN_W, /* [Dv], and the bias */
    REGION_POST_LN_B,
    REGION_MM_SOFT_NORM, /* [Dv] */
    REGION_MM_PROJ,      /* [Dv, D] (in x out) */
    REGION_V_LN1_W,      /* per vision layer [Dv], and the three below */
    REGION_V_LN1_B,
    REGION_V_LN2_W,
    REGION_V_LN2_B,
    REGION_V_WQ, /* per vision layer [Dv, Dv] and its bias [Dv]; k, v, out likewise */
    REGION_V_BQ,
    REGION_V_WK,
    REGION_V_BK,
    REGION_V_WV,
    REGION_V_BV,
    REGION_V_WO,
    REGION_V_BO,
    REGION_V_FC1_W, /* per vision layer [Iv, Dv] */
    REGION_V_FC1_B, /* per vision layer [Iv] */
    REGION_V_FC2_W, /* per vision layer [Dv, Iv] */
    REGION_V_FC2_B, /* per vision layer [Dv] */
    /* KV cache (bf16 [slots, KVH Dh]): a K and a V slice per layer (engine/kv_cache.c's capacities) */
    REGION_KV_FULL, /* layers that keep every position: max_context slots */
    REGION_KV_RING, /* sliding-window layers: a ring of sliding_window + ring_extra slots */
    /* text activations (engine/forward.c), P = max_prefill rows */
    REGION_X,              /* [P, D] bf16 residual stream */
    REGION_XN,             /* [P, max(D, H Dh)] normed input / projection output */
    REGION_Q,              /* [P, H Dh] */
    REGION_K,              /* [P, KVH Dh], and v */
    REGION_V,              /* */
    REGION_ATTN,           /* [P, H Dh] */
    REGION_GATE,           /* [min(P, FORWARD_MLP_CHUNK), I], and up */
    REGION_UP,             /* */
    REGION_LOGITS,         /* [V] fp32 */
    REGION_IDS,            /* [P] int32 token ids (the CUDA op table's); image_block likewise */
    REGION_IMAGE_BLOCK,    /* [P] int32 */
    REGION_POS_TOKEN,      /* [3] int32: a call's first position; the decode graph's position and token */
    REGION_DECODE_SCRATCH, /* fp32 partial results of the split decode attention */
    /* vision activations (one image at a time) */
    REGION_PIXELS,  /* [C, S, S] fp32 */
    REGION_PATCHES, /* [Np, patch_k_pad] bf16 (the CUDA op table's im2col) */
    REGION_VX,      /* [Np, Dv] bf16; xn, q, k, v, attn likewise */
    REGION_VXN,
    REGION_VQ,
    REGION_VK,
    REGION_VV,
    REGION_VATTN,
    REGION_VMLP,   /* [Np, Iv] */
    REGION_POOLED, /* [mm_tokens, Dv] */
    REGION_MM_OUT, /* [mm_tokens, D] */
    /* cuBLASLt's workspace */
    REGION_GEMM_WORKSPACE,
    REGION_COUNT
} DeviceRegionId;

typedef struct {
    const char *name; /* "layers.wqkv", "kv_cache.full", ... */
    DevicePlanGroup group;
    size_t count;      /* slices */
    size_t bytes_each; /* bytes each slice uses */
    size_t stride;     /* bytes_each rounded up to DEVICE_PLAN_ALIGN */
    size_t offset;     /* of slice 0 from the start of the allocation */
    size_t bytes;      /* count * stride */
} DeviceRegion;

typedef struct {
    int max_context;       /* KV cache positions */
    int max_prefill;       /* rows of the text activations */
    int separate_lm_head;  /* the checkpoint has an lm_head that is not the embedding */
    size_t gemm_workspace; /* cuBLASLt workspace bytes */
    int ring_extra;        /* local layers' ring slots past the window (engine/kv_cache.h) */
} DevicePlanOptions;

typedef struct {
    DeviceRegion region[REGION_COUNT];
    size_t group_bytes[PLAN_GROUP_COUNT];
    size_t total; /* bytes of the one allocation */
    int n_full_layers, n_ring_layers;
    DevicePlanOptions options;
} DevicePlan;

/* Sizes every region. Fails on options out of range and on sizes that do not
 * fit size_t (a corrupt config). */
int device_plan_build(DevicePlan *plan, const ModelConfig *config, const DevicePlanOptions *options,
                      Error *err);

/* The ring size of layer l's KV cache: sliding_window for a local layer whose
 * window is shorter than max_context, 0 for a layer that keeps every position. */
int device_plan_kv_ring(const ModelConfig *config, int max_context, int layer);

/* The cuBLASLt workspace the backend gives a device of compute capability
 * major.minor: 32 MiB on Hopper and later, 4 MiB else. */
size_t device_plan_gemm_workspace(int cc_major);

/* Address of slice i of a region inside the allocation at base. */
void *device_plan_slice(const DevicePlan *plan, void *base, DeviceRegionId region, size_t i);

/* Bytes a slice of `bytes` takes: rounded up past its redzone to DEVICE_PLAN_ALIGN. */
size_t device_plan_stride(size_t bytes);

/* Carving the one allocation: the CUDA op table (kernels/cuda/ops_cuda.c) hands out
 * slices of `device_plan_stride(bytes)` one after the other, as engine/forward.c
 * allocates its tensors and prepares its weights; the plan sized the allocation for
 * exactly those, in any order. A freed slice is given back once every slice carved
 * after it is freed too (a stack). With DEVICE_PLAN_REDZONE under ASan (emulated
 * device only) the bytes between a slice's end and the next slice are poisoned. */
typedef struct {
    char *base;
    size_t size, used, peak; /* bytes: the allocation, carved now, carved at most */
    size_t *ends;            /* [n]: where each carved slice ends (its start is the previous end) */
    char *freed;             /* [n] */
    int n, cap;
} DeviceArena;

void device_arena_init(DeviceArena *a, void *base, size_t size);
/* A slice of at least `bytes`, DEVICE_PLAN_ALIGN aligned; NULL when it does not fit
 * (or the host is out of memory for the bookkeeping). */
void *device_arena_carve(DeviceArena *a, size_t bytes);
/* Gives a slice back (p from device_arena_carve; NULL is ignored). */
void device_arena_free(DeviceArena *a, void *p);
void device_arena_destroy(DeviceArena *a);

const char *device_plan_group_name(DevicePlanGroup group);

/* "8.01 GiB", or "12.3 MiB" below 1 GiB, into buf; returns buf. */
const char *device_plan_bytes(size_t bytes, char *buf, size_t n);

/* One line: the total and each group's bytes (for the log). */
void device_plan_summary(const DevicePlan *plan, char *out, size_t out_size);

/* A table: each group and, with all_regions, every region (offset, slices, bytes). */
void device_plan_print(const DevicePlan *plan, FILE *f, int all_regions);

#endif
