/* Unit tests of tokenizer/: a small synthetic tokenizer.json (every feature
 * the loader accepts, and each one it must reject), and the real Gemma 3
 * tokenizer (unpacked from assets/ into the cache) for ids, decoding, the
 * token stream and bad input. Expected ids were produced by HF `tokenizers`
 * on the same files; tests/tokenizer/test_parity.py covers 2400 more strings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/test.h"
#include "tokenizer/tokenizer.h"

/* ---- a synthetic tokenizer.json */

typedef struct {
    const char *normalizer, *pre_tokenizer, *post_processor, *decoder, *model_extra, *merges, *added_extra;
} SynthFields;

static const char SYN_NORMALIZER[] =
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}";
static const char SYN_PRE[] = "{\"type\":\"Split\",\"pattern\":{\"String\":\"\\u2581\"},\"behavior\":"
                              "\"MergedWithPrevious\",\"invert\":false}";
static const char SYN_POST[] =
    "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<bos>\","
    "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],"
    "\"special_tokens\":{\"<bos>\":{\"id\":\"<bos>\",\"ids\":[2],\"tokens\":[\"<bos>\"]}}}";
static const char SYN_DECODER[] =
    "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},"
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}";
static const char SYN_MERGES[] = "[[\"a\",\"b\"],[\"\\u2581\",\"a\"],[\"b\",\"\\u2581\"],[\"a\",\"a\"],"
                                 "[\"\\u2581\",\"\\u2581\"]]";

/* Vocab: <pad> <eos> <bos> <unk>, <0x00>..<0xFF> (4..259), then a b ab ▁ ▁a b▁
 * aa é ▁▁ (260..268); added: the four specials, "<x>" (269, not special, not in
 * the vocab) and "<xy>" (270, special). */
static char *synth_json(const SynthFields *f) {
    size_t cap = 64 * 1024, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
    const char *specials[] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    for (int i = 0; i < 4; i++)
        n += (size_t)snprintf(s + n, cap - n,
                              "{\"id\":%d,\"content\":\"%s\",\"single_word\":false,\"lstrip\":false,"
                              "\"rstrip\":false,\"normalized\":false,\"special\":true},",
                              i, specials[i]);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"id\":269,\"content\":\"<x>\",\"special\":false},"
                          "{\"id\":270,\"content\":\"<xy>\",\"special\":true%s}],",
                          f->added_extra ? f->added_extra : "");
    n += (size_t)snprintf(s + n, cap - n,
                          "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":%s,\"decoder\":%s,"
                          "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\","
                          "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":true,"
                          "\"byte_fallback\":true,\"ignore_merges\":false%s,\"vocab\":{",
                          f->normalizer ? f->normalizer : SYN_NORMALIZER,
                          f->pre_tokenizer ? f->pre_tokenizer : SYN_PRE,
                          f->post_processor ? f->post_processor : SYN_POST,
                          f->decoder ? f->decoder : SYN_DECODER, f->model_extra ? f->model_extra : "");
    for (int i = 0; i < 4; i++)
        n += (size_t)snprintf(s + n, cap - n, "\"%s\":%d,", specials[i], i);
    for (int b = 0; b < 256; b++)
        n += (size_t)snprintf(s + n, cap - n, "\"<0x%02X>\":%d,", b, 4 + b);
    const char *pieces[] = {"a",        "b",  "ab",      "\\u2581",       "\\u2581a",
                            "b\\u2581", "aa", "\\u00e9", "\\u2581\\u2581"};
    for (int i = 0; i < 9; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s\"%s\":%d", i ? "," : "", pieces[i], 260 + i);
    snprintf(s + n, cap - n, "},\"merges\":%s}}", f->merges ? f->merges : SYN_MERGES);
    return s;
}

static const char *write_file(const char *name, const char *text, size_t len) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
    return path;
}

static Tokenizer *load_synth(const SynthFields *f, Error *err) {
    char *json = synth_json(f);
    const char *path = write_file("synth.json", json, strlen(json));
    free(json);
    Tokenizer *t = NULL;
    if (tokenizer_load(&t, path, err))
        return NULL;
    return t;
}

static int ids_equal(const Tokenizer *t, const char *text, int bos, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    Error err;
    if (tokenizer_encode(t, text, strlen(text), bos, &ids, &n, &err)) {
        test_fail(__FILE__, __LINE__, "encode \"%s\": %s", text, err.message);
        return 0;
    }
    int same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        char got[256] = "";
        for (size_t i = 0; i < n && strlen(got) < 200; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%d ", ids[i]);
        test_fail(__FILE__, __LINE__, "encode \"%s\" gave [%s]", text, got);
    }
    free(ids);
    return same;
}

#define EXPECT_IDS(t, text, bos, ...)                                                                        \
    do {                                                                                                     \
        const int32_t want_[] = {__VA_ARGS__};                                                               \
        ids_equal(t, text, bos, want_, sizeof want_ / sizeof want_[0]);                                      \
    } while (0)

static char *decode(const Tokenizer *t, const int32_t *ids, size_t n, int skip) {
    char *text = NULL;
    size_t len;
    Error err;
    if (tokenizer_decode(t, ids, n, skip, &text, &len, &err))
        test_fail(__FILE__, __LINE__, "decode: %s", err.message);
    else
        CHECK(text[len] == '\0');
    return text;
}

TEST(tokenizer_synth_split_merged_with_previous) {
    Error err;
    Tokenizer *t = load_synth(&(SynthFields){0}, &err);
    CHECK_MSG(t != NULL, "load: %s", err.message);
    if (!t)
        return;
    CHECK_EQ_INT(tokenizer_vocab_size(t), 271);
    EXPECT_IDS(t, "ab ab", 1, 2, 262, 263, 262); /* "ab▁" | "ab" */
    EXPECT_IDS(t, "a  b", 1, 2, 260, 263, 263, 261);
    EXPECT_IDS(t, " a", 1, 2, 263, 260);
    EXPECT_IDS(t, "aaab b ", 1, 2, 266, 262, 263, 265);
    EXPECT_IDS(t, "aaaa", 0, 266, 266);
    EXPECT_IDS(t, "  ", 1, 2, 263, 263);
    tokenizer_free(t);
}

TEST(tokenizer_synth_no_pre_tokenizer_merges_across_spaces) {
    Error err;
    Tokenizer *t = load_synth(&(SynthFields){.pre_tokenizer = "null"}, &err);
    CHECK_MSG(t != NULL, "load: %s", err.message);
    if (!t)
        return;
    EXPECT_IDS(t, "a  b", 1, 2, 260, 268, 261);
    EXPECT_IDS(t, " a", 1, 2, 264);
    EXPECT_IDS(t, "ab<bos>  ", 1, 2, 262, 2, 268);
    tokenizer_free(t);
}

TEST(tokenizer_synth_added_tokens_and_byte_fallback) {
    Error err;
    Tokenizer *t = load_synth(&(SynthFields){0}, &err);
    CHECK_MSG(t != NULL, "load: %s", err.message);
    if (!t)
        return;
    EXPECT_IDS(t, "<x>ab<xy><x", 1, 2, 269, 262, 270, 64, 124); /* longest match; "<x" is bytes */
    EXPECT_IDS(t, "z\xc3\xa9", 1, 2, 126, 267);                 /* z has no piece: <0x7A> */
    EXPECT_IDS(t, "", 1, 2);
    int32_t *ids = NULL;
    size_t n = 99;
    CHECK(tokenizer_encode(t, "", 0, 0, &ids, &n, &err) == 0);
    CHECK(ids != NULL);
    CHECK_EQ_INT(n, 0);
    free(ids);
    CHECK_EQ_INT(tokenizer_token_id(t, "<x>"), 269);
    CHECK_EQ_INT(tokenizer_token_id(t, "ab"), 262);
    CHECK_EQ_INT(tokenizer_token_id(t, "<x"), -1);
    CHECK(tokenizer_piece(t, 270) && strcmp(tokenizer_piece(t, 270), "<xy>") == 0);
    CHECK(tokenizer_piece(t, 271) == NULL);
    tokenizer_free(t);
}

TEST(tokenizer_synth_decode_byte_runs_like_hf) {
    Error err;
    Tokenizer *t = load_synth(&(SynthFields){0}, &err);
    if (!t) {
        test_fail(__FILE__, __LINE__, "load: %s", err.message);
        return;
    }
    /* HF decodes each run of byte pieces as a whole: [C3] | a | [A9 C3 A9]
     * (invalid as a whole: three U+FFFD although C3 A9 is é) | <x> | [E2 82]. */
    const int32_t ids[] = {4 + 0xC3, 260, 4 + 0xA9, 4 + 0xC3, 4 + 0xA9, 269, 4 + 0xE2, 4 + 0x82};
    char *s = decode(t, ids, 8, 0);
    const char *want = "\xEF\xBF\xBD"
                       "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD<x>\xEF\xBF\xBD\xEF\xBF\xBD";
    CHECK_MSG(s && strcmp(s, want) == 0, "got \"%s\"", s ? s : "");
    free(s);
    /* ▁ decodes as a space; out-of-range ids are dropped; specials dropped on request. */
    const int32_t ids2[] = {2, 264, 999, -5, 263, 270, 4 + 0xC3, 4 + 0xA9};
    s = decode(t, ids2, 8, 0);
    CHECK_MSG(s && strcmp(s, "<bos> a <xy>\xC3\xA9") == 0, "got \"%s\"", s ? s : "");
    free(s);
    s = decode(t, ids2, 8, 1);
    CHECK_MSG(s && strcmp(s, " a \xC3\xA9") == 0, "got \"%s\"", s ? s : "");
    free(s);
    tokenizer_free(t);
}

TEST(tokenizer_synth_legacy_merges_format) {
    Error err;
    Tokenizer *t = load_synth(
        &(SynthFields){.merges = "[\"a b\",\"\\u2581 a\",\"b \\u2581\",\"a a\",\"\\u2581 \\u2581\"]"}, &err);
    CHECK_MSG(t != NULL, "load: %s", err.message);
    if (t)
        EXPECT_IDS(t, "aaab b ", 1, 2, 266, 262, 263, 265);
    tokenizer_free(t);
}

/* Each unsupported feature is refused with a message naming it. */
TEST(tokenizer_rejects_unsupported_features) {
    struct {
        SynthFields f;
        const char *message;
    } cases[] = {
        {{.normalizer = "{\"type\":\"NFKC\"}"}, "normalizer"},
        {{.normalizer = "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\"x\"}"},
         "normalizer"},
        {{.pre_tokenizer = "{\"type\":\"ByteLevel\"}"}, "pre_tokenizer"},
        {{.pre_tokenizer = "{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Isolated\"}"},
         "MergedWithPrevious"},
        {{.post_processor = "{\"type\":\"BertProcessing\"}"}, "post_processor"},
        {{.decoder = "null"}, "decoder"},
        {{.decoder = "{\"type\":\"ByteLevel\"}"}, "decoder"},
        {{.model_extra = ",\"extra_field\":1"}, "model.extra_field"},
        {{.model_extra = ",\"type\":\"BPE\""}, "model.type appears twice"},
        {{.model_extra = ",\"vocab\":\"x\""}, "model.vocab is not a JSON object"},
        {{.model_extra = ",\"merges\":{}"}, "model.merges is not a JSON array"},
        {{.merges = "[[\"a\",\"zz\"]]"}, "model.merges[0]: \"zz\" is not in model.vocab"},
        {{.merges = "[[\"a\",\"a\"],[\"b\",\"b\"]]"}, "model.merges[1]: \"bb\" is not in model.vocab"},
        {{.merges = "[[\"a\"]]"}, "model.merges[0] is not a pair"},
        {{.added_extra = ",\"lstrip\":true"}, "lstrip = true is not supported"},
        {{.added_extra = ",\"normalized\":true"}, "normalized = true is not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Error err = {{0}};
        Tokenizer *t = load_synth(&cases[i].f, &err);
        CHECK_MSG(t == NULL, "case %zu loaded", i);
        CHECK_STR_CONTAINS(err.message, cases[i].message);
        CHECK_STR_CONTAINS(err.message, "synth.json");
        tokenizer_free(t);
    }
}

TEST(tokenizer_rejects_malformed_files) {
    Error err;
    Tokenizer *t = NULL;
    CHECK(tokenizer_load(&t, "/nonexistent/tokenizer.json", &err) == -1 && t == NULL);
    CHECK_STR_CONTAINS(err.message, "cannot open /nonexistent/tokenizer.json");
    char *json = synth_json(&(SynthFields){0});
    size_t len = strlen(json);
    /* Every prefix of the file, and a few byte flips, fail cleanly (ASan watches). */
    for (size_t cut = 0; cut < len; cut += 97) {
        const char *path = write_file("cut.json", json, cut);
        CHECK_MSG(tokenizer_load(&t, path, &err) == -1, "prefix of %zu bytes loaded", cut);
        tokenizer_free(t);
    }
    const char *path = write_file("trailing.json", "{} x", 4);
    CHECK(tokenizer_load(&t, path, &err) == -1);
    path = write_file("empty.json", "{}", 2);
    CHECK(tokenizer_load(&t, path, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "model.vocab is missing");
    free(json);
}

/* ---- the real Gemma 3 tokenizer */

/* Path of the unpacked tokenizer.json: the cache's copy (as the Python tests
 * make it), else unpacked now with xz into the cache. */
const char *test_gemma_tokenizer_path(void);
const char *test_gemma_tokenizer_path(void) {
    static char path[1024];
    const char *root = getenv("REPO_ROOT") ? getenv("REPO_ROOT") : ".";
    char src[1024], dir[900];
    snprintf(src, sizeof src, "%s/assets/gemma3-tokenizer/tokenizer.json.xz", root);
    const char *cache = getenv("MEDGEMMA_CACHE");
    if (cache)
        snprintf(dir, sizeof dir, "%s/gemma3-tokenizer", cache);
    else
        snprintf(dir, sizeof dir, "%s/gemma3-tokenizer", test_tmpdir());
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    struct stat st_src, st_out;
    if (stat(src, &st_src) != 0)
        test_skip("the vendored tokenizer %s is missing", src);
    if (stat(path, &st_out) == 0 && st_out.st_mtime >= st_src.st_mtime)
        return path;
    if (cache)
        mkdir(cache, 0755);
    mkdir(dir, 0755);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.part%d", path, (int)getpid());
    pid_t pid = fork();
    if (pid == 0) {
        FILE *out = freopen(tmp, "wb", stdout);
        if (out)
            execlp("xz", "xz", "-dc", "--", src, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        test_fail(__FILE__, __LINE__, "could not unpack %s with xz into %s", src, path);
    }
    return path;
}

Tokenizer *test_gemma_tokenizer(void);
Tokenizer *test_gemma_tokenizer(void) {
    Tokenizer *t = NULL;
    Error err;
    if (tokenizer_load(&t, test_gemma_tokenizer_path(), &err))
        test_fail(__FILE__, __LINE__, "load: %s", err.message);
    return t;
}

TEST(tokenizer_gemma_ids_and_lookups) {
    Tokenizer *t = test_gemma_tokenizer();
    if (!t)
        return;
    CHECK_EQ_INT(tokenizer_vocab_size(t), 262145);
    CHECK_EQ_INT(tokenizer_token_id(t, "<bos>"), 2);
    CHECK_EQ_INT(tokenizer_token_id(t, "<start_of_turn>"), 105);
    CHECK_EQ_INT(tokenizer_token_id(t, "<end_of_turn>"), 106);
    CHECK_EQ_INT(tokenizer_token_id(t, "<unused94>"), 100);
    CHECK_EQ_INT(tokenizer_token_id(t, "<start_of_image>"), 255999);
    CHECK_EQ_INT(tokenizer_token_id(t, "<image_soft_token>"), 262144);
    CHECK_EQ_INT(tokenizer_token_id(t, "\n\n"), 108);
    CHECK_EQ_INT(tokenizer_token_id(t, "no such piece at all"), -1);
    EXPECT_IDS(t, "Hello world", 1, 2, 9259, 1902);
    EXPECT_IDS(t, "Hello world", 0, 9259, 1902);
    EXPECT_IDS(t, "\n\n<start_of_image><image_soft_token><end_of_image>\n\n", 0, 108, 255999, 262144, 256000,
               108);
    /* café 🧑‍⚕️ 𝔸: a ZWJ sequence, and a character spelled in byte pieces. */
    EXPECT_IDS(t, "  caf\xc3\xa9 \xf0\x9f\xa7\x91\xe2\x80\x8d\xe2\x9a\x95\xef\xb8\x8f \xf0\x9d\x94\xb8", 0,
               138, 123125, 236859, 236743, 247027, 237243, 249286, 238178, 236743, 249468);
    tokenizer_free(t);
}

TEST(tokenizer_gemma_bad_text_is_an_error) {
    Tokenizer *t = test_gemma_tokenizer();
    if (!t)
        return;
    const char *bad[] = {"ab\xff", "\xc3", "\xed\xa0\x80" /* surrogate */, "\xc0\xaf" /* overlong */,
                         "\xf4\x90\x80\x80" /* > U+10FFFF */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n;
        Error err;
        CHECK(tokenizer_encode(t, bad[i], strlen(bad[i]), 1, &ids, &n, &err) == -1);
        CHECK(ids == NULL);
        CHECK_STR_CONTAINS(err.message, "not valid UTF-8 at byte offset");
    }
    /* NUL bytes are text like any other. */
    int32_t *ids;
    size_t n;
    Error err;
    CHECK(tokenizer_encode(t, "a\0b", 3, 0, &ids, &n, &err) == 0);
    char *s = decode(t, ids, n, 0);
    CHECK(s && memcmp(s, "a\0b", 4) == 0);
    free(s);
    free(ids);
    tokenizer_free(t);
}

/* Streaming gives, piece by piece, exactly what decoding all ids gives, and
 * never returns half a UTF-8 character. */
TEST(tokenizer_gemma_stream_matches_decode) {
    Tokenizer *t = test_gemma_tokenizer();
    if (!t)
        return;
    const char *text =
        "<start_of_turn>model\nR\xc3\xa9sultat: \xf0\x9d\x94\xb8\xf0\x9d\x94\xb9 \xf0\x9f\xa9\xba "
        "\xe4\xb8\xad\xf0\xa0\x80\x80<end_of_turn>";
    int32_t *ids;
    size_t n;
    Error err;
    CHECK(tokenizer_encode(t, text, strlen(text), 1, &ids, &n, &err) == 0);
    /* Append a lone continuation byte piece and an unfinished sequence. */
    int32_t *more = realloc(ids, (n + 3) * sizeof *ids);
    CHECK(more != NULL);
    if (!more) {
        free(ids);
        return;
    }
    ids = more;
    ids[n++] = tokenizer_token_id(t, "<0xA9>");
    ids[n++] = tokenizer_token_id(t, "a");
    ids[n++] = tokenizer_token_id(t, "<0xF0>");
    for (int skip = 0; skip <= 1; skip++) {
        char *whole = decode(t, ids, n, skip);
        TokenStream *s = token_stream_new(t, skip);
        char acc[1024];
        size_t acc_len = 0;
        for (size_t i = 0; i < n; i++) {
            char *piece;
            size_t len;
            CHECK(token_stream_push(s, ids[i], &piece, &len, &err) == 0);
            /* Each piece is whole UTF-8 (U+FFFD stands for broken bytes). */
            for (size_t k = 0; k < len; k++) {
                unsigned char c = (unsigned char)piece[k];
                size_t need = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
                CHECK_MSG((c & 0xC0) != 0x80 && k + need <= len, "id %zu: half a character", i);
                k += need - 1;
            }
            memcpy(acc + acc_len, piece, len);
            acc_len += len;
        }
        char *piece;
        size_t len;
        CHECK(token_stream_flush(s, &piece, &len) == 0);
        memcpy(acc + acc_len, piece, len);
        acc_len += len;
        acc[acc_len] = '\0';
        CHECK_MSG(whole && strcmp(acc, whole) == 0, "stream \"%s\" vs decode \"%s\"", acc,
                  whole ? whole : "");
        CHECK_STR_CONTAINS(acc, "\xef\xbf\xbd"
                                "a\xef\xbf\xbd");
        /* <bos> and <start_of_turn> are special in Gemma 3's file. */
        CHECK((strstr(acc, "<bos><start_of_turn>model\n") != NULL) == !skip);
        CHECK(strncmp(acc, skip ? "model\n" : "<bos>", skip ? 6 : 5) == 0);
        token_stream_free(s);
        free(whole);
    }
    free(ids);
    tokenizer_free(t);
}
