/* The adaptive token-mask cache (grammar_internal.h), built at compile.
 *
 * For each automaton state s with byte edges, the token trie is walked in
 * preorder from the stack (s, STACK_CONTEXT): the caller below s is unknown.
 * A token is
 *   accepted   when some path consumes all its bytes without popping s's
 *              frame (or pops it exactly at the token's end),
 *   uncertain  when no path consumes it inside, but some path popped s's
 *              frame before its end (the rest depends on the caller),
 *   rejected   otherwise.
 * A subtree whose prefix is rejected is skipped whole. Where the walk stands
 * in a string body (automaton.h's plain budget), the tokens below are decided
 * one by one: a rest without '"' or '\\' by its count of plain characters
 * (vocab.h), the others by running their bytes; a state that is itself a
 * string body takes the quote-free tokens from the vocabulary's by-count list
 * and walks only the trie of tokens with '"' or '\\'. Speculative stack nodes
 * are rolled back level by level, so the pool stays small. */
#include "grammar/grammar_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <time.h>

#include "grammar/stacks.h"

double grammar_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct {
    int32_t *ids;
    size_t n, cap;
} IdList;

static int ids_add(IdList *l, int32_t id) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        int32_t *ids = realloc(l->ids, cap * sizeof *ids);
        if (!ids)
            return -1;
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return 0;
}

static int ids_add_range(IdList *l, const int32_t *ids, uint32_t lo, uint32_t hi) {
    int rc = 0;
    for (uint32_t i = lo; i < hi; i++)
        rc |= ids_add(l, ids[i]);
    return rc;
}

enum { REJECTED, ACCEPTED, UNCERTAIN };

/* One walk's working memory, reused for every state. */
typedef struct CacheWalk {
    StackPool pool;
    StackSet level[256];    /* level[d]: stacks after d bytes */
    uint8_t escaped[256];   /* some path popped the frame before depth d, and a caller could read on */
    uint8_t ended_at[256];  /* some path popped the frame right after d bytes */
    const uint32_t *follow; /* [8] bytes a caller of the walked state's rule may read after it returns */
    uint32_t pool_mark[256];
    StackSet sim[2];
    uint8_t *quote_only; /* [n_states] every byte edge reads '"' or '\\' */
    IdList acc, unc;
    uint32_t plain_budget; /* > 0: a string body's plain tokens of at most this many characters */
} Walk;

/* When the stacks in set act on quote-free text exactly as one string body
 * does (one body state; the others read only '"' or '\\'), its budget. */
static int body_budget(const Grammar *g, const Walk *w, const StackSet *set, uint32_t *budget) {
    int found = 0;
    for (uint32_t i = 0; i < set->n; i++) {
        uint32_t st = w->pool.nodes[set->ids[i]].state;
        if (g->au.plain_budget[st] > 0) {
            if (found)
                return 0;
            found = 1;
            *budget = g->au.plain_budget[st];
        } else if (!w->quote_only[st])
            return 0;
    }
    return found;
}

/* Classifies the rest s[0..n) of a token from the stacks in set (esc: a path
 * already popped the frame earlier in this token). */
static int follows(const Walk *w, uint8_t b) {
    return w->follow[b >> 5] >> (b & 31) & 1;
}

static int classify_rest(Walk *w, const StackSet *set, const uint8_t *s, size_t n, int esc) {
    StackPool *p = &w->pool;
    uint32_t mark = p->n;
    const StackSet *in = set;
    int result = esc ? UNCERTAIN : REJECTED;
    for (size_t i = 0; i < n; i++) {
        StackSet *out = &w->sim[i & 1];
        stack_advance(p, in, s[i], out);
        if (i + 1 == n) {
            if (out->n > 0 || p->ended || p->complete)
                result = ACCEPTED;
            break;
        }
        if (p->ended && follows(w, s[i + 1]))
            result = UNCERTAIN;
        if (out->n == 0)
            break;
        in = out;
    }
    stack_rollback(p, mark);
    return result;
}

/* The tokens of the subtree of node k (depth d) from a string-body set:
 * quote-free rests are decided by their plain characters, the others run. */
static int body_subtree(const Grammar *g, Walk *w, const VocabTrie *t, uint32_t k, const StackSet *set,
                        uint32_t budget, int esc) {
    const GrammarVocab *v = g->vocab;
    uint32_t d = t->node_depth[k];
    int rc = 0;
    for (uint32_t i = t->node_tok[k]; i < t->node_tok[t->node_end[k]]; i++) {
        int32_t id = t->ids[i];
        const uint8_t *s = v->bytes + v->tok_off[id] + (d - 1);
        size_t n = v->tok_len[id] - (d - 1);
        int r;
        if (v->last_quote[id] == VOCAB_NO_QUOTE || v->last_quote[id] < d - 1) {
            uint8_t c = vocab_plain_count(s, n);
            r = c != VOCAB_NOT_PLAIN && c <= budget ? ACCEPTED : esc ? UNCERTAIN : REJECTED;
        } else
            r = classify_rest(w, set, s, n, esc);
        if (r == ACCEPTED)
            rc |= ids_add(&w->acc, id);
        else if (r == UNCERTAIN)
            rc |= ids_add(&w->unc, id);
    }
    return rc;
}

/* Walks trie t from the stacks in w->level[0] (escaped[0] set). */
static int walk_trie(const Grammar *g, Walk *w, const VocabTrie *t) {
    StackPool *p = &w->pool;
    int failed = 0;
    uint32_t k = 1;
    w->pool_mark[1] = p->n;
    while (k < t->n_nodes && !failed) {
        uint32_t d = t->node_depth[k];
        const StackSet *prev = &w->level[d - 1];
        int esc = w->escaped[d - 1] || (w->ended_at[d - 1] && follows(w, t->node_byte[k]));
        uint32_t tok_lo = t->node_tok[k], tok_hi = t->node_tok[t->node_end[k]];
        uint32_t budget;
        if (body_budget(g, w, prev, &budget)) {
            failed |= body_subtree(g, w, t, k, prev, budget, esc);
            k = t->node_end[k];
            continue;
        }
        stack_rollback(p, w->pool_mark[d]);
        StackSet *cur = &w->level[d];
        stack_advance(p, prev, t->node_byte[k], cur);
        /* ended: popped into the unknown caller; complete: the answer's end */
        int alive = cur->n > 0, ended = p->ended, complete = p->complete;
        if (!alive && !ended && !complete) {
            if (esc) /* nothing inside, but the frame was popped earlier */
                failed |= ids_add_range(&w->unc, t->ids, tok_lo, tok_hi);
            k = t->node_end[k];
            continue;
        }
        uint32_t here_hi = t->node_tok[k + 1] < tok_hi ? t->node_tok[k + 1] : tok_hi;
        failed |= ids_add_range(&w->acc, t->ids, tok_lo, here_hi);
        if (k + 1 < t->node_end[k]) { /* children */
            if (!alive) { /* only a pop exactly here: deeper bytes need the caller, or nothing can follow */
                if (esc || ended) /* (children whose byte no caller reads are rejected below) */
                    for (uint32_t c = k + 1; c < t->node_end[k]; c = t->node_end[c])
                        if (esc || follows(w, t->node_byte[c]))
                            failed |=
                                ids_add_range(&w->unc, t->ids, t->node_tok[c], t->node_tok[t->node_end[c]]);
                k = t->node_end[k];
                continue;
            }
            w->escaped[d] = (uint8_t)esc;
            w->ended_at[d] = (uint8_t)ended;
            if (d + 1 < 256)
                w->pool_mark[d + 1] = p->n;
        }
        k++;
    }
    return failed || p->oom ? -1 : 0;
}

static int walk_state(const Grammar *g, Walk *w, uint32_t s) {
    const GrammarVocab *v = g->vocab;
    StackPool *p = &w->pool;
    w->acc.n = w->unc.n = 0;
    w->plain_budget = 0;
    stack_rollback(p, 2);
    stack_start(p, s, g->root_frame[s] ? STACK_DOC_END : STACK_CONTEXT, &w->level[0]);
    w->escaped[0] = 0;
    w->ended_at[0] = (uint8_t)p->ended;
    w->follow = g->follow[g->rule_of[s]];
    uint32_t budget;
    if (body_budget(g, w, &w->level[0], &budget)) {
        /* a string body: the quote-free tokens by their plain characters,
         * then a walk of the tokens with '"' or '\\' */
        w->plain_budget = budget;
        return walk_trie(g, w, &v->quoted);
    }
    return walk_trie(g, w, &v->all);
}

/* A string body's plain tokens of at most b characters. */
static void store_plain(const GrammarVocab *v, uint32_t b, StateCache *c) {
    {
        if (b >= VOCAB_NOT_PLAIN - 1)
            c->plain_bits = v->plain_bits[VOCAB_PLAIN_BITS + 1];
        else if (b <= VOCAB_PLAIN_BITS)
            c->plain_bits = v->plain_bits[b];
        else {
            c->plain_bits = v->plain_bits[VOCAB_PLAIN_BITS];
            c->plain_lo = v->plain_upto[VOCAB_PLAIN_BITS];
            c->plain_hi = v->plain_upto[b];
        }
    }
}

static int store_cache(Grammar *g, const Walk *w, StateCache *c) {
    const GrammarVocab *v = g->vocab;
    uint32_t words = (uint32_t)grammar_mask_words(v);
    if (w->plain_budget > 0)
        store_plain(v, w->plain_budget, c);
    c->n_accepted = (uint32_t)w->acc.n;
    if (c->n_accepted > words) {
        c->accepted_bits = calloc(words, sizeof *c->accepted_bits);
        if (!c->accepted_bits)
            return -1;
        for (size_t i = 0; i < w->acc.n; i++)
            c->accepted_bits[w->acc.ids[i] >> 5] |= 1u << (w->acc.ids[i] & 31);
    } else if (c->n_accepted > 0) {
        c->accepted_ids = malloc(c->n_accepted * sizeof *c->accepted_ids);
        if (!c->accepted_ids)
            return -1;
        memcpy(c->accepted_ids, w->acc.ids, w->acc.n * sizeof *w->acc.ids);
    }
    c->n_uncertain = (uint32_t)w->unc.n;
    if (c->n_uncertain > 0) {
        c->uncertain_ids = malloc(c->n_uncertain * sizeof *c->uncertain_ids);
        if (!c->uncertain_ids)
            return -1;
        memcpy(c->uncertain_ids, w->unc.ids, w->unc.n * sizeof *w->unc.ids);
    }
    return 0;
}

static void walk_free(Walk *w) {
    if (!w)
        return;
    for (int d = 0; d < 256; d++)
        stack_set_free(&w->level[d]);
    stack_set_free(&w->sim[0]);
    stack_set_free(&w->sim[1]);
    free(w->quote_only);
    free(w->acc.ids);
    free(w->unc.ids);
    stack_pool_free(&w->pool);
    free(w);
}

static Walk *walk_new(const Automaton *au) {
    Walk *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->quote_only = calloc(au->n_states ? au->n_states : 1, 1);
    if (!w->quote_only || stack_pool_init(&w->pool, au) != 0) {
        free(w->quote_only);
        free(w);
        return NULL;
    }
    for (uint32_t s = 0; s < au->n_states; s++) {
        int only = 1;
        for (uint32_t e = au->off[s]; e < au->off[s + 1]; e++)
            if (au->edges[e].kind == EDGE_BYTE &&
                !(au->edges[e].lo == au->edges[e].hi && (au->edges[e].lo == '"' || au->edges[e].lo == '\\')))
                only = 0;
        w->quote_only[s] = (uint8_t)only;
    }
    return w;
}

/* root_frame[s]: s is reached from the start without entering a call (and
 * the start is never called), so the stack below it is the answer's end. */
static int mark_root_frame(Grammar *g) {
    const Automaton *au = &g->au;
    uint32_t *work = malloc((au->n_states + 1) * sizeof *work);
    if (!work)
        return -1;
    uint32_t n = 0;
    g->root_frame[au->start] = 1;
    work[n++] = au->start;
    while (n > 0) {
        uint32_t s = work[--n];
        for (uint32_t e = au->off[s]; e < au->off[s + 1]; e++) {
            const AuEdge *ed = &au->edges[e];
            uint32_t t = ed->kind == EDGE_CALL ? ed->ret : ed->target;
            if (!g->root_frame[t]) {
                g->root_frame[t] = 1;
                work[n++] = t;
            }
        }
    }
    /* a state that is also inside a called rule is not bottom-only */
    for (uint32_t s = 0; s < au->n_states; s++)
        for (uint32_t e = au->off[s]; e < au->off[s + 1]; e++)
            if (au->edges[e].kind == EDGE_CALL && au->edges[e].target == au->start)
                memset(g->root_frame, 0, au->n_states);
    free(work);
    return 0;
}

/* rule_of[s]: the rule whose frame s lives in (0: the answer's bottom
 * frame; others: call targets). follow[r]: the bytes a caller may read right
 * after rule r returns (FIRST of each return state, through nested returns),
 * computed to a fixed point. A pop whose next byte is not in it is a dead
 * path, so the cache need not call that token uncertain (xgrammar's
 * lookahead idea, derived from the automaton). */
static int compute_follow(Grammar *g) {
    const Automaton *au = &g->au;
    uint32_t n = au->n_states;
    g->rule_of = calloc(n + 1, sizeof *g->rule_of);
    uint32_t *start_rule = calloc(n + 1, sizeof *start_rule); /* rule + 1 of a call target */
    uint32_t *work = malloc((n + 1) * sizeof *work);
    uint32_t(*first)[8] = calloc(n + 1, sizeof *first);
    if (!g->rule_of || !start_rule || !work || !first) {
        free(start_rule);
        free(work);
        free(first);
        return -1;
    }
    uint32_t n_rules = 1;
    for (uint32_t e = 0; e < au->off[n]; e++)
        if (au->edges[e].kind == EDGE_CALL && !start_rule[au->edges[e].target])
            start_rule[au->edges[e].target] = ++n_rules;
    g->follow = calloc(n_rules, sizeof *g->follow);
    if (!g->follow) {
        free(start_rule);
        free(work);
        free(first);
        return -1;
    }
    /* each state's rule: flood from each rule start over its own frame's edges */
    for (uint32_t r = 0; r < n_rules; r++) {
        uint32_t top = 0;
        for (uint32_t s = 0; s < n; s++)
            if ((r == 0 && s == au->start) || (r > 0 && start_rule[s] == r + 1)) {
                g->rule_of[s] = r;
                work[top++] = s;
            }
        while (top > 0) {
            uint32_t s = work[--top];
            for (uint32_t e = au->off[s]; e < au->off[s + 1]; e++) {
                uint32_t t = au->edges[e].kind == EDGE_CALL ? au->edges[e].ret : au->edges[e].target;
                if (t != au->start && !start_rule[t] && g->rule_of[t] == 0 && r > 0) {
                    g->rule_of[t] = r;
                    work[top++] = t;
                }
            }
        }
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (uint32_t s = 0; s < n; s++) {
            uint32_t f[8];
            memcpy(f, first[s], sizeof f);
            for (uint32_t e = au->off[s]; e < au->off[s + 1]; e++) {
                const AuEdge *ed = &au->edges[e];
                if (ed->kind == EDGE_BYTE)
                    for (int b = ed->lo; b <= ed->hi; b++)
                        f[b >> 5] |= 1u << (b & 31);
                else
                    for (int i = 0; i < 8; i++)
                        f[i] |= first[ed->target][i];
                if (ed->kind == EDGE_CALL) {
                    uint32_t r = g->rule_of[ed->target];
                    for (int i = 0; i < 8; i++)
                        if ((g->follow[r][i] | first[ed->ret][i]) != g->follow[r][i]) {
                            g->follow[r][i] |= first[ed->ret][i];
                            changed = 1;
                        }
                }
            }
            if (au->flags[s] & AU_FINAL)
                for (int i = 0; i < 8; i++)
                    f[i] |= g->follow[g->rule_of[s]][i];
            if (memcmp(f, first[s], sizeof f) != 0) {
                memcpy(first[s], f, sizeof f);
                changed = 1;
            }
        }
    }
    free(start_rule);
    free(work);
    free(first);
    return 0;
}

static int has_byte_edges(const Automaton *au, uint32_t s) {
    return au->off[s] != au->off[s + 1] && au->edges[au->off[s]].kind == EDGE_BYTE;
}

int grammar_build_cache(Grammar *g, double deadline_ms, Error *err) {
    const Automaton *au = &g->au;
    size_t n = au->n_states ? au->n_states : 1;
    g->cache = calloc(n, sizeof *g->cache);
    g->ready = calloc(n, sizeof *g->ready);
    g->root_frame = calloc(n, 1);
    if (!g->cache || !g->ready || !g->root_frame || mark_root_frame(g) != 0 || compute_follow(g) != 0)
        return error_set(err, "out of memory for the token-mask cache");
    Walk *w = walk_new(au);
    /* string bodies that classify quoted tokens alike share one walk: same
     * closing state, same budget and need up to the longest quoted token */
    uint32_t memo_cap = 1024;
    while (memo_cap < au->n_states)
        memo_cap *= 2;
    uint64_t *memo_key = calloc(memo_cap, sizeof *memo_key);
    uint32_t *memo_state = calloc(memo_cap, sizeof *memo_state);
    if (!w || !memo_key || !memo_state) {
        walk_free(w);
        free(memo_key);
        free(memo_state);
        return error_set(err, "out of memory for the token-mask cache");
    }
    uint32_t q = g->vocab->quoted_max_len;
    int rc = 0;
    for (uint32_t s = 0; s < au->n_states && rc == 0; s++) {
        if (!has_byte_edges(au, s) || (au->flags[s] & AU_LAZY))
            continue; /* never the top of a live stack, or built on first use */
        if (au->plain_budget[s] > 0 && au->plain_close[s] != UINT32_MAX) {
            uint32_t b = au->plain_budget[s] < q ? au->plain_budget[s] : q;
            uint32_t need = au->plain_need[s] < q ? au->plain_need[s] : q;
            uint64_t key = ((uint64_t)au->plain_close[s] << 32 | (uint64_t)b << 16 | need) + 1;
            uint32_t slot = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & (memo_cap - 1);
            while (memo_key[slot] && memo_key[slot] != key)
                slot = (slot + 1) & (memo_cap - 1);
            if (memo_key[slot]) { /* share the owner's walk; the plain part is this state's own */
                const StateCache *o = &g->cache[memo_state[slot]];
                StateCache *c = &g->cache[s];
                *c = *o;
                c->shared = 1;
                c->plain_bits = NULL;
                c->plain_lo = c->plain_hi = 0;
                store_plain(g->vocab, au->plain_budget[s], c);
                atomic_store_explicit(&g->ready[s], 1, memory_order_release);
                g->stats.n_cached_states++;
                continue;
            }
            memo_key[slot] = key;
            memo_state[slot] = s;
        }
        if (walk_state(g, w, s) != 0 || store_cache(g, w, &g->cache[s]) != 0) {
            rc = error_set(err, "out of memory for the token-mask cache");
            break;
        }
        atomic_store_explicit(&g->ready[s], 1, memory_order_release);
        g->stats.n_cached_states++;
        g->stats.n_uncertain += g->cache[s].n_uncertain;
        if ((s & 15) == 0 && grammar_now_ms() > deadline_ms)
            rc = error_set(
                err, "the schema's compile took longer than the limit (token-mask cache at state %u of %u)",
                s, au->n_states);
    }
    walk_free(w);
    free(memo_key);
    free(memo_state);
    return rc;
}

const StateCache *grammar_state_cache(const Grammar *cg, uint32_t s) {
    if (atomic_load_explicit(&cg->ready[s], memory_order_acquire))
        return &cg->cache[s];
    Grammar *g = (Grammar *)cg; /* the lazy part of an otherwise immutable grammar */
    const StateCache *out = &g->cache[s];
    pthread_mutex_lock(&g->lazy_lock);
    if (!atomic_load_explicit(&g->ready[s], memory_order_acquire)) {
        if (!g->walk)
            g->walk = walk_new(&g->au);
        if (!g->walk || walk_state(g, g->walk, s) != 0 || store_cache(g, g->walk, &g->cache[s]) != 0)
            out = NULL;
        else
            atomic_store_explicit(&g->ready[s], 1, memory_order_release);
    }
    pthread_mutex_unlock(&g->lazy_lock);
    return out;
}

void grammar_free_cache(Grammar *g) {
    if (g->cache)
        for (uint32_t s = 0; s < g->au.n_states; s++) {
            if (g->cache[s].shared)
                continue;
            free(g->cache[s].accepted_bits);
            free(g->cache[s].accepted_ids);
            free(g->cache[s].uncertain_ids);
        }
    free(g->cache);
    free((void *)g->ready);
    free(g->root_frame);
    free(g->rule_of);
    free(g->follow);
    walk_free(g->walk);
}
