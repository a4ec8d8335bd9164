/* BPE of one word, as the `tokenizers` library's Word::merge_all does it:
 * start from one symbol per character (its vocab id, or its bytes' "<0xXX>"
 * pieces when the character is not in the vocab), then repeatedly apply the
 * merge of lowest rank, the leftmost one on ties, until no adjacent pair has a
 * merge. Symbols form a linked list; candidate merges wait in a binary
 * min-heap keyed (rank << 32 | position) and are re-checked when popped, so a
 * word of n characters costs O(n log n). */
#include <stdlib.h>

#include "tokenizer/tokenizer_internal.h"

typedef struct {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
} Symbol;

/* A small direct-mapped cache of pair -> merge lookups: text repeats the same
 * pairs, and the cache (at most 64 KiB) stays in L2 while the merge table
 * (16 MiB) does not. Sized to the text so short encodes stay cheap. */
#define PAIR_CACHE_MAX 4096
#define PAIR_CACHE_MIN 64
typedef struct {
    uint64_t key;  /* as MergeSlot.key; 0 = empty */
    uint32_t rank; /* UINT32_MAX: the pair has no merge */
    int32_t new_id;
} PairCacheEntry;

struct BpeWork {
    Symbol *sym;
    uint64_t *heap;
    size_t cap, heap_len;
    PairCacheEntry *cache;
    int cache_shift; /* 64 - log2(entries): the hash's top bits index the cache */
};

BpeWork *bpe_work_new(size_t text_bytes) {
    BpeWork *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    size_t entries = PAIR_CACHE_MIN;
    int bits = 6;
    while (entries < PAIR_CACHE_MAX && entries < text_bytes / 4)
        entries *= 2, bits++;
    w->cache = calloc(entries, sizeof *w->cache);
    w->cache_shift = 64 - bits;
    if (!w->cache) {
        free(w);
        return NULL;
    }
    return w;
}

void bpe_work_free(BpeWork *w) {
    if (!w)
        return;
    free(w->sym);
    free(w->heap);
    free(w->cache);
    free(w);
}

/* The merge of (left, right): 1 with its rank and new id, or 0. */
static int pair_merge(const Tokenizer *t, BpeWork *w, int32_t left, int32_t right, uint32_t *rank,
                      int32_t *new_id) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    PairCacheEntry *c = &w->cache[(key * 0x9E3779B97F4A7C15ull) >> w->cache_shift];
    if (c->key != key) {
        const MergeSlot *m = tok_merge_find(t, left, right);
        c->key = key;
        c->rank = m ? m->rank : UINT32_MAX;
        c->new_id = m ? m->new_id : -1;
    }
    *rank = c->rank;
    *new_id = c->new_id;
    return c->rank != UINT32_MAX;
}

static int reserve(BpeWork *w, size_t n) {
    if (n <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < n)
        cap *= 2;
    Symbol *s = realloc(w->sym, cap * sizeof *s);
    if (s)
        w->sym = s;
    uint64_t *h = realloc(w->heap, cap * sizeof *h);
    if (h)
        w->heap = h;
    if (!s || !h)
        return -1;
    w->cap = cap;
    return 0;
}

static void heap_push(BpeWork *w, uint64_t v) {
    size_t i = w->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (w->heap[parent] <= v)
            break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = v;
}

static uint64_t heap_pop(BpeWork *w) {
    uint64_t top = w->heap[0], v = w->heap[--w->heap_len];
    size_t n = w->heap_len, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && w->heap[c + 1] < w->heap[c])
            c++;
        if (v <= w->heap[c])
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    w->heap[i] = v;
    return top;
}

/* Queues the merge of the pair starting at symbol `pos`, if there is one.
 * The heap starts with at most n - 1 entries and each merge pops one and
 * pushes at most two, over at most n - 1 merges: 2n entries at most. */
static void queue_pair(const Tokenizer *t, BpeWork *w, int32_t pos) {
    int32_t next = w->sym[pos].next, new_id;
    uint32_t rank;
    if (next >= 0 && pair_merge(t, w, w->sym[pos].id, w->sym[next].id, &rank, &new_id))
        heap_push(w, (uint64_t)rank << 32 | (uint32_t)pos);
}

static int append_id(int32_t **ids, size_t *n_ids, size_t *cap, int32_t id) {
    if (*n_ids == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        int32_t *g = realloc(*ids, c * sizeof *g);
        if (!g)
            return -1;
        *ids = g;
        *cap = c;
    }
    (*ids)[(*n_ids)++] = id;
    return 0;
}

/* Removes the right neighbour of symbol pos, which becomes new_id. */
static void merge_at(BpeWork *w, int32_t pos, int32_t new_id) {
    Symbol *left = &w->sym[pos], *right = &w->sym[left->next];
    left->id = new_id;
    left->next = right->next;
    if (right->next >= 0)
        w->sym[right->next].prev = pos;
    right->id = -1;
}

/* Applies merges, lowest rank first (leftmost on ties), until none is left. */
static void merge_with_heap(const Tokenizer *t, BpeWork *w, int32_t n_sym) {
    w->heap_len = 0;
    for (int32_t k = 0; k + 1 < n_sym; k++)
        queue_pair(t, w, k);
    while (w->heap_len) {
        uint64_t top = heap_pop(w);
        int32_t pos = (int32_t)(uint32_t)top;
        Symbol *left = &w->sym[pos];
        if (left->id < 0 || left->next < 0)
            continue; /* removed, or now last */
        uint32_t rank;
        int32_t new_id;
        if (!pair_merge(t, w, left->id, w->sym[left->next].id, &rank, &new_id) ||
            rank != (uint32_t)(top >> 32))
            continue; /* stale: the pair changed since it was queued */
        merge_at(w, pos, new_id);
        if (left->prev >= 0)
            queue_pair(t, w, left->prev);
        queue_pair(t, w, pos);
    }
}

int bpe_encode_word(const Tokenizer *t, BpeWork *w, const char *word, size_t n, int32_t **ids, size_t *n_ids,
                    size_t *cap) {
    /* At most n symbols (one per byte), and at most 2n heap entries. */
    if (reserve(w, 2 * n + 1))
        return -1;
    const unsigned char *s = (const unsigned char *)word;
    int32_t n_sym = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq_len(s[i]);
        int32_t id = -1;
        if (len == 1)
            id = t->char_id[s[i]];
        else if (len == 2)
            id = t->char_id[(uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F)];
        else if (len == 3)
            id = t->char_id[(uint32_t)(s[i] & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 |
                            (s[i + 2] & 0x3F)];
        else
            id = tok_vocab_find(t, word + i, len);
        if (id >= 0) {
            w->sym[n_sym++].id = id;
        } else {
            for (size_t k = 0; k < len; k++)
                w->sym[n_sym++].id = t->byte_id[s[i + k]];
        }
        i += len;
    }
    for (int32_t k = 0; k < n_sym; k++) {
        w->sym[k].prev = k - 1;
        w->sym[k].next = k + 1 < n_sym ? k + 1 : -1;
    }
    merge_with_heap(t, w, n_sym);
    for (int32_t k = 0; k >= 0 && k < n_sym; k = w->sym[k].next)
        if (append_id(ids, n_ids, cap, w->sym[k].id))
            return -1;
    return 0;
}
