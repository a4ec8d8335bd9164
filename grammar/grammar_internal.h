/* The compiled grammar's private layout, shared by grammar/'s files. */
#ifndef GRAMMAR_GRAMMAR_INTERNAL_H
#define GRAMMAR_GRAMMAR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "grammar/automaton.h"
#include "grammar/grammar.h"
#include "grammar/vocab.h"

/* Per automaton state with byte edges: the tokens it accepts whatever the
 * stack below holds (a bitset when that is smaller than an id list), and the
 * uncertain tokens, checked against the real stack at each step. */
typedef struct {
    /* a string body's plain tokens: a vocabulary bitset plus plain_ids[lo..hi) */
    const uint32_t *plain_bits;
    uint32_t plain_lo, plain_hi;
    uint32_t n_accepted;
    uint32_t *accepted_bits; /* [mask words] or NULL */
    int32_t *accepted_ids;   /* [n_accepted] when accepted_bits is NULL */
    uint32_t n_uncertain;
    int32_t *uncertain_ids;
    int shared; /* the lists belong to another state's cache */
} StateCache;

struct Grammar {
    const GrammarVocab *vocab;
    Automaton au;
    StateCache *cache;      /* [au.n_states] */
    _Atomic uint8_t *ready; /* [au.n_states] cache[s] is filled */
    uint8_t *root_frame;    /* [au.n_states] the state is only ever in the bottom frame */
    uint32_t *rule_of;      /* [au.n_states] the rule (frame kind) of each state, 0 = bottom */
    uint32_t (*follow)[8];  /* [rules] bytes a caller may read after the rule returns */
    pthread_mutex_t lazy_lock;
    struct CacheWalk *walk; /* for AU_LAZY states, under lazy_lock */
    GrammarStats stats;
};

/* mask_cache.c: fills g->cache for every state with byte edges but AU_LAZY
 * ones. Fails when deadline_ms (a CLOCK_MONOTONIC time in ms) passes. */
int grammar_build_cache(Grammar *g, double deadline_ms, Error *err);
/* The cache of state s, built now if it is a lazy one (thread-safe); NULL
 * when out of memory. */
const StateCache *grammar_state_cache(const Grammar *g, uint32_t s);
void grammar_free_cache(Grammar *g);
double grammar_now_ms(void);

#endif
