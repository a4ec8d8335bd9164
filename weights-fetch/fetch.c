/* weights-fetch: weights_fetch(), the whole run in order: check the
 * options, lock the output dir, list the repo, skip what is already there,
 * check free space, download the rest; see fetch.h. */
#include "weights-fetch/fetch.h"

#include <ctype.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weights-fetch/hub_files.h"
#include "weights-fetch/local_dir.h"
#include "weights-fetch/progress.h"
#include "weights-fetch/transfer.h"

#define MAX_PARALLEL 32
#define CHECKSUM_ATTEMPTS 3

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_start(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* "owner/name" or "name": letters, digits, '-', '_', '.', as on the Hub. */
static int repo_is_valid(const char *repo) {
    int segments = 0;
    const char *seg = repo;
    for (;;) {
        size_t len = strcspn(seg, "/");
        if (len == 0 || len > 96 || (len == 1 && seg[0] == '.') || (len == 2 && strncmp(seg, "..", 2) == 0))
            return 0;
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char)seg[i]) && !strchr("-_.", seg[i]))
                return 0;
        segments++;
        if (seg[len] == '\0')
            return segments <= 2;
        seg += len + 1;
    }
}

static int check_options(const FetchOptions *o, Error *err) {
    if (!o->repo || !repo_is_valid(o->repo))
        return error_set(err, "bad repo \"%.200s\": expected owner/name, e.g. google/medgemma-1.5-4b-it",
                         o->repo ? o->repo : "");
    if (!o->out_dir || !*o->out_dir)
        return error_set(err, "no output directory given");
    const char *rev = o->revision;
    if (rev && (!*rev || strlen(rev) > 200))
        return error_set(err, "bad revision: empty or longer than 200 characters");
    for (const char *p = rev; p && *p; p++)
        if ((unsigned char)*p < 0x20)
            return error_set(err, "bad revision: it contains a control character");
    const char *ep = o->endpoint;
    if (ep && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
        return error_set(err, "bad endpoint \"%.200s\" (HF_ENDPOINT): it must start with http:// or https://",
                         ep);
    if (ep && strlen(ep) > 400)
        return error_set(err, "bad endpoint (HF_ENDPOINT): longer than 400 characters");
    return 0;
}

/* Whether path matches one of the comma-separated globs (NULL = all). */
static int included(const char *include, const char *path) {
    if (!include || !*include)
        return 1;
    char pattern[256];
    for (const char *p = include; *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0 && len < sizeof pattern) {
            memcpy(pattern, p, len);
            pattern[len] = '\0';
            if (fnmatch(pattern, path, 0) == 0)
                return 1;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

static void human(char *out, size_t cap, int64_t bytes) {
    if (bytes >= 1000000000)
        snprintf(out, cap, "%.2f GB", (double)bytes / 1e9);
    else
        snprintf(out, cap, "%.2f MB", (double)bytes / 1e6);
}

static int by_size_desc(const void *a, const void *b) {
    int64_t x = ((const TransferJob *)a)->file->size, y = ((const TransferJob *)b)->file->size;
    return (x < y) - (x > y);
}

/* Everything after the lock is held. */
static int fetch_locked(const FetchOptions *o, const HubCtx *h, Error *err) {
    FetchProgress mode = o->progress;
    Progress progress;
    progress_start(&progress, mode, 0, 0, 0); /* for messages until the totals are known */
    progress_message(&progress, "listing %s at %s (%s)", h->repo, h->revision, h->endpoint);

    HubFileList list;
    if (hub_list_files(h, &list, err) != 0)
        return -1;
    LocalPaths *paths = calloc(list.count ? list.count : 1, sizeof *paths);
    TransferJob *jobs = calloc(list.count ? list.count : 1, sizeof *jobs);
    int rc = -1;
    size_t n_jobs = 0, n_wanted = 0, n_paths = 0;
    int64_t bytes_total = 0, bytes_on_disk = 0, bytes_present = 0;
    if (!paths || !jobs) {
        error_set(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < list.count; i++) {
        const HubFile *f = &list.files[i];
        if (!included(o->include, f->path))
            continue;
        n_wanted++;
        if (local_paths_init(&paths[n_paths], o->out_dir, f->path, err) != 0)
            goto done;
        LocalPaths *p = &paths[n_paths++];
        if (local_file_is_complete(p, f)) {
            bytes_present += f->size;
            continue;
        }
        jobs[n_jobs].file = f;
        jobs[n_jobs].paths = p;
        bytes_on_disk += transfer_bytes_on_disk(&jobs[n_jobs]);
        bytes_total += f->size;
        n_jobs++;
    }
    if (n_wanted == 0) {
        error_set(err, "no file of %s at %s matches --include \"%s\"", h->repo, h->revision,
                  o->include ? o->include : "");
        goto done;
    }
    int64_t free_bytes = local_free_bytes(o->out_dir);
    int64_t needed = bytes_total - bytes_on_disk;
    char need_s[32], free_s[32], total_s[32], present_s[32];
    human(need_s, sizeof need_s, needed);
    human(free_s, sizeof free_s, free_bytes);
    if (free_bytes >= 0 && free_bytes < needed) {
        error_set(err,
                  "disk full: %s needs %s more but only %s is free in %s; free space or choose another --out",
                  h->repo, need_s, free_s, o->out_dir);
        goto done;
    }
    qsort(jobs, n_jobs, sizeof *jobs, by_size_desc); /* big files first keeps the pipes full */
    human(total_s, sizeof total_s, bytes_total);
    human(present_s, sizeof present_s, bytes_present);
    progress_start(&progress, mode, (int)n_jobs, bytes_total, bytes_on_disk);
    progress_message(&progress, "%s at commit %s: %zu files; %zu to download (%s), %zu already here (%s)",
                     h->repo, list.commit, n_wanted, n_jobs, total_s, n_wanted - n_jobs, present_s);
    if (local_mark_complete(o->out_dir, NULL, err) != 0) /* unfinished until the end */
        goto done;
    TransferConfig cfg = {
        .hub = h,
        .commit = list.commit,
        .parallel = o->parallel > 0 ? (o->parallel < MAX_PARALLEL ? o->parallel : MAX_PARALLEL)
                                    : FETCH_DEFAULT_PARALLEL,
        .max_attempts = o->max_attempts > 0 ? o->max_attempts : 5,
        .checksum_attempts = CHECKSUM_ATTEMPTS,
        .piece_bytes = o->piece_bytes == 0 ? FETCH_DEFAULT_PIECE_BYTES : o->piece_bytes,
        .progress = &progress,
    };
    double t0 = progress_now();
    rc = transfer_run(&cfg, jobs, n_jobs, err);
    progress_end(&progress);
    if (rc == 0) {
        char mark[300];
        snprintf(mark, sizeof mark, "%s %s", h->repo, list.commit);
        rc = local_mark_complete(o->out_dir, mark, err);
    }
    if (rc == 0) {
        double secs = progress_now() - t0;
        progress_message(&progress, "complete: %zu files in %s (%zu downloaded, %.1f s, %.1f MB/s)", n_wanted,
                         o->out_dir, n_jobs, secs,
                         secs > 0 ? (double)(bytes_total - bytes_on_disk) / 1e6 / secs : 0.0);
    }
done:
    for (size_t i = 0; i < n_paths; i++)
        local_paths_free(&paths[i]);
    free(paths);
    free(jobs);
    hub_file_list_free(&list);
    return rc;
}

FetchDirState weights_fetch_dir_state(const char *dir) {
    return (FetchDirState)local_dir_state(dir);
}

const char *weights_fetch_dir_state_name(FetchDirState s) {
    static const char *names[] = {"empty", "partial", "complete", "other"};
    return (unsigned)s < 4 ? names[s] : "unknown";
}

int weights_fetch(const FetchOptions *o, Error *err) {
    if (check_options(o, err) != 0)
        return -1;
    char endpoint[512];
    snprintf(endpoint, sizeof endpoint, "%s", o->endpoint ? o->endpoint : FETCH_DEFAULT_ENDPOINT);
    for (size_t n = strlen(endpoint); n > 0 && endpoint[n - 1] == '/'; n--)
        endpoint[n - 1] = '\0';
    HubCtx h = {
        .endpoint = endpoint,
        .token = o->token,
        .repo = o->repo,
        .revision = o->revision ? o->revision : FETCH_DEFAULT_REVISION,
    };
    pthread_once(&curl_once, curl_start);
    if (local_mkdirs(o->out_dir, 0, err) != 0)
        return -1;
    int lock_fd = local_lock(o->out_dir, err);
    if (lock_fd < 0)
        return -1;
    int rc = fetch_locked(o, &h, err);
    close(lock_fd);
    return rc;
}
