/* Post-processing of a generated answer for the service: drop MedGemma's
 * thinking trace and find the JSON value in the answer text.
 *
 * Ownership: returned strings and cJSON values belong to the caller
 * (free() / cJSON_Delete()). */
#ifndef TOKENIZER_ANSWER_H
#define TOKENIZER_ANSWER_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* text without every "<unused94>...<unused95>" thinking trace (an unclosed
 * "<unused94>" drops the rest of the text); leading whitespace left by a
 * removed trace is trimmed. malloc'd; NULL only on out of memory. */
char *answer_strip_thinking(const char *text);

/* After stripping thinking, a leading "Final Answer:" and ```json / ``` fences,
 * parses the JSON value of the answer. Returns 0 with *value set, or -1 with
 * a reason in why (e.g. "no JSON value found", "invalid JSON at offset 12"). */
int answer_extract_json(const char *text, cJSON **value, char *why, size_t why_len);

#endif
