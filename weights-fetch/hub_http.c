/* weights-fetch: libcurl request setup and HTTP error messages; see hub_http.h. */
#include "weights-fetch/hub_http.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void hub_response_reset(HubResponse *r) {
    memset(r, 0, sizeof *r);
    r->range_start = -1;
}

/* Copies a header value without surrounding whitespace and control characters. */
static void copy_value(char *dst, size_t cap, const char *v, size_t n) {
    while (n > 0 && isspace((unsigned char)*v)) {
        v++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        dst[k++] = (unsigned char)v[i] < 0x20 ? ' ' : v[i];
    dst[k] = '\0';
}

/* Link: <https://host/api/...&cursor=...>; rel="next" */
static void parse_link(HubResponse *r, const char *v, size_t n) {
    char buf[2048];
    copy_value(buf, sizeof buf, v, n);
    for (char *p = buf; (p = strchr(p, '<')) != NULL;) {
        char *end = strchr(p, '>');
        if (!end)
            return;
        char *params = end + 1;
        char *next_entry = strchr(params, ',');
        size_t plen = next_entry ? (size_t)(next_entry - params) : strlen(params);
        char pbuf[256];
        snprintf(pbuf, sizeof pbuf, "%.*s", (int)plen, params);
        if (strstr(pbuf, "rel=\"next\"") || strstr(pbuf, "rel=next")) {
            size_t ulen = (size_t)(end - p - 1);
            if (ulen < sizeof r->next_link) {
                memcpy(r->next_link, p + 1, ulen);
                r->next_link[ulen] = '\0';
            }
            return;
        }
        p = end + 1;
    }
}

static size_t on_header(char *buf, size_t size, size_t n, void *userdata) {
    HubResponse *r = userdata;
    size_t len = size * n;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new response (the first, or the one after a redirect). */
        hub_response_reset(r);
        const char *sp = memchr(buf, ' ', len);
        if (sp)
            r->status = strtol(sp + 1, NULL, 10);
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t name_len = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vlen = len - name_len - 1;
#define IS(name) (name_len == strlen(name) && strncasecmp(buf, name, name_len) == 0)
    if (IS("X-Error-Code")) {
        copy_value(r->error_code, sizeof r->error_code, v, vlen);
    } else if (IS("X-Error-Message")) {
        copy_value(r->error_message, sizeof r->error_message, v, vlen);
    } else if (IS("Link")) {
        parse_link(r, v, vlen);
    } else if (IS("Content-Range")) {
        char cr[128];
        copy_value(cr, sizeof cr, v, vlen);
        long long start;
        if (sscanf(cr, "bytes %lld-", &start) == 1 && start >= 0)
            r->range_start = start;
    }
#undef IS
    return len;
}

void hub_easy_setup(CURL *c, const HubCtx *h, const char *url, HubResponse *resp,
                    struct curl_slist **headers_out) {
    hub_response_reset(resp);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Accept-Encoding: identity");
    if (h->token && *h->token) {
        char auth[700];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", h->token);
        /* A custom Authorization header is sent to the first host only:
         * libcurl drops it when a redirect goes to another host or port
         * (CURLOPT_UNRESTRICTED_AUTH stays off), so the CDN never sees it. */
        headers = curl_slist_append(headers, auth);
    }
    *headers_out = headers;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "medgemma-engine-weights-fetch/1.0");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A connection that moves under 1 KiB/s for 60 s is dropped and retried. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 0L);
}

char *hub_url_escape(const char *s, int keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || (keep_slash && ch == '/')) {
            out[k++] = (char)ch;
        } else {
            out[k++] = '%';
            out[k++] = hex[ch >> 4];
            out[k++] = hex[ch & 15];
        }
    }
    out[k] = '\0';
    return out;
}

int hub_status_retryable(long status) {
    return status == 429 || status == 408 || status >= 500;
}

/* The server's own words: X-Error-Message, else {"error": "..."} in the body. */
static void server_says(char *out, size_t cap, const HubResponse *r, const char *body) {
    out[0] = '\0';
    if (r->error_message[0]) {
        snprintf(out, cap, " (server: %s)", r->error_message);
        return;
    }
    if (!body || !*body)
        return;
    cJSON *j = cJSON_Parse(body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(e) && e->valuestring[0]) {
        char clean[200];
        copy_value(clean, sizeof clean, e->valuestring, strlen(e->valuestring));
        snprintf(out, cap, " (server: %s)", clean);
    }
    cJSON_Delete(j);
}

int hub_status_error(Error *err, const HubCtx *h, const HubResponse *r, const char *what, const char *path,
                     const char *body) {
    char says[300];
    server_says(says, sizeof says, r, body);
    int has_token = h->token && *h->token;
    int gated = strcmp(r->error_code, "GatedRepo") == 0;
    const char *settings = "https://huggingface.co/settings/tokens";
    switch (r->status) {
    case 401:
        if (gated && !has_token)
            return error_set(err,
                             "%s: HTTP 401: %s is a gated repo and no token was sent. Accept its terms at "
                             "%s/%s, create a read token at %s, then set HF_TOKEN=hf_... (or run "
                             "`huggingface-cli login`)%s",
                             what, h->repo, h->endpoint, h->repo, settings, says);
        if (has_token)
            return error_set(err,
                             "%s: HTTP 401: the Hub rejected the token for %s (expired, revoked or "
                             "mistyped?). Set HF_TOKEN to a valid read token from %s; a repo that "
                             "does not exist or is private to another account also answers 401%s",
                             what, h->repo, settings, says);
        return error_set(err,
                         "%s: HTTP 401: %s needs a token (it is private, gated, or does not exist). "
                         "Create a read token at %s and set HF_TOKEN=hf_... (or run "
                         "`huggingface-cli login`, which writes ~/.cache/huggingface/token)%s",
                         what, h->repo, settings, says);
    case 403:
        if (gated || strstr(r->error_message, "gated") || strstr(r->error_message, "restricted"))
            return error_set(err,
                             "%s: HTTP 403: %s is a gated repo and this token's account has not been "
                             "granted access. Log in at %s/%s, accept the terms on the model page, "
                             "wait for access to be granted, then retry%s",
                             what, h->repo, h->endpoint, h->repo, says);
        return error_set(err,
                         "%s: HTTP 403: the token may not read %s. A fine-grained token needs "
                         "\"Read access to contents of all public gated repos you can access\" "
                         "(or use a classic read token from %s)%s",
                         what, h->repo, settings, says);
    case 404:
        if (strcmp(r->error_code, "RevisionNotFound") == 0)
            return error_set(err, "%s: HTTP 404: revision \"%s\" not found in %s (check --revision)%s", what,
                             h->revision, h->repo, says);
        if (path && strcmp(r->error_code, "RepoNotFound") != 0)
            return error_set(err, "%s: HTTP 404: file %s not found in %s at revision %s%s", what, path,
                             h->repo, h->revision, says);
        return error_set(err,
                         "%s: HTTP 404: repo %s not found at %s (check the name, e.g. "
                         "google/medgemma-1.5-4b-it, and HF_ENDPOINT)%s",
                         what, h->repo, h->endpoint, says);
    case 429:
        return error_set(err, "%s: HTTP 429: rate limited by the Hub; wait a few minutes and retry%s", what,
                         says);
    default:
        if (r->status >= 500)
            return error_set(err, "%s: HTTP %ld: the Hub or its CDN failed; retry later%s", what, r->status,
                             says);
        return error_set(err, "%s: unexpected HTTP status %ld%s", what, r->status, says);
    }
}
