/* The model side of the worker; see model.h. Uses engine/ (generation),
 * tokenizer/ (chat template, ids, incremental decoding), image/ (tensors)
 * and weights-fetch/ (the download at start). */
#include "http/model.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "http/visible_text.h"
#include "http/dicom_job.h"
#include "image/base64.h"
#include "image/ct_window.h"
#include "image/image.h"
#include "grammar/grammar.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"
#include "util/log.h"
#include "weights-fetch/fetch.h"

/* ---- loading */

/* Downloads the model when the directory has no config.json and a token is set. */
static int fetch_if_needed(Worker *w, Error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", w->model_dir);
    if (access(path, R_OK) == 0)
        return 0;
    FetchOptions fo = {0};
    FetchEnv fe;
    fo.repo = w->model_repo;
    fo.out_dir = w->model_dir;
    fo.progress = FETCH_PROGRESS_LOG;
    if (!weights_fetch_options_from_env(&fo, &fe))
        return error_set(
            err,
            "%s has no config.json and no Hugging Face token is set: put a model there (`make models` "
            "prepares Gemma 3 270M), or set HF_TOKEN to download %s",
            w->model_dir, w->model_repo);
    char fields[600];
    snprintf(fields, sizeof fields, "\"repo\":\"%s\"", w->model_repo);
    log_fields(LOG_INFO, "downloading the model", fields);
    if (weights_fetch(&fo, err) != 0)
        return error_prefix(err, "downloading %s", w->model_repo);
    return 0;
}

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

/* Opens the engine and generates one token, so the first request pays no
 * first-use costs. */
static int open_and_warm_engine(Worker *w, Error *err) {
    EngineOptions eo = {w->model_dir, w->backend, w->n_threads, w->max_context};
    if (engine_open(&w->engine, &eo, err) != 0)
        return -1;
    engine_info(w->engine, &w->info);
    snprintf(w->backend_name, sizeof w->backend_name, "%s", w->info.backend ? w->info.backend : "?");
    snprintf(w->gpu_name, sizeof w->gpu_name, "%s", w->info.gpu_name ? w->info.gpu_name : "");
    int32_t bos = 2;
    GenerateRequest gr = {0};
    gr.tokens = &bos;
    gr.n_tokens = 1;
    gr.max_new_tokens = 1;
    gr.top_p = 1;
    GenerateResult res;
    if (engine_generate(w->engine, &gr, &res, err) != 0)
        return error_prefix(err, "warm-up generation");
    return 0;
}

int model_load(Worker *w, Error *err) {
    double t0 = now_seconds();
    if (fetch_if_needed(w, err) != 0)
        return -1;
    TokenizerLoad tl = {.tokenizer = NULL, .rc = -1};
    snprintf(tl.path, sizeof tl.path, "%s/tokenizer.json", w->model_dir);
    pthread_t thread;
    int threaded = pthread_create(&thread, NULL, load_tokenizer_thread, &tl) == 0;
    if (!threaded)
        load_tokenizer_thread(&tl);
    int rc = open_and_warm_engine(w, err);
    if (threaded)
        pthread_join(thread, NULL);
    if (tl.rc != 0) {
        if (rc == 0) {
            *err = tl.err;
            rc = -1;
        }
    } else {
        w->tokenizer = tl.tokenizer;
    }
    if (rc != 0)
        return -1;
    char fields[128];
    snprintf(fields, sizeof fields, "\"load_s\":%.2f", now_seconds() - t0);
    log_fields(LOG_INFO, "model loaded", fields);
    return 0;
}

/* ---- response_format: compiled grammars */

/* The last few compiled response formats, by schema text (a service usually
 * sees the same few schemas again and again): a hit skips the compile. */
#define GRAMMAR_CACHE_SLOTS 8
typedef struct {
    char *key[GRAMMAR_CACHE_SLOTS]; /* schema text, or "" for json_object */
    Grammar *grammar[GRAMMAR_CACHE_SLOTS];
    unsigned long used[GRAMMAR_CACHE_SLOTS], clock;
} GrammarCache;

static void grammar_cache_free(GrammarCache *c) {
    if (!c)
        return;
    for (int i = 0; i < GRAMMAR_CACHE_SLOTS; i++) {
        free(c->key[i]);
        grammar_free(c->grammar[i]);
    }
    free(c);
}

/* The job's compiled grammar (owned by the cache), or NULL with job failed. */
static const Grammar *job_grammar(Worker *w, Job *job) {
    Error err = {{0}};
    if (!w->grammar_vocab) {
        GrammarVocab *v = NULL;
        int end = tokenizer_token_id(w->tokenizer, "<end_of_turn>");
        if (grammar_vocab_new(&v, w->tokenizer, w->info.vocab_size, end, &err) != 0) {
            job_fail(job, 500, "server_error", err.message);
            return NULL;
        }
        w->grammar_vocab = v;
    }
    GrammarCache *c = w->grammars;
    if (!c && !(c = w->grammars = calloc(1, sizeof *c))) {
        job_fail(job, 500, "server_error", "out of memory");
        return NULL;
    }
    const char *key = job->in.json_mode == JSON_MODE_SCHEMA ? job->in.json_schema : "";
    int slot = 0;
    for (int i = 0; i < GRAMMAR_CACHE_SLOTS; i++) {
        if (c->key[i] && !strcmp(c->key[i], key)) {
            c->used[i] = ++c->clock;
            return c->grammar[i];
        }
        if (c->used[i] < c->used[slot])
            slot = i;
    }
    Grammar *g = NULL;
    int rc = job->in.json_mode == JSON_MODE_SCHEMA
                 ? grammar_compile_schema(&g, w->grammar_vocab, key, strlen(key), NULL, &err)
                 : grammar_compile_any_object(&g, w->grammar_vocab, &err);
    if (rc != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "response_format.json_schema.schema: %s", err.message);
        job_fail(job, 400, "invalid_request_error", msg);
        return NULL;
    }
    char *k = strdup(key);
    if (!k) {
        grammar_free(g);
        job_fail(job, 500, "server_error", "out of memory");
        return NULL;
    }
    free(c->key[slot]);
    grammar_free(c->grammar[slot]);
    c->key[slot] = k;
    c->grammar[slot] = g;
    c->used[slot] = ++c->clock;
    return g;
}

void model_unload(Worker *w) {
    grammar_cache_free(w->grammars);
    w->grammars = NULL;
    grammar_vocab_free(w->grammar_vocab);
    w->grammar_vocab = NULL;
    if (w->tokenizer)
        tokenizer_free(w->tokenizer);
    w->tokenizer = NULL;
    if (w->engine)
        engine_close(w->engine);
    w->engine = NULL;
}

/* ---- one job */

/* Base64 -> file bytes with the header checked (format, size limits), for
 * every image of the job. Errors name the image ("images[2]: ..."). */
static int decode_images(Job *job, Error *err) {
    for (int i = 0; i < job->in.n_images; i++) {
        ImageFile *f = &job->in.images[i];
        if (base64_decode_strict(f->base64, f->base64_len, &f->bytes, &f->n_bytes, err) != 0)
            return error_prefix(err, "%s", f->what);
        free(f->base64);
        f->base64 = NULL;
        ImageInfo info;
        if (image_probe(f->bytes, f->n_bytes, NULL, &info, err) != 0)
            return error_prefix(err, "%s", f->what);
    }
    return 0;
}

/* The job's images -> one float tensor each (image_size^2 * 3). */
static int make_tensors(Worker *w, Job *job, float **pixels, int *n_out, Error *err) {
    JobInput *in = &job->in;
    if (in->series == SERIES_DICOM) /* image/dicom: count and layout known only after decoding */
        return dicom_job_tensors(in, w->info.image_size, pixels, n_out, err);
    int size = w->info.image_size;
    size_t per = (size_t)3 * size * size;
    int n = in->series ? series_output_count(in->n_images, &in->series_options) : in->n_images;
    *n_out = 0;
    *pixels = NULL;
    if (n == 0)
        return 0;
    float *buf = malloc(per * (size_t)n * sizeof(float));
    if (!buf)
        return error_set(err, "out of memory for %d image tensors", n);
    PreprocessOptions po = {size, in->pad_to_square, 0};
    int rc = 0;
    if (in->series) {
        const uint8_t **slices = malloc(sizeof *slices * (size_t)in->n_images);
        size_t *sizes = malloc(sizeof *sizes * (size_t)in->n_images);
        if (!slices || !sizes) {
            rc = error_set(err, "out of memory");
        } else {
            for (int i = 0; i < in->n_images; i++) {
                slices[i] = in->images[i].bytes;
                sizes[i] = in->images[i].n_bytes;
            }
            int got = 0;
            rc = in->series == SERIES_CT
                     ? ct_series_to_tensors(slices, sizes, in->n_images, NULL, &in->series_options, &po, buf,
                                            &got, NULL, err)
                     : mri_series_to_tensors(slices, sizes, in->n_images, NULL, &in->series_options, &po, buf,
                                             &got, NULL, err);
            if (rc == 0 && got != n)
                rc = error_set(err, "the series gave %d slices, expected %d", got, n);
            if (rc != 0)
                error_prefix(err, "%s", in->series == SERIES_CT ? "ct" : "mri");
        }
        free(slices);
        free(sizes);
    } else {
        for (int i = 0; i < n && rc == 0; i++) {
            rc = image_to_tensor(in->images[i].bytes, in->images[i].n_bytes, NULL, &po, buf + per * (size_t)i,
                                 err);
            if (rc != 0)
                error_prefix(err, "%s", in->images[i].what);
        }
    }
    if (rc != 0) {
        free(buf);
        return -1;
    }
    *pixels = buf;
    *n_out = n;
    return 0;
}

/* What the token callback needs. */
typedef struct {
    Worker *w;
    Job *job;
    TokenStream *stream;
    char *full; /* decoded text so far */
    size_t len, cap;
    char *visible;  /* room for cap bytes */
    size_t emitted; /* visible bytes sent to a streaming client */
    int stop_hit;
    int32_t think_open, think_close; /* ids of <unused94>, <unused95> (-1 if absent) */
    int failed;                      /* out of memory while decoding */
} GenState;

static int append_text(GenState *g, const char *text, size_t n) {
    if (g->len + n + 1 > g->cap) {
        size_t cap = (g->len + n + 1) * 2 + 256;
        char *f = realloc(g->full, cap);
        if (!f)
            return -1;
        g->full = f;
        char *v = realloc(g->visible, cap);
        if (!v)
            return -1;
        g->visible = v;
        g->cap = cap;
    }
    if (n > 0)
        memcpy(g->full + g->len, text, n);
    g->len += n;
    g->full[g->len] = 0;
    return 0;
}

/* Streams the growth of the visible text; returns 1 when a stop string ended it. */
static int update_visible(GenState *g, int final) {
    JobInput *in = &g->job->in;
    int hit = 0;
    size_t v =
        visible_text(g->full, g->len, final, (const char *const *)in->stops, in->n_stops, g->visible, &hit);
    if (in->stream && v > g->emitted) {
        worker_emit(g->w, g->job, g->visible + g->emitted, v - g->emitted);
        g->emitted = v;
    }
    return hit;
}

/* Decodes one token into g->full. The thinking markers are written as their
 * text whether or not the tokenizer counts them as special tokens. */
static int decode_token(GenState *g, int32_t id) {
    Error err = {{0}};
    char *bytes = NULL;
    size_t n = 0;
    if (id == g->think_open || id == g->think_close) {
        if (token_stream_flush(g->stream, &bytes, &n) != 0 || append_text(g, bytes, n) != 0)
            return -1;
        const char *marker = id == g->think_open ? THINKING_OPEN : THINKING_CLOSE;
        return append_text(g, marker, strlen(marker));
    }
    if (token_stream_push(g->stream, id, &bytes, &n, &err) != 0)
        return -1;
    return append_text(g, bytes, n);
}

static int on_token(void *user, int32_t id) {
    GenState *g = user;
    Job *job = g->job;
    if (decode_token(g, id) != 0) {
        g->failed = 1;
        return 1;
    }
    if ((job->in.stream || job->in.n_stops > 0) && update_visible(g, 0)) {
        g->stop_hit = 1;
        return 1;
    }
    if (job->deadline > 0 && now_seconds() > job->deadline) {
        int none = CANCEL_NONE;
        atomic_compare_exchange_strong(&job->cancel, &none, CANCEL_DEADLINE);
    }
    return atomic_load(&job->cancel) != CANCEL_NONE;
}

/* Chat messages -> prompt ids with images expanded to soft tokens (Gemma 3's
 * chat template, then the processor's image expansion). */
static int build_prompt(Worker *w, Job *job, int n_tensors, int32_t **ids, int *n_ids, Error *err) {
    JobInput *in = &job->in;
    if (in->n_messages < 1)
        return error_set(err, "no messages");
    int n_parts = 0;
    for (int i = 0; i < in->n_messages; i++)
        n_parts += in->messages[i].n_parts;
    ChatMessage *msgs = calloc((size_t)in->n_messages, sizeof *msgs);
    ChatPart *parts = calloc((size_t)n_parts + 1, sizeof *parts);
    char *text = NULL;
    int rc = -1;
    if (!msgs || !parts) {
        error_set(err, "out of memory");
        goto done;
    }
    int k = 0;
    for (int i = 0; i < in->n_messages; i++) {
        const Message *m = &in->messages[i];
        msgs[i].role = m->role == ROLE_SYSTEM ? "system" : m->role == ROLE_USER ? "user" : "assistant";
        msgs[i].parts = parts + k;
        msgs[i].n_parts = m->n_parts;
        for (int j = 0; j < m->n_parts; j++, k++) {
            parts[k].type = m->parts[j].image >= 0 ? CHAT_PART_IMAGE : CHAT_PART_TEXT;
            parts[k].text = m->parts[j].text;
        }
    }
    if (chat_render(msgs, in->n_messages, 1, &text, err) != 0)
        goto done;
    size_t n = 0;
    int n_images = 0;
    if (prompt_tokenize(w->tokenizer, text, w->info.image_tokens, ids, &n, &n_images, err) != 0)
        goto done;
    if (n_images != n_tensors) {
        /* A text part that spells "<start_of_image>" itself. */
        error_set(err,
                  "the prompt holds %d image markers for %d images: text may not contain <start_of_image>",
                  n_images, n_tensors);
        goto done;
    }
    *n_ids = (int)n;
    rc = 0;
done:
    free(text);
    free(msgs);
    free(parts);
    return rc;
}

void model_run_job(Worker *w, Job *job) {
    JobInput *in = &job->in;
    Error err = {{0}};
    float *pixels = NULL;
    int n_tensors = 0;
    int32_t *ids = NULL;
    int n_ids = 0;
    GenState g = {w, job, NULL, NULL, 0, 0, NULL, 0, 0, -1, -1, 0};
    const float **images = NULL;
    GrammarMatcher *matcher = NULL;

    double t0 = now_seconds();
    if (decode_images(job, &err) != 0 || make_tensors(w, job, &pixels, &n_tensors, &err) != 0) {
        job_fail(job, 400, "invalid_request_error", err.message);
        goto done;
    }
    double t1 = now_seconds();
    job->preprocess_ms = (t1 - t0) * 1e3;
    if (build_prompt(w, job, n_tensors, &ids, &n_ids, &err) != 0) {
        job_fail(job, 400, "invalid_request_error", err.message);
        goto done;
    }
    job->tokenize_ms = (now_seconds() - t1) * 1e3;
    job->prompt_tokens = n_ids;
    if (n_ids >= w->info.max_context) {
        char msg[160];
        snprintf(msg, sizeof msg, "the prompt is %d tokens, the context holds %d (MEDGEMMA_MAX_CONTEXT)",
                 n_ids, w->info.max_context);
        job_fail(job, 400, "invalid_request_error", msg);
        goto done;
    }
    if (n_tensors > 0) {
        images = malloc(sizeof *images * (size_t)n_tensors);
        if (!images) {
            job_fail(job, 500, "server_error", "out of memory");
            goto done;
        }
        for (int i = 0; i < n_tensors; i++)
            images[i] = pixels + (size_t)i * 3 * w->info.image_size * w->info.image_size;
    }
    if (in->json_mode != JSON_MODE_NONE) {
        const Grammar *grammar = job_grammar(w, job);
        if (!grammar)
            goto done;
        if (!(matcher = grammar_matcher_new(grammar))) {
            job_fail(job, 500, "server_error", "out of memory");
            goto done;
        }
    }
    g.think_open = tokenizer_token_id(w->tokenizer, THINKING_OPEN);
    g.think_close = tokenizer_token_id(w->tokenizer, THINKING_CLOSE);
    if (!(g.stream = token_stream_new(w->tokenizer, 1)) || append_text(&g, "", 0) != 0) {
        job_fail(job, 500, "server_error", "out of memory");
        goto done;
    }
    GenerateRequest gr = {0};
    gr.tokens = ids;
    gr.n_tokens = n_ids;
    gr.images = images;
    gr.n_images = n_tensors;
    gr.max_new_tokens = in->max_tokens;
    gr.temperature = in->temperature;
    gr.top_k = in->top_k;
    gr.top_p = in->top_p;
    gr.seed = in->seed;
    gr.on_token = on_token;
    gr.user = &g;
    gr.constraint = matcher;
    gr.thinking_budget = in->thinking_budget;
    GenerateResult res = {0};
    double t2 = now_seconds();
    int rc = engine_generate(w->engine, &gr, &res, &err);
    job->engine_ms = (now_seconds() - t2) * 1e3;
    if (rc != 0) {
        job_fail_engine(w, job, rc, err.message);
        goto done;
    }
    job->prompt_tokens = res.prompt_tokens;
    job->completion_tokens = res.completion_tokens;
    job->vision_ms = res.vision_ms;
    job->ttft_ms = res.ttft_ms;
    if (g.failed) {
        job_fail(job, 500, "server_error", "out of memory while decoding the answer");
        goto done;
    }
    if (res.finish_reason == FINISH_CANCELLED && !g.stop_hit) {
        job_fail_cancelled(job);
        goto done;
    }
    /* The rest of the text (a held-back tail), then the final visible answer. */
    char *rest = NULL;
    size_t n = 0;
    if (token_stream_flush(g.stream, &rest, &n) == 0 && n > 0)
        append_text(&g, rest, n);
    if (update_visible(&g, 1))
        g.stop_hit = 1;
    job->finish = g.stop_hit || res.finish_reason == FINISH_STOP ? "stop" : "length";
    job->text = malloc(g.len + 1);
    if (!job->text) {
        job_fail(job, 500, "server_error", "out of memory");
        goto done;
    }
    memcpy(job->text, g.visible, strlen(g.visible) + 1);
done:
    grammar_matcher_free(matcher);
    if (g.stream)
        token_stream_free(g.stream);
    free(g.full);
    free(g.visible);
    free(images);
    free(ids);
    free(pixels);
}
