/* Request bodies -> JobInput, with every check that needs no model
 * (http/ owns this). Runs on the event-loop thread: JSON parsing, field
 * types and ranges, image counts, the chat layout. Images stay base64 here;
 * the worker decodes them (model.c), so a large body does not hold up the
 * loop. A failure fills a RequestError with the HTTP status (400), an error
 * type and a message that names the field but never echoes its value (it can
 * be patient data).
 *
 * This header and request.c need no h2o: the request types live here (job.h
 * adds the queue), so the fuzz target tests/fuzz/fuzz_request.c links them alone. */
#ifndef HTTP_REQUEST_H
#define HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "image/ct_window.h"

typedef enum { ENDPOINT_ANALYZE, ENDPOINT_GENERATE, ENDPOINT_CHAT } Endpoint;

typedef enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT } Role;

/* SERIES_DICOM: images are DICOM files (/analyze "dicom"); image/dicom decides
 * how many tensors and the layout once they are decoded (pipeline/dicom_inputs.c). */
typedef enum { SERIES_NONE, SERIES_CT, SERIES_MRI, SERIES_DICOM } SeriesKind;

/* response_format: free text, any JSON object, or a JSON schema (both JSON
 * modes constrain decoding with grammar/). */
enum { JSON_MODE_NONE, JSON_MODE_OBJECT, JSON_MODE_SCHEMA };

/* A piece of a message: text, or the index of an image in JobInput.images. */
typedef struct {
    char *text; /* NULL for an image */
    int image;  /* -1 for text */
} MessagePart;

typedef struct {
    Role role;
    MessagePart *parts;
    int n_parts;
} Message;

/* An image as the request sent it (base64, bare or data: URI); the worker
 * decodes it into file bytes (PNG/JPEG) and then into a tensor. */
typedef struct {
    char *base64;
    size_t base64_len;
    char what[96];  /* names it in errors: "images[2]", "messages[1].content[0].image_url" */
    uint8_t *bytes; /* the decoded file (worker) */
    size_t n_bytes;
} ImageFile;

/* Everything a validated request asks for (request.c fills it). */
typedef struct {
    Endpoint endpoint;
    Message *messages;
    int n_messages;
    ImageFile *images;
    int n_images;
    /* /analyze "ct" or "mri": images are the raw slices of a series, windowed
     * and sampled by image/ into the tensors the messages' image parts name
     * (docs/images.md). */
    int series;              /* SERIES_NONE, SERIES_CT, SERIES_MRI, SERIES_DICOM */
    char dicom_modality[16]; /* SERIES_DICOM: the request's "modality" (overrides (0008,0060)), or "" */
    int dicom_window;        /* SERIES_DICOM: which WindowCenter/WindowWidth pair (0 = the first) */
    SeriesOptions series_options;
    int pad_to_square;
    int max_tokens;
    float temperature, top_p;
    int top_k;
    uint64_t seed;
    char **stops;
    int n_stops;
    int stream;          /* chat: server-sent events */
    int json_mode;       /* response_format (chat, /analyze): JSON_MODE_* */
    char *json_schema;   /* JSON_MODE_SCHEMA: the schema's text (compact) */
    int thinking_budget; /* with a JSON mode: the engine's thinking_budget (0 = default) */
    int include_usage;   /* chat stream: stream_options.include_usage */
    uint64_t cache_salt; /* hash of the request's cache_salt (0 = none; docs/caching.md) */
} JobInput;

void job_input_free(JobInput *in);

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
