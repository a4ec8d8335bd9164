/* Building the byte automaton (automaton.h): growing arrays of states and
 * edges, UTF-8 and JSON-character helpers, and the final sort into CSR. */
#include "grammar/automaton.h"

#include <stdlib.h>
#include <string.h>

void au_init(Automaton *a, uint32_t max_states) {
    memset(a, 0, sizeof *a);
    a->max_states = max_states;
}

void au_free(Automaton *a) {
    free(a->flags);
    free(a->plain_budget);
    free(a->plain_close);
    free(a->plain_need);
    free(a->build);
    free(a->off);
    free(a->edges);
    memset(a, 0, sizeof *a);
}

uint32_t au_state(Automaton *a) {
    if (a->overflow)
        return 0;
    if (a->n_states >= a->max_states) {
        a->overflow = 1;
        return 0;
    }
    if (a->n_states == a->cap_states) {
        uint32_t cap = a->cap_states ? a->cap_states * 2 : 256;
        uint8_t *f = realloc(a->flags, cap);
        if (f)
            a->flags = f;
        uint32_t *p = realloc(a->plain_budget, (size_t)cap * sizeof *p);
        if (p)
            a->plain_budget = p;
        uint32_t *pc = realloc(a->plain_close, (size_t)cap * sizeof *pc);
        if (pc)
            a->plain_close = pc;
        uint32_t *pn = realloc(a->plain_need, (size_t)cap * sizeof *pn);
        if (pn)
            a->plain_need = pn;
        if (!f || !p || !pc || !pn) {
            a->overflow = 1;
            return 0;
        }
        a->cap_states = cap;
    }
    a->flags[a->n_states] = 0;
    a->plain_budget[a->n_states] = 0;
    a->plain_close[a->n_states] = UINT32_MAX;
    a->plain_need[a->n_states] = 0;
    return a->n_states++;
}

static void add_edge(Automaton *a, uint32_t from, AuEdge e) {
    if (a->overflow)
        return;
    if (a->n_build == a->cap_build) {
        size_t cap = a->cap_build ? a->cap_build * 2 : 1024;
        AuBuildEdge *b = realloc(a->build, cap * sizeof *b);
        if (!b) {
            a->overflow = 1;
            return;
        }
        a->build = b;
        a->cap_build = cap;
    }
    a->build[a->n_build].from = from;
    a->build[a->n_build].e = e;
    a->n_build++;
}

void au_byte(Automaton *a, uint32_t from, uint8_t lo, uint8_t hi, uint32_t to) {
    add_edge(a, from, (AuEdge){.target = to, .kind = EDGE_BYTE, .lo = lo, .hi = hi});
}

void au_eps(Automaton *a, uint32_t from, uint32_t to) {
    add_edge(a, from, (AuEdge){.target = to, .kind = EDGE_EPS});
}

void au_call(Automaton *a, uint32_t from, uint32_t callee_start, uint32_t ret) {
    add_edge(a, from, (AuEdge){.target = callee_start, .ret = ret, .kind = EDGE_CALL});
}

void au_literal(Automaton *a, uint32_t from, const char *s, size_t n, uint32_t to) {
    if (n == 0) {
        au_eps(a, from, to);
        return;
    }
    uint32_t cur = from;
    for (size_t i = 0; i < n; i++) {
        uint32_t next = i + 1 == n ? to : au_state(a);
        au_byte(a, cur, (uint8_t)s[i], (uint8_t)s[i], next);
        cur = next;
    }
}

static uint32_t lazy_state(Automaton *a) {
    uint32_t s = au_state(a);
    if (!a->overflow)
        a->flags[s] |= AU_LAZY;
    return s;
}

void au_utf8_multibyte(Automaton *a, uint32_t from, uint32_t to) {
    /* continuation states: need 1, 2 or 3 more bytes 80..BF */
    uint32_t c1 = lazy_state(a), c2 = lazy_state(a), c3 = lazy_state(a);
    au_byte(a, c1, 0x80, 0xBF, to);
    au_byte(a, c2, 0x80, 0xBF, c1);
    au_byte(a, c3, 0x80, 0xBF, c2);
    au_byte(a, from, 0xC2, 0xDF, c1);
    uint32_t e0 = lazy_state(a), ed = lazy_state(a), f0 = lazy_state(a), f4 = lazy_state(a);
    au_byte(a, from, 0xE0, 0xE0, e0);
    au_byte(a, e0, 0xA0, 0xBF, c1);
    au_byte(a, from, 0xE1, 0xEC, c2);
    au_byte(a, from, 0xED, 0xED, ed);
    au_byte(a, ed, 0x80, 0x9F, c1); /* no surrogates */
    au_byte(a, from, 0xEE, 0xEF, c2);
    au_byte(a, from, 0xF0, 0xF0, f0);
    au_byte(a, f0, 0x90, 0xBF, c2);
    au_byte(a, from, 0xF1, 0xF3, c3);
    au_byte(a, from, 0xF4, 0xF4, f4);
    au_byte(a, f4, 0x80, 0x8F, c2);
}

void au_json_char(Automaton *a, uint32_t from, uint32_t to) {
    au_byte(a, from, 0x20, 0x21, to);
    au_byte(a, from, 0x23, 0x5B, to);
    au_byte(a, from, 0x5D, 0x7F, to);
    au_utf8_multibyte(a, from, to);
    uint32_t esc = lazy_state(a);
    au_byte(a, from, '\\', '\\', esc);
    static const char simple[] = "\"\\/bfnrt";
    for (const char *c = simple; *c; c++)
        au_byte(a, esc, (uint8_t)*c, (uint8_t)*c, to);
    uint32_t h = lazy_state(a);
    au_byte(a, esc, 'u', 'u', h);
    for (int i = 0; i < 4; i++) {
        uint32_t next = i == 3 ? to : lazy_state(a);
        au_byte(a, h, '0', '9', next);
        au_byte(a, h, 'A', 'F', next);
        au_byte(a, h, 'a', 'f', next);
        h = next;
    }
}

static int cmp_build(const void *x, const void *y) {
    const AuBuildEdge *a = x, *b = y;
    if (a->from != b->from)
        return a->from < b->from ? -1 : 1;
    if (a->e.kind != b->e.kind)
        return a->e.kind < b->e.kind ? -1 : 1;
    return a->e.lo < b->e.lo ? -1 : a->e.lo > b->e.lo;
}

int au_finish(Automaton *a, Error *err) {
    if (a->overflow)
        return error_set(err, "the schema needs more than %u automaton states (the limit)", a->max_states);
    qsort(a->build, a->n_build, sizeof *a->build, cmp_build);
    a->off = calloc((size_t)a->n_states + 1, sizeof *a->off);
    a->edges = malloc((a->n_build ? a->n_build : 1) * sizeof *a->edges);
    if (!a->off || !a->edges)
        return error_set(err, "out of memory for the schema's automaton");
    for (size_t i = 0; i < a->n_build; i++) {
        a->off[a->build[i].from + 1]++;
        a->edges[i] = a->build[i].e;
    }
    for (uint32_t s = 0; s < a->n_states; s++)
        a->off[s + 1] += a->off[s];
    free(a->build);
    a->build = NULL;
    a->n_build = a->cap_build = 0;
    return 0;
}
