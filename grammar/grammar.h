/* Constrained decoding: a JSON schema compiled to a byte automaton, and the
 * per-step mask of the tokens that can continue a valid answer.
 *
 *   GrammarVocab    once per tokenizer (vocab.c): token bytes and a byte trie.
 *   Grammar         once per schema (schema.c -> automaton; mask_cache.c): the
 *                   automaton plus, for every automaton state, the tokens that
 *                   state accepts whatever the stack below it holds, and the
 *                   few "uncertain" tokens whose fate depends on the stack
 *                   (xgrammar's adaptive token-mask cache idea).
 *   GrammarMatcher  once per request (matcher.c): the current set of stacks;
 *                   fill_mask ORs the cached sets and checks only the
 *                   uncertain tokens; accept advances by one token.
 *
 * The schema subset, the regex subset of "pattern", the whitespace policy
 * (compact: no whitespace between JSON tokens) and the limits are documented
 * in grammar/README.md. The answer's end (<end_of_turn>) is allowed exactly
 * when the value is complete; control tokens never are.
 *
 * Ownership: GrammarVocab and Grammar are immutable after creation and may be
 * shared by threads (a Grammar keeps a pointer to its vocab: free the vocab
 * last). A GrammarMatcher belongs to one request. */
#ifndef GRAMMAR_GRAMMAR_H
#define GRAMMAR_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

typedef struct GrammarVocab GrammarVocab;
typedef struct Grammar Grammar;
typedef struct GrammarMatcher GrammarMatcher;

/* Limits on what a schema may ask for; each has a default (grammar_limits_default). */
typedef struct {
    size_t max_schema_bytes; /* 256 KiB */
    int max_depth;           /* nesting of the schema document: 64 */
    int max_enum;            /* values of one enum (or anyOf branches): 1024 */
    uint32_t max_states;     /* automaton states: 200000 */
    double max_compile_ms;   /* wall time of one compile: 2000 ms */
} GrammarLimits;

void grammar_limits_default(GrammarLimits *limits);

/* Default thinking budget (tokens of a <unused94>...<unused95> trace before
 * <unused95> is forced) when a constrained request does not give one. */
#define GRAMMAR_DEFAULT_THINKING_BUDGET 1024
/* MedGemma's thinking trace markers. */
#define GRAMMAR_THINK_OPEN 100  /* <unused94> */
#define GRAMMAR_THINK_CLOSE 101 /* <unused95> */

/* n_rows: the model's logits rows (262208 for MedGemma, 262144 for the
 * Gemma 3 270M; tokenizer ids past them are never allowed). end_token: the id allowed when the value is
 * complete
 * (<end_of_turn>, 106). */
int grammar_vocab_new(GrammarVocab **out, const Tokenizer *tokenizer, int n_rows, int32_t end_token,
                      Error *err);
void grammar_vocab_free(GrammarVocab *vocab);
/* Words of a token mask (32 ids per word). */
int grammar_mask_words(const GrammarVocab *vocab);

/* Compiles a JSON schema (text). A schema using anything outside the subset
 * fails with a message naming the keyword and its JSON path, e.g.
 * "unsupported keyword 'oneOf' at $.properties.x". limits may be NULL. */
int grammar_compile_schema(Grammar **out, const GrammarVocab *vocab, const char *schema, size_t len,
                           const GrammarLimits *limits, Error *err);
/* Any JSON object (response_format {"type": "json_object"}). */
int grammar_compile_any_object(Grammar **out, const GrammarVocab *vocab, Error *err);
void grammar_free(Grammar *grammar);

typedef struct {
    uint32_t n_states;        /* automaton states */
    uint32_t n_cached_states; /* states with a token cache */
    uint64_t n_uncertain;     /* uncertain tokens over all states */
    double build_ms;          /* schema -> automaton */
    double cache_ms;          /* token-mask cache */
} GrammarStats;
void grammar_stats(const Grammar *grammar, GrammarStats *stats);

GrammarMatcher *grammar_matcher_new(const Grammar *grammar); /* NULL on out of memory */
void grammar_matcher_free(GrammarMatcher *m);
/* Logits rows the matcher's masks cover (the vocab's n_rows). */
int grammar_matcher_rows(const GrammarMatcher *m);
/* Fills mask (grammar_mask_words words): bit i set when id i may come next. */
void grammar_matcher_fill_mask(GrammarMatcher *m, uint32_t *mask);
/* Advances by one token; returns 0, or -1 when the token is not allowed
 * (the matcher is then unchanged). */
int grammar_matcher_accept(GrammarMatcher *m, int32_t token);
/* Advances by raw bytes (tests, validation); same contract as accept. */
int grammar_matcher_accept_bytes(GrammarMatcher *m, const char *bytes, size_t n);
/* 1 when the value so far is complete (the end token is allowed). */
int grammar_matcher_is_complete(const GrammarMatcher *m);
/* 1 when the end token was accepted. */
int grammar_matcher_is_finished(const GrammarMatcher *m);

/* logits[i] = -inf for every i < n whose mask bit is clear. */
void grammar_mask_logits(const uint32_t *mask, float *logits, int n);

#endif
