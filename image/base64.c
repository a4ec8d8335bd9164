/* Strict base64 decoding (see base64.h): one pass, every rule checked with
 * the byte offset in the message. */
#include "image/base64.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 0..63 for alphabet characters, 64 for '=', -1 for anything else. */
static int sextet(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    if (c == '=')
        return 64;
    return -1;
}

/* The same map as a table for the fast path: 0..63, 0xff for anything else
 * ('=' included: padding is only legal in the last group). */
static uint8_t sextet_table[256];
static pthread_once_t sextet_table_once = PTHREAD_ONCE_INIT;

static void build_sextet_table(void) {
    for (int c = 0; c < 256; c++) {
        int d = sextet((unsigned char)c);
        sextet_table[c] = d >= 0 && d < 64 ? (uint8_t)d : 0xff;
    }
}

/* Decodes the complete groups s[0..n) (n a multiple of 4, no padding) with
 * table lookups. Returns 0, or -1 when any byte is not in the alphabet (the
 * caller then reruns the checked loop to name the offset). */
static int decode_groups_fast(const unsigned char *s, size_t n, uint8_t *out) {
    pthread_once(&sextet_table_once, build_sextet_table);
    uint8_t bad = 0;
    for (size_t i = 0; i < n; i += 4, out += 3) {
        uint8_t a = sextet_table[s[i]], b = sextet_table[s[i + 1]];
        uint8_t c = sextet_table[s[i + 2]], d = sextet_table[s[i + 3]];
        bad |= a | b | c | d;
        uint32_t group = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        out[0] = (uint8_t)(group >> 16);
        out[1] = (uint8_t)(group >> 8);
        out[2] = (uint8_t)group;
    }
    return bad & 0xc0 ? -1 : 0;
}

/* Describes a bad byte without echoing data: printable ASCII is named, the
 * rest is given as a code. */
static void describe_byte(unsigned char c, char *buf, size_t size) {
    if (c >= 0x21 && c < 0x7f && c != '"' && c != '\\')
        snprintf(buf, size, "'%c'", c);
    else
        snprintf(buf, size, "byte 0x%02x", c);
}

int base64_data_uri_prefix(const char *text, size_t len, size_t *prefix_len, Error *err) {
    *prefix_len = 0;
    if (len < 5 || memcmp(text, "data:", 5) != 0)
        return 0;
    /* data:[<mediatype>][;param]*;base64,<data> — the media type and
     * parameters are not checked beyond being short and printable. */
    size_t comma = 5;
    while (comma < len && comma < 256 && text[comma] != ',') {
        unsigned char c = (unsigned char)text[comma];
        if (c < 0x20 || c >= 0x7f)
            return error_set(err, "data URI: unexpected byte 0x%02x at offset %zu in its header", c, comma);
        comma++;
    }
    if (comma >= len || text[comma] != ',')
        return error_set(err, "data URI: no ',' within the first 256 bytes");
    static const char marker[] = ";base64";
    size_t mlen = sizeof marker - 1;
    if (comma < 5 + mlen || memcmp(text + comma - mlen, marker, mlen) != 0)
        return error_set(err, "data URI is not base64-encoded (expected \";base64,\" before the data)");
    *prefix_len = comma + 1;
    return 0;
}

int base64_decode_strict(const char *text, size_t len, uint8_t **bytes, size_t *n_bytes, Error *err) {
    *bytes = NULL;
    *n_bytes = 0;
    size_t start = 0;
    if (base64_data_uri_prefix(text, len, &start, err) != 0)
        return -1;
    size_t n = len - start;
    if (n == 0)
        return error_set(err, "base64: no image data");
    if (n % 4 != 0)
        return error_set(
            err, "base64: length %zu is not a multiple of 4 (padding '=' missing or data cut short)", n);
    const unsigned char *s = (const unsigned char *)text + start;
    size_t pad = 0;
    if (s[n - 1] == '=')
        pad = s[n - 2] == '=' ? 2 : 1;
    size_t out_len = n / 4 * 3 - pad;
    if (out_len == 0)
        return error_set(err, "base64: no image data");
    uint8_t *out = malloc(out_len);
    if (!out)
        return error_set(err, "base64: out of memory for %zu bytes", out_len);

    /* All groups but the last through the table; the checked loop below does
     * the last one (padding rules), or everything when a bad byte is found. */
    size_t o = 0, i = 0;
    if (decode_groups_fast(s, n - 4, out) == 0) {
        i = n - 4;
        o = (n - 4) / 4 * 3;
    }
    for (; i < n; i += 4) {
        uint32_t v[4];
        int is_last = i + 4 == n;
        for (int k = 0; k < 4; k++) {
            unsigned char c = s[i + k];
            int d = sextet(c);
            if (d == 64 && is_last && k >= 4 - (int)pad) {
                v[k] = 0;
                continue;
            }
            if (d < 0 || d == 64) {
                char what[24];
                describe_byte(c, what, sizeof what);
                free(out);
                if (d == 64)
                    return error_set(err, "base64: padding '=' in the middle of the data at offset %zu",
                                     start + i + k);
                return error_set(err, "base64: invalid character %s at offset %zu", what, start + i + k);
            }
            v[k] = (uint32_t)d;
        }
        uint32_t group = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
        int emit = is_last ? 3 - (int)pad : 3;
        /* RFC 4648 3.5: the bits the padding discards must be zero, so each
         * byte string has exactly one encoding. */
        if (is_last && ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))) {
            free(out);
            return error_set(err, "base64: non-zero unused bits before padding at offset %zu",
                             start + i + 3 - pad);
        }
        out[o++] = (uint8_t)(group >> 16);
        if (emit > 1)
            out[o++] = (uint8_t)(group >> 8);
        if (emit > 2)
            out[o++] = (uint8_t)group;
    }
    *bytes = out;
    *n_bytes = o;
    return 0;
}
