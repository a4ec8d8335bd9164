/* Host -> device upload of the weights through a ring of pinned buffers.
 *
 * Never cudaMemcpy straight from an mmap'd checkpoint (page faults serialize
 * the DMA): each piece is copied by several threads from the mapping into a
 * pinned slot, then cudaMemcpyAsync'd on a copy stream while the next slot
 * fills. An event per slot says when it may be reused.
 *
 * Owns: the pinned slots, the copy stream, the events. */
#ifndef ENGINE_CUDA_UPLOAD_H
#define ENGINE_CUDA_UPLOAD_H

#include <stddef.h>

#include "util/error.h"

typedef struct Uploader Uploader;

/* n_slots pinned buffers of slot_bytes; n_threads host threads per memcpy. On
 * failure *out may hold a partly built uploader: pass it to uploader_destroy. */
int uploader_create(Uploader **out, size_t slot_bytes, int n_slots, int n_threads, Error *err);
/* Queues dst_dev[0..bytes) = src_host[0..bytes). src_host may be reused as soon as this returns. */
int uploader_copy(Uploader *up, void *dst_dev, const void *src_host, size_t bytes, Error *err);
/* Waits until every queued copy reached the device. */
int uploader_finish(Uploader *up, Error *err);
void uploader_destroy(Uploader *up);
/* Bytes copied so far. */
size_t uploader_total_bytes(const Uploader *up);

#endif
