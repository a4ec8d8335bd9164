/* The CPU backend's KV cache: per decoder layer, normed+roped K and V rows of
 * kv_heads * head_dim floats. Global layers keep every position (slot = pos,
 * max_context slots); local (sliding-window) layers keep a ring of
 * min(window, max_context) slots, slot = pos % capacity, which holds exactly
 * the keys a query's window allows. Sized once; nothing is allocated later. */
#ifndef ENGINE_KV_CACHE_H
#define ENGINE_KV_CACHE_H

#include <stddef.h>

#include "engine/config.h"
#include "util/error.h"

typedef struct {
    int n_layers;
    int kv_dim;     /* kv_heads * head_dim */
    int *capacity;  /* [n_layers] slots */
    float **k, **v; /* [n_layers][capacity * kv_dim] */
} KvCache;

int kv_cache_init(KvCache *cache, const TextConfig *config, int max_context, Error *err);
void kv_cache_free(KvCache *cache);
size_t kv_cache_bytes(const KvCache *cache);

/* Where position pos's K (or V) row of a layer lives. */
static inline size_t kv_slot(const KvCache *cache, int layer, int pos) {
    return (size_t)(pos % cache->capacity[layer]) * cache->kv_dim;
}

/* How many slots a query at position pos attends to (all of them hold allowed keys). */
static inline int kv_keys(const KvCache *cache, int layer, int pos) {
    return pos + 1 < cache->capacity[layer] ? pos + 1 : cache->capacity[layer];
}

/* Stores the prompt's rows k, v [n, kv_dim] (positions 0..n-1) of a layer:
 * the last `capacity` of them. */
void kv_cache_store_prompt(KvCache *cache, int layer, const float *k, const float *v, int n);

#endif
