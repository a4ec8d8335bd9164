/* The transformers goldens (tests/fixtures/golden/<case>/, format in
 * tests/golden/README.md) on the CUDA backend: vision output and projector
 * features per image, the hidden states and logits of the whole prompt, and 16
 * greedy decode steps (fed the expected token each step, so one flip does not
 * hide the later ones).
 *
 * Tolerances: the goldens are fp32; the backend stores bf16 like transformers
 * in bf16. On these small random models transformers itself in bf16 is off by
 * (tests/gpu/emu/bf16_envelope.py): prefill logits and hidden states 1.7-3.5e-2,
 * teacher-forced decode steps up to 5.3e-2 with 0-1 greedy flips in 16, vision
 * output and image features 4-7e-3. Even fp32 everywhere except bf16 GEMM inputs
 * gives ~1e-2. So the limits below are that envelope with a little room, not
 * issue 6's 1e-2 / zero flips (which an fp32-activation engine would need). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "engine/config.h"
#include "engine/safetensors.h"
#include "engine/weights.h"
#include "tests/gpu/gpu_check.h"

#define TOL_LOGITS 6e-2
#define TOL_HIDDEN 6e-2
#define TOL_VISION 2e-2
#define MAX_GREEDY_FLIPS 2 /* of 16, teacher-forced (transformers in bf16: 0 or 1) */
#define GREEDY_STEPS 16

/* A float copy of an F32 tensor (NULL when absent or of another dtype). */
static float *tensor_f32(const Checkpoint *ck, const char *name, size_t *n) {
    const TensorInfo *t = checkpoint_find(ck, name);
    if (!t || t->dtype != DTYPE_F32)
        return NULL;
    float *out = malloc(t->n_bytes ? t->n_bytes : 4);
    memcpy(out, t->data, t->n_bytes); /* the data need not be aligned */
    if (n)
        *n = (size_t)t->n_elements;
    return out;
}

static int64_t *tensor_i64(const Checkpoint *ck, const char *name, size_t *n) {
    const TensorInfo *t = checkpoint_find(ck, name);
    if (!t || t->dtype != DTYPE_I64)
        return NULL;
    int64_t *out = malloc(t->n_bytes ? t->n_bytes : 8);
    memcpy(out, t->data, t->n_bytes);
    if (n)
        *n = (size_t)t->n_elements;
    return out;
}

static int argmax_f32(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void run_case(const char *dir, const char *case_name) {
    char name[256], path[1100];
    Error err = {{0}};
    ModelConfig cfg;
    Checkpoint *ck = NULL, *ex = NULL;
    ModelWeights w;
    memset(&w, 0, sizeof w);
    int have_weights = 0;
    void *state = NULL;
    const Backend *be = backend_cuda_get();
    float *logits_ref = NULL, *hidden_ref = NULL, *feat_ref = NULL, *vis_ref = NULL, *pix = NULL;
    float *greedy_logits = NULL, *hidden = NULL, *all_logits = NULL, *feats = NULL, *vis = NULL,
          *logits = NULL;
    int64_t *ids64 = NULL, *types = NULL, *greedy = NULL;
    int32_t *ids = NULL, *image_block = NULL;

    snprintf(name, sizeof name, "golden_%s_load", case_name);
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    if (config_load(&cfg, dir, &err) || checkpoint_open(&ck, dir, &err) ||
        checkpoint_open_file(&ex, path, &err)) {
        gpu_fail(name, "%s", err.message);
        goto done;
    }
    if (weights_load(&w, &cfg, ck, &err)) {
        gpu_fail(name, "%s", err.message);
        goto done;
    }
    have_weights = 1;
    size_t T = 0, n_logits = 0, n_hidden = 0, n_greedy = 0, n_types = 0;
    ids64 = tensor_i64(ex, "input_ids", &T);
    types = tensor_i64(ex, "token_type_ids", &n_types);
    logits_ref = tensor_f32(ex, "logits", &n_logits);
    hidden_ref = tensor_f32(ex, "hidden_states", &n_hidden);
    greedy = tensor_i64(ex, "greedy_ids", &n_greedy);
    greedy_logits = tensor_f32(ex, "greedy_logits", NULL);
    const int V = cfg.text.vocab_size, D = cfg.text.hidden_size, L = cfg.text.num_layers;
    if (!ids64 || !logits_ref || !greedy || !greedy_logits || n_logits != T * (size_t)V ||
        n_greedy < GREEDY_STEPS) {
        gpu_fail(
            name,
            "expected.safetensors lacks input_ids/logits/greedy_ids/greedy_logits of the README's shapes");
        goto done;
    }
    ids = malloc(T * sizeof *ids);
    image_block = malloc(T * sizeof *image_block);
    int n_images = 0;
    for (size_t t = 0; t < T; t++) {
        ids[t] = (int32_t)ids64[t]; // NOLINT(clang-analyzer-core.uninitialized.Assign): T values were read
        int soft = types && n_types == T && types[t] == 1;
        if (soft && (t == 0 || !(types[t - 1] == 1)))
            n_images++;
        image_block[t] = soft ? n_images - 1 : -1;
    }

    BackendOptions opt = {0};
    opt.max_context = (int)T + GREEDY_STEPS + 8;
    opt.max_prefill = (int)T;
    opt.embed_scale = round_to_bf16(sqrtf((float)D));
    if (be->create(&state, &cfg, &w, &opt, &err)) {
        gpu_fail(name, "create: %s", err.message);
        goto done;
    }
    gpu_pass(name, "T=%zu, %d image(s), %d layers, device %s", T, n_images, L, be->device_name(state));

    /* images: vision tower + projector */
    int tokens_img = cfg.mm_tokens_per_image;
    if (n_images > 0) {
        const VisionConfig *vc = &cfg.vision;
        int np = (vc->image_size / vc->patch_size) * (vc->image_size / vc->patch_size);
        size_t n_pix = 0, n_feat = 0, n_vis = 0;
        pix = tensor_f32(ex, "pixel_values", &n_pix);
        feat_ref = tensor_f32(ex, "image_features", &n_feat);
        vis_ref = tensor_f32(ex, "vision_last_hidden", &n_vis);
        size_t per_pix = (size_t)vc->num_channels * vc->image_size * vc->image_size;
        snprintf(name, sizeof name, "golden_%s_images", case_name);
        if (!pix || !feat_ref || n_pix != per_pix * n_images || n_feat != (size_t)n_images * tokens_img * D) {
            gpu_fail(name, "pixel_values/image_features missing or of other shapes");
            goto done;
        }
        feats = malloc(n_feat * sizeof *feats);
        vis = malloc((size_t)np * vc->hidden_size * sizeof *vis);
        double worst_feat = 0, worst_vis = 0;
        for (int i = 0; i < n_images; i++) {
            for (size_t j = 0; j < (size_t)np * vc->hidden_size; j++)
                vis[j] = NAN;
            BackendCapture cap = {0};
            cap.vision_hidden = vis;
            be->set_capture(state, &cap);
            if (be->encode_image(state, pix + per_pix * i, feats + (size_t)i * tokens_img * D, &err)) {
                gpu_fail(name, "encode_image %d: %s", i, err.message);
                goto done;
            }
            double e1 = rel_err(feats + (size_t)i * tokens_img * D, feat_ref + (size_t)i * tokens_img * D,
                                (size_t)tokens_img * D);
            double e2 = vis_ref ? rel_err(vis, vis_ref + (size_t)i * np * vc->hidden_size,
                                          (size_t)np * vc->hidden_size)
                                : 0;
            if (!(e1 <= worst_feat))
                worst_feat = e1;
            if (!(e2 <= worst_vis))
                worst_vis = e2;
        }
        snprintf(name, sizeof name, "golden_%s_vision_last_hidden", case_name);
        gpu_report(name, worst_vis, TOL_VISION);
        snprintf(name, sizeof name, "golden_%s_image_features", case_name);
        gpu_report(name, worst_feat, TOL_VISION);
    }

    /* prefill with capture */
    hidden = malloc((size_t)(L + 1) * T * D * sizeof *hidden);
    all_logits = malloc(T * (size_t)V * sizeof *all_logits);
    logits = malloc((size_t)V * sizeof *logits);
    for (size_t i = 0; i < (size_t)(L + 1) * T * D; i++)
        hidden[i] = NAN;
    for (size_t i = 0; i < T * (size_t)V; i++)
        all_logits[i] = NAN;
    BackendCapture cap = {0};
    cap.hidden = hidden;
    cap.hidden_capacity = (int)T;
    cap.all_logits = all_logits;
    cap.logits_capacity = (int)T;
    be->set_capture(state, &cap);
    snprintf(name, sizeof name, "golden_%s_prefill_logits", case_name);
    if (be->prefill(state, ids, (int)T, n_images ? image_block : NULL, feats, logits, &err)) {
        gpu_fail(name, "prefill: %s", err.message);
        goto done;
    }
    be->set_capture(state, NULL);
    gpu_report(name, rel_err(all_logits, logits_ref, T * (size_t)V), TOL_LOGITS);
    if (hidden_ref && n_hidden == (size_t)(L + 1) * T * D) {
        double worst = 0;
        int worst_i = 0;
        for (int i = 0; i <= L; i++) {
            double e = rel_err(hidden + (size_t)i * T * D, hidden_ref + (size_t)i * T * D, T * (size_t)D);
            if (!(e <= worst))
                worst = e, worst_i = i;
        }
        printf("# %s: worst hidden_states entry is %d of 0..%d\n", case_name, worst_i, L);
        snprintf(name, sizeof name, "golden_%s_hidden_states", case_name);
        gpu_report(name, worst, TOL_HIDDEN);
    }

    /* greedy decode, teacher-forced with the expected ids */
    int flips = 0;
    double worst_step = 0;
    char seq[512] = "";
    size_t used = 0;
    for (int s = 0; s < GREEDY_STEPS; s++) {
        if (s > 0 && be->decode(state, (int32_t)greedy[s - 1], (int)T + s - 1, logits, &err)) {
            snprintf(name, sizeof name, "golden_%s_greedy", case_name);
            gpu_fail(name, "decode step %d: %s", s, err.message);
            goto done;
        }
        int got = argmax_f32(logits, V);
        flips += got != greedy[s];
        used += snprintf(seq + used, used < sizeof seq ? sizeof seq - used : 0, "%s%d", s ? "," : "", got);
        double e = rel_err(logits, greedy_logits + (size_t)s * V, V);
        if (!(e <= worst_step))
            worst_step = e;
    }
    printf("# %s: greedy ids %s\n", case_name, seq); /* compared before/after backend changes */
    snprintf(name, sizeof name, "golden_%s_greedy_logits_worst_step", case_name);
    gpu_report(name, worst_step, TOL_LOGITS);
    snprintf(name, sizeof name, "golden_%s_greedy_16_ids", case_name);
    if (flips > MAX_GREEDY_FLIPS)
        gpu_fail(name, "%d of %d greedy ids differ (got %s)", flips, GREEDY_STEPS, seq);
    else
        gpu_pass(name, "%d of %d identical (at most %d may flip)", GREEDY_STEPS - flips, GREEDY_STEPS,
                 MAX_GREEDY_FLIPS);

done:
    if (state)
        be->destroy(state);
    if (have_weights)
        weights_free(&w, &cfg);
    checkpoint_close(ck);
    checkpoint_close(ex);
    free(logits_ref), free(hidden_ref), free(feat_ref), free(vis_ref), free(pix), free(greedy_logits);
    free(hidden), free(all_logits), free(feats), free(vis), free(logits);
    free(ids64), free(types), free(greedy), free(ids), free(image_block);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void gpu_golden_tests(const char *golden_dir) {
    DIR *d = opendir(golden_dir);
    if (!d) {
        gpu_fail("golden_cases", "cannot open %s", golden_dir);
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        char path[1024];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s/expected.safetensors", golden_dir, e->d_name);
        if (e->d_name[0] != '.' && stat(path, &sb) == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n == 0)
        gpu_fail("golden_cases", "no case with expected.safetensors under %s", golden_dir);
    qsort(names, n, sizeof *names, cmp_str); // cppcheck-suppress uninitvar ; names[0..n) are set, n > 0
    for (int i = 0; i < n; i++) {
        char dir[1024], label[128];
        snprintf(dir, sizeof dir, "%s/%s", golden_dir, names[i]);
        snprintf(label, sizeof label, "golden_%s", names[i]);
        if (gpu_selected(label))
            run_case(dir, names[i]);
        free(names[i]);
    }
}
