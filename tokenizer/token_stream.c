/* Streaming decode (see tokenizer.h): the same per-id decoding as
 * tokenizer_decode, returning the text as it becomes final. A run of
 * byte-fallback pieces stays held until a piece that ends it (or the flush),
 * because HF decodes the whole run at once: as UTF-8 when the run is valid,
 * else as one U+FFFD per byte. */
#include <stdlib.h>

#include "tokenizer/tokenizer_internal.h"

struct TokenStream {
    const Tokenizer *t;
    int skip_special;
    JsonBuf out; /* the text returned by the last call */
    JsonBuf run; /* held byte-fallback bytes */
};

TokenStream *token_stream_new(const Tokenizer *t, int skip_special) {
    TokenStream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->t = t;
    s->skip_special = skip_special;
    if (json_buf_append(&s->out, "", 0)) {
        free(s);
        return NULL;
    }
    return s;
}

int token_stream_push(TokenStream *s, int32_t id, char **bytes, size_t *len, Error *err) {
    s->out.len = 0;
    if (tok_decode_id(s->t, id, s->skip_special, &s->out, &s->run)) {
        *bytes = s->out.data;
        *len = 0;
        return error_set(err, "out of memory decoding a token");
    }
    *bytes = s->out.data;
    *len = s->out.len;
    return 0;
}

int token_stream_flush(TokenStream *s, char **bytes, size_t *len) {
    s->out.len = 0;
    int rc = tok_decode_end_run(&s->out, &s->run);
    *bytes = s->out.data;
    *len = rc ? 0 : s->out.len;
    return rc;
}

void token_stream_free(TokenStream *s) {
    if (!s)
        return;
    free(s->out.data);
    free(s->run.data);
    free(s);
}
