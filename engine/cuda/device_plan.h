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
#include "util/error.h"

#define DEVICE_PLAN_ALIGN 256
/* Bytes of redzone after every slice: 0, except in the emulated test build
 * (tests/gpu/cudaemu/cudaemu.mk), where an ASan build poisons them
 * (device_plan_guard) so a kernel overrunning its carve is reported. */
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
    /* text weights (bf16; q|k|v and gate|up fused per layer) */
    REGION_EMBED,      /* [V, D] */
    REGION_LM_HEAD,    /* [V, D], only when not tied to the embedding */
    REGION_FINAL_NORM, /* [D] */
    REGION_WQKV,       /* per layer [(H + 2 KVH) Dh, D] */
    REGION_WO,         /* per layer [D, H Dh] */
    REGION_WGU,        /* per layer [2 I, D] */
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
    REGION_V_WQKV,  /* per vision layer [3 Dv, Dv] */
    REGION_V_BQKV,  /* per vision layer [3 Dv] */
    REGION_V_WO,    /* per vision layer [Dv, Dv] */
    REGION_V_BO,    /* per vision layer [Dv] */
    REGION_V_FC1_W, /* per vision layer [Iv, Dv] */
    REGION_V_FC1_B, /* per vision layer [Iv] */
    REGION_V_FC2_W, /* per vision layer [Dv, Iv] */
    REGION_V_FC2_B, /* per vision layer [Dv] */
    /* KV cache (bf16 [slots, KVH Dh]); slice 2 i is the K, 2 i + 1 the V of the i-th such layer */
    REGION_KV_FULL, /* layers that keep every position: max_context slots */
    REGION_KV_RING, /* sliding-window layers: a ring of sliding_window slots */
    /* text activations, max_prefill rows (P) */
    REGION_X,              /* [P, D] bf16 residual stream; h, proj likewise */
    REGION_H,              /* normed input of the next sub-layer */
    REGION_PROJ,           /* o_proj / down_proj output; image rows on their way in */
    REGION_QKV,            /* [P, (H + 2 KVH) Dh] */
    REGION_ATTN,           /* [P, H Dh] */
    REGION_GU,             /* [P, 2 I] */
    REGION_MLP,            /* [P, I] */
    REGION_LOGITS,         /* [V] fp32 */
    REGION_IDS,            /* [P] int32 token ids; image_block and rows likewise */
    REGION_IMAGE_BLOCK,    /* [P] int32 */
    REGION_ROWS,           /* [P] int32 image rows of the prompt */
    REGION_POS_TOKEN,      /* [2] int32: the decode graph's position and token */
    REGION_DECODE_SCRATCH, /* fp32 partial results of the split decode attention */
    /* vision activations (one image at a time) */
    REGION_PIXELS,  /* [C, S, S] fp32 */
    REGION_PATCHES, /* [Np, patch_k_pad] bf16 */
    REGION_VX,      /* [Np, Dv] bf16; vh, vattn, vproj likewise */
    REGION_VH,
    REGION_VATTN,
    REGION_VPROJ,
    REGION_VQKV,   /* [Np, 3 Dv] */
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
/* With DEVICE_PLAN_REDZONE under ASan (emulated device only): poisons the bytes
 * between each slice's end and the next slice. Otherwise does nothing. */
void device_plan_guard(const DevicePlan *plan, void *base);

const char *device_plan_group_name(DevicePlanGroup group);

/* "8.01 GiB", or "12.3 MiB" below 1 GiB, into buf; returns buf. */
const char *device_plan_bytes(size_t bytes, char *buf, size_t n);

/* One line: the total and each group's bytes (for the log). */
void device_plan_summary(const DevicePlan *plan, char *out, size_t out_size);

/* A table: each group and, with all_regions, every region (offset, slices, bytes). */
void device_plan_print(const DevicePlan *plan, FILE *f, int all_regions);

#endif
