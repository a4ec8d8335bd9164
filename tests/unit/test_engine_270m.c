/* The real Gemma 3 270M (converted by `make models` into
 * $MEDGEMMA_CACHE/gemma3-270m): greedy continuations of every prompt of
 * tests/fixtures/gemma3-270m/expected.json identical to transformers' for 32
 * tokens. Skips, saying why, when the converted model is absent or is not the
 * one the expectations were made from. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "tests/unit/test.h"

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = 0;
    fclose(f);
    return s;
}

typedef struct {
    int32_t ids[64];
    int n;
} Collected;

static int collect(void *user, int32_t id) {
    Collected *c = user;
    if (c->n < 64)
        c->ids[c->n++] = id;
    return 0;
}

TEST(real270m_greedy_matches_transformers) {
    char model_dir[512], path[600];
    const char *cache = getenv("MEDGEMMA_CACHE"), *home = getenv("HOME"), *root = getenv("REPO_ROOT");
    if (cache)
        snprintf(model_dir, sizeof model_dir, "%s/gemma3-270m", cache);
    else
        snprintf(model_dir, sizeof model_dir, "%s/.cache/medgemma-engine/gemma3-270m", home ? home : ".");
    snprintf(path, sizeof path, "%s/tests/fixtures/gemma3-270m/expected.json", root ? root : ".");
    char *expected_text = read_text(path);
    if (!expected_text)
        test_skip("%s is missing", path);
    cJSON *expected = cJSON_Parse(expected_text);
    CHECK(expected != NULL);
    if (!expected)
        return;

    snprintf(path, sizeof path, "%s/.complete", model_dir);
    char *complete_text = read_text(path);
    if (!complete_text)
        test_skip("the converted Gemma 3 270M is absent (%s); run `make models` to test real weights",
                  model_dir);
    cJSON *complete = cJSON_Parse(complete_text);
    const cJSON *have = cJSON_GetObjectItemCaseSensitive(complete, "model_sha256");
    const cJSON *need = cJSON_GetObjectItemCaseSensitive(expected, "model_sha256");
    if (!cJSON_IsString(have) || !cJSON_IsString(need) || strcmp(have->valuestring, need->valuestring) != 0)
        test_skip(
            "%s holds other weights than expected.json was made from (model_sha256 differs); rerun `make "
            "models`",
            model_dir);

    Engine *engine;
    Error err;
    EngineOptions eo = {.model_dir = model_dir, .backend = BACKEND_CPU, .n_threads = 0, .max_context = 1024};
    if (engine_open(&engine, &eo, &err) != 0) {
        test_fail(__FILE__, __LINE__, "engine_open: %s", err.message);
        return;
    }
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(expected, "prompts");
    int n_prompts = 0;
    /* under the sanitizers (make test-asan) two prompts keep the run short */
    int limit = getenv("MEDGEMMA_ASAN") ? 2 : 1 << 30;
    const cJSON *p;
    cJSON_ArrayForEach(p, prompts) {
        if (n_prompts == limit)
            break;
        const char *name = cJSON_GetObjectItemCaseSensitive(p, "name")->valuestring;
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(p, "input_ids");
        const cJSON *out = cJSON_GetObjectItemCaseSensitive(p, "greedy_ids");
        const char *stop = cJSON_GetObjectItemCaseSensitive(p, "stop_reason")->valuestring;
        int n_in = cJSON_GetArraySize(in), n_out = cJSON_GetArraySize(out);
        int32_t *ids = malloc((size_t)n_in * sizeof *ids);
        for (int i = 0; i < n_in; i++)
            ids[i] = cJSON_GetArrayItem(in, i)->valueint;
        int stopped = !strcmp(stop, "stop_token");
        int n_emitted = stopped ? n_out - 1 : n_out; /* the engine does not report the stop id */
        Collected got = {.n = 0};
        GenerateRequest rq = {.tokens = ids,
                              .n_tokens = n_in,
                              .max_new_tokens = 32,
                              .temperature = 0,
                              .top_p = 1,
                              .on_token = collect,
                              .user = &got};
        GenerateResult res;
        CHECK_MSG(engine_generate(engine, &rq, &res, &err) == 0, "%s: %s", name, err.message);
        int same = got.n == n_emitted;
        for (int i = 0; same && i < n_emitted; i++)
            same = got.ids[i] == cJSON_GetArrayItem(out, i)->valueint;
        CHECK_MSG(same, "%s: greedy continuation differs from transformers' (%d tokens vs %d)", name, got.n,
                  n_emitted);
        CHECK_MSG(res.finish_reason == (stopped ? FINISH_STOP : FINISH_LENGTH), "%s: finish reason %d", name,
                  (int)res.finish_reason);
        printf("info %s: %d prompt tokens, prefill %.0f ms, %d tokens decoded in %.0f ms\n", name, n_in,
               res.prefill_ms, res.completion_tokens, res.decode_ms);
        free(ids);
        n_prompts++;
    }
    CHECK(n_prompts >= (limit < 5 ? limit : 5));
    engine_close(engine);
    cJSON_Delete(complete);
    cJSON_Delete(expected);
    free(complete_text);
    free(expected_text);
}
