/* weights-fetch: downloads a Hugging Face model repo into a directory.
 *
 * Owns everything between "repo name + token" and "verified files in DIR":
 * the Hub API calls that list the files and their checksums, parallel
 * resumable downloads through the `resolve` URLs (redirects followed; large
 * files in several byte ranges at once),
 * sha256 / git-sha1 verification, and the atomic move into place.
 *
 * Layout of DIR while and after fetching:
 *   DIR/<path>                            finished, verified files only
 *   DIR/.weights-fetch/parts/<path>.part  partial downloads (resumed next run)
 *   DIR/.weights-fetch/parts/<path>.part.pieces
 *                                         progress of a file fetched in byte ranges
 *   DIR/.weights-fetch/verified/<path>    "size mtime sha" of each verified file,
 *                                         so a rerun skips it without rehashing
 *   DIR/.weights-fetch/lock               held (flock) while a fetch runs
 *   DIR/.weights-fetch/complete           "repo commit" of the last finished fetch
 * A file under DIR/<path> is never half-written: it appears by rename(2)
 * once its checksum matched.
 *
 * Used by build/weights-fetch (weights-fetch/main.c) and by `serve`, which
 * calls it at start when the model dir is empty and a token is set. */
#ifndef WEIGHTS_FETCH_FETCH_H
#define WEIGHTS_FETCH_FETCH_H

#include "util/error.h"

#define FETCH_DEFAULT_ENDPOINT "https://huggingface.co"
#define FETCH_DEFAULT_REVISION "main"
#define FETCH_DEFAULT_PARALLEL 4
#define FETCH_DEFAULT_PIECE_BYTES (256LL << 20)

typedef enum {
    FETCH_PROGRESS_AUTO,  /* a bar when stderr is a terminal, else plain lines */
    FETCH_PROGRESS_NONE,  /* errors only (returned in Error) */
    FETCH_PROGRESS_BAR,   /* one redrawn line on stderr */
    FETCH_PROGRESS_LINES, /* a plain line on stderr every few seconds and per file */
    FETCH_PROGRESS_LOG,   /* JSON log lines (util/log.h), for the server */
} FetchProgress;

typedef struct {
    const char *repo;      /* "owner/name", e.g. "google/medgemma-1.5-4b-it" (required) */
    const char *revision;  /* branch, tag or commit; NULL = "main" */
    const char *out_dir;   /* created if missing (required) */
    const char *token;     /* Hugging Face token; NULL or "" = anonymous */
    const char *endpoint;  /* NULL = https://huggingface.co (HF_ENDPOINT for mirrors) */
    const char *include;   /* comma-separated fnmatch globs on repo paths, e.g.
                              "*.json,*.safetensors"; NULL = every file */
    int parallel;          /* connections at once; 0 = FETCH_DEFAULT_PARALLEL */
    int max_attempts;      /* tries per file without progress (network errors,
                              5xx, checksum mismatch); 0 = 5 */
    long long piece_bytes; /* a file of 2 pieces or more downloads in up to 16
                              byte ranges at once; 0 = FETCH_DEFAULT_PIECE_BYTES,
                              < 0 = one connection per file */
    FetchProgress progress;
} FetchOptions;

/* Storage for the strings weights_fetch_options_from_env fills in. */
typedef struct {
    char token[512];
    char endpoint[512];
} FetchEnv;

/* Sets o->token and o->endpoint from the environment, the way huggingface_hub
 * does: token from HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else from
 * the token file $HF_TOKEN_PATH, else $HF_HOME/token, else
 * ${XDG_CACHE_HOME:-~/.cache}/huggingface/token; endpoint from HF_ENDPOINT.
 * Leaves a field unchanged when nothing is found. The strings live in env,
 * which must outlive o. Returns 1 when a token was found, else 0. */
int weights_fetch_options_from_env(FetchOptions *o, FetchEnv *env);

/* Downloads every file of o->repo at o->revision (filtered by o->include)
 * into o->out_dir, skipping files already there and verified, resuming
 * partial ones. Blocks until done. Returns 0, or -1 with a message in err
 * that says what to do (set HF_TOKEN, accept a gated repo's terms, free disk
 * space, ...). Safe to call again after a failure or a crash: it resumes. */
int weights_fetch(const FetchOptions *o, Error *err);

/* What a model dir holds, for `serve` deciding at start whether to fetch:
 * fetch when it is EMPTY or PARTIAL (a fetch was cut short: some files may
 * be there already, others not) and a token is set. */
typedef enum {
    FETCH_DIR_EMPTY,    /* missing, or nothing in it */
    FETCH_DIR_PARTIAL,  /* a fetch started there and has not finished */
    FETCH_DIR_COMPLETE, /* the last fetch there finished (.weights-fetch/complete) */
    FETCH_DIR_OTHER,    /* files put there another way (e.g. baked into the image) */
} FetchDirState;

FetchDirState weights_fetch_dir_state(const char *dir);
const char *weights_fetch_dir_state_name(FetchDirState s); /* "empty", "partial", ... */

#endif
