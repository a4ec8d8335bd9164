/* The regex subset of regex.h: recursive-descent parse straight into a
 * Thompson NFA (a repeated atom is parsed again for each copy), subset
 * construction over byte intervals into a DFA with a state limit, then the
 * DFA's states and edges are added to the automaton. */
#include "grammar/regex.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NFA 20000
#define MAX_DFA 2000
#define MAX_REPEAT 1000
#define DFA_HASH 4096 /* power of two, > 2 x MAX_DFA */

typedef struct {
    uint32_t from, to;
    int16_t lo, hi; /* -1: epsilon */
} NEdge;

typedef struct {
    const char *src;
    size_t len, pos;
    uint32_t n_states;
    NEdge *edges;
    size_t n_edges, cap_edges;
    char *why;
    size_t why_len;
    int failed;
} Nfa;

typedef struct {
    uint32_t start, end;
} Frag;

static int fail(Nfa *n, const char *fmt, ...) {
    if (!n->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(n->why, n->why_len, fmt, ap);
        va_end(ap);
    }
    n->failed = 1;
    return -1;
}

static uint32_t nstate(Nfa *n) {
    if (n->n_states >= MAX_NFA) {
        fail(n, "pattern too large (over %d NFA states)", MAX_NFA);
        return 0;
    }
    return n->n_states++;
}

static void nedge(Nfa *n, uint32_t from, uint32_t to, int lo, int hi) {
    if (n->failed)
        return;
    if (n->n_edges == n->cap_edges) {
        size_t cap = n->cap_edges ? n->cap_edges * 2 : 256;
        NEdge *e = realloc(n->edges, cap * sizeof *e);
        if (!e) {
            fail(n, "out of memory");
            return;
        }
        n->edges = e;
        n->cap_edges = cap;
    }
    n->edges[n->n_edges++] = (NEdge){from, to, (int16_t)lo, (int16_t)hi};
}

/* A character set: ASCII bytes, plus "any non-ASCII character". */
typedef struct {
    uint8_t ascii[128];
    int non_ascii;
} CharSet;

static void set_range(CharSet *c, int lo, int hi, int on) {
    for (int i = lo; i <= hi && i < 128; i++)
        c->ascii[i] = (uint8_t)on;
}

/* The characters a JSON string holds unescaped. */
static void drop_unwritable(CharSet *c) {
    set_range(c, 0, 0x1F, 0);
    c->ascii['"'] = 0;
    c->ascii['\\'] = 0;
}

static void multibyte(Nfa *n, uint32_t from, uint32_t to) {
    uint32_t c1 = nstate(n), c2 = nstate(n), c3 = nstate(n);
    nedge(n, c1, to, 0x80, 0xBF);
    nedge(n, c2, c1, 0x80, 0xBF);
    nedge(n, c3, c2, 0x80, 0xBF);
    nedge(n, from, c1, 0xC2, 0xDF);
    uint32_t e0 = nstate(n), ed = nstate(n), f0 = nstate(n), f4 = nstate(n);
    nedge(n, from, e0, 0xE0, 0xE0);
    nedge(n, e0, c1, 0xA0, 0xBF);
    nedge(n, from, c2, 0xE1, 0xEC);
    nedge(n, from, ed, 0xED, 0xED);
    nedge(n, ed, c1, 0x80, 0x9F);
    nedge(n, from, c2, 0xEE, 0xEF);
    nedge(n, from, f0, 0xF0, 0xF0);
    nedge(n, f0, c2, 0x90, 0xBF);
    nedge(n, from, c3, 0xF1, 0xF3);
    nedge(n, from, f4, 0xF4, 0xF4);
    nedge(n, f4, c2, 0x80, 0x8F);
}

static Frag charset_frag(Nfa *n, CharSet *c, size_t at) {
    drop_unwritable(c);
    Frag f = {nstate(n), nstate(n)};
    int any = c->non_ascii;
    for (int i = 0; i < 128;) {
        if (!c->ascii[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < 128 && c->ascii[j + 1])
            j++;
        nedge(n, f.start, f.end, i, j);
        any = 1;
        i = j + 1;
    }
    if (c->non_ascii)
        multibyte(n, f.start, f.end);
    if (!any)
        fail(
            n,
            "the character set at offset %zu matches nothing the engine writes unescaped (\", \\ and control "
            "characters are never generated)",
            at);
    return f;
}

static int peek(const Nfa *n) {
    return n->pos < n->len ? (unsigned char)n->src[n->pos] : -1;
}

/* \d \w \s and their negations into c; returns 0, or -1 when e is not one. */
static int class_escape(int e, CharSet *c) {
    CharSet t = {{0}, 0};
    int neg = 0;
    switch (e) {
    case 'D':
        neg = 1;
        /* fall through */
    case 'd':
        set_range(&t, '0', '9', 1);
        break;
    case 'W':
        neg = 1;
        /* fall through */
    case 'w':
        set_range(&t, '0', '9', 1);
        set_range(&t, 'A', 'Z', 1);
        set_range(&t, 'a', 'z', 1);
        t.ascii['_'] = 1;
        break;
    case 'S':
        neg = 1;
        /* fall through */
    case 's':
        t.ascii[' '] = 1;
        break;
    default:
        return -1;
    }
    for (int i = 0; i < 128; i++)
        if (t.ascii[i] != neg)
            c->ascii[i] = 1;
    if (neg)
        c->non_ascii = 1;
    return 0;
}

/* The literal byte of an escape like \. \- \/ ; -1 when unsupported. */
static int escaped_literal(int e) {
    if (e < 0 || e >= 128)
        return -1;
    if (strchr(".-/^$|()[]{}*+?:,=!<>#&~%@' ", e))
        return e;
    return -1;
}

static Frag parse_alt(Nfa *n);

static Frag parse_class(Nfa *n) {
    size_t at = n->pos;
    n->pos++; /* '[' */
    CharSet c = {{0}, 0};
    int neg = 0;
    if (peek(n) == '^') {
        neg = 1;
        n->pos++;
    }
    int first = 1;
    while (peek(n) != ']' || first) {
        first = 0;
        int ch = peek(n);
        if (ch < 0) {
            fail(n, "unclosed '[' at offset %zu", at);
            return (Frag){0, 0};
        }
        n->pos++;
        if (ch == '\\') {
            int e = peek(n);
            n->pos++;
            if (class_escape(e, &c) == 0)
                continue;
            ch = escaped_literal(e);
            if (ch < 0 && e == ']')
                ch = ']';
            if (ch < 0) {
                fail(n, "unsupported escape '\\%c' at offset %zu", e > 32 && e < 127 ? e : '?', n->pos - 2);
                return (Frag){0, 0};
            }
        } else if (ch >= 0x80) {
            fail(n,
                 "non-ASCII character in a [...] class at offset %zu (use ASCII ranges; '.' and [^...] match "
                 "any non-ASCII character)",
                 n->pos - 1);
            return (Frag){0, 0};
        }
        int hi = ch;
        if (peek(n) == '-' && n->pos + 1 < n->len && n->src[n->pos + 1] != ']') {
            n->pos++;
            hi = peek(n);
            n->pos++;
            if (hi == '\\') {
                hi = escaped_literal(peek(n));
                n->pos++;
            }
            if (hi < 0 || hi >= 0x80 || hi < ch) {
                fail(n, "bad range in a [...] class at offset %zu", n->pos - 1);
                return (Frag){0, 0};
            }
        }
        set_range(&c, ch, hi, 1);
    }
    n->pos++; /* ']' */
    if (neg) {
        for (int i = 0; i < 128; i++)
            c.ascii[i] = !c.ascii[i];
        c.non_ascii = !c.non_ascii;
    }
    return charset_frag(n, &c, at);
}

static Frag parse_atom(Nfa *n) {
    int ch = peek(n);
    size_t at = n->pos;
    if (ch == '(') {
        n->pos++;
        if (peek(n) == '?') {
            if (n->pos + 1 < n->len && n->src[n->pos + 1] == ':')
                n->pos += 2;
            else {
                fail(n,
                     "unsupported group '(?%c' at offset %zu (lookaround and named groups are not supported)",
                     n->pos + 1 < n->len ? n->src[n->pos + 1] : '?', at);
                return (Frag){0, 0};
            }
        }
        Frag f = parse_alt(n);
        if (peek(n) != ')') {
            fail(n, "unclosed '(' at offset %zu", at);
            return f;
        }
        n->pos++;
        return f;
    }
    if (ch == '[')
        return parse_class(n);
    CharSet c = {{0}, 0};
    if (ch == '.') {
        n->pos++;
        set_range(&c, 0, 127, 1);
        c.non_ascii = 1;
        return charset_frag(n, &c, at);
    }
    if (ch == '\\') {
        n->pos++;
        int e = peek(n);
        n->pos++;
        if (class_escape(e, &c) == 0)
            return charset_frag(n, &c, at);
        int lit = escaped_literal(e);
        if (lit < 0) {
            fail(n, "unsupported escape '\\%c' at offset %zu", e > 32 && e < 127 ? e : '?', at);
            return (Frag){0, 0};
        }
        c.ascii[lit] = 1;
        return charset_frag(n, &c, at);
    }
    if (ch == '^' || ch == '$') {
        fail(n, "anchor '%c' at offset %zu: only a leading '^' and a trailing '$' are supported", ch, at);
        return (Frag){0, 0};
    }
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{' || ch == ')' || ch == '|' || ch < 0) {
        fail(n, "unexpected '%c' at offset %zu", ch < 0 ? '?' : ch, at);
        return (Frag){0, 0};
    }
    /* a literal character (its UTF-8 bytes) */
    if (ch < 0x80) {
        n->pos++;
        c.ascii[ch] = 1;
        return charset_frag(n, &c, at);
    }
    size_t len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
    if (ch < 0xC2 || n->pos + len > n->len) {
        fail(n, "invalid UTF-8 in the pattern at offset %zu", at);
        return (Frag){0, 0};
    }
    Frag f = {nstate(n), 0};
    uint32_t cur = f.start;
    for (size_t i = 0; i < len; i++) {
        uint32_t next = nstate(n);
        int b = (unsigned char)n->src[n->pos + i];
        nedge(n, cur, next, b, b);
        cur = next;
    }
    n->pos += len;
    f.end = cur;
    return f;
}

static int parse_count(Nfa *n, int *out) {
    int v = 0, digits = 0;
    while (peek(n) >= '0' && peek(n) <= '9') {
        v = v * 10 + (peek(n) - '0');
        if (v > MAX_REPEAT)
            return fail(n, "repetition count over %d at offset %zu", MAX_REPEAT, n->pos);
        n->pos++;
        digits++;
    }
    *out = v;
    return digits ? 0 : -1;
}

/* atom followed by an optional quantifier; the atom is re-parsed per copy. */
static Frag parse_repeat(Nfa *n) {
    size_t atom_pos = n->pos;
    Frag f = parse_atom(n);
    size_t atom_end = n->pos;
    int ch = peek(n);
    int lo = 1, hi = 1;
    if (ch == '*')
        lo = 0, hi = -1;
    else if (ch == '+')
        lo = 1, hi = -1;
    else if (ch == '?')
        lo = 0, hi = 1;
    else if (ch == '{') {
        size_t at = n->pos;
        n->pos++;
        if (parse_count(n, &lo) != 0) {
            fail(n, "bad repetition at offset %zu", at);
            return f;
        }
        hi = lo;
        if (peek(n) == ',') {
            n->pos++;
            hi = -1;
            if (peek(n) != '}' && parse_count(n, &hi) != 0) {
                fail(n, "bad repetition at offset %zu", at);
                return f;
            }
        }
        if (peek(n) != '}' || (hi >= 0 && hi < lo)) {
            fail(n, "bad repetition at offset %zu", at);
            return f;
        }
    } else
        return f;
    n->pos++;
    if (peek(n) == '?' || peek(n) == '+') {
        fail(n, "lazy or possessive quantifier at offset %zu is not supported", n->pos);
        return f;
    }
    size_t after = n->pos;
    if (n->failed)
        return f;
    /* copies: the first is f; the others are parsed again from atom_pos */
    Frag copies_start = {nstate(n), 0};
    uint32_t cur = copies_start.start;
    int n_copies = hi < 0 ? (lo > 0 ? lo : 1) : hi;
    for (int i = 0; i < n_copies && !n->failed; i++) {
        Frag c;
        if (i == 0)
            c = f;
        else {
            n->pos = atom_pos;
            c = parse_atom(n);
            n->pos = atom_end;
        }
        /* a fresh end state per copy: a skip edge must never land on a state
         * with a loop edge out of it (Thompson's construction pitfall) */
        uint32_t next = nstate(n);
        nedge(n, cur, c.start, -1, -1);
        nedge(n, c.end, next, -1, -1);
        if (hi < 0 && i == n_copies - 1) {
            nedge(n, c.end, c.start, -1, -1); /* the last copy loops */
            if (lo == 0)
                nedge(n, cur, next, -1, -1);
        } else if (i >= lo)
            nedge(n, cur, next, -1, -1); /* an optional copy */
        cur = next;
    }
    if (hi == 0) { /* {0} / {0,0}: matches the empty string */
        Frag e = {copies_start.start, nstate(n)};
        nedge(n, e.start, e.end, -1, -1);
        n->pos = after;
        return e;
    }
    n->pos = after;
    return (Frag){copies_start.start, cur};
}

static Frag parse_concat(Nfa *n) {
    Frag f = {nstate(n), 0};
    f.end = f.start;
    while (!n->failed && peek(n) >= 0 && peek(n) != '|' && peek(n) != ')') {
        if (peek(n) == '$' && n->pos + 1 == n->len) {
            n->pos++;
            break;
        }
        Frag r = parse_repeat(n);
        nedge(n, f.end, r.start, -1, -1);
        f.end = r.end;
    }
    return f;
}

static Frag parse_alt(Nfa *n) {
    Frag first = parse_concat(n);
    if (peek(n) != '|')
        return first;
    Frag f = {nstate(n), nstate(n)};
    nedge(n, f.start, first.start, -1, -1);
    nedge(n, first.end, f.end, -1, -1);
    while (!n->failed && peek(n) == '|') {
        n->pos++;
        Frag b = parse_concat(n);
        nedge(n, f.start, b.start, -1, -1);
        nedge(n, b.end, f.end, -1, -1);
    }
    return f;
}

/* ---- subset construction */

typedef struct {
    uint32_t *off, *to; /* CSR of epsilon edges */
    uint32_t *boff;     /* CSR of byte edges into bedge */
    NEdge *bedge;
} NfaIndex;

typedef struct {
    uint32_t *states; /* sorted NFA state ids */
    uint32_t n;
} DState;

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* eps-closure of list[0..n) in place (list has room for all NFA states). */
static uint32_t eps_close(const NfaIndex *ix, uint32_t *list, uint32_t n, uint8_t *seen, uint32_t n_states) {
    memset(seen, 0, n_states);
    for (uint32_t i = 0; i < n; i++)
        seen[list[i]] = 1;
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t e = ix->off[list[i]]; e < ix->off[list[i] + 1]; e++)
            if (!seen[ix->to[e]]) {
                seen[ix->to[e]] = 1;
                list[n++] = ix->to[e];
            }
    qsort(list, n, sizeof *list, cmp_u32);
    return n;
}

int regex_compile(Automaton *a, const char *pattern, size_t len, uint32_t from, uint32_t to, char *why,
                  size_t why_len) {
    Nfa n = {.src = pattern, .len = len, .why = why, .why_len = why_len};
    if (len > 0 && pattern[0] == '^')
        n.pos = 1;
    Frag f = parse_alt(&n);
    if (!n.failed && n.pos < n.len)
        fail(&n, "unexpected '%c' at offset %zu", n.src[n.pos], n.pos);
    if (n.failed) {
        free(n.edges);
        return -1;
    }
    uint32_t ns = n.n_states;
    NfaIndex ix = {0};
    ix.off = calloc(ns + 1, sizeof *ix.off);
    ix.boff = calloc(ns + 1, sizeof *ix.boff);
    ix.to = calloc(n.n_edges + 1, sizeof *ix.to);
    ix.bedge = calloc(n.n_edges + 1, sizeof *ix.bedge);
    uint32_t *list = malloc(((size_t)ns + 1) * sizeof *list);
    uint8_t *seen = malloc(ns + 1);
    DState *dfa = calloc(MAX_DFA, sizeof *dfa);
    uint32_t *dfa_au = calloc(MAX_DFA, sizeof *dfa_au);
    uint32_t *table = calloc(DFA_HASH, sizeof *table); /* DFA state + 1 by hash of its NFA set */
    int rc = 0;
    uint32_t n_dfa = 0;
    if (!ix.off || !ix.boff || !ix.to || !ix.bedge || !list || !seen || !dfa || !dfa_au || !table) {
        snprintf(why, why_len, "out of memory");
        rc = -1;
        goto done;
    }
    for (size_t i = 0; i < n.n_edges; i++) {
        if (n.edges[i].lo < 0)
            ix.off[n.edges[i].from + 1]++;
        else
            ix.boff[n.edges[i].from + 1]++;
    }
    for (uint32_t s = 0; s < ns; s++) {
        ix.off[s + 1] += ix.off[s];
        ix.boff[s + 1] += ix.boff[s];
    }
    {
        uint32_t *fe = calloc(ns + 1, sizeof *fe), *fb = calloc(ns + 1, sizeof *fb);
        if (!fe || !fb) {
            free(fe);
            free(fb);
            snprintf(why, why_len, "out of memory");
            rc = -1;
            goto done;
        }
        for (size_t i = 0; i < n.n_edges; i++) {
            uint32_t s = n.edges[i].from;
            if (n.edges[i].lo < 0)
                ix.to[ix.off[s] + fe[s]++] = n.edges[i].to;
            else
                ix.bedge[ix.boff[s] + fb[s]++] = n.edges[i];
        }
        free(fe);
        free(fb);
    }
    /* byte intervals: boundaries of every edge range */
    uint8_t cut[257] = {0};
    for (size_t i = 0; i < n.n_edges; i++)
        if (n.edges[i].lo >= 0) {
            cut[n.edges[i].lo] = 1;
            cut[n.edges[i].hi + 1] = 1;
        }
    list[0] = f.start;
    uint32_t cnt = eps_close(&ix, list, 1, seen, ns);
    dfa[0].states = malloc(cnt * sizeof *dfa[0].states);
    if (!dfa[0].states) {
        rc = -1;
        goto done;
    }
    memcpy(dfa[0].states, list, cnt * sizeof *list);
    dfa[0].n = cnt;
    n_dfa = 1;
    {
        uint64_t h = 1469598103934665603ull;
        for (uint32_t q = 0; q < cnt; q++)
            h = (h ^ list[q]) * 1099511628211ull;
        table[(uint32_t)(h >> 20) & (DFA_HASH - 1)] = 1;
    }
    dfa_au[0] = au_state(a);
    au_eps(a, from, dfa_au[0]);
    for (uint32_t d = 0; d < n_dfa && rc == 0; d++) {
        for (uint32_t k = 0; k < dfa[d].n; k++)
            if (dfa[d].states[k] == f.end)
                au_eps(a, dfa_au[d], to);
        for (int lo = 0; lo < 256 && rc == 0;) {
            int hi = lo;
            while (hi + 1 < 256 && !cut[hi + 1])
                hi++;
            /* move on byte lo (every byte of [lo, hi] behaves the same) */
            uint32_t m = 0;
            for (uint32_t k = 0; k < dfa[d].n; k++) {
                uint32_t s = dfa[d].states[k];
                for (uint32_t e = ix.boff[s]; e < ix.boff[s + 1]; e++)
                    if (ix.bedge[e].lo <= lo && lo <= ix.bedge[e].hi) {
                        uint32_t t = ix.bedge[e].to;
                        uint32_t q = 0;
                        while (q < m && list[q] != t)
                            q++;
                        if (q == m)
                            list[m++] = t;
                    }
            }
            if (m > 0) {
                m = eps_close(&ix, list, m, seen, ns);
                uint64_t h = 1469598103934665603ull;
                for (uint32_t q = 0; q < m; q++)
                    h = (h ^ list[q]) * 1099511628211ull;
                uint32_t slot = (uint32_t)(h >> 20) & (DFA_HASH - 1), target = n_dfa;
                for (; table[slot]; slot = (slot + 1) & (DFA_HASH - 1)) {
                    uint32_t t = table[slot] - 1;
                    if (dfa[t].n == m && dfa[t].states &&
                        memcmp(dfa[t].states, list, m * sizeof *list) == 0) {
                        target = t;
                        break;
                    }
                }
                if (target == n_dfa) {
                    if (n_dfa == MAX_DFA) {
                        snprintf(why, why_len, "pattern too complex (its DFA needs over %d states)", MAX_DFA);
                        rc = -1;
                        break;
                    }
                    dfa[n_dfa].states = malloc(m * sizeof *list);
                    if (!dfa[n_dfa].states) {
                        snprintf(why, why_len, "out of memory");
                        rc = -1;
                        break;
                    }
                    memcpy(dfa[n_dfa].states, list, m * sizeof *list);
                    dfa[n_dfa].n = m;
                    dfa_au[n_dfa] = au_state(a);
                    table[slot] = n_dfa + 1;
                    n_dfa++;
                }
                au_byte(a, dfa_au[d], (uint8_t)lo, (uint8_t)hi, dfa_au[target]);
            }
            lo = hi + 1;
        }
    }
done:
    for (uint32_t d = 0; d < n_dfa; d++)
        free(dfa[d].states);
    free(dfa);
    free(dfa_au);
    free(table);
    free(list);
    free(seen);
    free(ix.off);
    free(ix.boff);
    free(ix.to);
    free(ix.bedge);
    free(n.edges);
    return rc;
}
