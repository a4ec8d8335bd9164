/* Cold-start phases of the server's model load, timed one by one (bench/coldstart/).
 *
 * Repeats what pipeline_open (pipeline/pipeline.c) does, in the same order, with a clock
 * around each step: engine_open (config, safetensors headers, mmap, backend
 * buffers), tokenizer_load (tokenizer.json), the one-token warm-up generation,
 * then a second one-token generation (the warm cost, for comparison).
 * Prints one JSON object on stdout. No prompt text is involved: the warm-up
 * feeds the <bos> id, as the server does.
 *
 * Usage: phases MODEL_DIR [--threads N] [--max-context N]
 * Built by bench/coldstart/run.py (--phases) from the CPU sources. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One greedy token after <bos>, as the server's warm-up does. */
static int one_token(Engine *e, Error *err) {
    int32_t bos = 2;
    GenerateRequest gr = {0};
    gr.tokens = &bos;
    gr.n_tokens = 1;
    gr.max_new_tokens = 1;
    gr.top_p = 1;
    GenerateResult res;
    return engine_generate(e, &gr, &res, err);
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: phases MODEL_DIR [--threads N] [--max-context N]\n");
        return 2;
    }
    EngineOptions eo = {argv[1], BACKEND_CPU, 0, 0};
    for (int a = 2; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--threads"))
            eo.n_threads = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--max-context"))
            eo.max_context = atoi(argv[a + 1]);
        else {
            fprintf(stderr, "phases: unknown option %s\n", argv[a]);
            return 2;
        }
    }
    Error err = {{0}};
    Engine *e = NULL;
    Tokenizer *tok = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", argv[1]);

    double t0 = now_s();
    if (engine_open(&e, &eo, &err) != 0) {
        fprintf(stderr, "phases: %s\n", err.message);
        return 1;
    }
    double t1 = now_s();
    if (tokenizer_load(&tok, path, &err) != 0) {
        fprintf(stderr, "phases: %s\n", err.message);
        engine_close(e);
        return 1;
    }
    double t2 = now_s();
    if (one_token(e, &err) != 0) {
        fprintf(stderr, "phases: warm-up: %s\n", err.message);
        tokenizer_free(tok);
        engine_close(e);
        return 1;
    }
    double t3 = now_s();
    int rc = one_token(e, &err);
    double t4 = now_s();
    if (rc != 0)
        fprintf(stderr, "phases: second token: %s\n", err.message);
    else
        printf("{\"engine_open_s\":%.3f,\"tokenizer_load_s\":%.3f,\"warmup_token_s\":%.3f,"
               "\"second_token_s\":%.3f}\n",
               t1 - t0, t2 - t1, t3 - t2, t4 - t3);
    tokenizer_free(tok);
    engine_close(e);
    return rc != 0;
}
