/* Prometheus metrics of the HTTP service (http/ owns this), rendered by
 * GET /metrics in the text exposition format, every name prefixed medgemma_.
 *
 * Only the event-loop thread records and renders, so nothing here locks.
 * Gauges that other threads change (queue depth) are passed in at render. */
#ifndef HTTP_METRICS_H
#define HTTP_METRICS_H

#include <stddef.h>

#include "engine/engine.h"

/* Histogram buckets shared by the duration metrics (seconds). */
#define METRICS_N_BUCKETS 14

typedef struct {
    double sum;
    long long count;
    long long buckets[METRICS_N_BUCKETS]; /* non-cumulative; rendered cumulative */
} Histogram;

#define METRICS_MAX_SERIES 64

typedef struct {
    char endpoint[32];
    int status;
    long long count;
} RequestSeries;

typedef struct {
    RequestSeries series[METRICS_MAX_SERIES];
    int n_series;
    Histogram request_seconds; /* arrival to last byte queued */
    Histogram ttft_seconds;    /* engine time to first token */
    Histogram vision_seconds;  /* vision tower, per request with images */
    Histogram queue_seconds;   /* waiting in the queue */
    long long prompt_tokens;
    long long generated_tokens;
    long long cancelled;    /* client gone or deadline passed */
    EngineCacheStats cache; /* docs/caching.md: the engine's counters after the last job */
} Metrics;

void metrics_init(Metrics *m);
void metrics_observe(Histogram *h, double seconds);
/* Counts one answered request. Unknown paths are counted as endpoint "other". */
void metrics_count_request(Metrics *m, const char *endpoint, int status);

typedef struct {
    int queue_depth;  /* waiting, not running */
    int running;      /* 0 or 1 */
    int model_loaded; /* 0 or 1 */
    double uptime_seconds;
} MetricsGauges;

/* Renders everything into a malloc'd NUL-terminated text (caller frees);
 * NULL when out of memory. */
char *metrics_render(const Metrics *m, const MetricsGauges *g, size_t *len_out);

#endif
