/* libFuzzer target over grammar/: the payload is a JSON schema (any bytes).
 * The first byte picks the vocabulary: 0 (one input in 256) the real Gemma 3
 * tokenizer, else a small synthetic one (byte pieces, ASCII characters and a
 * few JSON-shaped pieces), which keeps the runs fast.
 * Compiling must either succeed or fail with a message, within the limits
 * (smaller than the service's, to keep runs fast). On success a matcher walks
 * up to 32 steps, each picking an allowed token from the mask (chosen by the
 * payload's hash): every token the mask allows must be accepted, the end token
 * only when the value is complete, and an empty mask only after the end.
 * The real Gemma 3 tokenizer comes from $MEDGEMMA_TOKENIZER, else the
 * unpacked copy in $MEDGEMMA_CACHE (or ~/.cache/medgemma-engine)/gemma3-tokenizer/
 * that the tests make. Build: make fuzz; run: build-fuzz/fuzz_schema -max_total_time=300 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

static Tokenizer *gemma, *small;
static GrammarVocab *gemma_vocab, *small_vocab;
static uint32_t *mask;

/* <pad> <eos> <bos> <unk>, <0x00>..<0xFF> (4..259), ASCII 0x20..0x7E as
 * pieces (260..354), JSON-shaped pieces, then <end_of_turn>. */
static char *small_tokenizer_json(int *end_id) {
    size_t cap = 64 * 1024, n = 0;
    char *s = malloc(cap);
    static const char *const extra[] = {"{\\\"",   "\\\":", "\\\",", "\\\"}", "},",   "}}",
                                        "]}",      "[{",    "true",  "false", "null", "\\u2581the",
                                        "\\u00e9", "12",    "-1",    "\\\\n", "e+"};
    int n_extra = (int)(sizeof extra / sizeof *extra);
    *end_id = 355 + n_extra;
    n += (size_t)snprintf(s + n, cap - n, "{\"version\":\"1.0\",\"added_tokens\":[");
    const char *specials[] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    for (int i = 0; i < 4; i++)
        n += (size_t)snprintf(s + n, cap - n, "{\"id\":%d,\"content\":\"%s\",\"special\":true},", i,
                              specials[i]);
    n += (size_t)snprintf(
        s + n, cap - n,
        "{\"id\":%d,\"content\":\"<end_of_turn>\",\"special\":true}],\"normalizer\":null,"
        "\"pre_tokenizer\":null,\"post_processor\":null,\"decoder\":{\"type\":\"Sequence\","
        "\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},"
        "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]},\"model\":{\"type\":\"BPE\","
        "\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,\"vocab\":{",
        *end_id);
    for (int i = 0; i < 4; i++)
        n += (size_t)snprintf(s + n, cap - n, "\"%s\":%d,", specials[i], i);
    for (int b = 0; b < 256; b++)
        n += (size_t)snprintf(s + n, cap - n, "\"<0x%02X>\":%d,", b, 4 + b);
    for (int c = 0x20; c < 0x7F; c++)
        n += (size_t)snprintf(s + n, cap - n, c == '"' || c == '\\' ? "\"\\%c\":%d," : "\"%c\":%d,", c,
                              260 + c - 0x20);
    for (int i = 0; i < n_extra; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s\"%s\":%d", i ? "," : "", extra[i], 355 + i);
    snprintf(s + n, cap - n, "},\"merges\":[]}}");
    return s;
}

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
    if (tokenizer_load(&gemma, path, &err) || grammar_vocab_new(&gemma_vocab, gemma, 262208, 106, &err)) {
        fprintf(stderr, "fuzz_schema: %s (run the tokenizer tests first, or set MEDGEMMA_TOKENIZER)\n",
                err.message);
        exit(1);
    }
    int end_id;
    char *json = small_tokenizer_json(&end_id);
    if (tokenizer_load_buffer(&small, json, strlen(json), "small", &err) ||
        grammar_vocab_new(&small_vocab, small, end_id + 1, end_id, &err)) {
        fprintf(stderr, "fuzz_schema: the small tokenizer: %s\n", err.message);
        exit(1);
    }
    free(json);
    mask = malloc((size_t)grammar_mask_words(gemma_vocab) * sizeof *mask);
    return 0;
}

static void check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_schema: broken invariant: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    const GrammarVocab *vocab = data[0] == 0 ? gemma_vocab : small_vocab;
    int32_t end = data[0] == 0 ? 106 : tokenizer_vocab_size(small) - 1;
    data++;
    size--;
    GrammarLimits lim;
    grammar_limits_default(&lim);
    lim.max_states = 20000;
    lim.max_compile_ms = 500;
    Grammar *g = NULL;
    Error err = {{0}};
    if (grammar_compile_schema(&g, vocab, (const char *)data, size, &lim, &err) != 0) {
        check(g == NULL && err.message[0] != '\0', "a failed compile names its error");
        return 0;
    }
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ull;
    GrammarMatcher *m = grammar_matcher_new(g);
    check(m != NULL, "matcher");
    int words = grammar_mask_words(vocab);
    for (int step = 0; step < 32; step++) {
        grammar_matcher_fill_mask(m, mask);
        int n = 0;
        for (int w = 0; w < words; w++)
            n += __builtin_popcount(mask[w]);
        int end_ok = mask[end >> 5] >> (end & 31) & 1;
        check(end_ok == grammar_matcher_is_complete(m), "the end token exactly when the value is complete");
        check(n > 0, "a live matcher allows some token");
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        if (n == 0)
            break; /* reported by the check above */
        int pick = (int)((h >> 33) % (uint64_t)n), id = -1;
        for (int w = 0; w < words && id < 0; w++)
            for (uint32_t bits = mask[w]; bits; bits &= bits - 1)
                if (pick-- == 0) {
                    id = w * 32 + __builtin_ctz(bits);
                    break;
                }
        check(grammar_matcher_accept(m, id) == 0, "every token the mask allows is accepted");
        if (id == end)
            break;
    }
    grammar_matcher_free(m);
    grammar_free(g);
    return 0;
}
