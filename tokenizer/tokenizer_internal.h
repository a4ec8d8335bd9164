/* The Tokenizer's private layout, shared by the files of tokenizer/ only
 * (tokenizer_load.c builds it, bpe.c, tokenizer.c and token_stream.c read it).
 * Everything is immutable after loading. */
#ifndef TOKENIZER_TOKENIZER_INTERNAL_H
#define TOKENIZER_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* Per-id flags. */
enum {
    TOK_IN_MODEL = 1, /* in model.vocab (BPE may produce it) */
    TOK_ADDED = 2,    /* in added_tokens */
    TOK_SPECIAL = 4,  /* an added token marked "special" (skipped by skip_special) */
    TOK_BYTE = 8,     /* decodes as one raw byte (ByteFallback "<0xXX>"), value in byte_value */
};

/* One merge of the BPE model: pair (left, right) -> new id, with its rank. */
typedef struct {
    uint64_t key; /* (left << 32 | right) + 1; 0 marks an empty slot */
    uint32_t rank;
    int32_t new_id;
} MergeSlot;

/* A model.vocab hash slot: the piece's first bytes are kept inline so that
 * most lookups touch one cache line (loading does 1.5 million of them). */
#define VOCAB_HEAD 20
typedef struct {
    uint32_t tag;       /* high half of the piece's hash */
    uint32_t id_plus_1; /* 0 = empty slot */
    uint32_t len;
    char head[VOCAB_HEAD]; /* the piece's first bytes (the rest is in pieces) */
} VocabSlot;

/* Added tokens, matched on the raw text by walking a byte trie. */
typedef struct {
    uint32_t *edge_keys; /* (node << 8 | byte) + 1, 0 = empty slot */
    uint32_t *edge_child;
    uint32_t edge_mask;
    int32_t *node_token; /* id of the added token ending at a node, or -1 */
    uint32_t n_nodes;
    uint8_t first_byte[256]; /* 1 when some added token starts with this byte */
} AddedTrie;

struct Tokenizer {
    int n_ids;
    char *pieces;           /* every piece, NUL-terminated, back to back */
    uint32_t *piece_off;    /* [n_ids] offset into pieces, UINT32_MAX for an unused id */
    uint32_t *piece_len;    /* [n_ids] */
    uint8_t *flags;         /* [n_ids] TOK_* */
    uint8_t *byte_value;    /* [n_ids] the byte of a TOK_BYTE id */
    VocabSlot *vocab_slots; /* model.vocab: open-addressing hash of piece -> id */
    uint32_t vocab_mask;
    MergeSlot *merges;
    uint32_t merge_mask;
    int32_t *char_id;     /* [0x10000] model id of a one-character piece by code point, -1 if none */
    int32_t byte_id[256]; /* byte-fallback piece "<0xXX>" of each byte */
    AddedTrie added;
    /* Normalizer Replace (NULL when there is no normalizer). */
    char *norm_from, *norm_to;
    size_t norm_from_len, norm_to_len;
    /* Pre-tokenizer Split, MergedWithPrevious (NULL when none). */
    char *split_pattern;
    size_t split_pattern_len;
    /* Decoder Replace applied to each token before ByteFallback and Fuse. */
    char *dec_from, *dec_to;
    size_t dec_from_len, dec_to_len;
    int32_t bos_id; /* post-processor's leading special token, -1 when none */
};

/* ---- vocab_load.c: model.vocab and model.merges */
#define TOK_MAX_IDS (1 << 24)
#define TOK_MAX_TEXT_BYTES (1 << 30) /* BPE positions are 32-bit */
uint64_t tok_hash_bytes(const char *s, size_t n);
uint32_t tok_pow2_at_least(size_t n);
/* model.vocab's entries as read, before the id count is known. */
typedef struct {
    int32_t id;
    uint32_t off, len; /* the piece, in t->pieces */
} VocabEntry;
/* Reads the object at [p, end) into t->pieces (from *arena_len on, which it
 * advances; t->pieces has room for end - p more bytes) and a malloc'd entry
 * list. */
int tok_read_vocab(Tokenizer *t, const char *p, const char *end, size_t *arena_len, VocabEntry **entries,
                   size_t *n_entries, int32_t *max_id, Error *err);
/* Fills piece_off/piece_len/flags (arrays of n_ids) and the vocab hash. */
int tok_index_vocab(Tokenizer *t, const VocabEntry *e, size_t n, Error *err);
/* Reads the merges array at [p, end) into the merge hash (vocab indexed first). */
int tok_read_merges(Tokenizer *t, const char *p, const char *end, Error *err);
/* model.vocab lookup: id, or -1. */
int32_t tok_vocab_find(const Tokenizer *t, const char *s, size_t n);
/* Merge lookup: the slot of pair (left, right), or NULL. */
static inline const MergeSlot *tok_merge_find(const Tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (uint32_t i = (uint32_t)(h >> 40) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const MergeSlot *s = &t->merges[i];
        if (s->key == key)
            return s;
        if (s->key == 0)
            return NULL;
    }
}
/* Longest added token starting at text[0..n): its id and byte length, or -1. */
int32_t tok_added_match(const AddedTrie *a, const char *text, size_t n, size_t *match_len);

/* BPE of one pre-tokenized word (UTF-8, already normalized): appends its ids
 * to *ids (growing *cap). Returns 0 or -1 on out of memory. */
typedef struct BpeWork BpeWork;
BpeWork *bpe_work_new(size_t text_bytes); /* sizes its caches to the text */
void bpe_work_free(BpeWork *w);
int bpe_encode_word(const Tokenizer *t, BpeWork *w, const char *word, size_t n, int32_t **ids, size_t *n_ids,
                    size_t *cap);

/* Decoding one id: appends its text to out, holding byte-fallback pieces in
 * run until the run ends (HF decodes a run as UTF-8 if it is valid, else as
 * one U+FFFD per byte). Returns 0 or -1 on out of memory. */
#include "tokenizer/json_text.h"
int tok_decode_id(const Tokenizer *t, int32_t id, int skip_special, JsonBuf *out, JsonBuf *run);
int tok_decode_end_run(JsonBuf *out, JsonBuf *run);
/* Offset of the first byte that is not valid UTF-8 (Rust's rules), or n. */
size_t tok_utf8_check(const unsigned char *s, size_t n);

/* Length of the UTF-8 sequence starting with byte c (1 for an invalid lead). */
static inline size_t utf8_seq_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

#endif
