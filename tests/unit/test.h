/* A small unit-test framework. Each test file defines tests with TEST(name);
 * they register themselves at start-up, and tests/unit/main.c runs each one
 * in a forked child (a crash fails that test only) and prints one line per
 * test: "ok NAME", "FAIL NAME: why" or "skip NAME: why" (tests/run.sh counts
 * those lines). */
#ifndef TESTS_UNIT_TEST_H
#define TESTS_UNIT_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*TestFn)(void);
void test_register(const char *name, TestFn fn);
/* Records a failure (the test goes on, so several checks can report). */
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The tiny synth checkpoint (written once per run under test_tmpdir(); tests/unit/tiny_model.c). */
const char *test_tiny_model(void);
/* Marks the running test skipped with a reason and ends it. */
_Noreturn void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define TEST(name)                                                                                           \
    static void name(void);                                                                                  \
    __attribute__((constructor)) static void register_##name(void) {                                         \
        test_register(#name, name);                                                                          \
    }                                                                                                        \
    static void name(void)

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            test_fail(__FILE__, __LINE__, "%s", #cond);                                                      \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                                 \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                   \
    do {                                                                                                     \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                                \
        if (va_ != vb_)                                                                                      \
            test_fail(__FILE__, __LINE__, "%s == %lld, expected %lld", #a, va_, vb_);                        \
    } while (0)

#define CHECK_STR_CONTAINS(haystack, needle)                                                                 \
    do {                                                                                                     \
        const char *h_ = (haystack), *n_ = (needle);                                                         \
        if (!h_ || !strstr(h_, n_))                                                                          \
            test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);         \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                                \
    do {                                                                                                     \
        double va_ = (double)(a), vb_ = (double)(b);                                                         \
        if (!(fabs(va_ - vb_) <= (tol)))                                                                     \
            test_fail(__FILE__, __LINE__, "%s = %g, expected %g (tol %g)", #a, va_, vb_, (double)(tol));     \
    } while (0)

/* Path of a scratch directory unique to this test run (created on demand). */
const char *test_tmpdir(void);

#endif
