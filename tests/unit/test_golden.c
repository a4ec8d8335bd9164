/* The CPU engine against transformers (tests/fixtures/golden, format in
 * tests/golden/README.md): per case, the vision tower and projector outputs,
 * every hidden state and the logits at every prompt position within 1e-4
 * relative, the 16-token greedy continuation identical (through the backend
 * and through engine_generate), and the attention masks transformers used. */
#include <stdlib.h>

#include "engine/backend.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "kernels/kernels.h"
#include "tests/unit/test.h"

#define TOL 1e-4

typedef struct {
    Checkpoint *file;
    const char *dir;
} Expected;

static const TensorInfo *want(Expected *ex, const char *name, DType dtype) {
    const TensorInfo *t = checkpoint_find(ex->file, name);
    if (!t || t->dtype != dtype)
        test_skip("golden %s: tensor %s missing or of another dtype (regenerate the goldens)", ex->dir, name);
    return t;
}

static double rel_err(const float *out, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)out[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static char *case_dir(const char *name) {
    static char path[512];
    const char *root = getenv("REPO_ROOT");
    snprintf(path, sizeof path, "%s/tests/fixtures/golden/%s", root ? root : ".", name);
    return path;
}

/* Token ids (I64 -> int32) and image blocks from token_type_ids runs. */
static int32_t *load_ids(Expected *ex, const char *name, int *n) {
    const TensorInfo *t = want(ex, name, DTYPE_I64);
    *n = (int)t->n_elements;
    int32_t *ids = malloc(*n * sizeof *ids);
    for (int i = 0; i < *n; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        ids[i] = (int32_t)v;
    }
    return ids;
}

static int32_t *image_blocks(Expected *ex, int T, int *n_soft) {
    int n;
    int32_t *tt = load_ids(ex, "token_type_ids", &n);
    if (n != T) { /* the test fails; go on with no image tokens rather than read past the array */
        test_fail(__FILE__, __LINE__, "%s: token_type_ids has %d values, expected %d", ex->dir, n, T);
        free(tt);
        tt = calloc((size_t)T, sizeof *tt);
    }
    int block = -1, prev = 0;
    *n_soft = 0;
    for (int t = 0; t < T; t++) {
        if (tt[t] && !prev)
            block++;
        prev = tt[t];
        *n_soft += tt[t] != 0;
        tt[t] = tt[t] ? block : -1;
    }
    return tt;
}

static const float *f32(Expected *ex, const char *name, size_t n) {
    const TensorInfo *t = want(ex, name, DTYPE_F32);
    if ((size_t)t->n_elements != n)
        test_fail(__FILE__, __LINE__, "%s: %s has %lld values, expected %zu", ex->dir, name,
                  (long long)t->n_elements, n);
    return t->data;
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

/* Runs one case. fp32 = transformers ran in float32 (full comparison). */
static void run_case(const char *name, int fp32) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s", case_dir(name));
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    Expected ex = {NULL, dir};
    Error err = {{0}};
    if (checkpoint_open_file(&ex.file, path, &err) != 0)
        test_skip("golden case %s not found (%s)", name, err.message);

    Model model;
    if (model_open(&model, dir, &err) != 0) {
        test_fail(__FILE__, __LINE__, "%s: %s", name, err.message);
        return;
    }
    const ModelConfig *c = &model.config;
    int T, n_greedy, n_soft;
    int32_t *ids = load_ids(&ex, "input_ids", &T);
    int32_t *greedy = load_ids(&ex, "greedy_ids", &n_greedy);
    int32_t *blk = image_blocks(&ex, T, &n_soft);
    int L = c->text.num_layers, D = c->text.hidden_size, V = c->text.vocab_size;
    int n_images = c->has_vision ? n_soft / c->mm_tokens_per_image : 0;

    const Backend *be = backend_cpu_get();
    BackendOptions bo = {
        .n_threads = 2, .max_context = T + n_greedy + 1, .max_prefill = T, .embed_scale = model.embed_scale};
    void *st;
    CHECK_MSG(be->create(&st, c, &model.weights, &bo, &err) == 0, "%s: create: %s", name, err.message);
    float *hidden = malloc((size_t)(L + 1) * T * D * sizeof(float));
    float *all_logits = malloc((size_t)T * V * sizeof(float)), *logits = malloc((size_t)V * sizeof(float));
    float *embeds = NULL, *pixels_copy = NULL;

    /* vision tower + projector */
    if (n_images > 0) {
        int P = c->vision.image_size / c->vision.patch_size, Dv = c->vision.hidden_size;
        size_t px = (size_t)3 * c->vision.image_size * c->vision.image_size;
        const float *pixels = f32(&ex, "pixel_values", n_images * px);
        const float *ref_feat = f32(&ex, "image_features", (size_t)n_images * c->mm_tokens_per_image * D);
        const float *ref_vis = f32(&ex, "vision_last_hidden", (size_t)n_images * P * P * Dv);
        embeds = malloc((size_t)n_images * c->mm_tokens_per_image * D * sizeof(float));
        float *vis = malloc((size_t)P * P * Dv * sizeof(float));
        pixels_copy = malloc((size_t)n_images * px * sizeof(float));
        memcpy(pixels_copy, pixels, (size_t)n_images * px * sizeof(float)); /* aligned copy */
        for (int i = 0; i < n_images; i++) {
            BackendCapture cap = {.vision_hidden = vis};
            be->set_capture(st, &cap);
            float *e = embeds + (size_t)i * c->mm_tokens_per_image * D;
            CHECK(be->encode_image(st, pixels_copy + i * px, e, &err) == 0);
            double ev = rel_err(vis, ref_vis + (size_t)i * P * P * Dv, (size_t)P * P * Dv);
            double ef = rel_err(e, ref_feat + (size_t)i * c->mm_tokens_per_image * D,
                                (size_t)c->mm_tokens_per_image * D);
            CHECK_MSG(ev < TOL, "%s image %d: vision_last_hidden rel err %g", name, i, ev);
            CHECK_MSG(ef < TOL, "%s image %d: image_features rel err %g", name, i, ef);
        }
        free(vis);
    }

    /* prefill: hidden states and logits at every position */
    BackendCapture cap = {
        .hidden = hidden, .hidden_capacity = T, .all_logits = all_logits, .logits_capacity = T};
    be->set_capture(st, &cap);
    CHECK(be->prefill(st, ids, T, n_soft ? blk : NULL, embeds, logits, &err) == 0);
    be->set_capture(st, NULL);
    const float *ref_hidden = f32(&ex, "hidden_states", (size_t)(L + 1) * T * D);
    const float *ref_logits = f32(&ex, "logits", (size_t)T * V);
    if (fp32) {
        for (int l = 0; l <= L; l++) {
            double e = rel_err(hidden + (size_t)l * T * D, ref_hidden + (size_t)l * T * D, (size_t)T * D);
            CHECK_MSG(e < TOL, "%s: hidden_states[%d] rel err %g", name, l, e);
        }
        double e = rel_err(all_logits, ref_logits, (size_t)T * V);
        CHECK_MSG(e < TOL, "%s: logits rel err %g", name, e);
        CHECK_MSG(rel_err(logits, ref_logits + (size_t)(T - 1) * V, V) < TOL, "%s: last-position logits",
                  name);
    } else {
        /* transformers ran in bf16: the embedding step is exact once rounded to bf16 */
        size_t bad = 0;
        for (size_t i = 0; i < (size_t)T * D; i++)
            bad += round_to_bf16(hidden[i]) != ref_hidden[i];
        CHECK_MSG(bad == 0, "%s: %zu embedding values differ from transformers' bf16 ones (scale %g)", name,
                  bad, model.embed_scale);
        double e = rel_err(all_logits, ref_logits, (size_t)T * V);
        CHECK_MSG(e < 5e-2, "%s: logits vs bf16 transformers rel err %g (informative; expect ~1e-2)", name,
                  e);
        printf("info %s: logits rel err vs bf16 transformers %.3g\n", name, e);
    }

    /* greedy continuation through the backend */
    if (fp32) {
        const float *ref_gl = f32(&ex, "greedy_logits", (size_t)n_greedy * V);
        int pos = T;
        for (int i = 0; i < n_greedy; i++) {
            double e = rel_err(logits, ref_gl + (size_t)i * V, V);
            CHECK_MSG(e < TOL, "%s: greedy step %d logits rel err %g", name, i, e);
            int tok = argmax(logits, V);
            CHECK_MSG(tok == greedy[i], "%s: greedy step %d: got %d, transformers %d", name, i, tok,
                      greedy[i]);
            if (i + 1 < n_greedy)
                CHECK(be->decode(st, greedy[i], pos++, logits, &err) == 0);
        }

        /* and the same through engine_generate */
        Engine *eng;
        EngineOptions eo = {.model_dir = dir, .backend = BACKEND_CPU, .n_threads = 2, .max_context = 256};
        CHECK_MSG(engine_open(&eng, &eo, &err) == 0, "%s: engine_open: %s", name, err.message);
        const float *imgs[8];
        size_t px = c->has_vision ? (size_t)3 * c->vision.image_size * c->vision.image_size : 0;
        for (int i = 0; i < n_images && i < 8; i++)
            imgs[i] = pixels_copy + i * px;
        Collected got = {.n = 0};
        GenerateRequest rq = {.tokens = ids,
                              .n_tokens = T,
                              .images = imgs,
                              .n_images = n_images,
                              .max_new_tokens = n_greedy,
                              .temperature = 0,
                              .top_p = 1,
                              .on_token = collect,
                              .user = &got};
        GenerateResult res;
        CHECK_MSG(engine_generate(eng, &rq, &res, &err) == 0, "%s: generate: %s", name, err.message);
        CHECK_EQ_INT(got.n, n_greedy);
        CHECK(res.finish_reason == FINISH_LENGTH);
        for (int i = 0; i < got.n && i < n_greedy; i++)
            CHECK_MSG(got.ids[i] == greedy[i], "%s: engine_generate token %d: got %d, transformers %d", name,
                      i, got.ids[i], greedy[i]);
        engine_close(eng);
    }

    be->destroy(st);
    free(hidden), free(all_logits), free(logits), free(embeds), free(pixels_copy);
    free(ids), free(greedy), free(blk);
    model_close(&model);
    checkpoint_close(ex.file);
}

TEST(golden_text_long) {
    run_case("text_long", 1);
}
TEST(golden_one_image) {
    run_case("one_image", 1);
}
TEST(golden_two_images) {
    run_case("two_images", 1);
}
TEST(golden_causal_lm) {
    run_case("causal_lm", 1);
}
TEST(golden_old_layout) {
    run_case("old_layout", 1);
}
TEST(golden_bf16_scale) {
    run_case("bf16_scale", 0);
}

/* The masks transformers used, recovered from attention_prefill: with q = 0
 * every allowed key gets the same weight, and one-hot values expose which. */
static void check_masks(const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/expected.safetensors", case_dir(name));
    Expected ex = {NULL, case_dir(name)};
    Error err;
    if (checkpoint_open_file(&ex.file, path, &err) != 0)
        test_skip("golden case %s not found (%s)", name, err.message);
    ModelConfig c;
    CHECK(config_load(&c, case_dir(name), &err) == 0);
    int T, n_soft;
    int32_t *ids = load_ids(&ex, "input_ids", &T);
    int32_t *blk = image_blocks(&ex, T, &n_soft);
    float *q = calloc((size_t)T * T, sizeof(float)), *k = calloc((size_t)T * T, sizeof(float));
    float *v = calloc((size_t)T * T, sizeof(float)), *o = malloc((size_t)T * T * sizeof(float));
    for (int j = 0; j < T; j++)
        v[(size_t)j * T + j] = 1.0f;
    const char *names[2] = {"mask_sliding", "mask_full"};
    for (int m = 0; m < 2; m++) {
        const float *ref = f32(&ex, names[m], (size_t)T * T);
        attention_prefill(o, q, k, v, n_soft ? blk : NULL, T, 1, 1, T, 1, m == 0 ? c.text.sliding_window : 0,
                          1.0f);
        int bad = 0;
        for (size_t i = 0; i < (size_t)T * T; i++)
            bad += (o[i] > 0) != (ref[i] > 0);
        CHECK_MSG(bad == 0, "%s: %s differs from transformers' at %d places", name, names[m], bad);
    }
    free(q), free(k), free(v), free(o), free(ids), free(blk);
    checkpoint_close(ex.file);
}

TEST(golden_masks_match_transformers) {
    check_masks("two_images");
    check_masks("text_long");
    check_masks("one_image");
}
