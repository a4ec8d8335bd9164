/* weights-fetch: what to download. Asks the Hub API which commit a revision
 * is (/api/models/{repo}/revision/{rev}) and lists that commit's files with
 * sizes and checksums (/api/models/{repo}/tree/{commit}?recursive=true,
 * following Link pagination), as huggingface_hub's snapshot_download does.
 * Every field from the server is checked; a path that could escape the
 * output dir is refused. */
#ifndef WEIGHTS_FETCH_HUB_FILES_H
#define WEIGHTS_FETCH_HUB_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "weights-fetch/file_hash.h"
#include "weights-fetch/hub_http.h"

typedef struct {
    char *path; /* relative repo path, checked by hub_path_is_safe */
    int64_t size;
    HashKind hash_kind;
    char hash[65]; /* lowercase hex: sha256 for LFS files, git blob sha1 otherwise */
} HubFile;

typedef struct {
    char commit[65]; /* the commit the revision pointed to */
    HubFile *files;
    size_t count;
} HubFileList;

/* Resolves h->revision and lists the files. Returns 0 or -1. */
int hub_list_files(const HubCtx *h, HubFileList *out, Error *err);
void hub_file_list_free(HubFileList *l);

/* Parsers, exposed for the unit tests and the fuzzer. */
int hub_parse_commit(const char *json, char *commit_out, size_t cap, Error *err);
int hub_parse_tree_page(const char *json, HubFileList *l, Error *err);
/* 1 for "a/b.json"; 0 for "", "/x", "a/../b", "./a", "a//b", control bytes,
 * backslashes, or anything under ".weights-fetch" (our state dir). */
int hub_path_is_safe(const char *path);
/* Checks that no path appears twice (sorts the list by path). */
int hub_file_list_check_unique(HubFileList *l, Error *err);

#endif
