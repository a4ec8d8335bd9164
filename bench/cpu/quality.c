/* What the CPU backend's opt-in modes cost in accuracy, measured against the
 * default (exact fp32 math on the bf16 weights):
 *
 *   quality texts MODEL_DIR TEXTS_FILE    the real model over a fixed text set (one text per line):
 *       teacher-forced over each text (at most 128 tokens): mean KL(P_exact || P_mode) per position
 *       and top-1 agreement; then greedy: 32 tokens after each text's first 16, share of positions
 *       equal to the exact path's and texts whose 32 tokens are all equal.
 *   quality goldens GOLDEN_DIR...          the transformers goldens (tests/fixtures/golden/CASE):
 *       rel. L2 error of the prefill logits and the worst hidden state vs transformers fp32,
 *       argmax flips of the prefill logits, vision output error where the case has images.
 *
 * Modes: exact (the reference itself, for scale), bf16 (precision bf16), q8 (weights q8),
 * bf16+q8. Prints markdown tables. Built and run by bench/cpu/run_quality.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "kernels/kernels.h"
#include "tokenizer/tokenizer.h"

#define MAX_TEXT_TOKENS 128
#define GREEDY_PROMPT 16
#define GREEDY_TOKENS 32

typedef struct {
    const char *name;
    int bf16, q8;
} Mode;

static const Mode modes[] = {{"exact", 0, 0}, {"bf16", 1, 0}, {"q8", 0, 1}, {"bf16+q8", 1, 1}};
#define N_MODES 4

static void die(const char *what, const Error *err) {
    fprintf(stderr, "quality: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "quality: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* One backend state per mode over the same weights. Precision is process-wide
 * in the kernels, so it is set again before every call. */
typedef struct {
    const Backend *be;
    void *st[N_MODES];
} Runner;

static void runner_open(Runner *r, const Model *m, int max_ctx, int max_prefill) {
    r->be = backend_cpu_get();
    for (int i = 0; i < N_MODES; i++) {
        BackendOptions bo = {.n_threads = 0,
                             .max_context = max_ctx,
                             .max_prefill = max_prefill,
                             .embed_scale = m->embed_scale,
                             .precision_bf16 = modes[i].bf16,
                             .weights_q8 = modes[i].q8};
        Error err = {{0}};
        if (r->be->create(&r->st[i], &m->config, &m->weights, &bo, &err) != 0)
            die("backend create", &err);
    }
}

static void runner_close(Runner *r) {
    for (int i = 0; i < N_MODES; i++)
        r->be->destroy(r->st[i]);
}

static void use_mode(int i) {
    kernels_set_precision(modes[i].bf16 ? PRECISION_BF16 : PRECISION_EXACT);
}

/* log-softmax of n logits into out (double). */
static void log_softmax(double *out, const float *x, int n) {
    double mx = x[0];
    for (int i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp((double)x[i] - mx);
    double lse = mx + log(s); // cppcheck-suppress invalidFunctionArg ; s >= exp(0) = 1
    for (int i = 0; i < n; i++)
        out[i] = (double)x[i] - lse;
}

static int argmax_f(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static int run_texts(const char *model_dir, const char *texts_path) {
    Model m;
    Error err = {{0}};
    if (model_open(&m, model_dir, &err) != 0)
        die("model", &err);
    char tok_path[1024];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", model_dir);
    Tokenizer *tok;
    if (tokenizer_load(&tok, tok_path, &err) != 0)
        die("tokenizer", &err);
    FILE *f = fopen(texts_path, "r");
    if (!f) {
        fprintf(stderr, "quality: cannot read %s\n", texts_path);
        return 1;
    }
    int V = m.config.text.vocab_size;
    Runner r;
    runner_open(&r, &m, MAX_TEXT_TOKENS + GREEDY_TOKENS + 1, MAX_TEXT_TOKENS);
    float *all = xmalloc((size_t)N_MODES * MAX_TEXT_TOKENS * V * sizeof(float));
    float *logits = xmalloc((size_t)V * sizeof(float));
    double *lp = xmalloc((size_t)V * sizeof(double)), *lq = xmalloc((size_t)V * sizeof(double));
    double kl_sum[N_MODES] = {0}, kl_max[N_MODES] = {0};
    long agree[N_MODES] = {0}, positions = 0;
    long greedy_equal[N_MODES] = {0}, greedy_total = 0;
    int texts = 0, texts_identical[N_MODES] = {0};
    char line[16384];
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\n");
        if (len == 0 || line[0] == '#')
            continue;
        int32_t *ids;
        size_t n_ids;
        if (tokenizer_encode(tok, line, len, 1, &ids, &n_ids, &err) != 0)
            die("tokenize", &err);
        int T = n_ids < MAX_TEXT_TOKENS ? (int)n_ids : MAX_TEXT_TOKENS;
        if (T <= GREEDY_PROMPT) {
            free(ids);
            continue;
        }
        texts++;
        /* teacher-forced: logits at every position, every mode */
        for (int i = 0; i < N_MODES; i++) {
            use_mode(i);
            BackendCapture cap = {.all_logits = all + (size_t)i * MAX_TEXT_TOKENS * V, .logits_capacity = T};
            r.be->set_capture(r.st[i], &cap);
            if (r.be->prefill(r.st[i], ids, T, NULL, NULL, logits, &err) != 0)
                die("prefill", &err);
            r.be->set_capture(r.st[i], NULL);
        }
        for (int t = 0; t < T; t++) {
            const float *ref = all + (size_t)t * V;
            log_softmax(lp, ref, V);
            int ref_top = argmax_f(ref, V);
            for (int i = 1; i < N_MODES; i++) {
                const float *q = all + (size_t)i * MAX_TEXT_TOKENS * V + (size_t)t * V;
                log_softmax(lq, q, V);
                double kl = 0;
                for (int v = 0; v < V; v++)
                    kl += exp(lp[v]) * (lp[v] - lq[v]);
                kl_sum[i] += kl;
                kl_max[i] = kl > kl_max[i] ? kl : kl_max[i];
                agree[i] += argmax_f(q, V) == ref_top;
            }
            positions++;
        }
        /* greedy: 32 tokens after the first 16 */
        int32_t gen[N_MODES][GREEDY_TOKENS];
        for (int i = 0; i < N_MODES; i++) {
            use_mode(i);
            if (r.be->prefill(r.st[i], ids, GREEDY_PROMPT, NULL, NULL, logits, &err) != 0)
                die("prefill", &err);
            for (int k = 0; k < GREEDY_TOKENS; k++) {
                gen[i][k] = argmax_f(logits, V);
                if (k + 1 < GREEDY_TOKENS &&
                    r.be->decode(r.st[i], gen[i][k], GREEDY_PROMPT + k, logits, &err) != 0)
                    die("decode", &err);
            }
        }
        for (int i = 1; i < N_MODES; i++) {
            int same = 0;
            for (int k = 0; k < GREEDY_TOKENS; k++)
                same += gen[i][k] == gen[0][k];
            greedy_equal[i] += same;
            texts_identical[i] += same == GREEDY_TOKENS;
        }
        greedy_total += GREEDY_TOKENS;
        free(ids);
    }
    fclose(f);
    printf(
        "Real model %s, %d texts (%ld teacher-forced positions, at most %d tokens each); greedy: %d tokens "
        "after each text's first %d. Reference: the exact path (fp32 math, bf16 weights).\n\n",
        model_dir, texts, positions, MAX_TEXT_TOKENS, GREEDY_TOKENS, GREEDY_PROMPT);
    printf(
        "| mode | mean KL (nats/token) | max KL | top-1 agreement | greedy tokens equal | texts with all %d "
        "greedy tokens equal |\n|---|---|---|---|---|---|\n",
        GREEDY_TOKENS);
    for (int i = 1; i < N_MODES; i++)
        printf("| %s | %.5f | %.4f | %.2f%% | %.2f%% | %d / %d |\n", modes[i].name, kl_sum[i] / positions,
               kl_max[i], 100.0 * agree[i] / positions, 100.0 * greedy_equal[i] / greedy_total,
               texts_identical[i], texts);
    runner_close(&r);
    free(all), free(logits), free(lp), free(lq);
    tokenizer_free(tok);
    model_close(&m);
    return 0;
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static const float *tensor_f32(const Checkpoint *c, const char *name, size_t n) {
    const TensorInfo *t = checkpoint_find(c, name);
    if (!t || t->dtype != DTYPE_F32 || (size_t)t->n_elements != n) {
        fprintf(stderr, "quality: golden tensor %s missing or of another shape\n", name);
        exit(1);
    }
    return t->data;
}

static int32_t *tensor_ids(const Checkpoint *c, const char *name, int *n) {
    const TensorInfo *t = checkpoint_find(c, name);
    if (!t || t->dtype != DTYPE_I64) {
        fprintf(stderr, "quality: golden tensor %s missing\n", name);
        exit(1);
    }
    *n = (int)t->n_elements;
    int32_t *ids = xmalloc((size_t)*n * sizeof *ids);
    for (int i = 0; i < *n; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * (size_t)i, 8);
        ids[i] = (int32_t)v;
    }
    return ids;
}

static void run_golden(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    Checkpoint *ex;
    Error err = {{0}};
    if (checkpoint_open_file(&ex, path, &err) != 0)
        die("golden", &err);
    Model m;
    if (model_open(&m, dir, &err) != 0)
        die("model", &err);
    const ModelConfig *c = &m.config;
    int T, n_tt;
    int32_t *ids = tensor_ids(ex, "input_ids", &T);
    int32_t *blk = tensor_ids(ex, "token_type_ids", &n_tt);
    if (n_tt != T) {
        fprintf(stderr, "quality: %s: input_ids and token_type_ids differ in length\n", dir);
        exit(1);
    }
    int n_soft = 0, block = -1, prev = 0;
    for (int t = 0; t < T; t++) {
        if (blk[t] && !prev)
            block++;
        prev = blk[t];
        n_soft += blk[t] != 0;
        blk[t] = blk[t] ? block : -1;
    }
    int L = c->text.num_layers, D = c->text.hidden_size, V = c->text.vocab_size;
    int n_images = c->has_vision && n_soft ? n_soft / c->mm_tokens_per_image : 0;
    const float *ref_logits = tensor_f32(ex, "logits", (size_t)T * V);
    const float *ref_hidden = tensor_f32(ex, "hidden_states", (size_t)(L + 1) * T * D);
    Runner r;
    runner_open(&r, &m, T + 1, T);
    float *hidden = xmalloc((size_t)(L + 1) * T * D * sizeof(float));
    float *all = xmalloc((size_t)T * V * sizeof(float)), *logits = xmalloc((size_t)V * sizeof(float));
    const char *slash = strrchr(dir, '/');
    for (int i = 0; i < N_MODES; i++) {
        use_mode(i);
        float *embeds = NULL;
        double ev = 0;
        if (n_images) {
            int P = c->vision.image_size / c->vision.patch_size, Dv = c->vision.hidden_size;
            size_t px = (size_t)3 * c->vision.image_size * c->vision.image_size;
            const float *pixels = tensor_f32(ex, "pixel_values", n_images * px);
            const float *ref_vis = tensor_f32(ex, "vision_last_hidden", (size_t)n_images * P * P * Dv);
            float *pix = xmalloc(px * sizeof(float)), *vis = xmalloc((size_t)P * P * Dv * sizeof(float));
            embeds = xmalloc((size_t)n_images * c->mm_tokens_per_image * D * sizeof(float));
            for (int k = 0; k < n_images; k++) {
                memcpy(pix, pixels + k * px, px * sizeof(float));
                BackendCapture vc = {.vision_hidden = vis};
                r.be->set_capture(r.st[i], &vc);
                if (r.be->encode_image(r.st[i], pix, embeds + (size_t)k * c->mm_tokens_per_image * D, &err) !=
                    0)
                    die("encode_image", &err);
                double e = rel_err(vis, ref_vis + (size_t)k * P * P * Dv, (size_t)P * P * Dv);
                ev = e > ev ? e : ev;
            }
            free(pix), free(vis);
        }
        BackendCapture cap = {
            .hidden = hidden, .hidden_capacity = T, .all_logits = all, .logits_capacity = T};
        r.be->set_capture(r.st[i], &cap);
        if (r.be->prefill(r.st[i], ids, T, n_soft ? blk : NULL, embeds, logits, &err) != 0)
            die("prefill", &err);
        r.be->set_capture(r.st[i], NULL);
        double worst_h = 0;
        for (int l = 0; l <= L; l++) {
            double e = rel_err(hidden + (size_t)l * T * D, ref_hidden + (size_t)l * T * D, (size_t)T * D);
            worst_h = e > worst_h ? e : worst_h;
        }
        int flips = 0;
        for (int t = 0; t < T; t++)
            flips += argmax_f(all + (size_t)t * V, V) != argmax_f(ref_logits + (size_t)t * V, V);
        printf("| %s | %s | %.1e | %.1e | %d / %d |", slash ? slash + 1 : dir, modes[i].name,
               rel_err(all, ref_logits, (size_t)T * V), worst_h, flips, T);
        if (n_images)
            printf(" %.1e |\n", ev);
        else
            printf(" - |\n");
        free(embeds);
    }
    runner_close(&r);
    free(hidden), free(all), free(logits), free(ids), free(blk);
    model_close(&m);
    checkpoint_close(ex);
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "texts"))
        return run_texts(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "goldens")) {
        printf(
            "| case | mode | prefill logits rel. err | worst hidden state rel. err | argmax flips | vision "
            "output rel. err |\n|---|---|---|---|---|---|\n");
        for (int i = 2; i < argc; i++)
            run_golden(argv[i]);
        return 0;
    }
    fprintf(stderr, "usage: quality texts MODEL_DIR TEXTS_FILE | quality goldens GOLDEN_DIR...\n");
    return 2;
}
