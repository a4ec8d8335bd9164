/* Guards against mapped model files changing under the server; see map_guard.h. */
#include "engine/map_guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#define MAX_MAPPINGS 64

void map_guard_install(void);

typedef struct {
    atomic_int used; /* the handler reads a slot only once this is 1 */
    uintptr_t base;
    size_t size;
    char path[512];      /* as given */
    char path_json[512]; /* escaped for a JSON string, for the handler */
    dev_t dev;
    ino_t ino;
    off_t file_size;
    struct timespec mtime;
} Mapping;

static Mapping mappings[MAX_MAPPINGS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void escape_json(const char *s, char *out, size_t size) {
    size_t o = 0;
    for (; *s && o + 2 < size; s++) {
        unsigned char c = (unsigned char)*s;
        out[o++] = (c == '"' || c == '\\' || c < 0x20) ? '?' : (char)c;
    }
    out[o] = 0;
}

void map_guard_add(const void *base, size_t size, const char *path) {
    map_guard_install();
    struct stat st;
    if (stat(path, &st) != 0)
        memset(&st, 0, sizeof st);
    pthread_mutex_lock(&lock);
    int slot = -1;
    for (int i = 0; i < MAX_MAPPINGS && slot < 0; i++)
        if (!atomic_load(&mappings[i].used))
            slot = i;
    if (slot >= 0) {
        Mapping *m = &mappings[slot];
        m->base = (uintptr_t)base;
        m->size = size;
        snprintf(m->path, sizeof m->path, "%s", path);
        escape_json(path, m->path_json, sizeof m->path_json);
        m->dev = st.st_dev;
        m->ino = st.st_ino;
        m->file_size = st.st_size;
        m->mtime = st.st_mtim;
        atomic_store(&m->used, 1);
    }
    pthread_mutex_unlock(&lock);
    if (slot < 0)
        log_msg(LOG_WARNING, "map_guard: more than %d mapped files; %s is not guarded", MAX_MAPPINGS, path);
}

void map_guard_remove(const void *base) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_MAPPINGS; i++)
        if (atomic_load(&mappings[i].used) && mappings[i].base == (uintptr_t)base)
            atomic_store(&mappings[i].used, 0);
    pthread_mutex_unlock(&lock);
}

int map_guard_check(Error *err) {
    int rc = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_MAPPINGS && rc == 0; i++) {
        const Mapping *m = &mappings[i];
        if (!atomic_load(&m->used))
            continue;
        struct stat st;
        if (stat(m->path, &st) != 0) {
            rc = error_set(
                err, "%s is gone or unreadable under the running server; restart to load the model again",
                m->path);
        } else if (st.st_dev != m->dev || st.st_ino != m->ino) {
            rc = error_set(err, "%s was replaced under the running server; restart to load it", m->path);
        } else if (st.st_size != m->file_size) {
            rc = error_set(
                err,
                "%s changed size under the running server (%lld bytes, mapped %lld); reading it can "
                "fail, restart to load it",
                m->path, (long long)st.st_size, (long long)m->file_size);
        } else if (st.st_mtim.tv_sec != m->mtime.tv_sec || st.st_mtim.tv_nsec != m->mtime.tv_nsec) {
            rc = error_set(err, "%s was modified under the running server; restart to load it", m->path);
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ---- the SIGBUS handler: async-signal-safe calls only ---- */

static size_t put_str(char *buf, size_t o, size_t cap, const char *s) {
    while (*s && o + 1 < cap)
        buf[o++] = *s++;
    return o;
}

static size_t put_u64(char *buf, size_t o, size_t cap, uint64_t v, int hex) {
    char tmp[24];
    int n = 0;
    unsigned base = hex ? 16 : 10;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v && n < (int)sizeof tmp);
    if (hex)
        o = put_str(buf, o, cap, "0x");
    while (n > 0 && o + 1 < cap)
        buf[o++] = tmp[--n];
    return o;
}

static void on_sigbus(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    uintptr_t addr = (uintptr_t)info->si_addr;
    char line[1024];
    size_t cap = sizeof line - 2, o = 0;
    o = put_str(line, o, cap, "{\"severity\":\"CRITICAL\",\"message\":\"SIGBUS: ");
    const Mapping *hit = NULL;
    for (int i = 0; i < MAX_MAPPINGS; i++) {
        const Mapping *m = &mappings[i];
        if (atomic_load(&m->used) && addr >= m->base && addr - m->base < m->size)
            hit = m;
    }
    if (hit) {
        o = put_str(line, o, cap, "reading the model file ");
        o = put_str(line, o, cap, hit->path_json);
        o = put_str(line, o, cap, " at offset ");
        o = put_u64(line, o, cap, (uint64_t)(addr - hit->base), 0);
        o = put_str(line, o, cap,
                    " failed: the file shrank or changed under the running server, or its storage "
                    "failed a read");
    } else {
        o = put_str(line, o, cap, "a memory access at ");
        o = put_u64(line, o, cap, (uint64_t)addr, 1);
        o = put_str(line, o, cap, " outside the model files failed");
    }
    o = put_str(line, o, cap, "; exiting with status ");
    o = put_u64(line, o, cap, MAP_GUARD_EXIT_STATUS, 0);
    o = put_str(line, o, cap, " so the instance is restarted\",\"event\":\"sigbus\"}");
    line[o++] = '\n';
    ssize_t ignored = write(STDOUT_FILENO, line, o); /* where util/log writes */
    (void)ignored;
    _exit(MAP_GUARD_EXIT_STATUS);
}

void map_guard_install(void) {
    static atomic_int installed;
    if (atomic_exchange(&installed, 1))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
