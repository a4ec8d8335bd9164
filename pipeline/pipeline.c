/* The request pipeline; see pipeline.h. Uses engine/ (generation), tokenizer/
 * (incremental decoding), grammar/ (response formats), pipeline/inputs.c (ids,
 * tensors) and pipeline/visible_text.c (what the client sees). */
#include "pipeline/pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grammar/grammar.h"
#include "pipeline/dicom_inputs.h"
#include "pipeline/inputs.h"
#include "pipeline/visible_text.h"
#include "tokenizer/tokenizer.h"

/* The last few compiled response formats, by schema text (a service usually
 * sees the same few schemas again and again): a hit skips the compile. */
#define GRAMMAR_CACHE_SLOTS 8

struct Pipeline {
    Engine *engine;
    Tokenizer *tokenizer;
    EngineInfo info;
    GrammarVocab *vocab;            /* built on the first JSON-format request */
    char *key[GRAMMAR_CACHE_SLOTS]; /* schema text, or "" for any JSON object */
    Grammar *grammar[GRAMMAR_CACHE_SLOTS];
    unsigned long used[GRAMMAR_CACHE_SLOTS], clock;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- open / close */

/* The tokenizer (a 33 MB tokenizer.json, ~0.2 s) loads on its own thread
 * while the engine opens and warms up: that overlap is start-up time saved. */
typedef struct {
    char path[4096];
    Tokenizer *tokenizer;
    Error err;
    int rc;
} TokenizerLoad;

static void *load_tokenizer_thread(void *arg) {
    TokenizerLoad *tl = arg;
    tl->rc = tokenizer_load(&tl->tokenizer, tl->path, &tl->err);
    return NULL;
}

static int open_engine(Pipeline *p, const EngineOptions *options, int warm_up, Error *err) {
    if (engine_open(&p->engine, options, err) != 0)
        return -1;
    engine_info(p->engine, &p->info);
    if (!warm_up)
        return 0;
    int32_t bos = 2;
    GenerateRequest gr = {0};
    gr.tokens = &bos;
    gr.n_tokens = 1;
    gr.max_new_tokens = 1;
    gr.top_p = 1;
    GenerateResult res;
    if (engine_generate(p->engine, &gr, &res, err) != 0)
        return error_prefix(err, "warm-up generation");
    return 0;
}

int pipeline_open(Pipeline **out, const EngineOptions *options, int warm_up, Error *err) {
    Pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return error_set(err, "out of memory");
    TokenizerLoad tl = {.tokenizer = NULL, .rc = -1};
    snprintf(tl.path, sizeof tl.path, "%s/tokenizer.json", options->model_dir);
    pthread_t thread;
    int threaded = pthread_create(&thread, NULL, load_tokenizer_thread, &tl) == 0;
    if (!threaded)
        load_tokenizer_thread(&tl);
    int rc = open_engine(p, options, warm_up, err);
    if (threaded)
        pthread_join(thread, NULL);
    p->tokenizer = tl.tokenizer;
    if (rc == 0 && tl.rc != 0) {
        *err = tl.err;
        rc = -1;
    }
    if (rc != 0) {
        pipeline_close(p);
        return -1;
    }
    *out = p;
    return 0;
}

void pipeline_close(Pipeline *p) {
    if (!p)
        return;
    for (int i = 0; i < GRAMMAR_CACHE_SLOTS; i++) {
        free(p->key[i]);
        grammar_free(p->grammar[i]);
    }
    grammar_vocab_free(p->vocab);
    if (p->tokenizer)
        tokenizer_free(p->tokenizer);
    engine_close(p->engine);
    free(p);
}

const EngineInfo *pipeline_info(const Pipeline *p) {
    return &p->info;
}

const char *pipeline_device_error(const Pipeline *p) {
    return engine_device_error(p->engine);
}

void pipeline_cache_stats(const Pipeline *p, EngineCacheStats *stats) {
    engine_cache_stats(p->engine, stats);
}

void pipeline_result_free(PipelineResult *r) {
    free(r->text);
    r->text = NULL;
}

/* ---- response formats */

/* The request's compiled grammar (owned by the cache), or NULL with err and *code set. */
static const Grammar *request_grammar(Pipeline *p, const PipelineRequest *rq, int *code, Error *err) {
    *code = PIPELINE_ERR_SERVER;
    if (!p->vocab) {
        int end = tokenizer_token_id(p->tokenizer, "<end_of_turn>");
        if (grammar_vocab_new(&p->vocab, p->tokenizer, p->info.vocab_size, end, err) != 0)
            return NULL;
    }
    const char *key = rq->format == PIPELINE_JSON_SCHEMA ? rq->json_schema : "";
    int slot = 0;
    for (int i = 0; i < GRAMMAR_CACHE_SLOTS; i++) {
        if (p->key[i] && !strcmp(p->key[i], key)) {
            p->used[i] = ++p->clock;
            return p->grammar[i];
        }
        if (p->used[i] < p->used[slot])
            slot = i;
    }
    Grammar *g = NULL;
    int rc = rq->format == PIPELINE_JSON_SCHEMA
                 ? grammar_compile_schema(&g, p->vocab, key, strlen(key), NULL, err)
                 : grammar_compile_any_object(&g, p->vocab, err);
    if (rc != 0) {
        *code = PIPELINE_ERR_SCHEMA;
        return NULL;
    }
    char *k = strdup(key);
    if (!k) {
        grammar_free(g);
        error_set(err, "out of memory");
        return NULL;
    }
    free(p->key[slot]);
    grammar_free(p->grammar[slot]);
    p->key[slot] = k;
    p->grammar[slot] = g;
    p->used[slot] = ++p->clock;
    return g;
}

/* ---- the answer as it is generated */

typedef struct {
    const PipelineRequest *rq;
    TokenStream *stream;
    char *full; /* decoded text so far */
    size_t len, cap;
    char *visible;  /* room for cap bytes */
    size_t emitted; /* visible bytes given to on_text */
    int stop_hit;
    int32_t think_open, think_close; /* ids of <unused94>, <unused95> (-1 if absent) */
    int failed;                      /* out of memory while decoding */
} Answer;

static int append_text(Answer *a, const char *text, size_t n) {
    if (a->len + n + 1 > a->cap) {
        size_t cap = (a->len + n + 1) * 2 + 256;
        char *f = realloc(a->full, cap);
        if (!f)
            return -1;
        a->full = f;
        char *v = realloc(a->visible, cap);
        if (!v)
            return -1;
        a->visible = v;
        a->cap = cap;
    }
    if (n > 0)
        memcpy(a->full + a->len, text, n);
    a->len += n;
    a->full[a->len] = 0;
    return 0;
}

/* Gives the growth of the visible text to on_text; returns 1 when a stop string ended it. */
static int update_visible(Answer *a, int final) {
    const PipelineRequest *rq = a->rq;
    int hit = 0;
    size_t v = visible_text(a->full, a->len, final, rq->stops, rq->n_stops, a->visible, &hit);
    if (rq->on_text && v > a->emitted) {
        rq->on_text(rq->user, a->visible + a->emitted, v - a->emitted);
        a->emitted = v;
    }
    return hit;
}

/* Decodes one token into a->full. The thinking markers are written as their
 * text whether or not the tokenizer counts them as special tokens. */
static int decode_token(Answer *a, int32_t id) {
    Error err = {{0}};
    char *bytes = NULL;
    size_t n = 0;
    if (id == a->think_open || id == a->think_close) {
        if (token_stream_flush(a->stream, &bytes, &n) != 0 || append_text(a, bytes, n) != 0)
            return -1;
        const char *marker = id == a->think_open ? THINKING_OPEN : THINKING_CLOSE;
        return append_text(a, marker, strlen(marker));
    }
    if (token_stream_push(a->stream, id, &bytes, &n, &err) != 0)
        return -1;
    return append_text(a, bytes, n);
}

static int on_token(void *user, int32_t id) {
    Answer *a = user;
    if (decode_token(a, id) != 0) {
        a->failed = 1;
        return 1;
    }
    if ((a->rq->on_text || a->rq->n_stops > 0) && update_visible(a, 0)) {
        a->stop_hit = 1;
        return 1;
    }
    return a->rq->should_stop && a->rq->should_stop(a->rq->user);
}

/* ---- one request */

#define FAIL(kind, ...)                                                                                      \
    do {                                                                                                     \
        error_set(err, __VA_ARGS__);                                                                         \
        code = (kind);                                                                                       \
        goto done;                                                                                           \
    } while (0)

int pipeline_run(Pipeline *p, const PipelineRequest *rq, PipelineResult *res, int *engine_rc, Error *err) {
    memset(res, 0, sizeof *res);
    float *pixels = NULL;
    const float **images = NULL;
    int n_tensors = 0, n_ids = 0, code = 0;
    int32_t *ids = NULL;
    GrammarMatcher *matcher = NULL;
    Answer a = {.rq = rq, .think_open = -1, .think_close = -1};

    double t0 = now_ms();
    /* DICOM: the files decide how many images and the user turn's layout */
    DicomConversation dicom = {0};
    PipelineRequest laid_out;
    const PipelineRequest *prompt_rq = rq;
    int input_rc = rq->series == PIPELINE_SERIES_DICOM
                 ? dicom_inputs(rq, p->info.image_size, &pixels, &n_tensors, &dicom, err)
                 : inputs_tensors(rq, p->info.image_size, &pixels, &n_tensors, err);
    if (input_rc != 0) {
        code = PIPELINE_ERR_INPUT;
        goto done;
    }
    if (rq->series == PIPELINE_SERIES_DICOM) {
        laid_out = *rq;
        laid_out.messages = dicom.messages;
        laid_out.n_messages = dicom.n_messages;
        prompt_rq = &laid_out;
    }
    double t1 = now_ms();
    res->preprocess_ms = t1 - t0;
    input_rc = inputs_prompt(prompt_rq, p->tokenizer, p->info.image_tokens, n_tensors, &ids, &n_ids, err);
    dicom_conversation_free(&dicom);
    if (input_rc != 0) {
        code = PIPELINE_ERR_INPUT;
        goto done;
    }
    res->tokenize_ms = now_ms() - t1;
    res->prompt_tokens = n_ids;
    if (n_ids >= p->info.max_context) {
        FAIL(PIPELINE_ERR_INPUT,
             "prompt of %d tokens is longer than the context allows (%d positions, one kept for the answer; "
             "MEDGEMMA_MAX_CONTEXT / --max-context)",
             n_ids, p->info.max_context);
    }
    if (n_tensors > 0) {
        if (!(images = malloc(sizeof *images * (size_t)n_tensors))) {
            FAIL(PIPELINE_ERR_SERVER, "out of memory");
        }
        for (int i = 0; i < n_tensors; i++)
            images[i] = pixels + (size_t)i * 3 * p->info.image_size * p->info.image_size;
    }
    if (rq->format != PIPELINE_TEXT) {
        const Grammar *grammar = request_grammar(p, rq, &code, err);
        if (!grammar)
            goto done;
        if (!(matcher = grammar_matcher_new(grammar))) {
            FAIL(PIPELINE_ERR_SERVER, "out of memory");
        }
        code = 0;
    }
    a.think_open = tokenizer_token_id(p->tokenizer, THINKING_OPEN);
    a.think_close = tokenizer_token_id(p->tokenizer, THINKING_CLOSE);
    if (!(a.stream = token_stream_new(p->tokenizer, 1)) || append_text(&a, "", 0) != 0) {
        FAIL(PIPELINE_ERR_SERVER, "out of memory");
    }
    GenerateRequest gr = {
        .tokens = ids,
        .n_tokens = n_ids,
        .images = images,
        .n_images = n_tensors,
        .max_new_tokens = rq->max_tokens,
        .temperature = rq->temperature,
        .top_k = rq->top_k,
        .top_p = rq->top_p,
        .seed = rq->seed,
        .on_token = on_token,
        .user = &a,
        .constraint = matcher,
        .thinking_budget = rq->thinking_budget,
        .cache_tenant = rq->cache_tenant,
    };
    GenerateResult gres = {0};
    double t2 = now_ms();
    int rc = engine_generate(p->engine, &gr, &gres, err);
    res->engine_ms = now_ms() - t2;
    if (rc != 0) {
        *engine_rc = rc;
        code = PIPELINE_ERR_ENGINE;
        goto done;
    }
    res->prompt_tokens = gres.prompt_tokens;
    res->completion_tokens = gres.completion_tokens;
    res->cached_tokens = gres.cached_tokens;
    res->vision_ms = gres.vision_ms;
    res->ttft_ms = gres.ttft_ms;
    if (a.failed) {
        FAIL(PIPELINE_ERR_SERVER, "out of memory while decoding the answer");
    }
    if (gres.finish_reason == FINISH_CANCELLED && !a.stop_hit) {
        FAIL(PIPELINE_ERR_CANCELLED, "cancelled");
    }
    /* The rest of the text (a held-back tail), then the final visible answer. */
    char *rest = NULL;
    size_t n = 0;
    if (token_stream_flush(a.stream, &rest, &n) == 0 && n > 0 && append_text(&a, rest, n) != 0) {
        FAIL(PIPELINE_ERR_SERVER, "out of memory");
    }
    if (update_visible(&a, 1))
        a.stop_hit = 1;
    res->finish = a.stop_hit || gres.finish_reason == FINISH_STOP ? "stop" : "length";
    res->text = strdup(a.visible);
    if (!res->text)
        FAIL(PIPELINE_ERR_SERVER, "out of memory");
done:
    grammar_matcher_free(matcher);
    if (a.stream)
        token_stream_free(a.stream);
    free(a.full);
    free(a.visible);
    free(images);
    free(ids);
    free(pixels);
    return code;
}
