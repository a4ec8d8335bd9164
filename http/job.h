/* One generation request on its way through the service (http/ owns this),
 * and the bounded FIFO that hands jobs from the event loop to the engine
 * worker.
 *
 * Ownership: the event-loop thread creates a job from a validated request
 * (request.c) and pushes it. The worker pops it, runs it (worker.c) and
 * reports through the job's one h2o message; the loop frees the job once the
 * worker said it is done, or itself when it takes a still-queued job out of
 * the queue (client gone). Fields under "shared" are guarded by the queue's
 * mutex; `cancel` is atomic so the token callback reads it without a lock. */
#ifndef HTTP_JOB_H
#define HTTP_JOB_H

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "http/request.h"

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE } JobState;

typedef enum { CANCEL_NONE, CANCEL_CLIENT_GONE, CANCEL_DEADLINE, CANCEL_SHUTDOWN } JobCancel;

typedef struct JobLink JobLink; /* the request side (server.c), lives in the request's pool */

typedef struct Job {
    /* Set by the loop before the push; read-only afterwards. */
    char id[40];
    JobInput in;
    double t_arrival; /* seconds, monotonic clock */
    double deadline;  /* monotonic seconds; 0 = none */

    /* Loop-only. */
    JobLink *link;                         /* NULL once the client is gone or answered */
    struct Job *next;                      /* queue list (queue mutex) */
    struct Job *active_next, *active_prev; /* the server's list of jobs in flight */

    atomic_int cancel; /* a JobCancel: why the generation should stop */

    /* Shared (queue mutex). */
    JobState state;
    char *delta; /* visible text not yet sent to a streaming client */
    size_t delta_len, delta_cap;
    int msg_pending; /* msg is in the loop's queue */
    h2o_multithread_message_t msg;

    /* Written by the worker before JOB_DONE, read by the loop after. */
    int status; /* HTTP status: 200, or the 4xx/5xx of a failure */
    char error_type[48];
    char error_message[512];
    char *text;         /* the visible answer */
    const char *finish; /* "stop", "length" */
    int prompt_tokens, completion_tokens;
    double t_start;       /* worker picked it up */
    double parse_ms;      /* loop: JSON, base64, image headers */
    double preprocess_ms; /* worker: image decode + resize */
    double tokenize_ms;   /* worker: chat template + tokenizer */
    double vision_ms, ttft_ms;
    double engine_ms;    /* engine_generate */
    double inference_ms; /* everything the worker did */
} Job;

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t nonempty;
    Job *head, *tail;
    int depth;    /* queued, not running */
    int capacity; /* most queued jobs */
    int running;  /* 0 or 1 */
    int stopping; /* the worker should exit when it sees this */
} JobQueue;

void job_queue_init(JobQueue *q, int capacity);
void job_queue_destroy(JobQueue *q);
/* Appends a job; returns -1 (job untouched) when the queue is full. */
int job_queue_push(JobQueue *q, Job *job);
/* Worker: waits for a job (marks it JOB_RUNNING) or returns NULL once stopping. */
Job *job_queue_pop(JobQueue *q);
/* Loop: removes a still-queued job; returns 1 when it was removed (the loop
 * now owns it), 0 when the worker has it. */
int job_queue_remove(JobQueue *q, Job *job);
/* Loop: takes every queued job out (for shutdown); returns the list. */
Job *job_queue_take_all(JobQueue *q);
void job_queue_stop(JobQueue *q);
void job_queue_counts(JobQueue *q, int *depth, int *running);

Job *job_new(void);
void job_free(Job *job);

/* Seconds on the monotonic clock. */
double now_seconds(void);

#endif
