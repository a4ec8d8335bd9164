/* The per-tokenizer tables of constrained decoding (vocab.h): token bytes,
 * control-token flags, the ids sorted by bytes and the preorder byte trie
 * with, per node, how many plain JSON-string characters its suffixes hold. */
#include "grammar/vocab.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TOKEN_BYTES 255

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* "<unusedN>", "<mask>", "[multimodal]": added tokens Gemma 3 does not mark
 * special but that never belong in text (<unused94>/<unused95> are MedGemma's
 * thinking markers). */
static int is_control_piece(const char *p) {
    if (!strcmp(p, "<mask>") || !strcmp(p, "[multimodal]"))
        return 1;
    if (strncmp(p, "<unused", 7) != 0)
        return 0;
    const char *q = p + 7;
    if (*q < '0' || *q > '9')
        return 0;
    while (*q >= '0' && *q <= '9')
        q++;
    return q[0] == '>' && q[1] == '\0';
}

/* Plain characters in s[0..n) as a string body reads them (strict UTF-8:
 * no overlongs, no surrogates, <= U+10FFFF; the last character may be
 * unfinished), or VOCAB_NOT_PLAIN. */
uint8_t vocab_plain_count(const uint8_t *s, size_t n) {
    size_t i = 0, chars = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            return VOCAB_NOT_PLAIN;
        size_t len = 1;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80)
            len = 1;
        else if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else
            return VOCAB_NOT_PLAIN;
        for (size_t k = 1; k < len && i + k < n; k++) {
            uint8_t b = s[i + k];
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
                return VOCAB_NOT_PLAIN;
        }
        i += len;
        chars++;
    }
    return chars < VOCAB_NOT_PLAIN ? (uint8_t)chars : VOCAB_NOT_PLAIN - 1;
}

static int cmp_ids(const void *x, const void *y, void *arg) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    const GrammarVocab *v = arg;
    size_t la = v->tok_len[a], lb = v->tok_len[b];
    int c = memcmp(v->bytes + v->tok_off[a], v->bytes + v->tok_off[b], la < lb ? la : lb);
    if (c)
        return c;
    if (la != lb)
        return la < lb ? -1 : 1;
    return a < b ? -1 : a > b;
}

static void trie_free(VocabTrie *t) {
    free(t->ids);
    free(t->node_byte);
    free(t->node_depth);
    free(t->node_end);
    free(t->node_tok);
}

void grammar_vocab_free(GrammarVocab *v) {
    if (!v)
        return;
    free(v->is_control);
    free(v->bytes);
    free(v->tok_off);
    free(v->tok_len);
    trie_free(&v->all);
    trie_free(&v->quoted);
    free(v->plain_chars);
    free(v->plain_ids);
    free(v->last_quote);
    for (int b = 0; b < VOCAB_PLAIN_BITS + 2; b++)
        free(v->plain_bits[b]);
    free(v);
}

int grammar_mask_words(const GrammarVocab *v) {
    return (v->n_bits + 31) / 32;
}

/* Token bytes of every id into v->bytes; control flags. */
static int read_tokens(GrammarVocab *v, const Tokenizer *t, Error *err) {
    int n_ids = tokenizer_vocab_size(t);
    if (n_ids > v->n_bits)
        n_ids = v->n_bits; /* ids past the logits rows are never generated */
    size_t cap = (size_t)n_ids * 8 + 1024, len = 0;
    v->bytes = malloc(cap);
    if (!v->bytes)
        return error_set(err, "out of memory for the grammar vocabulary");
    for (int id = 0; id < n_ids; id++) {
        const char *piece = tokenizer_piece(t, id);
        v->tok_off[id] = (uint32_t)len;
        if (!piece || tokenizer_is_special(t, id) || is_control_piece(piece)) {
            v->is_control[id] = 1;
            continue;
        }
        size_t plen = strlen(piece);
        if (len + plen + 1 > cap) {
            cap = (cap + plen) * 2;
            uint8_t *b = realloc(v->bytes, cap);
            if (!b)
                return error_set(err, "out of memory for the grammar vocabulary");
            v->bytes = b;
        }
        uint8_t *out = v->bytes + len;
        size_t n = 0;
        int byte = tokenizer_byte_fallback(t, id);
        if (byte >= 0)
            out[n++] = (uint8_t)byte;
        else
            for (size_t i = 0; i < plen; i++) {
                if (i + 2 < plen && !memcmp(piece + i, "\xE2\x96\x81", 3)) {
                    out[n++] = ' ';
                    i += 2;
                } else
                    out[n++] = (uint8_t)piece[i];
            }
        if (n == 0 || n > MAX_TOKEN_BYTES) {
            v->is_control[id] = 1; /* decodes to nothing (or too long to index): never generated here */
            continue;
        }
        v->tok_len[id] = (uint8_t)n;
        len += n;
    }
    for (int id = n_ids; id < v->n_bits; id++) {
        v->is_control[id] = 1;
        v->tok_off[id] = (uint32_t)len;
    }
    return 0;
}

/* Builds the preorder trie over t->ids (t->n_tokens of them, sorted). */
static int build_trie(const GrammarVocab *v, VocabTrie *t, Error *err) {
    if (!v->bytes || !t->ids)
        return error_set(err, "the token trie has no tokens to index");
    size_t cap = (size_t)t->n_tokens * 2 + 16;
    t->node_byte = malloc(cap);
    t->node_depth = malloc(cap);
    t->node_end = malloc(cap * sizeof *t->node_end);
    t->node_tok = malloc((cap + 1) * sizeof *t->node_tok);
    if (!t->node_byte || !t->node_depth || !t->node_end || !t->node_tok)
        return error_set(err, "out of memory for the token trie");
    uint32_t path[MAX_TOKEN_BYTES + 1];
    int path_len = 1; /* path[d] = node at depth d */
    path[0] = 0;
    t->node_byte[0] = 0;
    t->node_depth[0] = 0;
    t->node_tok[0] = 0;
    uint32_t n = 1;
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (uint32_t i = 0; i < t->n_tokens; i++) {
        int32_t id = t->ids[i];
        const uint8_t *s = v->bytes + v->tok_off[id];
        size_t len = v->tok_len[id];
        size_t lcp = 0;
        while (prev && lcp < len && lcp < prev_len && s[lcp] == prev[lcp])
            lcp++;
        while ((size_t)path_len - 1 > lcp) {
            path_len--;
            t->node_end[path[path_len]] = n;
        }
        for (size_t d = lcp; d < len; d++) {
            if (n + 1 >= cap) {
                cap *= 2;
                uint8_t *b = realloc(t->node_byte, cap), *dd = realloc(t->node_depth, cap);
                if (b)
                    t->node_byte = b;
                if (dd)
                    t->node_depth = dd;
                uint32_t *e = realloc(t->node_end, cap * sizeof *e);
                if (e)
                    t->node_end = e;
                uint32_t *tk = realloc(t->node_tok, (cap + 1) * sizeof *tk);
                if (tk)
                    t->node_tok = tk;
                if (!b || !dd || !e || !tk)
                    return error_set(err, "out of memory for the token trie");
            }
            t->node_byte[n] = s[d];
            t->node_depth[n] = (uint8_t)(d + 1);
            t->node_tok[n] = i;
            path[path_len++] = n++;
        }
        prev = s;
        prev_len = len;
    }
    while (path_len > 0) {
        path_len--;
        t->node_end[path[path_len]] = n;
    }
    t->node_tok[n] = t->n_tokens;
    t->n_nodes = n;
    return 0;
}

int grammar_vocab_new(GrammarVocab **out, const Tokenizer *t, int n_rows, int32_t end_token, Error *err) {
    *out = NULL;
    double t0 = now_ms();
    int n_ids = tokenizer_vocab_size(t);
    if (n_rows <= 0)
        return error_set(err, "bad logits row count %d", n_rows);
    if (n_ids > n_rows)
        n_ids = n_rows; /* ids past the logits rows are never generated */
    if (end_token < 0 || end_token >= n_rows)
        return error_set(err, "end token %d is outside the vocabulary", end_token);
    GrammarVocab *v = calloc(1, sizeof *v);
    if (!v)
        return error_set(err, "out of memory for the grammar vocabulary");
    v->n_bits = n_rows;
    v->end_token = end_token;
    v->is_control = calloc((size_t)n_rows, 1);
    v->tok_off = calloc((size_t)n_rows, sizeof *v->tok_off);
    v->tok_len = calloc((size_t)n_rows, 1);
    if (!v->is_control || !v->tok_off || !v->tok_len) {
        grammar_vocab_free(v);
        return error_set(err, "out of memory for the grammar vocabulary");
    }
    if (read_tokens(v, t, err) != 0) {
        grammar_vocab_free(v);
        return -1;
    }
    uint32_t n_all = 0, n_quoted = 0;
    for (int id = 0; id < n_ids; id++)
        if (v->tok_len[id]) {
            const uint8_t *b = v->bytes + v->tok_off[id];
            n_all++;
            n_quoted += memchr(b, '"', v->tok_len[id]) || memchr(b, '\\', v->tok_len[id]);
        }
    v->all.ids = malloc(((size_t)n_all + 1) * sizeof *v->all.ids);
    v->quoted.ids = malloc(((size_t)n_quoted + 1) * sizeof *v->quoted.ids);
    v->plain_chars = malloc((size_t)n_rows);
    v->last_quote = malloc((size_t)n_rows);
    v->plain_ids = malloc(((size_t)n_all + 1) * sizeof *v->plain_ids);
    if (!v->all.ids || !v->quoted.ids || !v->plain_chars || !v->plain_ids || !v->last_quote) {
        grammar_vocab_free(v);
        return error_set(err, "out of memory for the grammar vocabulary");
    }
    uint32_t per_count[256] = {0};
    for (int id = 0; id < n_rows; id++) {
        v->plain_chars[id] = VOCAB_NOT_PLAIN;
        v->last_quote[id] = VOCAB_NO_QUOTE;
        if (id >= n_ids || !v->tok_len[id])
            continue;
        const uint8_t *b = v->bytes + v->tok_off[id];
        for (int i = v->tok_len[id] - 1; i >= 0; i--)
            if (b[i] == '"' || b[i] == '\\') {
                v->last_quote[id] = (uint8_t)i;
                break;
            }
        v->all.ids[v->all.n_tokens++] = id;
        if (memchr(b, '"', v->tok_len[id]) || memchr(b, '\\', v->tok_len[id])) {
            v->quoted.ids[v->quoted.n_tokens++] = id;
            if (v->tok_len[id] > v->quoted_max_len)
                v->quoted_max_len = v->tok_len[id];
        }
        v->plain_chars[id] = vocab_plain_count(b, v->tok_len[id]);
        per_count[v->plain_chars[id]]++;
    }
    /* plain ids by character count (a counting sort) */
    uint32_t acc = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t c = b < VOCAB_NOT_PLAIN ? per_count[b] : 0;
        per_count[b] = acc;
        acc += c;
        v->plain_upto[b] = acc;
    }
    for (int id = 0; id < n_ids; id++)
        if (v->tok_len[id] && v->plain_chars[id] != VOCAB_NOT_PLAIN)
            v->plain_ids[per_count[v->plain_chars[id]]++] = id;
    int words = grammar_mask_words(v);
    for (int b = 0; b < VOCAB_PLAIN_BITS + 2; b++) {
        v->plain_bits[b] = calloc((size_t)words, sizeof **v->plain_bits);
        if (!v->plain_bits[b]) {
            grammar_vocab_free(v);
            return error_set(err, "out of memory for the grammar vocabulary");
        }
        uint32_t upto = v->plain_upto[b <= VOCAB_PLAIN_BITS ? b : VOCAB_NOT_PLAIN - 1];
        for (uint32_t i = 0; i < upto; i++)
            v->plain_bits[b][v->plain_ids[i] >> 5] |= 1u << (v->plain_ids[i] & 31);
    }
    qsort_r(v->all.ids, v->all.n_tokens, sizeof *v->all.ids, cmp_ids, v);
    qsort_r(v->quoted.ids, v->quoted.n_tokens, sizeof *v->quoted.ids, cmp_ids, v);
    if (build_trie(v, &v->all, err) != 0 || build_trie(v, &v->quoted, err) != 0) {
        grammar_vocab_free(v);
        return -1;
    }
    v->build_ms = now_ms() - t0;
    *out = v;
    return 0;
}

void grammar_mask_logits(const uint32_t *mask, float *logits, int n) {
    for (int w = 0; w * 32 < n; w++) {
        uint32_t bits = mask[w];
        if (bits == UINT32_MAX)
            continue;
        int end = w * 32 + 32 < n ? w * 32 + 32 : n;
        for (int i = w * 32; i < end; i++)
            if (!(bits >> (i & 31) & 1))
                logits[i] = -INFINITY;
    }
}
