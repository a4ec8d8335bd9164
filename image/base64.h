/* Strict base64 decoding of images sent in JSON (image/ owns this).
 *
 * Accepts the standard alphabet (RFC 4648, '+' and '/'), bare or behind a
 * `data:<type>;base64,` URI prefix. Padding is required to a multiple of 4
 * characters, with at most two '=' and only at the end; the unused low bits of
 * the last character must be zero. Nothing else is accepted: no whitespace,
 * no URL-safe alphabet, no line breaks. An error names the offending byte
 * offset (counted in `text`) and never echoes the data itself. */
#ifndef IMAGE_BASE64_H
#define IMAGE_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Decodes text[0..len) into a new malloc'd buffer (*bytes, *n_bytes; the
 * caller frees it). An empty payload is an error ("no image data"). Returns 0,
 * or -1 with err set ("base64: invalid character at offset 17", ...). */
int base64_decode_strict(const char *text, size_t len, uint8_t **bytes, size_t *n_bytes, Error *err);

/* Length of the `data:...;base64,` prefix at the start of text (0 when there
 * is none). A `data:` URI that is not base64-encoded is an error. */
int base64_data_uri_prefix(const char *text, size_t len, size_t *prefix_len, Error *err);

#endif
