/* The model side of the worker (http/ owns this): loading the pipeline (fetching
 * the weights first when needed) and running one job on it — the job's input
 * as a PipelineRequest (pipeline/pipeline.h), its answer or its failure as an
 * HTTP status. Called on the worker thread only; knows nothing of the worker
 * (http/worker.c calls it and passes what it needs). */
#ifndef HTTP_MODEL_H
#define HTTP_MODEL_H

#include <stddef.h>

#include "engine/engine.h"
#include "http/job.h"
#include "pipeline/pipeline.h"
#include "util/error.h"

typedef struct {
    const char *model_dir;
    const char *model_repo; /* downloaded from when model_dir has no config.json and a token is set */
    BackendKind backend;
    int n_threads;
    int max_context;
} ModelSource;

/* Fetches the weights when needed, opens the pipeline and warms the engine up. */
int model_load(const ModelSource *source, Pipeline **out, Error *err);

/* Streams the visible text of a streaming job (the worker's side). */
typedef void (*ModelEmit)(void *ctx, Job *job, const char *text, size_t n);

/* Runs the job; on failure sets job->status (4xx/5xx) and the error fields.
 * device_lost: the device already failed for good (the job gets a 503).
 * Returns 1 when this job's run lost the device (lost[] says what failed: the
 * worker turns unhealthy), else 0. */
int model_run_job(Pipeline *p, Job *job, int device_lost, ModelEmit emit, void *emit_ctx, char *lost,
                  size_t lost_size);

void job_fail(Job *job, int status, const char *type, const char *message);
/* The error a cancelled job reports (its client is usually gone). */
void job_fail_cancelled(Job *job);

#endif
