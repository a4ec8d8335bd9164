/* The request pipeline (pipeline/pipeline.h) on the tiny random checkpoint: the
 * streamed text adds up to the answer, stop strings cut it, and each failure
 * comes back as its kind (input, schema, cancelled) with a message naming what
 * was wrong, the pipeline usable afterwards. */
#include <stdlib.h>
#include <string.h>

#include "engine/synth_model.h"
#include "pipeline/pipeline.h"
#include "tests/unit/test.h"

static Pipeline *open_tiny(int max_context) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/tiny-pipeline", test_tmpdir());
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "r");
    Error err;
    if (f)
        fclose(f);
    else {
        SynthOptions so = {.preset = "tiny", .out_dir = dir, .seed = 5, .old_layout = -1, .n_threads = 2};
        if (synth_model_write(&so, &err) != 0)
            test_skip("synth-model tiny could not be written: %s", err.message);
    }
    EngineOptions eo = {.model_dir = dir, .backend = BACKEND_CPU, .n_threads = 2, .max_context = max_context};
    Pipeline *p = NULL;
    if (pipeline_open(&p, &eo, 1, &err) != 0)
        test_fail(__FILE__, __LINE__, "pipeline_open: %s", err.message);
    return p;
}

typedef struct {
    char text[8192];
    size_t len;
    int calls, stop_after;
} Streamed;

static void on_text(void *user, const char *text, size_t n) {
    Streamed *s = user;
    if (s->len + n < sizeof s->text) {
        memcpy(s->text + s->len, text, n);
        s->len += n;
        s->text[s->len] = 0;
    }
    s->calls++;
}

static int stop_soon(void *user) {
    Streamed *s = user;
    return ++s->stop_after > 3;
}

static PipelineRequest text_request(const ChatMessage *msg, Streamed *s) {
    PipelineRequest rq = {
        .messages = msg, .n_messages = 1, .max_tokens = 20, .top_p = 1, .on_text = on_text, .user = s};
    return rq;
}

TEST(pipeline_stream_adds_up_to_the_answer) {
    Pipeline *p = open_tiny(256);
    if (!p)
        return;
    ChatPart part = {CHAT_PART_TEXT, "hello there"};
    ChatMessage msg = {"user", &part, 1};
    Streamed s = {{0}};
    PipelineRequest rq = text_request(&msg, &s);
    PipelineResult res;
    int engine_rc = 0;
    Error err;
    CHECK(pipeline_run(p, &rq, &res, &engine_rc, &err) == 0);
    CHECK(res.text != NULL && !strcmp(res.text, s.text));
    CHECK(res.completion_tokens == 20 && !strcmp(res.finish, "length"));
    CHECK(res.prompt_tokens > 3);
    /* a stop string made of the answer's own text cuts it there */
    if (res.text && strlen(res.text) > 4) {
        char stop[3] = {res.text[2], res.text[3], 0};
        const char *stops[] = {stop};
        Streamed s2 = {{0}};
        PipelineRequest rq2 = text_request(&msg, &s2);
        rq2.stops = stops;
        rq2.n_stops = 1;
        PipelineResult res2;
        CHECK(pipeline_run(p, &rq2, &res2, &engine_rc, &err) == 0);
        CHECK(res2.text && strlen(res2.text) <= 2 && !strcmp(res2.finish, "stop"));
        CHECK(res2.text && !strcmp(res2.text, s2.text));
        pipeline_result_free(&res2);
    }
    pipeline_result_free(&res);
    pipeline_close(p);
}

TEST(pipeline_failures_have_kinds) {
    Pipeline *p = open_tiny(64);
    if (!p)
        return;
    int engine_rc = 0;
    Error err;
    PipelineResult res;
    Streamed s = {{0}};
    /* text spelling the image marker: input error */
    ChatPart marker = {CHAT_PART_TEXT, "look <start_of_image> here"};
    ChatMessage m1 = {"user", &marker, 1};
    PipelineRequest rq = text_request(&m1, &s);
    CHECK(pipeline_run(p, &rq, &res, &engine_rc, &err) == PIPELINE_ERR_INPUT);
    CHECK_STR_CONTAINS(err.message, "<start_of_image>");
    /* longer than the context */
    char *long_text = malloc(4000);
    for (int i = 0; i < 3999; i++)
        long_text[i] = i % 2 ? ' ' : 'a' + i % 26;
    long_text[3999] = 0;
    ChatPart lp = {CHAT_PART_TEXT, long_text};
    ChatMessage m2 = {"user", &lp, 1};
    rq = text_request(&m2, &s);
    CHECK(pipeline_run(p, &rq, &res, &engine_rc, &err) == PIPELINE_ERR_INPUT);
    CHECK_STR_CONTAINS(err.message, "longer than the context");
    free(long_text);
    /* an image that is not one: input error naming it */
    ChatPart parts[2] = {{CHAT_PART_TEXT, "what is this"}, {CHAT_PART_IMAGE, NULL}};
    ChatMessage m3 = {"user", parts, 2};
    const uint8_t junk[] = "not an image at all";
    PipelineImage img = {junk, sizeof junk, "images[0]"};
    rq = text_request(&m3, &s);
    rq.images = &img;
    rq.n_images = 1;
    CHECK(pipeline_run(p, &rq, &res, &engine_rc, &err) == PIPELINE_ERR_INPUT);
    CHECK_STR_CONTAINS(err.message, "images[0]");
    /* a schema that does not compile */
    ChatPart hi = {CHAT_PART_TEXT, "hi"};
    ChatMessage m4 = {"user", &hi, 1};
    rq = text_request(&m4, &s);
    rq.format = PIPELINE_JSON_SCHEMA;
    rq.json_schema = "{\"type\": \"no-such-type\"}";
    CHECK(pipeline_run(p, &rq, &res, &engine_rc, &err) == PIPELINE_ERR_SCHEMA);
    /* cancelled by should_stop */
    rq = text_request(&m4, &s);
    rq.should_stop = stop_soon;
    CHECK(pipeline_run(p, &rq, &res, &engine_rc, &err) == PIPELINE_ERR_CANCELLED);
    /* and the pipeline still works, JSON object format included */
    Streamed s5 = {{0}};
    rq = text_request(&m4, &s5);
    rq.format = PIPELINE_JSON_OBJECT;
    rq.thinking_budget = -1;
    rq.max_tokens = 40;
    CHECK(pipeline_run(p, &rq, &res, &engine_rc, &err) == 0);
    CHECK(res.text && res.text[0] == '{');
    pipeline_result_free(&res);
    pipeline_close(p);
}
