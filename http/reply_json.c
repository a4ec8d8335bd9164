/* JSON answer bodies; see reply_json.h. */
#include "http/reply_json.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/answer.h"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t left) {
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    unsigned cp = c & (0x3fu >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

char *utf8_sanitize(const char *s, size_t len) {
    char *out = malloc(len * 3 + 1); /* each bad byte becomes 3 bytes */
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq_len((const unsigned char *)s + i, len - i);
        if (n == 0 || (n == 1 && s[i] == 0)) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = 0;
    return out;
}

/* Adds a string member made valid UTF-8. */
static void add_text(cJSON *obj, const char *name, const char *s, size_t len) {
    char *clean = utf8_sanitize(s ? s : "", s ? len : 0);
    if (clean) {
        cJSON_AddStringToObject(obj, name, clean);
        free(clean);
    }
}

static char *print_and_delete(cJSON *root) {
    char *out = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}

char *json_error(const char *type, const char *message) {
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "type", type);
    add_text(err, "message", message, strlen(message));
    return print_and_delete(root);
}

static void add_usage(cJSON *root, const Answer *a, int openai) {
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", a->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", a->completion_tokens);
    if (openai) {
        cJSON_AddNumberToObject(u, "total_tokens", a->prompt_tokens + a->completion_tokens);
        cJSON *details = cJSON_AddObjectToObject(u, "prompt_tokens_details");
        cJSON_AddNumberToObject(details, "cached_tokens", a->cached_tokens);
    }
}

char *json_analyze(const Answer *a) {
    cJSON *root = cJSON_CreateObject();
    char why[160] = "";
    cJSON *result = NULL;
    if (a->constrained && strcmp(a->finish, "length") == 0)
        snprintf(why, sizeof why,
                 "the value is incomplete: max_tokens ended the answer before the JSON value was complete");
    else if (a->constrained) { /* the whole text is the value the schema allowed */
        result = cJSON_Parse(a->text);
        if (!result)
            snprintf(why, sizeof why, "the constrained answer did not parse as JSON");
    } else
        answer_extract_json(a->text, &result, why, sizeof why);
    cJSON_AddItemToObject(root, "result", result ? result : cJSON_CreateNull());
    add_text(root, "text", a->text, strlen(a->text));
    cJSON_AddNumberToObject(root, "inference_time_ms", a->inference_ms);
    add_usage(root, a, 0);
    cJSON_AddStringToObject(root, "finish_reason", a->finish);
    if (!result)
        cJSON_AddStringToObject(root, "parse_error", why);
    return print_and_delete(root);
}

char *json_generate(const Answer *a) {
    cJSON *root = cJSON_CreateObject();
    add_text(root, "text", a->text, strlen(a->text));
    cJSON_AddNumberToObject(root, "inference_time_ms", a->inference_ms);
    add_usage(root, a, 0);
    cJSON_AddStringToObject(root, "finish_reason", a->finish);
    return print_and_delete(root);
}

char *chat_content(const char *text, int json_mode) {
    if (json_mode) {
        char why[160];
        cJSON *v = NULL;
        if (answer_extract_json(text, &v, why, sizeof why) == 0) {
            char *out = cJSON_PrintUnformatted(v);
            cJSON_Delete(v);
            return out;
        }
    }
    return utf8_sanitize(text, strlen(text));
}

static cJSON *chat_envelope(const char *id, long created, const char *model, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)created);
    cJSON_AddStringToObject(root, "model", model);
    cJSON_AddNullToObject(root, "system_fingerprint");
    return root;
}

char *json_chat(const Answer *a, const char *content, const char *id, long created, const char *model) {
    cJSON *root = chat_envelope(id, created, model, "chat.completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *m = cJSON_AddObjectToObject(c, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    add_text(m, "content", content, strlen(content));
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", a->finish);
    add_usage(root, a, 1);
    return print_and_delete(root);
}

char *json_chat_chunk(const char *id, long created, const char *model, const char *role, const char *content,
                      size_t content_len, const char *finish, const Answer *usage) {
    cJSON *root = chat_envelope(id, created, model, "chat.completion.chunk");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    if (!usage || role || content || finish) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(choices, c);
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role)
            cJSON_AddStringToObject(d, "role", role);
        if (content)
            add_text(d, "content", content, content_len);
        cJSON_AddNullToObject(c, "logprobs");
        if (finish)
            cJSON_AddStringToObject(c, "finish_reason", finish);
        else
            cJSON_AddNullToObject(c, "finish_reason");
    }
    if (usage)
        add_usage(root, usage, 1);
    return print_and_delete(root);
}
