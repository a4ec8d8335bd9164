/* Post-processing of a generated answer for the service: drop MedGemma's
 * thinking trace and find the JSON value in the answer text.
 *
 * Ownership: returned strings and cJSON values belong to the caller
 * (free() / cJSON_Delete()). */
#ifndef TOKENIZER_ANSWER_H
#define TOKENIZER_ANSWER_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* text without every "<unused94>...<unused95>" thinking trace and the
 * whitespace right after it. An unclosed "<unused94>" drops the rest of the
 * text; a "<unused95>" with no opener before it drops everything up to it (as
 * Google's notebooks do). malloc'd; NULL only on out of memory. */
char *answer_strip_thinking(const char *text);

/* Finds the answer's JSON value: after stripping thinking, the text after the
 * last "Final Answer:" (if any), inside the first ``` fence (an info string
 * like "json" dropped; an unclosed fence runs to the end); that whole text if
 * it is one JSON value, else the first object or array in it. Returns 0 with
 * *value set (cJSON_Delete it), or -1 with *value NULL and a reason in why
 * (e.g. "the answer has no JSON value (no object or array found)", "invalid
 * JSON in the answer at offset 12 of its JSON part"). */
int answer_extract_json(const char *text, cJSON **value, char *why, size_t why_len);

#endif
