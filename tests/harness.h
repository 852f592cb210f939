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

/* The files a suite writes go in its binary's directory (build/<run>/):
 * test-cross runs the same suite of several targets at once, and a name
 * they shared (build/test_ckpt_resume.safetensors) let one target's suite
 * read, overwrite or remove another's file.  main calls test_set_dir(argv[0]);
 * test_path(buf, name) is the path of file name there. */
static char test_dir[512] = ".";
static inline void test_set_dir(const char *argv0)
{
    const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
    size_t n = slash ? (size_t)(slash - argv0) : 0;
    if (n > 0 && n < sizeof test_dir) { memcpy(test_dir, argv0, n); test_dir[n] = 0; }
}
static inline const char *test_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", test_dir, name);
    return buf;
}

static int test_summary(void)
{
    printf("%s [%s]: %d passed, %d failed", test_suite, mmgan_isa(), test_passed, test_failed);
    if (test_light_skipped) printf(" (TEST_LIGHT: %d checks of large products left out)", test_light_skipped);
    printf("\n");
    return test_failed ? 1 : 0;
}
#endif
