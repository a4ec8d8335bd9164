/* libFuzzer target over tokenizer/chat.c: the Gemma 3 chat template
 * (tokenizer_config.json's Jinja template, rendered in C) with conversations
 * cut from the input. Records are separated by 0x1e; in each record the first
 * byte picks the role (system, user, assistant, model, or a made-up one:
 * the template renders roles it does not know) and whether the part is an
 * image, the rest is the part's text. Consecutive records with bit 7 set in
 * their first byte join the previous message as further parts. A rendered
 * prompt must start with "<bos>" and, with the generation prompt, end with
 * "<start_of_turn>model\n"; an error must say something.
 * Build: make fuzz; run: build-fuzz/fuzz_chat_template -max_total_time=300 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat.h"

#define MAX_PARTS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *roles[] = {"system", "user", "assistant", "model", "tool"};
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = 0;
    ChatPart parts[MAX_PARTS];
    ChatMessage msgs[MAX_PARTS];
    int n_parts = 0, n_msgs = 0;
    char *p = copy, *end = copy + size;
    while (p < end && n_parts < MAX_PARTS) {
        char *sep = memchr(p, 0x1e, (size_t)(end - p));
        if (sep)
            *sep = 0;
        unsigned char ctl = (unsigned char)*p;
        char *text = *p ? p + 1 : p;
        parts[n_parts].type = (ctl & 8) ? CHAT_PART_IMAGE : CHAT_PART_TEXT;
        parts[n_parts].text = parts[n_parts].type == CHAT_PART_TEXT ? text : NULL;
        if ((ctl & 0x80) && n_msgs > 0) {
            msgs[n_msgs - 1].n_parts++;
        } else {
            msgs[n_msgs].role = roles[ctl % 5];
            msgs[n_msgs].parts = &parts[n_parts];
            msgs[n_msgs].n_parts = 1;
            n_msgs++;
        }
        n_parts++;
        if (!sep)
            break;
        p = sep + 1;
    }
    int add_generation_prompt = size > 0 && (data[size - 1] & 1);
    char *prompt = NULL;
    Error err;
    err.message[0] = 0;
    if (chat_render(msgs, n_msgs, add_generation_prompt, &prompt, &err) == 0) {
        const char *tail = "<start_of_turn>model\n";
        size_t n = strlen(prompt), nt = strlen(tail);
        if (strncmp(prompt, "<bos>", 5) != 0)
            __builtin_trap();
        if (add_generation_prompt && (n < nt || strcmp(prompt + n - nt, tail) != 0))
            __builtin_trap();
        free(prompt);
    } else if (!err.message[0]) {
        __builtin_trap();
    }
    free(copy);
    return 0;
}
