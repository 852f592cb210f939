/* A minimal test harness: CHECK records a result, the suite's main ends with
 * test_summary(), which prints "N passed, N failed" and returns the status. */
#ifndef MMGAN_TEST_HARNESS_H
#define MMGAN_TEST_HARNESS_H
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;
static const char *test_suite = "tests";

#define CHECK(cond, ...) do { \
    if (cond) test_passed++; \
    else { test_failed++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

static int test_summary(void)
{
    printf("%s [%s]: %d passed, %d failed\n", test_suite, mmgan_isa(), test_passed, test_failed);
    return test_failed ? 1 : 0;
}
#endif
