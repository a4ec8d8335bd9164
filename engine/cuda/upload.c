/* Pinned-ring upload: see upload.h. */
#include "engine/cuda/upload.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_check.h"

#define UPLOAD_MAX_SLOTS 8
#define UPLOAD_MAX_THREADS 8

struct Uploader {
    cudaStream_t stream;
    void *slot[UPLOAD_MAX_SLOTS];
    cudaEvent_t done[UPLOAD_MAX_SLOTS];
    int used[UPLOAD_MAX_SLOTS]; /* slot has a copy in flight (its event is recorded) */
    int n_slots, next, n_threads;
    size_t slot_bytes, total;
};

int uploader_create(Uploader **out, size_t slot_bytes, int n_slots, int n_threads, Error *err) {
    *out = NULL;
    if (n_slots < 2 || n_slots > UPLOAD_MAX_SLOTS || slot_bytes == 0)
        return error_set(err, "uploader: bad ring (%d slots of %zu bytes)", n_slots, slot_bytes);
    Uploader *up = calloc(1, sizeof *up);
    if (!up)
        return error_set(err, "uploader: out of host memory");
    up->n_slots = n_slots;
    up->slot_bytes = slot_bytes;
    up->n_threads = n_threads < 1 ? 1 : n_threads > UPLOAD_MAX_THREADS ? UPLOAD_MAX_THREADS : n_threads;
    *out = up; /* uploader_destroy frees what was made if a step below fails */
    CUDA_TRY(cudaStreamCreateWithFlags(&up->stream, cudaStreamNonBlocking));
    for (int i = 0; i < n_slots; i++) {
        CUDA_TRY(cudaMallocHost(&up->slot[i], slot_bytes));
        CUDA_TRY(cudaEventCreateWithFlags(&up->done[i], cudaEventDisableTiming));
    }
    return 0;
}

typedef struct {
    char *dst;
    const char *src;
    size_t n;
} CopyPart;

static void *copy_part(void *arg) {
    CopyPart *p = arg;
    memcpy(p->dst, p->src, p->n);
    return NULL;
}

/* memcpy split over up to n_threads threads (the source is usually an mmap'd
 * file in the page cache: several threads fault it in faster than one). */
static void parallel_memcpy(void *dst, const void *src, size_t n, int n_threads) {
    if (n < ((size_t)4 << 20) || n_threads <= 1) {
        memcpy(dst, src, n);
        return;
    }
    pthread_t th[UPLOAD_MAX_THREADS];
    CopyPart parts[UPLOAD_MAX_THREADS];
    int started[UPLOAD_MAX_THREADS] = {0};
    size_t per = (n / (size_t)n_threads + 4095) & ~(size_t)4095;
    for (int i = 0; i < n_threads; i++) {
        size_t off = per * (size_t)i;
        parts[i].dst = (char *)dst + off;
        parts[i].src = (const char *)src + off;
        parts[i].n = off >= n ? 0 : (n - off < per ? n - off : per);
        if (i > 0 && parts[i].n > 0)
            started[i] = pthread_create(&th[i], NULL, copy_part, &parts[i]) == 0;
    }
    copy_part(&parts[0]);
    for (int i = 1; i < n_threads; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else if (parts[i].n > 0)
            copy_part(&parts[i]); /* thread creation failed: do it here */
    }
}

int uploader_copy(Uploader *up, void *dst_dev, const void *src_host, size_t bytes, Error *err) {
    size_t off = 0;
    while (off < bytes) {
        int s = up->next;
        up->next = (up->next + 1) % up->n_slots;
        if (up->used[s])
            CUDA_TRY(cudaEventSynchronize(up->done[s]));
        size_t n = bytes - off < up->slot_bytes ? bytes - off : up->slot_bytes;
        parallel_memcpy(up->slot[s], (const char *)src_host + off, n, up->n_threads);
        CUDA_TRY(cudaMemcpyAsync((char *)dst_dev + off, up->slot[s], n, cudaMemcpyHostToDevice, up->stream));
        CUDA_TRY(cudaEventRecord(up->done[s], up->stream));
        up->used[s] = 1;
        off += n;
    }
    up->total += bytes;
    return 0;
}

int uploader_finish(Uploader *up, Error *err) {
    CUDA_TRY(cudaStreamSynchronize(up->stream));
    return 0;
}

size_t uploader_total_bytes(const Uploader *up) {
    return up->total;
}

void uploader_destroy(Uploader *up) {
    if (!up)
        return;
    if (up->stream)
        cudaStreamSynchronize(up->stream);
    for (int i = 0; i < up->n_slots; i++) {
        if (up->slot[i])
            cudaFreeHost(up->slot[i]);
        if (up->done[i])
            cudaEventDestroy(up->done[i]);
    }
    if (up->stream)
        cudaStreamDestroy(up->stream);
    free(up);
}
