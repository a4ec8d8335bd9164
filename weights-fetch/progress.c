/* weights-fetch: progress bar / lines / JSON logs; see progress.h. */
#include "weights-fetch/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define BAR_INTERVAL_S 0.2
#define LINES_INTERVAL_S 5.0
#define LOG_INTERVAL_S 15.0
#define BAR_WIDTH 30

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_start(Progress *p, FetchProgress mode, int files_total, int64_t bytes_total,
                    int64_t bytes_done) {
    if (mode == FETCH_PROGRESS_AUTO)
        mode = isatty(STDERR_FILENO) ? FETCH_PROGRESS_BAR : FETCH_PROGRESS_LINES;
    p->mode = mode;
    p->files_total = files_total;
    p->files_done = 0;
    p->bytes_total = bytes_total;
    p->bytes_done = bytes_done;
    p->bytes_at_start = bytes_done;
    p->t_start = progress_now();
    p->t_last = p->t_start;
    p->bar_shown = 0;
}

/* "1.23 GB" style sizes. */
static void human(char *out, size_t cap, double bytes) {
    const char *unit[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000 && u < 4) {
        bytes /= 1000;
        u++;
    }
    snprintf(out, cap, u == 0 ? "%.0f %s" : "%.2f %s", bytes, unit[u]);
}

/* Fills the shared numbers: percent, sizes, speed, ETA. */
static void status_text(const Progress *p, int active, char *out, size_t cap, double now) {
    double pct = p->bytes_total > 0 ? 100.0 * (double)p->bytes_done / (double)p->bytes_total : 100.0;
    double elapsed = now - p->t_start;
    double speed = elapsed > 0.05 ? (double)(p->bytes_done - p->bytes_at_start) / elapsed : 0;
    char done[32], total[32], rate[32], eta[32] = "?";
    human(done, sizeof done, (double)p->bytes_done);
    human(total, sizeof total, (double)p->bytes_total);
    human(rate, sizeof rate, speed > 0 ? speed : 0);
    if (speed > 0) {
        long s = (long)((double)(p->bytes_total - p->bytes_done) / speed);
        snprintf(eta, sizeof eta, "%ld:%02ld", s / 60, s % 60);
    }
    snprintf(out, cap, "%5.1f%%  %s of %s  %s/s  ETA %s  files %d/%d  %d active", pct, done, total, rate, eta,
             p->files_done, p->files_total, active);
}

static void draw_bar(Progress *p, int active, double now) {
    double frac = p->bytes_total > 0 ? (double)p->bytes_done / (double)p->bytes_total : 1.0;
    int filled = (int)(frac * BAR_WIDTH);
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
    char text[200];
    status_text(p, active, text, sizeof text, now);
    fprintf(stderr, "\r[%s] %s\033[K", bar, text);
    fflush(stderr);
    p->bar_shown = 1;
}

void progress_update(Progress *p, int active) {
    double now = progress_now();
    double interval = p->mode == FETCH_PROGRESS_BAR     ? BAR_INTERVAL_S
                      : p->mode == FETCH_PROGRESS_LINES ? LINES_INTERVAL_S
                                                        : LOG_INTERVAL_S;
    if (p->mode == FETCH_PROGRESS_NONE || now - p->t_last < interval)
        return;
    p->t_last = now;
    char text[200];
    switch (p->mode) {
    case FETCH_PROGRESS_BAR:
        draw_bar(p, active, now);
        break;
    case FETCH_PROGRESS_LINES:
        status_text(p, active, text, sizeof text, now);
        fprintf(stderr, "weights-fetch: %s\n", text);
        break;
    case FETCH_PROGRESS_LOG: {
        char fields[200];
        snprintf(fields, sizeof fields,
                 "\"bytes_done\":%lld,\"bytes_total\":%lld,\"files_done\":%d,\"files_total\":%d",
                 (long long)p->bytes_done, (long long)p->bytes_total, p->files_done, p->files_total);
        log_fields(LOG_INFO, "weights-fetch progress", fields);
        break;
    }
    default:
        break;
    }
}

void progress_message(Progress *p, const char *fmt, ...) {
    if (p->mode == FETCH_PROGRESS_NONE)
        return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->mode == FETCH_PROGRESS_LOG) {
        log_msg(LOG_INFO, "weights-fetch: %s", msg);
        return;
    }
    if (p->bar_shown)
        fprintf(stderr, "\r\033[K");
    fprintf(stderr, "weights-fetch: %s\n", msg);
    if (p->bar_shown)
        p->t_last = 0; /* redraw the bar at the next update */
    fflush(stderr);
}

void progress_end(Progress *p) {
    if (p->mode == FETCH_PROGRESS_BAR && p->bar_shown) {
        draw_bar(p, 0, progress_now());
        fputc('\n', stderr);
    }
}
