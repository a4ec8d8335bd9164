/* weights-fetch: repo listing through the Hub API; see hub_files.h. */
#include "weights-fetch/hub_files.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BODY_BYTES (64 << 20) /* a 1000-entry tree page is ~300 KB */
#define MAX_PAGES 1000
#define MAX_API_ATTEMPTS 4
#define MAX_FILE_BYTES ((int64_t)1 << 50)

typedef struct {
    char *data;
    size_t len, cap;
    int too_big;
} Body;

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
    Body *b = userdata;
    size_t len = size * n;
    if (b->len + len > MAX_BODY_BYTES) {
        b->too_big = 1;
        return 0;
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

/* GETs url into *body_out (NUL-terminated; free it). Retries network errors
 * and 429/5xx a few times; any other non-200 status becomes an error. */
static int api_get(const HubCtx *h, const char *url, const char *what, char **body_out, HubResponse *resp,
                   Error *err) {
    CURL *c = curl_easy_init();
    if (!c)
        return error_set(err, "%s: cannot start libcurl", what);
    int rc = -1;
    for (int attempt = 1;; attempt++) {
        Body b = {0};
        struct curl_slist *headers = NULL;
        hub_easy_setup(c, h, url, resp, &headers);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
        CURLcode res = curl_easy_perform(c);
        curl_slist_free_all(headers);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        resp->status = status;
        int retry = 0;
        if (b.too_big) {
            error_set(err, "%s: the Hub's answer is larger than %d MiB; is HF_ENDPOINT (%s) a Hub?", what,
                      MAX_BODY_BYTES >> 20, h->endpoint);
        } else if (res != CURLE_OK) {
            error_set(err, "%s: cannot reach %s: %s", what, h->endpoint, curl_easy_strerror(res));
            retry = res != CURLE_URL_MALFORMAT && res != CURLE_UNSUPPORTED_PROTOCOL &&
                    res != CURLE_TOO_MANY_REDIRECTS && res != CURLE_WRITE_ERROR;
        } else if (status != 200) {
            hub_status_error(err, h, resp, what, NULL, b.data);
            retry = hub_status_retryable(status);
        } else {
            *body_out = b.data ? b.data : calloc(1, 1);
            rc = *body_out ? 0 : error_set(err, "%s: out of memory", what);
            break;
        }
        free(b.data);
        if (!retry || attempt >= MAX_API_ATTEMPTS)
            break;
        struct timespec ts = {0, 250000000L * attempt};
        nanosleep(&ts, NULL);
    }
    curl_easy_cleanup(c);
    return rc;
}

static int is_hex(const char *s, size_t min_len, size_t max_len) {
    size_t n = strlen(s);
    if (n < min_len || n > max_len)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static void lower(char *s) {
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

int hub_parse_commit(const char *json, char *commit_out, size_t cap, Error *err) {
    cJSON *j = cJSON_Parse(json);
    if (!j)
        return error_set(err, "the repo info is not valid JSON");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha");
    int rc = 0;
    if (!cJSON_IsString(sha))
        rc = error_set(err, "the repo info has no \"sha\" (commit) string");
    else if (!is_hex(sha->valuestring, 40, 64) || strlen(sha->valuestring) >= cap)
        rc = error_set(err, "the repo info's \"sha\" is not a commit hash");
    else {
        snprintf(commit_out, cap, "%s", sha->valuestring);
        lower(commit_out);
    }
    cJSON_Delete(j);
    return rc;
}

int hub_path_is_safe(const char *path) {
    size_t n = strlen(path);
    if (n == 0 || n > 1000 || path[0] == '/')
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f || path[i] == '\\')
            return 0;
    if (strcmp(path, ".weights-fetch") == 0 || strncmp(path, ".weights-fetch/", 15) == 0)
        return 0;
    const char *seg = path;
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
        if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        if (!slash)
            return 1;
        seg = slash + 1;
    }
}

static int get_size(const cJSON *obj, int64_t *out) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, "size");
    if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > (double)MAX_FILE_BYTES ||
        s->valuedouble != (double)(int64_t)s->valuedouble)
        return -1;
    *out = (int64_t)s->valuedouble;
    return 0;
}

/* Appends one "file" entry of a tree page. */
static int add_entry(const cJSON *e, HubFileList *l, size_t index, Error *err) {
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
    if (!cJSON_IsString(path))
        return error_set(err, "tree entry %zu has no \"path\" string", index);
    const char *p = path->valuestring;
    if (!hub_path_is_safe(p))
        return error_set(err, "tree entry %zu: refusing unsafe path \"%.200s\"", index, p);
    HubFile f = {0};
    const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(e, "lfs");
    const cJSON *oid;
    if (cJSON_IsObject(lfs)) {
        oid = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
        if (!cJSON_IsString(oid) || !is_hex(oid->valuestring, 64, 64))
            return error_set(err, "tree entry %s: \"lfs.oid\" is not a sha256", p);
        if (get_size(lfs, &f.size) != 0 && get_size(e, &f.size) != 0)
            return error_set(err, "tree entry %s: no valid \"size\"", p);
        f.hash_kind = HASH_SHA256;
    } else {
        oid = cJSON_GetObjectItemCaseSensitive(e, "oid");
        if (!cJSON_IsString(oid) || !is_hex(oid->valuestring, 40, 40))
            return error_set(err, "tree entry %s: \"oid\" is not a git sha1", p);
        if (get_size(e, &f.size) != 0)
            return error_set(err, "tree entry %s: no valid \"size\"", p);
        f.hash_kind = HASH_GIT_SHA1;
    }
    snprintf(f.hash, sizeof f.hash, "%s", oid->valuestring);
    lower(f.hash);
    f.path = strdup(p);
    HubFile *grown = realloc(l->files, (l->count + 1) * sizeof *grown);
    if (!f.path || !grown) {
        free(f.path);
        if (grown)
            l->files = grown;
        return error_set(err, "out of memory listing files");
    }
    l->files = grown;
    l->files[l->count++] = f;
    return 0;
}

int hub_parse_tree_page(const char *json, HubFileList *l, Error *err) {
    cJSON *j = cJSON_Parse(json);
    if (!j)
        return error_set(err, "the file list is not valid JSON");
    int rc = 0;
    if (!cJSON_IsArray(j)) {
        rc = error_set(err, "the file list is not a JSON array");
    } else {
        size_t index = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
            if (!cJSON_IsObject(e) || !cJSON_IsString(type)) {
                rc = error_set(err, "tree entry %zu is not an object with a \"type\" string", index);
                break;
            }
            if (strcmp(type->valuestring, "file") == 0 && add_entry(e, l, index, err) != 0) {
                rc = -1;
                break;
            }
            index++;
        }
    }
    cJSON_Delete(j);
    return rc;
}

static int by_path(const void *a, const void *b) {
    return strcmp(((const HubFile *)a)->path, ((const HubFile *)b)->path);
}

int hub_file_list_check_unique(HubFileList *l, Error *err) {
    if (l->count > 1)
        qsort(l->files, l->count, sizeof *l->files, by_path);
    for (size_t i = 1; i < l->count; i++)
        if (strcmp(l->files[i - 1].path, l->files[i].path) == 0)
            return error_set(err, "the file list names %s twice", l->files[i].path);
    return 0;
}

void hub_file_list_free(HubFileList *l) {
    for (size_t i = 0; i < l->count; i++)
        free(l->files[i].path);
    free(l->files);
    memset(l, 0, sizeof *l);
}

int hub_list_files(const HubCtx *h, HubFileList *out, Error *err) {
    memset(out, 0, sizeof *out);
    char *rev = hub_url_escape(h->revision, 0);
    char *repo = hub_url_escape(h->repo, 1);
    char *url = malloc(4096);
    char *body = NULL;
    HubResponse resp;
    int rc = -1;
    if (!rev || !repo || !url) {
        error_set(err, "out of memory");
        goto done;
    }
    snprintf(url, 4096, "%s/api/models/%s/revision/%s", h->endpoint, repo, rev);
    if (api_get(h, url, "looking up the revision", &body, &resp, err) != 0)
        goto done;
    if (hub_parse_commit(body, out->commit, sizeof out->commit, err) != 0) {
        error_prefix(err, "looking up the revision (%s)", url);
        goto done;
    }
    snprintf(url, 4096, "%s/api/models/%s/tree/%s?recursive=true", h->endpoint, repo, out->commit);
    for (int page = 0;; page++) {
        if (page >= MAX_PAGES) {
            error_set(err, "listing files: more than %d pages; giving up", MAX_PAGES);
            goto done;
        }
        free(body);
        body = NULL;
        if (api_get(h, url, "listing files", &body, &resp, err) != 0)
            goto done;
        if (hub_parse_tree_page(body, out, err) != 0) {
            error_prefix(err, "listing files (%s)", url);
            goto done;
        }
        if (!resp.next_link[0])
            break;
        if (resp.next_link[0] == '/')
            snprintf(url, 4096, "%s%s", h->endpoint, resp.next_link);
        else if (strncmp(resp.next_link, h->endpoint, strlen(h->endpoint)) == 0 &&
                 resp.next_link[strlen(h->endpoint)] == '/') /* same host only: the token goes along */
            snprintf(url, 4096, "%s", resp.next_link);
        else {
            error_set(err, "listing files: cannot follow the next-page link \"%.200s\"", resp.next_link);
            goto done;
        }
    }
    if (hub_file_list_check_unique(out, err) != 0)
        goto done;
    rc = 0;
done:
    if (rc != 0)
        hub_file_list_free(out);
    free(body);
    free(url);
    free(repo);
    free(rev);
    return rc;
}
