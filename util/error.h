/* Error reporting shared by every module.
 *
 * A function that can fail on input returns 0 on success and -1 on failure,
 * after filling an Error with a message the caller can show as it is
 * (file, tensor, field, byte offset: whatever names what was wrong).
 * Programmer errors (broken invariants) abort instead. */
#ifndef UTIL_ERROR_H
#define UTIL_ERROR_H

#include <stddef.h>

typedef struct {
    char message[512];
} Error;

/* Formats the message into err (when err is not NULL) and returns -1. */
int error_set(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an already set message; returns -1. */
int error_prefix(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __clang_analyzer__
/* clang-tidy's analyzer cannot see into error.c: these tell it that both
 * return -1, so it does not follow "succeeded" paths after a failure. */
#define error_set(...) (error_set(__VA_ARGS__), -1)
#define error_prefix(...) (error_prefix(__VA_ARGS__), -1)
#endif

/* Aborts with file and line for broken invariants, never for bad input. */
#define PANIC_IF(cond, msg)                                                                                  \
    do {                                                                                                     \
        if (cond)                                                                                            \
            panic_at(__FILE__, __LINE__, (msg));                                                             \
    } while (0)
_Noreturn void panic_at(const char *file, int line, const char *msg);

#endif
