/* JSON string literals <-> UTF-8 bytes, without cJSON's NUL limit: the
 * tokenizer loader reads its 262144 pieces with these, and the tokenize
 * command reads and writes arbitrary text (NUL and control bytes included).
 *
 * Ownership: callers own every buffer; nothing is allocated except by
 * json_string_write's growing buffer (JsonBuf, freed by the caller). */
#ifndef TOKENIZER_JSON_TEXT_H
#define TOKENIZER_JSON_TEXT_H

#include <stddef.h>

/* Skips JSON whitespace; returns the first other byte's position (or end). */
const char *json_skip_ws(const char *p, const char *end);

/* Decodes the string literal at p (which must point at its opening quote)
 * into out (capacity out_cap; the UTF-8 result is never longer than the
 * literal). Returns the position after the closing quote, or NULL when the
 * literal is malformed (bad escape, lone surrogate, control byte, no closing
 * quote, out too small). *out_len receives the decoded length (no NUL added). */
const char *json_string_read(const char *p, const char *end, char *out, size_t out_cap, size_t *out_len);

typedef struct {
    char *data;
    size_t len, cap;
} JsonBuf;

/* Appends bytes to b; returns 0, or -1 when out of memory. */
int json_buf_append(JsonBuf *b, const void *bytes, size_t n);
/* Appends s[0..n) as a JSON string literal (quotes, escapes for '"', '\\'
 * and bytes < 0x20, UTF-8 kept as is). Returns 0 or -1 (out of memory). */
int json_string_write(JsonBuf *b, const char *s, size_t n);

#endif
