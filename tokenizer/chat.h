/* Gemma 3 chat template (tokenizer_config.json's Jinja template, rendered the
 * way transformers' apply_chat_template renders it) and the Gemma3Processor
 * step that expands each image into its soft tokens.
 *
 * Ownership: strings and arrays returned through out-parameters are malloc'd
 * and owned by the caller; inputs are only read. */
#ifndef TOKENIZER_CHAT_H
#define TOKENIZER_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

typedef enum { CHAT_PART_TEXT, CHAT_PART_IMAGE } ChatPartType;

typedef struct {
    ChatPartType type;
    const char *text; /* CHAT_PART_TEXT only (NUL-terminated UTF-8) */
} ChatPart;

typedef struct {
    const char *role; /* "system", "user", "assistant" (or "model"); the template renders any
                         other role as it is, so callers that take roles from users check them */
    const ChatPart *parts;
    int n_parts;
} ChatMessage;

/* Renders the conversation as text: "<bos>" + turns (+ "<start_of_turn>model\n"
 * when add_generation_prompt). A leading system message is folded into the
 * first turn (its first part's text, untrimmed, + "\n\n"); other text parts
 * are trimmed (Python str.strip); images become "<start_of_image>". Errors as
 * the template raises them (roles not alternating user/model, system first
 * part not text, no messages). */
int chat_render(const ChatMessage *messages, int n, int add_generation_prompt, char **prompt_text,
                Error *err);

/* Gemma3Processor: every "<start_of_image>" in prompt_text becomes
 * "\n\n<start_of_image>" + image_tokens_per_image x "<image_soft_token>" +
 * "<end_of_image>\n\n", then the whole text is encoded without adding a <bos>
 * (the rendered template already starts with one, and transformers'
 * processor.apply_chat_template does not add another). *n_images = the number
 * of images expanded: the caller compares it with the images it has, as
 * transformers raises on a mismatch (a user's text can contain the marker; as
 * in transformers, special-token strings in text are matched as tokens). */
int prompt_tokenize(const Tokenizer *t, const char *prompt_text, int image_tokens_per_image, int32_t **ids,
                    size_t *n_ids, int *n_images, Error *err);

/* The id of "<image_soft_token>" (262144 for Gemma 3). */
#define CHAT_IMAGE_SOFT_TOKEN_ID 262144

/* token_type_ids as the processor returns them: types[i] = 1 where ids[i] is
 * an image soft token, else 0. */
void prompt_token_types(const int32_t *ids, size_t n, uint8_t *types);

#endif
