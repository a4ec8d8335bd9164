/* Prefix reuse: the record of what the KV cache holds and the plan (prefix_cache.h). */
#include "engine/prefix_cache.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

ImageHash image_hash_pixels(const float *pixels, size_t n_values) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ImageHash h = {0, 0};
    if (EVP_Digest(pixels, n_values * sizeof *pixels, digest, &len, EVP_sha256(), NULL) != 1 || len < 16)
        return h; /* {0, 0} never matches: image_hash_equal refuses it */
    memcpy(&h.a, digest, 8);
    memcpy(&h.b, digest + 8, 8);
    return h;
}

static int hash_equal(ImageHash x, ImageHash y) {
    return (x.a | x.b) != 0 && x.a == y.a && x.b == y.b;
}

const char *prefix_outcome_name(PrefixOutcome o) {
    switch (o) {
    case PREFIX_COLD_EMPTY:
        return "no cached prefix";
    case PREFIX_COLD_SHORT:
        return "common prefix shorter than one aligned chunk";
    case PREFIX_COLD_RING:
        return "sliding-window ring no longer holds the prefix's window";
    case PREFIX_COLD_LONG:
        return "new part longer than the ring's extra slots";
    case PREFIX_HIT:
        return "hit";
    }
    return "?";
}

/* Start of the image block holding position t (t itself when text). */
static int block_start(const int32_t *image_block, int t) {
    while (t > 0 && image_block[t] >= 0 && image_block[t - 1] == image_block[t])
        t--;
    return t;
}

int prefix_plan(const PrefixRecord *rec, const PrefixGeometry *g, uint64_t tenant, const int32_t *tokens,
                int n, const int32_t *image_block, const ImageHash *images, int n_images,
                PrefixOutcome *outcome) {
    *outcome = PREFIX_COLD_EMPTY;
    if (!rec->valid || rec->tenant != tenant || n < 1)
        return 0;
    /* longest common prefix: equal ids, and an image block only with equal pixels */
    int limit = rec->n_tokens < n ? rec->n_tokens : n, m = 0;
    for (; m < limit; m++) {
        if (tokens[m] != rec->tokens[m] || (image_block[m] >= 0) != (rec->image_block[m] >= 0))
            break;
        int nb = image_block[m], ob = rec->image_block[m];
        if (nb >= 0 && (m == 0 || image_block[m - 1] != nb)) { /* first soft token of a block */
            if (nb >= n_images || ob >= rec->n_images || !hash_equal(images[nb], rec->images[ob]))
                break;
        }
    }
    /* at least one token is prefilled (its logits start the answer); never end inside a block */
    int k = m < n - 1 ? m : n - 1;
    if (k > 0 && image_block[k] >= 0)
        k = block_start(image_block, k);
    if (k == 0)
        return 0;
    /* the continued part: aligned start, enough rows for the GEMMs' row-count-free path */
    k = k / PREFIX_ALIGN * PREFIX_ALIGN;
    while (k > 0 && n - k < PREFIX_MIN_ROWS)
        k -= PREFIX_ALIGN;
    if (k <= 0) {
        *outcome = PREFIX_COLD_SHORT;
        return 0;
    }
    /* a local layer's ring of C slots holds positions >= written - C */
    if (g->window > 0 && g->ring_capacity < g->max_context) {
        int need = k - g->window + 1 > 0 ? k - g->window + 1 : 0;
        if (need < rec->written - g->ring_capacity) {
            *outcome = PREFIX_COLD_RING;
            return 0;
        }
        if (n - k > g->ring_capacity - g->window + 1) {
            *outcome = PREFIX_COLD_LONG;
            return 0;
        }
    }
    *outcome = PREFIX_HIT;
    return k;
}

/* Grows *p to hold n elements of size `size`; 0, or -1. */
static int reserve(void **p, int *cap, int n, size_t size) {
    if (n <= *cap)
        return 0;
    int c = *cap ? *cap : 64;
    while (c < n)
        c *= 2;
    void *grown = realloc(*p, (size_t)c * size);
    if (!grown)
        return -1;
    *p = grown;
    *cap = c;
    return 0;
}

int prefix_record(PrefixRecord *rec, uint64_t tenant, const int32_t *tokens, int n,
                  const int32_t *image_block, const ImageHash *images, int n_images, double now) {
    rec->valid = 0;
    int cap_tokens = rec->cap_tokens;
    if (reserve((void **)&rec->tokens, &cap_tokens, n, sizeof *rec->tokens) != 0)
        return -1;
    if (reserve((void **)&rec->image_block, &rec->cap_tokens, n, sizeof *rec->image_block) != 0)
        return -1;
    if (reserve((void **)&rec->images, &rec->cap_images, n_images > 0 ? n_images : 1, sizeof *rec->images) !=
        0)
        return -1;
    memcpy(rec->tokens, tokens, (size_t)n * sizeof *tokens);
    memcpy(rec->image_block, image_block, (size_t)n * sizeof *image_block);
    if (n_images > 0)
        memcpy(rec->images, images, (size_t)n_images * sizeof *images);
    rec->tenant = tenant;
    rec->n_tokens = n;
    rec->n_images = n_images;
    rec->written = n;
    rec->last_used = now;
    rec->valid = 1;
    return 0;
}

void prefix_forget(PrefixRecord *rec) {
    rec->valid = 0;
    rec->n_tokens = rec->n_images = rec->written = 0;
}

void prefix_record_free(PrefixRecord *rec) {
    free(rec->tokens);
    free(rec->image_block);
    free(rec->images);
    memset(rec, 0, sizeof *rec);
}
