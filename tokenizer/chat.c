/* The Gemma 3 chat template and the processor's image expansion (chat.h).
 *
 * chat_render is a hand translation of the Jinja template in Gemma 3's
 * tokenizer_config.json, checked against transformers' rendering of the same
 * conversations (tests/fixtures/chat_template_cases.json). */
#include "tokenizer/chat.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/json_text.h"

static const char ALTERNATION_ERROR[] = "Conversation roles must alternate user/assistant/user/assistant/...";

/* Python's str.isspace(), which Jinja's trim filter (str.strip) uses. */
static int is_py_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* Decodes the character at s[i] (len bytes of it into *n; a byte that does
 * not start a well-formed sequence counts as one non-space character). */
static uint32_t char_at(const unsigned char *s, size_t i, size_t end, size_t *n) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || end - i < len) {
        *n = 1;
        return 0xFFFFFFFF;
    }
    uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7F >> len));
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) {
            *n = 1;
            return 0xFFFFFFFF;
        }
        cp = cp << 6 | (s[i + k] & 0x3F);
    }
    *n = len;
    return cp;
}

/* The trimmed part of text: [*start, *start + *len). */
static void py_strip(const char *text, size_t *start, size_t *len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), b = 0, e = n, step;
    while (b < e && is_py_space(char_at(s, b, n, &step)))
        b += step;
    while (e > b) {
        size_t k = e - 1; /* back to the start of the last character */
        while (k > b && e - k < 4 && (s[k] & 0xC0) == 0x80)
            k--;
        if (!is_py_space(char_at(s, k, e, &step)) || k + step != e)
            break;
        e = k;
    }
    *start = b;
    *len = e - b;
}

static int append_str(JsonBuf *b, const char *s) {
    return json_buf_append(b, s, strlen(s));
}

static int render_message(JsonBuf *b, const ChatMessage *m, const char *prefix, int index, Error *err) {
    int is_user = strcmp(m->role, "user") == 0;
    if (is_user != (index % 2 == 0))
        return error_set(err, "%s (message %d has role \"%s\")", ALTERNATION_ERROR, index, m->role);
    const char *role = strcmp(m->role, "assistant") == 0 ? "model" : m->role;
    if (append_str(b, "<start_of_turn>") || append_str(b, role) || append_str(b, "\n") ||
        (prefix && append_str(b, prefix)))
        return error_set(err, "out of memory rendering the chat");
    for (int i = 0; i < m->n_parts; i++) {
        const ChatPart *p = &m->parts[i];
        int rc;
        if (p->type == CHAT_PART_IMAGE) {
            rc = append_str(b, "<start_of_image>");
        } else {
            size_t start, len;
            py_strip(p->text, &start, &len);
            rc = json_buf_append(b, p->text + start, len);
        }
        if (rc)
            return error_set(err, "out of memory rendering the chat");
    }
    return append_str(b, "<end_of_turn>\n") ? error_set(err, "out of memory rendering the chat") : 0;
}

static int check_messages(const ChatMessage *messages, int n, Error *err) {
    if (n <= 0 || !messages)
        return error_set(err, "cannot apply the chat template to an empty conversation");
    for (int i = 0; i < n; i++) {
        const ChatMessage *m = &messages[i];
        if (!m->role || m->n_parts < 0 || (m->n_parts > 0 && !m->parts))
            return error_set(err, "message %d has no role or a bad part list", i);
        for (int k = 0; k < m->n_parts; k++)
            if (m->parts[k].type != CHAT_PART_IMAGE &&
                (m->parts[k].type != CHAT_PART_TEXT || !m->parts[k].text))
                return error_set(err, "message %d part %d is neither an image nor a text", i, k);
    }
    return 0;
}

int chat_render(const ChatMessage *messages, int n, int add_generation_prompt, char **prompt_text,
                Error *err) {
    *prompt_text = NULL;
    if (check_messages(messages, n, err))
        return -1;
    char *prefix = NULL; /* a system message's text + "\n\n", put at the start of the first turn */
    int first = 0;
    if (strcmp(messages[0].role, "system") == 0) {
        if (messages[0].n_parts < 1 || messages[0].parts[0].type != CHAT_PART_TEXT)
            return error_set(err, "the system message must start with a text part");
        size_t len = strlen(messages[0].parts[0].text);
        prefix = malloc(len + 3);
        if (!prefix)
            return error_set(err, "out of memory rendering the chat");
        memcpy(prefix, messages[0].parts[0].text, len);
        memcpy(prefix + len, "\n\n", 3);
        first = 1;
    }
    JsonBuf b = {0};
    int rc = append_str(&b, "<bos>") ? error_set(err, "out of memory rendering the chat") : 0;
    for (int i = first; i < n && rc == 0; i++)
        rc = render_message(&b, &messages[i], i == first ? prefix : NULL, i - first, err);
    if (rc == 0 && add_generation_prompt && append_str(&b, "<start_of_turn>model\n"))
        rc = error_set(err, "out of memory rendering the chat");
    free(prefix);
    if (rc) {
        free(b.data);
        return -1;
    }
    *prompt_text = b.data;
    return 0;
}

int prompt_tokenize(const Tokenizer *t, const char *prompt_text, int image_tokens_per_image, int32_t **ids,
                    size_t *n_ids, int *n_images, Error *err) {
    static const char BOI[] = "<start_of_image>", SOFT[] = "<image_soft_token>";
    static const char EOI[] = "<end_of_image>\n\n";
    *ids = NULL;
    *n_ids = 0;
    *n_images = 0;
    if (image_tokens_per_image < 0 || image_tokens_per_image > 65536)
        return error_set(err, "image_tokens_per_image %d is out of range 0..65536", image_tokens_per_image);
    JsonBuf b = {0};
    int rc = json_buf_append(&b, "", 0), count = 0;
    for (const char *p = prompt_text; rc == 0;) {
        const char *hit = strstr(p, BOI);
        rc = json_buf_append(&b, p, hit ? (size_t)(hit - p) : strlen(p));
        if (!hit || rc)
            break;
        rc = append_str(&b, "\n\n") || append_str(&b, BOI);
        for (int k = 0; k < image_tokens_per_image && rc == 0; k++)
            rc = json_buf_append(&b, SOFT, sizeof SOFT - 1);
        rc = rc || append_str(&b, EOI);
        count++;
        p = hit + sizeof BOI - 1;
    }
    if (rc) {
        free(b.data);
        return error_set(err, "out of memory expanding %d images", count);
    }
    /* The rendered template already starts with <bos>; the processor tokenizes
     * it without adding another. */
    rc = tokenizer_encode(t, b.data, b.len, 0, ids, n_ids, err);
    free(b.data);
    if (rc == 0)
        *n_images = count;
    return rc;
}

void prompt_token_types(const int32_t *ids, size_t n, uint8_t *types) {
    for (size_t i = 0; i < n; i++)
        types[i] = ids[i] == CHAT_IMAGE_SOFT_TOKEN_ID;
}
