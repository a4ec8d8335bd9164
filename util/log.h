/* JSON-lines logging on stdout, one object per line, read by Cloud Logging
 * ("severity" field). Never pass prompt text, images or answers here: they
 * are patient data. */
#ifndef UTIL_LOG_H
#define UTIL_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR } LogSeverity;

/* Sets the lowest severity printed (default LOG_INFO; env MEDGEMMA_LOG_LEVEL). */
void log_set_level(LogSeverity level);

/* Logs {"severity": ..., "message": <fmt...>} as one JSON line. */
void log_msg(LogSeverity severity, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs a line whose extra fields are given as ready JSON members, e.g.
 * log_fields(LOG_INFO, "request done", "\"status\":200,\"tokens\":12"). */
void log_fields(LogSeverity severity, const char *message, const char *json_members);

#endif
