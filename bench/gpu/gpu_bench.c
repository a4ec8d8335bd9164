/* build/gpu_bench: the CUDA backend's speed at MedGemma 4B shape (issue 7).
 *   gpu_bench [--model DIR | --synth | --tiny] [--out FILE.json] [--ct85] [--decode-steps N]
 * --synth (default) builds the 4B config and random bf16 weights in host memory
 * (every tensor a view of one random pool: values do not matter for speed);
 * --model loads a checkpoint directory (e.g. `medgemma synth-model --preset
 * medgemma-4b`), so cold_start_s includes reading the files; --tiny is a small model that
 * checks this program's flow (no per-kernel timing), e.g. without a GPU.
 * Measures: device copy bandwidth, load time, vision encode, time to first token
 * with one 896x896 image and a 100-token prompt, prefill tok/s, decode tok/s and
 * its fraction of the bandwidth floor, per-kernel times at decode/prefill shapes,
 * peak GPU memory, and with --ct85 an 85-image CT request. Prints a table and
 * writes the numbers as JSON (field names as issue 7 lists them). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "engine/backend.h"
#include "engine/config.h"
#include "engine/safetensors.h"
#include "engine/weights.h"
#include "bench/gpu/bench_kernels.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double peak_used_gb;
static void note_memory(void) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        double used = (double)(total_b - free_b) / 1e9;
        if (used > peak_used_gb)
            peak_used_gb = used;
    }
}

/* ---- the synthetic 4B model in host memory */

static void synth_config(ModelConfig *c) {
    memset(c, 0, sizeof *c);
    TextConfig *t = &c->text;
    t->hidden_size = 2560, t->intermediate_size = 10240, t->num_layers = 34, t->num_heads = 8;
    t->num_kv_heads = 4, t->head_dim = 256, t->vocab_size = 262208, t->sliding_window = 1024;
    t->max_position = 131072, t->rms_norm_eps = 1e-6f, t->query_pre_attn_scalar = 256;
    t->rope_theta_global = 1e6f, t->rope_theta_local = 1e4f, t->rope_scale_global = 8,
    t->rope_scale_local = 1;
    for (int i = 0; i < t->num_layers; i++)
        t->layer_is_global[i] = i % 6 == 5;
    t->tie_word_embeddings = 1;
    VisionConfig *v = &c->vision;
    v->hidden_size = 1152, v->intermediate_size = 4304, v->num_layers = 27, v->num_heads = 16;
    v->patch_size = 14, v->image_size = 896, v->num_channels = 3, v->layer_norm_eps = 1e-6f;
    c->has_vision = 1, c->mm_tokens_per_image = 256, c->image_token_id = 262144;
    c->boi_token_id = 255999, c->eoi_token_id = 256000, c->eos_ids[0] = 1, c->eos_ids[1] = 106,
    c->n_eos_ids = 2;
    c->bos_token_id = 2;
}

typedef struct {
    bf16 *p;
    size_t n;
    uint64_t seed;
} FillJob;

static void *fill_part(void *arg) {
    FillJob *j = arg;
    uint64_t s = j->seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < j->n; i++) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        float f = (float)(((s * 2685821657736338717ull) >> 40) * (1.0 / 16777216.0)) * 0.06f - 0.03f;
        j->p[i] = f32_to_bf16(f);
    }
    return NULL;
}

/* --tiny: a small model with every structural feature (checks this program's flow
 * where speed does not matter, e.g. tests/gpu/test_cudaemu.sh). */
static void tiny_config(ModelConfig *c) {
    synth_config(c);
    TextConfig *t = &c->text;
    t->hidden_size = 64, t->intermediate_size = 128, t->num_layers = 6, t->num_heads = 4, t->num_kv_heads = 2;
    t->head_dim = 16, t->vocab_size = 512, t->sliding_window = 16, t->query_pre_attn_scalar = 16;
    VisionConfig *v = &c->vision;
    v->hidden_size = 32, v->intermediate_size = 64, v->num_layers = 2, v->num_heads = 2, v->patch_size = 8;
    v->image_size = 64;
    c->mm_tokens_per_image = 16, c->image_token_id = 502, c->boi_token_id = 500, c->eoi_token_id = 501;
}

/* One random pool as large as the largest tensor; every weight points into it. */
static bf16 *synth_weights(const ModelConfig *c, ModelWeights *w) {
    size_t n = (size_t)c->text.vocab_size * c->text.hidden_size;
    bf16 *pool = malloc(n * sizeof *pool);
    if (!pool)
        return NULL;
    enum { NT = 16 };
    pthread_t th[NT];
    FillJob jobs[NT];
    for (int i = 0; i < NT; i++) {
        jobs[i].p = pool + n / NT * i;
        jobs[i].n = i == NT - 1 ? n - n / NT * i : n / NT;
        jobs[i].seed = (uint64_t)i + 1;
        pthread_create(&th[i], NULL, fill_part, &jobs[i]);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    memset(w, 0, sizeof *w);
    w->embed = w->lm_head = w->final_norm = pool;
    w->layers = calloc(c->text.num_layers, sizeof *w->layers);
    for (int l = 0; l < c->text.num_layers; l++) {
        TextLayerWeights *t = &w->layers[l];
        t->input_norm = t->q_proj = t->k_proj = t->v_proj = t->o_proj = t->q_norm = t->k_norm = pool;
        t->post_attn_norm = t->pre_ff_norm = t->post_ff_norm = t->gate_proj = t->up_proj = t->down_proj =
            pool;
    }
    w->patch_w = w->patch_b = w->pos_embed = w->post_ln_w = w->post_ln_b = w->mm_soft_norm = w->mm_proj =
        pool;
    w->vision_layers = calloc(c->vision.num_layers, sizeof *w->vision_layers);
    for (int l = 0; l < c->vision.num_layers; l++) {
        VisionLayerWeights *v = &w->vision_layers[l];
        v->ln1_w = v->ln1_b = v->q_w = v->q_b = v->k_w = v->k_b = v->v_w = v->v_b = v->out_w = v->out_b =
            pool;
        v->ln2_w = v->ln2_b = v->fc1_w = v->fc1_b = v->fc2_w = v->fc2_b = pool;
    }
    return pool;
}

/* Bytes of weights one decode step reads: every text matrix and norm, and the output head. */
static double decode_weight_bytes(const ModelConfig *c) {
    const TextConfig *t = &c->text;
    double per_layer = (double)(t->num_heads + 2 * t->num_kv_heads) * t->head_dim * t->hidden_size +
                       (double)t->hidden_size * t->num_heads * t->head_dim +
                       3.0 * t->intermediate_size * t->hidden_size + 4.0 * t->hidden_size + 2.0 * t->head_dim;
    return 2.0 * (per_layer * t->num_layers + (double)t->vocab_size * t->hidden_size + t->hidden_size);
}

/* Device-to-device copy bandwidth (bytes read + written per second), 1 GiB buffers. */
static double copy_bandwidth_gbps(void) {
    size_t bytes = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
        cudaFree(a);
        return 0;
    }
    cudaMemset(a, 1, bytes);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e0, 0);
    const int reps = 10;
    for (int i = 0; i < reps; i++)
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0);
    cudaEventRecord(e1, 0);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaFree(a), cudaFree(b);
    return ms > 0 ? 2.0 * bytes * reps / (ms * 1e-3) / 1e9 : 0;
}

/* A prompt: BOS, text, then per image "\n\n<boi> 256 x <image> <eoi>\n\n", then text. */
static int text_id(const ModelConfig *c, int i) {
    return 10 + (1000 + i * 37) % (c->text.vocab_size / 2);
}

static int build_prompt(const ModelConfig *c, int n_text, int n_images, int32_t *ids, int32_t *blocks) {
    int n = 0;
    ids[n] = 2, blocks[n++] = -1;
    for (int i = 0; i < n_text / 2; i++)
        ids[n] = text_id(c, i), blocks[n++] = -1;
    for (int im = 0; im < n_images; im++) {
        ids[n] = 108, blocks[n++] = -1;
        ids[n] = c->boi_token_id, blocks[n++] = -1;
        for (int i = 0; i < c->mm_tokens_per_image; i++)
            ids[n] = c->image_token_id, blocks[n++] = im;
        ids[n] = c->eoi_token_id, blocks[n++] = -1;
        ids[n] = 108, blocks[n++] = -1;
    }
    for (int i = n_text / 2; i < n_text; i++)
        ids[n] = text_id(c, i * 3 + 1), blocks[n++] = -1;
    return n;
}

static int argmax_f32(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

#define FAIL(...)                                                                                            \
    do {                                                                                                     \
        fprintf(stderr, "gpu_bench: " __VA_ARGS__);                                                          \
        fprintf(stderr, "\n");                                                                               \
        exit(1); /* the process ends: nothing to free */                                                     \
    } while (0)

int main(int argc, char **argv) {
    const char *model_dir = NULL, *out_path = NULL;
    int ct85 = 0, decode_steps = 128, tiny = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model_dir = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out_path = argv[++i];
        else if (!strcmp(argv[i], "--ct85"))
            ct85 = 1;
        else if (!strcmp(argv[i], "--tiny"))
            tiny = 1;
        else if (!strcmp(argv[i], "--decode-steps") && i + 1 < argc)
            decode_steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--synth") != 0) {
            fprintf(stderr, "usage: gpu_bench [--model DIR | --synth | --tiny] [--out FILE.json] [--ct85] "
                            "[--decode-steps N]\n");
            return 2;
        }
    }
    if (decode_steps < 8)
        decode_steps = 8;
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
        FAIL("no CUDA device");
    printf("# device %s\n", prop.name);
    double copy_gbps = copy_bandwidth_gbps();
    printf("# copy bandwidth %.0f GB/s (read + write)\n", copy_gbps);

    /* kernels alone, before the model takes the memory */
    BenchKernelTimes kt = {0};
    if (!tiny && bench_kernels(&kt) != 0)
        FAIL("kernel timing failed");

    ModelConfig cfg;
    ModelWeights w;
    Checkpoint *ck = NULL;
    bf16 *pool = NULL;
    Error err = {{0}};
    double t0 = now_s();
    if (model_dir) {
        if (config_load(&cfg, model_dir, &err) || checkpoint_open(&ck, model_dir, &err) ||
            weights_load(&w, &cfg, ck, &err))
            FAIL("%s", err.message);
    } else {
        if (tiny)
            tiny_config(&cfg);
        else
            synth_config(&cfg);
        if (!(pool = synth_weights(&cfg, &w)))
            FAIL("out of host memory for the synthetic weights");
        t0 = now_s(); /* the synthetic weights are "in page cache" once made */
    }
    int max_prefill = ct85 ? 24576 : 4096;
    BackendOptions opt = {0};
    opt.max_context = max_prefill + decode_steps + 64;
    opt.max_prefill = max_prefill;
    opt.embed_scale = round_to_bf16(sqrtf((float)cfg.text.hidden_size)); /* 50.5 for 2560 */
    const Backend *be = backend_cuda_get();
    void *st = NULL;
    if (be->create(&st, &cfg, &w, &opt, &err))
        FAIL("create: %s", err.message);
    double cold_start_s = now_s() - t0;
    note_memory();
    printf("# loaded in %.2f s (%s)\n", cold_start_s,
           model_dir ? "files in page cache -> GPU" : "host memory -> GPU");

    const int V = cfg.text.vocab_size, S = cfg.vision.image_size;
    size_t n_pix = 3 * (size_t)S * S;
    float *pix = malloc(n_pix * sizeof *pix),
          *feats = malloc((size_t)85 * 256 * cfg.text.hidden_size * sizeof *feats);
    float *logits = malloc((size_t)V * sizeof *logits);
    int32_t *ids = malloc((size_t)(max_prefill + 16) * sizeof *ids),
            *blocks = malloc((size_t)(max_prefill + 16) * sizeof *blocks);
    for (size_t i = 0; i < n_pix; i++)
        pix[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;

    /* vision encode */
    double tv[4];
    for (int r = 0; r < 4; r++) {
        double a = now_s();
        if (be->encode_image(st, pix, feats, &err))
            FAIL("encode_image: %s", err.message);
        tv[r] = now_s() - a;
    }
    double vision_ms = median(tv + 1, 3) * 1e3;

    /* TTFT: one image + 100 text tokens, from pixels to the first token */
    int n1 = build_prompt(&cfg, 100, 1, ids, blocks);
    double tt[3];
    for (int r = 0; r < 3; r++) {
        double a = now_s();
        if (be->encode_image(st, pix, feats, &err) || be->prefill(st, ids, n1, blocks, feats, logits, &err))
            FAIL("ttft: %s", err.message);
        (void)argmax_f32(logits, V);
        tt[r] = now_s() - a;
    }
    double ttft_ms = median(tt, 3) * 1e3;
    note_memory();

    /* prefill throughput: 2048 text tokens */
    int np = tiny ? 256 : 2048;
    for (int i = 0; i < np; i++)
        ids[i] = text_id(&cfg, i * 7);
    double tp[3];
    for (int r = 0; r < 3; r++) {
        double a = now_s();
        if (be->prefill(st, ids, np, NULL, NULL, logits, &err))
            FAIL("prefill: %s", err.message);
        tp[r] = now_s() - a;
    }
    double prefill_tok_s = np / median(tp, 3);

    /* decode: 128-token prompt, then decode_steps greedy steps */
    if (be->prefill(st, ids, 128, NULL, NULL, logits, &err))
        FAIL("prefill: %s", err.message);
    int tok = argmax_f32(logits, V);
    for (int s = 0; s < 4; s++) /* warm-up */
        if (be->decode(st, tok, 128 + s, logits, &err))
            FAIL("decode: %s", err.message);
    if (be->prefill(st, ids, 128, NULL, NULL, logits, &err))
        FAIL("prefill: %s", err.message);
    double a = now_s();
    for (int s = 0; s < decode_steps; s++) {
        if (be->decode(st, tok, 128 + s, logits, &err))
            FAIL("decode: %s", err.message);
        tok = argmax_f32(logits, V);
    }
    double decode_s = now_s() - a;
    double decode_tok_s = decode_steps / decode_s;
    double bytes_tok = decode_weight_bytes(&cfg);
    double floor_s = copy_gbps > 0 ? bytes_tok / (copy_gbps * 1e9) : 0;
    double bw_fraction = floor_s * decode_tok_s;
    note_memory();

    /* CT: 85 images, each "SLICE n" text after it, question last */
    double ct85_s = -1;
    if (ct85) {
        int n = build_prompt(&cfg, 85 * 4 + 60, 85, ids, blocks);
        double c0 = now_s();
        for (int im = 0; im < 85; im++)
            if (be->encode_image(st, pix, feats + (size_t)im * 256 * cfg.text.hidden_size, &err))
                FAIL("ct85 encode: %s", err.message);
        if (be->prefill(st, ids, n, blocks, feats, logits, &err))
            FAIL("ct85 prefill (%d tokens): %s", n, err.message);
        (void)argmax_f32(logits, V);
        ct85_s = now_s() - c0;
        printf("# ct85: %d prompt tokens\n", n);
        note_memory();
    }

    printf("\n| metric | value |\n|---|---|\n");
    printf("| card | %s |\n| measured_copy_gbps | %.0f |\n", prop.name, copy_gbps);
    printf("| decode_tok_s | %.1f |\n| decode_bw_fraction | %.3f (floor %.2f ms/token for %.2f GB) |\n",
           decode_tok_s, bw_fraction, floor_s * 1e3, bytes_tok / 1e9);
    printf("| prefill_tok_s | %.0f |\n| vision_ms | %.1f |\n| ttft_ms_1img | %.1f |\n", prefill_tok_s,
           vision_ms, ttft_ms);
    printf("| cold_start_s | %.2f |\n| peak_gpu_mem_gb | %.2f |\n", cold_start_s, peak_used_gb);
    if (ct85)
        printf("| ct85_total_s | %.2f |\n", ct85_s);
    bench_kernels_print(&kt, stdout);

    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (!f)
            FAIL("cannot write %s", out_path);
        fprintf(f, "{\n  \"card\": \"%s\",\n  \"measured_copy_gbps\": %.1f,\n  \"decode_tok_s\": %.2f,\n",
                prop.name, copy_gbps, decode_tok_s);
        fprintf(
            f,
            "  \"decode_bw_fraction\": %.4f,\n  \"decode_weight_bytes\": %.0f,\n  \"prefill_tok_s\": %.1f,\n",
            bw_fraction, bytes_tok, prefill_tok_s);
        fprintf(f, "  \"vision_ms\": %.2f,\n  \"ttft_ms_1img\": %.2f,\n  \"cold_start_s\": %.3f,\n",
                vision_ms, ttft_ms, cold_start_s);
        fprintf(f, "  \"cold_start_method\": \"%s\",\n",
                model_dir ? "checkpoint files (page cache) to GPU, no HTTP"
                          : "synthetic weights in host memory to GPU, no HTTP");
        fprintf(f, "  \"peak_gpu_mem_gb\": %.3f,\n", peak_used_gb);
        if (ct85)
            fprintf(f, "  \"ct85_total_s\": %.3f,\n", ct85_s);
        else
            fprintf(f, "  \"ct85_total_s\": null,\n");
        bench_kernels_json(&kt, f);
        fprintf(f, "\n}\n");
        fclose(f);
    }
    be->destroy(st);
    if (model_dir) {
        weights_free(&w, &cfg);
        checkpoint_close(ck);
    } else {
        free(w.layers), free(w.vision_layers), free(pool);
    }
    free(pix), free(feats), free(logits), free(ids), free(blocks);
    return 0;
}
