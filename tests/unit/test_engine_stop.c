/* engine_generate's end of generation, end to end on a real checkpoint
 * (synth-model preset "tiny", greedy decoding): a stop id ends the request
 * with FINISH_STOP and is neither passed to the callback nor counted; the
 * token budget ends it with FINISH_LENGTH after exactly max_new_tokens;
 * a callback's nonzero return ends it with FINISH_CANCELLED and the next
 * request on the same engine gives the same tokens as on a fresh engine.
 *
 * The stop ids are made to matter by changing the checkpoint, never the
 * engine: a copy of the model directory either lists a token the model is
 * measured to produce in generation_config.json's eos_token_id, or has its
 * tied embedding row for <end_of_turn> (106) or <eos> (1) set to twice the
 * row of the measured first greedy token, which doubles that id's logit
 * (the output head is the embedding, so that row's logit is h . row) and
 * makes it the greedy choice, the way a trained model picks 106. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/safetensors.h"
#include "engine/synth_model.h"
#include "tests/unit/test.h"
#include "util/bf16.h"

#define MAX_NEW 8
#define END_OF_TURN 106
#define EOS 1

static const int32_t prompt[10] = {2, 818, 5279, 529, 7001, 563, 1000, 2000, 3000, 4000};

typedef struct {
    int32_t ids[64];
    int n, cancel_at;
} Collected;

static int collect(void *user, int32_t id) {
    Collected *c = user;
    if (c->n < 64)
        c->ids[c->n] = id;
    c->n++;
    return c->cancel_at > 0 && c->n >= c->cancel_at;
}

/* The unmodified checkpoint, written once per test run. */
static const char *base_model(void) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/stop-base", test_tmpdir());
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (access(path, R_OK) == 0)
        return dir;
    SynthOptions so = {.preset = "tiny", .out_dir = dir, .seed = 3, .old_layout = -1, .n_threads = 2};
    Error err;
    if (synth_model_write(&so, &err) != 0)
        test_skip("synth-model tiny could not be written: %s", err.message);
    return dir;
}

/* Reads a whole file into a malloc'd buffer; NULL (and a test failure) on error. */
static uint8_t *read_whole(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        test_fail(__FILE__, __LINE__, "cannot open %s", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        test_fail(__FILE__, __LINE__, "cannot read %s", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static int write_whole(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, size, f) == size;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        test_fail(__FILE__, __LINE__, "cannot write %s", path);
    return ok ? 0 : -1;
}

/* A copy of the base model in test_tmpdir()/name: config.json copied,
 * generation_config.json listing eos_token_id [1, 106, extra_eos...], and
 * model.safetensors either a link to the base one (patch_row < 0) or a copy
 * whose embedding row patch_row is 2 x row source_row (exact in bf16).
 * Returns the directory, or NULL after a test failure. */
static const char *make_variant(const char *name, const int32_t *extra_eos, int n_extra, int patch_row,
                                int source_row) {
    static char dir[600];
    const char *base = base_model();
    char src[700], dst[700];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), name);
    if (mkdir(dir, 0700) != 0) {
        test_fail(__FILE__, __LINE__, "cannot create %s", dir);
        return NULL;
    }
    size_t size;
    snprintf(src, sizeof src, "%s/config.json", base);
    uint8_t *bytes = read_whole(src, &size);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    if (!bytes || write_whole(dst, bytes, size) != 0) {
        free(bytes);
        return NULL;
    }
    free(bytes);

    char gen[400];
    int len = snprintf(gen, sizeof gen, "{\"bos_token_id\": 2, \"eos_token_id\": [%d, %d", EOS, END_OF_TURN);
    for (int i = 0; i < n_extra; i++)
        len += snprintf(gen + len, sizeof gen - (size_t)len, ", %d", (int)extra_eos[i]);
    snprintf(gen + len, sizeof gen - (size_t)len, "], \"pad_token_id\": 0}\n");
    snprintf(dst, sizeof dst, "%s/generation_config.json", dir);
    if (write_whole(dst, gen, strlen(gen)) != 0)
        return NULL;

    snprintf(src, sizeof src, "%s/model.safetensors", base);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    if (patch_row < 0) {
        if (symlink(src, dst) != 0) {
            test_fail(__FILE__, __LINE__, "cannot link %s", dst);
            return NULL;
        }
        return dir;
    }
    bytes = read_whole(src, &size);
    if (!bytes)
        return NULL;
    TensorInfo *tensors = NULL;
    size_t n_tensors = 0;
    Error err;
    if (safetensors_parse(bytes, size, src, &tensors, &n_tensors, &err) != 0) {
        test_fail(__FILE__, __LINE__, "%s", err.message);
        free(bytes);
        return NULL;
    }
    const TensorInfo *embed = NULL;
    for (size_t i = 0; i < n_tensors; i++)
        if (strstr(tensors[i].name, "embed_tokens.weight"))
            embed = &tensors[i];
    int ok = embed && embed->dtype == DTYPE_BF16 && embed->n_dims == 2 && patch_row < embed->shape[0] &&
             source_row >= 0 && source_row < embed->shape[0];
    if (ok) {
        int64_t width = embed->shape[1];
        bf16 *rows = (bf16 *)(uintptr_t)embed->data; /* points into our own buffer */
        for (int64_t j = 0; j < width; j++)
            rows[patch_row * width + j] = f32_to_bf16(2.0f * bf16_to_f32(rows[source_row * width + j]));
    } else {
        test_fail(__FILE__, __LINE__, "no bf16 [vocab, hidden] embed_tokens.weight holding row %d in %s",
                  patch_row, src);
    }
    tensor_infos_free(tensors, n_tensors);
    if (ok && write_whole(dst, bytes, size) != 0)
        ok = 0;
    free(bytes);
    return ok ? dir : NULL;
}

static Engine *open_engine(const char *dir) {
    Engine *e;
    Error err;
    EngineOptions eo = {.model_dir = dir, .backend = BACKEND_CPU, .n_threads = 2, .max_context = 64};
    if (engine_open(&e, &eo, &err) != 0) {
        test_fail(__FILE__, __LINE__, "engine_open %s: %s", dir, err.message);
        return NULL;
    }
    return e;
}

/* One greedy request for the prompt; returns engine_generate's status. */
static int run_greedy(Engine *e, int max_new, Collected *c, GenerateResult *res) {
    Error err;
    GenerateRequest rq = {.tokens = prompt,
                          .n_tokens = 10,
                          .max_new_tokens = max_new,
                          .temperature = 0,
                          .top_p = 1,
                          .on_token = collect,
                          .user = c};
    int rc = engine_generate(e, &rq, res, &err);
    if (rc != 0)
        test_fail(__FILE__, __LINE__, "engine_generate: %s", err.message);
    return rc;
}

/* Opens dir, runs one greedy request, closes. */
static int generate_once(const char *dir, int max_new, Collected *c, GenerateResult *res) {
    Engine *e = dir ? open_engine(dir) : NULL;
    if (!e)
        return -1;
    int rc = run_greedy(e, max_new, c, res);
    engine_close(e);
    return rc;
}

static const char *finish_name(FinishReason r) {
    return r == FINISH_STOP        ? "stop"
           : r == FINISH_LENGTH    ? "length"
           : r == FINISH_CANCELLED ? "cancelled"
                                   : "?";
}

#define CHECK_FINISH(res, want)                                                                              \
    CHECK_MSG((res).finish_reason == (want), "finish_reason %s, expected %s",                                \
              finish_name((res).finish_reason), finish_name(want))

/* The base model's greedy tokens for the prompt; the reference every other
 * test measures against. Fails the test if the run is not a plain
 * MAX_NEW-token FINISH_LENGTH run. */
static int reference_run(Collected *ref) {
    GenerateResult res;
    *ref = (Collected){.n = 0};
    if (generate_once(base_model(), MAX_NEW, ref, &res) != 0)
        return -1;
    for (int i = 0; i < ref->n && i < 64; i++)
        CHECK_MSG(ref->ids[i] != EOS && ref->ids[i] != END_OF_TURN,
                  "stop id %d was passed to the callback as token %d", (int)ref->ids[i], i);
    CHECK_EQ_INT(ref->n, MAX_NEW);
    CHECK_EQ_INT(res.completion_tokens, MAX_NEW);
    CHECK_EQ_INT(res.prompt_tokens, 10);
    CHECK_FINISH(res, FINISH_LENGTH);
    return ref->n == MAX_NEW && res.finish_reason == FINISH_LENGTH ? 0 : -1;
}

TEST(engine_stop_length_after_exactly_max_new_tokens) {
    Collected ref;
    if (reference_run(&ref) != 0)
        return;
    /* a smaller budget gives a prefix of the same tokens, also FINISH_LENGTH */
    Collected c = {.n = 0};
    GenerateResult res;
    if (generate_once(base_model(), 3, &c, &res) != 0)
        return;
    CHECK_EQ_INT(c.n, 3);
    CHECK_EQ_INT(res.completion_tokens, 3);
    CHECK_FINISH(res, FINISH_LENGTH);
    CHECK(memcmp(c.ids, ref.ids, 3 * sizeof(int32_t)) == 0);
    /* no budget: nothing generated, no callback */
    Collected z = {.n = 0};
    if (generate_once(base_model(), 0, &z, &res) != 0)
        return;
    CHECK_EQ_INT(z.n, 0);
    CHECK_EQ_INT(res.completion_tokens, 0);
    CHECK_FINISH(res, FINISH_LENGTH);
}

TEST(engine_stop_on_first_token_from_generation_config) {
    Collected ref;
    if (reference_run(&ref) != 0)
        return;
    int32_t first = ref.ids[0];
    const char *dir = make_variant("stop-first", &first, 1, -1, 0);
    Collected c = {.n = 0};
    GenerateResult res;
    if (generate_once(dir, MAX_NEW, &c, &res) != 0)
        return;
    CHECK_FINISH(res, FINISH_STOP);
    CHECK_MSG(c.n == 0,
              "the callback got %d token(s) (first %d) though the first greedy token %d is a stop id", c.n,
              c.n ? (int)c.ids[0] : -1, (int)first);
    CHECK_EQ_INT(res.completion_tokens, 0);
    CHECK_EQ_INT(res.prompt_tokens, 10);
}

TEST(engine_stop_on_second_token_from_generation_config) {
    Collected ref;
    if (reference_run(&ref) != 0)
        return;
    /* the first step whose token did not appear before (normally step 1) */
    int j = 1;
    for (; j < MAX_NEW; j++) {
        int seen = 0;
        for (int i = 0; i < j; i++)
            seen |= ref.ids[i] == ref.ids[j];
        if (!seen)
            break;
    }
    if (j == MAX_NEW) {
        test_fail(__FILE__, __LINE__, "the greedy run repeats token %d %d times; no later token to stop on",
                  (int)ref.ids[0], MAX_NEW);
        return;
    }
    int32_t stop = ref.ids[j];
    const char *dir = make_variant("stop-second", &stop, 1, -1, 0);
    Collected c = {.n = 0};
    GenerateResult res;
    if (generate_once(dir, MAX_NEW, &c, &res) != 0)
        return;
    CHECK_FINISH(res, FINISH_STOP);
    CHECK_MSG(c.n == j, "the callback got %d token(s), expected the %d before stop id %d", c.n, j, (int)stop);
    CHECK_EQ_INT(res.completion_tokens, j);
    CHECK(c.n == j && memcmp(c.ids, ref.ids, (size_t)j * sizeof(int32_t)) == 0);
    for (int i = 0; i < c.n && i < 64; i++)
        CHECK_MSG(c.ids[i] != stop, "stop id %d was passed to the callback as token %d", (int)stop, i);
}

/* Row `row` of the embedding set to 2 x the first greedy token's row. */
static void check_forced_first_token(const char *name, int32_t row, int expect_stop) {
    Collected ref;
    if (reference_run(&ref) != 0)
        return;
    const char *dir = make_variant(name, NULL, 0, row, ref.ids[0]);
    Collected c = {.n = 0};
    GenerateResult res;
    if (generate_once(dir, MAX_NEW, &c, &res) != 0)
        return;
    if (!expect_stop) {
        /* control: the patch makes `row` the greedy first token */
        CHECK_MSG(c.n >= 1 && c.ids[0] == row, "first token %d, expected the patched row %d",
                  c.n ? (int)c.ids[0] : -1, (int)row);
        CHECK_FINISH(res, FINISH_LENGTH);
        CHECK_EQ_INT(c.n, MAX_NEW);
        return;
    }
    CHECK_FINISH(res, FINISH_STOP);
    CHECK_MSG(c.n == 0,
              "the callback got %d token(s) (first %d), expected none: stop id %d was the greedy choice", c.n,
              c.n ? (int)c.ids[0] : -1, (int)row);
    CHECK_EQ_INT(res.completion_tokens, 0);
}

TEST(engine_stop_control_patched_row_becomes_first_token) {
    /* 4242: not a stop id, not in the prompt; the reference must not hold it */
    Collected ref;
    if (reference_run(&ref) != 0)
        return;
    for (int i = 0; i < MAX_NEW; i++)
        if (ref.ids[i] == 4242)
            test_skip("the reference run already produces 4242; the control would prove nothing");
    check_forced_first_token("force-4242", 4242, 0);
}

TEST(engine_stop_on_end_of_turn_106) {
    check_forced_first_token("force-106", END_OF_TURN, 1);
}

TEST(engine_stop_on_eos_1) {
    check_forced_first_token("force-1", EOS, 1);
}

TEST(engine_stop_ids_in_the_prompt_do_not_stop) {
    /* chat prompts hold <end_of_turn>; only generated stop ids end a request */
    Engine *e = open_engine(base_model());
    if (!e)
        return;
    int32_t chat[8] = {2, 105, 2364, 107, 7001, 106, 1, 107};
    Collected c = {.n = 0};
    GenerateRequest rq = {
        .tokens = chat, .n_tokens = 8, .max_new_tokens = 4, .top_p = 1, .on_token = collect, .user = &c};
    GenerateResult res;
    Error err;
    CHECK_MSG(engine_generate(e, &rq, &res, &err) == 0, "%s", err.message);
    for (int i = 0; i < c.n && i < 64; i++)
        CHECK(c.ids[i] != EOS && c.ids[i] != END_OF_TURN);
    CHECK_EQ_INT(c.n, 4);
    CHECK_FINISH(res, FINISH_LENGTH);
    engine_close(e);
}

TEST(engine_stop_cancel_then_next_request_is_identical) {
    Collected ref;
    if (reference_run(&ref) != 0)
        return;
    Engine *e = open_engine(base_model());
    if (!e)
        return;
    GenerateResult res;
    for (int cancel_at = 1; cancel_at <= 3; cancel_at += 2) {
        Collected c = {.n = 0, .cancel_at = cancel_at};
        if (run_greedy(e, MAX_NEW, &c, &res) != 0)
            break;
        CHECK_FINISH(res, FINISH_CANCELLED);
        CHECK_EQ_INT(c.n, cancel_at);
        CHECK_EQ_INT(res.completion_tokens, cancel_at);
        CHECK(c.n == cancel_at && memcmp(c.ids, ref.ids, (size_t)cancel_at * sizeof(int32_t)) == 0);
        /* the next request on this engine matches the fresh engine's run */
        Collected d = {.n = 0};
        if (run_greedy(e, MAX_NEW, &d, &res) != 0)
            break;
        CHECK_FINISH(res, FINISH_LENGTH);
        CHECK_EQ_INT(d.n, MAX_NEW);
        CHECK_MSG(
            d.n == MAX_NEW && memcmp(d.ids, ref.ids, MAX_NEW * sizeof(int32_t)) == 0,
            "after a request cancelled at token %d, the next request's tokens differ from a fresh engine's",
            cancel_at);
    }
    engine_close(e);
}

TEST(engine_stop_then_next_request_is_identical) {
    /* a request ended by a stop id leaves the engine as a fresh one */
    Collected ref;
    if (reference_run(&ref) != 0)
        return;
    int32_t stop = ref.ids[2];
    const char *dir = make_variant("stop-then-next", &stop, 1, -1, 0);
    Collected fresh = {.n = 0};
    GenerateResult res;
    if (!dir || generate_once(dir, MAX_NEW, &fresh, &res) != 0)
        return;
    CHECK_FINISH(res, FINISH_STOP);
    CHECK_MSG(fresh.n <= 2, "stop id %d (greedy token 3) ended the request after %d tokens", (int)stop,
              fresh.n);
    Engine *e = open_engine(dir);
    if (!e)
        return;
    for (int round = 0; round < 2; round++) {
        Collected c = {.n = 0};
        if (run_greedy(e, MAX_NEW, &c, &res) != 0)
            break;
        CHECK_FINISH(res, FINISH_STOP);
        CHECK_MSG(c.n == fresh.n && memcmp(c.ids, fresh.ids, (size_t)c.n * sizeof(int32_t)) == 0,
                  "request %d on one engine (stop id %d): %d tokens, a fresh engine gave %d", round + 1,
                  (int)stop, c.n, fresh.n);
        CHECK_EQ_INT(res.completion_tokens, c.n);
    }
    engine_close(e);
}
