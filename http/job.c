/* Jobs and the bounded FIFO between the event loop and the worker; see job.h. */
#include "http/job.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

Job *job_new(void) {
    Job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    atomic_init(&job->cancel, 0);
    job->finish = "stop";
    return job;
}

void job_free(Job *job) {
    if (!job)
        return;
    job_input_free(&job->in);
    free(job->delta);
    free(job->text);
    free(job);
}

void job_queue_init(JobQueue *q, int capacity) {
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mutex, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    q->capacity = capacity;
}

void job_queue_destroy(JobQueue *q) {
    pthread_mutex_destroy(&q->mutex);
    pthread_cond_destroy(&q->nonempty);
}

int job_queue_push(JobQueue *q, Job *job) {
    pthread_mutex_lock(&q->mutex);
    if (q->depth >= q->capacity || q->stopping) {
        pthread_mutex_unlock(&q->mutex);
        return -1;
    }
    job->state = JOB_QUEUED;
    job->next = NULL;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->depth++;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->mutex);
    return 0;
}

Job *job_queue_pop(JobQueue *q) {
    pthread_mutex_lock(&q->mutex);
    q->running = 0;
    while (!q->head && !q->stopping)
        pthread_cond_wait(&q->nonempty, &q->mutex);
    Job *job = NULL;
    if (!q->stopping) {
        job = q->head;
        q->head = job->next;
        if (!q->head)
            q->tail = NULL;
        job->next = NULL;
        q->depth--;
        job->state = JOB_RUNNING;
        q->running = 1;
    }
    pthread_mutex_unlock(&q->mutex);
    return job;
}

int job_queue_remove(JobQueue *q, Job *job) {
    int removed = 0;
    pthread_mutex_lock(&q->mutex);
    if (job->state == JOB_QUEUED) {
        Job **p = &q->head;
        Job *prev = NULL;
        while (*p && *p != job) {
            prev = *p;
            p = &(*p)->next;
        }
        if (*p) {
            *p = job->next;
            if (q->tail == job)
                q->tail = prev;
            job->next = NULL;
            q->depth--;
            removed = 1;
        }
    }
    pthread_mutex_unlock(&q->mutex);
    return removed;
}

Job *job_queue_take_all(JobQueue *q) {
    pthread_mutex_lock(&q->mutex);
    Job *all = q->head;
    q->head = q->tail = NULL;
    q->depth = 0;
    pthread_mutex_unlock(&q->mutex);
    return all;
}

void job_queue_stop(JobQueue *q) {
    pthread_mutex_lock(&q->mutex);
    q->stopping = 1;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->mutex);
}

void job_queue_counts(JobQueue *q, int *depth, int *running) {
    pthread_mutex_lock(&q->mutex);
    *depth = q->depth;
    *running = q->running;
    pthread_mutex_unlock(&q->mutex);
}
