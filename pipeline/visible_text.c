/* Thinking-trace removal and stop strings; see visible_text.h. */
#include "pipeline/visible_text.h"

#include <string.h>

/* Length of the longest proper prefix of word that ends s[0..len). */
static size_t partial_suffix(const char *s, size_t len, const char *word) {
    size_t wl = strlen(word);
    size_t best = 0;
    for (size_t k = 1; k < wl && k <= len; k++)
        if (!memcmp(s + len - k, word, k))
            best = k;
    return best;
}

static const char *find_bytes(const char *s, size_t len, const char *word) {
    size_t wl = strlen(word);
    if (wl == 0 || wl > len)
        return NULL;
    for (size_t i = 0; i + wl <= len; i++)
        if (s[i] == word[0] && !memcmp(s + i, word, wl))
            return s + i;
    return NULL;
}

/* Bytes of a UTF-8 character that s[0..len) ends in the middle of (0..3). */
static size_t incomplete_utf8_tail(const char *s, size_t len) {
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        unsigned char c = (unsigned char)s[len - k];
        if ((c & 0xc0) == 0x80)
            continue; /* continuation byte: look further back */
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

static int is_space(char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

size_t visible_text(const char *full, size_t len, int final, const char *const *stops, int n_stops, char *out,
                    int *stop_hit) {
    size_t n = 0;
    if (stop_hit)
        *stop_hit = 0;
    /* 1. The thinking trace: text before the open marker, then the text after
     *    the close marker without its leading blank lines. */
    const char *open = find_bytes(full, len, THINKING_OPEN);
    if (open) {
        size_t before = (size_t)(open - full);
        memcpy(out, full, before);
        n = before;
        const char *rest = open + strlen(THINKING_OPEN);
        const char *close = find_bytes(rest, len - (size_t)(rest - full), THINKING_CLOSE);
        if (close) {
            const char *p = close + strlen(THINKING_CLOSE);
            const char *end = full + len;
            while (p < end && is_space(*p))
                p++;
            memcpy(out + n, p, (size_t)(end - p));
            n += (size_t)(end - p);
        }
    } else {
        memcpy(out, full, len);
        n = len;
        if (!final)
            n -= partial_suffix(out, n, THINKING_OPEN);
    }
    /* 2. Stop strings: cut at the earliest one; while running, hold back a
     *    tail that may grow into one. */
    const char *cut = NULL;
    for (int i = 0; i < n_stops; i++) {
        const char *at = find_bytes(out, n, stops[i]);
        if (at && (!cut || at < cut))
            cut = at;
    }
    if (cut) {
        n = (size_t)(cut - out);
        if (stop_hit)
            *stop_hit = 1;
    } else if (!final) {
        size_t hold = 0;
        for (int i = 0; i < n_stops; i++) {
            size_t k = partial_suffix(out, n, stops[i]);
            if (k > hold)
                hold = k;
        }
        n -= hold;
    }
    if (!final)
        n -= incomplete_utf8_tail(out, n);
    out[n] = 0;
    return n;
}
