/* grammar/'s command-line driver for the parity test, the random-walk
 * validity test and the mask benchmark (tests/grammar/, bench/grammar/).
 *
 *   grammar-tool compile TOKENIZER_JSON SCHEMA_FILE
 *       compiles; prints {"states":..,"build_ms":..,"cache_ms":..} or the error
 *   grammar-tool walk TOKENIZER_JSON SCHEMA_FILE SEED N
 *       N random walks (a random allowed token each step, biased to short
 *       tokens); prints each finished answer's text as one JSON string a line
 *   grammar-tool parity TOKENIZER_JSON FIXTURE_JSON
 *       replays xgrammar's walks (tests/grammar/make_parity_fixture.py) and
 *       compares every step's allowed set; prints "ok"/"FAIL" lines
 *   grammar-tool bench TOKENIZER_JSON FIXTURE_JSON
 *       per-token mask time over the fixture's walks: median and p99 (us)
 *   grammar-tool generate MODEL_DIR JOBS_JSON
 *       loads the model once and runs each job {"schema", "prompt",
 *       "temperature", "seed", "max_tokens"} through engine_generate with the
 *       schema as constraint (CPU backend); prints one JSON line per job:
 *       {"job", "text" (thinking trace removed), "finish", "complete",
 *        "tokens", "decode_ms", "mask_us_median"} or {"job", "error"}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "engine/engine.h"
#include "grammar/grammar.h"
#include "grammar/vocab.h"
#include "tokenizer/answer.h"
#include "tokenizer/chat.h"
#include "tokenizer/json_text.h"
#include "tokenizer/tokenizer.h"

#define END_OF_TURN 106

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int load(const char *tok_path, Tokenizer **t, GrammarVocab **v) {
    Error err;
    if (tokenizer_load(t, tok_path, &err) != 0 || grammar_vocab_new(v, *t, 262208, END_OF_TURN, &err) != 0) {
        fprintf(stderr, "grammar-tool: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int cmd_compile(const char *tok_path, const char *schema_path) {
    Tokenizer *t;
    GrammarVocab *v;
    if (load(tok_path, &t, &v) != 0)
        return 2;
    size_t len;
    char *schema = read_file(schema_path, &len);
    if (!schema) {
        fprintf(stderr, "grammar-tool: cannot read %s\n", schema_path);
        return 2;
    }
    Grammar *g;
    Error err;
    int rc = 0;
    if (grammar_compile_schema(&g, v, schema, len, NULL, &err) != 0) {
        printf("{\"error\": \"%s\"}\n", err.message);
        rc = 1;
    } else {
        GrammarStats s;
        grammar_stats(g, &s);
        printf("{\"states\": %u, \"cached_states\": %u, \"uncertain\": %llu, \"build_ms\": %.3f, "
               "\"cache_ms\": %.3f, \"vocab_ms\": %.1f}\n",
               s.n_states, s.n_cached_states, (unsigned long long)s.n_uncertain, s.build_ms, s.cache_ms,
               v->build_ms);
        grammar_free(g);
    }
    free(schema);
    grammar_vocab_free(v);
    tokenizer_free(t);
    return rc;
}

/* Picks an allowed id: the end token when allowed (half the time), else a
 * short token (<= 2 bytes) 70% of the time, else any. */
static int32_t pick(const GrammarVocab *v, const uint32_t *mask, int words, const Tokenizer *t, uint64_t *rng,
                    int32_t *cands, int32_t *shorts) {
    int n = 0, ns = 0;
    for (int w = 0; w < words; w++)
        for (uint32_t bits = mask[w]; bits; bits &= bits - 1) {
            int32_t id = w * 32 + __builtin_ctz(bits);
            cands[n++] = id;
            const char *p = tokenizer_piece(t, id);
            if (p && strlen(p) <= 2)
                shorts[ns++] = id;
        }
    (void)v;
    if (n == 0)
        return -1;
    *rng = splitmix64(*rng);
    int end_ok = 0;
    for (int i = 0; i < n; i++)
        end_ok |= cands[i] == END_OF_TURN;
    if (end_ok && (*rng & 1))
        return END_OF_TURN;
    *rng = splitmix64(*rng);
    if (ns > 0 && (*rng % 10) < 7)
        return shorts[(*rng >> 8) % (uint64_t)ns];
    return cands[(*rng >> 8) % (uint64_t)n];
}

static int cmd_walk(const char *tok_path, const char *schema_path, uint64_t seed, int n_walks) {
    Tokenizer *t;
    GrammarVocab *v;
    if (load(tok_path, &t, &v) != 0)
        return 2;
    size_t len;
    char *schema = read_file(schema_path, &len);
    Grammar *g;
    Error err;
    if (!schema || grammar_compile_schema(&g, v, schema, len, NULL, &err) != 0) {
        fprintf(stderr, "grammar-tool: %s\n", schema ? err.message : "cannot read the schema");
        return 2;
    }
    int words = grammar_mask_words(v);
    uint32_t *mask = malloc((size_t)words * 4);
    int32_t *cands = malloc((size_t)words * 32 * 4), *shorts = malloc((size_t)words * 32 * 4);
    uint64_t rng = seed;
    for (int w = 0; w < n_walks; w++) {
        GrammarMatcher *m = grammar_matcher_new(g);
        int32_t ids[4096];
        int n = 0;
        int finished = 0;
        while (n < 4096) {
            grammar_matcher_fill_mask(m, mask);
            int32_t id = pick(v, mask, words, t, &rng, cands, shorts);
            if (id < 0) {
                printf("{\"error\": \"empty mask after %d tokens\"}\n", n);
                break;
            }
            if (grammar_matcher_accept(m, id) != 0) {
                printf("{\"error\": \"token %d from the mask was rejected\"}\n", id);
                break;
            }
            if (id == END_OF_TURN) {
                finished = 1;
                break;
            }
            ids[n++] = id;
        }
        char *text;
        size_t tl;
        if (tokenizer_decode(t, ids, (size_t)n, 0, &text, &tl, &err) == 0) {
            JsonBuf b = {0};
            json_string_write(&b, text, tl);
            printf("{\"finished\": %s, \"text\": %.*s}\n", finished ? "true" : "false", (int)b.len, b.data);
            free(b.data);
            free(text);
        }
        grammar_matcher_free(m);
    }
    free(mask);
    free(cands);
    free(shorts);
    grammar_free(g);
    free(schema);
    grammar_vocab_free(v);
    tokenizer_free(t);
    return 0;
}

/* The parity fixture's set digest: count and the sum of splitmix64(id) over
 * the compared ids (those not excluded by the documented differences). */
typedef struct {
    uint32_t count;
    uint64_t sum;
} Digest;

static Digest digest(const uint32_t *mask, int words, const uint8_t *excluded) {
    Digest d = {0, 0};
    for (int w = 0; w < words; w++)
        for (uint32_t bits = mask[w]; bits; bits &= bits - 1) {
            int32_t id = w * 32 + __builtin_ctz(bits);
            if (excluded[id])
                continue;
            d.count++;
            d.sum += splitmix64((uint64_t)id);
        }
    return d;
}

/* ids excluded from the comparison: the documented deliberate differences
 * (control pieces; for length-bounded strings, tokens with a backslash or a
 * control byte). */
static void exclusions(const Tokenizer *t, int n_bits, int length_bounded, uint8_t *ex) {
    int n_ids = tokenizer_vocab_size(t);
    for (int id = 0; id < n_bits; id++) {
        ex[id] = 0;
        if (id == END_OF_TURN)
            continue;
        const char *p = id < n_ids ? tokenizer_piece(t, id) : NULL;
        if (!p || id >= 262144 || tokenizer_is_special(t, id) || !strcmp(p, "<mask>") ||
            !strcmp(p, "[multimodal]") || (!strncmp(p, "<unused", 7) && p[strlen(p) - 1] == '>')) {
            ex[id] = 1;
            continue;
        }
        if (length_bounded) {
            int b = tokenizer_byte_fallback(t, id);
            if (b >= 0 ? (b < 0x20 || b == '\\') : (strpbrk(p, "\\") != NULL))
                ex[id] = 1;
            for (const unsigned char *q = (const unsigned char *)p; *q && b < 0; q++)
                if (*q < 0x20)
                    ex[id] = 1;
        }
    }
}

static int cmd_parity(const char *tok_path, const char *fixture_path, int bench) {
    Tokenizer *t;
    GrammarVocab *v;
    if (load(tok_path, &t, &v) != 0)
        return 2;
    size_t len;
    char *text = read_file(fixture_path, &len);
    cJSON *fx = text ? cJSON_Parse(text) : NULL;
    if (!fx) {
        fprintf(stderr, "grammar-tool: cannot read the fixture %s\n", fixture_path);
        return 2;
    }
    int words = grammar_mask_words(v);
    uint32_t *mask = malloc((size_t)words * 4);
    uint8_t *ex = malloc((size_t)words * 32);
    double *times = malloc(sizeof(double) * 200000);
    size_t n_times = 0;
    int failed = 0, steps = 0, schemas = 0;
    const cJSON *cases = cJSON_GetObjectItem(fx, "cases");
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        char *schema = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "schema"));
        exclusions(t, words * 32 > 262208 ? 262208 : words * 32,
                   cJSON_IsTrue(cJSON_GetObjectItem(c, "length_bounded")), ex);
        Grammar *g;
        Error err;
        if (grammar_compile_schema(&g, v, schema, strlen(schema), NULL, &err) != 0) {
            printf("FAIL parity_%s: compile: %s\n", name, err.message);
            failed++;
            free(schema);
            continue;
        }
        int case_failed = 0, case_steps = 0;
        const cJSON *walk;
        int walk_i = -1;
        cJSON_ArrayForEach(walk, cJSON_GetObjectItem(c, "walks")) {
            walk_i++;
            GrammarMatcher *m = grammar_matcher_new(g);
            const cJSON *step;
            int k = 0;
            cJSON_ArrayForEach(step, walk) {
                double t0 = now_us();
                grammar_matcher_fill_mask(m, mask);
                double t1 = now_us();
                if (n_times < 200000)
                    times[n_times++] = t1 - t0;
                Digest d = digest(mask, words, ex);
                uint32_t want_count = (uint32_t)cJSON_GetArrayItem(step, 1)->valuedouble;
                uint64_t want_sum = strtoull(cJSON_GetArrayItem(step, 2)->valuestring, NULL, 16);
                if (!bench && (d.count != want_count || d.sum != want_sum) && case_failed < 3) {
                    printf("FAIL parity_%s: walk %d step %d: %u allowed, xgrammar %u\n", name, walk_i, k,
                           d.count, want_count);
                    case_failed++;
                }
                int32_t tok = (int32_t)cJSON_GetArrayItem(step, 0)->valuedouble;
                if (tok < 0)
                    break;
                if (grammar_matcher_accept(m, tok) != 0) {
                    if (!bench)
                        printf("FAIL parity_%s: walk %d step %d: token %d (xgrammar's pick) rejected\n", name,
                               walk_i, k, tok);
                    case_failed++;
                    break;
                }
                k++;
                case_steps++;
            }
            grammar_matcher_free(m);
        }
        if (!bench && !case_failed)
            printf("ok parity_%s (%d steps)\n", name, case_steps);
        failed += case_failed > 0;
        steps += case_steps;
        schemas++;
        grammar_free(g);
        free(schema);
    }
    if (bench) {
        int cmp(const void *a, const void *b);
        qsort(times, n_times, sizeof *times, cmp);
        printf("{\"steps\": %zu, \"median_us\": %.2f, \"p99_us\": %.2f, \"max_us\": %.2f}\n", n_times,
               times[n_times / 2], times[(size_t)(n_times * 0.99)], times[n_times - 1]);
    } else
        printf("# parity: %d schemas, %d steps, %d schemas failed\n", schemas, steps, failed);
    free(times);
    free(mask);
    free(ex);
    cJSON_Delete(fx);
    free(text);
    grammar_vocab_free(v);
    tokenizer_free(t);
    return failed ? 1 : 0;
}

/* Prints the allowed ids after accepting ids[0..n) (debugging a parity step). */
static int cmd_mask(const char *tok_path, const char *schema_path, char **ids, int n) {
    Tokenizer *t;
    GrammarVocab *v;
    if (load(tok_path, &t, &v) != 0)
        return 2;
    size_t len;
    char *schema = read_file(schema_path, &len);
    Grammar *g;
    Error err;
    if (!schema || grammar_compile_schema(&g, v, schema, len, NULL, &err) != 0) {
        fprintf(stderr, "grammar-tool: %s\n", schema ? err.message : "cannot read the schema");
        return 2;
    }
    GrammarMatcher *m = grammar_matcher_new(g);
    for (int i = 0; i < n; i++)
        if (grammar_matcher_accept(m, atoi(ids[i])) != 0) {
            printf("rejected %s at %d\n", ids[i], i);
            return 1;
        }
    int words = grammar_mask_words(v);
    uint32_t *mask = malloc((size_t)words * 4);
    grammar_matcher_fill_mask(m, mask);
    for (int w = 0; w < words; w++)
        for (uint32_t bits = mask[w]; bits; bits &= bits - 1)
            printf("%d\n", w * 32 + __builtin_ctz(bits));
    free(mask);
    grammar_matcher_free(m);
    grammar_free(g);
    free(schema);
    grammar_vocab_free(v);
    tokenizer_free(t);
    return 0;
}

typedef struct {
    TokenStream *stream;
    JsonBuf text;
    int failed;
} GenOut;

static int gen_on_token(void *user, int32_t id) {
    GenOut *o = user;
    char *bytes;
    size_t n;
    Error err;
    if (token_stream_push(o->stream, id, &bytes, &n, &err) != 0 || json_buf_append(&o->text, bytes, n) != 0) {
        o->failed = 1;
        return 1;
    }
    return 0;
}

static int cmd_generate(const char *model_dir, const char *jobs_path) {
    Error err;
    Engine *engine = NULL;
    EngineOptions eo = {model_dir, BACKEND_CPU, 0, 4096};
    if (engine_open(&engine, &eo, &err) != 0) {
        fprintf(stderr, "grammar-tool: %s\n", err.message);
        return 2;
    }
    EngineInfo info;
    engine_info(engine, &info);
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    Tokenizer *t;
    GrammarVocab *v;
    if (tokenizer_load(&t, path, &err) != 0 ||
        grammar_vocab_new(&v, t, info.vocab_size, tokenizer_token_id(t, "<end_of_turn>"), &err) != 0) {
        fprintf(stderr, "grammar-tool: %s\n", err.message);
        return 2;
    }
    size_t len;
    char *text = read_file(jobs_path, &len);
    cJSON *jobs = text ? cJSON_Parse(text) : NULL;
    if (!jobs) {
        fprintf(stderr, "grammar-tool: cannot read %s\n", jobs_path);
        return 2;
    }
    int i = 0;
    const cJSON *job;
    cJSON_ArrayForEach(job, jobs) {
        const cJSON *js = cJSON_GetObjectItem(job, "schema");
        char *schema = cJSON_IsNull(js) ? NULL : cJSON_PrintUnformatted(js); /* null: free text */
        const char *prompt = cJSON_GetObjectItem(job, "prompt")->valuestring;
        Grammar *g = NULL;
        GrammarMatcher *m = NULL;
        char *prompt_text = NULL;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        int n_img = 0;
        ChatPart part = {CHAT_PART_TEXT, prompt};
        ChatMessage msg = {"user", &part, 1};
        GenOut out = {0};
        out.stream = token_stream_new(t, 1);
        if ((schema && (grammar_compile_schema(&g, v, schema, strlen(schema), NULL, &err) != 0 ||
                        !(m = grammar_matcher_new(g)))) ||
            chat_render(&msg, 1, 1, &prompt_text, &err) != 0 ||
            prompt_tokenize(t, prompt_text, 0, &ids, &n_ids, &n_img, &err) != 0) {
            printf("{\"job\": %d, \"error\": \"%s\"}\n", i, err.message);
        } else {
            GenerateRequest rq = {
                .tokens = ids,
                .n_tokens = (int)n_ids,
                .max_new_tokens = cJSON_GetObjectItem(job, "max_tokens")->valueint,
                .temperature = (float)cJSON_GetObjectItem(job, "temperature")->valuedouble,
                .top_p = 1.0f,
                .seed = (uint64_t)cJSON_GetObjectItem(job, "seed")->valuedouble,
                .on_token = gen_on_token,
                .user = &out,
                .constraint = m,
            };
            GenerateResult res;
            if (engine_generate(engine, &rq, &res, &err) != 0) {
                printf("{\"job\": %d, \"error\": \"%s\"}\n", i, err.message);
            } else {
                char *rest;
                size_t n_rest;
                if (token_stream_flush(out.stream, &rest, &n_rest) == 0)
                    json_buf_append(&out.text, rest, n_rest);
                json_buf_append(&out.text, "", 1);
                char *visible = answer_strip_thinking(out.text.data);
                JsonBuf q = {0};
                json_string_write(&q, visible ? visible : "", visible ? strlen(visible) : 0);
                printf("{\"job\": %d, \"text\": %.*s, \"finish\": \"%s\", \"complete\": %s, \"tokens\": %d, "
                       "\"thinking_tokens\": %d, \"decode_ms\": %.1f}\n",
                       i, (int)q.len, q.data, res.finish_reason == FINISH_STOP ? "stop" : "length",
                       m && grammar_matcher_is_finished(m) ? "true" : "false", res.completion_tokens,
                       res.thinking_tokens, res.decode_ms);
                fflush(stdout);
                free(q.data);
                free(visible);
            }
        }
        token_stream_free(out.stream);
        free(out.text.data);
        free(ids);
        free(prompt_text);
        grammar_matcher_free(m);
        grammar_free(g);
        free(schema);
        i++;
    }
    cJSON_Delete(jobs);
    free(text);
    grammar_vocab_free(v);
    tokenizer_free(t);
    engine_close(engine);
    return 0;
}

int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "compile"))
        return cmd_compile(argv[2], argv[3]);
    if (argc == 6 && !strcmp(argv[1], "walk"))
        return cmd_walk(argv[2], argv[3], strtoull(argv[4], NULL, 10), atoi(argv[5]));
    if (argc == 4 && !strcmp(argv[1], "parity"))
        return cmd_parity(argv[2], argv[3], 0);
    if (argc == 4 && !strcmp(argv[1], "generate"))
        return cmd_generate(argv[2], argv[3]);
    if (argc >= 4 && !strcmp(argv[1], "mask"))
        return cmd_mask(argv[2], argv[3], argv + 4, argc - 4);
    if (argc == 4 && !strcmp(argv[1], "bench"))
        return cmd_parity(argv[2], argv[3], 1);
    fprintf(stderr, "usage: grammar-tool compile|walk|parity|bench ... (see tests/grammar/grammar_tool.c)\n");
    return 2;
}
