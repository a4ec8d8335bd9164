/* chat_render and prompt_tokenize against transformers: the expectations in
 * tests/fixtures/chat_template_cases.json were produced by
 * tests/tokenizer/make_chat_fixture.py (apply_chat_template and
 * Gemma3Processor on this repo's tokenizer files). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/test.h"
#include "tokenizer/chat.h"

Tokenizer *test_gemma_tokenizer(void); /* test_tokenizer.c */

static cJSON *load_fixture(void) {
    const char *root = getenv("REPO_ROOT") ? getenv("REPO_ROOT") : ".";
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/chat_template_cases.json", root);
    FILE *f = fopen(path, "rb");
    if (!f) {
        test_fail(__FILE__, __LINE__, "cannot open %s", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = '\0';
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    CHECK_MSG(j != NULL, "%s is not valid JSON", path);
    return j;
}

/* Converts the fixture's HF-style messages (content a string or a list of
 * {"type": "text"|"image"} parts) into ChatMessages; parts point into json. */
static int to_messages(const cJSON *list, ChatMessage **out) {
    int n = cJSON_GetArraySize(list);
    ChatMessage *m = calloc((size_t)n + 1, sizeof *m);
    int i = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, list) {
        const cJSON *content = cJSON_GetObjectItem(msg, "content");
        m[i].role = cJSON_GetObjectItem(msg, "role")->valuestring;
        int n_parts = cJSON_IsString(content) ? 1 : cJSON_GetArraySize(content);
        ChatPart *parts = calloc((size_t)n_parts + 1, sizeof *parts);
        if (cJSON_IsString(content)) {
            parts[0] = (ChatPart){CHAT_PART_TEXT, content->valuestring};
        } else {
            int k = 0;
            const cJSON *part;
            cJSON_ArrayForEach(part, content) {
                int is_image = strcmp(cJSON_GetObjectItem(part, "type")->valuestring, "image") == 0;
                const cJSON *text = cJSON_GetObjectItem(part, "text");
                parts[k++] =
                    (ChatPart){is_image ? CHAT_PART_IMAGE : CHAT_PART_TEXT, text ? text->valuestring : NULL};
            }
        }
        m[i].parts = parts;
        m[i].n_parts = n_parts;
        i++;
    }
    *out = m;
    return n;
}

static void free_messages(ChatMessage *m, int n) {
    for (int i = 0; i < n; i++)
        free((void *)m[i].parts);
    free(m);
}

TEST(tokenizer_chat_template_matches_transformers) {
    cJSON *fixture = load_fixture();
    if (!fixture)
        return;
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fixture, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *rendered = cJSON_GetObjectItem(c, "rendered"), *error = cJSON_GetObjectItem(c, "error");
        ChatMessage *m;
        int n = to_messages(cJSON_GetObjectItem(c, "messages"), &m);
        char *text = NULL;
        Error err = {{0}};
        int rc =
            chat_render(m, n, cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")), &text, &err);
        if (rendered) {
            CHECK_MSG(rc == 0, "%s: %s", name, err.message);
            CHECK_MSG(rc != 0 || strcmp(text, rendered->valuestring) == 0, "%s: rendered \"%s\"", name, text);
        } else {
            CHECK_MSG(rc == -1 && text == NULL, "%s: rendered although transformers raised %s", name,
                      error->valuestring);
            if (strstr(error->valuestring, "Conversation roles must alternate"))
                CHECK_STR_CONTAINS(err.message,
                                   "Conversation roles must alternate user/assistant/user/assistant/...");
        }
        free(text);
        free_messages(m, n);
        n_cases++;
    }
    CHECK_MSG(n_cases >= 20, "only %d conversations in the fixture", n_cases);
    cJSON_Delete(fixture);
}

TEST(tokenizer_chat_bad_messages_are_errors) {
    char *text = NULL;
    Error err;
    ChatPart image = {CHAT_PART_IMAGE, NULL}, bad = {CHAT_PART_TEXT, NULL};
    ChatMessage no_role = {NULL, &image, 1}, null_text = {"user", &bad, 1};
    CHECK(chat_render(&no_role, 1, 1, &text, &err) == -1 && text == NULL);
    CHECK_STR_CONTAINS(err.message, "message 0");
    CHECK(chat_render(&null_text, 1, 1, &text, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "message 0 part 0");
    CHECK(chat_render(NULL, 0, 1, &text, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "empty conversation");
}

TEST(tokenizer_prompt_tokenize_matches_processor) {
    cJSON *fixture = load_fixture();
    Tokenizer *t = fixture ? test_gemma_tokenizer() : NULL;
    if (!t) {
        cJSON_Delete(fixture);
        return;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fixture, "processor_cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "input_ids"),
                    *want_types = cJSON_GetObjectItem(c, "token_type_ids");
        int32_t *ids;
        size_t n;
        int n_images;
        Error err;
        int rc =
            prompt_tokenize(t, cJSON_GetObjectItem(c, "prompt")->valuestring,
                            cJSON_GetObjectItem(c, "image_seq_length")->valueint, &ids, &n, &n_images, &err);
        CHECK_MSG(rc == 0, "%s: %s", name, err.message);
        if (rc)
            continue;
        CHECK_EQ_INT(n_images, cJSON_GetObjectItem(c, "n_images")->valueint);
        CHECK_MSG(n == (size_t)cJSON_GetArraySize(want), "%s: %zu ids, want %d", name, n,
                  cJSON_GetArraySize(want));
        uint8_t *types = malloc(n + 1);
        prompt_token_types(ids, n, types);
        for (size_t i = 0; i < n && i < (size_t)cJSON_GetArraySize(want); i++) {
            int w = cJSON_GetArrayItem(want, (int)i)->valueint,
                wt = cJSON_GetArrayItem(want_types, (int)i)->valueint;
            if (ids[i] != w || types[i] != wt) {
                test_fail(__FILE__, __LINE__, "%s: id %zu is %d (type %d), want %d (type %d)", name, i,
                          ids[i], types[i], w, wt);
                break;
            }
        }
        free(types);
        free(ids);
    }
    int32_t *ids;
    size_t n;
    int n_images;
    Error err;
    CHECK(prompt_tokenize(t, "x", -1, &ids, &n, &n_images, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "image_tokens_per_image -1");
    tokenizer_free(t);
    cJSON_Delete(fixture);
}
