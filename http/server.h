/* The HTTP service (`medgemma serve`): API.md's endpoints on h2o 2.2.5.
 *
 * Threads: the event-loop thread owns every h2o call (accepting, parsing,
 * validating, answering); one worker thread loads the model and runs one
 * request at a time on the engine; a bounded FIFO (job.h) sits between them
 * and results come back as h2o multithread messages. HTTP/1.1 and
 * cleartext HTTP/2 (prior knowledge, or Upgrade: h2c). */
#ifndef HTTP_SERVER_H
#define HTTP_SERVER_H

#include <stddef.h>

#include "engine/engine.h"

typedef struct {
    const char *host; /* listen address, e.g. "0.0.0.0" or "::" */
    int port;         /* 0 = any free port (logged) */
    const char *model_dir;
    const char *model_repo; /* fetched into model_dir at start when it is empty and a token is set */
    const char *model_id;   /* name shown by /v1/models; NULL = last part of model_dir */
    BackendKind backend;
    int n_threads;       /* CPU backend threads; 0 = all cores */
    int max_context;     /* 0 = engine default */
    const char *api_key; /* NULL or "" = no authentication */
    int max_queue;       /* requests waiting for the engine */
    int max_images;      /* per request */
    int max_tokens;      /* largest max_tokens a request may ask for */
    int default_max_tokens;
    size_t max_body_bytes;
    double request_timeout_s; /* per request, queue wait included; 0 = none */
    double shutdown_grace_s;  /* after SIGTERM, time to finish running work */
    /* Hostile and slow clients (docs/api.md, "Connections and limits"). */
    int max_connections;     /* open client connections; more are answered 503 and closed */
    double client_timeout_s; /* HTTP/1: to receive a request (headers + body) and between
                                keep-alive requests; HTTP/2: idle connection */
} ServerOptions;

/* Serves until SIGTERM/SIGINT. Returns the process exit status: 0 after a
 * graceful stop, 1 when the listener or the model could not be set up (the
 * reason is logged). */
int server_run(const ServerOptions *options);

#endif
