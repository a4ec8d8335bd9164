/* The engine worker thread (http/ owns this): loads the model (fetching it
 * first when the directory is empty and a Hugging Face token is set), warms
 * it up, then runs the queue's jobs one at a time: prompt rendering and
 * tokenization, image preprocessing, engine_generate. It reports to the event
 * loop only through each job's h2o message and never calls h2o otherwise. */
#ifndef HTTP_WORKER_H
#define HTTP_WORKER_H

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "http/job.h"

typedef enum { WORKER_LOADING, WORKER_READY, WORKER_FAILED } WorkerState;

typedef struct {
    /* Set before worker_start. */
    const char *model_dir;
    const char *model_repo;
    BackendKind backend;
    int n_threads;
    int max_context;
    JobQueue *queue;
    h2o_multithread_receiver_t *receiver; /* where job messages go */

    /* Published with state = WORKER_READY (or FAILED with error); read-only after. */
    atomic_int state;
    char error[512];
    EngineInfo info;
    char backend_name[16];
    char gpu_name[128]; /* "" without a GPU */

    /* Worker-private. */
    Engine *engine;
    void *tokenizer;
    void *grammar_vocab; /* GrammarVocab, built on the first JSON-mode job */
    void *grammars;      /* GrammarCache (model.c): recently compiled response formats */
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
