/* JSON bodies of the service's answers (http/ owns this): errors, /analyze,
 * /generate, OpenAI chat completions and their stream chunks. Pure
 * functions, no h2o: each returns a malloc'd NUL-terminated string (NULL when
 * out of memory). Text is made valid UTF-8 first (an answer cut by max_tokens
 * may end inside a character). */
#ifndef HTTP_REPLY_JSON_H
#define HTTP_REPLY_JSON_H

#include <stddef.h>

typedef struct {
    const char *text;   /* the visible answer */
    const char *finish; /* "stop" or "length" */
    int prompt_tokens, completion_tokens;
    double inference_ms;
    int constrained;   /* decoded under a JSON schema (response_format): the text is the value */
    int cached_tokens; /* prompt tokens reused from the cache (OpenAI usage.prompt_tokens_details) */
} Answer;

/* {"error": {"type": ..., "message": ...}} */
char *json_error(const char *type, const char *message);

/* /analyze: result (the answer's JSON value found by tokenizer/answer.h's
 * answer_extract_json, or null + parse_error), text, usage... A constrained
 * answer cut by max_tokens has result null and a parse_error saying the
 * value is incomplete. */
char *json_analyze(const Answer *a);
/* /generate */
char *json_generate(const Answer *a);

/* Chat content: with json_mode the compact JSON parsed from the text when it
 * parses, else the text itself. */
char *chat_content(const char *text, int json_mode);

/* OpenAI chat.completion object. */
char *json_chat(const Answer *a, const char *content, const char *id, long created, const char *model);

/* One chat.completion.chunk; role, content and finish may be NULL (omitted
 * or null). include_usage adds the usage object (the last chunk). */
char *json_chat_chunk(const char *id, long created, const char *model, const char *role, const char *content,
                      size_t content_len, const char *finish, const Answer *usage);

/* Copies s[0..len) replacing invalid UTF-8 sequences with U+FFFD. */
char *utf8_sanitize(const char *s, size_t len);

#endif
