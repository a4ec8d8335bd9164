/* Error messages; see error.h. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#undef error_set /* the analyzer-only macros of error.h */
#undef error_prefix

int error_set(Error *err, const char *fmt, ...) {
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int error_prefix(Error *err, const char *fmt, ...) {
    if (!err)
        return -1;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* message = prefix + ": " + old message, cut to fit */
    size_t cap = sizeof err->message - 1;
    size_t plen = strlen(prefix) + 2;
    size_t old_len = strnlen(err->message, cap);
    if (plen > cap)
        plen = cap;
    if (old_len > cap - plen)
        old_len = cap - plen;
    memmove(err->message + plen, err->message, old_len);
    memcpy(err->message, prefix, plen - 2);
    memcpy(err->message + plen - 2, ": ", 2);
    err->message[plen + old_len] = 0;
    return -1;
}

_Noreturn void panic_at(const char *file, int line, const char *msg) {
    fprintf(stderr, "internal error at %s:%d: %s\n", file, line, msg);
    abort();
}
