/* Interned automaton stacks and the byte step (stacks.h). */
#include "grammar/stacks.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash_node(uint32_t state, uint32_t parent) {
    uint64_t h = ((uint64_t)state << 32 | parent) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

int stack_pool_init(StackPool *p, const Automaton *au) {
    memset(p, 0, sizeof *p);
    p->au = au;
    p->cap = 4096;
    p->nodes = malloc(p->cap * sizeof *p->nodes);
    p->head_mask = 4095;
    p->heads = malloc((p->head_mask + 1) * sizeof *p->heads);
    if (!p->nodes || !p->heads) {
        stack_pool_free(p);
        return -1;
    }
    memset(p->heads, 0xFF, (p->head_mask + 1) * sizeof *p->heads);
    /* the two sentinels, never hashed */
    p->nodes[STACK_DOC_END] = (StackNode){.state = UINT32_MAX, .parent = STACK_NONE, .next = STACK_NONE};
    p->nodes[STACK_CONTEXT] = (StackNode){.state = UINT32_MAX, .parent = STACK_NONE, .next = STACK_NONE};
    p->n = 2;
    return 0;
}

void stack_pool_free(StackPool *p) {
    free(p->work.ids);
    free(p->nodes);
    free(p->heads);
    memset(p, 0, sizeof *p);
}

static int grow(StackPool *p) {
    if (p->cap == 0 || p->cap >= STACK_MAX_NODES)
        return -1;
    uint32_t cap = p->cap * 2;
    StackNode *n = realloc(p->nodes, cap * sizeof *n);
    if (!n)
        return -1;
    p->nodes = n;
    p->cap = cap;
    /* rehash into a table as large as the pool */
    uint32_t mask = cap - 1;
    uint32_t *heads = malloc((size_t)cap * sizeof *heads);
    if (!heads)
        return -1;
    memset(heads, 0xFF, (size_t)cap * sizeof *heads);
    for (uint32_t i = 2; i < p->n; i++) {
        uint32_t h = hash_node(p->nodes[i].state, p->nodes[i].parent) & mask;
        p->nodes[i].next = heads[h];
        heads[h] = i;
    }
    free(p->heads);
    p->heads = heads;
    p->head_mask = mask;
    return 0;
}

uint32_t stack_intern(StackPool *p, uint32_t state, uint32_t parent) {
    if (parent == STACK_NONE)
        return STACK_NONE;
    uint32_t h = hash_node(state, parent) & p->head_mask;
    for (uint32_t i = p->heads[h]; i != STACK_NONE; i = p->nodes[i].next)
        if (p->nodes[i].state == state && p->nodes[i].parent == parent)
            return i;
    uint16_t depth = parent <= STACK_CONTEXT ? 1 : (uint16_t)(p->nodes[parent].depth + 1);
    if (depth > STACK_MAX_DEPTH)
        return STACK_NONE;
    if (p->n == p->cap) {
        if (grow(p) != 0) {
            p->oom = 1;
            return STACK_NONE;
        }
        h = hash_node(state, parent) & p->head_mask;
    }
    uint32_t id = p->n++;
    p->nodes[id] = (StackNode){.state = state, .parent = parent, .next = p->heads[h], .depth = depth};
    p->heads[h] = id;
    return id;
}

void stack_rollback(StackPool *p, uint32_t n_keep) {
    while (p->n > n_keep) {
        uint32_t id = --p->n;
        uint32_t h = hash_node(p->nodes[id].state, p->nodes[id].parent) & p->head_mask;
        p->heads[h] = p->nodes[id].next; /* the newest node heads its chain */
    }
}

void stack_set_free(StackSet *s) {
    free(s->ids);
    memset(s, 0, sizeof *s);
}

static void set_push(StackSet *s, uint32_t id) {
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        uint32_t *ids = realloc(s->ids, cap * sizeof *ids);
        if (!ids)
            return; /* the stack is dropped; the pool's oom flag is not needed for sets */
        s->ids = ids;
        s->cap = cap;
    }
    s->ids[s->n++] = id;
}

/* Follows epsilon moves, calls and returns from node, adding to out every
 * node whose state has byte edges. Iterative: a work list of nodes. */
static void closure(StackPool *p, uint32_t node, StackSet *out) {
    StackSet *w = &p->work;
    w->n = 0;
    set_push(w, node);
    const Automaton *au = p->au;
    while (w->n > 0) {
        uint32_t id = w->ids[--w->n];
        if (id == STACK_NONE || p->nodes[id].mark == p->stamp)
            continue;
        p->nodes[id].mark = p->stamp;
        uint32_t s = p->nodes[id].state, parent = p->nodes[id].parent;
        const AuEdge *e = au->edges + au->off[s], *end = au->edges + au->off[s + 1];
        int has_byte = 0;
        for (; e < end; e++) {
            uint32_t next;
            if (e->kind == EDGE_BYTE) {
                has_byte = 1;
                continue;
            }
            if (e->kind == EDGE_EPS)
                next = stack_intern(p, e->target, parent);
            else
                next = stack_intern(p, e->target, stack_intern(p, e->ret, parent));
            if (next != STACK_NONE)
                set_push(w, next);
        }
        if (has_byte)
            set_push(out, id);
        if (au->flags[s] & AU_FINAL) {
            if (parent == STACK_DOC_END)
                p->complete = 1;
            else if (parent == STACK_CONTEXT)
                p->ended = 1;
            else
                set_push(w, parent);
        }
    }
}

void stack_start(StackPool *p, uint32_t state, uint32_t parent, StackSet *out) {
    out->n = 0;
    p->complete = p->ended = 0;
    p->stamp++;
    closure(p, stack_intern(p, state, parent), out);
}

void stack_advance(StackPool *p, const StackSet *in, uint8_t b, StackSet *out) {
    out->n = 0;
    p->complete = p->ended = 0;
    p->stamp++;
    const Automaton *au = p->au;
    for (uint32_t i = 0; i < in->n; i++) {
        uint32_t id = in->ids[i];
        uint32_t s = p->nodes[id].state, parent = p->nodes[id].parent;
        const AuEdge *e = au->edges + au->off[s], *end = au->edges + au->off[s + 1];
        for (; e < end && e->kind == EDGE_BYTE; e++) {
            if (b < e->lo)
                break; /* byte edges are sorted by lo */
            if (b <= e->hi)
                closure(p, stack_intern(p, e->target, parent), out);
        }
    }
}
