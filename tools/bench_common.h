/* Timing helpers shared by tools/bench.c and tools/bench_gan.c. */
#ifndef MMGAN_BENCH_COMMON_H
#define MMGAN_BENCH_COMMON_H
#include <time.h>

/* Monotonic seconds. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* qsort order of doubles, for medians. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
#endif
