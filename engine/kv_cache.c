/* The CPU backend's KV cache (see kv_cache.h). */
#include "engine/kv_cache.h"

#include <stdlib.h>
#include <string.h>

int kv_cache_init(KvCache *cache, const TextConfig *config, int max_context, Error *err) {
    memset(cache, 0, sizeof *cache);
    cache->n_layers = config->num_layers;
    cache->kv_dim = config->num_kv_heads * config->head_dim;
    cache->capacity = calloc((size_t)config->num_layers, sizeof *cache->capacity);
    cache->k = calloc((size_t)config->num_layers, sizeof *cache->k);
    cache->v = calloc((size_t)config->num_layers, sizeof *cache->v);
    if (!cache->capacity || !cache->k || !cache->v) {
        kv_cache_free(cache);
        return error_set(err, "KV cache: out of memory");
    }
    for (int l = 0; l < config->num_layers; l++) {
        int cap = max_context;
        if (!config->layer_is_global[l] && config->sliding_window < cap)
            cap = config->sliding_window;
        cache->capacity[l] = cap;
        size_t bytes = (size_t)cap * cache->kv_dim * sizeof(float);
        cache->k[l] = malloc(bytes);
        cache->v[l] = malloc(bytes);
        if (!cache->k[l] || !cache->v[l]) {
            kv_cache_free(cache);
            return error_set(err, "KV cache: out of memory (%d positions, layer %d)", max_context, l);
        }
    }
    return 0;
}

void kv_cache_free(KvCache *cache) {
    /* Either array may be NULL here when kv_cache_init ran out of memory. */
    for (int l = 0; l < cache->n_layers; l++) {
        if (cache->k)
            free(cache->k[l]);
        if (cache->v)
            free(cache->v[l]);
    }
    free(cache->k);
    free(cache->v);
    free(cache->capacity);
    memset(cache, 0, sizeof *cache);
}

size_t kv_cache_bytes(const KvCache *cache) {
    size_t total = 0;
    for (int l = 0; l < cache->n_layers; l++)
        total += 2 * (size_t)cache->capacity[l] * cache->kv_dim * sizeof(float);
    return total;
}

void kv_cache_store_prompt(KvCache *cache, int layer, const float *k, const float *v, int n) {
    int first = n - cache->capacity[layer] > 0 ? n - cache->capacity[layer] : 0;
    size_t row = (size_t)cache->kv_dim * sizeof(float);
    for (int p = first; p < n; p++) {
        memcpy(cache->k[layer] + kv_slot(cache, layer, p), k + (size_t)p * cache->kv_dim, row);
        memcpy(cache->v[layer] + kv_slot(cache, layer, p), v + (size_t)p * cache->kv_dim, row);
    }
}
