/* The model side of the worker; see model.h. Uses pipeline/ (the request's run),
 * image/base64 (the request's images as files) and weights-fetch/ (the download
 * at start). */
#include "http/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/base64.h"
#include "util/log.h"
#include "weights-fetch/fetch.h"

/* ---- loading */

/* Downloads the model when the directory has no config.json and a token is set. */
static int fetch_if_needed(const ModelSource *m, Error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", m->model_dir);
    if (access(path, R_OK) == 0)
        return 0;
    FetchOptions fo = {0};
    FetchEnv fe;
    fo.repo = m->model_repo;
    fo.out_dir = m->model_dir;
    fo.progress = FETCH_PROGRESS_LOG;
    if (!weights_fetch_options_from_env(&fo, &fe))
        return error_set(
            err,
            "%s has no config.json and no Hugging Face token is set: put a model there (`make models` "
            "prepares Gemma 3 270M), or set HF_TOKEN to download %s",
            m->model_dir, m->model_repo);
    char fields[600];
    snprintf(fields, sizeof fields, "\"repo\":\"%s\"", m->model_repo);
    log_fields(LOG_INFO, "downloading the model", fields);
    if (weights_fetch(&fo, err) != 0)
        return error_prefix(err, "downloading %s", m->model_repo);
    return 0;
}

int model_load(const ModelSource *m, Pipeline **out, Error *err) {
    double t0 = now_seconds();
    if (fetch_if_needed(m, err) != 0)
        return -1;
    EngineOptions eo = {m->model_dir, m->backend, m->n_threads, m->max_context};
    if (pipeline_open(out, &eo, 1, err) != 0)
        return -1;
    char fields[128];
    snprintf(fields, sizeof fields, "\"load_s\":%.2f", now_seconds() - t0);
    log_fields(LOG_INFO, "model loaded", fields);
    return 0;
}

/* ---- failures */

void job_fail(Job *job, int status, const char *type, const char *message) {
    job->status = status;
    snprintf(job->error_type, sizeof job->error_type, "%s", type);
    snprintf(job->error_message, sizeof job->error_message, "%s", message);
}

void job_fail_cancelled(Job *job) {
    switch (atomic_load(&job->cancel)) {
    case CANCEL_DEADLINE:
        job_fail(job, 504, "timeout", "the request took longer than MEDGEMMA_REQUEST_TIMEOUT_S");
        break;
    case CANCEL_SHUTDOWN:
        job_fail(job, 503, "unavailable", "the server is shutting down");
        break;
    default:
        job_fail(job, 499, "client_closed", "the client closed the connection");
        break;
    }
}

/* An engine_generate failure (ENGINE_ERR_*) -> the job's error; 1 when it lost the device. */
static int fail_engine(Job *job, int rc, const char *detail, int device_lost, char *lost, size_t lost_size) {
    switch (rc) {
    case ENGINE_ERR_OUT_OF_MEMORY:
        log_msg(LOG_WARNING, "a request ran out of device memory: %s", detail);
        job_fail(job, 503, "unavailable",
                 "the GPU had no free memory for this request; retry later, or send fewer or smaller images");
        return 0;
    case ENGINE_ERR_INTERNAL:
        log_msg(LOG_ERROR, "a device call failed: %s", detail);
        job_fail(job, 500, "server_error", "a GPU call failed while running this request");
        return 0;
    case ENGINE_ERR_DEVICE_LOST:
        if (device_lost) { /* queued before the failure */
            job_fail(job, 503, "unavailable",
                     "the GPU of this instance failed; retry (it is being replaced)");
            return 0;
        }
        snprintf(lost, lost_size, "the GPU failed: %s", detail);
        job_fail(job, 500, "server_error",
                 "the GPU failed while running this request; this instance is being replaced");
        return 1;
    default:
        job_fail(job, 400, "invalid_request_error", detail);
        return 0;
    }
}

/* ---- one job */

typedef struct {
    Job *job;
    ModelEmit emit;
    void *emit_ctx;
} JobEvents;

static void on_text(void *user, const char *text, size_t n) {
    JobEvents *ev = user;
    ev->emit(ev->emit_ctx, ev->job, text, n);
}

static int should_stop(void *user) {
    Job *job = ((JobEvents *)user)->job;
    if (job->deadline > 0 && now_seconds() > job->deadline) {
        int none = CANCEL_NONE;
        atomic_compare_exchange_strong(&job->cancel, &none, CANCEL_DEADLINE);
    }
    return atomic_load(&job->cancel) != CANCEL_NONE;
}

/* Base64 -> file bytes, for every image of the job. Errors name the image ("images[2]: ..."). */
static int decode_images(Job *job, Error *err) {
    for (int i = 0; i < job->in.n_images; i++) {
        ImageFile *f = &job->in.images[i];
        if (!f->base64)
            continue;
        if (base64_decode_strict(f->base64, f->base64_len, &f->bytes, &f->n_bytes, err) != 0)
            return error_prefix(err, "%s", f->what);
        free(f->base64);
        f->base64 = NULL;
    }
    return 0;
}

static const char *role_name(Role r) {
    return r == ROLE_SYSTEM ? "system" : r == ROLE_USER ? "user" : "assistant";
}

int model_run_job(Pipeline *p, Job *job, int device_lost, ModelEmit emit, void *emit_ctx, char *lost,
                  size_t lost_size) {
    JobInput *in = &job->in;
    Error err = {{0}};
    int n_parts = 0, ret = 0;
    for (int i = 0; i < in->n_messages; i++)
        n_parts += in->messages[i].n_parts;
    ChatMessage *msgs = calloc((size_t)in->n_messages + 1, sizeof *msgs);
    ChatPart *parts = calloc((size_t)n_parts + 1, sizeof *parts);
    PipelineImage *images = calloc((size_t)in->n_images + 1, sizeof *images);
    PipelineResult res = {0};
    if (!msgs || !parts || !images) {
        job_fail(job, 500, "server_error", "out of memory");
        goto done;
    }
    double t0 = now_seconds();
    if (decode_images(job, &err) != 0) {
        job_fail(job, 400, "invalid_request_error", err.message);
        goto done;
    }
    double decode_ms = (now_seconds() - t0) * 1e3;
    for (int i = 0, k = 0; i < in->n_messages; i++) {
        const Message *m = &in->messages[i];
        msgs[i] = (ChatMessage){role_name(m->role), parts + k, m->n_parts};
        for (int j = 0; j < m->n_parts; j++, k++)
            parts[k] =
                (ChatPart){m->parts[j].image >= 0 ? CHAT_PART_IMAGE : CHAT_PART_TEXT, m->parts[j].text};
    }
    for (int i = 0; i < in->n_images; i++)
        images[i] = (PipelineImage){in->images[i].bytes, in->images[i].n_bytes, in->images[i].what};
    JobEvents ev = {job, emit, emit_ctx};
    PipelineRequest rq = {
        .messages = msgs,
        .n_messages = in->n_messages,
        .images = images,
        .n_images = in->n_images,
        .series = in->series == SERIES_CT      ? PIPELINE_SERIES_CT
                  : in->series == SERIES_MRI   ? PIPELINE_SERIES_MRI
                  : in->series == SERIES_DICOM ? PIPELINE_SERIES_DICOM
                                               : PIPELINE_SERIES_NONE,
        .series_options = in->series_options,
        .dicom_modality = in->dicom_modality,
        .dicom_window = in->dicom_window,
        .pad_to_square = in->pad_to_square,
        .max_tokens = in->max_tokens,
        .temperature = in->temperature,
        .top_p = in->top_p,
        .top_k = in->top_k,
        .seed = in->seed,
        .stops = (const char *const *)in->stops,
        .n_stops = in->n_stops,
        .format = in->json_mode == JSON_MODE_SCHEMA   ? PIPELINE_JSON_SCHEMA
                  : in->json_mode == JSON_MODE_OBJECT ? PIPELINE_JSON_OBJECT
                                                      : PIPELINE_TEXT,
        .json_schema = in->json_schema,
        .thinking_budget = in->thinking_budget,
        .on_text = in->stream ? on_text : NULL,
        .should_stop = should_stop,
        .user = &ev,
        .cache_tenant = job->cache_tenant,
    };
    int engine_rc = 0;
    int rc = pipeline_run(p, &rq, &res, &engine_rc, &err);
    job->preprocess_ms = decode_ms + res.preprocess_ms;
    job->tokenize_ms = res.tokenize_ms;
    job->engine_ms = res.engine_ms;
    job->prompt_tokens = res.prompt_tokens;
    job->completion_tokens = res.completion_tokens;
    job->cached_tokens = res.cached_tokens;
    job->vision_ms = res.vision_ms;
    job->ttft_ms = res.ttft_ms;
    char msg[sizeof job->error_message];
    switch (rc) {
    case 0:
        job->text = res.text;
        res.text = NULL;
        job->finish = res.finish;
        break;
    case PIPELINE_ERR_INPUT:
        job_fail(job, 400, "invalid_request_error", err.message);
        break;
    case PIPELINE_ERR_SCHEMA:
        snprintf(msg, sizeof msg, "response_format.json_schema.schema: %.470s", err.message);
        job_fail(job, 400, "invalid_request_error", msg);
        break;
    case PIPELINE_ERR_ENGINE:
        ret = fail_engine(job, engine_rc, err.message, device_lost, lost, lost_size);
        break;
    case PIPELINE_ERR_CANCELLED:
        job_fail_cancelled(job);
        break;
    default:
        job_fail(job, 500, "server_error", err.message);
        break;
    }
done:
    if (p)
        pipeline_cache_stats(p, &job->cache_stats);
    pipeline_result_free(&res);
    free(msgs);
    free(parts);
    free(images);
    return ret;
}
