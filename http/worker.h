/* The engine worker thread (http/ owns this): loads the model (fetching it
 * first when the directory is empty and a Hugging Face token is set), warms
 * it up, then runs the queue's jobs one at a time on the request pipeline
 * (http/model.c -> pipeline/). It reports to the event
 * loop only through each job's h2o message and never calls h2o otherwise. */
#ifndef HTTP_WORKER_H
#define HTTP_WORKER_H

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "http/job.h"
#include "pipeline/pipeline.h"

/* DEVICE_LOST: the GPU failed for good while serving (a sticky CUDA error);
 * every later request fails, /health answers 503 so the platform replaces
 * the instance. error says what failed. */
typedef enum { WORKER_LOADING, WORKER_READY, WORKER_FAILED, WORKER_DEVICE_LOST } WorkerState;

typedef struct {
    /* Set before worker_start. */
    const char *model_dir;
    const char *model_repo;
    BackendKind backend;
    int n_threads;
    int max_context;
    JobQueue *queue;
    h2o_multithread_receiver_t *receiver; /* where job messages go */

    /* Published with state = WORKER_READY (or FAILED with error); read-only after,
     * except error, written once before state turns DEVICE_LOST. */
    atomic_int state;
    char error[512];
    EngineInfo info;
    char backend_name[16];
    char gpu_name[128]; /* "" without a GPU */

    /* Worker-private. */
    Pipeline *pipeline; /* engine + tokenizer + compiled response formats (pipeline/) */
    pthread_t thread;
    int started;
} Worker;

int worker_start(Worker *w, Error *err);
/* Waits for the thread after job_queue_stop; frees the engine. */
void worker_join(Worker *w);

/* Worker side of a job's message: marks `job` done (the loop may free it as
 * soon as this returns). */
void worker_post_done(Worker *w, Job *job);

#endif
