/* softmax, argmax and the sampler: greedy, top-k and top-p keep exactly the
 * tokens they should, and sampled frequencies follow the distribution. */
#include <stdlib.h>

#include "kernels/kernels.h"
#include "tests/unit/kernel_ref.h"
#include "tests/unit/test.h"

TEST(kernels_softmax_and_argmax) {
    float x[4] = {1, 3, 2, 1000};
    softmax(x, 4);
    CHECK(x[3] > 0.999f && x[0] >= 0);
    float y[3] = {0, logf(2), logf(3)};
    softmax(y, 3);
    CHECK_NEAR(y[0], 1.0 / 6, 1e-6);
    CHECK_NEAR(y[2], 0.5, 1e-6);
    float a[5] = {1, 5, 5, 2, 0};
    CHECK_EQ_INT(argmax(a, 5), 1); /* first of ties */
    float b[3] = {NAN, -1, -2};
    CHECK_EQ_INT(argmax(b, 3), 1); /* NaN never wins */
}

TEST(kernels_sample_greedy_and_degenerate) {
    int32_t idx[6];
    float l[6] = {0.1f, 0.2f, 3.0f, 0.4f, -1, 2.9f};
    float c[6];
    memcpy(c, l, sizeof l);
    CHECK_EQ_INT(sample_logits(c, 6, 0.0f, 0, 1.0f, 0.99f, idx), 2); /* temperature 0 = greedy */
    for (int i = 0; i < 20; i++) {
        memcpy(c, l, sizeof l);
        CHECK_EQ_INT(sample_logits(c, 6, 1.0f, 1, 1.0f, i / 20.0f, idx), 2); /* top_k 1 */
        memcpy(c, l, sizeof l);
        CHECK_EQ_INT(sample_logits(c, 6, 1.0f, 0, 1e-6f, i / 20.0f, idx), 2); /* tiny top_p */
    }
}

/* Counts which tokens are drawn over evenly spaced coins. */
static void histogram(const float *l, int n, float temp, int top_k, float top_p, int *count, int draws) {
    int32_t *idx = malloc(n * sizeof *idx);
    float *c = malloc(n * sizeof *c);
    for (int i = 0; i < n; i++)
        count[i] = 0;
    for (int d = 0; d < draws; d++) {
        memcpy(c, l, n * sizeof *c);
        int tok = sample_logits(c, n, temp, top_k, top_p, (d + 0.5f) / draws, idx);
        if (tok >= 0 && tok < n)
            count[tok]++;
    }
    free(idx), free(c);
}

TEST(kernels_sample_frequencies_follow_probabilities) {
    float l[5] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f), -INFINITY};
    int count[5], draws = 10000;
    histogram(l, 5, 1.0f, 0, 1.0f, count, draws);
    CHECK_NEAR(count[0] / (double)draws, 0.1, 0.002);
    CHECK_NEAR(count[3] / (double)draws, 0.4, 0.002);
    CHECK_EQ_INT(count[4], 0);
    /* temperature 2 flattens: p ~ sqrt(p0) */
    histogram(l, 5, 2.0f, 0, 1.0f, count, draws);
    double z = sqrt(0.1) + sqrt(0.2) + sqrt(0.3) + sqrt(0.4);
    CHECK_NEAR(count[0] / (double)draws, sqrt(0.1) / z, 0.002);
}

TEST(kernels_sample_top_k_and_top_p_sets) {
    float l[6] = {logf(0.05f), logf(0.3f), logf(0.1f), logf(0.35f), logf(0.15f), logf(0.05f)};
    int count[6], draws = 6000;
    /* top_k 2 keeps {3, 1}: renormalized 0.35/0.65, 0.3/0.65 */
    histogram(l, 6, 1.0f, 2, 1.0f, count, draws);
    CHECK_EQ_INT(count[0] + count[2] + count[4] + count[5], 0);
    CHECK_NEAR(count[3] / (double)draws, 0.35 / 0.65, 0.002);
    /* top_p 0.7: sorted 0.35, 0.3 (0.65 < 0.7), 0.15 (0.8 >= 0.7) -> {3, 1, 4} */
    histogram(l, 6, 1.0f, 0, 0.7f, count, draws);
    CHECK_EQ_INT(count[0] + count[2] + count[5], 0);
    CHECK(count[4] > 0);
    CHECK_NEAR(count[4] / (double)draws, 0.15 / 0.8, 0.002);
    /* top_k 3 then top_p 0.5: {3, 1, 4} renormalized 0.4375, 0.375, 0.1875 -> {3, 1} */
    histogram(l, 6, 1.0f, 3, 0.5f, count, draws);
    CHECK_EQ_INT(count[4] + count[0] + count[2] + count[5], 0);
}

TEST(kernels_sample_large_vocab_top_p) {
    /* a 262208-wide vocabulary with a peaked head: only head tokens are drawn */
    int n = 262208, count_head = 0;
    float *l = malloc(n * sizeof *l), *c = malloc(n * sizeof *c);
    int32_t *idx = malloc(n * sizeof *idx);
    uint64_t s = 5;
    for (int i = 0; i < n; i++)
        l[i] = ref_rand(&s) - 10.0f;
    l[1234] = 8.0f, l[99999] = 7.5f, l[5] = 7.0f;
    for (int d = 0; d < 50; d++) {
        memcpy(c, l, n * sizeof *c);
        int tok = sample_logits(c, n, 1.0f, 0, 0.9f, (d + 0.5f) / 50, idx);
        count_head += tok == 1234 || tok == 99999 || tok == 5;
    }
    CHECK_EQ_INT(count_head, 50);
    free(l), free(c), free(idx);
}
