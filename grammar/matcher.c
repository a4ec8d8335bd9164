/* One request's constrained decoding state (grammar.h): the set of live
 * stacks, the per-step mask (cached sets ORed, uncertain tokens checked on
 * the real stacks) and token acceptance. */
#include "grammar/grammar_internal.h"

#include <stdlib.h>
#include <string.h>

#include "grammar/stacks.h"

struct GrammarMatcher {
    const Grammar *g;
    StackPool pool;
    StackSet cur, tmp_a, tmp_b;
    int complete; /* the value so far is complete */
    int finished; /* the end token was accepted */
};

GrammarMatcher *grammar_matcher_new(const Grammar *g) {
    GrammarMatcher *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->g = g;
    if (stack_pool_init(&m->pool, &g->au) != 0) {
        free(m);
        return NULL;
    }
    stack_start(&m->pool, g->au.start, STACK_DOC_END, &m->cur);
    m->complete = m->pool.complete;
    if (m->pool.oom || (m->cur.n == 0 && !m->complete)) {
        grammar_matcher_free(m);
        return NULL;
    }
    return m;
}

void grammar_matcher_free(GrammarMatcher *m) {
    if (!m)
        return;
    stack_pool_free(&m->pool);
    stack_set_free(&m->cur);
    stack_set_free(&m->tmp_a);
    stack_set_free(&m->tmp_b);
    free(m);
}

int grammar_matcher_rows(const GrammarMatcher *m) {
    return m->g->vocab->n_bits;
}

int grammar_matcher_is_complete(const GrammarMatcher *m) {
    return m->complete && !m->finished;
}

int grammar_matcher_is_finished(const GrammarMatcher *m) {
    return m->finished;
}

/* Runs bytes from the stacks in `from`; returns 1 when some stack consumes
 * them all (result in *out, which is tmp_a or tmp_b), with *complete set when
 * the value can end right after them. */
static int run_bytes(GrammarMatcher *m, const StackSet *from, const uint8_t *s, size_t n, StackSet **out,
                     int *complete) {
    const StackSet *in = from;
    StackSet *bufs[2] = {&m->tmp_a, &m->tmp_b};
    StackSet *o = bufs[0];
    *complete = 0;
    for (size_t i = 0; i < n; i++) {
        o = bufs[i & 1];
        stack_advance(&m->pool, in, s[i], o);
        *complete = m->pool.complete;
        if (o->n == 0)
            return *complete && i + 1 == n;
        in = o;
    }
    *out = o;
    return 1;
}

/* Is token id (uncertain for node's state) accepted from the stack node? */
static int check_token(GrammarMatcher *m, uint32_t node, int32_t id) {
    const GrammarVocab *v = m->g->vocab;
    StackSet one = {.ids = &node, .n = 1, .cap = 1};
    StackSet *out = NULL;
    int complete;
    return run_bytes(m, &one, v->bytes + v->tok_off[id], v->tok_len[id], &out, &complete);
}

void grammar_matcher_fill_mask(GrammarMatcher *m, uint32_t *mask) {
    const Grammar *g = m->g;
    const GrammarVocab *v = g->vocab;
    uint32_t words = (uint32_t)grammar_mask_words(v);
    memset(mask, 0, words * sizeof *mask);
    if (m->finished)
        return;
    for (uint32_t i = 0; i < m->cur.n; i++) {
        const StateCache *c = grammar_state_cache(g, m->pool.nodes[m->cur.ids[i]].state);
        if (!c)
            continue; /* out of memory: this stack's tokens stay masked */
        if (c->plain_bits) {
            for (uint32_t w = 0; w < words; w++)
                mask[w] |= c->plain_bits[w];
            for (uint32_t j = c->plain_lo; j < c->plain_hi; j++) {
                int32_t id = v->plain_ids[j];
                mask[id >> 5] |= 1u << (id & 31);
            }
        }
        if (c->accepted_bits) {
            for (uint32_t w = 0; w < words; w++)
                mask[w] |= c->accepted_bits[w];
        } else
            for (uint32_t j = 0; j < c->n_accepted; j++) {
                int32_t id = c->accepted_ids[j];
                mask[id >> 5] |= 1u << (id & 31);
            }
    }
    uint32_t keep = m->pool.n;
    for (uint32_t i = 0; i < m->cur.n; i++) {
        uint32_t node = m->cur.ids[i];
        const StateCache *c = grammar_state_cache(g, m->pool.nodes[node].state);
        for (uint32_t j = 0; c && j < c->n_uncertain; j++) {
            int32_t id = c->uncertain_ids[j];
            if (mask[id >> 5] >> (id & 31) & 1)
                continue;
            if (check_token(m, node, id))
                mask[id >> 5] |= 1u << (id & 31);
            stack_rollback(&m->pool, keep);
        }
    }
    if (m->complete)
        mask[v->end_token >> 5] |= 1u << (v->end_token & 31);
}

int grammar_matcher_accept_bytes(GrammarMatcher *m, const char *bytes, size_t n) {
    if (m->finished)
        return -1;
    if (n == 0)
        return 0;
    uint32_t keep = m->pool.n;
    StackSet *out = NULL;
    int complete;
    if (!run_bytes(m, &m->cur, (const uint8_t *)bytes, n, &out, &complete) || m->pool.oom) {
        stack_rollback(&m->pool, keep);
        m->pool.oom = 0;
        return -1;
    }
    /* out is tmp_a or tmp_b (or NULL when the value ended exactly here) */
    m->cur.n = 0;
    if (out) {
        StackSet t = m->cur;
        m->cur = *out;
        *out = t;
    }
    m->complete = complete;
    return 0;
}

int grammar_matcher_accept(GrammarMatcher *m, int32_t token) {
    const GrammarVocab *v = m->g->vocab;
    if (m->finished || token < 0 || token >= v->n_bits)
        return -1;
    if (token == v->end_token) {
        if (!m->complete)
            return -1;
        m->finished = 1;
        return 0;
    }
    if (v->is_control[token] || v->tok_len[token] == 0)
        return -1;
    return grammar_matcher_accept_bytes(m, (const char *)v->bytes + v->tok_off[token], v->tok_len[token]);
}
