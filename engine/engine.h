/* The engine: one loaded model (config, weights, tokenizer-independent) on one
 * backend, and the generation loop (prefill, decode, sampling, stop tokens).
 *
 * Callers (cli/, http/) turn text and images into token ids and pixel tensors
 * with tokenizer/ and image/, then call engine_generate. One request runs at a
 * time on an Engine; the engine is not thread-safe. */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "grammar/grammar.h"
#include "util/error.h"

typedef struct Engine Engine;

typedef enum { BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA } BackendKind;

typedef struct {
    const char *model_dir; /* Hugging Face layout: config.json + *.safetensors */
    BackendKind backend;
    int n_threads;   /* CPU backend threads; 0 = all cores */
    int max_context; /* KV capacity in positions; 0 = min(config, 32768) */
    /* CPU backend only (the GPU computes in bf16 with bf16 weights whatever these say):
     * precision "exact" (default: fp32 activations) or "bf16" (activations rounded to
     * bf16 at every GEMM input); weights "bf16" (default: as stored) or "q8" (quantized
     * at load, block of 32, like llama.cpp's Q8_0). NULL = env MEDGEMMA_PRECISION /
     * MEDGEMMA_WEIGHTS, else the default. README "CPU precision" says what each costs. */
    const char *precision;
    const char *weights;
} EngineOptions;

/* Loads the model; fills err (naming file/tensor/field) and returns -1 on failure. */
int engine_open(Engine **out, const EngineOptions *options, Error *err);
void engine_close(Engine *engine);

typedef struct {
    const char *backend;  /* "cpu" or "cuda" */
    const char *gpu_name; /* the GPU in use; NULL on the CPU */
    int gpu_available;    /* a CUDA device was found, whichever backend serves */
    /* Why `auto` serves on the CPU although a GPU was found (the CUDA
     * backend's create error, also logged at ERROR); NULL otherwise. */
    const char *fallback_reason;
    int max_context;  /* positions the KV cache holds */
    int image_size;   /* pixels per side the vision tower wants (896); 0 = text-only model */
    int image_tokens; /* soft tokens per image (256); 0 = text-only model */
    int vocab_size;
} EngineInfo;

void engine_info(const Engine *engine, EngineInfo *info);

typedef enum { FINISH_STOP, FINISH_LENGTH, FINISH_CANCELLED } FinishReason;

/* Called with every generated token id (stop tokens excluded). Return nonzero
 * to cancel the generation (client gone, deadline passed). */
typedef int (*TokenCallback)(void *user, int32_t token_id);

typedef struct {
    const int32_t *tokens; /* prompt ids, images already expanded to soft tokens */
    int n_tokens;
    /* One normalized CHW float tensor of 3 x image_size x image_size per image,
     * in the order the images' soft-token blocks appear in tokens. */
    const float *const *images;
    int n_images;
    int max_new_tokens;
    float temperature; /* 0 = greedy */
    int top_k;         /* 0 = off */
    float top_p;       /* 1 = off */
    uint64_t seed;
    TokenCallback on_token;
    void *user;
    /* Constrained decoding (grammar/grammar.h), NULL for free text: before
     * each sampling step the tokens the matcher does not allow get -inf
     * logits (greedy and sampling alike), and each sampled token advances it.
     * When the model's first token opens a thinking trace (<unused94>), the
     * trace is free text (stop tokens excluded) for up to thinking_budget
     * tokens, then <unused95> is forced and the constrained answer follows. */
    GrammarMatcher *constraint;
    int thinking_budget; /* 0 = GRAMMAR_DEFAULT_THINKING_BUDGET; < 0 = no trace allowed */
    /* The caller's cache namespace (docs/caching.md): a hash of its API key and/or
     * cache_salt; cached prefixes and image embeddings are reused only within one. */
    uint64_t cache_tenant;
} GenerateRequest;

typedef struct {
    int prompt_tokens;
    int completion_tokens;
    FinishReason finish_reason;
    double vision_ms;    /* vision tower + projector, all images */
    double prefill_ms;   /* prompt forward pass, vision excluded */
    double ttft_ms;      /* request start to first token sampled */
    double decode_ms;    /* all decode steps */
    int thinking_tokens; /* tokens of a thinking trace under a constraint (markers included) */
    int cached_tokens;   /* prompt positions reused from the KV cache (not prefilled again) */
} GenerateResult;

/* The caches' counters since engine_open (docs/caching.md), for /metrics. */
typedef struct {
    int prefix_enabled;         /* MEDGEMMA_PREFIX_CACHE on and the backend can continue a prefix */
    long long prefix_hits;      /* prompts continued from a cached prefix */
    long long prefix_misses;    /* prompts prefilled from position 0 (prefix enabled) */
    long long prefix_fallbacks; /* of the misses: a common prefix existed but could not be used */
    long long prefix_tokens_reused;
    long long image_hits, image_misses;
    long long image_bytes, image_entries; /* held now */
    long long image_budget_bytes;
    long long expired; /* entries dropped after MEDGEMMA_CACHE_IDLE_S */
} EngineCacheStats;

void engine_cache_stats(const Engine *engine, EngineCacheStats *stats);

/* engine_generate's failures (err says what). */
enum {
    ENGINE_ERR_INPUT = -1,         /* the request is wrong: prompt longer than max_context, image count
                                      not matching the soft-token blocks, ids out of range */
    ENGINE_ERR_OUT_OF_MEMORY = -2, /* the device had no free memory for this request; the next may work */
    ENGINE_ERR_INTERNAL = -3,      /* a device call failed (a bug, not the input); the next may work */
    ENGINE_ERR_DEVICE_LOST = -4,   /* the device failed for good (a sticky CUDA error such as an illegal
                                      address): this and every later request fails; only a new process
                                      gets a working GPU */
};

/* Runs one request: 0, or one of the ENGINE_ERR_* codes above with err
 * filled. Except after ENGINE_ERR_DEVICE_LOST, the engine stays usable after
 * a failure. */
int engine_generate(Engine *engine, const GenerateRequest *request, GenerateResult *result, Error *err);

/* NULL while the device works; after ENGINE_ERR_DEVICE_LOST, what failed. */
const char *engine_device_error(const Engine *engine);

#endif
