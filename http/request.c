/* Request parsing and validation; see request.h. */
#include "http/request.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/json_strict.h"

#define MAX_STOPS 4
#define MAX_STOP_BYTES 256
#define MAX_MESSAGES 512
/* Arrays/objects nested in a body: a response_format schema may nest 64
 * schema levels (130 JSON levels, grammar/README.md) under 4 request levels. */
#define MAX_JSON_DEPTH 160

static int fail(RequestError *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(RequestError *e, const char *fmt, ...) {
    e->status = 400;
    snprintf(e->type, sizeof e->type, "invalid_request_error");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* The fields each JSON object of a request body may hold; docs/api.md
 * documents every one. A field outside its object's table is a 400 naming it
 * and where it is, with the nearest known name when it is a near miss
 * (`image` -> `images`): an ignored typo would answer a different question.
 * To accept a new field, add it to its table here, parse it below and
 * document it (e.g. /analyze's `dicom`, issue 15, goes into ANALYZE_FIELDS). */
static const char *const GENERATE_FIELDS[] = {"prompt", "system", "max_tokens", "temperature", "top_p",
                                              "top_k",  "seed",   "cache_salt", NULL};
static const char *const ANALYZE_FIELDS[] = {
    "prompt", "system", "images",          "dicom",           "dicom_window", "modality",
    "ct",     "mri",    "pad_to_square",   "max_tokens",      "temperature",  "top_p",
    "top_k",  "seed",   "response_format", "thinking_budget", "cache_salt",   NULL};
static const char *const CHAT_FIELDS[] = {"model",
                                          "messages",
                                          "max_tokens",
                                          "max_completion_tokens",
                                          "temperature",
                                          "top_p",
                                          "top_k",
                                          "seed",
                                          "n",
                                          "stop",
                                          "stream",
                                          "stream_options",
                                          "response_format",
                                          "thinking_budget",
                                          "cache_salt",
                                          NULL};
static const char *const MESSAGE_FIELDS[] = {"role", "content", NULL};
static const char *const TEXT_PART_FIELDS[] = {"type", "text", NULL};
static const char *const IMAGE_PART_FIELDS[] = {"type", "image_url", NULL};
static const char *const IMAGE_URL_FIELDS[] = {"url", "detail", NULL};
static const char *const STREAM_OPTIONS_FIELDS[] = {"include_usage", NULL};
static const char *const RESPONSE_FORMAT_FIELDS[] = {"type", "json_schema", NULL};
static const char *const JSON_SCHEMA_FIELDS[] = {"name", "description", "schema", "strict", NULL};
static const char *const CT_FIELDS[] = {
    "slices", "rescale_slope", "rescale_intercept", "pixel_representation", "max_slices", "windows", NULL};
static const char *const MRI_FIELDS[] = {
    "slices", "rescale_slope", "rescale_intercept", "pixel_representation", "max_slices", NULL};
static const char *const WINDOWS_FIELDS[] = {"r", "g", "b", NULL};
/* OpenAI Chat Completions parameters this server does not implement: refused
 * as such rather than as unknown (OpenAI's API refuses unknown ones too). */
static const char *const OPENAI_UNSUPPORTED[] = {"frequency_penalty",
                                                 "presence_penalty",
                                                 "logit_bias",
                                                 "logprobs",
                                                 "top_logprobs",
                                                 "tools",
                                                 "tool_choice",
                                                 "functions",
                                                 "function_call",
                                                 "parallel_tool_calls",
                                                 "user",
                                                 "store",
                                                 "metadata",
                                                 "audio",
                                                 "modalities",
                                                 "prediction",
                                                 "reasoning_effort",
                                                 "service_tier",
                                                 "web_search_options",
                                                 NULL};

/* Media types a data: URI may declare; an entry ending in '/' accepts any
 * subtype. A single-frame DICOM file is an image too (images, image_url);
 * /analyze's `dicom` field takes DICOM files only. */
static const char *const IMAGE_MEDIA_TYPES[] = {"image/", "application/dicom", NULL};
static const char *const DICOM_MEDIA_TYPES[] = {"application/dicom", "application/octet-stream", NULL};

static int in_table(const char *const *table, const char *name) {
    for (int i = 0; table[i]; i++)
        if (!strcmp(table[i], name))
            return 1;
    return 0;
}

/* Levenshtein distance, capped: names are short (at most 64 bytes compared). */
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 64 || nb > 64)
        return 99;
    int row[65];
    for (size_t j = 0; j <= nb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            int best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* The known name nearest to `name` when it is a near miss (a typo, a case
 * or plural slip), else NULL. */
static const char *near_miss(const char *const *table, const char *name) {
    const char *best = NULL;
    int best_d = 99;
    for (int i = 0; table[i]; i++) {
        int d = edit_distance(name, table[i]);
        int len = (int)strlen(table[i]);
        int allowed = len <= 4 ? 1 : 2;
        if (d < best_d && d <= allowed && d < len) {
            best = table[i];
            best_d = d;
        }
    }
    return best;
}

/* Refuses any member of obj not in `known`. `where` names the object
 * ("messages[0]"; "" for the body itself); `endpoint` is set for the body. */
static int check_fields(const cJSON *obj, const char *where, const char *const *known, Endpoint endpoint,
                        int top_level, RequestError *e) {
    for (const cJSON *f = obj->child; f; f = f->next) {
        if (in_table(known, f->string))
            continue;
        char q[48];
        json_quote_key(f->string, q, sizeof q);
        const char *in = where[0] ? where : "the request body";
        if (top_level) {
            if (endpoint == ENDPOINT_GENERATE && in_table(ANALYZE_FIELDS, f->string))
                return fail(e, "'%s' is not accepted by /generate; use /analyze", q);
            if (endpoint != ENDPOINT_CHAT && in_table(CHAT_FIELDS, f->string) &&
                !in_table(ANALYZE_FIELDS, f->string))
                return fail(e, "'%s' is a field of /v1/chat/completions, not of /%s", q,
                            endpoint == ENDPOINT_ANALYZE ? "analyze" : "generate");
            if (in_table(OPENAI_UNSUPPORTED, f->string))
                return fail(e,
                            "'%s' is an OpenAI parameter not supported by this server (docs/api.md lists "
                            "the accepted fields)",
                            q);
        }
        const char *guess = near_miss(known, f->string);
        if (guess)
            return fail(e, "unknown field '%s' in %s (did you mean '%s'?)", q, in, guess);
        char list[256] = "";
        for (int i = 0; known[i] && strlen(list) + strlen(known[i]) + 8 < sizeof list; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", known[i]);
        return fail(e, "unknown field '%s' in %s (accepted: %s)", q, in, list);
    }
    return 0;
}

/* A data: URI's declared media type must be in `types` (IMAGE_MEDIA_TYPES). */
static int check_media_type(const char *s, const char *const *types, const char *what, RequestError *e) {
    if (strncmp(s, "data:", 5) != 0)
        return 0; /* bare base64 */
    const char *start = s + 5;
    size_t n = strcspn(start, ";,");
    char type[64];
    if (n == 0)
        return fail(e, "%s: the data URI declares no media type; send data:image/png;base64,... (or jpeg)",
                    what);
    if (n >= sizeof type)
        return fail(e, "%s: the data URI's media type is too long", what);
    for (size_t i = 0; i < n; i++)
        type[i] = (char)tolower((unsigned char)start[i]);
    type[n] = 0;
    for (int i = 0; types[i]; i++) {
        size_t tl = strlen(types[i]);
        int prefix = types[i][tl - 1] == '/';
        if (prefix ? (n > tl && !strncmp(type, types[i], tl)) : !strcmp(type, types[i]))
            return 0;
    }
    char q[48];
    json_quote_key(type, q, sizeof q);
    char list[128] = "";
    for (int i = 0; types[i] && strlen(list) + strlen(types[i]) + 8 < sizeof list; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s%s", i ? ", " : "", types[i],
                 types[i][strlen(types[i]) - 1] == '/' ? "*" : "");
    return fail(e, "%s: the data URI declares media type '%s'; accepted: %s", what, q, list);
}

static char *dup_string(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

/* Optional number field in [lo, hi]; integer when want_int. Returns 0 when
 * absent (value untouched) or valid, -1 on a wrong type or range. */
static int get_number(const cJSON *obj, const char *name, int want_int, double lo, double hi, double *value,
                      RequestError *e) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!f || cJSON_IsNull(f))
        return 0;
    if (!cJSON_IsNumber(f))
        return fail(e, "'%s' must be a number", name);
    double v = f->valuedouble;
    if (!isfinite(v) || (want_int && v != floor(v)))
        return fail(e, "'%s' must be %s", name, want_int ? "an integer" : "a finite number");
    if (v < lo || v > hi)
        return fail(e, "'%s' must be between %g and %g", name, lo, hi);
    *value = v;
    return 0;
}

/* Optional string field; *value NULL when absent. */
static int parse_cache_salt(const cJSON *root, JobInput *in, RequestError *e);

static int get_string(const cJSON *obj, const char *name, const char **value, RequestError *e) {
    *value = NULL;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!f || cJSON_IsNull(f))
        return 0;
    if (!cJSON_IsString(f))
        return fail(e, "'%s' must be a string", name);
    *value = f->valuestring;
    return 0;
}

/* Takes an image's base64 text (bare or data: URI) out of the JSON tree
 * without copying; the worker decodes it (base64 of a large body would hold
 * up the event loop). `what` names the image in later errors ("images[3]"). */
static int add_image(JobInput *in, cJSON *node, const RequestLimits *lim, const char *what,
                     const char *const *media_types, RequestError *e) {
    if (!lim->vision)
        return fail(e, "%s: this model has no vision tower and accepts text only", what);
    if (in->n_images >= lim->max_images)
        return fail(e, "too many images: the limit is %d per request (MEDGEMMA_MAX_IMAGES)", lim->max_images);
    if (check_media_type(node->valuestring, media_types, what, e) != 0)
        return -1;
    ImageFile *grown = realloc(in->images, sizeof *grown * (size_t)(in->n_images + 1));
    if (!grown)
        return fail(e, "out of memory");
    in->images = grown;
    ImageFile *f = &in->images[in->n_images++];
    memset(f, 0, sizeof *f);
    f->base64 = node->valuestring; /* cJSON_Delete skips a NULL valuestring */
    f->base64_len = strlen(f->base64);
    node->valuestring = NULL;
    snprintf(f->what, sizeof f->what, "%s", what);
    return 0;
}

static Message *add_message(JobInput *in, Role role) {
    Message *grown = realloc(in->messages, sizeof *grown * (size_t)(in->n_messages + 1));
    if (!grown)
        return NULL;
    in->messages = grown;
    Message *m = &in->messages[in->n_messages++];
    memset(m, 0, sizeof *m);
    m->role = role;
    return m;
}

/* 1 when s is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
static int utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n, cp, min;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 2, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4, min = 0x10000;
        else
            return 0;
        cp = c & (0x3fu >> (n - 1));
        for (unsigned i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n;
    }
    return 1;
}

static int add_part(Message *m, const char *text, int image, RequestError *e) {
    if (text && !utf8_valid(text))
        return fail(e, "a text field (prompt, system or message content) is not valid UTF-8");
    MessagePart *grown = realloc(m->parts, sizeof *grown * (size_t)(m->n_parts + 1));
    if (!grown)
        return fail(e, "out of memory");
    m->parts = grown;
    MessagePart *p = &m->parts[m->n_parts];
    p->image = image;
    p->text = NULL;
    if (text && !(p->text = dup_string(text)))
        return fail(e, "out of memory");
    m->n_parts++;
    return 0;
}

/* Sampling fields every endpoint shares. */
static int parse_sampling(const cJSON *root, const RequestLimits *lim, JobInput *in, RequestError *e) {
    double v;
    in->max_tokens = lim->default_max_tokens;
    const char *max_names[] = {"max_tokens", "max_completion_tokens"};
    for (int i = 0; i < 2; i++) {
        v = -1;
        if (get_number(root, max_names[i], 1, 1, lim->max_tokens_limit, &v, e) != 0) {
            snprintf(e->message + strlen(e->message), sizeof e->message - strlen(e->message),
                     " (MEDGEMMA_MAX_TOKENS)");
            return -1;
        }
        if (v > 0)
            in->max_tokens = (int)v;
    }
    v = 0;
    if (get_number(root, "temperature", 0, 0, 2, &v, e) != 0)
        return -1;
    in->temperature = (float)v;
    v = 1;
    if (get_number(root, "top_p", 0, 0, 1, &v, e) != 0)
        return -1;
    if (v <= 0)
        return fail(e, "'top_p' must be greater than 0");
    in->top_p = (float)v;
    v = 0;
    if (get_number(root, "top_k", 1, 0, 1 << 20, &v, e) != 0)
        return -1;
    in->top_k = (int)v;
    v = NAN; /* stays NaN when the request names no seed */
    if (get_number(root, "seed", 1, -9007199254740991.0, 9007199254740991.0, &v, e) != 0)
        return -1;
    if (isnan(v)) {
        /* No seed: a different one per request, so sampling varies as clients expect. */
        static uint64_t counter;
        in->seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull + ++counter * 0xBF58476D1CE4E5B9ull;
    } else {
        in->seed = (uint64_t)(int64_t)v;
    }
    v = 1;
    if (get_number(root, "n", 1, 1, 1, &v, e) != 0)
        return fail(e, "'n' must be 1: one answer per request");
    return parse_cache_salt(root, in, e);
}

/* "cache_salt" (as vLLM): a string naming the caller's cache namespace (docs/caching.md);
 * kept only as a hash. */
static int parse_cache_salt(const cJSON *root, JobInput *in, RequestError *e) {
    const char *salt = NULL;
    if (get_string(root, "cache_salt", &salt, e) != 0)
        return -1;
    if (!salt)
        return 0;
    if (!*salt || strlen(salt) > 256)
        return fail(e, "'cache_salt' must be a string of 1 to 256 characters");
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(salt, strlen(salt), digest, &n, EVP_sha256(), NULL) || n < 8)
        return fail(e, "'cache_salt' could not be hashed");
    memcpy(&in->cache_salt, digest, 8);
    in->cache_salt |= 1; /* never 0 (no salt) */
    return 0;
}

/* "stop": a string or an array of up to 4 non-empty strings. */
static int parse_stop(const cJSON *root, JobInput *in, RequestError *e) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!f || cJSON_IsNull(f))
        return 0;
    const cJSON *items[MAX_STOPS];
    int n = 0;
    if (cJSON_IsString(f)) {
        items[n++] = f;
    } else if (cJSON_IsArray(f)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, f) {
            if (n == MAX_STOPS)
                return fail(e, "'stop' holds at most %d strings", MAX_STOPS);
            if (!cJSON_IsString(s))
                return fail(e, "'stop' must be a string or an array of strings");
            items[n++] = s;
        }
    } else {
        return fail(e, "'stop' must be a string or an array of strings");
    }
    in->stops = calloc((size_t)n + 1, sizeof *in->stops);
    if (!in->stops)
        return fail(e, "out of memory");
    for (int i = 0; i < n; i++) {
        size_t len = strlen(items[i]->valuestring);
        if (len == 0 || len > MAX_STOP_BYTES)
            return fail(e, "'stop' strings must be 1 to %d bytes long", MAX_STOP_BYTES);
        if (!(in->stops[in->n_stops++] = dup_string(items[i]->valuestring)))
            return fail(e, "out of memory");
    }
    return 0;
}

/* CT and MRI volumes get `SLICE n` after each image (API.md). */
static int is_volume_modality(const char *modality) {
    return modality &&
           (!strcasecmp(modality, "CT") || !strcasecmp(modality, "MRI") || !strcasecmp(modality, "MR"));
}

/* Optional [lo, hi] window of a "ct" object. */
static int parse_window(const cJSON *windows, const char *name, HuWindow *w, RequestError *e) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(windows, name);
    if (!f)
        return 0;
    const cJSON *lo = cJSON_GetArrayItem(f, 0), *hi = cJSON_GetArrayItem(f, 1);
    if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) != 2 || !cJSON_IsNumber(lo) || !cJSON_IsNumber(hi) ||
        !(fabs(lo->valuedouble) <= 1e6) || !(fabs(hi->valuedouble) <= 1e6))
        return fail(e, "'ct.windows.%s' must be [lo, hi] in Hounsfield units (within +-1e6)", name);
    w->lo = (float)lo->valuedouble;
    w->hi = (float)hi->valuedouble;
    return 0;
}

/* "ct" / "mri": raw slices of a series plus DICOM rescale tags (docs/images.md).
 * Builds the user turn: each sampled slice, then `SLICE n`, the prompt last. */
static int parse_series(const cJSON *obj, const char *kind, SeriesKind series, const char *prompt,
                        const RequestLimits *lim, JobInput *in, Message *user, RequestError *e) {
    if (!cJSON_IsObject(obj))
        return fail(e, "'%s' must be an object with 'slices'", kind);
    if (check_fields(obj, kind, series == SERIES_CT ? CT_FIELDS : MRI_FIELDS, in->endpoint, 0, e) != 0)
        return -1;
    const cJSON *slices = cJSON_GetObjectItemCaseSensitive(obj, "slices");
    if (!cJSON_IsArray(slices) || cJSON_GetArraySize(slices) == 0)
        return fail(e, "'%s.slices' must be a non-empty array of base64 PNG strings", kind);
    int n = cJSON_GetArraySize(slices);
    if (n > lim->max_images)
        return fail(e, "too many slices: %d, the limit is %d per request (MEDGEMMA_MAX_IMAGES)", n,
                    lim->max_images);
    SeriesOptions *o = &in->series_options;
    CtWindows def = CT_WINDOWS_DEFAULT;
    o->windows = def;
    o->rescale.rescale_slope = 1;
    double v = 1;
    if (get_number(obj, "rescale_slope", 0, -1e6, 1e6, &v, e) != 0)
        return -1;
    o->rescale.rescale_slope = v;
    v = 0;
    if (get_number(obj, "rescale_intercept", 0, -1e6, 1e6, &v, e) != 0)
        return -1;
    o->rescale.rescale_intercept = v;
    v = CT_MAX_SLICES;
    if (get_number(obj, "max_slices", 1, 1, lim->max_images, &v, e) != 0)
        return -1;
    o->max_slices = (int)v;
    const char *rep = NULL;
    if (get_string(obj, "pixel_representation", &rep, e) != 0)
        return -1;
    if (rep && strcmp(rep, "signed") != 0 && strcmp(rep, "unsigned") != 0)
        return fail(e, "'%s.pixel_representation' must be \"signed\" or \"unsigned\"", kind);
    o->rescale.pixels_signed = rep && !strcmp(rep, "signed");
    const cJSON *windows = cJSON_GetObjectItemCaseSensitive(obj, "windows");
    if (windows && series == SERIES_CT) {
        if (!cJSON_IsObject(windows))
            return fail(e, "'ct.windows' must be an object {\"r\": [lo, hi], \"g\": ..., \"b\": ...}");
        if (check_fields(windows, "ct.windows", WINDOWS_FIELDS, in->endpoint, 0, e) != 0)
            return -1;
        if (parse_window(windows, "r", &o->windows.r, e) || parse_window(windows, "g", &o->windows.g, e) ||
            parse_window(windows, "b", &o->windows.b, e))
            return -1;
        Error err = {{0}};
        if (ct_windows_validate(&o->windows, &err) != 0)
            return fail(e, "'ct.windows': %s", err.message);
    }
    in->series = series;
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_GetArrayItem(slices, i);
        char what[48];
        snprintf(what, sizeof what, "%s.slices[%d]", kind, i);
        if (!cJSON_IsString(s))
            return fail(e, "%s must be a base64 string", what);
        if (add_image(in, (cJSON *)s, lim, what, IMAGE_MEDIA_TYPES, e) != 0)
            return -1;
    }
    int n_out = series_output_count(n, o);
    for (int k = 0; k < n_out; k++) {
        char label[32];
        snprintf(label, sizeof label, "SLICE %d", k + 1);
        if (add_part(user, NULL, k, e) != 0 || add_part(user, label, -1, e) != 0)
            return -1;
    }
    return prompt[0] ? add_part(user, prompt, -1, e) : 0;
}

/* "dicom": DICOM files (base64) of one series or single images. The user
 * turn holds only the prompt here; the worker decodes the files and lays out
 * the images (pipeline/dicom_inputs.c), since how many there are (frames, sampling)
 * is known only then. */
static int parse_dicom(const cJSON *dicom, const char *modality, const char *prompt, const RequestLimits *lim,
                       JobInput *in, Message *user, RequestError *e) {
    if (!cJSON_IsArray(dicom) || cJSON_GetArraySize(dicom) == 0)
        return fail(e, "'dicom' must be a non-empty array of base64 DICOM files");
    int n = cJSON_GetArraySize(dicom);
    if (n > lim->max_images)
        return fail(e, "too many DICOM files: %d, the limit is %d per request (MEDGEMMA_MAX_IMAGES)", n,
                    lim->max_images);
    in->series = SERIES_DICOM;
    if (modality && strlen(modality) >= sizeof in->dicom_modality)
        return fail(e, "'modality' is too long");
    snprintf(in->dicom_modality, sizeof in->dicom_modality, "%s", modality ? modality : "");
    for (int i = 0; i < n; i++) {
        const cJSON *f = cJSON_GetArrayItem(dicom, i);
        char what[32];
        snprintf(what, sizeof what, "dicom[%d]", i);
        if (!cJSON_IsString(f))
            return fail(e, "%s must be a base64 string", what);
        if (add_image(in, (cJSON *)f, lim, what, DICOM_MEDIA_TYPES, e) != 0)
            return -1;
    }
    return prompt[0] ? add_part(user, prompt, -1, e) : 0;
}

/* /analyze and /generate. */
/* response_format (chat and /analyze): {"type": "text"}, {"type":
 * "json_object"} (any JSON object) or {"type": "json_schema", "json_schema":
 * {"name", "schema", "strict", "description"}}; both JSON types constrain
 * decoding (grammar/). The schema is compiled by the worker (its errors are
 * 400s naming the keyword and path). Also "thinking_budget". */
static int parse_response_format(const cJSON *root, JobInput *in, RequestError *e) {
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(root, "thinking_budget");
    if (tb && !cJSON_IsNull(tb)) {
        /* Range first: casting an infinite or huge double to int is undefined
         * (found by tests/fuzz/fuzz_request.c with -1e309). */
        double v = cJSON_IsNumber(tb) ? tb->valuedouble : NAN;
        if (!(v >= -1 && v <= 1 << 20) || v != floor(v))
            return fail(e, "'thinking_budget' must be an integer from -1 (no thinking trace) to 1048576");
        in->thinking_budget = (int)v;
    }
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (!rf || cJSON_IsNull(rf))
        return 0;
    const cJSON *type = cJSON_IsObject(rf) ? cJSON_GetObjectItemCaseSensitive(rf, "type") : NULL;
    if (!type || !cJSON_IsString(type))
        return fail(
            e, "'response_format' must be {\"type\": \"text\" | \"json_object\" | \"json_schema\", ...}");
    if (check_fields(rf, "response_format", RESPONSE_FORMAT_FIELDS, in->endpoint, 0, e) != 0)
        return -1;
    if (!strcmp(type->valuestring, "text"))
        return 0;
    if (!strcmp(type->valuestring, "json_object")) {
        in->json_mode = JSON_MODE_OBJECT;
        return 0;
    }
    if (strcmp(type->valuestring, "json_schema") != 0)
        return fail(e,
                    "'response_format.type' \"%.40s\" is not supported: use \"text\", \"json_object\" or "
                    "\"json_schema\"",
                    type->valuestring);
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
    if (!cJSON_IsObject(js))
        return fail(e, "'response_format.json_schema' must be an object {\"name\", \"schema\", \"strict\"}");
    if (check_fields(js, "response_format.json_schema", JSON_SCHEMA_FIELDS, in->endpoint, 0, e) != 0)
        return -1;
    for (const cJSON *k = js->child; k; k = k->next) {
        if (!strcmp(k->string, "name") || !strcmp(k->string, "description")) {
            if (!cJSON_IsString(k))
                return fail(e, "'response_format.json_schema.%s' must be a string", k->string);
        } else if (!strcmp(k->string, "strict")) {
            if (!cJSON_IsBool(k) && !cJSON_IsNull(k))
                return fail(e, "'response_format.json_schema.strict' must be true or false");
        }
    }
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
    if (!schema || (!cJSON_IsObject(schema) && !cJSON_IsBool(schema)))
        return fail(e, "'response_format.json_schema.schema' is required and must be a JSON schema object");
    in->json_schema = cJSON_PrintUnformatted(schema);
    if (!in->json_schema)
        return fail(e, "out of memory");
    in->json_mode = JSON_MODE_SCHEMA;
    return 0;
}

static int parse_seed_endpoint(const cJSON *root, const RequestLimits *lim, JobInput *in, RequestError *e) {
    if (in->endpoint == ENDPOINT_ANALYZE && parse_response_format(root, in, e) != 0)
        return -1;
    const cJSON *pf = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!pf)
        return fail(e, "'prompt' is required");
    if (!cJSON_IsString(pf))
        return fail(e, "'prompt' must be a string");
    const char *system = NULL, *modality = NULL;
    if (get_string(root, "system", &system, e) != 0 || get_string(root, "modality", &modality, e) != 0)
        return -1;
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
    int n_images = 0;
    if (images && !cJSON_IsNull(images)) {
        if (in->endpoint == ENDPOINT_GENERATE)
            return fail(e, "'images' is not accepted by /generate; use /analyze");
        if (!cJSON_IsArray(images))
            return fail(e, "'images' must be an array of base64 strings");
        n_images = cJSON_GetArraySize(images);
        if (n_images > lim->max_images)
            return fail(e, "too many images: %d, the limit is %d per request (MEDGEMMA_MAX_IMAGES)", n_images,
                        lim->max_images);
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "ct");
    const cJSON *mri = cJSON_GetObjectItemCaseSensitive(root, "mri");
    if (cJSON_IsNull(ct))
        ct = NULL;
    if (cJSON_IsNull(mri))
        mri = NULL;
    if ((ct || mri) && in->endpoint == ENDPOINT_GENERATE)
        return fail(e, "'ct' and 'mri' are not accepted by /generate; use /analyze");
    const cJSON *dicom = cJSON_GetObjectItemCaseSensitive(root, "dicom");
    if (cJSON_IsNull(dicom))
        dicom = NULL;
    if (dicom && in->endpoint == ENDPOINT_GENERATE)
        return fail(e, "'dicom' is not accepted by /generate; use /analyze");
    double dicom_window = 0; /* which WindowCenter/WindowWidth pair of grayscale DICOM (0 = the first) */
    if (get_number(root, "dicom_window", 1, 0, 63, &dicom_window, e) != 0)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(root, "dicom_window") && !dicom)
        return fail(e, "'dicom_window' applies to 'dicom' files only");
    in->dicom_window = (int)dicom_window;
    if ((ct && mri) || ((ct || mri) && n_images > 0) || (dicom && (ct || mri || n_images > 0)))
        return fail(e, "send one of 'images', 'dicom', 'ct' or 'mri', not several");
    if (pf->valuestring[0] == 0 && n_images == 0 && !ct && !mri && !dicom)
        return fail(e, "'prompt' is empty");
    if (system) {
        Message *m = add_message(in, ROLE_SYSTEM);
        if (!m || add_part(m, system, -1, e) != 0)
            return fail(e, "out of memory");
    }
    Message *user = add_message(in, ROLE_USER);
    if (!user)
        return fail(e, "out of memory");
    if (dicom)
        return parse_dicom(dicom, modality, pf->valuestring, lim, in, user, e);
    if (ct || mri)
        return parse_series(ct ? ct : mri, ct ? "ct" : "mri", ct ? SERIES_CT : SERIES_MRI, pf->valuestring,
                            lim, in, user, e);
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(root, "pad_to_square");
    if (pad && !cJSON_IsNull(pad)) {
        if (!cJSON_IsBool(pad))
            return fail(e, "'pad_to_square' must be true or false");
        in->pad_to_square = cJSON_IsTrue(pad);
    }
    int volume = is_volume_modality(modality) && n_images > 1;
    /* CT/MRI: each slice then its label, the question last. Otherwise the
     * prompt first, then the images, as in MedGemma's model card. */
    if (!volume && pf->valuestring[0] && add_part(user, pf->valuestring, -1, e) != 0)
        return -1;
    for (int i = 0; i < n_images; i++) {
        const cJSON *img = cJSON_GetArrayItem(images, i);
        char what[32];
        snprintf(what, sizeof what, "images[%d]", i);
        if (!cJSON_IsString(img))
            return fail(e, "%s must be a base64 string", what);
        if (add_image(in, (cJSON *)img, lim, what, IMAGE_MEDIA_TYPES, e) != 0 ||
            add_part(user, NULL, i, e) != 0)
            return -1;
        if (volume) {
            char label[32];
            snprintf(label, sizeof label, "SLICE %d", i + 1);
            if (add_part(user, label, -1, e) != 0)
                return -1;
        }
    }
    if (volume && pf->valuestring[0] && add_part(user, pf->valuestring, -1, e) != 0)
        return -1;
    return 0;
}

static int parse_role(const char *s, Role *role) {
    if (!strcmp(s, "system") || !strcmp(s, "developer"))
        *role = ROLE_SYSTEM;
    else if (!strcmp(s, "user"))
        *role = ROLE_USER;
    else if (!strcmp(s, "assistant"))
        *role = ROLE_ASSISTANT;
    else
        return -1;
    return 0;
}

/* One content part of a chat message. */
static int parse_chat_part(const cJSON *part, Message *m, const RequestLimits *lim, JobInput *in,
                           const char *where, RequestError *e) {
    if (!cJSON_IsObject(part))
        return fail(e, "%s must be an object", where);
    const char *type = NULL;
    if (get_string(part, "type", &type, e) != 0 || !type)
        return fail(e, "%s.type must be \"text\" or \"image_url\"", where);
    if (!strcmp(type, "text")) {
        if (check_fields(part, where, TEXT_PART_FIELDS, in->endpoint, 0, e) != 0)
            return -1;
        const char *text = NULL;
        if (get_string(part, "text", &text, e) != 0 || !text)
            return fail(e, "%s.text must be a string", where);
        return add_part(m, text, -1, e);
    }
    if (!strcmp(type, "image_url")) {
        if (m->role != ROLE_USER)
            return fail(e, "%s: images are accepted in user messages only", where);
        if (check_fields(part, where, IMAGE_PART_FIELDS, in->endpoint, 0, e) != 0)
            return -1;
        const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
        if (cJSON_IsObject(iu)) {
            char iu_where[96];
            snprintf(iu_where, sizeof iu_where, "%s.image_url", where);
            if (check_fields(iu, iu_where, IMAGE_URL_FIELDS, in->endpoint, 0, e) != 0)
                return -1;
            const cJSON *detail = cJSON_GetObjectItemCaseSensitive(iu, "detail");
            if (detail && !cJSON_IsNull(detail) &&
                (!cJSON_IsString(detail) ||
                 (strcmp(detail->valuestring, "auto") != 0 && strcmp(detail->valuestring, "low") != 0 &&
                  strcmp(detail->valuestring, "high") != 0)))
                return fail(e, "%s.image_url.detail must be \"auto\", \"low\" or \"high\"", where);
        }
        const cJSON *url = cJSON_IsObject(iu) ? cJSON_GetObjectItemCaseSensitive(iu, "url") : iu;
        if (!cJSON_IsString(url))
            return fail(e, "%s.image_url.url must be a string", where);
        if (strncmp(url->valuestring, "data:", 5) != 0)
            return fail(e,
                        "%s.image_url.url must be a data: URI (data:image/png;base64,...); the server does "
                        "not fetch URLs",
                        where);
        char what[96];
        snprintf(what, sizeof what, "%s.image_url", where);
        int index = in->n_images;
        if (add_image(in, (cJSON *)url, lim, what, IMAGE_MEDIA_TYPES, e) != 0)
            return -1;
        return add_part(m, NULL, index, e);
    }
    return fail(e, "%s.type must be \"text\" or \"image_url\"", where);
}

static int parse_chat(const cJSON *root, const RequestLimits *lim, JobInput *in, RequestError *e) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs)
        return fail(e, "'messages' is required");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return fail(e, "'messages' must be a non-empty array");
    if (cJSON_GetArraySize(msgs) > MAX_MESSAGES)
        return fail(e, "'messages' holds at most %d messages", MAX_MESSAGES);
    int i = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, msgs) {
        char where[48];
        snprintf(where, sizeof where, "messages[%d]", i++);
        if (!cJSON_IsObject(msg))
            return fail(e, "%s must be an object", where);
        if (check_fields(msg, where, MESSAGE_FIELDS, in->endpoint, 0, e) != 0)
            return -1;
        const char *role_name = NULL;
        Role role;
        if (get_string(msg, "role", &role_name, e) != 0 || !role_name || parse_role(role_name, &role) != 0)
            return fail(e, "%s.role must be \"system\", \"user\" or \"assistant\"", where);
        Message *m = add_message(in, role);
        if (!m)
            return fail(e, "out of memory");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (cJSON_IsString(content)) {
            if (add_part(m, content->valuestring, -1, e) != 0)
                return -1;
        } else if (cJSON_IsArray(content)) {
            int j = 0;
            const cJSON *part;
            cJSON_ArrayForEach(part, content) {
                char pwhere[80];
                snprintf(pwhere, sizeof pwhere, "%s.content[%d]", where, j++);
                if (parse_chat_part(part, m, lim, in, pwhere, e) != 0)
                    return -1;
            }
        } else if (!(cJSON_IsNull(content) && role == ROLE_ASSISTANT)) {
            return fail(e, "%s.content must be a string or an array of parts", where);
        }
    }
    if (in->messages[in->n_messages - 1].role == ROLE_ASSISTANT)
        return fail(e,
                    "the last message must be from the user (continuing an assistant turn is not supported)");

    const char *model = NULL;
    if (get_string(root, "model", &model, e) != 0)
        return -1;
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (stream && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream))
            return fail(e, "'stream' must be true or false");
        in->stream = cJSON_IsTrue(stream);
    }
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        const cJSON *iu = cJSON_IsObject(so) ? cJSON_GetObjectItemCaseSensitive(so, "include_usage") : NULL;
        if (!cJSON_IsObject(so) || (iu && !cJSON_IsBool(iu)))
            return fail(e, "'stream_options' must be {\"include_usage\": true|false}");
        if (check_fields(so, "stream_options", STREAM_OPTIONS_FIELDS, in->endpoint, 0, e) != 0)
            return -1;
        in->include_usage = cJSON_IsTrue(iu);
    }
    if (parse_response_format(root, in, e) != 0)
        return -1;
    return parse_stop(root, in, e);
}

int request_parse(Endpoint endpoint, const char *body, size_t len, const RequestLimits *limits, JobInput *out,
                  RequestError *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    out->endpoint = endpoint;
    if (len == 0)
        return fail(e, "the request body is empty; send a JSON object");
    char why[320];
    cJSON *root = json_strict_parse(body, len, MAX_JSON_DEPTH, why, sizeof why);
    if (!root)
        return fail(e, "the body is not valid JSON: %s", why);
    int rc = -1;
    const char *const *fields = endpoint == ENDPOINT_CHAT      ? CHAT_FIELDS
                                : endpoint == ENDPOINT_ANALYZE ? ANALYZE_FIELDS
                                                               : GENERATE_FIELDS;
    if (!cJSON_IsObject(root)) {
        fail(e, "the body must be a JSON object");
    } else if (check_fields(root, "", fields, endpoint, 1, e) == 0 &&
               parse_sampling(root, limits, out, e) == 0) {
        rc = endpoint == ENDPOINT_CHAT ? parse_chat(root, limits, out, e)
                                       : parse_seed_endpoint(root, limits, out, e);
    }
    cJSON_Delete(root);
    if (rc != 0)
        job_input_free(out);
    return rc;
}

void job_input_free(JobInput *in) {
    for (int i = 0; i < in->n_messages; i++) {
        for (int j = 0; j < in->messages[i].n_parts; j++)
            free(in->messages[i].parts[j].text);
        free(in->messages[i].parts);
    }
    free(in->messages);
    for (int i = 0; i < in->n_images; i++) {
        free(in->images[i].base64);
        free(in->images[i].bytes);
    }
    free(in->images);
    for (int i = 0; i < in->n_stops; i++)
        free(in->stops[i]);
    free(in->stops);
    free(in->json_schema);
    memset(in, 0, sizeof *in);
}
