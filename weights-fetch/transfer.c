/* weights-fetch: parallel, resumable, verified downloads; see transfer.h.
 *
 * Each file is a Slot that moves PENDING -> ACTIVE (a curl transfer in
 * flight) -> PENDING (waiting to retry) ... -> DONE. The slot's .part file
 * always holds `have` bytes, all of them already fed to its hasher, so a
 * retry asks for "Range: bytes=have-" and the checksum is ready the moment
 * the last byte lands. */
#include "weights-fetch/transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SLOT_PENDING, SLOT_ACTIVE, SLOT_DONE };
enum { BODY_UNDECIDED, BODY_FILE, BODY_ERROR };
enum { ABORT_NONE, ABORT_WRITE, ABORT_RANGE, ABORT_TOO_LONG };

typedef struct {
    const TransferJob *job;
    const TransferConfig *cfg;
    int state;
    int fd; /* the .part file, O_APPEND; -1 until first started */
    Hasher hasher;
    int hasher_ready;
    int64_t have;          /* bytes in the .part file (all hashed) */
    int64_t attempt_start; /* `have` when the current attempt began */
    int failures;          /* consecutive attempts that added no byte */
    int checksum_failures;
    double not_before; /* earliest start of the next attempt */
    char last_problem[512];
    /* Per attempt: */
    CURL *easy;
    struct curl_slist *headers;
    HubResponse resp;
    int body;
    int abort_reason;
    int write_errno;
    char errbody[1024];
    size_t errbody_len;
} Slot;

static const char *path_of(const Slot *s) {
    return s->job->file->path;
}

/* Empties the .part file and the hash (the bytes on disk were wrong). */
static int restart_from_zero(Slot *s) {
    s->cfg->progress->bytes_done -= s->have;
    s->have = 0;
    s->attempt_start = 0;
    if (ftruncate(s->fd, 0) != 0)
        return -1;
    return hasher_reset(&s->hasher, NULL);
}

/* write(2) until all of buf is out (curl hands over up to 256 KiB at a time). */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
    Slot *s = userdata;
    size_t len = size * n;
    if (s->body == BODY_UNDECIDED) {
        long status = s->resp.status;
        if (status == 206 && s->resp.range_start == s->have) {
            s->body = BODY_FILE;
        } else if (status == 206) {
            s->abort_reason = ABORT_RANGE; /* a range we did not ask for */
            return 0;
        } else if (status == 200) {
            /* The server ignored the Range header: take the whole file again. */
            if (s->have > 0 && restart_from_zero(s) != 0) {
                s->abort_reason = ABORT_WRITE;
                s->write_errno = errno;
                return 0;
            }
            s->body = BODY_FILE;
        } else {
            s->body = BODY_ERROR;
        }
    }
    if (s->body == BODY_ERROR) {
        size_t room = sizeof s->errbody - 1 - s->errbody_len;
        size_t k = len < room ? len : room;
        memcpy(s->errbody + s->errbody_len, data, k);
        s->errbody_len += k;
        s->errbody[s->errbody_len] = '\0';
        return len;
    }
    if (s->have + (int64_t)len > s->job->file->size) {
        s->abort_reason = ABORT_TOO_LONG;
        return 0;
    }
    if (write_all(s->fd, data, len) != 0) {
        s->abort_reason = ABORT_WRITE;
        s->write_errno = errno;
        return 0;
    }
    hasher_update(&s->hasher, data, len);
    s->have += (int64_t)len;
    s->cfg->progress->bytes_done += (int64_t)len;
    return len;
}

/* Opens the .part file and hashes what it already holds (first start only). */
static int open_part(Slot *s, Error *err) {
    const HubFile *f = s->job->file;
    const char *part = s->job->paths->part_path;
    if (local_mkdirs(part, 1, err) != 0)
        return -1;
    int64_t existing = local_file_size(part);
    if (existing > f->size) {
        if (truncate(part, 0) != 0)
            return error_set(err, "cannot truncate %s: %s", part, strerror(errno));
        existing = 0;
    }
    s->fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->fd < 0)
        return error_set(err, "cannot open %s: %s", part, strerror(errno));
    if (hasher_init(&s->hasher, f->hash_kind, f->size, err) != 0)
        return -1;
    s->hasher_ready = 1;
    if (existing > 0) {
        if (hasher_update_from_file(&s->hasher, part, existing, err) != 0)
            return -1;
        s->have = existing; /* fetch.c counted it in the progress already */
        progress_message(s->cfg->progress, "resuming %s at byte %" PRId64 " of %" PRId64, f->path, existing,
                         f->size);
    }
    return 0;
}

static void close_part(Slot *s) {
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (s->hasher_ready)
        hasher_free(&s->hasher);
    s->hasher_ready = 0;
}

static int is_disk_full(int e) {
    return e == ENOSPC || e == EDQUOT || e == EFBIG;
}

static int write_error(Slot *s, int e, Error *err) {
    if (is_disk_full(e))
        return error_set(err,
                         "disk full while writing %s (%s): free at least %" PRId64
                         " bytes there, then run again; the download resumes",
                         path_of(s), s->job->paths->part_path, s->job->file->size - s->have);
    return error_set(err, "cannot write %s: %s", s->job->paths->part_path, strerror(e));
}

/* The downloaded bytes are wrong (`got` describes how): start the file
 * over, or report it after checksum_attempts downloads. */
static int checksum_failed(Slot *s, const char *got, Error *err) {
    const HubFile *f = s->job->file;
    const char *algo = f->hash_kind == HASH_SHA256 ? "sha256" : "git sha1";
    s->checksum_failures++;
    if (s->checksum_failures >= s->cfg->checksum_attempts)
        return error_set(err,
                         "checksum mismatch for %s after %d downloads: expected %s %s, %s. The bytes are "
                         "corrupted in transit or the mirror (%s) serves a different file; retry later",
                         f->path, s->checksum_failures, algo, f->hash, got, s->cfg->hub->endpoint);
    progress_message(s->cfg->progress,
                     "checksum mismatch for %s (expected %s %.12s..., %s); downloading it again", f->path,
                     algo, f->hash, got);
    if (restart_from_zero(s) != 0)
        return write_error(s, errno, err);
    s->state = SLOT_PENDING;
    return 0;
}

/* The last byte is in: compare checksums, then move the file into place. */
static int finish_file(Slot *s, Error *err) {
    const HubFile *f = s->job->file;
    const LocalPaths *p = s->job->paths;
    if (fsync(s->fd) != 0)
        return write_error(s, errno, err);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    hasher_final_hex(&s->hasher, hex);
    if (strcmp(hex, f->hash) != 0) {
        char got[200];
        snprintf(got, sizeof got, "got %s", hex);
        return checksum_failed(s, got, err);
    }
    close_part(s);
    if (local_mkdirs(p->final_path, 1, err) != 0)
        return -1;
    if (rename(p->part_path, p->final_path) != 0)
        return error_set(err, "cannot move %s to %s: %s", p->part_path, p->final_path, strerror(errno));
    if (local_record_write(p, f, err) != 0)
        return -1;
    s->state = SLOT_DONE;
    s->cfg->progress->files_done++;
    progress_message(s->cfg->progress, "done %s (%" PRId64 " bytes, %s verified)", f->path, f->size,
                     f->hash_kind == HASH_SHA256 ? "sha256" : "git sha1");
    return 0;
}

/* Starts the next attempt: a Range request from `have`, or straight to the
 * checksum when the .part file is already whole. */
static int start_attempt(Slot *s, CURLM *multi, Error *err) {
    if (s->fd < 0 && open_part(s, err) != 0)
        return -1;
    if (s->have == s->job->file->size)
        return finish_file(s, err);
    const HubCtx *h = s->cfg->hub;
    char *repo = hub_url_escape(h->repo, 1);
    char *path = hub_url_escape(path_of(s), 1);
    size_t url_len = strlen(h->endpoint) + (repo ? strlen(repo) : 0) + (path ? strlen(path) : 0) + 100;
    char *url = malloc(url_len);
    int rc = 0;
    if (!repo || !path || !url) {
        rc = error_set(err, "out of memory");
    } else {
        snprintf(url, url_len, "%s/%s/resolve/%s/%s", h->endpoint, repo, s->cfg->commit, path);
        s->easy = curl_easy_init();
        if (!s->easy) {
            rc = error_set(err, "cannot start libcurl");
        } else {
            hub_easy_setup(s->easy, h, url, &s->resp, &s->headers);
            curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
            curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
            curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
            curl_easy_setopt(s->easy, CURLOPT_BUFFERSIZE, 256L * 1024);
            char range[64];
            snprintf(range, sizeof range, "%" PRId64 "-", s->have);
            if (s->have > 0)
                curl_easy_setopt(s->easy, CURLOPT_RANGE, range); /* copied by libcurl */
            s->body = BODY_UNDECIDED;
            s->abort_reason = ABORT_NONE;
            s->errbody_len = 0;
            s->errbody[0] = '\0';
            s->attempt_start = s->have;
            curl_multi_add_handle(multi, s->easy);
            s->state = SLOT_ACTIVE;
        }
    }
    free(url);
    free(path);
    free(repo);
    return rc;
}

static void end_attempt(Slot *s, CURLM *multi) {
    curl_multi_remove_handle(multi, s->easy);
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    s->easy = NULL;
    s->headers = NULL;
}

/* A transfer failed in a way worth retrying: wait a little, or give up
 * after max_attempts tries that brought no new byte. */
static int retry_later(Slot *s, Error *err) {
    if (s->have > s->attempt_start)
        s->failures = 0;
    else
        s->failures++;
    if (s->failures >= s->cfg->max_attempts)
        return error_set(err, "giving up on %s after %d attempts without progress: %s", path_of(s),
                         s->failures, s->last_problem);
    double delay = 0.2;
    for (int i = 0; i < s->failures && delay < 8; i++)
        delay *= 2;
    s->not_before = progress_now() + delay;
    s->state = SLOT_PENDING;
    progress_message(s->cfg->progress, "%s: %s; retrying from byte %" PRId64, path_of(s), s->last_problem,
                     s->have);
    return 0;
}

static int curl_error_is_fatal(CURLcode res) {
    return res == CURLE_URL_MALFORMAT || res == CURLE_UNSUPPORTED_PROTOCOL ||
           res == CURLE_TOO_MANY_REDIRECTS || res == CURLE_OUT_OF_MEMORY;
}

/* Decides what a finished transfer means. */
static int on_done(Slot *s, CURLM *multi, CURLcode res, Error *err) {
    end_attempt(s, multi);
    long status = s->resp.status;
    s->state = SLOT_PENDING;
    if (s->abort_reason == ABORT_WRITE)
        return write_error(s, s->write_errno, err);
    if (s->abort_reason == ABORT_RANGE) {
        snprintf(s->last_problem, sizeof s->last_problem, "the server answered a different byte range");
        if (restart_from_zero(s) != 0)
            return write_error(s, errno, err);
        return retry_later(s, err);
    }
    if (s->abort_reason == ABORT_TOO_LONG) {
        char got[100];
        snprintf(got, sizeof got, "got more than the %" PRId64 " bytes listed", s->job->file->size);
        return checksum_failed(s, got, err);
    }
    if (res == CURLE_OK && (status == 200 || status == 206)) {
        if (s->have == s->job->file->size)
            return finish_file(s, err);
        snprintf(s->last_problem, sizeof s->last_problem,
                 "the connection ended after byte %" PRId64 " of %" PRId64, s->have, s->job->file->size);
        return retry_later(s, err);
    }
    if (res == CURLE_OK && status == 416) {
        snprintf(s->last_problem, sizeof s->last_problem, "the server refused the resume range (HTTP 416)");
        if (restart_from_zero(s) != 0)
            return write_error(s, errno, err);
        return retry_later(s, err);
    }
    if (res == CURLE_OK) {
        char what[300];
        snprintf(what, sizeof what, "downloading %s", path_of(s));
        hub_status_error(err, s->cfg->hub, &s->resp, what, path_of(s), s->errbody);
        if (!hub_status_retryable(status))
            return -1;
        snprintf(s->last_problem, sizeof s->last_problem, "%s", err->message);
        return retry_later(s, err);
    }
    if (curl_error_is_fatal(res))
        return error_set(err, "downloading %s: %s", path_of(s), curl_easy_strerror(res));
    snprintf(s->last_problem, sizeof s->last_problem, "%s", curl_easy_strerror(res));
    return retry_later(s, err);
}

int transfer_run(const TransferConfig *cfg, const TransferJob *jobs, size_t n, Error *err) {
    Slot *slots = calloc(n ? n : 1, sizeof *slots);
    CURLM *multi = curl_multi_init();
    if (!slots || !multi) {
        free(slots);
        if (multi)
            curl_multi_cleanup(multi);
        return error_set(err, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        slots[i].job = &jobs[i];
        slots[i].cfg = cfg;
        slots[i].fd = -1;
    }
    /* One connection per file rather than HTTP/2 streams sharing one. */
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    int rc = 0;
    size_t done = 0;
    while (rc == 0) {
        double now = progress_now();
        int active = 0;
        double next_start = now + 0.2;
        done = 0;
        for (size_t i = 0; i < n; i++)
            active += slots[i].state == SLOT_ACTIVE;
        for (size_t i = 0; i < n && rc == 0; i++) {
            Slot *s = &slots[i];
            if (s->state == SLOT_PENDING && active < cfg->parallel && s->not_before <= now) {
                rc = start_attempt(s, multi, err);
                active += s->state == SLOT_ACTIVE;
            }
            if (s->state == SLOT_PENDING && s->not_before > now && s->not_before < next_start)
                next_start = s->not_before;
            done += s->state == SLOT_DONE;
        }
        if (rc != 0 || done == n)
            break;
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while (rc == 0 && (msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            Slot *s = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            rc = on_done(s, multi, msg->data.result, err);
        }
        progress_update(cfg->progress, active);
        int wait_ms = (int)((next_start - progress_now()) * 1000);
        if (rc == 0 && running > 0)
            curl_multi_poll(multi, NULL, 0, wait_ms > 0 ? wait_ms : 0, NULL);
        else if (rc == 0 && wait_ms > 0 && active == 0)
            usleep((useconds_t)wait_ms * 1000);
    }
    for (size_t i = 0; i < n; i++) {
        if (slots[i].easy)
            end_attempt(&slots[i], multi);
        close_part(&slots[i]); /* .part files stay: the next run resumes them */
    }
    curl_multi_cleanup(multi);
    free(slots);
    return rc;
}
