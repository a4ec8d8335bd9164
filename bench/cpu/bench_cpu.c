/* CPU engine speed on a model dir: prefill tokens/s for a prompt of N tokens
 * and decode tokens/s for M greedy tokens after it, best of R runs.
 * Usage: bench_cpu MODEL_DIR [--prompt N] [--decode M] [--threads T] [--runs R] [--image 1] [--warmup 0|1]
 *                  [--precision exact|bf16] [--weights bf16|q8]
 * (--image 1: one synthetic image's soft tokens start the prompt; its vision
 * time is reported.) Before the timed runs, one untimed warm-up request (the
 * same prompt's first token, one generated token; with --image the image too)
 * touches every weight page, as llama-bench's warm-up run does: a timed
 * prefill then measures the kernels, not page faults on the mmap'd checkpoint
 * (which cost a 4B prefill up to a third of its time when the page cache had
 * been evicted). --warmup 0 turns it off.
 * Prints one JSON object. Built and run by bench/cpu/run.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"

static int count_token(void *user, int32_t id) {
    (void)id;
    ++*(int *)user;
    return 0;
}

/* One greedy request with no stop (the decode count is fixed by max_new_tokens
 * unless a stop id comes) in cache namespace `tenant`; *n_out = tokens generated. */
static int run_request(Engine *engine, const int32_t *ids, int n_tokens, const float *const *images,
                       int n_images, int max_new_tokens, uint64_t tenant, GenerateResult *res, int *n_out,
                       Error *err) {
    *n_out = 0;
    GenerateRequest rq = {.tokens = ids,
                          .n_tokens = n_tokens,
                          .images = images,
                          .n_images = n_images,
                          .max_new_tokens = max_new_tokens,
                          .temperature = 0,
                          .top_p = 1,
                          .on_token = count_token,
                          .user = n_out,
                          .cache_tenant = tenant};
    return engine_generate(engine, &rq, res, err);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_cpu MODEL_DIR [--prompt N] [--decode M] [--threads T] [--runs R]\n");
        return 2;
    }
    int n_prompt = 512, n_decode = 64, threads = 0, runs = 2, with_image = 0, warmup = 1;
    const char *precision = "exact", *weights = "bf16";
    for (int i = 2; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--precision"))
            precision = argv[i + 1];
        else if (!strcmp(argv[i], "--weights"))
            weights = argv[i + 1];
        else if (!strcmp(argv[i], "--prompt"))
            n_prompt = v;
        else if (!strcmp(argv[i], "--decode"))
            n_decode = v;
        else if (!strcmp(argv[i], "--threads"))
            threads = v;
        else if (!strcmp(argv[i], "--runs"))
            runs = v;
        else if (!strcmp(argv[i], "--image"))
            with_image = v != 0;
        else if (!strcmp(argv[i], "--warmup"))
            warmup = v != 0;
        else {
            fprintf(stderr, "bench_cpu: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (n_prompt < 1 || n_decode < 1 || runs < 1) {
        fprintf(stderr, "bench_cpu: --prompt, --decode and --runs must be positive\n");
        return 2;
    }
    Engine *engine;
    Error err;
    EngineOptions eo = {.model_dir = argv[1],
                        .backend = BACKEND_CPU,
                        .n_threads = threads,
                        .max_context = n_prompt + n_decode + 1,
                        .precision = precision,
                        .weights = weights};
    struct timespec t_open0, t_open1;
    clock_gettime(CLOCK_MONOTONIC, &t_open0);
    if (engine_open(&engine, &eo, &err) != 0) {
        fprintf(stderr, "bench_cpu: %s\n", err.message);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t_open1);
    double open_s =
        (double)(t_open1.tv_sec - t_open0.tv_sec) + (double)(t_open1.tv_nsec - t_open0.tv_nsec) * 1e-9;
    /* A fixed pseudo-random prompt of ordinary text ids (the same one bench/cpu/hf_baseline.py uses). */
    int32_t *ids = malloc((size_t)n_prompt * sizeof *ids);
    if (!ids)
        return 2;
    uint32_t s = 12345;
    ids[0] = 2;
    for (int i = 1; i < n_prompt; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = 1000 + (int32_t)((s >> 8) % 100000);
    }
    EngineInfo info;
    engine_info(engine, &info);
    float *pixels = NULL;
    const float *images[1];
    if (with_image) {
        if (info.image_tokens == 0 || info.image_tokens + 3 > n_prompt) {
            fprintf(stderr, "bench_cpu: --image needs a vision model and --prompt > %d\n",
                    info.image_tokens + 3);
            free(ids);
            return 2;
        }
        size_t n_px = (size_t)3 * info.image_size * info.image_size;
        pixels = malloc(n_px * sizeof *pixels);
        for (size_t i = 0; i < n_px; i++)
            pixels[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
        images[0] = pixels;
        ids[1] = 255999;
        for (int i = 0; i < info.image_tokens; i++)
            ids[2 + i] = 262144;
        ids[2 + info.image_tokens] = 256000;
    }
    if (warmup) {
        /* with an image the prompt must hold its soft tokens: the whole prompt, one token out;
         * its namespace is none of the timed runs' */
        int n;
        GenerateResult res;
        if (run_request(engine, ids, with_image ? n_prompt : 1, images, with_image, 1, (uint64_t)runs + 1,
                        &res, &n, &err) != 0) {
            fprintf(stderr, "bench_cpu: warm-up: %s\n", err.message);
            return 1;
        }
    }
    double best_prefill = 1e30, best_decode = 1e30, best_vision = 1e30;
    int decoded = 0;
    for (int r = 0; r < runs; r++) {
        int n;
        GenerateResult res;
        /* a namespace per run: no run continues the last one's cached prefix */
        if (run_request(engine, ids, n_prompt, images, with_image, n_decode, (uint64_t)r + 1, &res, &n,
                        &err) != 0) {
            fprintf(stderr, "bench_cpu: %s\n", err.message);
            return 1;
        }
        if (res.cached_tokens != 0) { /* a timed prefill must be a cold one */
            fprintf(stderr, "bench_cpu: run %d reused %d cached prompt positions\n", r + 1,
                    res.cached_tokens);
            return 1;
        }
        if (res.vision_ms < best_vision)
            best_vision = res.vision_ms;
        if (res.prefill_ms < best_prefill)
            best_prefill = res.prefill_ms;
        if (n > 1 && res.decode_ms / (n - 1) < best_decode / (decoded > 1 ? decoded - 1 : 1)) {
            best_decode = res.decode_ms;
            decoded = n;
        }
    }
    /* decode_ms covers n - 1 decode steps (the first token comes from the prefill's logits) */
    double decode_tps = decoded > 1 ? (decoded - 1) / (best_decode / 1e3) : 0;
    printf(
        "{\"engine\": \"medgemma-cpu\", \"precision\": \"%s\", \"weights\": \"%s\", \"prompt_tokens\": %d, "
        "\"decode_tokens\": %d, \"threads\": %d, \"prefill_tok_s\": %.2f, \"decode_tok_s\": %.2f, "
        "\"vision_ms\": %.1f, \"open_s\": %.3f}\n",
        precision, weights, n_prompt, decoded, threads, n_prompt / (best_prefill / 1e3), decode_tps,
        with_image ? best_vision : 0.0, open_s);
    free(ids);
    free(pixels);
    engine_close(engine);
    return 0;
}
