/* Follow-up turns with and without the caches (docs/caching.md): a 3-turn
 * conversation over a multi-slice study, time to first token of each turn.
 *
 *   bench_cache MODEL_DIR [--slices N] [--answer M] [--threads T]
 *
 * One engine (caches on). Turn 1 (system, N slice images, a question) is cold;
 * turns 2 and 3 resend the conversation (the previous answer + a new question)
 * under the same tenant: "cached". The same turns 2 and 3 are then sent under
 * fresh tenants, which reuse nothing (no prefix, no image embedding): "cold".
 * Images are random pixel tensors (the timings do not depend on the pixels);
 * the token ids are random text ids around the real image markers. Prints one
 * JSON line per request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define MAX_TOKENS 32768

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

typedef struct {
    int32_t ids[64];
    int n;
} Answer;

static int on_token(void *user, int32_t id) {
    Answer *a = user;
    if (a->n < 64)
        a->ids[a->n++] = id;
    return 0;
}

static void add_text(int32_t *ids, int *n, int count, uint64_t *seed) {
    for (int i = 0; i < count; i++)
        ids[(*n)++] = 1000 + (int32_t)(rng(seed) % 200000);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_cache MODEL_DIR [--slices N] [--answer M] [--threads T]\n");
        return 2;
    }
    int slices = 4, answer = 8, threads = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--slices"))
            slices = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--answer"))
            answer = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    Engine *e;
    Error err;
    EngineOptions eo = {
        .model_dir = argv[1], .backend = BACKEND_CPU, .n_threads = threads, .max_context = 8192};
    if (engine_open(&e, &eo, &err) != 0) {
        fprintf(stderr, "bench_cache: %s\n", err.message);
        return 1;
    }
    EngineInfo info;
    engine_info(e, &info);
    size_t px = (size_t)3 * info.image_size * info.image_size;
    float **images = malloc((size_t)slices * sizeof *images);
    uint64_t seed = 42;
    for (int i = 0; i < slices; i++) {
        images[i] = malloc(px * sizeof(float));
        for (size_t j = 0; j < px; j++)
            images[i][j] = (float)((int)(rng(&seed) % 2001) - 1000) / 1000.0f;
    }
    static int32_t ids[MAX_TOKENS];
    int n = 0;
    ids[n++] = 2;
    add_text(ids, &n, 40, &seed); /* system prompt */
    for (int i = 0; i < slices; i++) {
        add_text(ids, &n, 4, &seed); /* "SLICE i" */
        ids[n++] = 255999;
        for (int t = 0; t < info.image_tokens; t++)
            ids[n++] = 262144; /* <image_soft_token> */
        ids[n++] = 256000;
    }
    int turn_end[3];
    const int question[3] = {30, 20, 25};
    for (int turn = 0; turn < 3; turn++) {
        if (turn > 0) /* the previous answer (as the client resends it) */
            add_text(ids, &n, answer, &seed);
        add_text(ids, &n, question[turn] + 6, &seed); /* turn markers + the question */
        turn_end[turn] = n;
    }
    const char *label[5] = {"turn1", "turn2", "turn3", "turn2", "turn3"};
    const char *mode[5] = {"cold", "cached", "cached", "cold", "cold"};
    const int turn_of[5] = {0, 1, 2, 1, 2};
    const uint64_t tenant[5] = {1, 1, 1, 2, 3};
    for (int r = 0; r < 5; r++) {
        Answer a = {{0}, 0};
        GenerateRequest rq = {.tokens = ids,
                              .n_tokens = turn_end[turn_of[r]],
                              .images = (const float *const *)images,
                              .n_images = slices,
                              .max_new_tokens = 1,
                              .top_p = 1,
                              .on_token = on_token,
                              .user = &a,
                              .cache_tenant = tenant[r]};
        GenerateResult res;
        if (engine_generate(e, &rq, &res, &err) != 0) {
            fprintf(stderr, "bench_cache: %s\n", err.message);
            return 1;
        }
        printf(
            "{\"request\":\"%s\",\"mode\":\"%s\",\"prompt_tokens\":%d,\"cached_tokens\":%d,\"ttft_s\":%.3f,"
            "\"vision_s\":%.3f,\"prefill_s\":%.3f}\n",
            label[r], mode[r], res.prompt_tokens, res.cached_tokens, res.ttft_ms / 1e3, res.vision_ms / 1e3,
            res.prefill_ms / 1e3);
        fflush(stdout);
    }
    EngineCacheStats st;
    engine_cache_stats(e, &st);
    printf("{\"image_cache_hits\":%lld,\"image_cache_misses\":%lld,\"image_cache_bytes\":%lld,\"prefix_"
           "hits\":%lld,"
           "\"prefix_tokens_reused\":%lld}\n",
           st.image_hits, st.image_misses, st.image_bytes, st.prefix_hits, st.prefix_tokens_reused);
    for (int i = 0; i < slices; i++)
        free(images[i]);
    free(images);
    engine_close(e);
    return 0;
}
