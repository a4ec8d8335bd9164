/* The CPU kernels' thread pool (see threadpool.h). One job slot; workers wait
 * on a generation counter: they spin (with a pause hint) for up to SPIN_NS,
 * then sleep on a condition variable. The caller waits for the job's end the
 * same way. Posting a job or ending one touches the mutex only when the other
 * side is asleep: a decode step posts hundreds of short jobs, and each futex
 * wake-up of a halted vCPU costs a VM exit (perf on a 270M decode: 5.8% of the
 * samples in try_to_wake_up before this). */
#include "kernels/cpu/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "kernels/cpu/matmul_amx.h"
#include "kernels/cpu/matmul_bf16.h"
#include "kernels/cpu/matmul_q8.h"
#include "kernels/kernels.h"

#define MAX_THREADS 256
#define SPIN_NS 1000000     /* how long a waiting thread spins before it sleeps: 1 ms */
#define CHUNKS_PER_THREAD 8 /* parallel_for_dynamic: chunks per thread when the loop is long */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done_cond;
    pthread_t threads[MAX_THREADS];
    int n_threads;          /* including the caller */
    int n_started;          /* worker threads running */
    atomic_uint generation; /* bumped for every job */
    atomic_int remaining;   /* workers still busy with the current job */
    atomic_int stop;
    atomic_int sleepers;       /* workers asleep (or about to be) on `wake` */
    atomic_int caller_waiting; /* the caller is asleep (or about to be) on `done_cond` */
    atomic_long worker_sleeps; /* counts for parallel_pool_sleeps() */
    atomic_long caller_sleeps;
    /* the current job */
    RangeFn fn;
    void *ctx;
    int n;
    int n_parts;
    int chunk;                 /* > 0: parallel_for_dynamic, items handed out from `next` */
    atomic_int next;           /* the first item nobody has taken yet */
    unsigned start_generation; /* generation when the workers were started */
} Pool;

static Pool pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done_cond = PTHREAD_COND_INITIALIZER,
};
static int requested_threads; /* 0 = all cores */

static void part_range(int n, int n_parts, int part, int *start, int *end) {
    long long s = (long long)n * part / n_parts;
    long long e = (long long)n * (part + 1) / n_parts;
    *start = (int)s;
    *end = (int)e;
}

static uint64_t monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One step of a bounded busy-wait: a pause hint, and every 256 steps a look at
 * the clock. Returns 0 once SPIN_NS have passed since the first look. */
typedef struct {
    uint64_t deadline;
    unsigned steps;
} Spin;

static int spin_step(Spin *spin) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if ((++spin->steps & 255) != 0)
        return 1;
    uint64_t now = monotonic_ns();
    if (spin->deadline == 0)
        spin->deadline = now + SPIN_NS;
    return now < spin->deadline;
}

/* parallel_for_dynamic: take chunks until none is left. */
static void run_chunks(void) {
    for (;;) {
        int start = atomic_fetch_add_explicit(&pool.next, pool.chunk, memory_order_relaxed);
        if (start >= pool.n)
            return;
        pool.fn(pool.ctx, start, start + pool.chunk < pool.n ? start + pool.chunk : pool.n);
    }
}

static void *worker_main(void *arg) {
    int index = (int)(long)arg;            /* 1..n_threads-1 */
    unsigned seen = pool.start_generation; /* not a fresh load: a job may already be posted */
    for (;;) {
        unsigned gen;
        Spin spin = {0};
        while ((gen = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen &&
               !atomic_load(&pool.stop) && spin_step(&spin))
            ;
        if (gen == seen && !atomic_load(&pool.stop)) {
            /* sleepers is raised before generation is read again (both seq_cst), and run_job
             * bumps generation before it reads sleepers: one of the two sees the other */
            pthread_mutex_lock(&pool.lock);
            atomic_fetch_add(&pool.sleepers, 1);
            atomic_fetch_add_explicit(&pool.worker_sleeps, 1, memory_order_relaxed);
            while ((gen = atomic_load(&pool.generation)) == seen && !atomic_load(&pool.stop))
                pthread_cond_wait(&pool.wake, &pool.lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.lock);
        }
        if (atomic_load(&pool.stop))
            return NULL;
        seen = gen;
        if (pool.chunk > 0) {
            run_chunks();
        } else if (index < pool.n_parts) {
            int start, end;
            part_range(pool.n, pool.n_parts, index, &start, &end);
            if (end > start)
                pool.fn(pool.ctx, start, end);
        }
        /* the last one out wakes the caller if it sleeps: remaining is lowered before
         * caller_waiting is read (seq_cst), run_job raises caller_waiting before it reads
         * remaining, so a sleeping caller is always seen */
        if (atomic_fetch_sub(&pool.remaining, 1) == 1 && atomic_load(&pool.caller_waiting)) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done_cond);
            pthread_mutex_unlock(&pool.lock);
        }
    }
}

static int online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > MAX_THREADS ? MAX_THREADS : (int)n);
}

static void pool_start(void) {
    int want = requested_threads > 0 ? requested_threads : online_cores();
    if (want > MAX_THREADS)
        want = MAX_THREADS;
    pool.n_threads = want;
    atomic_store(&pool.stop, 0);
    pool.n_started = 0;
    pool.start_generation = atomic_load(&pool.generation);
    for (int i = 1; i < want; i++) {
        if (pthread_create(&pool.threads[i], NULL, worker_main, (void *)(long)i) != 0) {
            fprintf(stderr, "kernels: could not start worker thread %d; using %d threads\n", i, i);
            break;
        }
        pool.n_started++;
    }
    pool.n_threads = pool.n_started + 1;
}

void kernels_shutdown(void) {
    matmul_amx_release();
    matmul_bf16_release();
    matmul_q8_release();
    if (pool.n_threads == 0)
        return;
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.stop, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 1; i <= pool.n_started; i++)
        pthread_join(pool.threads[i], NULL);
    pool.n_threads = 0;
    pool.n_started = 0;
}

void kernels_set_threads(int n_threads) {
    if (n_threads < 0)
        n_threads = 0;
    int want = n_threads > 0 ? n_threads : online_cores();
    requested_threads = n_threads;
    if (pool.n_threads != 0 && pool.n_threads != want)
        kernels_shutdown();
}

int kernels_threads(void) {
    if (pool.n_threads == 0)
        pool_start();
    return pool.n_threads;
}

/* Posts the job to the workers, runs the caller's share (caller_part), waits for them. */
static void run_job(RangeFn fn, void *ctx, int n, int parts, int chunk) {
    int workers = pool.n_threads - 1;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.n_parts = parts;
    pool.chunk = chunk;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.remaining, workers);
    atomic_fetch_add(&pool.generation, 1);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }

    if (chunk > 0) {
        run_chunks();
    } else {
        int start, end;
        part_range(n, parts, 0, &start, &end);
        fn(ctx, start, end);
    }

    Spin spin = {0};
    while (atomic_load_explicit(&pool.remaining, memory_order_acquire) > 0 && spin_step(&spin))
        ;
    if (atomic_load(&pool.remaining) > 0) {
        pthread_mutex_lock(&pool.lock);
        atomic_store(&pool.caller_waiting, 1); /* before remaining is read again */
        atomic_fetch_add_explicit(&pool.caller_sleeps, 1, memory_order_relaxed);
        while (atomic_load(&pool.remaining) > 0)
            pthread_cond_wait(&pool.done_cond, &pool.lock);
        atomic_store(&pool.caller_waiting, 0);
        pthread_mutex_unlock(&pool.lock);
    }
}

void parallel_for(int n, int min_per_thread, RangeFn fn, void *ctx) {
    if (n <= 0)
        return;
    if (pool.n_threads == 0)
        pool_start();
    if (min_per_thread < 1)
        min_per_thread = 1;
    int parts = n / min_per_thread;
    if (parts > pool.n_threads)
        parts = pool.n_threads;
    if (parts <= 1) {
        fn(ctx, 0, n);
        return;
    }
    run_job(fn, ctx, n, parts, 0);
}

void parallel_for_dynamic(int n, int min_chunk, RangeFn fn, void *ctx) {
    if (n <= 0)
        return;
    if (pool.n_threads == 0)
        pool_start();
    int chunk = n / (CHUNKS_PER_THREAD * pool.n_threads);
    if (chunk < min_chunk)
        chunk = min_chunk;
    if (chunk < 1)
        chunk = 1;
    if (pool.n_threads == 1 || n <= chunk) {
        fn(ctx, 0, n);
        return;
    }
    run_job(fn, ctx, n, pool.n_threads, chunk);
}

typedef struct {
    int n_parts;
    int first[PARALLEL_MAX_PARTS + 1]; /* part p owns items [first[p], first[p + 1]) */
    RangeFn fn;
    void *const *ctxs;
} PartsJob;

static void run_parts(void *ctx, int start, int end) {
    const PartsJob *job = ctx;
    for (int p = 0; p < job->n_parts; p++) {
        int lo = job->first[p], hi = job->first[p + 1];
        int s = start > lo ? start : lo, e = end < hi ? end : hi;
        if (s < e)
            job->fn(job->ctxs[p], s - lo, e - lo);
    }
}

void parallel_for_dynamic_parts(int n_parts, const int *sizes, int min_chunk, RangeFn fn, void *const *ctxs) {
    if (n_parts > PARALLEL_MAX_PARTS) {
        for (int p = 0; p < n_parts; p++)
            parallel_for_dynamic(sizes[p], min_chunk, fn, ctxs[p]);
        return;
    }
    PartsJob job = {n_parts, {0}, fn, ctxs};
    for (int p = 0; p < n_parts; p++)
        job.first[p + 1] = job.first[p] + (sizes[p] > 0 ? sizes[p] : 0);
    parallel_for_dynamic(job.first[n_parts], min_chunk, run_parts, &job);
}

void parallel_pool_sleeps(long *worker_sleeps, long *caller_sleeps) {
    *worker_sleeps = atomic_load(&pool.worker_sleeps);
    *caller_sleeps = atomic_load(&pool.caller_sleeps);
}
