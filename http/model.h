/* The model side of the worker (http/ owns this): loading the engine and
 * tokenizer (fetching the weights first when needed) and running one job:
 * chat prompt -> token ids, images -> tensors, engine_generate, the visible
 * answer. Called on the worker thread only. */
#ifndef HTTP_MODEL_H
#define HTTP_MODEL_H

#include <stddef.h>

#include "http/job.h"
#include "http/worker.h"
#include "util/error.h"

/* Fills w->engine, w->tokenizer, w->info, w->backend_name, w->gpu_name;
 * warms the engine up with a one-token generation. */
int model_load(Worker *w, Error *err);
void model_unload(Worker *w);

/* Runs the job; on failure sets job->status (4xx/5xx) and the error fields
 * through job_fail. Streams visible text with worker_emit. */
void model_run_job(Worker *w, Job *job);

/* worker.c: appends visible text to a streaming job and wakes the loop. */
void worker_emit(Worker *w, Job *job, const char *text, size_t n);
void job_fail(Job *job, int status, const char *type, const char *message);
/* worker.c: an engine_generate failure (ENGINE_ERR_*) -> the job's error; a
 * lost device also turns the worker DEVICE_LOST (logged once). */
void job_fail_engine(Worker *w, Job *job, int rc, const char *detail);
void job_fail_cancelled(Job *job);

#endif
