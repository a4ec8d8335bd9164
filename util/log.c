/* JSON-lines logger; see log.h. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static LogSeverity min_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(LogSeverity level) {
    min_level = level;
}

static const char *severity_name(LogSeverity s) {
    switch (s) {
    case LOG_DEBUG:
        return "DEBUG";
    case LOG_INFO:
        return "INFO";
    case LOG_WARNING:
        return "WARNING";
    default:
        return "ERROR";
    }
}

/* Writes s as the inside of a JSON string. */
static void write_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void log_fields(LogSeverity severity, const char *message, const char *json_members) {
    if (severity < min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    fprintf(stdout, "{\"time\":\"%s.%03ldZ\",\"severity\":\"%s\",\"message\":\"", when, ts.tv_nsec / 1000000,
            severity_name(severity));
    write_escaped(stdout, message);
    fputc('"', stdout);
    if (json_members && *json_members)
        fprintf(stdout, ",%s", json_members);
    fputs("}\n", stdout);
    fflush(stdout);
    pthread_mutex_unlock(&log_lock);
}

void log_msg(LogSeverity severity, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fields(severity, buf, NULL);
}
