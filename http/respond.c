/* Answers on the event-loop thread: plain JSON replies, the per-request log
 * line and metrics, the worker's job messages, and server-sent-event
 * streaming for /v1/chat/completions. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/reply_json.h"
#include "http/server_state.h"
#include "util/error.h"
#include "util/log.h"

static const char *reason_phrase(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

static void add_header(h2o_req_t *req, const char *lower_name, const char *value) {
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, lower_name, strlen(lower_name), 1, NULL, v.base,
                          v.len);
}

static int quiet_endpoint(const char *endpoint) {
    return !strcmp(endpoint, "health") || !strcmp(endpoint, "metrics");
}

/* The one log line of a request: ids, status, counts and timings only. */
static void log_request(const char *id, const char *endpoint, int status, double t_arrival, const Job *job) {
    char fields[1024];
    int n = snprintf(fields, sizeof fields,
                     "\"request_id\":\"%s\",\"endpoint\":\"%s\",\"status\":%d,\"total_ms\":%.1f", id,
                     endpoint, status, (now_seconds() - t_arrival) * 1e3);
    if (job && n > 0 && (size_t)n < sizeof fields) {
        double queue_ms = job->t_start > 0 ? (job->t_start - job->t_arrival) * 1e3 : 0;
        snprintf(fields + n, sizeof fields - (size_t)n,
                 ",\"prompt_tokens\":%d,\"completion_tokens\":%d,\"images\":%d,\"stream\":%s,"
                 "\"finish_reason\":\"%s\",\"queue_ms\":%.1f,\"parse_ms\":%.1f,\"preprocess_ms\":%.1f,"
                 "\"tokenize_ms\":%.1f,\"vision_ms\":%.1f,\"ttft_ms\":%.1f,\"engine_ms\":%.1f",
                 job->prompt_tokens, job->completion_tokens, job->in.n_images,
                 job->in.stream ? "true" : "false", job->finish ? job->finish : "", queue_ms, job->parse_ms,
                 job->preprocess_ms, job->tokenize_ms, job->vision_ms, job->ttft_ms, job->engine_ms);
    }
    LogSeverity sev = quiet_endpoint(endpoint)         ? LOG_DEBUG
                      : status >= 500 && status != 503 ? LOG_ERROR
                                                       : LOG_INFO;
    log_fields(sev, "request", fields);
}

/* Sends a complete answer; `count` adds it to the request metrics. */
static void send_answer(const Reply *r, int status, const char *content_type, const char *body, size_t len,
                        int count) {
    h2o_req_t *req = r->req;
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = len;
    add_header(req, "content-type", content_type);
    add_header(req, "x-request-id", r->id);
    if (status == 503)
        add_header(req, "retry-after", "1");
    if (status == 401)
        add_header(req, "www-authenticate", "Bearer");
    h2o_send_inline(req, body, len);
    if (count)
        metrics_count_request(&r->server->metrics, r->endpoint, status);
}

static void send_prepared(const Reply *r, int status, const char *content_type, const char *body,
                          size_t len) {
    send_answer(r, status, content_type, body, len, 1);
}

void respond_body(const Reply *r, int status, const char *content_type, const char *body, size_t len) {
    send_prepared(r, status, content_type, body, len);
    log_request(r->id, r->endpoint, status, r->t_arrival, NULL);
}

void respond_error(const Reply *r, int status, const char *type, const char *message) {
    char *body = json_error(type, message);
    const char *b = body ? body : "{\"error\":{\"type\":\"server_error\",\"message\":\"out of memory\"}}";
    respond_body(r, status, "application/json", b, strlen(b));
    free(body);
}

void server_add_active(Server *s, Job *job) {
    job->active_prev = NULL;
    job->active_next = s->active;
    if (s->active)
        s->active->active_prev = job;
    s->active = job;
    s->n_active++;
}

void server_remove_active(Server *s, Job *job) {
    if (job->active_prev)
        job->active_prev->active_next = job->active_next;
    else
        s->active = job->active_next;
    if (job->active_next)
        job->active_next->active_prev = job->active_prev;
    job->active_next = job->active_prev = NULL;
    s->n_active--;
}

static const char *endpoint_name(Endpoint e) {
    return e == ENDPOINT_ANALYZE ? "analyze" : e == ENDPOINT_GENERATE ? "generate" : "chat_completions";
}

static void detach(Job *job) {
    if (job->link) {
        job->link->job = NULL;
        job->link = NULL;
    }
}

void respond_cancel_job(Server *s, Job *job, int reason) {
    detach(job);
    if (job_queue_remove(&s->queue, job)) {
        s->metrics.cancelled++;
        const char *endpoint = endpoint_name(job->in.endpoint);
        metrics_count_request(&s->metrics, endpoint, 499);
        log_fields(LOG_INFO, "request cancelled while queued", NULL);
        log_request(job->id, endpoint, 499, job->t_arrival, job);
        server_remove_active(s, job);
        job_free(job);
        return;
    }
    int none = CANCEL_NONE;
    atomic_compare_exchange_strong(&job->cancel, &none, reason);
}

/* ---- streaming (server-sent events) */

static void stream_pump(JobLink *l);

static void on_stream_proceed(h2o_generator_t *self, h2o_req_t *req) {
    JobLink *l = H2O_STRUCT_FROM_MEMBER(JobLink, generator, self);
    l->sending = 0;
    stream_pump(l);
}

static void on_stream_stop(h2o_generator_t *self, h2o_req_t *req) {
    JobLink *l = H2O_STRUCT_FROM_MEMBER(JobLink, generator, self);
    l->final_sent = 1; /* the client is gone: send nothing more */
    if (l->job)
        respond_cancel_job(l->server, l->job, CANCEL_CLIENT_GONE);
}

/* Appends "data: <json>\n\n" to a pool buffer of `cap` bytes. */
static void sse_append(h2o_mem_pool_t *pool, h2o_iovec_t *buf, const char *json) {
    if (!json)
        return;
    size_t n = strlen(json);
    char *p = h2o_mem_alloc_pool(pool, buf->len + n + 9);
    if (buf->len)
        memcpy(p, buf->base, buf->len);
    snprintf(p + buf->len, n + 9, "data: %s\n\n", json);
    buf->base = p;
    buf->len += n + 8;
}

static void stream_pump(JobLink *l) {
    if (l->sending || l->final_sent)
        return;
    h2o_req_t *req = l->req;
    Server *s = l->server;
    h2o_iovec_t buf = {NULL, 0};
    char *json;
    if (!l->started) {
        l->started = 1;
        req->res.status = 200;
        req->res.reason = "OK";
        add_header(req, "content-type", "text/event-stream");
        add_header(req, "cache-control", "no-cache");
        add_header(req, "x-request-id", l->id);
        h2o_start_response(req, &l->generator);
        json = json_chat_chunk(l->chat_id, l->created, s->model_id, "assistant", "", 0, NULL, NULL);
        sse_append(&req->pool, &buf, json);
        free(json);
    }
    if (l->pending_len) {
        json = json_chat_chunk(l->chat_id, l->created, s->model_id, NULL, l->pending, l->pending_len, NULL,
                               NULL);
        sse_append(&req->pool, &buf, json);
        free(json);
        l->pending_len = 0;
    }
    int final = 0;
    if (l->done) {
        final = 1;
        if (l->final_status == 200) {
            json = json_chat_chunk(l->chat_id, l->created, s->model_id, NULL, NULL, 0, l->finish, NULL);
            sse_append(&req->pool, &buf, json);
            free(json);
            if (l->include_usage) {
                Answer usage = {"", l->finish, l->prompt_tokens, l->completion_tokens,
                                0,  0,         l->cached_tokens};
                json = json_chat_chunk(l->chat_id, l->created, s->model_id, NULL, NULL, 0, NULL, &usage);
                sse_append(&req->pool, &buf, json);
                free(json);
            }
        } else {
            json = json_error(l->final_error_type, l->final_error_message);
            sse_append(&req->pool, &buf, json);
            free(json);
        }
        h2o_iovec_t done = h2o_strdup(&req->pool, "data: [DONE]\n\n", SIZE_MAX);
        char *p = h2o_mem_alloc_pool(&req->pool, buf.len + done.len);
        if (buf.len)
            memcpy(p, buf.base, buf.len);
        memcpy(p + buf.len, done.base, done.len);
        buf.base = p;
        buf.len += done.len;
        l->final_sent = 1;
    }
    if (buf.len == 0)
        return;
    if (!final)
        l->sending = 1;
    h2o_send(req, &buf, 1, final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void pending_append(JobLink *l, const char *text, size_t n) {
    if (l->pending_len + n + 1 > l->pending_cap) {
        size_t cap = (l->pending_len + n + 1) * 2;
        char *p = realloc(l->pending, cap);
        if (!p)
            return; /* out of memory: this piece is lost, the answer goes on */
        l->pending = p;
        l->pending_cap = cap;
    }
    memcpy(l->pending + l->pending_len, text, n);
    l->pending_len += n;
    l->pending[l->pending_len] = 0;
}

void link_abort(JobLink *l, int status, const char *type, const char *message) {
    Server *s = l->server;
    Job *job = l->job;
    if (job)
        respond_cancel_job(s, job, CANCEL_CLIENT_GONE);
    if (l->final_sent)
        return;
    if (l->started) {
        l->done = 1;
        l->final_status = status;
        snprintf(l->final_error_type, sizeof l->final_error_type, "%s", type);
        snprintf(l->final_error_message, sizeof l->final_error_message, "%s", message);
        stream_pump(l);
    } else {
        /* Counted and logged when the worker reports the cancelled job. */
        Reply r = {s, l->req, l->endpoint, l->id, l->t_arrival};
        l->final_sent = 1;
        char *body = json_error(type, message);
        send_answer(&r, status, "application/json", body ? body : "{}", body ? strlen(body) : 2, job == NULL);
        free(body);
    }
}

/* ---- job results */

static void observe_job(Server *s, const Job *job) {
    Metrics *m = &s->metrics;
    m->prompt_tokens += job->prompt_tokens;
    if (job->t_start > 0)
        m->cache = job->cache_stats; /* the engine's counters after this job */
    m->generated_tokens += job->completion_tokens;
    if (job->completion_tokens > 0)
        metrics_observe(&m->ttft_seconds, job->ttft_ms / 1e3);
    if (job->in.n_images > 0 && job->vision_ms > 0)
        metrics_observe(&m->vision_seconds, job->vision_ms / 1e3);
    if (job->t_start > 0)
        metrics_observe(&m->queue_seconds, job->t_start - job->t_arrival);
    if (atomic_load(&job->cancel) != CANCEL_NONE)
        m->cancelled++;
    metrics_observe(&m->request_seconds, now_seconds() - job->t_arrival);
}

/* Sends a finished job's answer (non-streaming). */
static void answer_plain(Server *s, JobLink *l, Job *job) {
    Reply r = {s, l->req, l->endpoint, l->id, l->t_arrival};
    l->final_sent = 1;
    if (job->status != 200) {
        char *body = json_error(job->error_type, job->error_message);
        send_prepared(&r, job->status, "application/json", body ? body : "{}", body ? strlen(body) : 2);
        free(body);
        return;
    }
    Answer a = {job->text ? job->text : "", job->finish,       job->prompt_tokens,
                job->completion_tokens,     job->inference_ms, job->in.json_mode != JSON_MODE_NONE,
                job->cached_tokens};
    char *body = NULL;
    if (job->in.endpoint == ENDPOINT_ANALYZE) {
        body = json_analyze(&a);
    } else if (job->in.endpoint == ENDPOINT_GENERATE) {
        body = json_generate(&a);
    } else {
        char *content = chat_content(a.text, 0); /* a JSON mode's text is the (constrained) value itself */
        if (content)
            body = json_chat(&a, content, l->chat_id, l->created, s->model_id);
        free(content);
    }
    if (!body) {
        char *err = json_error("server_error", "out of memory building the answer");
        send_prepared(&r, 500, "application/json", err ? err : "{}", err ? strlen(err) : 2);
        free(err);
        return;
    }
    send_prepared(&r, 200, "application/json", body, strlen(body));
    free(body);
}

static void job_finished(Server *s, Job *job) {
    JobLink *l = job->link;
    observe_job(s, job);
    const char *endpoint = endpoint_name(job->in.endpoint);
    if (l) {
        detach(job);
        if (!l->stream || (job->status != 200 && !l->started)) {
            answer_plain(s, l, job);
        } else {
            l->done = 1;
            l->final_status = job->status;
            l->finish = job->finish;
            l->prompt_tokens = job->prompt_tokens;
            l->cached_tokens = job->cached_tokens;
            l->completion_tokens = job->completion_tokens;
            snprintf(l->final_error_type, sizeof l->final_error_type, "%s", job->error_type);
            snprintf(l->final_error_message, sizeof l->final_error_message, "%s", job->error_message);
            metrics_count_request(&s->metrics, endpoint, job->status);
            stream_pump(l);
        }
    } else {
        /* The client left: count it as nginx does (499). */
        metrics_count_request(&s->metrics, endpoint, 499);
    }
    log_request(job->id, endpoint, l ? job->status : 499, job->t_arrival, job);
    server_remove_active(s, job);
    job_free(job);
}

int respond_abandon_queued(Server *s, Job *job, int status, const char *type, const char *message) {
    if (!job_queue_remove(&s->queue, job))
        return 0; /* the worker has it now; it will report */
    job->status = status;
    snprintf(job->error_type, sizeof job->error_type, "%s", type);
    snprintf(job->error_message, sizeof job->error_message, "%s", message);
    job->finish = "";
    job_finished(s, job);
    return 1;
}

void respond_on_job_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages) {
    Server *s = H2O_STRUCT_FROM_MEMBER(Server, job_receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        PANIC_IF(!msg->link.next || !msg->link.prev, "job message is not on the message list");
        h2o_linklist_unlink(&msg->link);
        Job *job = H2O_STRUCT_FROM_MEMBER(Job, msg, msg);
        pthread_mutex_lock(&s->queue.mutex);
        job->msg_pending = 0;
        int done = job->state == JOB_DONE;
        char *delta = job->delta;
        size_t delta_len = job->delta_len;
        job->delta = NULL;
        job->delta_len = job->delta_cap = 0;
        pthread_mutex_unlock(&s->queue.mutex);
        JobLink *l = job->link;
        if (l && l->stream && delta_len)
            pending_append(l, delta, delta_len);
        free(delta);
        if (done)
            job_finished(s, job);
        else if (l && l->stream)
            stream_pump(l);
    }
}

/* ---- the request's lifetime */

static void on_link_dispose(void *p) {
    JobLink *l = p;
    if (l->job)
        respond_cancel_job(l->server, l->job, CANCEL_CLIENT_GONE);
    free(l->pending);
    l->pending = NULL;
}

JobLink *link_create(Server *s, h2o_req_t *req, const Reply *r, Job *job) {
    JobLink *l = h2o_mem_alloc_shared(&req->pool, sizeof *l, on_link_dispose);
    memset(l, 0, sizeof *l);
    l->generator.proceed = on_stream_proceed;
    l->generator.stop = on_stream_stop;
    l->server = s;
    l->req = req;
    l->job = job;
    job->link = l;
    snprintf(l->endpoint, sizeof l->endpoint, "%s", r->endpoint);
    snprintf(l->id, sizeof l->id, "%s", r->id);
    snprintf(l->chat_id, sizeof l->chat_id, "chatcmpl-%s", r->id);
    l->created = (long)time(NULL);
    l->t_arrival = r->t_arrival;
    l->http1 = req->version < 0x200;
    l->stream = job->in.stream;
    l->include_usage = job->in.include_usage;
    l->final_status = 200;
    return l;
}
