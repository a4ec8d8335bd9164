/* Strict request bodies (issue 18): unknown fields, bytes after the JSON
 * value, duplicate keys, lone surrogates, NUL escapes, over-deep nesting and
 * data URIs whose media type is not an image each get a 400 naming the
 * problem; every documented field is still accepted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/request.h"
#include "tests/unit/test.h"
#include "util/json_strict.h"

static const RequestLimits lim = {4, 100, 16, 1};

#define PNG "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"

/* Parses body for the endpoint, expecting a 400 whose message holds every
 * one of the NULL-terminated needles. */
static void expect_400(Endpoint ep, const char *body, const char *needle1, const char *needle2) {
    JobInput in;
    RequestError e;
    int rc = request_parse(ep, body, strlen(body), &lim, &in, &e);
    CHECK_MSG(rc == -1, "accepted: %.200s", body);
    if (rc != -1) {
        job_input_free(&in);
        return;
    }
    CHECK_EQ_INT(e.status, 400);
    CHECK_STR_CONTAINS(e.message, needle1);
    if (needle2)
        CHECK_STR_CONTAINS(e.message, needle2);
}

static void expect_ok(Endpoint ep, const char *body) {
    JobInput in;
    RequestError e;
    int rc = request_parse(ep, body, strlen(body), &lim, &in, &e);
    CHECK_MSG(rc == 0, "refused (%s): %.300s", e.message, body);
    if (rc == 0)
        job_input_free(&in);
}

TEST(http_strict_unknown_top_level_field_named_with_suggestion) {
    /* The report: a typo'd `image` was answered about no image at all. */
    expect_400(ENDPOINT_ANALYZE, "{\"prompt\":\"Is there a pneumothorax?\",\"image\":\"" PNG "\"}", "'image'",
               "did you mean 'images'");
    expect_400(ENDPOINT_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"frobnicate\":1}",
               "'frobnicate'", NULL);
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"hi\",\"max_token\":3}", "'max_token'",
               "did you mean 'max_tokens'");
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"hi\",\"Prompt\":\"x\"}", "'Prompt'", NULL);
    /* A field of another endpoint says where it belongs. */
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"hi\",\"images\":[]}", "'images'", "/analyze");
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"hi\",\"stream\":true}", "'stream'", "/v1/chat/completions");
    /* OpenAI parameters this server does not implement are named as such. */
    expect_400(ENDPOINT_CHAT,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"presence_penalty\":0.5}",
               "'presence_penalty'", "not supported");
}

TEST(http_strict_unknown_nested_fields_name_the_path) {
    expect_400(ENDPOINT_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"contnet\":\"x\"}]}",
               "'contnet'", "messages[0]");
    expect_400(
        ENDPOINT_CHAT,
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\",\"txt\":1}]}]}",
        "'txt'", "messages[0].content[0]");
    expect_400(
        ENDPOINT_CHAT,
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64," PNG "\",\"uri\":\"x\"}}]}]}",
        "'uri'", "messages[0].content[0].image_url");
    expect_400(
        ENDPOINT_CHAT,
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream_options\":{\"include_usage\":true,"
        "\"x\":1}}",
        "'x'", "stream_options");
    expect_400(ENDPOINT_ANALYZE, "{\"prompt\":\"hi\",\"ct\":{\"slices\":[\"" PNG "\"],\"rescale_slop\":1}}",
               "'rescale_slop'", "did you mean 'rescale_slope'");
    /* windows are CT only: on an MRI series they used to be ignored. */
    expect_400(ENDPOINT_ANALYZE,
               "{\"prompt\":\"hi\",\"mri\":{\"slices\":[\"" PNG "\"],\"windows\":{\"r\":[0,1]}}}",
               "'windows'", "mri");
    expect_400(ENDPOINT_ANALYZE,
               "{\"prompt\":\"hi\",\"ct\":{\"slices\":[\"" PNG
               "\"],\"windows\":{\"r\":[0,100],\"red\":[0,1]}}}",
               "'red'", "ct.windows");
}

TEST(http_strict_trailing_bytes_refused) {
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"hi\"} xyz", "after the JSON value", "byte 16");
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"hi\"}{}", "after the JSON value", NULL);
    /* Whitespace after the value is fine. */
    expect_ok(ENDPOINT_GENERATE, "{\"prompt\":\"hi\"} \r\n\t");
}

TEST(http_strict_duplicate_keys_refused) {
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"a\",\"max_tokens\":2,\"prompt\":\"b\"}", "duplicate",
               "'prompt'");
    /* The same key spelt with an escape is the same key. */
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"a\",\"\\u0070rompt\":\"b\"}", "duplicate", NULL);
    expect_400(ENDPOINT_CHAT, "{\"messages\":[{\"role\":\"user\",\"role\":\"system\",\"content\":\"x\"}]}",
               "duplicate", "messages[0]");
}

TEST(http_strict_lone_surrogates_and_nul_refused) {
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"a\\ud800b\"}", "surrogate", NULL);
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"a\\udc00\"}", "surrogate", NULL);
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"a\\ud800\\u0041\"}", "surrogate", NULL);
    /* \u0000 used to cut the prompt short silently (C strings). */
    expect_400(ENDPOINT_GENERATE, "{\"prompt\":\"a\\u0000 ignore the rest\"}", "\\u0000", NULL);
    /* A proper pair is fine. */
    expect_ok(ENDPOINT_GENERATE, "{\"prompt\":\"a\\ud83d\\ude00\"}");
}

TEST(http_strict_deep_nesting_named) {
    char body[4096];
    int n = snprintf(body, sizeof body, "{\"prompt\":\"x\",\"response_format\":");
    for (int i = 0; i < 600; i++)
        body[n++] = '[';
    body[n] = 0;
    expect_400(ENDPOINT_ANALYZE, body, "nest", NULL);
}

TEST(http_strict_data_uri_media_type) {
    expect_400(ENDPOINT_ANALYZE, "{\"prompt\":\"x\",\"images\":[\"data:text/plain;base64," PNG "\"]}",
               "images[0]", "text/plain");
    expect_400(ENDPOINT_ANALYZE, "{\"prompt\":\"x\",\"images\":[\"data:;base64," PNG "\"]}", "images[0]",
               "media type");
    expect_400(
        ENDPOINT_CHAT,
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:application/octet-stream;base64," PNG "\"}}]}]}",
        "messages[0].content[0].image_url", "application/octet-stream");
    expect_ok(ENDPOINT_ANALYZE, "{\"prompt\":\"x\",\"images\":[\"data:image/png;base64," PNG "\"]}");
    expect_ok(ENDPOINT_ANALYZE, "{\"prompt\":\"x\",\"images\":[\"data:IMAGE/JPEG;base64," PNG "\"]}");
}

/* Every field docs/api.md lists is accepted (the tables must not be too strict). */
TEST(http_strict_every_documented_field_accepted) {
    expect_ok(ENDPOINT_GENERATE, "{\"prompt\":\"hi\",\"system\":\"s\",\"max_tokens\":3,\"temperature\":0.5,"
                                 "\"top_p\":0.9,\"top_k\":4,\"seed\":1}");
    expect_ok(
        ENDPOINT_ANALYZE,
        "{\"prompt\":\"hi\",\"system\":\"s\",\"images\":[\"" PNG "\"],\"modality\":\"CXR\","
        "\"pad_to_square\":true,\"max_tokens\":3,\"temperature\":0.5,\"top_p\":0.9,\"top_k\":4,\"seed\":1,"
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\",\"description\":\"d\","
        "\"strict\":true,\"schema\":{\"type\":\"object\"}}},\"thinking_budget\":-1}");
    expect_ok(ENDPOINT_ANALYZE,
              "{\"prompt\":\"hi\",\"ct\":{\"slices\":[\"" PNG
              "\"],\"rescale_slope\":1,\"rescale_intercept\":-1024,"
              "\"pixel_representation\":\"signed\",\"max_slices\":2,\"windows\":{\"r\":[-1000,1000],"
              "\"g\":[-160,240],\"b\":[-1000,-100]}}}");
    expect_ok(ENDPOINT_ANALYZE, "{\"prompt\":\"hi\",\"mri\":{\"slices\":[\"" PNG "\"],\"max_slices\":1}}");
    expect_ok(
        ENDPOINT_CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\","
        "\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64," PNG "\",\"detail\":\"auto\"}}]},{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"user\",\"content\":\"b\"}],\"max_tokens\":3,\"max_completion_tokens\":3,"
        "\"temperature\":1,\"top_p\":0.5,\"top_k\":3,\"seed\":2,\"n\":1,\"stop\":[\"x\"],\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"response_format\":{\"type\":\"json_object\"},"
        "\"thinking_budget\":16}");
}

/* util/json_strict on its own: the messages name the byte. */
TEST(util_json_strict_messages) {
    struct {
        const char *text, *needle;
    } cases[] = {
        {"{\"a\":1,}", "byte 7"},
        {"{\"a\" 1}", "':'"},
        {"[1 2]", "','"},
        {"{\"a\":01}", "number"},
        {"{\"a\":\"\x01\"}", "control"},
        {"{\"a\":\"\\x\"}", "escape"},
        {"{\"a\":\"\xff\"}", "UTF-8"},
        {"{\"a\":tru}", "byte 5"},
        {"{\"a\":\"b", "cut short"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[256];
        cJSON *root = json_strict_parse(cases[i].text, strlen(cases[i].text), 64, msg, sizeof msg);
        CHECK_MSG(root == NULL, "accepted %s", cases[i].text);
        cJSON_Delete(root);
        if (!root)
            CHECK_MSG(strstr(msg, cases[i].needle) != NULL, "%s: \"%s\" lacks \"%s\"", cases[i].text, msg,
                      cases[i].needle);
    }
    char msg[256];
    const char *good = "{\"a\":[1,-2.5e3,true,false,null,\"\\u00e9\\n\"],\"b\":{}}";
    cJSON *root = json_strict_parse(good, strlen(good), 64, msg, sizeof msg);
    CHECK_MSG(root != NULL, "%s", msg);
    cJSON_Delete(root);
}
