/* The engine (engine.h): a loaded model on one backend, and the generation
 * loop: validate the request, encode the images, prefill, then sample and
 * decode one token at a time until a stop id, the token budget, the context
 * end or the caller's cancellation. Buffers for the loop are allocated at
 * open; the token loop allocates nothing. */
#include "engine/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/backend.h"
#include "engine/image_cache.h"
#include "engine/model.h"
#include "engine/prefix_cache.h"
#include "engine/sampler.h"
#include "util/log.h"

#define DEFAULT_MAX_CONTEXT 32768
/* Caches (docs/caching.md): defaults of MEDGEMMA_PREFIX_RING_EXTRA, MEDGEMMA_IMAGE_CACHE_MB,
 * MEDGEMMA_CACHE_IDLE_S. */
#define DEFAULT_RING_EXTRA 1024
#define DEFAULT_IMAGE_CACHE_MB 256
#define DEFAULT_CACHE_IDLE_S 600

struct Engine {
    Model model;
    const Backend *backend;
    void *state;
    int gpu_available;         /* a CUDA device was found */
    char fallback_reason[512]; /* "" unless `auto` fell back to the CPU */
    char device_error[512];    /* "" until the device failed for good */
    int max_context;
    float *logits;        /* [vocab] */
    int32_t *scratch;     /* [vocab] sampler scratch */
    int32_t *image_block; /* [max_context] */
    uint32_t *mask;       /* [vocab / 32] constrained decoding's allowed ids */
    /* caches (docs/caching.md) */
    int prefix_on; /* MEDGEMMA_PREFIX_CACHE != 0 and the backend has continue_prefill */
    int cache_on;  /* MEDGEMMA_PREFIX_CACHE != 0 */
    double idle_s;
    PrefixGeometry geometry;
    PrefixRecord prefix;
    ImageCache *images;
    EngineCacheStats stats;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A non-negative integer from the environment, or def when unset or not a number. */
static long env_long(const char *name, long def) {
    const char *v = getenv(name);
    char *end;
    if (!v || !*v)
        return def;
    long x = strtol(v, &end, 10);
    if (*end || x < 0) {
        log_msg(LOG_WARNING, "%s=%s is not a non-negative integer; using %ld", name, v, def);
        return def;
    }
    return x;
}

/* Creates the chosen backend's state. */
static int create_backend(Engine *e, const Backend *backend, const BackendOptions *bo, Error *err) {
    e->backend = backend;
    e->state = NULL;
    if (backend->create(&e->state, &e->model.config, &e->model.weights, bo, err) != 0) {
        e->state = NULL;
        return -1;
    }
    return 0;
}

/* The backend choice. cpu: the CPU. cuda: the GPU or a failure naming why,
 * never the CPU (deploy.sh sets it: a GPU instance that cannot use its GPU
 * must not start). auto: the GPU when one is present and the backend can be
 * created on it; else the CPU, and when a GPU was there that fallback is an
 * ERROR in the log and engine_info's fallback_reason (the server's /health). */
static int open_backend(Engine *e, BackendKind kind, const BackendOptions *bo, Error *err) {
    if (kind == BACKEND_CPU)
        return create_backend(e, backend_cpu_get(), bo, err);
#ifdef MEDGEMMA_CUDA
    e->gpu_available = backend_cuda_available();
    if (kind == BACKEND_CUDA) {
        if (create_backend(e, backend_cuda_get(), bo, err) != 0)
            return error_prefix(err, "backend cuda (no fallback to the CPU with --backend cuda)");
        return 0;
    }
    if (e->gpu_available) {
        Error cuda_err = {{0}};
        if (create_backend(e, backend_cuda_get(), bo, &cuda_err) == 0)
            return 0;
        snprintf(e->fallback_reason, sizeof e->fallback_reason, "%s", cuda_err.message);
        log_msg(LOG_ERROR,
                "a GPU is present but the CUDA backend failed: %s; serving on the CPU (slow). "
                "--backend cuda (MEDGEMMA_BACKEND=cuda) makes this a startup failure",
                cuda_err.message);
    }
#else
    if (kind == BACKEND_CUDA)
        return error_set(err,
                         "backend 'cuda' requested, but this build has no CUDA backend (built without nvcc)");
#endif
    return create_backend(e, backend_cpu_get(), bo, err);
}

/* The caches' settings (docs/caching.md); the backend is open. */
static int engine_open_caches(Engine *e, int ring_extra, Error *err) {
    const TextConfig *tc = &e->model.config.text;
    int local = 0;
    for (int l = 0; l < tc->num_layers; l++)
        local |= !tc->layer_is_global[l];
    e->geometry.window = local ? tc->sliding_window : 0;
    e->geometry.max_context = e->max_context;
    e->geometry.ring_capacity = local && tc->sliding_window + ring_extra < e->max_context
                                    ? tc->sliding_window + ring_extra
                                    : e->max_context;
    e->prefix_on = e->cache_on && e->backend->continue_prefill != NULL;
    if (e->cache_on && !e->prefix_on)
        log_msg(LOG_INFO,
                "prefix cache: the %s backend cannot continue a cached prefix; every prompt is prefilled "
                "from position 0 (the image-embedding cache still works)",
                e->backend->name);
    size_t budget =
        e->cache_on ? (size_t)env_long("MEDGEMMA_IMAGE_CACHE_MB", DEFAULT_IMAGE_CACHE_MB) << 20 : 0;
    e->images = image_cache_create(budget);
    if (!e->images)
        return error_set(err, "out of memory");
    e->stats.prefix_enabled = e->prefix_on;
    e->stats.image_budget_bytes = (long long)budget;
    return 0;
}

void engine_cache_stats(const Engine *e, EngineCacheStats *stats) {
    *stats = e->stats;
    stats->image_bytes = (long long)image_cache_bytes(e->images);
    stats->image_entries = image_cache_entries(e->images);
}

int engine_open(Engine **out, const EngineOptions *options, Error *err) {
    *out = NULL;
    Engine *e = calloc(1, sizeof *e);
    if (!e)
        return error_set(err, "out of memory");
    if (model_open(&e->model, options->model_dir, err) != 0) {
        free(e);
        return -1;
    }
    const ModelConfig *c = &e->model.config;
    int max_ctx = options->max_context > 0 ? options->max_context : DEFAULT_MAX_CONTEXT;
    if (max_ctx > c->text.max_position)
        max_ctx = c->text.max_position;
    e->max_context = max_ctx;
    e->logits = malloc((size_t)c->text.vocab_size * sizeof *e->logits);
    e->scratch = malloc((size_t)c->text.vocab_size * sizeof *e->scratch);
    e->image_block = malloc((size_t)max_ctx * sizeof *e->image_block);
    e->mask = malloc(((size_t)c->text.vocab_size + 31) / 32 * sizeof *e->mask);
    if (!e->logits || !e->scratch || !e->image_block || !e->mask) {
        engine_close(e);
        return error_set(err, "out of memory");
    }
    const char *precision = options->precision ? options->precision : getenv("MEDGEMMA_PRECISION");
    const char *weights = options->weights ? options->weights : getenv("MEDGEMMA_WEIGHTS");
    if (precision && *precision && strcmp(precision, "exact") != 0 && strcmp(precision, "bf16") != 0) {
        engine_close(e);
        return error_set(err, "precision must be exact or bf16 (--precision / MEDGEMMA_PRECISION), got '%s'",
                         precision);
    }
    if (weights && *weights && strcmp(weights, "bf16") != 0 && strcmp(weights, "q8") != 0) {
        engine_close(e);
        return error_set(err, "weights must be bf16 or q8 (--weights / MEDGEMMA_WEIGHTS), got '%s'", weights);
    }
    e->cache_on = env_long("MEDGEMMA_PREFIX_CACHE", 1) != 0;
    e->idle_s = (double)env_long("MEDGEMMA_CACHE_IDLE_S", DEFAULT_CACHE_IDLE_S);
    int ring_extra = e->cache_on ? (int)env_long("MEDGEMMA_PREFIX_RING_EXTRA", DEFAULT_RING_EXTRA) : 0;
    if (ring_extra > max_ctx)
        ring_extra = max_ctx;
    BackendOptions bo = {
        .ring_extra = ring_extra,
        .precision_bf16 = precision && !strcmp(precision, "bf16"),
        .weights_q8 = weights && !strcmp(weights, "q8"),
        .n_threads = options->n_threads,
        .max_context = max_ctx,
        .max_prefill = max_ctx,
        .embed_scale = e->model.embed_scale,
    };
    if (open_backend(e, options->backend, &bo, err) != 0) {
        engine_close(e);
        return -1;
    }
    if (engine_open_caches(e, ring_extra, err) != 0) {
        engine_close(e);
        return -1;
    }
    if (e->backend != backend_cpu_get() && (bo.precision_bf16 || bo.weights_q8))
        log_msg(LOG_WARNING,
                "precision/weights settings apply to the CPU backend only; the %s backend ignores them",
                e->backend->name);
    *out = e;
    return 0;
}

void engine_close(Engine *e) {
    if (!e)
        return;
    if (e->state && e->backend)
        e->backend->destroy(e->state);
    model_close(&e->model);
    prefix_record_free(&e->prefix);
    image_cache_destroy(e->images);
    free(e->logits);
    free(e->scratch);
    free(e->image_block);
    free(e->mask);
    free(e);
}

void engine_info(const Engine *e, EngineInfo *info) {
    const ModelConfig *c = &e->model.config;
    memset(info, 0, sizeof *info);
    info->backend = e->backend->name;
    info->gpu_name = e->backend->device_name(e->state);
    info->gpu_available = e->gpu_available;
    info->fallback_reason = e->fallback_reason[0] ? e->fallback_reason : NULL;
    info->max_context = e->max_context;
    info->image_size = c->has_vision ? c->vision.image_size : 0;
    info->image_tokens = c->has_vision ? c->mm_tokens_per_image : 0;
    info->vocab_size = c->text.vocab_size;
}

static int is_stop(const ModelConfig *c, int32_t id) {
    for (int i = 0; i < c->n_eos_ids; i++)
        if (c->eos_ids[i] == id)
            return 1;
    return 0;
}

/* Checks the request and fills image_block: runs of image soft tokens, each
 * run one bidirectional block as transformers groups them. Returns the
 * number of soft tokens, or -1. */
static int check_request(Engine *e, const GenerateRequest *r, Error *err) {
    const ModelConfig *c = &e->model.config;
    if (!r->tokens || r->n_tokens < 1)
        return error_set(err, "empty prompt");
    if (r->n_tokens > e->max_context)
        return error_set(err, "prompt of %d tokens is longer than the context (%d)", r->n_tokens,
                         e->max_context);
    if (r->max_new_tokens < 0)
        return error_set(err, "max_new_tokens %d is negative", r->max_new_tokens);
    if (r->n_images < 0 || (r->n_images > 0 && !r->images))
        return error_set(err, "bad image list");
    if (r->constraint && grammar_matcher_rows(r->constraint) != c->text.vocab_size)
        return error_set(err, "the constraint's vocabulary has %d rows, the model %d",
                         grammar_matcher_rows(r->constraint), c->text.vocab_size);
    if (r->top_p < 0.0f || r->top_p != r->top_p || r->temperature != r->temperature)
        return error_set(err, "bad sampling parameters (top_p %g, temperature %g)", r->top_p, r->temperature);
    int n_soft = 0, block = -1, prev = 0;
    for (int t = 0; t < r->n_tokens; t++) {
        int32_t id = r->tokens[t];
        if (id < 0 || id >= c->text.vocab_size)
            return error_set(err, "token id %d at position %d is outside the vocabulary (0..%d)", id, t,
                             c->text.vocab_size - 1);
        int soft = c->has_vision && id == c->image_token_id;
        if (soft && !prev)
            block++;
        e->image_block[t] = soft ? block : -1;
        n_soft += soft;
        prev = soft;
    }
    if (!c->has_vision && r->n_images > 0)
        return error_set(err, "this model has no vision tower, but %d image(s) were given", r->n_images);
    if (c->has_vision && n_soft != r->n_images * c->mm_tokens_per_image)
        return error_set(err, "the prompt has %d image soft tokens, but %d image(s) x %d tokens were given",
                         n_soft, r->n_images, c->mm_tokens_per_image);
    return n_soft;
}

/* A backend call failed with rc (backend.h): passes the code on, and
 * remembers a lost device so that every later request fails at once. */
static int backend_failed(Engine *e, int rc, Error *err) {
    if (rc < ENGINE_ERR_DEVICE_LOST || rc > ENGINE_ERR_INPUT)
        rc = ENGINE_ERR_INTERNAL; /* not a code of backend.h: a bug in the backend */
    if (rc == ENGINE_ERR_DEVICE_LOST && !e->device_error[0])
        snprintf(e->device_error, sizeof e->device_error, "%s", err ? err->message : "the device failed");
    return rc;
}

const char *engine_device_error(const Engine *e) {
    return e->device_error[0] ? e->device_error : NULL;
}

/* Constrained decoding (GenerateRequest.constraint): the answer is masked by
 * the grammar; a thinking trace opened by the first token is free text
 * without stop tokens, closed by force after the budget. */
typedef struct {
    GrammarMatcher *m;
    int thinking;  /* inside a <unused94> ... <unused95> trace */
    int budget;    /* trace tokens allowed; < 0 = no trace */
    int trace_len; /* trace tokens so far */
} Constraint;

/* Picks the next token under the constraint; -1 with err on a matcher failure. */
static int32_t constrained_next(Engine *e, Constraint *k, Sampler *sampler, int step, Error *err) {
    const ModelConfig *c = &e->model.config;
    if (k->thinking) {
        if (k->trace_len >= k->budget)
            return GRAMMAR_THINK_CLOSE; /* forced: the budget is spent */
        for (int i = 0; i < c->n_eos_ids; i++)
            if (c->eos_ids[i] >= 0 && c->eos_ids[i] < c->text.vocab_size)
                e->logits[c->eos_ids[i]] = -INFINITY;
        return sampler_next(sampler, e->logits, e->scratch);
    }
    grammar_matcher_fill_mask(k->m, e->mask);
    if (step == 0 && k->budget > 0) /* the model may open a thinking trace first */
        e->mask[GRAMMAR_THINK_OPEN >> 5] |= 1u << (GRAMMAR_THINK_OPEN & 31);
    int32_t token = sampler_next_masked(sampler, e->logits, e->mask, e->scratch);
    if (!(e->mask[token >> 5] >> (token & 31) & 1)) {
        error_set(err, "constrained decoding: no token can continue the answer");
        return -1;
    }
    return token;
}

static int constrained_accept(Constraint *k, int32_t token, Error *err) {
    if (k->thinking) {
        k->trace_len++;
        if (token == GRAMMAR_THINK_CLOSE)
            k->thinking = 0;
        return 0;
    }
    if (token == GRAMMAR_THINK_OPEN && k->budget > 0 && k->trace_len == 0) {
        k->thinking = 1;
        k->trace_len = 1;
        return 0;
    }
    if (grammar_matcher_accept(k->m, token) != 0)
        return error_set(err, "constrained decoding: token %d does not continue the answer", token);
    return 0;
}

/* Image i's soft-token embeddings into out: from the image cache, or encode_image (then kept). */
static int image_embeddings(Engine *e, const GenerateRequest *r, int i, const ImageHash *hashes, float *out,
                            Error *err) {
    const ModelConfig *c = &e->model.config;
    size_t n_floats = (size_t)c->mm_tokens_per_image * c->text.hidden_size;
    if (hashes && image_cache_get(e->images, r->cache_tenant, hashes[i], out, n_floats, now_ms() / 1e3)) {
        e->stats.image_hits++;
        return 0;
    }
    int rc = e->backend->encode_image(e->state, r->images[i], out, err);
    if (rc != 0)
        return rc;
    if (hashes) {
        e->stats.image_misses++;
        image_cache_put(e->images, r->cache_tenant, hashes[i], out, n_floats, now_ms() / 1e3);
    }
    return 0;
}

/* Images -> embeddings and the prompt -> KV cache + the last position's logits: from the
 * longest usable cached prefix (prefix_cache.h) when the caches are on, else from 0. */
static int prefill_prompt(Engine *e, const GenerateRequest *r, int n_soft, GenerateResult *result,
                          Error *err) {
    const ModelConfig *c = &e->model.config;
    double t_start = now_ms(), now = t_start / 1e3;
    size_t per_image = (size_t)c->mm_tokens_per_image * c->text.hidden_size;
    int n = r->n_tokens;
    ImageHash *hashes = NULL;
    if (e->cache_on && r->n_images > 0) {
        hashes = malloc((size_t)r->n_images * sizeof *hashes);
        if (!hashes) {
            error_set(err, "out of memory for %d images", r->n_images);
            return ENGINE_ERR_OUT_OF_MEMORY;
        }
        size_t n_values = (size_t)c->vision.num_channels * c->vision.image_size * c->vision.image_size;
        for (int i = 0; i < r->n_images; i++)
            hashes[i] = image_hash_pixels(r->images[i], n_values);
    }
    if (e->cache_on) {
        int expired = image_cache_expire(e->images, now, e->idle_s);
        if (e->prefix.valid && now - e->prefix.last_used > e->idle_s) {
            prefix_forget(&e->prefix);
            expired++;
        }
        e->stats.expired += expired;
    }

    /* where the prefill starts */
    int k = 0;
    if (e->prefix_on) {
        PrefixOutcome outcome;
        k = prefix_plan(&e->prefix, &e->geometry, r->cache_tenant, r->tokens, n, e->image_block, hashes,
                        r->n_images, &outcome);
        if (k > 0) {
            e->stats.prefix_hits++;
            e->stats.prefix_tokens_reused += k;
        } else {
            e->stats.prefix_misses++;
            if (outcome != PREFIX_COLD_EMPTY) {
                e->stats.prefix_fallbacks++;
                log_msg(LOG_DEBUG, "prefix cache: full prefill of %d tokens (%s)", n,
                        prefix_outcome_name(outcome));
            }
        }
    }
    int soft_before = 0; /* soft tokens in the reused prefix */
    for (int t = 0; t < k; t++)
        soft_before += e->image_block[t] >= 0;

    /* embeddings of the images with soft tokens at positions >= k, in order */
    float *embeds = NULL;
    int rc = 0;
    if (n_soft > soft_before) {
        embeds = malloc((size_t)r->n_images * per_image * sizeof *embeds);
        if (!embeds) {
            free(hashes);
            error_set(err, "out of memory for %d images", r->n_images);
            return ENGINE_ERR_OUT_OF_MEMORY;
        }
        for (int i = soft_before / c->mm_tokens_per_image; i < r->n_images && rc == 0; i++) {
            rc = image_embeddings(e, r, i, hashes, embeds + (size_t)i * per_image, err);
            if (rc != 0)
                error_prefix(err, "image %d", i + 1);
        }
    }
    double t_vision = now_ms();
    result->vision_ms = t_vision - t_start;

    prefix_forget(&e->prefix); /* the cache changes now */
    if (rc == 0 && k > 0)
        rc = e->backend->continue_prefill(
            e->state, r->tokens + k, n - k, k, n_soft > soft_before ? e->image_block + k : NULL,
            embeds ? embeds + (size_t)soft_before * c->text.hidden_size : NULL, e->logits, err);
    else if (rc == 0)
        rc = e->backend->prefill(e->state, r->tokens, n, n_soft ? e->image_block : NULL, embeds, e->logits,
                                 err);
    free(embeds);
    if (rc == 0 && e->prefix_on &&
        prefix_record(&e->prefix, r->cache_tenant, r->tokens, n, e->image_block, hashes, r->n_images, now) !=
            0)
        log_msg(LOG_WARNING,
                "prefix cache: out of memory for the record; the next prompt is prefilled from 0");
    free(hashes);
    if (rc != 0)
        return backend_failed(e, rc, err);
    result->cached_tokens = k;
    result->prefill_ms = now_ms() - t_vision;
    return 0;
}

int engine_generate(Engine *e, const GenerateRequest *r, GenerateResult *result, Error *err) {
    const ModelConfig *c = &e->model.config;
    double t_start = now_ms();
    memset(result, 0, sizeof *result);
    if (e->device_error[0]) {
        error_set(err, "the GPU failed earlier (%s); this process can run no more requests", e->device_error);
        return ENGINE_ERR_DEVICE_LOST;
    }
    int n_soft = check_request(e, r, err);
    if (n_soft < 0)
        return -1;
    result->prompt_tokens = r->n_tokens;

    int rc = prefill_prompt(e, r, n_soft, result, err);
    if (rc != 0)
        return rc;
    double t_prefill = now_ms();

    Sampler sampler;
    sampler_init(&sampler, c->text.vocab_size, r->temperature, r->top_k, r->top_p, r->seed);
    Constraint k = {r->constraint, 0,
                    r->thinking_budget ? r->thinking_budget : GRAMMAR_DEFAULT_THINKING_BUDGET, 0};
    result->finish_reason = FINISH_LENGTH;
    int pos = r->n_tokens;
    for (int step = 0; step < r->max_new_tokens; step++) {
        int32_t token = k.m ? constrained_next(e, &k, &sampler, step, err)
                            : sampler_next(&sampler, e->logits, e->scratch);
        if (token < 0 || (k.m && constrained_accept(&k, token, err) != 0))
            return -1;
        result->thinking_tokens = k.trace_len;
        if (step == 0)
            result->ttft_ms = now_ms() - t_start;
        if (is_stop(c, token)) {
            result->finish_reason = FINISH_STOP;
            break;
        }
        result->completion_tokens++;
        if (r->on_token && r->on_token(r->user, token) != 0) {
            result->finish_reason = FINISH_CANCELLED;
            break;
        }
        if (step + 1 == r->max_new_tokens || pos >= e->max_context)
            break; /* FINISH_LENGTH: budget or context used up */
        if (e->prefix.valid)
            e->prefix.written = pos + 1; /* decode overwrites the ring slot of pos - capacity */
        rc = e->backend->decode(e->state, token, pos, e->logits, err);
        if (rc != 0) {
            prefix_forget(&e->prefix);
            return backend_failed(e, rc, err);
        }
        pos++;
    }
    result->decode_ms = now_ms() - t_prefill;
    return 0;
}
