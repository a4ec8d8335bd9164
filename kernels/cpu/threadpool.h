/* The CPU kernels' thread pool: a fixed set of worker threads that split one
 * loop at a time into contiguous chunks. Private to kernels/cpu.
 *
 * parallel_for(n, fn, ctx) calls fn(ctx, start, end) on disjoint ranges that
 * cover [0, n), the calling thread taking the first one, and returns when all
 * are done. Chunks are contiguous and depend only on n and the thread count,
 * so every element is computed by the same code whatever the split. Waiting
 * threads (workers between loops, the caller at a loop's end) spin for up to
 * 1 ms before sleeping, since a decode step runs hundreds of short loops.
 * Not reentrant: one parallel_for at a time (the engine runs one request at a
 * time). */
#ifndef KERNELS_CPU_THREADPOOL_H
#define KERNELS_CPU_THREADPOOL_H

typedef void (*RangeFn)(void *ctx, int start, int end);

/* Runs fn over [0, n) split across the pool. Loops of fewer than
 * min_per_thread items per thread use fewer threads (n <= min_per_thread:
 * the caller alone). */
void parallel_for(int n, int min_per_thread, RangeFn fn, void *ctx);

/* Runs fn over [0, n) in equal chunks (about 8 per thread, at least min_chunk
 * items; the last one shorter) that the threads take in turn as they finish the
 * one before: a thread slowed by the machine (a busy or slower core) does less of
 * the loop instead of holding up the rest. Chunk bounds depend only on n,
 * min_chunk and the thread count. For loops whose items are independent (each
 * GEMM panel is computed whole by whichever thread takes it). */
void parallel_for_dynamic(int n, int min_chunk, RangeFn fn, void *ctx);

#define PARALLEL_MAX_PARTS 8

/* One parallel_for_dynamic over several independent loops laid end to end:
 * part p has sizes[p] items, and fn(ctxs[p], start, end) is called with ranges
 * local to part p (a chunk that crosses a boundary is cut there). Every item is
 * computed by the same code as parallel_for_dynamic(sizes[p], ..., ctxs[p])
 * would use; only which thread takes it changes. For the decode projections
 * that share one input (q|k|v, gate|up): one loop instead of one per matrix.
 * More than PARALLEL_MAX_PARTS parts: one loop per part. */
void parallel_for_dynamic_parts(int n_parts, const int *sizes, int min_chunk, RangeFn fn, void *const *ctxs);

/* How many times, since the process started, a worker went to sleep waiting for
 * a loop and the caller went to sleep waiting for the workers (for tests). */
void parallel_pool_sleeps(long *worker_sleeps, long *caller_sleeps);

#endif
