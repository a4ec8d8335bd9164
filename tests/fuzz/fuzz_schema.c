/* libFuzzer target over grammar/: the payload is a JSON schema (any bytes).
 * Compiling must either succeed or fail with a message, within the limits
 * (smaller than the service's, to keep runs fast). On success a matcher walks
 * up to 64 steps, each picking an allowed token from the mask (chosen by the
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

static Tokenizer *gemma;
static GrammarVocab *vocab;
static uint32_t *mask;

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
    if (tokenizer_load(&gemma, path, &err) || grammar_vocab_new(&vocab, gemma, 262208, 106, &err)) {
        fprintf(stderr, "fuzz_schema: %s (run the tokenizer tests first, or set MEDGEMMA_TOKENIZER)\n",
                err.message);
        exit(1);
    }
    mask = malloc((size_t)grammar_mask_words(vocab) * sizeof *mask);
    return 0;
}

static void check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_schema: broken invariant: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
    for (int step = 0; step < 64; step++) {
        grammar_matcher_fill_mask(m, mask);
        int n = 0;
        for (int w = 0; w < words; w++)
            n += __builtin_popcount(mask[w]);
        int end_ok = mask[106 >> 5] >> (106 & 31) & 1;
        check(end_ok == grammar_matcher_is_complete(m), "the end token exactly when the value is complete");
        check(n > 0, "a live matcher allows some token");
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        int pick = (int)((h >> 33) % (uint64_t)n), id = -1;
        for (int w = 0; w < words && id < 0; w++)
            for (uint32_t bits = mask[w]; bits; bits &= bits - 1)
                if (pick-- == 0) {
                    id = w * 32 + __builtin_ctz(bits);
                    break;
                }
        check(grammar_matcher_accept(m, id) == 0, "every token the mask allows is accepted");
        if (id == 106)
            break;
    }
    grammar_matcher_free(m);
    grammar_free(g);
    return 0;
}
