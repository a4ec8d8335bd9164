/* Unit tests of the HTTP layer's pure parts: visible text (thinking trace,
 * stop strings, streaming hold-back), answer JSON extraction, UTF-8
 * sanitizing, request validation, the job queue and metrics. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "http/job.h"
#include "http/metrics.h"
#include "http/reply_json.h"
#include "http/request.h"
#include "pipeline/visible_text.h"
#include "tests/unit/test.h"

static char vis_buf[4096];

static const char *vis(const char *full, int final, const char *const *stops, int n_stops, int *hit) {
    visible_text(full, strlen(full), final, stops, n_stops, vis_buf, hit);
    return vis_buf;
}

TEST(http_visible_text_strips_thinking) {
    int hit;
    CHECK(!strcmp(vis("<unused94>thought: lung\n<unused95>\n\nPneumonia.", 1, NULL, 0, &hit), "Pneumonia."));
    CHECK(!strcmp(vis("<unused94>still thinking", 1, NULL, 0, &hit), ""));
    CHECK(!strcmp(vis("plain answer", 1, NULL, 0, &hit), "plain answer"));
    CHECK_EQ_INT(hit, 0);
    /* While running, a tail that may become the open marker is held back. */
    CHECK(!strcmp(vis("Answer <unu", 0, NULL, 0, &hit), "Answer "));
    CHECK(!strcmp(vis("Answer <unu", 1, NULL, 0, &hit), "Answer <unu"));
}

TEST(http_visible_text_stop_strings) {
    const char *stops[] = {"END", "\n\n"};
    int hit;
    CHECK(!strcmp(vis("abc END def", 1, stops, 2, &hit), "abc "));
    CHECK_EQ_INT(hit, 1);
    CHECK(!strcmp(vis("line\n\nnext END", 1, stops, 2, &hit), "line"));
    CHECK(!strcmp(vis("abc EN", 0, stops, 2, &hit), "abc "));
    CHECK_EQ_INT(hit, 0);
    CHECK(!strcmp(vis("abc EN", 1, stops, 2, &hit), "abc EN"));
}

/* Every streamed prefix is a prefix of the final text, so concatenated
 * deltas equal the non-streamed answer. */
TEST(http_visible_text_streaming_is_prefix_monotonic) {
    const char *full = "Hi <unused94>plan<unused95> the \xc3\xa9tude ENDS here END tail";
    const char *stops[] = {"END"};
    char final_text[256];
    visible_text(full, strlen(full), 1, stops, 1, final_text, NULL);
    size_t prev = 0;
    for (size_t n = 0; n <= strlen(full); n++) {
        char out[256];
        size_t v = visible_text(full, n, 0, stops, 1, out, NULL);
        CHECK_MSG(v >= prev, "visible length shrank at %zu", n);
        CHECK_MSG(!strncmp(out, final_text, v), "prefix %zu '%s' is not a prefix of '%s'", n, out,
                  final_text);
        /* never ends inside a UTF-8 character */
        CHECK(v == 0 || ((unsigned char)out[v - 1] & 0xc0) != 0xc0);
        prev = v;
    }
    CHECK(!strcmp(final_text, "Hi the \xc3\xa9tude "));
}

TEST(http_analyze_json_result) {
    Answer a = {"Final Answer: ```json\n{\"a\": 1}\n```", "stop", 5, 7, 12.5};
    char *body = json_analyze(&a);
    cJSON *v = cJSON_Parse(body);
    CHECK(v && cJSON_GetObjectItem(cJSON_GetObjectItem(v, "result"), "a")->valueint == 1);
    CHECK(cJSON_GetObjectItem(v, "parse_error") == NULL);
    CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "usage"), "completion_tokens")->valueint, 7);
    cJSON_Delete(v);
    free(body);
    a.text = "no json here";
    body = json_analyze(&a);
    v = cJSON_Parse(body);
    CHECK(v && cJSON_IsNull(cJSON_GetObjectItem(v, "result")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(v, "parse_error")));
    cJSON_Delete(v);
    free(body);
    /* chat JSON mode: compact JSON when it parses, else the text */
    char *c = chat_content("Here: {\"x\": [1, 2]} done", 1);
    CHECK(!strcmp(c, "{\"x\":[1,2]}"));
    free(c);
    c = chat_content("plain", 1);
    CHECK(!strcmp(c, "plain"));
    free(c);
}

TEST(http_utf8_sanitize) {
    char *s = utf8_sanitize("a\xff"
                            "b\xc3",
                            4);
    CHECK(!strcmp(s, "a\xef\xbf\xbd"
                     "b\xef\xbf\xbd"));
    free(s);
    s = utf8_sanitize("\xe2\x82\xac ok", 6);
    CHECK(!strcmp(s, "\xe2\x82\xac ok"));
    free(s);
}

static const RequestLimits limits = {4, 100, 16, 1};

TEST(http_request_parse_analyze_ct_slices) {
    /* Two 1x1 PNGs (bytes only need a valid header for the probe). */
    const char *png =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
    char body[1024];
    snprintf(body, sizeof body,
             "{\"prompt\":\"Findings?\",\"images\":[\"%s\",\"data:image/png;base64,%s\"],"
             "\"modality\":\"CT\",\"max_tokens\":7,\"seed\":3}",
             png, png);
    JobInput in;
    RequestError e;
    CHECK_EQ_INT(request_parse(ENDPOINT_ANALYZE, body, strlen(body), &limits, &in, &e), 0);
    CHECK_EQ_INT(in.n_images, 2);
    CHECK_EQ_INT(in.max_tokens, 7);
    CHECK_EQ_INT(in.n_messages, 1);
    /* image, SLICE 1, image, SLICE 2, prompt */
    CHECK_EQ_INT(in.messages[0].n_parts, 5);
    CHECK_EQ_INT(in.messages[0].parts[0].image, 0);
    CHECK(!strcmp(in.messages[0].parts[1].text, "SLICE 1"));
    CHECK(!strcmp(in.messages[0].parts[3].text, "SLICE 2"));
    CHECK(!strcmp(in.messages[0].parts[4].text, "Findings?"));
    job_input_free(&in);
    /* Other modalities: the prompt first, then the images, no labels. */
    snprintf(body, sizeof body, "{\"prompt\":\"Findings?\",\"images\":[\"%s\",\"%s\"],\"modality\":\"CXR\"}",
             png, png);
    CHECK_EQ_INT(request_parse(ENDPOINT_ANALYZE, body, strlen(body), &limits, &in, &e), 0);
    CHECK_EQ_INT(in.messages[0].n_parts, 3);
    CHECK(!strcmp(in.messages[0].parts[0].text, "Findings?"));
    CHECK_EQ_INT(in.max_tokens, 16);
    job_input_free(&in);
}

TEST(http_request_parse_errors_name_the_field) {
    JobInput in;
    RequestError e;
    const char *b = "{\"prompt\":\"x\",\"max_tokens\":101}";
    CHECK_EQ_INT(request_parse(ENDPOINT_GENERATE, b, strlen(b), &limits, &in, &e), -1);
    CHECK_EQ_INT(e.status, 400);
    CHECK_STR_CONTAINS(e.message, "max_tokens");
    b = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"http://x/a.png\"}}]}]}";
    CHECK_EQ_INT(request_parse(ENDPOINT_CHAT, b, strlen(b), &limits, &in, &e), -1);
    CHECK_STR_CONTAINS(e.message, "messages[0].content[0]");
    RequestLimits text_only = limits;
    text_only.vision = 0;
    b = "{\"prompt\":\"x\",\"images\":[\"aGVsbG8=\"]}";
    CHECK_EQ_INT(request_parse(ENDPOINT_ANALYZE, b, strlen(b), &text_only, &in, &e), -1);
    CHECK_STR_CONTAINS(e.message, "vision");
}

TEST(http_job_queue_bound_and_remove) {
    JobQueue q;
    job_queue_init(&q, 2);
    Job *a = job_new(), *b = job_new(), *c = job_new();
    CHECK_EQ_INT(job_queue_push(&q, a), 0);
    CHECK_EQ_INT(job_queue_push(&q, b), 0);
    CHECK_EQ_INT(job_queue_push(&q, c), -1);
    CHECK_EQ_INT(job_queue_remove(&q, a), 1);
    CHECK_EQ_INT(job_queue_push(&q, c), 0);
    CHECK(job_queue_pop(&q) == b);
    CHECK_EQ_INT(job_queue_remove(&q, b), 0); /* running: the worker owns it */
    CHECK(job_queue_pop(&q) == c);
    job_queue_stop(&q);
    CHECK(job_queue_pop(&q) == NULL);
    job_free(a);
    job_free(b);
    job_free(c);
    job_queue_destroy(&q);
}

TEST(http_metrics_render) {
    Metrics m;
    metrics_init(&m);
    metrics_count_request(&m, "analyze", 200);
    metrics_count_request(&m, "analyze", 200);
    metrics_count_request(&m, "analyze", 503);
    metrics_observe(&m.request_seconds, 0.02);
    metrics_observe(&m.request_seconds, 500);
    MetricsGauges g = {3, 1, 1, 12.5};
    size_t len;
    char *text = metrics_render(&m, &g, &len);
    CHECK_STR_CONTAINS(text, "medgemma_requests_total{endpoint=\"analyze\",status=\"200\"} 2\n");
    CHECK_STR_CONTAINS(text, "medgemma_requests_total{endpoint=\"analyze\",status=\"503\"} 1\n");
    CHECK_STR_CONTAINS(text, "medgemma_request_duration_seconds_bucket{le=\"0.025\"} 1\n");
    CHECK_STR_CONTAINS(text, "medgemma_request_duration_seconds_bucket{le=\"+Inf\"} 2\n");
    CHECK_STR_CONTAINS(text, "medgemma_queue_depth 3\n");
    CHECK_EQ_INT(strlen(text), len);
    free(text);
}
