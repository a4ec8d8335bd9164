/* Request bodies -> JobInput, with every check that needs no model
 * (http/ owns this). Runs on the event-loop thread: JSON parsing, field
 * types and ranges, image counts, the chat layout. Images stay base64 here;
 * the worker decodes them (model.c), so a large body does not hold up the
 * loop. A failure fills a RequestError with the HTTP status (400), an error
 * type and a message that names the field but never echoes its value (it can
 * be patient data). */
#ifndef HTTP_REQUEST_H
#define HTTP_REQUEST_H

#include <stddef.h>

#include "http/job.h"

typedef struct {
    int status;
    char type[48];
    char message[512];
} RequestError;

typedef struct {
    int max_images;         /* images per request */
    int max_tokens_limit;   /* largest max_tokens accepted */
    int default_max_tokens; /* when the request names none */
    int vision;             /* 0: the model has no vision tower, images are refused */
} RequestLimits;

/* Fills out (zeroed first) from a JSON body for the endpoint. Returns 0, or
 * -1 with e filled and out freed. */
int request_parse(Endpoint endpoint, const char *body, size_t len, const RequestLimits *limits, JobInput *out,
                  RequestError *e);

#endif
