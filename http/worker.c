/* The engine worker thread; see worker.h. The model-specific work (loading,
 * one job on the engine) is in model.c. */
#include "http/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/model.h"
#include "util/log.h"

/* Sends the job's message unless one is already waiting in the loop's queue
 * (the loop then picks up the newer state with it). Called with the queue's
 * mutex NOT held. */
static void post(Worker *w, Job *job, int was_pending) {
    if (!was_pending)
        h2o_multithread_send_message(w->receiver, &job->msg);
}

static void worker_emit(void *ctx, Job *job, const char *text, size_t n) {
    Worker *w = ctx;
    if (n == 0)
        return;
    pthread_mutex_lock(&w->queue->mutex);
    if (job->delta_len + n + 1 > job->delta_cap) {
        size_t cap = (job->delta_len + n + 1) * 2;
        char *p = realloc(job->delta, cap);
        if (!p) {
            pthread_mutex_unlock(&w->queue->mutex);
            return; /* out of memory: the stream misses this piece, the final answer is whole */
        }
        job->delta = p;
        job->delta_cap = cap;
    }
    memcpy(job->delta + job->delta_len, text, n);
    job->delta_len += n;
    int was_pending = job->msg_pending;
    job->msg_pending = 1;
    pthread_mutex_unlock(&w->queue->mutex);
    post(w, job, was_pending);
}

void worker_post_done(Worker *w, Job *job) {
    pthread_mutex_lock(&w->queue->mutex);
    job->state = JOB_DONE;
    int was_pending = job->msg_pending;
    job->msg_pending = 1;
    pthread_mutex_unlock(&w->queue->mutex);
    /* From here the loop may free the job (when a message was pending). */
    post(w, job, was_pending);
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    Error err = {{0}};
    ModelSource source = {w->model_dir, w->model_repo, w->backend, w->n_threads, w->max_context};
    if (model_load(&source, &w->pipeline, &err) != 0) {
        snprintf(w->error, sizeof w->error, "%s", err.message);
        atomic_store(&w->state, WORKER_FAILED);
        return NULL;
    }
    w->info = *pipeline_info(w->pipeline);
    snprintf(w->backend_name, sizeof w->backend_name, "%s", w->info.backend ? w->info.backend : "?");
    snprintf(w->gpu_name, sizeof w->gpu_name, "%s", w->info.gpu_name ? w->info.gpu_name : "");
    atomic_store(&w->state, WORKER_READY);
    Job *job;
    while ((job = job_queue_pop(w->queue)) != NULL) {
        job->t_start = now_seconds();
        job->status = 200;
        if (job->deadline > 0 && job->t_start > job->deadline)
            atomic_store(&job->cancel, CANCEL_DEADLINE);
        if (atomic_load(&job->cancel) != CANCEL_NONE)
            job_fail_cancelled(job);
        else if (model_run_job(w->pipeline, job, atomic_load(&w->state) == WORKER_DEVICE_LOST, worker_emit, w,
                               w->error, sizeof w->error)) {
            atomic_store(&w->state, WORKER_DEVICE_LOST);
            log_msg(LOG_ERROR,
                    "%s; every later request fails, /health reports unhealthy so the instance is replaced",
                    w->error);
        }
        job->inference_ms = (now_seconds() - job->t_start) * 1e3;
        worker_post_done(w, job);
    }
    return NULL;
}

int worker_start(Worker *w, Error *err) {
    atomic_store(&w->state, WORKER_LOADING);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8u << 20);
    int rc = pthread_create(&w->thread, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return error_set(err, "cannot create the worker thread: %s", strerror(rc));
    w->started = 1;
    return 0;
}

void worker_join(Worker *w) {
    if (!w->started)
        return;
    pthread_join(w->thread, NULL);
    w->started = 0;
    pipeline_close(w->pipeline);
    w->pipeline = NULL;
}
