/* The tokenizer side of constrained decoding, built once per tokenizer:
 * every id's byte string (SentencePiece's U+2581 as a space, "<0xXX>" as
 * its byte), the ids sorted by bytes, and a byte trie over them in preorder.
 *
 * Control tokens (added tokens marked special, "<unusedN>", "<mask>",
 * "[multimodal]") and ids that decode to nothing are left out of the trie:
 * a constrained answer never contains them. The end token (<end_of_turn>)
 * is handled by the matcher on its own.
 *
 * Trie layout: node 0 is the root; node k has the edge byte node_byte[k],
 * depth node_depth[k] (bytes from the root), its subtree is the preorder
 * range [k, node_end[k]), and the tokens of that subtree are the sorted ids
 * ids[node_tok[k] .. node_tok[node_end[k]]); the tokens that end exactly at k
 * are ids[node_tok[k] .. node_tok[k + 1]).
 *
 * Ownership: a GrammarVocab is immutable after grammar_vocab_new and may be
 * shared by threads; the Tokenizer is not used after the call. */
#ifndef GRAMMAR_VOCAB_H
#define GRAMMAR_VOCAB_H

#include <stdint.h>

#include "grammar/grammar.h"

#define VOCAB_PLAIN_BITS 32

/* plain_chars value of a token that a string body does not accept. */
#define VOCAB_NOT_PLAIN 255

/* A byte trie over a subset of the ids, in preorder (see above). */
typedef struct {
    uint32_t n_tokens;
    int32_t *ids; /* sorted by bytes */
    uint32_t n_nodes;
    uint8_t *node_byte, *node_depth;
    uint32_t *node_end;
    uint32_t *node_tok; /* [n_nodes + 1], node_tok[n_nodes] = n_tokens */
} VocabTrie;

struct GrammarVocab {
    int n_bits;          /* mask width: logits rows (>= the tokenizer's ids) */
    int32_t end_token;   /* <end_of_turn> */
    uint8_t *is_control; /* [n_bits] 1 for ids never allowed in an answer */
    /* token bytes by id */
    uint8_t *bytes;
    uint32_t *tok_off; /* [n_bits] */
    uint8_t *tok_len;  /* [n_bits] 0 for ids outside the trie */
    VocabTrie all;     /* every id but control ones */
    /* String bodies: a token without '"' and '\\' is accepted inside a JSON
     * string exactly when its bytes are plain characters (the last one may be
     * unfinished); plain_chars[id] counts them (VOCAB_NOT_PLAIN otherwise).
     * plain_ids lists those tokens by count; plain_upto[b] = how many have at
     * most b characters. The tokens with '"' or '\\' are in `quoted`, walked
     * per state. */
    uint8_t *plain_chars;
    int32_t *plain_ids;
    uint32_t plain_upto[256];
    VocabTrie quoted;
    uint32_t quoted_max_len; /* bytes of the longest token in `quoted` */
    /* plain_bits[b]: the bitset of plain tokens of at most b characters, for
     * b <= VOCAB_PLAIN_BITS, and plain_bits[VOCAB_PLAIN_BITS + 1] of all. */
    uint32_t *plain_bits[VOCAB_PLAIN_BITS + 2];
    uint8_t *last_quote; /* [n_bits] offset of the last '"' or '\\' in the token, VOCAB_NO_QUOTE if none */
    double build_ms;
};

#define VOCAB_NO_QUOTE 255

/* Plain characters of s[0..n) (see plain_chars), or VOCAB_NOT_PLAIN. */
uint8_t vocab_plain_count(const uint8_t *s, size_t n);

#endif
