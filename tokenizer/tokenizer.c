/* Encoding and decoding with a loaded Tokenizer (see tokenizer.h).
 *
 * encode: the raw text is cut at added tokens (leftmost-longest match), each
 * piece between them is normalized (Replace), split (Split,
 * MergedWithPrevious) and BPE'd (bpe.c); then <bos> is prepended when asked.
 * decode: each id's piece goes through the decoder chain Replace ->
 * ByteFallback -> Fuse. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

size_t tok_utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t min, cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2, min = 0x80, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, min = 0x800, cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i < len)
            return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += len;
    }
    return n;
}

/* ---- encode */

typedef struct {
    int32_t *ids;
    size_t n, cap;
    BpeWork *bpe;
    char *norm; /* normalized piece */
    size_t norm_cap;
} EncodeState;

static int push_id(EncodeState *st, int32_t id) {
    if (st->n == st->cap) {
        size_t c = st->cap ? 2 * st->cap : 64;
        int32_t *g = realloc(st->ids, c * sizeof *g);
        if (!g)
            return -1;
        st->ids = g;
        st->cap = c;
    }
    st->ids[st->n++] = id;
    return 0;
}

/* Replace normalizer: every non-overlapping occurrence of from, left to right. */
static int normalize(const Tokenizer *t, EncodeState *st, const char *s, size_t n, const char **out,
                     size_t *out_n) {
    if (!t->norm_from) {
        *out = s;
        *out_n = n;
        return 0;
    }
    size_t worst =
        n / t->norm_from_len * (t->norm_to_len > t->norm_from_len ? t->norm_to_len : t->norm_from_len) + n +
        1;
    if (!st->norm || worst > st->norm_cap) { /* the first call always allocates */
        char *g = realloc(st->norm, worst);
        if (!g)
            return -1;
        st->norm = g;
        st->norm_cap = worst;
    }
    size_t o = 0, i = 0, fl = t->norm_from_len;
    while (i < n) {
        const char *hit =
            fl == 1 ? memchr(s + i, t->norm_from[0], n - i) : memmem(s + i, n - i, t->norm_from, fl);
        size_t stop = hit ? (size_t)(hit - s) : n;
        memcpy(st->norm + o, s + i, stop - i);
        o += stop - i;
        if (!hit)
            break;
        memcpy(st->norm + o, t->norm_to, t->norm_to_len);
        o += t->norm_to_len;
        i = stop + fl;
    }
    *out = st->norm;
    *out_n = o;
    return 0;
}

static int encode_word(const Tokenizer *t, EncodeState *st, const char *w, size_t n) {
    return n ? bpe_encode_word(t, st->bpe, w, n, &st->ids, &st->n, &st->cap) : 0;
}

/* Split pre-tokenizer, MergedWithPrevious: each match of the pattern joins the
 * piece before it (unless that piece was itself a match). */
static int encode_piece(const Tokenizer *t, EncodeState *st, const char *raw, size_t raw_n) {
    const char *s;
    size_t n;
    if (raw_n == 0)
        return 0;
    if (normalize(t, st, raw, raw_n, &s, &n))
        return -1;
    /* Not a leak: s may point into st->norm, which tokenizer_encode frees (the
     * analyzer loses track of it when bpe_encode_word is given &st->ids). */
    if (!t->split_pattern)
        return encode_word(t, st, s, n); // NOLINT(clang-analyzer-unix.Malloc)
    size_t pl = t->split_pattern_len, pos = 0, pend_start = 0, pend_end = 0;
    int have_pending = 0, prev_match = 0;
    while (pos < n) {
        const char *hit = memmem(s + pos, n - pos, t->split_pattern, pl);
        size_t m = hit ? (size_t)(hit - s) : n;
        if (m > pos) { /* a non-matching stretch */
            if (have_pending && encode_word(t, st, s + pend_start, pend_end - pend_start))
                return -1;
            pend_start = pos, pend_end = m, have_pending = 1, prev_match = 0;
        }
        if (!hit)
            break;
        if (!prev_match && have_pending) {
            pend_end = m + pl;
        } else {
            if (have_pending && encode_word(t, st, s + pend_start, pend_end - pend_start))
                return -1;
            pend_start = m, pend_end = m + pl, have_pending = 1;
        }
        prev_match = 1;
        pos = m + pl;
    }
    return have_pending ? encode_word(t, st, s + pend_start, pend_end - pend_start) : 0;
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                     size_t *n_ids, Error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (len > TOK_MAX_TEXT_BYTES)
        return error_set(err, "text of %zu bytes is over the %d MiB limit", len, TOK_MAX_TEXT_BYTES >> 20);
    size_t bad = tok_utf8_check((const unsigned char *)text, len);
    if (bad < len)
        return error_set(err, "text is not valid UTF-8 at byte offset %zu", bad);
    EncodeState st = {0};
    st.bpe = bpe_work_new(len);
    int rc = st.bpe ? 0 : -1;
    if (rc == 0 && add_bos && t->bos_id >= 0)
        rc = push_id(&st, t->bos_id);
    size_t piece_start = 0, pos = 0;
    while (rc == 0 && pos < len) {
        size_t match_len;
        int32_t id = tok_added_match(&t->added, text + pos, len - pos, &match_len);
        if (id < 0) {
            pos++;
            continue;
        }
        rc = encode_piece(t, &st, text + piece_start, pos - piece_start);
        if (rc == 0)
            rc = push_id(&st, id);
        pos += match_len;
        piece_start = pos;
    }
    if (rc == 0)
        rc = encode_piece(t, &st, text + piece_start, len - piece_start);
    if (rc == 0 && !st.ids) /* callers get a non-NULL array even when empty */
        st.ids = malloc(sizeof *st.ids), rc = st.ids ? 0 : -1;
    bpe_work_free(st.bpe);
    free(st.norm);
    if (rc) {
        free(st.ids);
        return error_set(err, "out of memory encoding %zu bytes of text", len);
    }
    *ids = st.ids;
    *n_ids = st.n;
    return 0;
}

/* ---- decode */

int tok_decode_end_run(JsonBuf *out, JsonBuf *run) {
    if (run->len == 0)
        return 0;
    int rc = 0;
    if (tok_utf8_check((const unsigned char *)run->data, run->len) == run->len)
        rc = json_buf_append(out, run->data, run->len);
    else
        for (size_t i = 0; i < run->len && rc == 0; i++)
            rc = json_buf_append(out, "\xEF\xBF\xBD", 3);
    run->len = 0;
    return rc;
}

int tok_decode_id(const Tokenizer *t, int32_t id, int skip_special, JsonBuf *out, JsonBuf *run) {
    if (id < 0 || id >= t->n_ids || t->piece_off[id] == UINT32_MAX)
        return 0; /* HF drops ids it does not know */
    if (skip_special && (t->flags[id] & TOK_SPECIAL))
        return 0;
    if (t->flags[id] & TOK_BYTE) {
        unsigned char b = t->byte_value[id];
        return json_buf_append(run, &b, 1);
    }
    if (tok_decode_end_run(out, run))
        return -1;
    const char *s = t->pieces + t->piece_off[id];
    size_t n = t->piece_len[id], fl = t->dec_from_len;
    for (;;) { /* Replace decoder */
        const char *hit = memmem(s, n, t->dec_from, fl);
        size_t stop = hit ? (size_t)(hit - s) : n;
        if (json_buf_append(out, s, stop))
            return -1;
        if (!hit)
            return 0;
        if (json_buf_append(out, t->dec_to, t->dec_to_len))
            return -1;
        s += stop + fl;
        n -= stop + fl;
    }
}

int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text,
                     size_t *len, Error *err) {
    JsonBuf out = {0}, run = {0};
    int rc = json_buf_append(&out, "", 0);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = tok_decode_id(t, ids[i], skip_special, &out, &run);
    if (rc == 0)
        rc = tok_decode_end_run(&out, &run);
    free(run.data);
    if (rc) {
        free(out.data);
        *text = NULL;
        *len = 0;
        return error_set(err, "out of memory decoding %zu ids", n);
    }
    *text = out.data;
    *len = out.len;
    return 0;
}

/* ---- lookups */

int tokenizer_token_id(const Tokenizer *t, const char *piece) {
    size_t n = strlen(piece), match_len = 0;
    int32_t id = tok_added_match(&t->added, piece, n, &match_len);
    if (id >= 0 && match_len == n)
        return id;
    return tok_vocab_find(t, piece, n);
}

int tokenizer_vocab_size(const Tokenizer *t) {
    return t->n_ids;
}

const char *tokenizer_piece(const Tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_ids || t->piece_off[id] == UINT32_MAX)
        return NULL;
    return t->pieces + t->piece_off[id];
}

int tokenizer_is_special(const Tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && (t->flags[id] & TOK_SPECIAL) != 0;
}

int tokenizer_byte_fallback(const Tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_ids || !(t->flags[id] & TOK_BYTE))
        return -1;
    return t->byte_value[id];
}
