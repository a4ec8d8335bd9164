/* weights-fetch: token and endpoint from the environment, following
 * huggingface_hub's rules (constants.py, utils/_auth.py); see fetch.h. */
#include "weights-fetch/fetch.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies s without surrounding whitespace (token files end with "\n"). */
static int copy_trimmed(char *dst, size_t cap, const char *s) {
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0 || n >= cap)
        return 0;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 1;
}

static int read_token_file(char *dst, size_t cap, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return copy_trimmed(dst, cap, buf);
}

/* Where huggingface-cli login writes the token. */
static void token_file_path(char *out, size_t cap) {
    const char *p = getenv("HF_TOKEN_PATH");
    if (p && *p) {
        snprintf(out, cap, "%s", p);
        return;
    }
    const char *home_hf = getenv("HF_HOME");
    if (home_hf && *home_hf) {
        snprintf(out, cap, "%s/token", home_hf);
        return;
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && *xdg) {
        snprintf(out, cap, "%s/huggingface/token", xdg);
        return;
    }
    const char *home = getenv("HOME");
    snprintf(out, cap, "%s/.cache/huggingface/token", home ? home : ".");
}

int weights_fetch_options_from_env(FetchOptions *o, FetchEnv *env) {
    const char *ep = getenv("HF_ENDPOINT");
    if (ep && copy_trimmed(env->endpoint, sizeof env->endpoint, ep)) {
        size_t n = strlen(env->endpoint);
        while (n > 0 && env->endpoint[n - 1] == '/') /* "https://host/" -> "https://host" */
            env->endpoint[--n] = '\0';
        if (n > 0)
            o->endpoint = env->endpoint;
    }
    const char *t = getenv("HF_TOKEN");
    if (!t || !*t)
        t = getenv("HUGGING_FACE_HUB_TOKEN");
    int found = t && copy_trimmed(env->token, sizeof env->token, t);
    if (!found) {
        char path[1024];
        token_file_path(path, sizeof path);
        found = read_token_file(env->token, sizeof env->token, path);
    }
    if (found)
        o->token = env->token;
    return found;
}
