/* answer_strip_thinking and answer_extract_json on the answer shapes
 * MedGemma 1.5 produces (thinking traces, Final Answer:, ```json fences). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/test.h"
#include "tokenizer/answer.h"

static void expect_stripped(const char *in, const char *want) {
    char *got = answer_strip_thinking(in);
    CHECK_MSG(got && strcmp(got, want) == 0, "strip(\"%s\") = \"%s\", want \"%s\"", in, got ? got : "(null)",
              want);
    free(got);
}

TEST(tokenizer_answer_strip_thinking) {
    expect_stripped("No thinking here.", "No thinking here.");
    expect_stripped("<unused94>thought\nmore<unused95>The answer.", "The answer.");
    expect_stripped("<unused94>thought<unused95>\n\n  The answer.", "The answer.");
    expect_stripped("A <unused94>x<unused95> B <unused94>y<unused95>C", "A B C");
    expect_stripped("Answer: <unused94>never closed", "Answer: ");
    expect_stripped("trace before the closer<unused95> kept", "kept");
    expect_stripped("", "");
    expect_stripped("<unused94><unused95>", "");
    expect_stripped("a<unused9>b<unused950>", "a<unused9>b<unused950>");
}

static cJSON *expect_json(const char *text) {
    cJSON *v = NULL;
    char why[200] = "";
    int rc = answer_extract_json(text, &v, why, sizeof why);
    CHECK_MSG(rc == 0 && v != NULL, "\"%s\": %s", text, why);
    return v;
}

static void expect_no_json(const char *text, const char *why_part) {
    cJSON *v = (cJSON *)1;
    char why[200] = "";
    CHECK_MSG(answer_extract_json(text, &v, why, sizeof why) == -1, "\"%s\" parsed", text);
    CHECK(v == NULL);
    CHECK_STR_CONTAINS(why, why_part);
}

TEST(tokenizer_answer_extract_json) {
    cJSON *v = expect_json("<unused94>Let me look at the image.<unused95>Final Answer: ```json\n"
                           "[{\"box_2d\": [10, 20, 300, 400], \"label\": \"nodule\"}]\n```");
    CHECK(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1);
    const cJSON *box = cJSON_GetObjectItem(cJSON_GetArrayItem(v, 0), "box_2d");
    CHECK(cJSON_GetArraySize(box) == 4 && cJSON_GetArrayItem(box, 3)->valueint == 400);
    cJSON_Delete(v);

    v = expect_json("  {\"finding\": \"effusion\", \"confidence\": 0.8}  ");
    CHECK(cJSON_IsObject(v) && strcmp(cJSON_GetObjectItem(v, "finding")->valuestring, "effusion") == 0);
    cJSON_Delete(v);

    v = expect_json("```\n{\"a\": 1}\n```");
    CHECK(cJSON_GetObjectItem(v, "a")->valueint == 1);
    cJSON_Delete(v);

    v = expect_json("The findings are below.\n```json\n{\"a\": [true, null]}\n```\nHope this helps.");
    CHECK(cJSON_IsTrue(cJSON_GetArrayItem(cJSON_GetObjectItem(v, "a"), 0)));
    cJSON_Delete(v);

    v = expect_json("Reasoning first. Final Answer: {\"b\": 2}"); /* no fence */
    CHECK(cJSON_GetObjectItem(v, "b")->valueint == 2);
    cJSON_Delete(v);

    v = expect_json("```json\n{\"unclosed_fence\": 3}"); /* generation stopped before the closing fence */
    CHECK(cJSON_GetObjectItem(v, "unclosed_fence")->valueint == 3);
    cJSON_Delete(v);

    v = expect_json("The answer is {\"c\": 3} as shown."); /* prose around an object */
    CHECK(cJSON_GetObjectItem(v, "c")->valueint == 3);
    cJSON_Delete(v);

    expect_no_json("No acute cardiopulmonary process.", "no object or array");
    expect_no_json("", "empty");
    expect_no_json("<unused94>only thinking<unused95>", "empty");
    expect_no_json("Final Answer: ```json\n{\"a\": [1, 2}\n```", "invalid JSON in the answer at offset");
}
