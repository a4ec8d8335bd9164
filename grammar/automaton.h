/* The grammar's automaton: a recursive transition network over bytes.
 *
 * States are numbered 0..n_states-1. An edge is a byte range (lo..hi -> target),
 * an epsilon move, or a call (push the return state, continue at the callee's
 * start state). A state flagged AU_FINAL ends the current frame: the matcher
 * pops to the caller's return state (or, at the bottom, the value is complete).
 * Nondeterminism is allowed: the matcher follows every path at once.
 *
 * schema.c and regex.c build it with the au_* calls; au_finish sorts the
 * edges by source state (CSR) for the matcher. Ownership: the Automaton owns
 * every array; au_free releases them. */
#ifndef GRAMMAR_AUTOMATON_H
#define GRAMMAR_AUTOMATON_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

enum { EDGE_BYTE, EDGE_EPS, EDGE_CALL };
/* AU_FINAL: ends the frame. AU_LAZY: inside an escape sequence or a UTF-8
 * character (a token rarely ends there): its token cache is built on first
 * use instead of at compile. */
enum { AU_FINAL = 1, AU_LAZY = 2 };

/* "Plain" text: one Unicode character that a JSON string holds unescaped
 * (not '"', not '\\', not a control byte < 0x20). A state with a plain budget
 * b > 0 loops (or chains) so that any run of up to b plain characters keeps
 * a path alive; the mask cache uses it to accept whole trie subtrees. */
#define AU_PLAIN_UNLIMITED UINT32_MAX

typedef struct {
    uint32_t target, ret; /* ret: the return state of a call */
    uint8_t kind, lo, hi;
} AuEdge;

typedef struct {
    uint32_t from;
    AuEdge e;
} AuBuildEdge;

typedef struct {
    uint32_t n_states, cap_states, max_states;
    uint8_t *flags;         /* [n_states] AU_* */
    uint32_t *plain_budget; /* [n_states] 0 = none */
    /* a string body's closing-quote state and how many more characters it
     * needs before it may close: the body states of one string with equal
     * (budget, need) up to a token's length classify quoted tokens alike */
    uint32_t *plain_close, *plain_need;
    AuBuildEdge *build;
    size_t n_build, cap_build;
    int overflow; /* sticky: a state or memory limit was hit */
    /* after au_finish */
    uint32_t *off; /* [n_states + 1]: edges of state s are edges[off[s] .. off[s+1]) */
    AuEdge *edges;
    uint32_t start; /* the root value's first state */
} Automaton;

void au_init(Automaton *a, uint32_t max_states);
void au_free(Automaton *a);
/* A new state (0 when a limit was hit: check a->overflow). */
uint32_t au_state(Automaton *a);
void au_byte(Automaton *a, uint32_t from, uint8_t lo, uint8_t hi, uint32_t to);
void au_eps(Automaton *a, uint32_t from, uint32_t to);
void au_call(Automaton *a, uint32_t from, uint32_t callee_start, uint32_t ret);
/* from -> the bytes of s[0..n) -> to. */
void au_literal(Automaton *a, uint32_t from, const char *s, size_t n, uint32_t to);
/* from -> any one well-formed UTF-8 character of 2 to 4 bytes (U+0080 and up,
 * surrogates excluded) -> to. */
void au_utf8_multibyte(Automaton *a, uint32_t from, uint32_t to);
/* from -> one plain character (see above) or an escape sequence -> to. */
void au_json_char(Automaton *a, uint32_t from, uint32_t to);
/* Sorts the edges into CSR form. Returns 0, or -1 (limit or memory). */
int au_finish(Automaton *a, Error *err);

#endif
