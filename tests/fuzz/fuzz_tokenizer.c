/* libFuzzer target over tokenizer/: the first input byte picks a path, the
 * rest is the payload.
 *   0: encode the payload with the real Gemma 3 tokenizer (invalid UTF-8 must
 *      be an error); when it encodes, decode must give the text back (with
 *      "▁" read as a space, the normalizer's one lossy step) and the stream
 *      must give exactly what decode gives
 *   1: decode the payload read as little-endian int32 ids (any values), and
 *      stream them: same text, whole UTF-8 characters only
 *   2: chat_render of messages cut from the payload, then prompt_tokenize
 *   3: answer_strip_thinking and answer_extract_json of the payload
 *   4: tokenizer_load_buffer of a small valid tokenizer.json with the payload
 *      spliced into it (the loader's error paths)
 * The real tokenizer comes from $MEDGEMMA_TOKENIZER, else the unpacked copy in
 * $MEDGEMMA_CACHE (or ~/.cache/medgemma-engine)/gemma3-tokenizer/ that the
 * tests make. Build: make fuzz; run: build-fuzz/fuzz_tokenizer -max_total_time=300 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/answer.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

static Tokenizer *gemma;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char path[1024];
    const char *env = getenv("MEDGEMMA_TOKENIZER"), *cache = getenv("MEDGEMMA_CACHE"), *home = getenv("HOME");
    if (env)
        snprintf(path, sizeof path, "%s", env);
    else if (cache)
        snprintf(path, sizeof path, "%s/gemma3-tokenizer/tokenizer.json", cache);
    else
        snprintf(path, sizeof path, "%s/.cache/medgemma-engine/gemma3-tokenizer/tokenizer.json",
                 home ? home : "");
    Error err;
    if (tokenizer_load(&gemma, path, &err)) {
        fprintf(stderr, "fuzz_tokenizer: %s (run the tokenizer tests first, or set MEDGEMMA_TOKENIZER)\n",
                err.message);
        exit(1);
    }
    return 0;
}

static void check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_tokenizer: broken invariant: %s\n", what);
        abort();
    }
}

/* Streams ids and checks the concatenation equals want. */
static void check_stream(const int32_t *ids, size_t n, int skip, const char *want, size_t want_len) {
    TokenStream *s = token_stream_new(gemma, skip);
    check(s != NULL, "token_stream_new");
    size_t at = 0;
    Error err;
    for (size_t i = 0; i <= n; i++) {
        char *piece;
        size_t len;
        if (i < n)
            check(token_stream_push(s, ids[i], &piece, &len, &err) == 0, "push");
        else
            check(token_stream_flush(s, &piece, &len) == 0, "flush");
        check(at + len <= want_len && memcmp(want + at, piece, len) == 0, "stream == decode");
        check(len == 0 || (piece[0] & 0xC0) != 0x80, "stream piece starts mid-character");
        at += len;
    }
    check(at == want_len, "stream length == decode length");
    token_stream_free(s);
}

static void fuzz_encode(const uint8_t *data, size_t size) {
    int32_t *ids;
    size_t n;
    Error err;
    if (tokenizer_encode(gemma, (const char *)data, size, 0, &ids, &n, &err) != 0)
        return;
    char *text;
    size_t len;
    check(tokenizer_decode(gemma, ids, n, 0, &text, &len, &err) == 0, "decode");
    /* The expected text: the input with each "▁" (E2 96 81) as a space. */
    char *want = malloc(size + 1);
    size_t w = 0;
    for (size_t i = 0; i < size; i++) {
        if (i + 2 < size && data[i] == 0xE2 && data[i + 1] == 0x96 && data[i + 2] == 0x81) {
            want[w++] = ' ';
            i += 2;
        } else {
            want[w++] = (char)data[i];
        }
    }
    check(len == w && memcmp(text, want, w) == 0, "decode(encode(x)) == x");
    check_stream(ids, n, 0, text, len);
    free(want);
    free(text);
    free(ids);
}

static void fuzz_decode(const uint8_t *data, size_t size) {
    size_t n = size / 4;
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 |
                     (uint32_t)data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24;
        /* Mostly valid ids, some byte pieces, some anything. */
        ids[i] = v >> 30 == 0 ? (int32_t)(v % 262145) : v >> 30 == 1 ? (int32_t)(3 + v % 256) : (int32_t)v;
    }
    Error err;
    for (int skip = 0; skip <= 1; skip++) {
        char *text;
        size_t len;
        check(tokenizer_decode(gemma, ids, n, skip, &text, &len, &err) == 0, "decode");
        check(text[len] == '\0', "decode NUL-terminated");
        check_stream(ids, n, skip, text, len);
        free(text);
    }
    free(ids);
}

static void fuzz_chat(const uint8_t *data, size_t size) {
    /* Messages split at 0x01 bytes, parts at 0x02; a part "\x03" is an image. */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    ChatMessage msgs[8];
    ChatPart parts[64];
    int n_msgs = 0, n_parts = 0;
    static const char *roles[] = {"system", "user", "assistant", "model", "user", "tool"};
    char *p = text;
    while (n_msgs < 8 && n_parts < 64) {
        char *end_msg = strchr(p, '\x01');
        if (end_msg)
            *end_msg = '\0';
        msgs[n_msgs] = (ChatMessage){roles[(unsigned char)p[0] % 6], &parts[n_parts], 0};
        for (char *q = p; n_parts < 64;) {
            char *end_part = strchr(q, '\x02');
            if (end_part)
                *end_part = '\0';
            int image = q[0] == '\x03';
            parts[n_parts++] = (ChatPart){image ? CHAT_PART_IMAGE : CHAT_PART_TEXT, image ? NULL : q};
            msgs[n_msgs].n_parts++;
            if (!end_part)
                break;
            q = end_part + 1;
        }
        n_msgs++;
        if (!end_msg)
            break;
        p = end_msg + 1;
    }
    char *prompt;
    Error err;
    if (chat_render(msgs, n_msgs, size % 2, &prompt, &err) == 0) {
        int32_t *ids;
        size_t n;
        int n_images;
        if (prompt_tokenize(gemma, prompt, 3, &ids, &n, &n_images, &err) == 0) {
            uint8_t *types = malloc(n + 1);
            prompt_token_types(ids, n, types);
            size_t soft = 0;
            for (size_t i = 0; i < n; i++)
                soft += types[i];
            check(soft == (size_t)n_images * 3, "3 soft tokens per image");
            free(types);
            free(ids);
        }
        free(prompt);
    }
    free(text);
}

static void fuzz_answer(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char *stripped = answer_strip_thinking(text);
    check(stripped && strlen(stripped) <= strlen(text), "strip never grows the text");
    free(stripped);
    cJSON *v;
    char why[128];
    if (answer_extract_json(text, &v, why, sizeof why) == 0)
        cJSON_Delete(v);
    else
        check(v == NULL && why[0], "a failed extraction says why");
    free(text);
}

static const char SMALL_TOKENIZER[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[{\"id\":0,\"content\":\"<"
    "bos>\","
    "\"special\":true},{\"id\":9,\"content\":\"<x>\",\"special\":false}],\"normalizer\":{\"type\":"
    "\"Replace\","
    "\"pattern\":{\"String\":\" "
    "\"},\"content\":\"\\u2581\"},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
    "{\"String\":\"\\u2581\"},\"behavior\":\"MergedWithPrevious\",\"invert\":false},\"post_processor\":{"
    "\"type\":"
    "\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<bos>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
    "\"special_tokens\":{\"<bos>\":{\"ids\":[0]}}},\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{"
    "\"type\":"
    "\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" "
    "\"},{\"type\":\"ByteFallback\"},{\"type\":"
    "\"Fuse\"}]},\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"<bos>\":0,\"a\":1,\"b\":2,"
    "\"ab\":3,\"\\u2581\":4,\"<0x00>\":5},\"merges\":[[\"a\",\"b\"],\"a b\"]}}";

static void fuzz_load(const uint8_t *data, size_t size) {
    if (size < 2)
        return;
    size_t total = sizeof SMALL_TOKENIZER - 1, at = data[0] * total / 256, cut = data[1] % 16;
    if (cut > total - at)
        cut = total - at;
    size_t len = total - cut + size - 2;
    char *json = malloc(len);
    memcpy(json, SMALL_TOKENIZER, at);
    memcpy(json + at, data + 2, size - 2);
    memcpy(json + at + size - 2, SMALL_TOKENIZER + at + cut, total - at - cut);
    Tokenizer *t;
    Error err;
    if (tokenizer_load_buffer(&t, json, len, "fuzz.json", &err) == 0) {
        /* Loads only without byte pieces for all 256 bytes if the payload adds them. */
        int32_t *ids;
        size_t n;
        if (tokenizer_encode(t, "ab a<x>", 7, 1, &ids, &n, &err) == 0)
            free(ids);
        tokenizer_free(t);
    } else {
        check(err.message[0] != '\0', "a failed load says why");
    }
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 1 << 16)
        return 0;
    switch (data[0] % 5) {
    case 0:
        fuzz_encode(data + 1, size - 1);
        break;
    case 1:
        fuzz_decode(data + 1, size - 1);
        break;
    case 2:
        fuzz_chat(data + 1, size - 1);
        break;
    case 3:
        fuzz_answer(data + 1, size - 1);
        break;
    default:
        fuzz_load(data + 1, size - 1);
        break;
    }
    return 0;
}
