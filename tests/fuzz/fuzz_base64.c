/* libFuzzer target over image/base64.c: strict base64 and data: URIs. The
 * decoder accepts only canonical base64 (padding required, zero spare bits),
 * so whatever it accepts must re-encode to exactly the payload after the
 * data-URI prefix: a round trip checked on every accepted input.
 * Build: make fuzz; run: build-fuzz/fuzz_base64 -max_total_time=300 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/base64.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *encode(const uint8_t *b, size_t n, size_t *out_len) {
    size_t len = (n + 2) / 3 * 4;
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v =
            (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
        s[o++] = ALPHABET[v >> 18 & 63];
        s[o++] = ALPHABET[v >> 12 & 63];
        s[o++] = i + 1 < n ? ALPHABET[v >> 6 & 63] : '=';
        s[o++] = i + 2 < n ? ALPHABET[v & 63] : '=';
    }
    s[o] = 0;
    *out_len = o;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    Error err;
    size_t prefix = 0;
    int prefix_rc = base64_data_uri_prefix(text, size, &prefix, &err);
    uint8_t *bytes = NULL;
    size_t n = 0;
    int rc = base64_decode_strict(text, size, &bytes, &n, &err);
    if (rc != 0) {
        if (!memchr(err.message, 0, sizeof err.message) || !err.message[0])
            __builtin_trap();
        return 0;
    }
    if (prefix_rc != 0 || prefix > size || n == 0 || !bytes)
        __builtin_trap();
    size_t len = 0;
    char *again = encode(bytes, n, &len);
    if (again && (len != size - prefix || memcmp(again, text + prefix, len) != 0))
        __builtin_trap(); /* accepted text that is not canonical base64 */
    free(again);
    free(bytes);
    return 0;
}
