/* weights-fetch: the libcurl plumbing shared by the Hub API calls
 * (hub_files.c) and the file downloads (transfer.c): request setup (token,
 * timeouts, redirects), response-header parsing, URL escaping, and turning
 * an HTTP failure into a message that says what the user can do. */
#ifndef WEIGHTS_FETCH_HUB_HTTP_H
#define WEIGHTS_FETCH_HUB_HTTP_H

#include <curl/curl.h>
#include <stdint.h>

#include "util/error.h"

/* Which repo a request is about (for URLs and error messages). */
typedef struct {
    const char *endpoint; /* "https://huggingface.co", no trailing slash */
    const char *token;    /* NULL or "" = anonymous */
    const char *repo;     /* "owner/name" */
    const char *revision; /* as the user gave it */
} HubCtx;

/* What the header callback saw of the last response (redirects reset it). */
typedef struct {
    long status;             /* from the status line; 0 = none yet */
    int64_t range_start;     /* Content-Range "bytes START-END/LEN"; -1 = none */
    char error_code[64];     /* X-Error-Code, e.g. "GatedRepo" */
    char error_message[256]; /* X-Error-Message */
    char next_link[1024];    /* Link: <URL>; rel="next" (tree pagination) */
} HubResponse;

void hub_response_reset(HubResponse *r);

/* Sets URL, the header callback (filling resp), the token (sent only to the
 * Hub's own host, never to the host a redirect leads to), redirects
 * (http/https only), timeouts and stall detection. headers_out receives the
 * list to free with curl_slist_free_all after the transfer. */
void hub_easy_setup(CURL *c, const HubCtx *h, const char *url, HubResponse *resp,
                    struct curl_slist **headers_out);

/* Percent-encodes s for a URL; keep_slash leaves '/' as is (repo paths).
 * Returns a malloc'd string, or NULL when out of memory. */
char *hub_url_escape(const char *s, int keep_slash);

/* Fills err with what an HTTP error status means for the user:
 * 401 (how to set HF_TOKEN), 403 (accept a gated repo's terms), 404 (repo,
 * revision or file not found), 429 and 5xx. `what` names the request
 * ("listing files", "downloading model.safetensors"); `path` is the repo
 * file or NULL. body is the response body (JSON {"error": ...}) or NULL.
 * Returns -1. */
int hub_status_error(Error *err, const HubCtx *h, const HubResponse *r, const char *what, const char *path,
                     const char *body);

/* 1 when a status is worth retrying (429, 5xx), else 0. */
int hub_status_retryable(long status);

#endif
