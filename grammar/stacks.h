/* Stacks of the automaton (automaton.h) as interned nodes, and the step that
 * advances a set of stacks by one byte. Shared by the mask cache (built at
 * compile) and the matcher (per request).
 *
 * A node is (state, parent node): the top frame's state and the stack below.
 * Node STACK_DOC_END is the bottom of a real answer (popping into it means
 * the value is complete); node STACK_CONTEXT stands for "some caller we do
 * not know" while the cache classifies tokens (popping into it means the
 * token's fate depends on the stack). Nodes are interned in a chained hash,
 * so equal stacks are equal ids; nodes added after a mark can be dropped
 * again in LIFO order (stack_rollback), which keeps speculative work from
 * growing the pool.
 *
 * A "set" is a list of node ids whose top state has byte edges: the stacks
 * alive after closure (epsilon moves, calls and returns followed). */
#ifndef GRAMMAR_STACKS_H
#define GRAMMAR_STACKS_H

#include <stdint.h>

#include "grammar/automaton.h"

#define STACK_DOC_END 0u
#define STACK_CONTEXT 1u
#define STACK_NONE UINT32_MAX
#define STACK_MAX_DEPTH 256 /* frames; deeper stacks are dropped */
#define STACK_MAX_NODES (1u << 24)

typedef struct {
    uint32_t state, parent, next; /* next: hash chain */
    uint32_t mark;                /* closure visit stamp */
    uint16_t depth;
} StackNode;

typedef struct {
    uint32_t *ids;
    uint32_t n, cap;
} StackSet;

typedef struct {
    const Automaton *au;
    StackNode *nodes;
    uint32_t n, cap;
    uint32_t *heads;
    uint32_t head_mask;
    uint32_t stamp;
    int oom; /* sticky */
    /* closure results of the last step */
    int complete;  /* popped into STACK_DOC_END */
    int ended;     /* popped into STACK_CONTEXT */
    StackSet work; /* closure's work list */
} StackPool;

int stack_pool_init(StackPool *p, const Automaton *au);
void stack_pool_free(StackPool *p);
uint32_t stack_intern(StackPool *p, uint32_t state, uint32_t parent);
void stack_rollback(StackPool *p, uint32_t n_keep);

void stack_set_free(StackSet *s);
/* out = closure of the stack (state, parent); sets p->complete / p->ended. */
void stack_start(StackPool *p, uint32_t state, uint32_t parent, StackSet *out);
/* out = every stack of in advanced by byte b, then closed; sets p->complete /
 * p->ended for this position. out must not be in. */
void stack_advance(StackPool *p, const StackSet *in, uint8_t b, StackSet *out);

#endif
