/* build/weights-fetch: command-line front end of weights_fetch (fetch.h).
 * Exit status: 0 done, 1 the fetch failed (message on stderr), 2 usage. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "weights-fetch/fetch.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: weights-fetch REPO [--revision R] [--out DIR] [--include GLOBS] [--parallel N]\n"
            "                     [--piece-size BYTES] [--retries N] [--progress auto|bar|lines|log|none]\n"
            "                     [--endpoint URL]\n"
            "       weights-fetch --dir-state --out DIR   prints empty, partial, complete or other\n"
            "\n"
            "Downloads a Hugging Face model repo (e.g. google/medgemma-1.5-4b-it) into DIR\n"
            "(default: ./NAME), verifying every file's checksum. Rerun to resume.\n"
            "\n"
            "  --revision R     branch, tag or commit (default main)\n"
            "  --include GLOBS  only paths matching these comma-separated globs, e.g.\n"
            "                   \"*.json,*.safetensors\"\n"
            "  --parallel N     connections at once (default %d)\n"
            "  --piece-size B   files of 2 pieces or more download in up to 16 byte ranges\n"
            "                   at once (default %lld; -1: one connection per file)\n"
            "  --retries N      tries per file without progress before giving up (default 5)\n"
            "  --progress MODE  bar on a terminal, plain lines otherwise (default auto);\n"
            "                   log: JSON lines on stdout (Cloud Logging), errors too\n"
            "  --endpoint URL   Hub address (default $HF_ENDPOINT or %s)\n"
            "\n"
            "Token: $HF_TOKEN, else the file written by `huggingface-cli login`\n"
            "($HF_TOKEN_PATH, $HF_HOME/token or ~/.cache/huggingface/token).\n",
            FETCH_DEFAULT_PARALLEL, FETCH_DEFAULT_PIECE_BYTES, FETCH_DEFAULT_ENDPOINT);
}

static int parse_progress(const char *s, FetchProgress *out) {
    static const struct {
        const char *name;
        FetchProgress mode;
    } modes[] = {{"auto", FETCH_PROGRESS_AUTO},
                 {"bar", FETCH_PROGRESS_BAR},
                 {"lines", FETCH_PROGRESS_LINES},
                 {"log", FETCH_PROGRESS_LOG},
                 {"none", FETCH_PROGRESS_NONE}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(s, modes[i].name) == 0) {
            *out = modes[i].mode;
            return 0;
        }
    return -1;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); /* a peer that hangs up is an error to handle, not a reason to die */
    FetchOptions o = {0};
    FetchEnv env;
    weights_fetch_options_from_env(&o, &env);
    char default_out[256];
    int dir_state = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--dir-state") == 0) {
            dir_state = 1;
            continue;
        }
        if (a[0] != '-') {
            if (o.repo) {
                fprintf(stderr, "weights-fetch: more than one REPO given (%s and %s)\n", o.repo, a);
                return 2;
            }
            o.repo = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "weights-fetch: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--revision") == 0) {
            o.revision = v;
        } else if (strcmp(a, "--out") == 0) {
            o.out_dir = v;
        } else if (strcmp(a, "--include") == 0) {
            o.include = v;
        } else if (strcmp(a, "--endpoint") == 0) {
            o.endpoint = v;
        } else if (strcmp(a, "--parallel") == 0) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 32) {
                fprintf(stderr, "weights-fetch: --parallel must be 1..32, got \"%s\"\n", v);
                return 2;
            }
            o.parallel = (int)n;
        } else if (strcmp(a, "--piece-size") == 0) {
            char *end;
            long long n = strtoll(v, &end, 10);
            if (*end || (n < 16384 && n != -1)) {
                fprintf(stderr,
                        "weights-fetch: --piece-size must be at least 16384 bytes, or -1, got \"%s\"\n", v);
                return 2;
            }
            o.piece_bytes = n;
        } else if (strcmp(a, "--retries") == 0) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 100) {
                fprintf(stderr, "weights-fetch: --retries must be 1..100, got \"%s\"\n", v);
                return 2;
            }
            o.max_attempts = (int)n;
        } else if (strcmp(a, "--progress") == 0) {
            if (parse_progress(v, &o.progress) != 0) {
                fprintf(stderr,
                        "weights-fetch: --progress must be auto, bar, lines, log or none, got \"%s\"\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "weights-fetch: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (dir_state) {
        if (!o.out_dir) {
            fprintf(stderr, "weights-fetch: --dir-state needs --out DIR\n");
            return 2;
        }
        printf("%s\n", weights_fetch_dir_state_name(weights_fetch_dir_state(o.out_dir)));
        return 0;
    }
    if (!o.repo) {
        usage(stderr);
        return 2;
    }
    if (!o.out_dir) {
        const char *slash = strrchr(o.repo, '/');
        snprintf(default_out, sizeof default_out, "%s", slash ? slash + 1 : o.repo);
        o.out_dir = default_out;
    }
    Error err = {{0}};
    if (weights_fetch(&o, &err) != 0) {
        if (o.progress == FETCH_PROGRESS_LOG)
            log_msg(LOG_ERROR, "weights-fetch failed: %s", err.message);
        fprintf(stderr, "weights-fetch: error: %s\n", err.message);
        return 1;
    }
    return 0;
}
