/* The KV cache of the forward pass (engine/forward.c): per decoder layer, normed
 * + roped K and V rows of kv_heads * head_dim values in the backend's tensors
 * (kernels/ops.h KvLayer). Global layers keep every position (slot = pos,
 * max_context slots); local (sliding-window) layers keep a ring of
 * min(window, max_context) slots, slot = pos % capacity, which holds exactly the
 * keys a query's window allows. Sized once; nothing is allocated later. */
#ifndef ENGINE_KV_CACHE_H
#define ENGINE_KV_CACHE_H

#include <stddef.h>

#include "engine/config.h"
#include "kernels/ops.h"
#include "util/error.h"

typedef struct {
    int n_layers;
    KvLayer *layers; /* [n_layers] */
} KvCache;

int kv_cache_init(KvCache *cache, const Ops *ops, const TextConfig *config, int max_context, Error *err);
void kv_cache_free(KvCache *cache, const Ops *ops);

#endif
