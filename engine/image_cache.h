/* The image-embedding cache (docs/caching.md): the vision tower + projector's
 * output for one image, keyed by (tenant, hash of the preprocessed pixels), so a
 * new question about the same images skips encode_image.
 *
 * Owns: the entries, in host memory only (never written to disk), within a byte
 * budget (MEDGEMMA_IMAGE_CACHE_MB): least recently used entries go first; entries
 * idle longer than the engine's idle time are dropped. Not thread-safe (the engine
 * runs one request at a time). */
#ifndef ENGINE_IMAGE_CACHE_H
#define ENGINE_IMAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/prefix_cache.h"

typedef struct ImageCache ImageCache;

/* NULL when out of memory. budget_bytes 0 = the cache holds nothing. */
ImageCache *image_cache_create(size_t budget_bytes);
void image_cache_destroy(ImageCache *c);

/* 1 and out[0..n_floats) filled when (tenant, hash) is held; else 0. */
int image_cache_get(ImageCache *c, uint64_t tenant, ImageHash hash, float *out, size_t n_floats, double now);
/* Keeps a copy (evicting LRU entries to stay within the budget; nothing when the
 * entry alone is over it or memory runs out). */
void image_cache_put(ImageCache *c, uint64_t tenant, ImageHash hash, const float *embeds, size_t n_floats,
                     double now);
/* Drops entries unused since now - idle_s; returns how many. */
int image_cache_expire(ImageCache *c, double now, double idle_s);
/* Drops everything (MEDGEMMA_PREFIX_CACHE=0 never fills it; tests). */
void image_cache_clear(ImageCache *c);
size_t image_cache_bytes(const ImageCache *c);
int image_cache_entries(const ImageCache *c);

#endif
