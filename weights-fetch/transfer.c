/* weights-fetch: parallel, resumable, verified downloads; see transfer.h.
 *
 * A file is one or more pieces (piece_state.h); each piece is one Range
 * request at a time that moves PENDING -> ACTIVE (a curl transfer in
 * flight) -> PENDING (waiting to retry) ... -> DONE. Bytes go to the .part
 * file with pwrite at start + have, so a retry asks for the rest of the
 * piece only.
 *
 * A one-piece file (the usual case) is hashed as bytes arrive, so its
 * checksum is ready with the last byte. A file cut into pieces is hashed by
 * reading the .part back once all pieces are in. Until a server has
 * answered one Range request of a file with 206, only one piece of that
 * file is in flight; a 200 instead turns the file into one piece. */
#include "weights-fetch/transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weights-fetch/piece_state.h"

/* .pieces is rewritten after this much new data or this long with new data. */
#define CHECKPOINT_BYTES ((int64_t)64 << 20)
#define CHECKPOINT_SECONDS 1.0

enum { PIECE_PENDING, PIECE_ACTIVE, PIECE_DONE };
enum { BODY_UNDECIDED, BODY_FILE, BODY_ERROR };
enum { ABORT_NONE, ABORT_WRITE, ABORT_RANGE, ABORT_TOO_LONG, ABORT_NO_RANGES };

typedef struct FileState FileState;

typedef struct {
    FileState *file;
    PieceRange *range; /* in file->layout: start, end, have */
    int state;
    int64_t attempt_start; /* range->have when the current attempt began */
    int failures;          /* consecutive attempts that added no byte */
    double not_before;     /* earliest start of the next attempt */
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
} Piece;

struct FileState {
    const TransferJob *job;
    const TransferConfig *cfg;
    CURLM *multi;
    int fd; /* the .part file; -1 until first started */
    PieceLayout layout;
    Piece pieces[PIECES_MAX];
    int ranges_ok;          /* a Range request of this file got 206 this run */
    int64_t checkpoint_at;  /* layout `have` total when .pieces was last written */
    double checkpoint_time; /* and when */
    char pieces_path[4200]; /* <part>.pieces */
    Hasher hasher;          /* one-piece files: running hash of the .part */
    int hasher_ready;
    int checksum_failures;
    int done;
};

static const char *path_of(const FileState *f) {
    return f->job->file->path;
}
static int multi_piece(const FileState *f) {
    return f->layout.count > 1;
}

/* write(2) at an offset until all of buf is out. */
static int pwrite_all(int fd, const char *buf, size_t len, int64_t offset) {
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
        offset += n;
    }
    return 0;
}

static void end_attempt(Piece *p, CURLM *multi) {
    curl_multi_remove_handle(multi, p->easy);
    curl_easy_cleanup(p->easy);
    curl_slist_free_all(p->headers);
    p->easy = NULL;
    p->headers = NULL;
}

/* Makes the .pieces file match the layout (after the data is on disk). */
static int checkpoint(FileState *f) {
    if (!multi_piece(f))
        return 0;
    if (fdatasync(f->fd) != 0 || piece_layout_save(&f->layout, f->pieces_path, f->job->file->size) != 0)
        return -1;
    f->checkpoint_at = piece_layout_have(&f->layout);
    f->checkpoint_time = progress_now();
    return 0;
}

/* Stops every transfer of the file except `keep` (the caller's own). */
static void stop_pieces(FileState *f, const Piece *keep) {
    for (int i = 0; i < PIECES_MAX; i++) {
        Piece *q = &f->pieces[i];
        if (q != keep && q->easy)
            end_attempt(q, f->multi);
        if (q != keep)
            q->state = PIECE_PENDING;
    }
}

/* Forgets every byte of the file (they were wrong): empty .part, zero hash.
 * `keep` is a piece whose transfer goes on (from its write callback). */
static int restart_file(FileState *f, const Piece *keep) {
    f->cfg->progress->bytes_done -= piece_layout_have(&f->layout);
    stop_pieces(f, keep);
    for (int i = 0; i < f->layout.count; i++) {
        f->layout.r[i].have = 0;
        f->pieces[i].attempt_start = 0;
    }
    if (ftruncate(f->fd, 0) != 0 || checkpoint(f) != 0)
        return -1;
    return f->hasher_ready ? hasher_reset(&f->hasher, NULL) : 0;
}

/* The server ignores Range: one piece from byte 0 from now on. The .part is
 * emptied before .pieces goes, so a .part without .pieces stays a prefix. */
static int make_one_piece(FileState *f, Error *err) {
    f->cfg->progress->bytes_done -= piece_layout_have(&f->layout);
    stop_pieces(f, NULL);
    if (ftruncate(f->fd, 0) != 0)
        return error_set(err, "cannot truncate %s: %s", f->job->paths->part_path, local_write_problem(errno));
    unlink(f->pieces_path);
    piece_layout_split(&f->layout, f->job->file->size, 0);
    f->pieces[0].attempt_start = 0;
    if (hasher_init(&f->hasher, f->job->file->hash_kind, f->job->file->size, err) != 0)
        return -1;
    f->hasher_ready = 1;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
    Piece *p = userdata;
    FileState *f = p->file;
    PieceRange *r = p->range;
    size_t len = size * n;
    if (p->body == BODY_UNDECIDED) {
        long status = p->resp.status;
        if (status == 206 && p->resp.range_start == r->start + r->have) {
            p->body = BODY_FILE;
            f->ranges_ok = 1;
        } else if (status == 206) {
            p->abort_reason = ABORT_RANGE; /* a range we did not ask for */
            return 0;
        } else if (status == 200 && multi_piece(f)) {
            p->abort_reason = ABORT_NO_RANGES;
            return 0;
        } else if (status == 200) {
            /* The server ignored the Range header: take the whole file again. */
            if (r->have > 0 && restart_file(f, p) != 0) {
                p->abort_reason = ABORT_WRITE;
                p->write_errno = errno;
                return 0;
            }
            p->body = BODY_FILE;
        } else {
            p->body = BODY_ERROR;
        }
    }
    if (p->body == BODY_ERROR) {
        size_t room = sizeof p->errbody - 1 - p->errbody_len;
        size_t k = len < room ? len : room;
        memcpy(p->errbody + p->errbody_len, data, k);
        p->errbody_len += k;
        p->errbody[p->errbody_len] = '\0';
        return len;
    }
    if (r->have + (int64_t)len > r->end - r->start) {
        p->abort_reason = ABORT_TOO_LONG;
        return 0;
    }
    if (pwrite_all(f->fd, data, len, r->start + r->have) != 0) {
        p->abort_reason = ABORT_WRITE;
        p->write_errno = errno;
        return 0;
    }
    if (!multi_piece(f))
        hasher_update(&f->hasher, data, len);
    r->have += (int64_t)len;
    f->cfg->progress->bytes_done += (int64_t)len;
    return len;
}

/* Opens the .part file and picks up what earlier runs left (first start
 * only): a .pieces layout, or a plain prefix that is hashed now. */
static int open_file(FileState *f, Error *err) {
    const HubFile *hf = f->job->file;
    const char *part = f->job->paths->part_path;
    if (local_mkdirs(part, 1, err) != 0)
        return -1;
    int64_t existing = local_file_size(part);
    if (existing >= 0 && piece_layout_load(&f->layout, f->pieces_path, hf->size) == 0) {
        f->fd = open(part, O_WRONLY | O_CLOEXEC);
    } else {
        unlink(f->pieces_path);
        if (existing > hf->size)
            existing = 0;
        piece_layout_split(&f->layout, hf->size, existing > 0 ? 0 : f->cfg->piece_bytes);
        f->layout.r[0].have = existing > 0 ? existing : 0;
        f->fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC | (existing > 0 ? 0 : O_TRUNC), 0644);
    }
    if (f->fd < 0)
        return error_set(err, "cannot open %s: %s", part, local_write_problem(errno));
    for (int i = 0; i < f->layout.count; i++) {
        Piece *p = &f->pieces[i];
        p->file = f;
        p->range = &f->layout.r[i];
        p->state = p->range->have == p->range->end - p->range->start ? PIECE_DONE : PIECE_PENDING;
    }
    if (multi_piece(f)) {
        if (checkpoint(f) != 0) /* .pieces exists before the first new byte */
            return error_set(err, "cannot write %s: %s", f->pieces_path, local_write_problem(errno));
    } else {
        if (hasher_init(&f->hasher, hf->hash_kind, hf->size, err) != 0)
            return -1;
        f->hasher_ready = 1;
        if (f->layout.r[0].have > 0 &&
            hasher_update_from_file(&f->hasher, part, f->layout.r[0].have, err) != 0)
            return -1;
    }
    int64_t have = piece_layout_have(&f->layout);
    if (have > 0)
        progress_message(f->cfg->progress, "resuming %s at %" PRId64 " of %" PRId64 " bytes", hf->path, have,
                         hf->size);
    else if (multi_piece(f))
        progress_message(f->cfg->progress, "%s: %d pieces downloaded at once", hf->path, f->layout.count);
    return 0;
}

static void close_file(FileState *f) {
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (f->hasher_ready)
        hasher_free(&f->hasher);
    f->hasher_ready = 0;
}

static int is_disk_full(int e) {
    return e == ENOSPC || e == EDQUOT || e == EFBIG;
}

static int write_error(FileState *f, int e, Error *err) {
    const HubFile *hf = f->job->file;
    if (is_disk_full(e))
        return error_set(err,
                         "disk full while writing %s (%s): free at least %" PRId64
                         " bytes there, then run again; the download resumes",
                         hf->path, f->job->paths->part_path, hf->size - piece_layout_have(&f->layout));
    return error_set(err, "cannot write %s: %s", f->job->paths->part_path, local_write_problem(e));
}

/* The downloaded bytes are wrong (`got` describes how): start the file
 * over, or report it after checksum_attempts downloads. */
static int checksum_failed(FileState *f, const char *got, Error *err) {
    const HubFile *hf = f->job->file;
    const char *algo = hf->hash_kind == HASH_SHA256 ? "sha256" : "git sha1";
    f->checksum_failures++;
    if (f->checksum_failures >= f->cfg->checksum_attempts)
        return error_set(err,
                         "checksum mismatch for %s after %d downloads: expected %s %s, %s. The bytes are "
                         "corrupted in transit or the mirror (%s) serves a different file; retry later",
                         hf->path, f->checksum_failures, algo, hf->hash, got, f->cfg->hub->endpoint);
    progress_message(f->cfg->progress,
                     "checksum mismatch for %s (expected %s %.12s..., %s); downloading it again", hf->path,
                     algo, hf->hash, got);
    if (restart_file(f, NULL) != 0)
        return write_error(f, errno, err);
    return 0;
}

/* Every piece is in: compare checksums, then move the file into place. */
static int finish_file(FileState *f, Error *err) {
    const HubFile *hf = f->job->file;
    const LocalPaths *lp = f->job->paths;
    if (fsync(f->fd) != 0)
        return write_error(f, errno, err);
    if (multi_piece(f)) { /* hash the whole .part now */
        if (hasher_init(&f->hasher, hf->hash_kind, hf->size, err) != 0)
            return -1;
        f->hasher_ready = 1;
        Error read_err;
        if (hasher_update_from_file(&f->hasher, lp->part_path, hf->size, &read_err) != 0) {
            hasher_free(&f->hasher); /* e.g. the .part was cut short behind our back */
            f->hasher_ready = 0;
            return checksum_failed(f, read_err.message, err);
        }
    }
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    hasher_final_hex(&f->hasher, hex);
    if (multi_piece(f)) {
        hasher_free(&f->hasher);
        f->hasher_ready = 0;
    }
    if (strcmp(hex, hf->hash) != 0) {
        char got[200];
        snprintf(got, sizeof got, "got %s", hex);
        return checksum_failed(f, got, err);
    }
    close_file(f);
    if (local_mkdirs(lp->final_path, 1, err) != 0)
        return -1;
    if (rename(lp->part_path, lp->final_path) != 0)
        return error_set(err, "cannot move %s to %s: %s", lp->part_path, lp->final_path,
                         local_write_problem(errno));
    unlink(f->pieces_path);
    if (local_record_write(lp, hf, err) != 0)
        return -1;
    f->done = 1;
    f->cfg->progress->files_done++;
    progress_message(f->cfg->progress, "done %s (%" PRId64 " bytes, %s verified)", hf->path, hf->size,
                     hf->hash_kind == HASH_SHA256 ? "sha256" : "git sha1");
    return 0;
}

static int all_pieces_done(const FileState *f) {
    for (int i = 0; i < f->layout.count; i++)
        if (f->pieces[i].state != PIECE_DONE)
            return 0;
    return 1;
}

/* Starts the next attempt of a piece: a Range request for what it lacks. */
static int start_attempt(Piece *p, CURLM *multi, Error *err) {
    FileState *f = p->file;
    const HubCtx *h = f->cfg->hub;
    PieceRange *r = p->range;
    char *repo = hub_url_escape(h->repo, 1);
    char *path = hub_url_escape(path_of(f), 1);
    size_t url_len = strlen(h->endpoint) + (repo ? strlen(repo) : 0) + (path ? strlen(path) : 0) + 100;
    char *url = malloc(url_len);
    int rc = 0;
    if (!repo || !path || !url || !(p->easy = curl_easy_init())) {
        rc = error_set(err, "out of memory");
    } else {
        snprintf(url, url_len, "%s/%s/resolve/%s/%s", h->endpoint, repo, f->cfg->commit, path);
        hub_easy_setup(p->easy, h, url, &p->resp, &p->headers);
        curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, p);
        curl_easy_setopt(p->easy, CURLOPT_PRIVATE, p);
        curl_easy_setopt(p->easy, CURLOPT_BUFFERSIZE, 256L * 1024);
        char range[64];
        if (multi_piece(f)) /* "start-end", both inclusive */
            snprintf(range, sizeof range, "%" PRId64 "-%" PRId64, r->start + r->have, r->end - 1);
        else
            snprintf(range, sizeof range, "%" PRId64 "-", r->have);
        if (multi_piece(f) || r->have > 0)
            curl_easy_setopt(p->easy, CURLOPT_RANGE, range); /* copied by libcurl */
        p->body = BODY_UNDECIDED;
        p->abort_reason = ABORT_NONE;
        p->errbody_len = 0;
        p->errbody[0] = '\0';
        p->attempt_start = r->have;
        curl_multi_add_handle(multi, p->easy);
        p->state = PIECE_ACTIVE;
    }
    free(url);
    free(path);
    free(repo);
    return rc;
}

/* A transfer failed in a way worth retrying: wait a little, or give up
 * after max_attempts tries that brought no new byte. */
static int retry_later(Piece *p, Error *err) {
    if (p->range->have > p->attempt_start)
        p->failures = 0;
    else
        p->failures++;
    if (p->failures >= p->file->cfg->max_attempts)
        return error_set(err, "giving up on %s after %d attempts without progress: %s", path_of(p->file),
                         p->failures, p->last_problem);
    double delay = 0.2;
    for (int i = 0; i < p->failures && delay < 8; i++)
        delay *= 2;
    p->not_before = progress_now() + delay;
    p->state = PIECE_PENDING;
    progress_message(p->file->cfg->progress, "%s: %s; retrying from byte %" PRId64, path_of(p->file),
                     p->last_problem, p->range->start + p->range->have);
    return 0;
}

static int curl_error_is_fatal(CURLcode res) {
    return res == CURLE_URL_MALFORMAT || res == CURLE_UNSUPPORTED_PROTOCOL ||
           res == CURLE_TOO_MANY_REDIRECTS || res == CURLE_OUT_OF_MEMORY;
}

/* This piece's bytes were wrong (not the range asked for): drop them. */
static int forget_piece(Piece *p) {
    p->file->cfg->progress->bytes_done -= p->range->have;
    p->range->have = 0;
    p->attempt_start = 0;
    return multi_piece(p->file) ? checkpoint(p->file) : restart_file(p->file, NULL);
}

/* Decides what a finished transfer means. */
static int on_done(Piece *p, CURLM *multi, CURLcode res, Error *err) {
    FileState *f = p->file;
    end_attempt(p, multi);
    long status = p->resp.status;
    p->state = PIECE_PENDING;
    if (p->abort_reason == ABORT_WRITE)
        return write_error(f, p->write_errno, err);
    if (p->abort_reason == ABORT_NO_RANGES) {
        progress_message(f->cfg->progress, "%s: the server ignores byte ranges; downloading it in one piece",
                         path_of(f));
        return make_one_piece(f, err);
    }
    if (p->abort_reason == ABORT_RANGE) {
        snprintf(p->last_problem, sizeof p->last_problem, "the server answered a different byte range");
        if (forget_piece(p) != 0)
            return write_error(f, errno, err);
        return retry_later(p, err);
    }
    if (p->abort_reason == ABORT_TOO_LONG) {
        char got[100];
        snprintf(got, sizeof got, "got more than the %" PRId64 " bytes listed", f->job->file->size);
        return checksum_failed(f, got, err);
    }
    if (res == CURLE_OK && (status == 200 || status == 206)) {
        if (p->range->have == p->range->end - p->range->start) {
            p->state = PIECE_DONE;
            if (checkpoint(f) != 0)
                return write_error(f, errno, err);
            return all_pieces_done(f) ? finish_file(f, err) : 0;
        }
        snprintf(p->last_problem, sizeof p->last_problem,
                 "the connection ended at byte %" PRId64 " of %" PRId64, p->range->start + p->range->have,
                 f->job->file->size);
        return retry_later(p, err);
    }
    if (res == CURLE_OK && status == 416) {
        snprintf(p->last_problem, sizeof p->last_problem, "the server refused the resume range (HTTP 416)");
        if (forget_piece(p) != 0)
            return write_error(f, errno, err);
        return retry_later(p, err);
    }
    if (res == CURLE_OK) {
        char what[300];
        snprintf(what, sizeof what, "downloading %s", path_of(f));
        hub_status_error(err, f->cfg->hub, &p->resp, what, path_of(f), p->errbody);
        if (!hub_status_retryable(status))
            return -1;
        snprintf(p->last_problem, sizeof p->last_problem, "%s", err->message);
        return retry_later(p, err);
    }
    if (curl_error_is_fatal(res))
        return error_set(err, "downloading %s: %s", path_of(f), curl_easy_strerror(res));
    snprintf(p->last_problem, sizeof p->last_problem, "network error (%s)", curl_easy_strerror(res));
    return retry_later(p, err);
}

static void pieces_path(char *out, size_t cap, const TransferJob *job) {
    snprintf(out, cap, "%s.pieces", job->paths->part_path);
}

int64_t transfer_bytes_on_disk(const TransferJob *job) {
    char path[4200];
    pieces_path(path, sizeof path, job);
    int64_t part = local_file_size(job->paths->part_path);
    PieceLayout l;
    if (part >= 0 && piece_layout_load(&l, path, job->file->size) == 0)
        return piece_layout_have(&l);
    return part > 0 && part <= job->file->size ? part : 0;
}

/* Starts what may start now: pending pieces whose wait is over, while fewer
 * than `parallel` are in flight; one per file until its server showed it
 * honours Range. Files are opened (and finished, when already whole) here. */
static int start_ready(FileState *files, size_t n, CURLM *multi, int *active, double now, double *next_start,
                       Error *err) {
    for (size_t i = 0; i < n; i++) {
        FileState *f = &files[i];
        if (f->done)
            continue;
        if (f->fd < 0) {
            if (*active >= f->cfg->parallel)
                return 0;
            if (open_file(f, err) != 0)
                return -1;
            if (all_pieces_done(f) && finish_file(f, err) != 0)
                return -1;
            if (f->done)
                continue;
        }
        int in_flight = 0;
        for (int k = 0; k < f->layout.count; k++)
            in_flight += f->pieces[k].state == PIECE_ACTIVE;
        for (int k = 0; k < f->layout.count && *active < f->cfg->parallel; k++) {
            Piece *p = &f->pieces[k];
            if (p->state != PIECE_PENDING)
                continue;
            if (p->not_before > now) {
                if (p->not_before < *next_start)
                    *next_start = p->not_before;
                continue;
            }
            if (in_flight > 0 && !f->ranges_ok)
                break;
            if (start_attempt(p, multi, err) != 0)
                return -1;
            in_flight++;
            (*active)++;
        }
    }
    return 0;
}

int transfer_run(const TransferConfig *cfg, const TransferJob *jobs, size_t n, Error *err) {
    FileState *files = calloc(n ? n : 1, sizeof *files);
    CURLM *multi = curl_multi_init();
    if (!files || !multi) {
        free(files);
        if (multi)
            curl_multi_cleanup(multi);
        return error_set(err, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        files[i].job = &jobs[i];
        files[i].cfg = cfg;
        files[i].fd = -1;
        files[i].multi = multi;
        pieces_path(files[i].pieces_path, sizeof files[i].pieces_path, &jobs[i]);
    }
    /* One connection per piece rather than HTTP/2 streams sharing one. */
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    int rc = 0;
    for (;;) {
        double now = progress_now();
        double next_start = now + 0.2;
        int active = 0;
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < files[i].layout.count; k++)
                active += files[i].pieces[k].state == PIECE_ACTIVE;
        rc = start_ready(files, n, multi, &active, now, &next_start, err);
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += files[i].done;
        if (rc != 0 || done == n)
            break;
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while (rc == 0 && (msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            Piece *p = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&p);
            rc = on_done(p, multi, msg->data.result, err);
        }
        for (size_t i = 0; rc == 0 && i < n; i++) { /* remember the progress of pieces */
            FileState *f = &files[i];
            int64_t fresh = f->fd >= 0 && !f->done ? piece_layout_have(&f->layout) - f->checkpoint_at : 0;
            if (multi_piece(f) && fresh > 0 &&
                (fresh >= CHECKPOINT_BYTES || progress_now() - f->checkpoint_time >= CHECKPOINT_SECONDS) &&
                checkpoint(f) != 0)
                rc = write_error(f, errno, err);
        }
        if (rc != 0)
            break;
        progress_update(cfg->progress, active);
        int wait_ms = (int)((next_start - progress_now()) * 1000);
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, wait_ms > 0 ? wait_ms : 0, NULL);
        else if (wait_ms > 0 && active == 0)
            usleep((useconds_t)wait_ms * 1000);
    }
    for (size_t i = 0; i < n; i++) {
        stop_pieces(&files[i], NULL);
        if (files[i].fd >= 0 && !files[i].done && multi_piece(&files[i]))
            checkpoint(&files[i]); /* keep what arrived for the next run */
        close_file(&files[i]);     /* .part files stay: the next run resumes them */
    }
    curl_multi_cleanup(multi);
    free(files);
    return rc;
}
