/* Prefix reuse (engine/prefix_cache.h, docs/caching.md) on the CPU backend and the
 * synth-model "tiny" checkpoint (sliding window 64, 64 soft tokens per image):
 * every reuse path gives the logits (and the greedy continuation's logits) of a
 * cold prefill bit for bit, conversations longer than the window included; the
 * plan falls back to a full prefill where the ring no longer holds the window. */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/prefix_cache.h"
#include "engine/synth_model.h"
#include "tests/unit/prompt_builder.h"
#include "tests/unit/test.h"

#define MAX_CTX 1024
#define RING_EXTRA 512
#define DECODE_STEPS 6

typedef struct {
    Model model;
    const Backend *be;
    void *state;
    int V, D, per_image, image_token;
    PrefixGeometry geom;
} Rig;

static int rig_open(Rig *r, int ring_extra, int precision_bf16, int weights_q8) {
    memset(r, 0, sizeof *r);
    Error err;
    if (model_open(&r->model, test_tiny_model(), &err) != 0) {
        test_fail(__FILE__, __LINE__, "model_open: %s", err.message);
        return -1;
    }
    const ModelConfig *c = &r->model.config;
    r->be = backend_cpu_get();
    BackendOptions bo = {.n_threads = 2,
                         .max_context = MAX_CTX,
                         .max_prefill = MAX_CTX,
                         .precision_bf16 = precision_bf16,
                         .weights_q8 = weights_q8,
                         .embed_scale = r->model.embed_scale,
                         .ring_extra = ring_extra};
    if (r->be->create(&r->state, c, &r->model.weights, &bo, &err) != 0) {
        test_fail(__FILE__, __LINE__, "create: %s", err.message);
        model_close(&r->model);
        return -1;
    }
    r->V = c->text.vocab_size;
    r->D = c->text.hidden_size;
    r->per_image = c->mm_tokens_per_image;
    r->image_token = c->image_token_id;
    r->geom.window = c->text.sliding_window;
    r->geom.max_context = MAX_CTX;
    r->geom.ring_capacity =
        c->text.sliding_window + ring_extra < MAX_CTX ? c->text.sliding_window + ring_extra : MAX_CTX;
    CHECK(r->be->continue_prefill != NULL);
    return 0;
}

static void rig_close(Rig *r) {
    r->be->destroy(r->state);
    model_close(&r->model);
}

/* Text ids in [1000, 201000): inside the real vocabulary, below the image tokens (255999 on). */
static void add_text(Prompt *p, int n, uint64_t seed) {
    prompt_add_text(p, n, seed, 1000, 200000);
}

static void add_image(Prompt *p, const Rig *r, uint64_t image_seed) {
    prompt_add_image(p, r->per_image, r->image_token, image_seed);
}

/* Embeddings of the soft tokens at positions >= from (as the engine passes them). */
static float *embeds_from(const Prompt *p, const Rig *r, int from) {
    float *e = calloc((size_t)MAX_CTX * r->D, sizeof *e);
    size_t row = 0;
    for (int t = from; t < p->n; t++) {
        if (p->block[t] < 0)
            continue;
        int b = p->block[t], start = t;
        while (start > 0 && p->block[start - 1] == b)
            start--;
        uint64_t s = p->image_seed[b] * 1000003 + (uint64_t)(t - start) + 1;
        for (int d = 0; d < r->D; d++)
            e[row * r->D + d] = (float)((int)(prompt_rng_next(&s) % 2001) - 1000) / 500.0f;
        row++;
    }
    return e;
}

/* Logits of the prompt's last position, then of DECODE_STEPS greedy tokens: [1 + steps, V]. */
static float *run(Rig *r, const Prompt *p, int pos0, int decode_steps) {
    float *logits = malloc((size_t)(1 + decode_steps) * r->V * sizeof *logits);
    float *emb = embeds_from(p, r, pos0);
    int has_img = 0;
    for (int t = pos0; t < p->n; t++)
        has_img |= p->block[t] >= 0;
    Error err;
    int rc = pos0 == 0 ? r->be->prefill(r->state, p->ids, p->n, has_img ? p->block : NULL, emb, logits, &err)
                       : r->be->continue_prefill(r->state, p->ids + pos0, p->n - pos0, pos0,
                                                 has_img ? p->block + pos0 : NULL, has_img ? emb : NULL,
                                                 logits, &err);
    CHECK_MSG(rc == 0, "prefill at %d: %s", pos0, err.message);
    for (int s = 0; s < decode_steps && rc == 0; s++) {
        const float *l = logits + (size_t)s * r->V;
        int best = 0;
        for (int v = 1; v < r->V; v++)
            if (l[v] > l[best])
                best = v;
        rc = r->be->decode(r->state, best, p->n + s, logits + (size_t)(s + 1) * r->V, &err);
        CHECK_MSG(rc == 0, "decode: %s", err.message);
    }
    free(emb);
    return logits;
}

/* Runs `old` (+ decode), plans `now` against it, continues, and compares with a cold run.
 * Returns the planned start (0 = the plan chose a full prefill). */
static int check_reuse(Rig *r, const Prompt *old, int old_decode, const Prompt *now, const char *what) {
    free(run(r, old, 0, old_decode));
    PrefixRecord rec = {0};
    CHECK(prefix_record(&rec, 7, old->ids, old->n, old->block, old->hash, old->n_images, 0) == 0);
    rec.written = old->n + old_decode;
    PrefixOutcome outcome;
    int k = prefix_plan(&rec, &r->geom, 7, now->ids, now->n, now->block, now->hash, now->n_images, &outcome);
    CHECK_MSG(
        prefix_plan(&rec, &r->geom, 8, now->ids, now->n, now->block, now->hash, now->n_images, &outcome) == 0,
        "%s: another tenant got a prefix", what);
    prefix_record_free(&rec);
    float *warm = run(r, now, k, DECODE_STEPS);
    float *cold = run(r, now, 0, DECODE_STEPS);
    size_t bytes = (size_t)(1 + DECODE_STEPS) * r->V * sizeof(float);
    if (memcmp(warm, cold, bytes) != 0) {
        size_t diff = 0, first = 0;
        for (size_t i = 0; i < bytes / sizeof(float); i++) {
            uint32_t w, c; /* bit for bit (NaN payloads and -0 included) is the point of this test */
            memcpy(&w, &warm[i], sizeof w);
            memcpy(&c, &cold[i], sizeof c);
            if (w != c && !diff++)
                first = i;
        }
        test_fail(__FILE__, __LINE__,
                  "%s: continued at %d of %d, %zu logits differ (first at step %zu: %g vs %g)", what, k,
                  now->n, diff, first / (size_t)r->V, warm[first], cold[first]);
    }
    free(warm);
    free(cold);
    return k;
}

TEST(prefix_continued_chat_is_bit_exact) {
    Rig r;
    if (rig_open(&r, RING_EXTRA, 0, 0) != 0)
        return;
    Prompt old = {0}, now;
    add_text(&old, 300, 1);
    now = old;
    add_text(&now, 10, 2); /* the previous answer, re-prefilled */
    add_text(&now, 40, 3); /* the new turn */
    CHECK_EQ_INT(check_reuse(&r, &old, 10, &now, "continued chat"), 256);
    /* a third turn over a longer conversation: the prefix reaches past the window twice over */
    Prompt third = now;
    add_text(&third, 300, 4);
    CHECK_EQ_INT(check_reuse(&r, &now, 8, &third, "third turn"), 256);
    Prompt fourth = third;
    add_text(&fourth, 50, 5);
    CHECK_EQ_INT(check_reuse(&r, &third, 4, &fourth, "fourth turn"), 512);
    rig_close(&r);
}

TEST(prefix_same_images_new_question_is_bit_exact) {
    Rig r;
    if (rig_open(&r, RING_EXTRA, 0, 0) != 0)
        return;
    Prompt old = {0};
    add_text(&old, 20, 1);
    for (int i = 0; i < 5; i++) {
        add_image(&old, &r, 100 + i);
        add_text(&old, 3, 10 + i);
    }
    Prompt now = old;
    add_text(&old, 60, 50);
    add_text(&now, 90, 51); /* another question about the same images */
    /* the common prefix (355) is cut to 256: inside the 4th image's block, which is recomputed */
    CHECK_EQ_INT(check_reuse(&r, &old, 5, &now, "same images, new question"), 256);
    /* a different 5th image: the prefix stops at its block (288), cut to 256 */
    Prompt other = now;
    other.hash[4].a ^= 1;
    other.image_seed[4] = 999;
    CHECK_EQ_INT(check_reuse(&r, &old, 0, &other, "one image changed"), 256);
    /* a different 1st image: nothing reusable */
    other = now;
    other.hash[0].b ^= 1;
    other.image_seed[0] = 998;
    CHECK_EQ_INT(check_reuse(&r, &old, 0, &other, "first image changed"), 0);
    rig_close(&r);
}

TEST(prefix_rollback_inside_and_beyond_the_window_is_bit_exact) {
    Rig r;
    if (rig_open(&r, RING_EXTRA, 0, 0) != 0)
        return;
    Prompt old = {0};
    add_text(&old, 600, 1);
    /* shared prefix 520 of 600 cached: rolled back 88 > window 64 (the ring's extra slots) */
    Prompt now = {0};
    add_text(&now, 600, 1);
    now.n = 520;
    add_text(&now, 100, 2);
    CHECK_EQ_INT(check_reuse(&r, &old, 0, &now, "rollback beyond the window"), 512);
    /* shared prefix 290 of 300: rolled back less than the window */
    Prompt a = {0}, b = {0};
    add_text(&a, 300, 3);
    add_text(&b, 300, 3);
    b.n = 290;
    add_text(&b, 20, 4);
    CHECK_EQ_INT(check_reuse(&r, &a, 0, &b, "rollback inside the window"), 256);
    /* a shorter prompt than the cached one (a prefix of it) */
    Prompt shorter = {0};
    add_text(&shorter, 600, 1);
    shorter.n = 400;
    CHECK_EQ_INT(check_reuse(&r, &old, 3, &shorter, "shorter prompt"), 256);
    /* an edit in the middle */
    Prompt edited = old;
    edited.ids[300] += 1;
    CHECK_EQ_INT(check_reuse(&r, &old, 0, &edited, "edit in the middle"), 256);
    /* the same prompt again: the last 32+ rows are prefilled */
    CHECK_EQ_INT(check_reuse(&r, &old, 0, &old, "same prompt"), 512);
    rig_close(&r);
}

TEST(prefix_bit_exact_in_bf16_and_q8_modes) {
    for (int mode = 0; mode < 2; mode++) {
        Rig r;
        if (rig_open(&r, RING_EXTRA, mode == 0, mode == 1) != 0)
            return;
        Prompt old = {0};
        add_text(&old, 30, 1);
        add_image(&old, &r, 5);
        add_text(&old, 300, 2);
        Prompt now = old;
        add_text(&now, 70, 3);
        CHECK_EQ_INT(check_reuse(&r, &old, 4, &now, mode == 0 ? "bf16 activations" : "q8 weights"), 256);
        rig_close(&r);
    }
}

TEST(prefix_plan_falls_back_when_the_ring_has_moved_on) {
    Rig r;
    if (rig_open(&r, 16, 0, 0) != 0) /* ring of window + 16 slots */
        return;
    Prompt old = {0};
    add_text(&old, 600, 1);
    Prompt now = {0};
    add_text(&now, 600, 1);
    now.n = 520;
    add_text(&now, 40, 2);
    PrefixRecord rec = {0};
    CHECK(prefix_record(&rec, 1, old.ids, old.n, old.block, old.hash, 0, 0) == 0);
    PrefixOutcome outcome;
    CHECK_EQ_INT(prefix_plan(&rec, &r.geom, 1, now.ids, now.n, now.block, now.hash, 0, &outcome), 0);
    CHECK_EQ_INT(outcome, PREFIX_COLD_RING);
    /* with few enough positions written past the prefix it is exact again */
    Prompt near = {0};
    add_text(&near, 600, 1);
    near.n = 530;
    CHECK(prefix_record(&rec, 1, near.ids, near.n, near.block, near.hash, 0, 0) == 0);
    Prompt next = near;
    add_text(&next, 40, 3);
    /* continuing at 512 needs positions from 449; a ring of 80 slots holds 450..529 */
    CHECK_EQ_INT(prefix_plan(&rec, &r.geom, 1, next.ids, next.n, next.block, next.hash, 0, &outcome), 0);
    CHECK_EQ_INT(outcome, PREFIX_COLD_RING);
    /* a new part longer than the extra slots: full prefill */
    prefix_record(&rec, 1, old.ids, 520, old.block, old.hash, 0, 0);
    Prompt long_tail = {0};
    add_text(&long_tail, 600, 1);
    long_tail.n = 520;
    add_text(&long_tail, 100, 4);
    CHECK_EQ_INT(prefix_plan(&rec, &r.geom, 1, long_tail.ids, long_tail.n, long_tail.block, long_tail.hash, 0,
                             &outcome),
                 0);
    CHECK_EQ_INT(outcome, PREFIX_COLD_LONG);
    /* too short a prompt: nothing to align to */
    Prompt tiny = {0};
    add_text(&tiny, 600, 1);
    tiny.n = 200;
    CHECK_EQ_INT(prefix_plan(&rec, &r.geom, 1, tiny.ids, tiny.n, tiny.block, tiny.hash, 0, &outcome), 0);
    CHECK_EQ_INT(outcome, PREFIX_COLD_SHORT);
    prefix_record_free(&rec);
    rig_close(&r);
}

/* ---- engine level: a long randomized session, cache on vs off */

#include "engine/engine.h"

typedef struct {
    int32_t ids[64];
    int n;
} Tokens;

static int collect_token(void *user, int32_t id) {
    Tokens *t = user;
    if (t->n < 64)
        t->ids[t->n++] = id;
    return 0;
}

static Engine *open_engine(const char *prefix_cache) {
    setenv("MEDGEMMA_PREFIX_CACHE", prefix_cache, 1);
    setenv("MEDGEMMA_IMAGE_CACHE_MB", "1", 1);
    Engine *e;
    Error err;
    EngineOptions eo = {
        .model_dir = test_tiny_model(), .backend = BACKEND_CPU, .n_threads = 2, .max_context = MAX_CTX};
    if (engine_open(&e, &eo, &err) != 0) {
        test_fail(__FILE__, __LINE__, "engine_open: %s", err.message);
        return NULL;
    }
    return e;
}

/* A conversation: text tokens and image blocks, each image one of the pool. */
typedef struct {
    int32_t ids[MAX_CTX];
    int n, n_images;
    int image_of[16];
} Conversation;

TEST(prefix_randomized_session_same_answers_budgets_held) {
    Model m;
    Error err;
    if (model_open(&m, test_tiny_model(), &err) != 0) {
        test_fail(__FILE__, __LINE__, "model_open: %s", err.message);
        return;
    }
    int image_token = m.config.image_token_id, per_image = m.config.mm_tokens_per_image;
    size_t px = (size_t)3 * m.config.vision.image_size * m.config.vision.image_size;
    model_close(&m);
    Engine *on = open_engine("1"), *off = open_engine("0");
    if (!on || !off)
        return;
    enum { POOL = 24, TENANTS = 3, REQUESTS = 240 };
    float *pool[POOL];
    uint64_t seed = 12345;
    for (int i = 0; i < POOL; i++) {
        pool[i] = malloc(px * sizeof(float));
        for (size_t j = 0; j < px; j++)
            pool[i][j] = (float)((int)(prompt_rng_next(&seed) % 2001) - 1000) / 1000.0f;
    }
    static Conversation conv[TENANTS];
    memset(conv, 0, sizeof conv);
    long long reused = 0;
    for (int q = 0; q < REQUESTS; q++) {
        int tenant = (int)(prompt_rng_next(&seed) % TENANTS);
        Conversation *c = &conv[tenant];
        int action = (int)(prompt_rng_next(&seed) % 10);
        if (c->n == 0 || action == 0 || c->n > MAX_CTX - 200) { /* a new conversation */
            c->n = c->n_images = 0;
            c->ids[c->n++] = 2;
        } else if (action == 1) { /* an edit in the middle */
            int at = 1 + (int)(prompt_rng_next(&seed) % (uint64_t)c->n);
            if (at < c->n && c->ids[at] != image_token)
                c->ids[at] = 1000 + (int32_t)(prompt_rng_next(&seed) % 100000);
        } else if (action == 2 && c->n > 100) { /* back to a shorter prompt (not inside an image) */
            int cut = c->n / 2;
            while (cut > 1 && c->ids[cut - 1] == image_token)
                cut--;
            int images = 0;
            for (int t = 0; t < cut; t++)
                images += c->ids[t] == image_token && c->ids[t - 1] != image_token;
            c->n = cut;
            c->n_images = images;
        }
        if (prompt_rng_next(&seed) % 3 == 0 && c->n_images < 16 && c->n + per_image + 80 < MAX_CTX) {
            c->image_of[c->n_images++] = (int)(prompt_rng_next(&seed) % POOL);
            c->ids[c->n++] = 255999; /* <start_of_image> */
            for (int i = 0; i < per_image; i++)
                c->ids[c->n++] = image_token;
            c->ids[c->n++] = 256000;
        }
        int words = 5 + (int)(prompt_rng_next(&seed) % 60);
        for (int i = 0; i < words; i++)
            c->ids[c->n++] = 1000 + (int32_t)(prompt_rng_next(&seed) % 100000);
        const float *images[16];
        for (int i = 0; i < c->n_images; i++)
            images[i] = pool[c->image_of[i]];
        Tokens got_on = {{0}, 0}, got_off = {{0}, 0};
        GenerateRequest rq = {.tokens = c->ids,
                              .n_tokens = c->n,
                              .images = images,
                              .n_images = c->n_images,
                              .max_new_tokens = 6,
                              .top_p = 1,
                              .on_token = collect_token,
                              .cache_tenant = (uint64_t)tenant + 1};
        GenerateResult r_on, r_off;
        rq.user = &got_on;
        int rc_on = engine_generate(on, &rq, &r_on, &err);
        CHECK_MSG(rc_on == 0, "request %d (cache on): %s", q, err.message);
        rq.user = &got_off;
        int rc_off = engine_generate(off, &rq, &r_off, &err);
        CHECK_MSG(rc_off == 0, "request %d (cache off): %s", q, err.message);
        if (rc_on != 0 || rc_off != 0)
            break;
        CHECK_MSG(got_on.n == got_off.n &&
                      !memcmp(got_on.ids, got_off.ids, (size_t)got_on.n * sizeof(int32_t)),
                  "request %d (%d tokens, %d reused): answers differ with the cache on and off", q, c->n,
                  r_on.cached_tokens);
        CHECK_EQ_INT(r_off.cached_tokens, 0);
        reused += r_on.cached_tokens;
        EngineCacheStats st;
        engine_cache_stats(on, &st);
        CHECK_MSG(st.image_bytes <= st.image_budget_bytes, "request %d: %lld bytes held over the budget %lld",
                  q, st.image_bytes, st.image_budget_bytes);
        /* the answer continues the conversation (the next turn resends it) */
        for (int i = 0; i < got_on.n && c->n < MAX_CTX - 100; i++)
            c->ids[c->n++] = got_on.ids[i];
    }
    EngineCacheStats st, st_off;
    engine_cache_stats(on, &st);
    engine_cache_stats(off, &st_off);
    CHECK_MSG(st.prefix_hits > 20 && reused == st.prefix_tokens_reused,
              "%lld hits, %lld tokens reused (%lld)", st.prefix_hits, st.prefix_tokens_reused, reused);
    CHECK_MSG(st.image_hits > 0 && st.image_misses > 0, "image cache: %lld hits, %lld misses", st.image_hits,
              st.image_misses);
    CHECK_MSG(st.image_misses > POOL, "no evictions exercised (%lld misses)", st.image_misses);
    CHECK_EQ_INT(st_off.prefix_enabled, 0);
    CHECK_EQ_INT(st_off.image_hits + st_off.image_misses + st_off.image_bytes, 0);
    CHECK_EQ_INT(st.prefix_enabled, 1);
    for (int i = 0; i < POOL; i++)
        free(pool[i]);
    engine_close(on);
    engine_close(off);
}

TEST(prefix_cache_entries_expire_when_idle) {
    setenv("MEDGEMMA_CACHE_IDLE_S", "1", 1);
    Engine *e = open_engine("1");
    if (!e)
        return;
    static int32_t ids[400];
    uint64_t seed = 9;
    for (int i = 0; i < 400; i++)
        ids[i] = 1000 + (int32_t)(prompt_rng_next(&seed) % 100000);
    GenerateRequest rq = {.tokens = ids, .n_tokens = 350, .max_new_tokens = 1, .top_p = 1, .cache_tenant = 5};
    GenerateResult r;
    Error err;
    CHECK(engine_generate(e, &rq, &r, &err) == 0);
    rq.n_tokens = 400;
    CHECK(engine_generate(e, &rq, &r, &err) == 0);
    CHECK_EQ_INT(r.cached_tokens, 256);
    rq.cache_tenant = 6; /* another tenant: nothing */
    CHECK(engine_generate(e, &rq, &r, &err) == 0);
    CHECK_EQ_INT(r.cached_tokens, 0);
    struct timespec pause = {1, 300000000};
    nanosleep(&pause, NULL);
    CHECK(engine_generate(e, &rq, &r, &err) == 0);
    CHECK_EQ_INT(r.cached_tokens, 0);
    EngineCacheStats st;
    engine_cache_stats(e, &st);
    CHECK_MSG(st.expired >= 1, "%lld expired", st.expired);
    engine_close(e);
}
