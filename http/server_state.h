/* The server's state shared by server.c (lifecycle), routes.c (handlers)
 * and respond.c (answers, streaming). Everything here belongs to the event-
 * loop thread except `queue` (its own mutex) and `worker` (see worker.h). */
#ifndef HTTP_SERVER_STATE_H
#define HTTP_SERVER_STATE_H

#include <h2o.h>
#include <stdatomic.h>

#include "http/job.h"
#include "http/metrics.h"
#include "http/request.h"
#include "http/server.h"
#include "http/worker.h"

typedef struct Server {
    ServerOptions opt;
    char model_id[256];
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t job_receiver;
    JobQueue queue;
    Worker worker;
    Metrics metrics;
    RequestLimits limits; /* vision filled in once the model is ready */
    double t_start;
    unsigned long long next_request;
    unsigned char api_key_sha256[32];
    int have_api_key;
    Job *active; /* pushed and not yet freed (loop-only list through job->active_next) */
    int n_active;
    int draining;
    double drain_started;
    int n_connections;              /* open client sockets (loop-only) */
    long long connections_refused;  /* over max_connections */
    double refused_logged_at;       /* last "connection limit" warning */
    long long connections_flooding; /* shut down for starting requests too fast (routes.c) */
} Server;

/* The request side of a job: lives in the request's memory pool; its dispose
 * callback tells the server that the request is gone. */
struct JobLink {
    h2o_generator_t generator; /* streaming responses */
    Server *server;
    h2o_req_t *req;
    Job *job;          /* NULL once answered, or when the job was freed */
    char endpoint[32]; /* for metrics and logs */
    char id[40];
    double t_arrival;
    int http1; /* HTTP/1: disconnects are found by peeking the socket */
    int stream;
    int started; /* streaming: headers sent */
    int sending; /* streaming: waiting for proceed */
    int done;    /* streaming: the worker finished */
    int final_sent;
    int include_usage;
    char chat_id[64];
    long created;  /* unix seconds, for OpenAI objects */
    char *pending; /* streaming: visible text not yet sent (malloc) */
    size_t pending_len, pending_cap;
    int final_status; /* streaming: 200, or the error that ended the stream */
    char final_error_type[48];
    char final_error_message[512];
    const char *finish;
    int prompt_tokens, completion_tokens;
};

/* routes.c */
int routes_on_request(h2o_handler_t *self, h2o_req_t *req);
extern Server *routes_server;

/* respond.c */
typedef struct {
    Server *server;
    h2o_req_t *req;
    const char *endpoint;
    const char *id;
    double t_arrival;
} Reply;

void respond_body(const Reply *r, int status, const char *content_type, const char *body, size_t len);
void respond_error(const Reply *r, int status, const char *type, const char *message);
/* Loop: the receiver of job messages. */
void respond_on_job_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
/* Loop: cancels a job whose client left (removes it if still queued). */
void respond_cancel_job(Server *s, Job *job, int reason);
/* Loop: answers and frees a queued job without running it (deadline,
 * shutdown); returns 1, or 0 when the worker already runs it. */
int respond_abandon_queued(Server *s, Job *job, int status, const char *type, const char *message);
/* Loop: ties a pushed job to its request (allocated in the request's pool). */
JobLink *link_create(Server *s, h2o_req_t *req, const Reply *r, Job *job);
/* Loop: ends a request early (client gone, deadline): an error reply, or an
 * error event when a stream has started; cancels its job. */
void link_abort(JobLink *l, int status, const char *type, const char *message);
void server_add_active(Server *s, Job *job);
void server_remove_active(Server *s, Job *job);

#endif
