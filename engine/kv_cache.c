/* The forward pass's KV cache (see kv_cache.h). */
#include "engine/kv_cache.h"

#include <stdlib.h>
#include <string.h>

int kv_cache_init(KvCache *cache, const Ops *ops, const TextConfig *config, int max_context, int ring_extra,
                  Error *err) {
    memset(cache, 0, sizeof *cache);
    cache->layers = calloc((size_t)config->num_layers, sizeof *cache->layers);
    if (!cache->layers)
        return error_set(err, "KV cache: out of memory");
    cache->n_layers = config->num_layers;
    int kv_dim = config->num_kv_heads * config->head_dim;
    for (int l = 0; l < config->num_layers; l++) {
        KvLayer *kv = &cache->layers[l];
        kv->capacity = max_context;
        if (!config->layer_is_global[l] && config->sliding_window + ring_extra < kv->capacity)
            kv->capacity = config->sliding_window + ring_extra;
        kv->k = ops->alloc(ops->ctx, kv->capacity, kv_dim, ALLOC_ACTIVATIONS);
        kv->v = ops->alloc(ops->ctx, kv->capacity, kv_dim, ALLOC_ACTIVATIONS);
        if (!kv->k.data || !kv->v.data) {
            kv_cache_free(cache, ops);
            return error_set(err, "KV cache: out of memory (%d positions, layer %d)", max_context, l);
        }
    }
    return 0;
}

void kv_cache_free(KvCache *cache, const Ops *ops) {
    for (int l = 0; l < cache->n_layers; l++) {
        ops->free_tensor(ops->ctx, &cache->layers[l].k);
        ops->free_tensor(ops->ctx, &cache->layers[l].v);
    }
    free(cache->layers);
    memset(cache, 0, sizeof *cache);
}
