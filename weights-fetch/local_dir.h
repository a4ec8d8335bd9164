/* weights-fetch: the output directory's bookkeeping: where partial files
 * and "verified" records live (DIR/.weights-fetch/, see fetch.h), creating
 * parent folders, the run lock, free space, and deciding whether a file
 * already in DIR is complete without rehashing it on every run. */
#ifndef WEIGHTS_FETCH_LOCAL_DIR_H
#define WEIGHTS_FETCH_LOCAL_DIR_H

#include <stdint.h>

#include "util/error.h"
#include "weights-fetch/hub_files.h"

#define LOCAL_STATE_DIR ".weights-fetch"

/* The three places of one repo file (malloc'd strings, free with local_paths_free). */
typedef struct {
    char *final_path;  /* DIR/<path> */
    char *part_path;   /* DIR/.weights-fetch/parts/<path>.part */
    char *record_path; /* DIR/.weights-fetch/verified/<path> */
} LocalPaths;

int local_paths_init(LocalPaths *p, const char *dir, const char *repo_path, Error *err);
void local_paths_free(LocalPaths *p);

/* mkdir -p of dir itself (file_path = 0) or of the folder holding a file (1). */
int local_mkdirs(const char *path, int is_file_path, Error *err);

/* strerror(e) plus what to do when it is a permission or read-only problem
 * ("Permission denied: the user running weights-fetch cannot write there; fix
 * the folder's owner or permissions, or pick another --out, then run again:
 * the download resumes"). Points into a thread-local buffer. */
const char *local_write_problem(int e);

/* Takes DIR/.weights-fetch/lock (creating the state dir); fails with a clear
 * message when another fetch holds it. Returns the fd to close, or -1. */
int local_lock(const char *dir, Error *err);

/* Size of a file, or -1 when it does not exist. */
int64_t local_file_size(const char *path);

/* Free bytes for an unprivileged writer in the filesystem holding dir, or -1. */
int64_t local_free_bytes(const char *dir);

/* 1 when DIR/<path> holds f's exact content: its record matches (size,
 * mtime, inode, checksum), or else it has f's size and hashes to f's
 * checksum (the record is then written). 0 when it must be downloaded. */
int local_file_is_complete(const LocalPaths *p, const HubFile *f);

/* Writes DIR/.weights-fetch/complete with `text` (a finished fetch), or
 * removes it when text is NULL (a fetch is under way). Returns 0 or -1. */
int local_mark_complete(const char *dir, const char *text, Error *err);

/* 0 empty, 1 partial, 2 complete, 3 other (the FetchDirState values). */
int local_dir_state(const char *dir);

/* Records that final_path was verified to hold f. Returns 0 or -1. */
int local_record_write(const LocalPaths *p, const HubFile *f, Error *err);

#endif
