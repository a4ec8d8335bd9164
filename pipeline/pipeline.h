/* The request pipeline, shared by `medgemma generate` (cli/cmd_generate.c) and
 * the HTTP worker (http/worker.c): chat messages + image files -> prompt ids
 * and pixel tensors -> engine_generate (grammar-constrained when asked) ->
 * the visible answer, streamed as it grows.
 *
 * Owns: the loaded model side (engine, tokenizer, the grammar vocabulary and
 * a cache of compiled response formats) and one request's run. No h2o, no
 * HTTP: a caller turns its own input (flags, a parsed JSON body) into a
 * PipelineRequest and a failure's kind into its own answer (exit status,
 * HTTP status). Not thread-safe: one request at a time. */
#ifndef PIPELINE_PIPELINE_H
#define PIPELINE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "image/ct_window.h"
#include "tokenizer/chat.h"
#include "util/error.h"

typedef struct Pipeline Pipeline;

/* Opens the engine and loads the tokenizer (model_dir/tokenizer.json) on a second
 * thread meanwhile; warm_up generates one token so the first request pays no
 * first-use costs. 0, or -1 (err). */
int pipeline_open(Pipeline **out, const EngineOptions *options, int warm_up, Error *err);
void pipeline_close(Pipeline *p);
const EngineInfo *pipeline_info(const Pipeline *p);
/* NULL while the device works; after a lost device, what failed (engine.h). */
const char *pipeline_device_error(const Pipeline *p);
/* The engine's cache counters (engine.h engine_cache_stats). */
void pipeline_cache_stats(const Pipeline *p, EngineCacheStats *stats);

/* One image as the client sent it: PNG / JPEG / DICOM file bytes. */
typedef struct {
    const uint8_t *bytes;
    size_t n_bytes;
    const char *what; /* names it in errors: "images[2]", "--image x.png" */
} PipelineImage;

/* DICOM: images are DICOM files (a CT/MR series, or X-rays / photos); image/dicom
 * sorts, samples and windows them, and the last user turn is laid out for what
 * they turn out to be (pipeline/dicom_inputs.h). */
typedef enum {
    PIPELINE_SERIES_NONE,
    PIPELINE_SERIES_CT,
    PIPELINE_SERIES_MRI,
    PIPELINE_SERIES_DICOM
} PipelineSeries;
typedef enum { PIPELINE_TEXT, PIPELINE_JSON_OBJECT, PIPELINE_JSON_SCHEMA } PipelineFormat;

typedef struct {
    /* The conversation; its image parts take the image tensors in order. */
    const ChatMessage *messages;
    int n_messages;
    const PipelineImage *images;
    int n_images;
    PipelineSeries series; /* CT / MRI: images are a series' slices (image/ct_window.h) */
    SeriesOptions series_options;
    const char *dicom_modality; /* DICOM: overrides (0008,0060) when non-empty; may be NULL */
    int dicom_window;           /* DICOM grayscale: which WindowCenter/WindowWidth pair (0 = the first) */
    int pad_to_square;
    /* generation */
    int max_tokens;
    float temperature, top_p;
    int top_k;
    uint64_t seed;
    const char *const *stops; /* the visible text is cut before the first */
    int n_stops;
    PipelineFormat format;
    const char *json_schema; /* PIPELINE_JSON_SCHEMA: the schema's text */
    int thinking_budget;     /* with a JSON format: engine.h's thinking_budget */
    /* events (each may be NULL): on_text gets every growth of the visible text (stream);
     * should_stop is asked after each token (client gone, deadline). */
    void (*on_text)(void *user, const char *text, size_t n);
    int (*should_stop)(void *user);
    void *user;
    uint64_t cache_tenant; /* engine.h GenerateRequest.cache_tenant (docs/caching.md) */
} PipelineRequest;

typedef struct {
    char *text;         /* the visible answer (malloc'd; pipeline_result_free) */
    const char *finish; /* "stop" or "length" */
    int prompt_tokens, completion_tokens;
    int cached_tokens; /* prompt tokens reused from the KV cache (usage.prompt_tokens_details) */
    double preprocess_ms, tokenize_ms; /* images -> tensors; chat template + tokenizer */
    double vision_ms, ttft_ms, engine_ms;
} PipelineResult;

void pipeline_result_free(PipelineResult *r);

/* pipeline_run's failures (err says what; it never holds the prompt or the answer). */
enum {
    PIPELINE_ERR_INPUT = 1,     /* the request is wrong (images, prompt length, markers): 400 */
    PIPELINE_ERR_SCHEMA = 2,    /* the JSON schema does not compile: 400 */
    PIPELINE_ERR_SERVER = 3,    /* out of host memory, no grammar vocabulary: 500 */
    PIPELINE_ERR_ENGINE = 4,    /* engine_generate failed: *engine_rc holds its ENGINE_ERR_* code */
    PIPELINE_ERR_CANCELLED = 5, /* should_stop said so before the answer ended */
};

/* Runs one request: 0 (result filled), or a PIPELINE_ERR_* code (err filled;
 * engine_rc set for PIPELINE_ERR_ENGINE). result's timings and token counts are
 * filled as far as the run got, on failure too. */
int pipeline_run(Pipeline *p, const PipelineRequest *request, PipelineResult *result, int *engine_rc,
                 Error *err);

#endif
