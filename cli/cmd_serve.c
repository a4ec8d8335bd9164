/* `medgemma serve`: options from flags and environment variables (a flag
 * wins over its variable), then the HTTP service (http/server.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "http/server.h"
#include "util/log.h"

#define DEFAULT_MODEL_REPO "google/medgemma-1.5-4b-it"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: medgemma serve --model DIR [--host H] [--port P] [--backend auto|cuda|cpu] [options]\n"
        "\n"
        "Serves the model over HTTP (docs/api.md): POST /analyze, /generate, /v1/chat/completions;\n"
        "GET /health, /v1/models, /metrics. Logs are JSON lines on stdout.\n"
        "\n"
        "options (environment variable in brackets; a flag wins):\n"
        "  --model DIR             model directory [MEDGEMMA_MODEL_DIR]; when it has no config.json and\n"
        "                          a Hugging Face token is set (HF_TOKEN), the model is downloaded into it\n"
        "  --model-repo REPO       repo to download [MEDGEMMA_MODEL_REPO] (default " DEFAULT_MODEL_REPO ")\n"
        "  --model-id NAME         name in /v1/models and answers [MEDGEMMA_MODEL_ID] (default: DIR's name)\n"
        "  --host H                listen address [MEDGEMMA_HOST] (default 0.0.0.0)\n"
        "  --port P                listen port [PORT] (default 8080)\n"
        "  --backend B             auto, cuda or cpu [MEDGEMMA_BACKEND] (default auto)\n"
        "  --threads N             CPU backend threads [MEDGEMMA_THREADS] (default: all cores)\n"
        "  --max-context N         KV cache positions [MEDGEMMA_MAX_CONTEXT] (default: engine's)\n"
        "  --precision P           CPU GEMMs: exact (fp32) or bf16 [MEDGEMMA_PRECISION] (default exact)\n"
        "  --weights W             CPU weights: bf16 or q8 (quantized at load) [MEDGEMMA_WEIGHTS] (bf16)\n"
        "  --api-key-file FILE     require 'Authorization: Bearer <key>' (key read from FILE)\n"
        "                          [MEDGEMMA_API_KEY_FILE]; or the key itself in MEDGEMMA_API_KEY\n"
        "  --max-queue N           requests waiting for the engine; more get 503 [MEDGEMMA_MAX_QUEUE] (8)\n"
        "  --max-images N          images per request [MEDGEMMA_MAX_IMAGES] (128)\n"
        "  --max-body-mb N         request body limit in MiB [MEDGEMMA_MAX_BODY_MB] (100)\n"
        "  --max-tokens N          largest max_tokens a request may ask [MEDGEMMA_MAX_TOKENS] (8192)\n"
        "  --default-max-tokens N  max_tokens when a request names none [MEDGEMMA_DEFAULT_MAX_TOKENS] "
        "(1024)\n"
        "  --request-timeout-s S   per-request deadline, queue included, 0 = none\n"
        "                          [MEDGEMMA_REQUEST_TIMEOUT_S] (600)\n"
        "  --shutdown-grace-s S    after SIGTERM, time to finish running requests\n"
        "                          [MEDGEMMA_SHUTDOWN_GRACE_S] (8)\n"
        "  --max-connections N     open client connections; more get 503 [MEDGEMMA_MAX_CONNECTIONS]\n"
        "                          (1000, lowered to fit the open-files limit)\n"
        "  --client-timeout-s S    HTTP/1: to send a request and between keep-alive requests;\n"
        "                          HTTP/2: idle connection [MEDGEMMA_CLIENT_TIMEOUT_S] (10)\n"
        "  MEDGEMMA_LOG_LEVEL      DEBUG, INFO (default), WARNING or ERROR\n");
}

/* The value of --flag (from argv) or else of the environment variable. */
typedef struct {
    const char *flag;
    const char *env;
    const char *value;
} Setting;

enum {
    S_MODEL,
    S_REPO,
    S_MODEL_ID,
    S_HOST,
    S_PORT,
    S_BACKEND,
    S_THREADS,
    S_MAX_CONTEXT,
    S_PRECISION,
    S_WEIGHTS,
    S_KEY_FILE,
    S_MAX_QUEUE,
    S_MAX_IMAGES,
    S_MAX_BODY,
    S_MAX_TOKENS,
    S_DEFAULT_TOKENS,
    S_TIMEOUT,
    S_GRACE,
    S_MAX_CONNECTIONS,
    S_CLIENT_TIMEOUT,
    S_COUNT
};

static Setting settings[S_COUNT] = {
    {"--model", "MEDGEMMA_MODEL_DIR", NULL},
    {"--model-repo", "MEDGEMMA_MODEL_REPO", NULL},
    {"--model-id", "MEDGEMMA_MODEL_ID", NULL},
    {"--host", "MEDGEMMA_HOST", NULL},
    {"--port", "PORT", NULL},
    {"--backend", "MEDGEMMA_BACKEND", NULL},
    {"--threads", "MEDGEMMA_THREADS", NULL},
    {"--max-context", "MEDGEMMA_MAX_CONTEXT", NULL},
    {"--precision", "MEDGEMMA_PRECISION", NULL},
    {"--weights", "MEDGEMMA_WEIGHTS", NULL},
    {"--api-key-file", "MEDGEMMA_API_KEY_FILE", NULL},
    {"--max-queue", "MEDGEMMA_MAX_QUEUE", NULL},
    {"--max-images", "MEDGEMMA_MAX_IMAGES", NULL},
    {"--max-body-mb", "MEDGEMMA_MAX_BODY_MB", NULL},
    {"--max-tokens", "MEDGEMMA_MAX_TOKENS", NULL},
    {"--default-max-tokens", "MEDGEMMA_DEFAULT_MAX_TOKENS", NULL},
    {"--request-timeout-s", "MEDGEMMA_REQUEST_TIMEOUT_S", NULL},
    {"--shutdown-grace-s", "MEDGEMMA_SHUTDOWN_GRACE_S", NULL},
    {"--max-connections", "MEDGEMMA_MAX_CONNECTIONS", NULL},
    {"--client-timeout-s", "MEDGEMMA_CLIENT_TIMEOUT_S", NULL},
};

/* Parses setting i as a number in [lo, hi] (def when unset). */
static int number_setting(int i, double lo, double hi, double def, int integer, double *out) {
    const char *v = settings[i].value;
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || *end || end == v || d < lo || d > hi || (integer && d != (double)(long long)d)) {
        fprintf(stderr, "medgemma serve: %s / %s must be %s between %g and %g, got '%s'\n", settings[i].flag,
                settings[i].env, integer ? "an integer" : "a number", lo, hi, v);
        return -1;
    }
    *out = d;
    return 0;
}

/* Reads the API key file: its first line, surrounding whitespace removed. */
static char *read_key_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "medgemma serve: cannot read the API key file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *start = buf;
    while (*start == ' ' || *start == '\t' || *start == '\r' || *start == '\n')
        start++;
    size_t len = strcspn(start, "\r\n");
    while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
        len--;
    if (len == 0) {
        fprintf(stderr, "medgemma serve: the API key file %s is empty\n", path);
        return NULL;
    }
    return strndup(start, len);
}

static void set_log_level(void) {
    const char *v = getenv("MEDGEMMA_LOG_LEVEL");
    if (!v)
        return;
    if (!strcmp(v, "DEBUG"))
        log_set_level(LOG_DEBUG);
    else if (!strcmp(v, "WARNING"))
        log_set_level(LOG_WARNING);
    else if (!strcmp(v, "ERROR"))
        log_set_level(LOG_ERROR);
}

int cmd_serve(int argc, char **argv) {
    for (int i = 0; i < S_COUNT; i++)
        settings[i].value = getenv(settings[i].env);
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            usage(stdout);
            return 0;
        }
        int found = 0;
        for (int i = 0; i < S_COUNT && !found; i++) {
            if (strcmp(argv[a], settings[i].flag) != 0)
                continue;
            if (a + 1 >= argc) {
                fprintf(stderr, "medgemma serve: %s needs a value\n", argv[a]);
                return 2;
            }
            settings[i].value = argv[++a];
            found = 1;
        }
        if (!found) {
            fprintf(stderr, "medgemma serve: unknown option '%s'\n", argv[a]);
            usage(stderr);
            return 2;
        }
    }
    set_log_level();

    ServerOptions o = {0};
    o.model_dir = settings[S_MODEL].value;
    if (!o.model_dir || !*o.model_dir) {
        fprintf(stderr, "medgemma serve: --model DIR (or MEDGEMMA_MODEL_DIR) is required\n");
        usage(stderr);
        return 2;
    }
    o.model_repo =
        settings[S_REPO].value && *settings[S_REPO].value ? settings[S_REPO].value : DEFAULT_MODEL_REPO;
    o.model_id = settings[S_MODEL_ID].value;
    o.host = settings[S_HOST].value && *settings[S_HOST].value ? settings[S_HOST].value : "0.0.0.0";
    const char *backend =
        settings[S_BACKEND].value && *settings[S_BACKEND].value ? settings[S_BACKEND].value : "auto";
    if (!strcmp(backend, "auto"))
        o.backend = BACKEND_AUTO;
    else if (!strcmp(backend, "cpu"))
        o.backend = BACKEND_CPU;
    else if (!strcmp(backend, "cuda"))
        o.backend = BACKEND_CUDA;
    else {
        fprintf(stderr, "medgemma serve: --backend must be auto, cuda or cpu, got '%s'\n", backend);
        return 2;
    }
    /* the engine reads these two from the environment (engine.h); a flag wins */
    const char *precision = settings[S_PRECISION].value, *weights = settings[S_WEIGHTS].value;
    if (precision && *precision && strcmp(precision, "exact") != 0 && strcmp(precision, "bf16") != 0) {
        fprintf(stderr, "medgemma serve: --precision must be exact or bf16, got '%s'\n", precision);
        return 2;
    }
    if (weights && *weights && strcmp(weights, "bf16") != 0 && strcmp(weights, "q8") != 0) {
        fprintf(stderr, "medgemma serve: --weights must be bf16 or q8, got '%s'\n", weights);
        return 2;
    }
    if (precision)
        setenv("MEDGEMMA_PRECISION", precision, 1);
    if (weights)
        setenv("MEDGEMMA_WEIGHTS", weights, 1);
    double port, threads, ctx, queue, images, body_mb, max_tokens, def_tokens, timeout, grace, max_conn,
        client_timeout;
    if (number_setting(S_PORT, 0, 65535, 8080, 1, &port) ||
        number_setting(S_THREADS, 0, 1024, 0, 1, &threads) ||
        number_setting(S_MAX_CONTEXT, 0, 1 << 20, 0, 1, &ctx) ||
        number_setting(S_MAX_QUEUE, 1, 100000, 8, 1, &queue) ||
        number_setting(S_MAX_IMAGES, 1, 100000, 128, 1, &images) ||
        number_setting(S_MAX_BODY, 1, 1 << 16, 100, 1, &body_mb) ||
        number_setting(S_MAX_TOKENS, 1, 1 << 20, 8192, 1, &max_tokens) ||
        number_setting(S_DEFAULT_TOKENS, 1, 1 << 20, 1024, 1, &def_tokens) ||
        number_setting(S_TIMEOUT, 0, 1e7, 600, 0, &timeout) ||
        number_setting(S_GRACE, 0, 3600, 8, 0, &grace) ||
        number_setting(S_MAX_CONNECTIONS, 1, 1 << 20, 1000, 1, &max_conn) ||
        number_setting(S_CLIENT_TIMEOUT, 0.1, 3600, 10, 0, &client_timeout))
        return 2;
    /* Each connection is a file descriptor: keep 64 for the model files, logs and the worker. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
        max_conn > (double)nofile.rlim_cur - 64) {
        double fit = (double)nofile.rlim_cur > 128 ? (double)nofile.rlim_cur - 64 : 64;
        log_msg(LOG_WARNING, "max connections lowered from %.0f to %.0f to fit the open-files limit (%llu)",
                max_conn, fit, (unsigned long long)nofile.rlim_cur);
        max_conn = fit;
    }
    o.max_connections = (int)max_conn;
    o.client_timeout_s = client_timeout;
    o.port = (int)port;
    o.n_threads = (int)threads;
    o.max_context = (int)ctx;
    o.max_queue = (int)queue;
    o.max_images = (int)images;
    o.max_body_bytes = (size_t)body_mb << 20;
    o.max_tokens = (int)max_tokens;
    o.default_max_tokens = def_tokens < max_tokens ? (int)def_tokens : (int)max_tokens;
    o.request_timeout_s = timeout;
    o.shutdown_grace_s = grace;

    char *key = NULL;
    if (settings[S_KEY_FILE].value && *settings[S_KEY_FILE].value) {
        if (!(key = read_key_file(settings[S_KEY_FILE].value)))
            return 2;
        o.api_key = key;
    } else {
        o.api_key = getenv("MEDGEMMA_API_KEY");
    }

    struct stat st;
    if (stat(o.model_dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "medgemma serve: --model %s is not a directory\n", o.model_dir);
        free(key);
        return 2;
    }
    int rc = server_run(&o);
    free(key);
    return rc;
}
