/* weights-fetch: progress reporting on stderr, in one of three styles:
 * a bar redrawn in place (terminal), a plain line every few seconds
 * (pipes, CI logs), or JSON log lines (the server). Messages such as "file
 * done" or "retrying" get a line of their own in every style. */
#ifndef WEIGHTS_FETCH_PROGRESS_H
#define WEIGHTS_FETCH_PROGRESS_H

#include <stdint.h>

#include "weights-fetch/fetch.h"

typedef struct {
    FetchProgress mode; /* never FETCH_PROGRESS_AUTO once started */
    int files_total, files_done;
    int64_t bytes_total;    /* of the files this run downloads */
    int64_t bytes_done;     /* of those, on disk now (resumed parts included) */
    int64_t bytes_at_start; /* already on disk when the run began (for the speed) */
    double t_start, t_last;
    int bar_shown;
} Progress;

/* Seconds on a monotonic clock. */
double progress_now(void);

/* AUTO picks BAR when stderr is a terminal, else LINES. */
void progress_start(Progress *p, FetchProgress mode, int files_total, int64_t bytes_total,
                    int64_t bytes_done);
/* Redraws or prints a line when one is due; `active` = files in flight. */
void progress_update(Progress *p, int active);
/* A line of its own ("done model.safetensors"), keeping the bar below it. */
void progress_message(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Final state of the bar (newline) or a last line. */
void progress_end(Progress *p);

#endif
