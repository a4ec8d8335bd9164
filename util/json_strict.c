/* Strict JSON: an RFC 8259 checker that names each problem, then cJSON and
 * a duplicate-key walk; see json_strict.h. */
#include "util/json_strict.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *s;
    size_t len, pos;
    int depth, max_depth;
    char *msg;
    size_t msg_size;
} Scan;

static int scan_fail(Scan *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int scan_fail(Scan *sc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc->msg, sc->msg_size, fmt, ap);
    va_end(ap);
    return -1;
}

/* Names a byte without echoing text: printable ASCII quoted, the rest as a code. */
static const char *describe(unsigned char c, char buf[16]) {
    if (c > 0x20 && c < 0x7f && c != '\'' && c != '\\')
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static void skip_ws(Scan *sc) {
    while (sc->pos < sc->len) {
        unsigned char c = sc->s[sc->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        sc->pos++;
    }
}

static int cut_short(Scan *sc, const char *what) {
    return scan_fail(sc, "the JSON is cut short at byte %zu (%s)", sc->pos, what);
}

static int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at p (at most `avail` bytes), or 0. */
static size_t utf8_sequence(const unsigned char *p, size_t avail) {
    unsigned c = p[0], n, cp, min;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if (avail < n)
        return 0;
    cp = c & (0x3fu >> (n - 1));
    for (unsigned i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* A \uXXXX escape at sc->pos (pointing at the backslash), with its pair when
 * it is a high surrogate. */
static int scan_unicode_escape(Scan *sc) {
    size_t at = sc->pos;
    unsigned cp;
    if (sc->len - at < 6 || hex4(sc->s + at + 2, &cp) != 0)
        return scan_fail(sc, "invalid \\u escape at byte %zu (four hex digits expected)", at);
    sc->pos += 6;
    if (cp == 0)
        return scan_fail(sc, "\\u0000 (NUL) in a string at byte %zu is not accepted", at);
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return scan_fail(sc, "lone UTF-16 surrogate \\u%04X at byte %zu (a low surrogate without a high one)",
                         cp, at);
    if (cp >= 0xd800 && cp <= 0xdbff) {
        unsigned lo;
        const unsigned char *p = sc->s + sc->pos;
        if (sc->len - sc->pos < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) != 0 || lo < 0xdc00 ||
            lo > 0xdfff)
            return scan_fail(
                sc,
                "lone UTF-16 surrogate \\u%04X at byte %zu (a high surrogate must be followed by "
                "a \\uDC00-\\uDFFF escape)",
                cp, at);
        sc->pos += 6;
    }
    return 0;
}

static int scan_string(Scan *sc) {
    sc->pos++; /* the opening quote */
    for (;;) {
        if (sc->pos >= sc->len)
            return cut_short(sc, "a string is not closed");
        unsigned char c = sc->s[sc->pos];
        if (c == '"') {
            sc->pos++;
            return 0;
        }
        if (c == '\\') {
            if (sc->pos + 1 >= sc->len)
                return cut_short(sc, "an escape is not finished");
            unsigned char e = sc->s[sc->pos + 1];
            if (e == 'u') {
                if (scan_unicode_escape(sc) != 0)
                    return -1;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) {
                char d[16];
                return scan_fail(sc, "invalid escape \\%s at byte %zu in a string", describe(e, d), sc->pos);
            }
            sc->pos += 2;
            continue;
        }
        if (c < 0x20)
            return scan_fail(sc,
                             "raw control character 0x%02x in a string at byte %zu (escape it as \\u%04x)", c,
                             sc->pos, c);
        if (c >= 0x80) {
            size_t n = utf8_sequence(sc->s + sc->pos, sc->len - sc->pos);
            if (n == 0)
                return scan_fail(sc, "invalid UTF-8 (byte 0x%02x) in a string at byte %zu", c, sc->pos);
            sc->pos += n;
            continue;
        }
        sc->pos++;
    }
}

static int is_digit(Scan *sc) {
    return sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9';
}

static int scan_number(Scan *sc) {
    size_t at = sc->pos;
    if (sc->s[sc->pos] == '-')
        sc->pos++;
    if (!is_digit(sc))
        return scan_fail(sc, "invalid number at byte %zu (a digit must follow '-')", at);
    if (sc->s[sc->pos] == '0') {
        sc->pos++;
        if (is_digit(sc))
            return scan_fail(sc, "invalid number at byte %zu (no leading zeros)", at);
    } else {
        while (is_digit(sc))
            sc->pos++;
    }
    if (sc->pos < sc->len && sc->s[sc->pos] == '.') {
        sc->pos++;
        if (!is_digit(sc))
            return scan_fail(sc, "invalid number at byte %zu (digits must follow '.')", at);
        while (is_digit(sc))
            sc->pos++;
    }
    if (sc->pos < sc->len && (sc->s[sc->pos] == 'e' || sc->s[sc->pos] == 'E')) {
        sc->pos++;
        if (sc->pos < sc->len && (sc->s[sc->pos] == '+' || sc->s[sc->pos] == '-'))
            sc->pos++;
        if (!is_digit(sc))
            return scan_fail(sc, "invalid number at byte %zu (digits must follow the exponent)", at);
        while (is_digit(sc))
            sc->pos++;
    }
    return 0;
}

static int scan_value(Scan *sc);

/* An object or array: open is '{' or '['. */
static int scan_container(Scan *sc, unsigned char open) {
    unsigned char close = open == '{' ? '}' : ']';
    const char *member = open == '{' ? "an object member" : "an array element";
    if (++sc->depth > sc->max_depth)
        return scan_fail(sc, "nesting deeper than %d levels of arrays/objects at byte %zu", sc->max_depth,
                         sc->pos);
    sc->pos++;
    skip_ws(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == close) {
        sc->pos++;
        sc->depth--;
        return 0;
    }
    for (;;) {
        if (open == '{') {
            skip_ws(sc);
            if (sc->pos >= sc->len)
                return cut_short(sc, "an object is not closed");
            if (sc->s[sc->pos] != '"') {
                char d[16];
                return scan_fail(sc, "expected a quoted key at byte %zu, found %s", sc->pos,
                                 describe(sc->s[sc->pos], d));
            }
            if (scan_string(sc) != 0)
                return -1;
            skip_ws(sc);
            if (sc->pos >= sc->len)
                return cut_short(sc, "an object is not closed");
            if (sc->s[sc->pos] != ':') {
                char d[16];
                return scan_fail(sc, "expected ':' after a key at byte %zu, found %s", sc->pos,
                                 describe(sc->s[sc->pos], d));
            }
            sc->pos++;
        }
        if (scan_value(sc) != 0)
            return -1;
        skip_ws(sc);
        if (sc->pos >= sc->len)
            return cut_short(sc, open == '{' ? "an object is not closed" : "an array is not closed");
        unsigned char c = sc->s[sc->pos];
        if (c == ',') {
            sc->pos++;
            if (open == '[') {
                skip_ws(sc);
                if (sc->pos < sc->len && sc->s[sc->pos] == ']')
                    return scan_fail(sc, "expected a value at byte %zu, found ']' (no trailing commas)",
                                     sc->pos);
            }
            continue;
        }
        if (c == close) {
            sc->pos++;
            sc->depth--;
            return 0;
        }
        char d[16];
        return scan_fail(sc, "expected ',' or '%c' after %s at byte %zu, found %s", close, member, sc->pos,
                         describe(c, d));
    }
}

static int scan_literal(Scan *sc, const char *word) {
    size_t n = strlen(word);
    if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
        return scan_fail(sc, "invalid literal at byte %zu (expected true, false or null)", sc->pos);
    sc->pos += n;
    return 0;
}

static int scan_value(Scan *sc) {
    skip_ws(sc);
    if (sc->pos >= sc->len)
        return cut_short(sc, "a value was expected");
    unsigned char c = sc->s[sc->pos];
    switch (c) {
    case '{':
    case '[':
        return scan_container(sc, c);
    case '"':
        return scan_string(sc);
    case 't':
        return scan_literal(sc, "true");
    case 'f':
        return scan_literal(sc, "false");
    case 'n':
        return scan_literal(sc, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return scan_number(sc);
        char d[16];
        return scan_fail(sc, "expected a value at byte %zu, found %s", sc->pos, describe(c, d));
    }
}

void json_quote_key(const char *key, char *buf, size_t size) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p && o + 4 < size; p++) {
        if (o >= 40) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        buf[o++] = (*p >= 0x20 && *p < 0x7f) ? (char)*p : '?';
    }
    buf[o] = 0;
}

static int compare_keys(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends ".key" or "[i]" to path (cut with "..." when it would not fit). */
static void path_push(char *path, size_t size, const cJSON *child, int index) {
    size_t n = strlen(path);
    char part[64];
    if (child->string) {
        char q[48];
        json_quote_key(child->string, q, sizeof q);
        snprintf(part, sizeof part, "%s%s", n ? "." : "", q);
    } else {
        snprintf(part, sizeof part, "[%d]", index);
    }
    if (n + strlen(part) + 4 < size)
        memcpy(path + n, part, strlen(part) + 1);
    else if (n + 4 <= size && strcmp(path + n - (n >= 3 ? 3 : 0), "...") != 0)
        memcpy(path + n, "...", 4);
}

static int check_duplicates(const cJSON *node, char *path, size_t path_size, char *msg, size_t msg_size) {
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node))
        return 0;
    if (cJSON_IsObject(node)) {
        size_t n = 0;
        for (const cJSON *c = node->child; c; c = c->next)
            n++;
        if (n > 1) {
            const char **keys = malloc(n * sizeof *keys);
            if (!keys) {
                snprintf(msg, msg_size, "out of memory checking %zu keys", n);
                return -1;
            }
            size_t i = 0;
            for (const cJSON *c = node->child; c; c = c->next)
                keys[i++] = c->string;
            qsort(keys, n, sizeof *keys, compare_keys);
            for (i = 1; i < n; i++) {
                if (strcmp(keys[i - 1], keys[i]) == 0) {
                    char q[48];
                    json_quote_key(keys[i], q, sizeof q);
                    snprintf(msg, msg_size, "duplicate key '%s' in %s: each key may appear once", q,
                             path[0] ? path : "the top-level object");
                    free(keys);
                    return -1;
                }
            }
            free(keys);
        }
    }
    size_t keep = strlen(path);
    int index = 0;
    for (const cJSON *c = node->child; c; c = c->next, index++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c))
            continue;
        path_push(path, path_size, c, index);
        int rc = check_duplicates(c, path, path_size, msg, msg_size);
        path[keep] = 0;
        if (rc != 0)
            return -1;
    }
    return 0;
}

cJSON *json_strict_parse(const char *text, size_t len, int max_depth, char *msg, size_t msg_size) {
    Scan sc = {(const unsigned char *)text, len, 0, 0, max_depth, msg, msg_size};
    if (msg_size)
        msg[0] = 0;
    skip_ws(&sc);
    if (sc.pos >= len) {
        scan_fail(&sc, "the text is empty: no JSON value");
        return NULL;
    }
    if (scan_value(&sc) != 0)
        return NULL;
    skip_ws(&sc);
    if (sc.pos < len) {
        scan_fail(&sc, "bytes after the JSON value at byte %zu: send exactly one JSON value", sc.pos);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        /* The checker accepted it, so only memory (or cJSON's own nesting
         * limit, above any max_depth we use) can fail here. */
        scan_fail(&sc, "could not build the JSON tree (out of memory?)");
        return NULL;
    }
    char path[256] = "";
    if (check_duplicates(root, path, sizeof path, msg, msg_size) != 0) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}
