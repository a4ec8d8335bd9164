/* The image-embedding cache (image_cache.h): a small array of entries, scanned
 * linearly (a budget of a few hundred MB holds ~100 MedGemma images). */
#include "engine/image_cache.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t tenant;
    ImageHash hash;
    float *embeds;
    size_t n_floats;
    double last_used;
    uint64_t tick; /* LRU order (times can tie) */
} Entry;

struct ImageCache {
    Entry *entries;
    int n, cap;
    size_t bytes, budget;
    uint64_t tick;
};

ImageCache *image_cache_create(size_t budget_bytes) {
    ImageCache *c = calloc(1, sizeof *c);
    if (c)
        c->budget = budget_bytes;
    return c;
}

static void drop(ImageCache *c, int i) {
    c->bytes -= c->entries[i].n_floats * sizeof(float);
    /* each entry owns its copy; the analyzer loses track of the moved last entry */
    free(c->entries[i].embeds); // NOLINT(clang-analyzer-unix.Malloc)
    c->n--;
    if (i < c->n)
        c->entries[i] = c->entries[c->n];
}

void image_cache_clear(ImageCache *c) {
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        free(c->entries[i].embeds);
    c->n = 0;
    c->bytes = 0;
}

void image_cache_destroy(ImageCache *c) {
    if (!c)
        return;
    image_cache_clear(c);
    free(c->entries);
    free(c);
}

static int find(const ImageCache *c, uint64_t tenant, ImageHash hash) {
    for (int i = 0; i < c->n; i++)
        if (c->entries[i].tenant == tenant && c->entries[i].hash.a == hash.a &&
            c->entries[i].hash.b == hash.b)
            return i;
    return -1;
}

int image_cache_get(ImageCache *c, uint64_t tenant, ImageHash hash, float *out, size_t n_floats, double now) {
    int i = find(c, tenant, hash);
    if (i < 0 || c->entries[i].n_floats != n_floats)
        return 0;
    memcpy(out, c->entries[i].embeds, n_floats * sizeof *out);
    c->entries[i].tick = ++c->tick;
    c->entries[i].last_used = now;
    return 1;
}

void image_cache_put(ImageCache *c, uint64_t tenant, ImageHash hash, const float *embeds, size_t n_floats,
                     double now) {
    size_t bytes = n_floats * sizeof(float);
    if (bytes > c->budget || (hash.a | hash.b) == 0 || find(c, tenant, hash) >= 0)
        return;
    while (c->n > 0 && c->bytes + bytes > c->budget) { /* evict the least recently used */
        int lru = 0;
        for (int i = 1; i < c->n; i++)
            if (c->entries[i].tick < c->entries[lru].tick)
                lru = i;
        drop(c, lru);
    }
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        Entry *grown = realloc(c->entries, (size_t)cap * sizeof *grown);
        if (!grown)
            return;
        c->entries = grown;
        c->cap = cap;
    }
    float *copy = malloc(bytes);
    if (!copy)
        return;
    memcpy(copy, embeds, bytes);
    c->entries[c->n++] = (Entry){tenant, hash, copy, n_floats, now, ++c->tick};
    c->bytes += bytes;
}

int image_cache_expire(ImageCache *c, double now, double idle_s) {
    int dropped = 0;
    for (int i = c->n - 1; i >= 0; i--)
        if (now - c->entries[i].last_used > idle_s) {
            drop(c, i);
            dropped++;
        }
    return dropped;
}

size_t image_cache_bytes(const ImageCache *c) {
    return c ? c->bytes : 0;
}

int image_cache_entries(const ImageCache *c) {
    return c ? c->n : 0;
}
