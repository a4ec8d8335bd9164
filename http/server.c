/* The server's lifecycle on the event-loop thread: h2o setup after h2o's
 * examples/libh2o/simple.c (v2.2.5), the listening socket, the worker, the
 * loop with its periodic checks (model ready, deadlines, HTTP/1 clients that
 * hung up), and the graceful stop on SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/server_state.h"
#include "util/log.h"

/* How often the loop wakes up for its periodic checks. */
#define TICK_MS 10

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
}

static Server the_server;

static void on_connection_closed(void *data) {
    Server *s = data;
    s->n_connections--;
}

static void on_refusal_written(h2o_socket_t *sock, const char *err) {
    h2o_socket_close(sock);
}

/* Over MEDGEMMA_MAX_CONNECTIONS: a short HTTP/1 503 (an HTTP/2 client just
 * sees the connection close), then close. Logged at most every 10 s. */
static void refuse_connection(Server *s, h2o_socket_t *sock) {
    static char reply[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                          "Connection: close\r\nContent-Length: 110\r\n\r\n"
                          "{\"error\":{\"type\":\"overloaded\",\"message\":\"too many open connections "
                          "(MEDGEMMA_MAX_CONNECTIONS); retry later\"}}\n";
    s->connections_refused++;
    double now = now_seconds();
    if (now - s->refused_logged_at >= 10) {
        s->refused_logged_at = now;
        char fields[160];
        snprintf(fields, sizeof fields,
                 "\"max_connections\":%d,\"refused_total\":%lld,\"event\":\"connection_limit\"",
                 s->opt.max_connections, s->connections_refused);
        log_fields(LOG_WARNING, "connection limit reached: new connections are refused", fields);
    }
    h2o_iovec_t buf = h2o_iovec_init(reply, sizeof reply - 1);
    h2o_socket_write(sock, &buf, 1, on_refusal_written);
}

static void on_accept(h2o_socket_t *listener, const char *err) {
    if (err)
        return;
    Server *s = &the_server;
    for (int i = 0; i < 16; i++) { /* take a few pending connections per wake-up */
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            return;
        if (s->opt.max_connections > 0 && s->n_connections >= s->opt.max_connections) {
            refuse_connection(s, sock);
            continue;
        }
        s->n_connections++;
        sock->on_close.cb = on_connection_closed;
        sock->on_close.data = s;
        h2o_accept(&s->accept_ctx, sock);
    }
}

static int open_listener(Server *s) {
    char port[16];
    snprintf(port, sizeof port, "%d", s->opt.port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(s->opt.host, port, &hints, &res);
    if (rc != 0) {
        log_msg(LOG_ERROR, "cannot resolve listen address %s: %s", s->opt.host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        log_msg(LOG_ERROR, "cannot listen on %s port %d: %s", s->opt.host, s->opt.port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    socklen_t alen = sizeof addr;
    int bound_port = s->opt.port;
    if (getsockname(fd, (struct sockaddr *)&addr, &alen) == 0)
        bound_port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                      : ((struct sockaddr_in *)&addr)->sin_port);
    s->listener = h2o_evloop_socket_create(s->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(s->listener, on_accept);
    char fields[160];
    snprintf(fields, sizeof fields, "\"host\":\"%s\",\"port\":%d", s->opt.host, bound_port);
    log_fields(LOG_INFO, "listening", fields);
    return 0;
}

/* HTTP/1 stops reading a connection once a request is parsed, so a client
 * that hangs up while its request waits is found by peeking the socket:
 * EOF or an error means it is gone. (HTTP/2 keeps reading; h2o disposes the
 * request and its JobLink tells us.) */
static int http1_client_gone(h2o_req_t *req) {
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (!sock)
        return 0;
    int fd = h2o_socket_get_fd(sock);
    if (fd < 0)
        return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void check_jobs(Server *s, double now) {
    Job *next;
    for (Job *job = s->active; job; job = next) {
        next = job->active_next; /* the job may be freed below */
        if (job->deadline > 0 && now > job->deadline && atomic_load(&job->cancel) == CANCEL_NONE) {
            if (!respond_abandon_queued(s, job, 504, "timeout",
                                        "the request waited longer than MEDGEMMA_REQUEST_TIMEOUT_S"))
                atomic_store(&job->cancel, CANCEL_DEADLINE);
            continue;
        }
        JobLink *l = job->link;
        if (l && l->http1 && !l->final_sent && http1_client_gone(l->req))
            link_abort(l, 499, "client_closed", "the client closed the connection");
    }
}

static void start_drain(Server *s) {
    s->draining = 1;
    s->drain_started = now_seconds();
    h2o_context_request_shutdown(&s->ctx); /* HTTP/2: GOAWAY; HTTP/1: no more keep-alive */
    if (s->listener) {
        h2o_socket_read_stop(s->listener);
        h2o_socket_close(s->listener);
        s->listener = NULL;
    }
    char fields[96];
    snprintf(fields, sizeof fields, "\"in_flight\":%d,\"grace_s\":%.1f", s->n_active,
             s->opt.shutdown_grace_s);
    log_fields(LOG_INFO, "shutting down: no new connections, finishing running requests", fields);
}

/* Past the grace period: queued jobs are refused, the running one stopped. */
static void cancel_everything(Server *s) {
    Job *next;
    for (Job *job = s->active; job; job = next) {
        next = job->active_next;
        if (!respond_abandon_queued(s, job, 503, "unavailable", "the server is shutting down"))
            atomic_store(&job->cancel, CANCEL_SHUTDOWN);
    }
}

/* Runs the loop until a graceful stop is complete; returns the exit status. */
static int run_loop(Server *s) {
    int announced_ready = 0;
    double flush_until = 0;
    for (;;) {
        h2o_evloop_run(s->ctx.loop, TICK_MS);
        double now = now_seconds();
        int state = atomic_load(&s->worker.state);
        if (!announced_ready && state == WORKER_READY) {
            announced_ready = 1;
            s->limits.vision = s->worker.info.image_tokens > 0;
            char fields[320];
            snprintf(fields, sizeof fields,
                     "\"backend\":\"%s\",\"gpu\":\"%s\",\"vision\":%s,\"max_context\":%d,\"startup_s\":%.2f",
                     s->worker.backend_name, s->worker.gpu_name, s->limits.vision ? "true" : "false",
                     s->worker.info.max_context, now - s->t_start);
            log_fields(LOG_INFO, "model ready", fields);
        }
        if (state == WORKER_FAILED) {
            log_msg(LOG_ERROR, "cannot serve: %s", s->worker.error);
            return 1;
        }
        check_jobs(s, now);
        if (stop_signal && !s->draining) {
            start_drain(s);
            if (state == WORKER_LOADING) {
                /* Loading cannot be interrupted; nothing runs yet, so stop now. */
                log_msg(LOG_INFO, "stopped while the model was loading");
                fflush(stdout);
                _exit(0);
            }
        }
        if (s->draining) {
            if (now - s->drain_started > s->opt.shutdown_grace_s)
                cancel_everything(s);
            if (s->n_active == 0) {
                if (flush_until == 0)
                    flush_until = now + 0.2; /* let the last answers reach their sockets */
                else if (now > flush_until)
                    return 0;
            }
        }
    }
}

int server_run(const ServerOptions *options) {
    Server *s = &the_server;
    memset(s, 0, sizeof *s);
    s->opt = *options;
    routes_server = s;
    s->t_start = now_seconds();
    if (s->opt.model_id && *s->opt.model_id) {
        snprintf(s->model_id, sizeof s->model_id, "%s", s->opt.model_id);
    } else {
        const char *dir = s->opt.model_dir;
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        size_t start = n;
        while (start > 0 && dir[start - 1] != '/')
            start--;
        snprintf(s->model_id, sizeof s->model_id, "%.*s", (int)(n - start), dir + start);
    }
    if (s->opt.api_key && *s->opt.api_key) {
        unsigned int n = 0;
        EVP_Digest(s->opt.api_key, strlen(s->opt.api_key), s->api_key_sha256, &n, EVP_sha256(), NULL);
        s->have_api_key = 1;
    }
    s->limits.max_images = s->opt.max_images;
    s->limits.max_tokens_limit = s->opt.max_tokens;
    s->limits.default_max_tokens = s->opt.default_max_tokens;
    metrics_init(&s->metrics);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&s->config);
    /* h2o refuses bodies past its own limit with a plain-text 413; ours, a
     * JSON 413, applies up to twice the limit. */
    s->config.max_request_entity_size = s->opt.max_body_bytes * 2;
    s->config.http1.upgrade_to_http2 = 1;
    /* Slow and idle clients: HTTP/1 gets client_timeout_s to send a request
     * and between keep-alive requests, HTTP/2 connections close after as
     * long without a frame; an HTTP/2 connection runs at most 32 requests at
     * once (later streams wait). Header blocks are capped by
     * h2o (HTTP/1: 8 KiB of request line + headers, a 400 past it). */
    if (s->opt.client_timeout_s > 0) {
        uint64_t ms = (uint64_t)(s->opt.client_timeout_s * 1000);
        s->config.http1.req_timeout = ms;
        s->config.http2.idle_timeout = ms;
    }
    s->config.http2.max_concurrent_requests_per_connection = 32;
    h2o_hostconf_t *host = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof *handler);
    handler->on_req = routes_on_request;
    h2o_context_init(&s->ctx, h2o_evloop_create(), &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    h2o_multithread_register_receiver(s->ctx.queue, &s->job_receiver, respond_on_job_messages);
    job_queue_init(&s->queue, s->opt.max_queue);

    int rc = 1;
    if (open_listener(s) == 0) {
        Worker *w = &s->worker;
        w->model_dir = s->opt.model_dir;
        w->model_repo = s->opt.model_repo;
        w->backend = s->opt.backend;
        w->n_threads = s->opt.n_threads;
        w->max_context = s->opt.max_context;
        w->queue = &s->queue;
        w->receiver = &s->job_receiver;
        Error err = {{0}};
        if (worker_start(w, &err) != 0)
            log_msg(LOG_ERROR, "cannot start the engine worker: %s", err.message);
        else
            rc = run_loop(s);
    }
    if (s->listener)
        h2o_socket_close(s->listener);
    job_queue_stop(&s->queue);
    worker_join(&s->worker);
    /* Jobs still listed belong to requests h2o never finished (rc 1 only). */
    while (s->active) {
        Job *job = s->active;
        server_remove_active(s, job);
        if (job->link)
            job->link->job = NULL;
        job_free(job);
    }
    /* h2o 2.2.5 asserts when a context is disposed while keep-alive
     * connections are still open, and has no call that closes them; the
     * process exits next, so the loop and its connections are left to it
     * (they stay reachable from the_server, so LeakSanitizer is quiet). */
    job_queue_destroy(&s->queue);
    log_fields(LOG_INFO, "stopped", rc == 0 ? "\"exit_status\":0" : "\"exit_status\":1");
    return rc;
}
