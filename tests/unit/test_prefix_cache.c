/* Prefix reuse (engine/prefix_cache.h, docs/caching.md) on the CPU backend and the
 * synth-model "tiny" checkpoint (sliding window 64, 64 soft tokens per image):
 * every reuse path gives the logits (and the greedy continuation's logits) of a
 * cold prefill bit for bit, conversations longer than the window included; the
 * plan falls back to a full prefill where the ring no longer holds the window. */
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/prefix_cache.h"
#include "engine/synth_model.h"
#include "tests/unit/test.h"

#define MAX_CTX 1024
#define RING_EXTRA 512
#define DECODE_STEPS 6

static const char *tiny_dir(void) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/tiny-model", test_tmpdir());
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return dir;
    }
    SynthOptions so = {.preset = "tiny", .out_dir = dir, .seed = 3, .old_layout = -1, .n_threads = 2};
    Error err;
    if (synth_model_write(&so, &err) != 0)
        test_skip("synth-model tiny could not be written: %s", err.message);
    return dir;
}

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
    if (model_open(&r->model, tiny_dir(), &err) != 0) {
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

/* A prompt: token ids, image blocks (block index = image index), the images'
 * embeddings (random, one seed per image) and their hashes. */
typedef struct {
    int32_t ids[MAX_CTX], block[MAX_CTX];
    int n, n_images;
    uint64_t image_seed[16];
    ImageHash hash[16];
} Prompt;

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void add_text(Prompt *p, int n, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        p->ids[p->n] = 1000 + (int32_t)(rng_next(&seed) % 200000);
        p->block[p->n++] = -1;
    }
}

static void add_image(Prompt *p, const Rig *r, uint64_t image_seed) {
    for (int i = 0; i < r->per_image; i++) {
        p->ids[p->n] = r->image_token;
        p->block[p->n++] = p->n_images;
    }
    p->image_seed[p->n_images] = image_seed;
    p->hash[p->n_images] = (ImageHash){image_seed * 7919 + 1, image_seed};
    p->n_images++;
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
            e[row * r->D + d] = (float)((int)(rng_next(&s) % 2001) - 1000) / 500.0f;
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
        for (size_t i = 0; i < bytes / sizeof(float); i++)
            if (memcmp(&warm[i], &cold[i], sizeof(float)) != 0 && !diff++)
                first = i;
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
