/* weights-fetch: output-dir bookkeeping; see local_dir.h. */
#include "weights-fetch/local_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static char *join(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

int local_paths_init(LocalPaths *p, const char *dir, const char *repo_path, Error *err) {
    char *base = join(dir, "/", "");
    p->final_path = base ? join(base, repo_path, "") : NULL;
    char *parts = base ? join(base, LOCAL_STATE_DIR "/parts/", repo_path) : NULL;
    p->part_path = parts ? join(parts, ".part", "") : NULL;
    p->record_path = base ? join(base, LOCAL_STATE_DIR "/verified/", repo_path) : NULL;
    free(parts);
    free(base);
    if (!p->final_path || !p->part_path || !p->record_path) {
        local_paths_free(p);
        return error_set(err, "out of memory");
    }
    return 0;
}

void local_paths_free(LocalPaths *p) {
    free(p->final_path);
    free(p->part_path);
    free(p->record_path);
    memset(p, 0, sizeof *p);
}

int local_mkdirs(const char *path, int is_file_path, Error *err) {
    char *buf = strdup(path);
    if (!buf)
        return error_set(err, "out of memory");
    if (is_file_path) {
        char *slash = strrchr(buf, '/');
        if (!slash) {
            free(buf);
            return 0;
        }
        *slash = '\0';
    }
    int rc = 0;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                rc = error_set(err, "cannot create folder %s: %s", buf, local_write_problem(errno));
                break;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    struct stat st;
    if (rc == 0 && (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = error_set(err, "%s exists and is not a folder", buf);
    free(buf);
    return rc;
}

const char *local_write_problem(int e) {
    static _Thread_local char buf[320];
    const char *hint = "";
    if (e == EACCES || e == EPERM)
        hint =
            ": the user running weights-fetch cannot write there; fix the folder's owner or permissions, or "
            "pick another --out, then run again (the download resumes)";
    else if (e == EROFS)
        hint = ": the file system is read-only; pick another --out, then run again (the download resumes)";
    snprintf(buf, sizeof buf, "%s%s", strerror(e), hint);
    return buf;
}

int local_lock(const char *dir, Error *err) {
    char *state = join(dir, "/", LOCAL_STATE_DIR);
    char *lock = state ? join(state, "/lock", "") : NULL;
    int fd = -1;
    if (!lock) {
        error_set(err, "out of memory");
    } else if (local_mkdirs(state, 0, err) == 0) {
        fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            error_set(err, "cannot create %s: %s", lock, local_write_problem(errno));
        } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            error_set(err,
                      "another weights-fetch is downloading into %s (it holds %s); wait for it to finish",
                      dir, lock);
            close(fd);
            fd = -1;
        }
    }
    free(lock);
    free(state);
    return fd;
}

int64_t local_file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    return (int64_t)st.st_size;
}

int64_t local_free_bytes(const char *dir) {
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0)
        return -1;
    return (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
}

/* "v1 SIZE MTIME_S MTIME_NS INODE HASH" for the file as it is now. */
static int record_text(const char *final_path, const HubFile *f, char *out, size_t cap) {
    struct stat st;
    if (stat(final_path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    snprintf(out, cap, "v1 %lld %lld %ld %llu %s\n", (long long)st.st_size, (long long)st.st_mtim.tv_sec,
             (long)st.st_mtim.tv_nsec, (unsigned long long)st.st_ino, f->hash);
    return 0;
}

int local_record_write(const LocalPaths *p, const HubFile *f, Error *err) {
    char text[256];
    if (record_text(p->final_path, f, text, sizeof text) != 0)
        return error_set(err, "cannot stat %s: %s", p->final_path, strerror(errno));
    if (local_mkdirs(p->record_path, 1, err) != 0)
        return -1;
    char *tmp = join(p->record_path, ".tmp", "");
    if (!tmp)
        return error_set(err, "out of memory");
    FILE *fp = fopen(tmp, "w");
    int rc = 0;
    if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0 || rename(tmp, p->record_path) != 0)
        rc = error_set(err, "cannot write %s: %s", p->record_path, local_write_problem(errno));
    if (rc != 0 && fp)
        unlink(tmp);
    free(tmp);
    return rc;
}

int local_mark_complete(const char *dir, const char *text, Error *err) {
    char *path = join(dir, "/" LOCAL_STATE_DIR "/complete", "");
    if (!path)
        return error_set(err, "out of memory");
    int rc = 0;
    if (!text) {
        if (unlink(path) != 0 && errno != ENOENT)
            rc = error_set(err, "cannot remove %s: %s", path, local_write_problem(errno));
    } else {
        FILE *fp = fopen(path, "w");
        if (!fp || fprintf(fp, "%s\n", text) < 0 || fclose(fp) != 0)
            rc = error_set(err, "cannot write %s: %s", path, local_write_problem(errno));
    }
    free(path);
    return rc;
}

int local_dir_state(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int has_state = 0, has_other = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strcmp(e->d_name, LOCAL_STATE_DIR) == 0)
            has_state = 1;
        else
            has_other = 1;
    }
    closedir(d);
    if (!has_state)
        return has_other ? 3 : 0;
    char *mark = join(dir, "/" LOCAL_STATE_DIR "/complete", "");
    int complete = mark && local_file_size(mark) > 0;
    free(mark);
    return complete ? 2 : 1;
}

int local_file_is_complete(const LocalPaths *p, const HubFile *f) {
    if (local_file_size(p->final_path) != f->size)
        return 0;
    char want[256], have[256] = "";
    if (record_text(p->final_path, f, want, sizeof want) != 0)
        return 0;
    FILE *fp = fopen(p->record_path, "r");
    if (fp) {
        if (!fgets(have, sizeof have, fp))
            have[0] = '\0';
        fclose(fp);
    }
    if (strcmp(want, have) == 0)
        return 1;
    /* No or stale record (e.g. files copied in by hand): hash the file once. */
    Hasher h;
    if (hasher_init(&h, f->hash_kind, f->size, NULL) != 0)
        return 0;
    int ok = 0;
    if (hasher_update_from_file(&h, p->final_path, f->size, NULL) == 0) {
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        hasher_final_hex(&h, hex);
        ok = strcmp(hex, f->hash) == 0;
    }
    hasher_free(&h);
    if (ok)
        local_record_write(p, f, NULL);
    return ok;
}
