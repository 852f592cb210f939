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

/* Built with -DTEST_LIGHT (make test-cross's riscv64 and s390x, which have
 * no SIMD kernels, and make test's tcc run: the scalar code that make
 * test's "scalar" run checks in full), a check of a product over 16M
 * multiply-adds is left out, and counted in the summary.  Under qemu's
 * software floating point such checks made s390x's test_conv alone 13 of
 * CI's 25 minutes.  test_light(macs) is 1 where a check is left out. */
static int test_light_skipped;
#ifdef TEST_LIGHT
#define test_light(macs) ((double)(macs) > 16e6 ? (test_light_skipped++, 1) : 0)
#else
#define test_light(macs) ((void)(macs), 0)
#endif

static int test_summary(void)
{
    printf("%s [%s]: %d passed, %d failed", test_suite, mmgan_isa(), test_passed, test_failed);
    if (test_light_skipped) printf(" (TEST_LIGHT: %d checks of large products left out)", test_light_skipped);
    printf("\n");
    return test_failed ? 1 : 0;
}
#endif
