/* Post-processing of generated answers (answer.h): MedGemma 1.5 may think
 * aloud between <unused94> and <unused95> before answering, and answers that
 * carry data wrap JSON as `Final Answer: ```json ... ``` `. */
#include "tokenizer/answer.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char THINK_OPEN[] = "<unused94>", THINK_CLOSE[] = "<unused95>";

static const char *skip_space(const char *p) {
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

char *answer_strip_thinking(const char *text) {
    size_t n = strlen(text);
    char *out = calloc(n + 1, 1), *o = out; /* zeroed, so clang-tidy sees no unset byte past the end */
    if (!out)
        return NULL;
    const char *p = text;
    /* A closer with no opener before it ends a trace that began before the
     * text (as Google's notebooks treat it: keep what follows the closer). */
    const char *open = strstr(p, THINK_OPEN), *close = strstr(p, THINK_CLOSE);
    if (close && (!open || close < open))
        p = skip_space(close + sizeof THINK_CLOSE - 1);
    while (*p) {
        open = strstr(p, THINK_OPEN);
        size_t keep = open ? (size_t)(open - p) : strlen(p);
        memcpy(o, p, keep);
        o += keep;
        if (!open)
            break;
        close = strstr(open, THINK_CLOSE);
        if (!close)
            break; /* an unfinished trace: the rest is thinking */
        p = skip_space(close + sizeof THINK_CLOSE - 1);
    }
    *o = '\0';
    return out;
}

/* Narrows [*s, *e) to the inside of the first ``` fence (an info string such
 * as "json" after the opening fence is dropped; an unclosed fence runs to the
 * end). */
static void inside_fence(const char **s, const char **e) {
    const char *open = strstr(*s, "```");
    if (!open || open >= *e)
        return;
    const char *body = open + 3;
    while (body < *e && *body != '\n' && !isspace((unsigned char)*body) && *body != '{' && *body != '[')
        body++; /* the info string, e.g. json */
    const char *close = strstr(body, "```");
    *s = body;
    if (close && close < *e)
        *e = close;
}

static const char *find_last(const char *hay, const char *needle) {
    const char *last = NULL;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        last = p;
    return last;
}

int answer_extract_json(const char *text, cJSON **value, char *why, size_t why_len) {
    *value = NULL;
    char *clean = answer_strip_thinking(text);
    if (!clean) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    const char *s = clean, *e = clean + strlen(clean);
    const char *final = find_last(clean, "Final Answer:");
    if (final)
        s = final + strlen("Final Answer:");
    inside_fence(&s, &e);
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    if (s == e) {
        snprintf(why, why_len,
                 "the answer has no JSON value (empty after removing thinking, fences and "
                 "\"Final Answer:\")");
        free(clean);
        return -1;
    }
    /* The whole remaining text as one JSON value; else the first object or
     * array in it (prose around it is ignored). */
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, (size_t)(e - s), &end, 0);
    if (v && skip_space(end) < e) {
        cJSON_Delete(v);
        v = NULL;
    }
    size_t error_at = end ? (size_t)(end - s) : 0;
    const char *bracket = s;
    while (!v && bracket < e && *bracket != '{' && *bracket != '[')
        bracket++;
    if (!v && bracket < e) {
        v = cJSON_ParseWithLengthOpts(bracket, (size_t)(e - bracket), &end, 0);
        error_at = end ? (size_t)(end - s) : error_at;
    }
    if (!v) {
        if (bracket < e)
            snprintf(why, why_len, "invalid JSON in the answer at offset %zu of its JSON part", error_at);
        else
            snprintf(why, why_len, "the answer has no JSON value (no object or array found)");
        free(clean);
        return -1;
    }
    free(clean);
    *value = v;
    return 0;
}
