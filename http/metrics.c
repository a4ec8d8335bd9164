/* Prometheus metrics; see metrics.h. */
#include "http/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double bucket_bounds[METRICS_N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                        1,     2.5,  5,     10,   30,  60,   120};

void metrics_init(Metrics *m) {
    memset(m, 0, sizeof *m);
}

void metrics_observe(Histogram *h, double seconds) {
    if (seconds < 0)
        seconds = 0;
    h->sum += seconds;
    h->count++;
    for (int i = 0; i < METRICS_N_BUCKETS; i++) {
        if (seconds <= bucket_bounds[i]) {
            h->buckets[i]++;
            return;
        }
    }
    /* Above the last bound: only +Inf (count) holds it. */
}

void metrics_count_request(Metrics *m, const char *endpoint, int status) {
    for (int i = 0; i < m->n_series; i++) {
        if (m->series[i].status == status && !strcmp(m->series[i].endpoint, endpoint)) {
            m->series[i].count++;
            return;
        }
    }
    if (m->n_series == METRICS_MAX_SERIES) /* endpoints and statuses are a small fixed set */
        return;
    RequestSeries *s = &m->series[m->n_series++];
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    s->status = status;
    s->count = 1;
}

/* A growing text buffer. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} Text;

static void text_printf(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(Text *t, const char *fmt, ...) {
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *p = realloc(t->data, cap);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->data = p;
        t->cap = cap;
    }
}

static void render_histogram(Text *t, const char *name, const char *help, const Histogram *h) {
    text_printf(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    long long cumulative = 0;
    for (int i = 0; i < METRICS_N_BUCKETS; i++) {
        cumulative += h->buckets[i];
        text_printf(t, "%s_bucket{le=\"%g\"} %lld\n", name, bucket_bounds[i], cumulative);
    }
    text_printf(t, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.6f\n%s_count %lld\n", name, h->count, name, h->sum,
                name, h->count);
}

char *metrics_render(const Metrics *m, const MetricsGauges *g, size_t *len_out) {
    Text t = {malloc(4096), 0, 4096, 0};
    if (!t.data)
        return NULL;
    t.data[0] = 0;
    text_printf(&t, "# HELP medgemma_requests_total Answered HTTP requests by endpoint and status.\n"
                    "# TYPE medgemma_requests_total counter\n");
    for (int i = 0; i < m->n_series; i++)
        text_printf(&t, "medgemma_requests_total{endpoint=\"%s\",status=\"%d\"} %lld\n",
                    m->series[i].endpoint, m->series[i].status, m->series[i].count);
    render_histogram(&t, "medgemma_request_duration_seconds",
                     "Time from request arrival to the complete answer (generation endpoints).",
                     &m->request_seconds);
    render_histogram(&t, "medgemma_time_to_first_token_seconds",
                     "Engine time from the start of a request to its first generated token.",
                     &m->ttft_seconds);
    render_histogram(&t, "medgemma_vision_encode_seconds", "Vision tower time of a request with images.",
                     &m->vision_seconds);
    render_histogram(&t, "medgemma_queue_wait_seconds", "Time a request waited for the engine.",
                     &m->queue_seconds);
    text_printf(&t,
                "# HELP medgemma_prompt_tokens_total Prompt tokens processed.\n"
                "# TYPE medgemma_prompt_tokens_total counter\nmedgemma_prompt_tokens_total %lld\n"
                "# HELP medgemma_generated_tokens_total Tokens generated.\n"
                "# TYPE medgemma_generated_tokens_total counter\nmedgemma_generated_tokens_total %lld\n"
                "# HELP medgemma_requests_cancelled_total Generations stopped because the client left or the "
                "deadline passed.\n"
                "# TYPE medgemma_requests_cancelled_total counter\nmedgemma_requests_cancelled_total %lld\n",
                m->prompt_tokens, m->generated_tokens, m->cancelled);
    text_printf(&t,
                "# HELP medgemma_queue_depth Requests waiting for the engine.\n"
                "# TYPE medgemma_queue_depth gauge\nmedgemma_queue_depth %d\n"
                "# HELP medgemma_requests_running Requests running on the engine.\n"
                "# TYPE medgemma_requests_running gauge\nmedgemma_requests_running %d\n"
                "# HELP medgemma_model_loaded 1 once the model is loaded and warmed up.\n"
                "# TYPE medgemma_model_loaded gauge\nmedgemma_model_loaded %d\n"
                "# HELP medgemma_uptime_seconds Seconds since the server started.\n"
                "# TYPE medgemma_uptime_seconds gauge\nmedgemma_uptime_seconds %.3f\n",
                g->queue_depth, g->running, g->model_loaded, g->uptime_seconds);
    /* the caches (docs/caching.md) */
    const EngineCacheStats *c = &m->cache;
    text_printf(&t,
                "# HELP medgemma_prefix_cache_enabled 1 when prompts can continue a cached prefix "
                "(MEDGEMMA_PREFIX_CACHE and a backend that can).\n# TYPE medgemma_prefix_cache_enabled "
                "gauge\nmedgemma_prefix_cache_enabled %d\n",
                c->prefix_enabled);
    text_printf(&t,
                "# HELP medgemma_prefix_cache_hits_total Prompts continued from a cached prefix.\n# TYPE "
                "medgemma_prefix_cache_hits_total counter\nmedgemma_prefix_cache_hits_total %lld\n",
                c->prefix_hits);
    text_printf(&t,
                "# HELP medgemma_prefix_cache_misses_total Prompts prefilled from position 0.\n# TYPE "
                "medgemma_prefix_cache_misses_total counter\nmedgemma_prefix_cache_misses_total %lld\n",
                c->prefix_misses);
    text_printf(&t,
                "# HELP medgemma_prefix_cache_fallbacks_total Misses although a common prefix was cached "
                "(too short, or the sliding-window ring had moved on).\n# TYPE "
                "medgemma_prefix_cache_fallbacks_total counter\nmedgemma_prefix_cache_fallbacks_total %lld\n",
                c->prefix_fallbacks);
    text_printf(
        &t,
        "# HELP medgemma_prefix_cache_reused_tokens_total Prompt tokens reused from the KV cache.\n# TYPE "
        "medgemma_prefix_cache_reused_tokens_total counter\nmedgemma_prefix_cache_reused_tokens_total %lld\n",
        c->prefix_tokens_reused);
    text_printf(&t,
                "# HELP medgemma_image_cache_hits_total Images whose embeddings came from the cache.\n# TYPE "
                "medgemma_image_cache_hits_total counter\nmedgemma_image_cache_hits_total %lld\n",
                c->image_hits);
    text_printf(&t,
                "# HELP medgemma_image_cache_misses_total Images encoded by the vision tower (cache on).\n# "
                "TYPE medgemma_image_cache_misses_total counter\nmedgemma_image_cache_misses_total %lld\n",
                c->image_misses);
    text_printf(&t,
                "# HELP medgemma_image_cache_bytes Bytes of image embeddings held.\n# TYPE "
                "medgemma_image_cache_bytes gauge\nmedgemma_image_cache_bytes %lld\n",
                c->image_bytes);
    text_printf(&t,
                "# HELP medgemma_image_cache_entries Images held.\n# TYPE medgemma_image_cache_entries "
                "gauge\nmedgemma_image_cache_entries %lld\n",
                c->image_entries);
    text_printf(&t,
                "# HELP medgemma_image_cache_budget_bytes MEDGEMMA_IMAGE_CACHE_MB in bytes.\n# TYPE "
                "medgemma_image_cache_budget_bytes gauge\nmedgemma_image_cache_budget_bytes %lld\n",
                c->image_budget_bytes);
    text_printf(&t,
                "# HELP medgemma_cache_expired_total Cache entries dropped after MEDGEMMA_CACHE_IDLE_S.\n# "
                "TYPE medgemma_cache_expired_total counter\nmedgemma_cache_expired_total %lld\n",
                c->expired);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    *len_out = t.len;
    return t.data;
}
