/* `medgemma tokenize`: stdin text -> JSON array of token ids (API.md), plus a
 * line mode for tests (--jsonl) and the reverse direction (--decode). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "tokenizer/json_text.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: medgemma tokenize --tokenizer FILE [--no-bos] [--jsonl | --decode [--skip-special]]\n"
               "Reads stdin and writes token ids of the Gemma 3 tokenizer (byte-exact with Hugging Face\n"
               "tokenizers).\n"
               "  --tokenizer FILE  tokenizer.json, tokenizer.json.xz (unpacked to a temporary file), or a\n"
               "                    model directory holding tokenizer.json\n"
               "  --no-bos          do not prepend <bos> (HF add_special_tokens=False)\n"
               "  --jsonl           each stdin line is a JSON string; each stdout line its ids\n"
               "  --decode          each stdin line is a JSON array of ids; each stdout line the decoded\n"
               "                    text as a JSON string (as HF decode)\n"
               "  --skip-special    with --decode: drop special tokens (HF skip_special_tokens=True)\n"
               "  --time            print load_ms, work_ms (wall), load_cpu_ms, work_cpu_ms, bytes, ids as\n"
               "                    JSON on stderr (load: tokenizer.json; work: inside encode/decode calls,\n"
               "                    without the JSON reading and writing around them)\n"
               "Without --jsonl/--decode, all of stdin is one text and the output one JSON array.\n"
               "Exit status: 0 success, 1 bad input or tokenizer file (message on stderr), 2 usage.\n");
}

/* Unpacks path.xz with the xz program into a temporary file; returns its
 * malloc'd name (the caller unlinks it), or NULL. */
static char *unpack_xz(const char *path) {
    const char *dir = getenv("TMPDIR");
    if (!dir)
        dir = "/tmp";
    size_t n = strlen(dir) + 40;
    char *name = malloc(n);
    if (!name)
        return NULL;
    snprintf(name, n, "%s/medgemma-tokenizer-XXXXXX", dir);
    int fd = mkstemp(name);
    if (fd < 0) {
        fprintf(stderr, "tokenize: cannot create a temporary file in %s: %s\n", dir, strerror(errno));
        free(name);
        return NULL;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        execlp("xz", "xz", "-dc", "--", path, (char *)NULL);
        fprintf(stderr, "tokenize: cannot run xz to unpack %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(fd);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tokenize: unpacking %s with xz failed\n", path);
        unlink(name);
        free(name);
        return NULL;
    }
    return name;
}

/* path: a tokenizer.json, a tokenizer.json.xz, or a model directory. */
static int load(const char *path, Tokenizer **t) {
    Error err;
    char in_dir[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(in_dir, sizeof in_dir, "%s/tokenizer.json", path);
        path = in_dir;
    }
    size_t n = strlen(path);
    int xz = n > 3 && !strcmp(path + n - 3, ".xz");
    char *tmp = xz ? unpack_xz(path) : NULL;
    if (xz && !tmp)
        return -1;
    int rc = tokenizer_load(t, tmp ? tmp : path, &err);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    if (rc)
        fprintf(stderr, "tokenize: %s\n", err.message);
    return rc;
}

static double clock_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Time spent inside tokenizer_encode/decode (not JSON in and out), for --time. */
static double work_wall_ms, work_cpu_ms;
static size_t total_ids; /* ids produced by encoding */
typedef struct {
    double wall, cpu;
} Stopwatch;
static Stopwatch watch_start(void) {
    return (Stopwatch){clock_ms(CLOCK_MONOTONIC), clock_ms(CLOCK_PROCESS_CPUTIME_ID)};
}
static void watch_stop(Stopwatch w) {
    work_wall_ms += clock_ms(CLOCK_MONOTONIC) - w.wall;
    work_cpu_ms += clock_ms(CLOCK_PROCESS_CPUTIME_ID) - w.cpu;
}

static char *read_all(FILE *f, size_t *len) {
    JsonBuf b = {0};
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (json_buf_append(&b, chunk, got)) {
            free(b.data);
            return NULL;
        }
    if (!b.data && json_buf_append(&b, "", 0))
        return NULL;
    *len = b.len;
    return b.data;
}

static int write_ids(JsonBuf *out, const int32_t *ids, size_t n) {
    int rc = json_buf_append(out, "[", 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char num[16];
        int k = snprintf(num, sizeof num, i ? ",%d" : "%d", ids[i]);
        rc = json_buf_append(out, num, (size_t)k);
    }
    return rc || json_buf_append(out, "]\n", 2);
}

/* --jsonl: one JSON string per line -> one id array per line. */
static int encode_line(const Tokenizer *t, const char *line, size_t n, size_t line_no, int bos,
                       JsonBuf *out) {
    char *text = malloc(n + 1);
    size_t text_len = 0;
    const char *end = line + n;
    const char *p = text ? json_string_read(json_skip_ws(line, end), end, text, n + 1, &text_len) : NULL;
    if (!p || json_skip_ws(p, end) != end) {
        fprintf(stderr, "tokenize: stdin line %zu is not one JSON string\n", line_no);
        free(text);
        return -1;
    }
    int32_t *ids;
    size_t n_ids;
    Error err;
    Stopwatch w = watch_start();
    int rc = tokenizer_encode(t, text, text_len, bos, &ids, &n_ids, &err);
    watch_stop(w);
    total_ids += rc == 0 ? n_ids : 0;
    free(text);
    if (rc) {
        fprintf(stderr, "tokenize: stdin line %zu: %s\n", line_no, err.message);
        return -1;
    }
    rc = write_ids(out, ids, n_ids);
    free(ids);
    return rc;
}

/* --decode: one JSON array of ids per line -> one JSON string per line. */
static int decode_line(const Tokenizer *t, const char *line, size_t n, size_t line_no, int skip,
                       JsonBuf *out) {
    int32_t *ids = malloc((n / 2 + 1) * sizeof *ids);
    size_t n_ids = 0;
    const char *end = line + n, *p = json_skip_ws(line, end);
    int ok = ids && p < end && *p == '[';
    if (ok) {
        p = json_skip_ws(p + 1, end);
        if (p < end && *p == ']')
            p++;
        else
            for (;;) {
                char *num_end;
                long v = strtol(p, &num_end, 10);
                if (num_end == p || num_end > end || v < INT32_MIN || v > INT32_MAX) {
                    ok = 0;
                    break;
                }
                ids[n_ids++] = (int32_t)v;
                p = json_skip_ws(num_end, end);
                if (p < end && *p == ',') {
                    p = json_skip_ws(p + 1, end);
                    continue;
                }
                ok = p < end && *p == ']';
                p++;
                break;
            }
    }
    if (!ok || json_skip_ws(p, end) != end) {
        fprintf(stderr, "tokenize: stdin line %zu is not a JSON array of integer ids\n", line_no);
        free(ids);
        return -1;
    }
    char *text;
    size_t len;
    Error err;
    Stopwatch w = watch_start();
    int rc = tokenizer_decode(t, ids, n_ids, skip, &text, &len, &err);
    watch_stop(w);
    free(ids);
    if (rc) {
        fprintf(stderr, "tokenize: stdin line %zu: %s\n", line_no, err.message);
        return -1;
    }
    rc = json_string_write(out, text, len) || json_buf_append(out, "\n", 1);
    free(text);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int bos = 1, jsonl = 0, decode = 0, skip = 0, timing = 0;
    static const struct option longopts[] = {
        {"tokenizer", required_argument, 0, 't'},
        {"no-bos", no_argument, 0, 'n'},
        {"jsonl", no_argument, 0, 'j'},
        {"decode", no_argument, 0, 'd'},
        {"skip-special", no_argument, 0, 's'},
        {"time", no_argument, 0, 'T'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            path = optarg;
            break;
        case 'n':
            bos = 0;
            break;
        case 'j':
            jsonl = 1;
            break;
        case 'd':
            decode = 1;
            break;
        case 's':
            skip = 1;
            break;
        case 'T':
            timing = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind < argc || (jsonl && decode) || (skip && !decode)) {
        fprintf(stderr, "tokenize: %s\n",
                !path             ? "--tokenizer FILE is required"
                : optind < argc   ? "unexpected argument (the text comes on stdin)"
                : jsonl && decode ? "--jsonl and --decode exclude each other"
                                  : "--skip-special goes with --decode");
        usage(stderr);
        return 2;
    }
    size_t len = 0;
    char *input = read_all(stdin, &len);
    Tokenizer *t;
    double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
    if (load(path, &t)) {
        free(input);
        return 1;
    }
    double t1 = clock_ms(CLOCK_MONOTONIC), c1 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
    JsonBuf out = {0};
    int rc = input ? 0 : -1;
    if (!input)
        fprintf(stderr, "tokenize: cannot read stdin (out of memory)\n");
    if (rc == 0 && !jsonl && !decode) {
        int32_t *ids;
        size_t n_ids;
        Error err;
        Stopwatch w = watch_start();
        rc = tokenizer_encode(t, input, len, bos, &ids, &n_ids, &err);
        watch_stop(w);
        if (rc)
            fprintf(stderr, "tokenize: stdin: %s\n", err.message);
        else
            rc = write_ids(&out, ids, n_ids), total_ids = n_ids, free(ids);
    } else if (rc == 0) {
        size_t line_no = 0;
        for (const char *p = input, *end = input + len; rc == 0 && p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl : end;
            line_no++;
            rc = decode ? decode_line(t, p, (size_t)(stop - p), line_no, skip, &out)
                        : encode_line(t, p, (size_t)(stop - p), line_no, bos, &out);
            p = nl ? nl + 1 : end;
        }
    }
    if (timing)
        fprintf(stderr,
                "{\"load_ms\": %.2f, \"work_ms\": %.2f, \"load_cpu_ms\": %.2f, \"work_cpu_ms\": %.2f, "
                "\"bytes\": %zu, \"ids\": %zu}\n",
                t1 - t0, work_wall_ms, c1 - c0, work_cpu_ms, len, total_ids);
    if (rc == 0 && out.len && fwrite(out.data, 1, out.len, stdout) != out.len)
        rc = -1;
    free(out.data);
    free(input);
    tokenizer_free(t);
    return rc ? 1 : 0;
}
