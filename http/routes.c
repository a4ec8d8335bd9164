/* The request handler on the event-loop thread: routing (404/405), the API
 * key, /health, /metrics, /v1/models, and the generation endpoints, which
 * are validated here and pushed onto the queue (503 when it is full). */
#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "engine/map_guard.h"
#include "http/reply_json.h"
#include "http/server_state.h"
#include "util/log.h"

Server *routes_server;

typedef enum { ROUTE_HEALTH, ROUTE_METRICS, ROUTE_MODELS, ROUTE_ANALYZE, ROUTE_GENERATE, ROUTE_CHAT } RouteId;

typedef struct {
    const char *path;
    const char *method; /* GET routes also answer HEAD */
    const char *endpoint;
    RouteId id;
} Route;

static const Route routes[] = {
    {"/health", "GET", "health", ROUTE_HEALTH},
    {"/metrics", "GET", "metrics", ROUTE_METRICS},
    {"/v1/models", "GET", "models", ROUTE_MODELS},
    {"/analyze", "POST", "analyze", ROUTE_ANALYZE},
    {"/generate", "POST", "generate", ROUTE_GENERATE},
    {"/v1/chat/completions", "POST", "chat_completions", ROUTE_CHAT},
};

static int iov_is(h2o_iovec_t v, const char *s) {
    size_t n = strlen(s);
    return v.len == n && !memcmp(v.base, s, n);
}

/* The client's X-Request-Id when it is short and plain, else our own. */
static const char *request_id(Server *s, h2o_req_t *req) {
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        int ok = v.len > 0 && v.len < 40;
        for (size_t k = 0; ok && k < v.len; k++) {
            char c = v.base[k];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '_' || c == '.';
        }
        if (ok)
            return h2o_strdup(&req->pool, v.base, v.len).base;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%08lx%06llx", (unsigned long)(s->t_start * 1000) & 0xffffffffUL,
             ++s->next_request & 0xffffffULL);
    return h2o_strdup(&req->pool, buf, strlen(buf)).base;
}

/* Constant-time check of "Authorization: Bearer <key>": both sides are
 * hashed first so neither the length nor the content leaks through timing. */
static int authorized(Server *s, h2o_req_t *req) {
    if (!s->have_api_key)
        return 1;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len < 7 || strncasecmp(v.base, "Bearer ", 7) != 0)
        return 0;
    unsigned char digest[32];
    unsigned int n = 0;
    if (!EVP_Digest(v.base + 7, v.len - 7, digest, &n, EVP_sha256(), NULL) || n != 32)
        return 0;
    return CRYPTO_memcmp(digest, s->api_key_sha256, 32) == 0;
}

static void send_json_tree(const Reply *r, int status, cJSON *root) {
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!body) {
        respond_error(r, 500, "server_error", "out of memory");
        return;
    }
    respond_body(r, status, "application/json", body, strlen(body));
    free(body);
}

/* 1 when a mapped model file changed under the server (engine/map_guard.h):
 * /health turns 503 and generation is refused before a read can fault. Logged
 * once. Loop thread only. */
static int model_files_changed(Error *err) {
    static int logged;
    if (map_guard_check(err) == 0)
        return 0;
    if (!logged) {
        logged = 1;
        log_fields(LOG_ERROR, err->message, "\"event\":\"model_files_changed\"");
    }
    return 1;
}

static void handle_health(Server *s, const Reply *r) {
    int state = atomic_load(&s->worker.state);
    int depth, running;
    job_queue_counts(&s->queue, &depth, &running);
    Error files_err = {{0}};
    int files_changed = state == WORKER_READY && model_files_changed(&files_err);
    int healthy = state == WORKER_READY && !s->draining && !files_changed;
    int loaded = state == WORKER_READY || state == WORKER_DEVICE_LOST; /* w->info is published */
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status",
                            healthy                   ? "healthy"
                            : state == WORKER_LOADING ? "loading"
                                                      : "unhealthy");
    cJSON_AddBoolToObject(root, "model_loaded", state == WORKER_READY);
    cJSON_AddBoolToObject(root, "gpu_available", loaded && s->worker.info.gpu_available);
    if (loaded && s->worker.gpu_name[0])
        cJSON_AddStringToObject(root, "gpu_name", s->worker.gpu_name);
    else
        cJSON_AddNullToObject(root, "gpu_name");
    if (loaded) {
        cJSON_AddStringToObject(root, "backend", s->worker.backend_name);
        if (s->worker.info.fallback_reason) /* auto serves on the CPU although a GPU is there */
            cJSON_AddStringToObject(root, "fallback_reason", s->worker.info.fallback_reason);
        cJSON_AddBoolToObject(root, "vision", s->worker.info.image_tokens > 0);
        cJSON_AddNumberToObject(root, "max_context", s->worker.info.max_context);
    } else {
        cJSON_AddNullToObject(root, "backend");
    }
    cJSON_AddStringToObject(root, "model", s->model_id);
    cJSON_AddNumberToObject(root, "queue_depth", depth);
    cJSON_AddNumberToObject(root, "running", running);
    cJSON_AddNumberToObject(root, "max_queue", s->opt.max_queue);
    cJSON_AddNumberToObject(root, "connections", s->n_connections);
    cJSON_AddNumberToObject(root, "uptime_s", now_seconds() - s->t_start);
    if (s->draining)
        cJSON_AddBoolToObject(root, "draining", 1);
    if (state == WORKER_FAILED || state == WORKER_DEVICE_LOST)
        cJSON_AddStringToObject(root, "error", s->worker.error);
    else if (files_changed)
        cJSON_AddStringToObject(root, "error", files_err.message);
    send_json_tree(r, healthy ? 200 : 503, root);
}

static void handle_metrics(Server *s, const Reply *r) {
    MetricsGauges g;
    job_queue_counts(&s->queue, &g.queue_depth, &g.running);
    g.model_loaded = atomic_load(&s->worker.state) == WORKER_READY;
    g.uptime_seconds = now_seconds() - s->t_start;
    size_t len = 0;
    char *text = metrics_render(&s->metrics, &g, &len);
    if (!text) {
        respond_error(r, 500, "server_error", "out of memory");
        return;
    }
    respond_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void handle_models(Server *s, const Reply *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToArray(data, m);
    cJSON_AddStringToObject(m, "id", s->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(time(NULL) - (time_t)(now_seconds() - s->t_start)));
    cJSON_AddStringToObject(m, "owned_by", "medgemma-engine");
    send_json_tree(r, 200, root);
}

static void handle_generation(Server *s, const Reply *r, Endpoint endpoint) {
    h2o_req_t *req = r->req;
    if (s->draining) {
        respond_error(r, 503, "unavailable", "the server is shutting down");
        return;
    }
    int state = atomic_load(&s->worker.state);
    if (state != WORKER_READY) {
        respond_error(r, 503, "unavailable",
                      state == WORKER_LOADING ? "the model is still loading; retry when /health says healthy"
                      : state == WORKER_DEVICE_LOST ? "the GPU of this instance failed; see /health"
                                                    : "the model failed to load; see /health");
        return;
    }
    Error files_err = {{0}};
    if (model_files_changed(&files_err)) {
        respond_error(r, 503, "unavailable", files_err.message);
        return;
    }
    if (req->entity.len > s->opt.max_body_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "the body is %zu bytes, over the limit of %zu (MEDGEMMA_MAX_BODY_MB)",
                 req->entity.len, s->opt.max_body_bytes);
        respond_error(r, 413, "request_too_large", msg);
        return;
    }
    JobInput in;
    RequestError e;
    if (request_parse(endpoint, req->entity.base ? req->entity.base : "", req->entity.len, &s->limits, &in,
                      &e) != 0) {
        respond_error(r, e.status, e.type, e.message);
        return;
    }
    Job *job = job_new();
    if (!job) {
        job_input_free(&in);
        respond_error(r, 500, "server_error", "out of memory");
        return;
    }
    job->in = in;
    job->parse_ms = (now_seconds() - r->t_arrival) * 1e3;
    snprintf(job->id, sizeof job->id, "%s", r->id);
    job->t_arrival = r->t_arrival;
    job->deadline = s->opt.request_timeout_s > 0 ? r->t_arrival + s->opt.request_timeout_s : 0;
    if (job_queue_push(&s->queue, job) != 0) {
        job_free(job);
        char msg[160];
        snprintf(msg, sizeof msg, "the queue is full (%d requests waiting, MEDGEMMA_MAX_QUEUE); retry later",
                 s->opt.max_queue);
        respond_error(r, 503, "overloaded", msg);
        return;
    }
    server_add_active(s, job);
    link_create(s, req, r, job);
}

/* Requests one connection may start per second. An engine serves one
 * generation at a time, so no real client comes near this; a flood of
 * streams (HTTP/2 rapid reset: HEADERS then RST_STREAM, over and over) or
 * of pipelined requests does, and would keep the event loop from everyone
 * else. Such a connection is shut down (its next read sees the end, and h2o
 * closes it its own way) with a warning. Loop thread only. */
#define MAX_REQUESTS_PER_CONNECTION_PER_S 400
#define RATE_SLOTS 64

static int connection_flooding(Server *s, h2o_req_t *req) {
    static struct {
        uint64_t conn_id;
        double window_start;
        int count;
    } slots[RATE_SLOTS];
    static double logged_at;
    uint64_t id = req->conn->id;
    double now = now_seconds();
    int i = (int)(id % RATE_SLOTS);
    if (slots[i].conn_id != id || now - slots[i].window_start >= 1.0) {
        slots[i].conn_id = id;
        slots[i].window_start = now;
        slots[i].count = 0;
    }
    if (++slots[i].count <= MAX_REQUESTS_PER_CONNECTION_PER_S)
        return 0;
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
    s->connections_flooding++;
    if (now - logged_at >= 10) {
        logged_at = now;
        char fields[128];
        snprintf(fields, sizeof fields,
                 "\"limit_per_s\":%d,\"closed_total\":%lld,\"event\":\"request_flood\"",
                 MAX_REQUESTS_PER_CONNECTION_PER_S, s->connections_flooding);
        log_fields(LOG_WARNING,
                   "closing a connection that starts requests too fast (HTTP/2 rapid reset or a flood)",
                   fields);
    }
    return 1;
}

int routes_on_request(h2o_handler_t *self, h2o_req_t *req) {
    Server *s = routes_server;
    if (connection_flooding(s, req)) {
        h2o_send_error_503(req, "Service Unavailable", "too many requests on this connection", 0);
        return 0;
    }
    Reply r = {s, req, "other", request_id(s, req), now_seconds()};
    const Route *route = NULL;
    int path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!iov_is(req->path_normalized, routes[i].path))
            continue;
        path_known = 1;
        r.endpoint = routes[i].endpoint;
        if (iov_is(req->method, routes[i].method) ||
            (!strcmp(routes[i].method, "GET") && iov_is(req->method, "HEAD")))
            route = &routes[i];
        else
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("allow"), 1, NULL,
                                  routes[i].method, strlen(routes[i].method));
    }
    if (!path_known) {
        respond_error(&r, 404, "not_found_error", "no such endpoint; see docs/api.md");
        return 0;
    }
    if (!route) {
        char msg[96];
        snprintf(msg, sizeof msg, "method %.*s is not allowed here",
                 (int)(req->method.len > 16 ? 16 : req->method.len), req->method.base);
        respond_error(&r, 405, "method_not_allowed", msg);
        return 0;
    }
    if (route->id != ROUTE_HEALTH && !authorized(s, req)) {
        respond_error(&r, 401, "authentication_error",
                      "missing or wrong API key: send the header 'Authorization: Bearer <key>'");
        return 0;
    }
    switch (route->id) {
    case ROUTE_HEALTH:
        handle_health(s, &r);
        break;
    case ROUTE_METRICS:
        handle_metrics(s, &r);
        break;
    case ROUTE_MODELS:
        handle_models(s, &r);
        break;
    case ROUTE_ANALYZE:
        handle_generation(s, &r, ENDPOINT_ANALYZE);
        break;
    case ROUTE_GENERATE:
        handle_generation(s, &r, ENDPOINT_GENERATE);
        break;
    case ROUTE_CHAT:
        handle_generation(s, &r, ENDPOINT_CHAT);
        break;
    }
    return 0;
}
