/* weights-fetch: the downloads themselves. Several files at once on one
 * libcurl multi handle (one thread), and a large file in several byte
 * ranges at once; each file goes to its .part file, resumes with a Range
 * request after a dropped connection, and is renamed into place only when
 * its checksum matches.
 * Network errors and 5xx are retried with backoff; a checksum mismatch
 * restarts the file from zero; 401/403/404 and a full disk stop the run
 * (the .part files stay for the next run). */
#ifndef WEIGHTS_FETCH_TRANSFER_H
#define WEIGHTS_FETCH_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "weights-fetch/hub_files.h"
#include "weights-fetch/hub_http.h"
#include "weights-fetch/local_dir.h"
#include "weights-fetch/progress.h"

typedef struct {
    const HubFile *file;
    const LocalPaths *paths;
} TransferJob;

typedef struct {
    const HubCtx *hub;
    const char *commit;    /* files are fetched at this commit */
    int parallel;          /* files in flight at once */
    int max_attempts;      /* tries without progress per file */
    int checksum_attempts; /* downloads per file before a mismatch is reported */
    int64_t piece_bytes;   /* files of 2 pieces or more come in byte ranges at once; <= 0: never */
    Progress *progress;
} TransferConfig;

/* Downloads every job. Returns 0 when all are in place, else -1 with the
 * first fatal error in err. */
int transfer_run(const TransferConfig *cfg, const TransferJob *jobs, size_t n, Error *err);

/* Bytes of the job's file already in its .part (for progress and the free-space check). */
int64_t transfer_bytes_on_disk(const TransferJob *job);

#endif
