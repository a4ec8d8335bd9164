/* model.vocab and model.merges of tokenizer.json: a purpose-built scanner
 * reads them straight into flat arrays and open-addressing hash tables.
 *
 * This is most of the load time (1.5 million piece lookups for 514906
 * merges), and each lookup is a cache miss in a 16 MB table, so lookups run
 * in batches: hash a batch, prefetch its slots, then probe, letting the
 * memory system fetch many slots at once instead of one after another. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/json_text.h"
#include "tokenizer/tokenizer_internal.h"

#define BATCH 64

uint64_t tok_hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n, v;
    while (n >= 8) {
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    v = 0;
    memcpy(&v, s, n);
    h ^= v; /* murmur3's 64-bit finalizer: every input bit reaches every output bit */
    h = (h ^ (h >> 33)) * 0xFF51AFD7ED558CCDull;
    h = (h ^ (h >> 33)) * 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 33);
}

uint32_t tok_pow2_at_least(size_t n) {
    uint32_t c = 1;
    while (c < n)
        c <<= 1;
    return c;
}

static int slot_matches(const Tokenizer *t, const VocabSlot *v, uint32_t tag, const char *s, size_t n) {
    if (v->tag != tag || v->len != n)
        return 0;
    size_t head = n < VOCAB_HEAD ? n : VOCAB_HEAD;
    int32_t id = (int32_t)v->id_plus_1 - 1;
    return memcmp(v->head, s, head) == 0 &&
           (n == head || memcmp(t->pieces + t->piece_off[id] + head, s + head, n - head) == 0);
}

/* The slot holding s (hash h), or the empty slot where it would go. */
static VocabSlot *vocab_slot(const Tokenizer *t, const char *s, size_t n, uint64_t h) {
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
        VocabSlot *v = &t->vocab_slots[i];
        if (v->id_plus_1 == 0 || slot_matches(t, v, tag, s, n))
            return v;
    }
}

int32_t tok_vocab_find(const Tokenizer *t, const char *s, size_t n) {
    return (int32_t)vocab_slot(t, s, n, tok_hash_bytes(s, n))->id_plus_1 - 1;
}

static void prefetch_vocab(const Tokenizer *t, uint64_t h) {
    __builtin_prefetch(&t->vocab_slots[(uint32_t)h & t->vocab_mask]);
}

/* ---- model.vocab */

int tok_read_vocab(Tokenizer *t, const char *p, const char *end, size_t *arena_len, VocabEntry **entries,
                   size_t *n_entries, int32_t *max_id, Error *err) {
    size_t cap = 1 << 16, n = 0, room = (size_t)(end - p);
    VocabEntry *e = malloc(cap * sizeof *e);
    if (!e)
        return error_set(err, "out of memory reading model.vocab");
    p = json_skip_ws(p + 1, end); /* after '{' */
    if (p < end && *p == '}')
        p = end;
    int rc = 0;
    while (p < end) {
        size_t len;
        const char *q = json_string_read(p, end, t->pieces + *arena_len, room, &len);
        if (!q) {
            rc = error_set(err, "model.vocab: bad piece string after %zu entries", n);
            break;
        }
        p = json_skip_ws(q, end);
        if (p >= end || *p != ':') {
            rc = error_set(err, "model.vocab: expected ':' after entry %zu", n);
            break;
        }
        char *num_end;
        long id = strtol(p + 1, &num_end, 10);
        if (num_end == p + 1 || num_end > end || id < 0 || id >= TOK_MAX_IDS) {
            rc = error_set(err, "model.vocab: entry %zu has no id in 0..%d", n, TOK_MAX_IDS - 1);
            break;
        }
        if (n == cap) {
            VocabEntry *g = realloc(e, 2 * cap * sizeof *e);
            if (!g) {
                rc = error_set(err, "out of memory reading model.vocab");
                break;
            }
            e = g;
            cap *= 2;
        }
        e[n++] = (VocabEntry){(int32_t)id, (uint32_t)*arena_len, (uint32_t)len};
        t->pieces[*arena_len + len] = '\0';
        *arena_len += len + 1;
        room -= len + 1;
        if (id > *max_id)
            *max_id = (int32_t)id;
        p = json_skip_ws(num_end, end);
        if (p < end && *p == ',') {
            p = json_skip_ws(p + 1, end);
        } else if (p < end && *p == '}') {
            break;
        } else {
            rc = error_set(err, "model.vocab: expected ',' or '}' after entry %zu", n);
            break;
        }
    }
    if (rc) {
        free(e);
        return -1;
    }
    *entries = e;
    *n_entries = n;
    return 0;
}

int tok_index_vocab(Tokenizer *t, const VocabEntry *e, size_t n, Error *err) {
    t->vocab_mask = tok_pow2_at_least(n + n / 2 + 2) - 1;
    size_t bytes = ((size_t)t->vocab_mask + 1) * sizeof *t->vocab_slots;
    t->vocab_slots = aligned_alloc(64, bytes); /* a slot never straddles two cache lines */
    if (!t->vocab_slots)
        return error_set(err, "out of memory indexing model.vocab");
    memset(t->vocab_slots, 0, bytes);
    uint64_t hash[BATCH];
    for (size_t base = 0; base < n; base += BATCH) {
        size_t m = n - base < BATCH ? n - base : BATCH;
        for (size_t k = 0; k < m; k++) {
            hash[k] = tok_hash_bytes(t->pieces + e[base + k].off, e[base + k].len);
            prefetch_vocab(t, hash[k]);
        }
        for (size_t k = 0; k < m; k++) {
            const VocabEntry *v = &e[base + k];
            const char *s = t->pieces + v->off;
            if (t->flags[v->id] & TOK_IN_MODEL)
                return error_set(err, "model.vocab: id %d is used by two pieces", v->id);
            VocabSlot *slot = vocab_slot(t, s, v->len, hash[k]);
            if (slot->id_plus_1)
                return error_set(err, "model.vocab: piece \"%.40s\" appears twice", s);
            t->piece_off[v->id] = v->off;
            t->piece_len[v->id] = v->len;
            t->flags[v->id] |= TOK_IN_MODEL;
            slot->tag = (uint32_t)(hash[k] >> 32);
            slot->id_plus_1 = (uint32_t)v->id + 1;
            slot->len = v->len;
            memcpy(slot->head, s, v->len < VOCAB_HEAD ? v->len : VOCAB_HEAD);
        }
    }
    return 0;
}

/* ---- model.merges */

/* A batch of merges as parsed: strings a, b and a + b in one arena. */
typedef struct {
    char *arena;
    size_t len, cap;
    size_t a[BATCH], a_len[BATCH], b[BATCH], b_len[BATCH], joined[BATCH];
    uint64_t ha[BATCH], hb[BATCH], hj[BATCH];
    int n;
} MergeBatch;

/* Merges are collected first (their count is known only at the end), then
 * indexed. */
typedef struct {
    MergeSlot *items;
    size_t n, cap;
} MergeList;

#define MAX_PIECE_LITERAL (1 << 16)

static int merge_piece_id(const Tokenizer *t, const char *s, size_t n, uint64_t h, size_t rank, Error *err) {
    int32_t id = (int32_t)vocab_slot(t, s, n, h)->id_plus_1 - 1;
    if (id < 0)
        error_set(err, "model.merges[%zu]: \"%.*s\" is not in model.vocab", rank, (int)(n > 40 ? 40 : n), s);
    return id;
}

/* Resolves a parsed batch to (a, b) -> a + b ids in three prefetched passes. */
static int resolve_batch(const Tokenizer *t, MergeBatch *b, MergeList *list, Error *err) {
    char *A = b->arena;
    for (int k = 0; k < b->n; k++) {
        b->ha[k] = tok_hash_bytes(A + b->a[k], b->a_len[k]);
        b->hb[k] = tok_hash_bytes(A + b->b[k], b->b_len[k]);
        prefetch_vocab(t, b->ha[k]);
        prefetch_vocab(t, b->hb[k]);
        b->hj[k] = tok_hash_bytes(A + b->joined[k], b->a_len[k] + b->b_len[k]);
        prefetch_vocab(t, b->hj[k]);
    }
    if (list->cap - list->n < (size_t)b->n) {
        size_t cap = list->cap ? 2 * list->cap : 1 << 16;
        MergeSlot *g = realloc(list->items, cap * sizeof *g);
        if (!g)
            return error_set(err, "out of memory reading model.merges");
        list->items = g;
        list->cap = cap;
    }
    for (int k = 0; k < b->n; k++) {
        size_t rank = list->n;
        int32_t ia = merge_piece_id(t, A + b->a[k], b->a_len[k], b->ha[k], rank, err);
        int32_t ib = ia < 0 ? -1 : merge_piece_id(t, A + b->b[k], b->b_len[k], b->hb[k], rank, err);
        int32_t inew =
            ib < 0 ? -1 : merge_piece_id(t, A + b->joined[k], b->a_len[k] + b->b_len[k], b->hj[k], rank, err);
        if (inew < 0)
            return -1;
        list->items[list->n++] =
            (MergeSlot){((uint64_t)(uint32_t)ia << 32 | (uint32_t)ib) + 1, (uint32_t)rank, inew};
    }
    b->n = 0;
    b->len = 0;
    return 0;
}

/* Parses one element, ["a", "b"] or the legacy "a b", into the batch. */
static const char *parse_merge(MergeBatch *b, const char *p, const char *end) {
    if (b->cap - b->len < 4 * MAX_PIECE_LITERAL) {
        size_t cap = b->cap + 4 * MAX_PIECE_LITERAL + BATCH * 64;
        char *g = realloc(b->arena, cap);
        if (!g)
            return NULL;
        b->arena = g;
        b->cap = cap;
    }
    char *a = b->arena + b->len, *second = a + MAX_PIECE_LITERAL;
    size_t a_len = 0, b_len = 0;
    const char *q;
    if (*p == '[') {
        q = json_string_read(json_skip_ws(p + 1, end), end, a, MAX_PIECE_LITERAL, &a_len);
        q = q ? json_skip_ws(q, end) : NULL;
        q = q && *q == ','
                ? json_string_read(json_skip_ws(q + 1, end), end, second, MAX_PIECE_LITERAL, &b_len)
                : NULL;
        q = q ? json_skip_ws(q, end) : NULL;
        q = q && *q == ']' ? q + 1 : NULL;
    } else {
        size_t len;
        q = json_string_read(p, end, a, MAX_PIECE_LITERAL, &len);
        const char *sp = q ? memchr(a, ' ', len) : NULL;
        if (!sp)
            return NULL;
        a_len = (size_t)(sp - a);
        b_len = len - a_len - 1;
        memmove(second, sp + 1, b_len);
    }
    if (!q)
        return NULL;
    /* Lay out a | b | a + b contiguously. */
    memmove(a + a_len, second, b_len);
    memcpy(a + a_len + b_len, a, a_len);
    memcpy(a + 2 * a_len + b_len, a + a_len, b_len);
    int k = b->n++;
    b->a[k] = b->len;
    b->a_len[k] = a_len;
    b->b[k] = b->len + a_len;
    b->b_len[k] = b_len;
    b->joined[k] = b->len + a_len + b_len;
    b->len += 2 * (a_len + b_len);
    return q;
}

/* A repeated pair takes the later rank, as the Rust library's HashMap insert
 * does. */
static int index_merges(Tokenizer *t, const MergeList *list, Error *err) {
    t->merge_mask = tok_pow2_at_least(2 * list->n + 2) - 1;
    t->merges = calloc((size_t)t->merge_mask + 1, sizeof *t->merges);
    if (!t->merges)
        return error_set(err, "out of memory indexing model.merges");
    uint32_t first[BATCH];
    for (size_t base = 0; base < list->n; base += BATCH) {
        size_t m = list->n - base < BATCH ? list->n - base : BATCH;
        for (size_t k = 0; k < m; k++) {
            uint64_t key = list->items[base + k].key;
            first[k] = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & t->merge_mask;
            __builtin_prefetch(&t->merges[first[k]], 1);
        }
        for (size_t k = 0; k < m; k++) {
            uint64_t key = list->items[base + k].key;
            uint32_t i = first[k];
            while (t->merges[i].key && t->merges[i].key != key)
                i = (i + 1) & t->merge_mask;
            t->merges[i] = list->items[base + k];
        }
    }
    return 0;
}

int tok_read_merges(Tokenizer *t, const char *p, const char *end, Error *err) {
    MergeBatch batch = {0};
    MergeList list = {0};
    p = json_skip_ws(p + 1, end);
    int rc = 0;
    while (rc == 0 && p < end && *p != ']') {
        const char *q = parse_merge(&batch, p, end);
        if (!q) {
            rc = error_set(err, "model.merges[%zu] is not a pair of piece strings", list.n + (size_t)batch.n);
            break;
        }
        if (batch.n == BATCH)
            rc = resolve_batch(t, &batch, &list, err);
        p = json_skip_ws(q, end);
        if (p < end && *p == ',')
            p = json_skip_ws(p + 1, end);
        else if (p >= end || *p != ']')
            rc = error_set(err, "model.merges: expected ',' or ']' after entry %zu",
                           list.n + (size_t)batch.n - 1);
    }
    if (rc == 0 && batch.n)
        rc = resolve_batch(t, &batch, &list, err);
    free(batch.arena);
    if (rc == 0)
        rc = index_merges(t, &list, err);
    free(list.items);
    return rc;
}
