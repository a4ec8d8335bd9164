/* Prefix reuse (issue 16, docs/caching.md) on the CUDA backend: the reuse paths of
 * tests/unit/test_prefix_cache.c (a chat continued past the window, the same images with
 * a new question, one image changed, a rollback inside and one beyond the window, a
 * shorter prompt, an edit in the middle) on a small transformers fixture
 * (tests/fixtures/golden/one_image: sliding window 16, 16 soft tokens per image) with a
 * ring of window + 48 slots. For each, the cold prefill picks its greedy tokens; the
 * continued prompt, fed the same tokens, must give logits within the bf16 envelope of the
 * cold run's (8e-2: the cold prefill's flash kernel rounds its probabilities to bf16, the
 * cached attention keeps them in fp32, and the difference goes through bf16 layers), be no
 * further from the CPU backend's fp32 logits than the cold run is (x1.5 + 1e-2), and pick the
 * same greedy token at every step except at most one tie (the cold run's two best logits
 * closer than the two runs differ: these random tiny models have such near ties, where the
 * fp32 CPU picks yet another token). The CPU test checks the plan (which prefix may be
 * reused: here the starts are ones it allows: the ring still holds the window before them and
 * the continued part fits the extra slots) and bit exactness on the CPU backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/config.h"
#include "engine/safetensors.h"
#include "engine/weights.h"
#include "tests/gpu/gpu_check.h"
#include "tests/unit/prompt_builder.h"

#define CTX 256
#define RING_EXTRA 48
#define STEPS 4
#define TOL_REUSE 8e-2 /* continued vs cold: two bf16 runs, each ~3-8e-2 from the fp32 CPU here */

typedef struct {
    const Backend *be;
    void *state;
    const ModelConfig *cfg;
    int V, D;
    void *cpu; /* the CPU backend on the same weights: the fp32 reference */
} Rig;

/* Text ids in [5, 245): inside the fixture's 512-token vocabulary, below its image tokens (500-502). */
static void add_text(Prompt *p, int n, uint64_t seed) {
    prompt_add_text(p, n, seed, 5, 240);
}

static void add_image(Prompt *p, const Rig *r, uint64_t seed) {
    prompt_add_image(p, r->cfg->mm_tokens_per_image, r->cfg->image_token_id, seed);
}

/* The soft tokens' embeddings at positions >= from (as the engine passes them). */
static float *embeds_from(const Prompt *p, const Rig *r, int from) {
    float *e = calloc((size_t)(p->n > 0 ? p->n : 1) * r->D, sizeof *e); /* at most one row per position */
    size_t row = 0;
    for (int t = from; t < p->n; t++) {
        if (p->block[t] < 0)
            continue;
        int b = p->block[t], start = t;
        while (start > 0 && p->block[start - 1] == b)
            start--;
        uint64_t s = p->image_seed[b] * 1000003 + (uint64_t)(t - start) + 1;
        for (int d = 0; d < r->D; d++)
            e[row * r->D + d] = (float)((int)(prompt_rng_next(&s) % 2001) - 1000) / 1000.0f;
        row++;
    }
    return e;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Prefills p from pos0 (0: cold; else continuing the cache), then `steps` tokens: the greedy
 * ones (written to tokens), or those of `forced` when not NULL. Logits [1 + steps, V] (NULL
 * after a failure, reported). */
static float *run_on(Rig *r, const Backend *be, void *state, const Prompt *p, int pos0, int steps,
                     const int32_t *forced, int32_t *tokens, const char *name) {
    float *logits = malloc((size_t)(1 + steps) * r->V * sizeof *logits), *emb = embeds_from(p, r, pos0);
    int has_img = 0;
    for (int t = pos0; t < p->n; t++)
        has_img |= p->block[t] >= 0;
    Error err = {{0}};
    int rc = pos0 == 0
                 ? be->prefill(state, p->ids, p->n, has_img ? p->block : NULL, emb, logits, &err)
                 : be->continue_prefill(state, p->ids + pos0, p->n - pos0, pos0,
                                        has_img ? p->block + pos0 : NULL, has_img ? emb : NULL, logits, &err);
    for (int s = 0; s < steps && rc == 0; s++) {
        tokens[s] = argmax(logits + (size_t)s * r->V, r->V);
        rc = be->decode(state, forced ? forced[s] : tokens[s], p->n + s, logits + (size_t)(s + 1) * r->V,
                        &err);
    }
    free(emb);
    if (rc != 0) {
        gpu_fail(name, "%s at position %d: %s", pos0 ? "continue_prefill" : "prefill", pos0, err.message);
        free(logits);
        return NULL;
    }
    return logits;
}

static float *run(Rig *r, const Prompt *p, int pos0, int steps, const int32_t *forced, int32_t *tokens,
                  const char *name) {
    return run_on(r, r->be, r->state, p, pos0, steps, forced, tokens, name);
}

/* A cold run of `now` picks the greedy tokens; then `old` (+ old_steps decode tokens) fills
 * the cache, `now` continues at k fed the same tokens, and the two are compared. */
static void check(Rig *r, const char *what, const Prompt *old, int old_steps, const Prompt *now, int k) {
    char name[160];
    snprintf(name, sizeof name, "prefix_cuda_%s", what);
    if (!gpu_selected(name))
        return;
    int32_t old_tokens[STEPS], warm_tokens[STEPS], cold_tokens[STEPS];
    float *cold = run(r, now, 0, STEPS, NULL, cold_tokens, name);
    float *o = cold ? run(r, old, 0, old_steps, NULL, old_tokens, name) : NULL;
    float *warm = o ? run(r, now, k, STEPS, cold_tokens, warm_tokens, name) : NULL;
    int32_t cpu_tokens[STEPS];
    float *cpu =
        warm ? run_on(r, backend_cpu_get(), r->cpu, now, 0, STEPS, cold_tokens, cpu_tokens, name) : NULL;
    if (cpu) {
        /* per step: the two CUDA runs against each other and against the fp32 reference; a
         * differing greedy token is a tie when the cold run's two best logits are closer than
         * the two runs' logits differ anywhere */
        double worst = 0, ew = 0, ec = 0;
        int flips = 0, ties = 0;
        for (int s = 0; s <= STEPS; s++) {
            const float *w = warm + (size_t)s * r->V, *c = cold + (size_t)s * r->V,
                        *f = cpu + (size_t)s * r->V;
            double e = rel_err(w, c, (size_t)r->V), a = rel_err(w, f, (size_t)r->V),
                   b = rel_err(c, f, (size_t)r->V);
            worst = e > worst ? e : worst, ew = a > ew ? a : ew, ec = b > ec ? b : ec;
            int wt = argmax(w, r->V), ct = argmax(c, r->V);
            if (wt == ct)
                continue;
            double gap = (double)c[ct] - c[wt], diff = 0;
            for (int v = 0; v < r->V; v++)
                diff = fabs((double)w[v] - c[v]) > diff ? fabs((double)w[v] - c[v]) : diff;
            if (gap <= diff)
                ties++;
            else
                flips++;
        }
        printf(
            "# %s: continued at %d of %d: vs cold %.4f; vs the CPU (fp32) continued %.4f, cold %.4f; greedy "
            "%d %d %d %d (cold %d %d %d %d, CPU %d %d %d %d), %d tie(s)\n",
            name, k, now->n, worst, ew, ec, warm_tokens[0], warm_tokens[1], warm_tokens[2], warm_tokens[3],
            cold_tokens[0], cold_tokens[1], cold_tokens[2], cold_tokens[3], cpu_tokens[0], cpu_tokens[1],
            cpu_tokens[2], cpu_tokens[3], ties);
        if (ew > 1.5 * ec + 1e-2)
            gpu_fail(name, "the continued run is %.4f from the fp32 reference, the cold run %.4f", ew, ec);
        else if (flips || ties > 1)
            gpu_fail(name, "%d greedy token(s) differ from the cold prefill's beyond a tie, %d tie(s)", flips,
                     ties);
        else
            gpu_report(name, worst, TOL_REUSE);
    }
    free(cpu);
    free(o), free(warm), free(cold);
}

static void run_cases(Rig *r) {
    /* a chat continued past the window: the answer and a new turn, then a third turn */
    Prompt old = {0}, now, third;
    add_text(&old, 60, 1);
    now = old;
    add_text(&now, 4, 2);
    add_text(&now, 20, 3);
    check(r, "continued_chat", &old, 4, &now, old.n);
    third = now;
    add_text(&third, 40, 4);
    check(r, "third_turn", &now, 3, &third, now.n);

    /* the same images with a new question; one image changed (its block is in the continued part) */
    Prompt a = {0};
    add_text(&a, 6, 10);
    add_image(&a, r, 100);
    add_text(&a, 3, 11);
    add_image(&a, r, 101);
    add_text(&a, 3, 12);
    Prompt q1 = a, q2 = a;
    add_text(&q1, 8, 20);
    add_text(&q2, 25, 21);
    check(r, "same_images_new_question", &q1, 2, &q2, a.n);
    Prompt changed = q2;
    changed.image_seed[1] = 999;
    check(r, "one_image_changed", &q1, 0, &changed, 6 + r->cfg->mm_tokens_per_image + 3);

    /* rollbacks: 20 positions (more than the window) and 10 (less), a shorter prompt, an edit */
    Prompt long_old = {0};
    add_text(&long_old, 120, 30);
    Prompt back = long_old;
    back.n = 100;
    add_text(&back, 30, 31);
    check(r, "rollback_beyond_the_window", &long_old, 0, &back, 100);
    Prompt inside = long_old;
    inside.n = 110;
    add_text(&inside, 20, 32);
    check(r, "rollback_inside_the_window", &long_old, 0, &inside, 110);
    Prompt shorter = long_old;
    shorter.n = 95;
    check(r, "shorter_prompt", &long_old, 0, &shorter, 88);
    Prompt edited = long_old;
    edited.ids[105] = 5 + (edited.ids[105] + 1) % 240;
    check(r, "edit_in_the_middle", &long_old, 0, &edited, 105);
}

void gpu_prefix_tests(const char *golden_dir) {
    if (!gpu_selected("prefix_cuda"))
        return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/one_image", golden_dir);
    ModelConfig cfg;
    Checkpoint *ck = NULL;
    ModelWeights w;
    memset(&w, 0, sizeof w);
    Error err = {{0}};
    if (config_load(&cfg, dir, &err) || checkpoint_open(&ck, dir, &err) || weights_load(&w, &cfg, ck, &err)) {
        gpu_fail("prefix_cuda_load", "%s", err.message);
        checkpoint_close(ck);
        return;
    }
    Rig r = {backend_cuda_get(), NULL, &cfg, cfg.text.vocab_size, cfg.text.hidden_size, NULL};
    BackendOptions bo = {.max_context = CTX,
                         .max_prefill = CTX,
                         .embed_scale = round_to_bf16(sqrtf((float)cfg.text.hidden_size)),
                         .ring_extra = RING_EXTRA};
    if (!r.be->continue_prefill)
        gpu_fail("prefix_cuda_load", "the CUDA backend has no continue_prefill");
    else if (r.be->create(&r.state, &cfg, &w, &bo, &err) != 0)
        gpu_fail("prefix_cuda_load", "create: %s", err.message);
    else if (backend_cpu_get()->create(&r.cpu, &cfg, &w, &bo, &err) != 0)
        gpu_fail("prefix_cuda_load", "cpu create: %s", err.message);
    else
        run_cases(&r);
    if (r.cpu)
        backend_cpu_get()->destroy(r.cpu);
    if (r.state)
        r.be->destroy(r.state);
    weights_free(&w, &cfg);
    checkpoint_close(ck);
}
