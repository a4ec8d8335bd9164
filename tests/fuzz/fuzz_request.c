/* libFuzzer target over request bodies (http/request.c + util/json_strict.c,
 * no h2o): the first input byte picks the endpoint (0 /analyze, 1 /generate,
 * 2 /v1/chat/completions) and whether the model has vision (bit 2); the rest
 * is the body. A body is either refused with a 400 and a message, or gives a
 * JobInput whose invariants hold: every part is text or a valid image index,
 * every image is used, limits are kept. Each accepted image's base64 then
 * goes through the worker's strict decoder (data URIs included).
 * Seeds: tests/fuzz/corpus/fuzz_request; dictionary: tests/fuzz/fuzz_request.dict.
 * Build: make fuzz; run: build-fuzz/fuzz_request -max_total_time=300 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/request.h"
#include "image/base64.h"

#define CHECK_OR_DIE(cond)                                                                                   \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            __builtin_trap();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    Endpoint endpoint = data[0] % 3 == 0   ? ENDPOINT_ANALYZE
                        : data[0] % 3 == 1 ? ENDPOINT_GENERATE
                                           : ENDPOINT_CHAT;
    RequestLimits limits = {8, 4096, 16, !(data[0] & 4)};
    JobInput in;
    RequestError e;
    int rc = request_parse(endpoint, (const char *)data + 1, size - 1, &limits, &in, &e);
    if (rc != 0) {
        CHECK_OR_DIE(rc == -1 && e.status == 400 && e.message[0] && memchr(e.message, 0, sizeof e.message));
        return 0;
    }
    CHECK_OR_DIE(in.n_messages >= 1 && in.n_images <= limits.max_images);
    CHECK_OR_DIE(in.max_tokens >= 1 && in.max_tokens <= limits.max_tokens_limit);
    CHECK_OR_DIE(limits.vision || in.n_images == 0);
    for (int i = 0; i < in.n_messages; i++) {
        const Message *m = &in.messages[i];
        for (int j = 0; j < m->n_parts; j++) {
            const MessagePart *p = &m->parts[j];
            CHECK_OR_DIE((p->text != NULL) != (p->image >= 0));
            CHECK_OR_DIE(p->image < in.n_images || in.series != SERIES_NONE);
        }
    }
    for (int i = 0; i < in.n_images; i++) {
        ImageFile *f = &in.images[i];
        CHECK_OR_DIE(f->base64 && strlen(f->base64) == f->base64_len);
        Error err;
        if (base64_decode_strict(f->base64, f->base64_len, &f->bytes, &f->n_bytes, &err) == 0)
            CHECK_OR_DIE(f->bytes && f->n_bytes > 0);
    }
    job_input_free(&in);
    return 0;
}
