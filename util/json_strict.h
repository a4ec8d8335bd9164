/* Strict JSON parsing for text that comes from outside: request bodies and
 * model config files (util/ owns this).
 *
 * cJSON alone is lenient where leniency hides mistakes: it ignores bytes after
 * the value, keeps both copies of a duplicated key (and we would read the
 * first), cuts a string at a \u0000 escape (C strings), and reports any
 * syntax error as just "near byte N". json_strict_parse first checks the text
 * against RFC 8259 itself, naming the problem and its byte offset:
 *   - a syntax error ("expected ',' or '}' after an object member at byte 12")
 *   - bytes after the JSON value ("bytes after the JSON value at byte 16")
 *   - a lone UTF-16 surrogate or a \u0000 escape in a string
 *   - invalid UTF-8 or a raw control character in a string
 *   - nesting deeper than max_depth arrays/objects
 * then parses with cJSON and refuses duplicate keys in any object, naming the
 * key and where it is ("duplicate key 'prompt' in messages[0]"). Error
 * messages never echo string contents (they can be patient data); keys are
 * quoted (at most 40 printable bytes). */
#ifndef UTIL_JSON_STRICT_H
#define UTIL_JSON_STRICT_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Returns the parsed tree (cJSON_Delete it), or NULL with a message in
 * msg[0..msg_size). max_depth counts nested arrays/objects (the top-level
 * object is depth 1). */
cJSON *json_strict_parse(const char *text, size_t len, int max_depth, char *msg, size_t msg_size);

/* Writes key as a short printable quotation into buf ('a\x01b' style escapes
 * never leave it; bytes that are not printable ASCII become '?', and it is
 * cut at 40 bytes with "..."). Used to name fields in messages. */
void json_quote_key(const char *key, char *buf, size_t size);

#endif
