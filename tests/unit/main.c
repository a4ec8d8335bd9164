/* Runs the registered unit tests, each in a forked child; see test.h.
 * Usage: unit_tests [substring]   (runs the tests whose name contains it) */
#include "tests/unit/test.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 4096

typedef struct {
    const char *name;
    TestFn fn;
} TestCase;

static TestCase tests[MAX_TESTS];
static int n_tests;
static int failures; /* in the child: checks failed so far */
static int report_fd = -1;

void test_register(const char *name, TestFn fn) {
    if (n_tests < MAX_TESTS)
        tests[n_tests++] = (TestCase){name, fn};
}

static void report(const char *line) {
    if (write(report_fd, line, strlen(line)) < 0)
        perror("report");
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    char msg[1024], out[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(out, sizeof out, "F%s:%d: %s\n", file, line, msg);
    report(out);
    failures++;
}

void test_skip(const char *fmt, ...) {
    char msg[1024], out[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(out, sizeof out, "S%s\n", msg);
    report(out);
    exit(0);
}

static char tmpdir[256];
static pid_t runner_pid;

const char *test_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/medgemma-unit-%d", (int)runner_pid);
        mkdir(tmpdir, 0700);
    }
    return tmpdir;
}

/* Reads everything the child reported; returns a malloc'd string. */
static char *read_all(int fd) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (cap - len < 2) {
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (!grown)
                break;
            buf = grown;
        }
    }
    buf[len] = 0;
    return buf;
}

static int run_one(const TestCase *t) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        report_fd = fds[1];
        t->fn();
        exit(failures ? 1 : 0);
    }
    close(fds[1]);
    char *text = read_all(fds[0]);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);

    int failed = 0;
    const char *skip = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == 'F') {
            printf("FAIL %s: %s\n", t->name, line + 1);
            failed = 1;
        } else if (line[0] == 'S') {
            skip = line + 1;
        }
    }
    if (WIFSIGNALED(status)) {
        printf("FAIL %s: crashed with signal %d\n", t->name, WTERMSIG(status));
        failed = 1;
    } else if (WEXITSTATUS(status) != 0 && !failed) {
        printf("FAIL %s: exited with status %d\n", t->name, WEXITSTATUS(status));
        failed = 1;
    }
    if (!failed) {
        if (skip)
            printf("skip %s: %s\n", t->name, skip);
        else
            printf("ok %s\n", t->name);
    }
    free(text);
    fflush(stdout);
    return failed;
}

/* 1 when name contains one of the '|'-separated parts of list. */
static int name_matches(const char *name, const char *list) {
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, "|");
        char part[128];
        snprintf(part, sizeof part, "%.*s", (int)(n < sizeof part ? n : sizeof part - 1), p);
        if (n > 0 && strstr(name, part))
            return 1;
        p += n + (p[n] == '|');
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    runner_pid = getpid();
    int failed = 0;
    /* UNIT_TEST_SKIP: '|'-separated name parts to skip, each reported as a
     * skip with the reason in UNIT_TEST_SKIP_WHY (make test-tsan skips the
     * real 270M under ThreadSanitizer, minutes per token there). */
    const char *skip = getenv("UNIT_TEST_SKIP"), *why = getenv("UNIT_TEST_SKIP_WHY");
    /* UNIT_TEST_ONLY: '|'-separated name parts; other tests are not run (as with argv[1]). */
    const char *only = getenv("UNIT_TEST_ONLY");
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        if (only && *only && !name_matches(tests[i].name, only))
            continue;
        int skipped = skip && *skip && name_matches(tests[i].name, skip);
        if (skipped) {
            printf("skip %s: UNIT_TEST_SKIP (%s)\n", tests[i].name, why ? why : "no reason given");
            fflush(stdout);
            continue;
        }
        failed += run_one(&tests[i]);
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/medgemma-unit-%d", (int)runner_pid);
    struct stat st;
    if (stat(tmpdir, &st) == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return failed ? 1 : 0;
}
