/* engine_generate's contract on a small random checkpoint (synth-model
 * preset "tiny": Gemma 3 text + SigLIP, 262208-row vocabulary): request
 * validation with clear errors (and the engine usable afterwards), seeded
 * sampling, cancellation, the context end, images, the sampler's vocabulary
 * cut, and no heap growth inside the token loop. */
#include <malloc.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/synth_model.h"
#include "tests/unit/test.h"

static Engine *open_tiny(int max_context) {
    Engine *e;
    Error err;
    EngineOptions eo = {
        .model_dir = test_tiny_model(), .backend = BACKEND_CPU, .n_threads = 2, .max_context = max_context};
    if (engine_open(&e, &eo, &err) != 0) {
        test_fail(__FILE__, __LINE__, "engine_open: %s", err.message);
        return NULL;
    }
    return e;
}

typedef struct {
    int32_t ids[256];
    int n, cancel_at;
    size_t heap_first, heap_last; /* bytes in use at the 2nd and last callbacks */
} Collected;

static int collect(void *user, int32_t id) {
    Collected *c = user;
    if (c->n < 256)
        c->ids[c->n] = id;
    c->n++;
    struct mallinfo2 mi = mallinfo2();
    size_t used = mi.uordblks + mi.hblkhd;
    if (c->n == 2)
        c->heap_first = used;
    c->heap_last = used;
    return c->cancel_at > 0 && c->n >= c->cancel_at;
}

static int32_t prompt[12] = {2, 818, 5279, 529, 7001, 563, 1000, 2000, 3000, 4000, 5000, 6000};

TEST(engine_rejects_bad_requests_and_stays_usable) {
    Engine *e = open_tiny(64);
    if (!e)
        return;
    EngineInfo info;
    engine_info(e, &info);
    CHECK_EQ_INT(info.max_context, 64);
    CHECK_EQ_INT(info.image_tokens, 64);
    CHECK_EQ_INT(info.image_size, 224);
    CHECK_STR_CONTAINS(info.backend, "cpu");
    Error err;
    GenerateResult res;
    Collected c = {.n = 0};
    GenerateRequest rq = {
        .tokens = prompt, .n_tokens = 12, .max_new_tokens = 4, .top_p = 1, .on_token = collect, .user = &c};

    rq.n_tokens = 0;
    CHECK(engine_generate(e, &rq, &res, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "empty prompt");

    int32_t bad[3] = {2, 262208, 5};
    rq.tokens = bad, rq.n_tokens = 3;
    CHECK(engine_generate(e, &rq, &res, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "token id 262208 at position 1");
    bad[1] = -4;
    CHECK(engine_generate(e, &rq, &res, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "outside the vocabulary");

    int32_t long_prompt[65];
    for (int i = 0; i < 65; i++)
        long_prompt[i] = 1000 + i;
    rq.tokens = long_prompt, rq.n_tokens = 65;
    CHECK(engine_generate(e, &rq, &res, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "longer than the context (64)");

    /* 64 soft tokens but no image, and an image with no soft tokens */
    int32_t with_image[40 + 24];
    for (int i = 0; i < 64; i++)
        with_image[i] = i < 2 ? 2 : 262144;
    rq.tokens = with_image, rq.n_tokens = 64;
    CHECK(engine_generate(e, &rq, &res, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "62 image soft tokens, but 0 image(s)");
    float *pixels = calloc(3 * 224 * 224, sizeof(float));
    const float *imgs[1] = {pixels};
    rq.tokens = prompt, rq.n_tokens = 12, rq.images = imgs, rq.n_images = 1;
    CHECK(engine_generate(e, &rq, &res, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "0 image soft tokens, but 1 image(s) x 64 tokens");

    /* still usable */
    rq.images = NULL, rq.n_images = 0;
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    CHECK_EQ_INT(c.n, 4);
    CHECK_EQ_INT(res.prompt_tokens, 12);
    CHECK_EQ_INT(res.completion_tokens, 4);
    CHECK(res.finish_reason == FINISH_LENGTH);
    free(pixels);
    engine_close(e);
}

TEST(engine_text_only_model_refuses_images) {
    char dir[600];
    const char *root = getenv("REPO_ROOT");
    snprintf(dir, sizeof dir, "%s/tests/fixtures/golden/causal_lm", root ? root : ".");
    Engine *e;
    Error err;
    EngineOptions eo = {.model_dir = dir, .backend = BACKEND_CPU, .n_threads = 1};
    if (engine_open(&e, &eo, &err) != 0)
        test_skip("golden causal_lm: %s", err.message);
    float px[1] = {0};
    const float *imgs[1] = {px};
    int32_t ids[3] = {2, 5, 6};
    GenerateRequest rq = {
        .tokens = ids, .n_tokens = 3, .images = imgs, .n_images = 1, .max_new_tokens = 2, .top_p = 1};
    GenerateResult res;
    CHECK(engine_generate(e, &rq, &res, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "no vision tower");
    engine_close(e);
}

TEST(engine_open_fails_with_a_message) {
    Engine *e = (Engine *)1;
    Error err;
    EngineOptions eo = {.model_dir = "/nonexistent/model", .backend = BACKEND_CPU};
    CHECK(engine_open(&e, &eo, &err) == -1);
    CHECK(e == NULL);
    CHECK_STR_CONTAINS(err.message, "/nonexistent/model");
#ifndef MEDGEMMA_CUDA
    eo.model_dir = test_tiny_model();
    eo.backend = BACKEND_CUDA;
    CHECK(engine_open(&e, &eo, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "no CUDA backend");
#endif
}

TEST(engine_sampling_is_seeded) {
    Engine *e = open_tiny(128);
    if (!e)
        return;
    Error err;
    GenerateResult res;
    Collected a = {.n = 0}, b = {.n = 0}, d = {.n = 0}, g1 = {.n = 0}, g2 = {.n = 0};
    GenerateRequest rq = {.tokens = prompt,
                          .n_tokens = 12,
                          .max_new_tokens = 24,
                          .temperature = 1.5f,
                          .top_p = 0.95f,
                          .top_k = 1000,
                          .seed = 5,
                          .on_token = collect};
    rq.user = &a;
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    rq.user = &b;
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    rq.user = &d, rq.seed = 6;
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    rq.temperature = 0, rq.user = &g1;
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    rq.seed = 99, rq.user = &g2;
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    CHECK(a.n == b.n && memcmp(a.ids, b.ids, a.n * sizeof(int32_t)) == 0);      /* same seed, same tokens */
    CHECK(a.n != d.n || memcmp(a.ids, d.ids, a.n * sizeof(int32_t)) != 0);      /* another seed, others */
    CHECK(g1.n == g2.n && memcmp(g1.ids, g2.ids, g1.n * sizeof(int32_t)) == 0); /* greedy ignores the seed */
    for (int i = 0; i < a.n && i < 256; i++)
        CHECK(a.ids[i] >= 0 && a.ids[i] < TEXT_VOCAB);
    engine_close(e);
}

TEST(engine_cancel_and_context_end) {
    Engine *e = open_tiny(15);
    if (!e)
        return;
    Error err;
    GenerateResult res;
    Collected c = {.n = 0, .cancel_at = 3};
    GenerateRequest rq = {
        .tokens = prompt, .n_tokens = 12, .max_new_tokens = 10, .top_p = 1, .on_token = collect, .user = &c};
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    CHECK(res.finish_reason == FINISH_CANCELLED);
    CHECK_EQ_INT(c.n, 3);
    CHECK_EQ_INT(res.completion_tokens, 3);
    /* 12 prompt positions + 3 decoded fill the 15-position cache; the 4th token
     * comes from the last logits and ends the generation */
    Collected d = {.n = 0};
    rq.user = &d;
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    CHECK(res.finish_reason == FINISH_LENGTH);
    CHECK_EQ_INT(d.n, 4);
    CHECK_EQ_INT(res.completion_tokens, 4);
    engine_close(e);
}

TEST(engine_image_request_runs) {
    Engine *e = open_tiny(128);
    if (!e)
        return;
    int32_t ids[80];
    int n = 0;
    ids[n++] = 2;
    ids[n++] = 255999;
    for (int i = 0; i < 64; i++)
        ids[n++] = 262144;
    ids[n++] = 256000;
    ids[n++] = 1000;
    float *pixels = malloc(3 * 224 * 224 * sizeof(float));
    for (int i = 0; i < 3 * 224 * 224; i++)
        pixels[i] = (float)((i * 7919) % 200) / 100.0f - 1.0f;
    const float *imgs[1] = {pixels};
    Collected a = {.n = 0}, b = {.n = 0};
    GenerateRequest rq = {.tokens = ids,
                          .n_tokens = n,
                          .images = imgs,
                          .n_images = 1,
                          .max_new_tokens = 6,
                          .top_p = 1,
                          .on_token = collect,
                          .user = &a};
    GenerateResult res;
    Error err;
    CHECK_MSG(engine_generate(e, &rq, &res, &err) == 0, "%s", err.message);
    CHECK_EQ_INT(a.n, 6);
    CHECK(res.vision_ms > 0);
    /* the same request again gives the same tokens (the vision pass keeps no state) */
    rq.user = &b;
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    CHECK(b.n == a.n && memcmp(a.ids, b.ids, sizeof(int32_t) * 6) == 0);
    free(pixels);
    engine_close(e);
}

TEST(engine_token_loop_does_not_grow_the_heap) {
    Engine *e = open_tiny(256);
    if (!e)
        return;
    Collected c = {.n = 0};
    GenerateRequest rq = {.tokens = prompt,
                          .n_tokens = 12,
                          .max_new_tokens = 100,
                          .temperature = 1.0f,
                          .top_p = 0.9f,
                          .top_k = 50,
                          .on_token = collect,
                          .user = &c};
    GenerateResult res;
    Error err;
    CHECK(engine_generate(e, &rq, &res, &err) == 0);
    CHECK_EQ_INT(c.n, 100);
    CHECK_MSG(c.heap_first == c.heap_last, "heap in use went from %zu to %zu bytes during decoding",
              c.heap_first, c.heap_last);
    engine_close(e);
}

TEST(sampler_never_picks_ids_past_the_text_vocabulary) {
    int n = 262208;
    float *l = malloc(n * sizeof *l);
    int32_t *scratch = malloc(n * sizeof *scratch);
    Sampler s;
    for (int mode = 0; mode < 2; mode++) {
        sampler_init(&s, n, mode ? 1.0f : 0.0f, 0, 1.0f, 42);
        for (int r = 0; r < 20; r++) {
            for (int i = 0; i < n; i++)
                l[i] = i >= TEXT_VOCAB ? 100.0f : (float)(i % 7);
            int32_t t = sampler_next(&s, l, scratch);
            CHECK(t >= 0 && t < TEXT_VOCAB);
        }
    }
    /* a small vocabulary is sampled whole */
    sampler_init(&s, 512, 0.0f, 0, 1.0f, 1);
    CHECK_EQ_INT(s.n_sampled, 512);
    free(l), free(scratch);
}
