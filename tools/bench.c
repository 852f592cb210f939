/* make bench: GEMM throughput against the machine's measured FMA peak, and
 * (when built with -DMMGAN_BENCH_OPENBLAS -lopenblas) against OpenBLAS on the
 * same shapes.  One line per case:
 *   gemm M N K threads GFLOP/s  pct-of-peak (pct-of-paired-peak)  [openblas GFLOP/s pct]
 *   conv LAYER forward|input-grad|weight-grad threads GFLOP/s pct-of-peak ms
 * Times are medians of repeated runs, each run at least ~20 ms of work. */
#define _POSIX_C_SOURCE 199309L  /* clock_gettime under -std=c99 (without -fopenmp too) */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_common.h"
#ifdef MMGAN_BENCH_OPENBLAS
#include <cblas.h>
extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);
#endif

/* FMA peak of one thread: independent accumulator chains hide the FMA
 * latency (4 cycles, two FMA pipes: 8 chains at least); the chains are kept
 * alive by a store.  16 where the ISA has 32 vector registers; 12 where it
 * has 16 (AVX2, SSE2, ARMv7), whose 16 chains and 2 operands spilled: the
 * loop then measured 58.7 GFLOP/s on a Zen 3 core whose GEMM ran at 88. */
#if defined(MMGAN__AVX512) || defined(MMGAN__NEON64) || MMGAN__VN == 1
#define FMA_CHAINS 16
#else
#define FMA_CHAINS 12
#endif
static double fma_peak_thread(long iters)
{
    mmgan__v acc[FMA_CHAINS], m = MMGAN__VSET(0.999999f), s = MMGAN__VSET(1e-7f);
    float out[MMGAN__VN];
    long i;
    int j;
    for (j = 0; j < FMA_CHAINS; j++) acc[j] = MMGAN__VSET((float)j);
    for (i = 0; i < iters; i++) {
        acc[0] = MMGAN__VFMA(acc[0], m, s); acc[1] = MMGAN__VFMA(acc[1], m, s);
        acc[2] = MMGAN__VFMA(acc[2], m, s); acc[3] = MMGAN__VFMA(acc[3], m, s);
        acc[4] = MMGAN__VFMA(acc[4], m, s); acc[5] = MMGAN__VFMA(acc[5], m, s);
        acc[6] = MMGAN__VFMA(acc[6], m, s); acc[7] = MMGAN__VFMA(acc[7], m, s);
        acc[8] = MMGAN__VFMA(acc[8], m, s); acc[9] = MMGAN__VFMA(acc[9], m, s);
        acc[10] = MMGAN__VFMA(acc[10], m, s); acc[11] = MMGAN__VFMA(acc[11], m, s);
#if FMA_CHAINS == 16
        acc[12] = MMGAN__VFMA(acc[12], m, s); acc[13] = MMGAN__VFMA(acc[13], m, s);
        acc[14] = MMGAN__VFMA(acc[14], m, s); acc[15] = MMGAN__VFMA(acc[15], m, s);
#endif
    }
    for (j = 1; j < FMA_CHAINS; j++) acc[0] = MMGAN__VADD(acc[0], acc[j]);
    MMGAN__VSTORE(out, acc[0]);
    return out[0];
}

/* Where the FMA loops' results go, so that the compiler keeps the loops. */
static volatile double fma_sink;

/* Seconds of nt threads running the FMA loop at once, iters each. */
static double fma_loop_time(int nt, long iters)
{
    double t0 = now(), s = 0;
#ifdef MMGAN__OMP
    #pragma omp parallel num_threads(nt) reduction(+:s)
    s += fma_peak_thread(iters);
#else
    (void)nt;
    s = fma_peak_thread(iters);
#endif
    fma_sink = s;
    return now() - t0;
}

/* GFLOP/s of that loop: 2 flops a lane, 16 chains, nt threads. */
static double fma_gflops(int nt, long iters, double sec)
{
#ifndef MMGAN__OMP
    nt = 1;
#endif
    return 2.0 * FMA_CHAINS * MMGAN__VN * (double)iters * nt / sec * 1e-9;
}

/* GFLOP/s of nt threads running the FMA loop at once: the best of 7, as a
 * peak is what the cores can do.  The median took a loaded spell for the
 * peak once (195.3 GFLOP/s one thread, its neighbours' runs 205-210), and
 * every percentage of that run came out too high (1024^3 at 94%, 128^3 at
 * 102%).  The run ends by measuring it again (fma_peak_end). */
static double fma_peak(int nt)
{
    long iters = 20000000;
    double best = 0;
    int r;
    for (r = 0; r < 7; r++) {
        double t = fma_loop_time(nt, iters);
        if (r == 0 || t < best) best = t;
    }
    return fma_gflops(nt, iters, best);
}

typedef void (*gemm_fn)(mmgan_ctx *, int, int, int, const float *, const float *, float *);

static void run_mmgan(mmgan_ctx *ctx, int m, int n, int k, const float *a, const float *b, float *c)
{
    mmgan_gemm(ctx, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}

#ifdef MMGAN_BENCH_OPENBLAS
static void run_openblas(mmgan_ctx *ctx, int m, int n, int k, const float *a, const float *b, float *c)
{
    (void)ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}
#endif

/* --openblas-probe: OpenBLAS's kernel set (chosen by OPENBLAS_CORETYPE or
 * its own CPU detection) and its one-thread GFLOP/s on 512^3, so that
 * tools/openblas_core.sh can pick its fastest kernels for this machine:
 * OpenBLAS 0.3.21 takes a CPU model it does not know (Emerald Rapids, say)
 * for a Prescott and runs at a fifth of its speed. */
static int openblas_probe(void)
{
#ifdef MMGAN_BENCH_OPENBLAS
    enum { N = 512 };
    float *a = (float *)calloc((size_t)N * N, 4), *b = (float *)calloc((size_t)N * N, 4),
          *c = (float *)calloc((size_t)N * N, 4);
    double best = 1e30;
    int r;
    if (!a || !b || !c) return 1;
    openblas_set_num_threads(1);
    for (r = 0; r < 12; r++) {
        double t0 = now(), t;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
        t = now() - t0;
        if (t < best) best = t;
    }
    printf("%s %.1f\n", openblas_get_corename(), 2.0 * N * N * N / best * 1e-9);
    free(a); free(b); free(c);
    return 0;
#else
    fprintf(stderr, "bench: built without OpenBLAS\n");
    return 1;
#endif
}

/* Median GFLOP/s of 9 timed runs of f.  With nt > 0 each run is preceded by
 * ~5 ms of the FMA loop on nt threads, and *paired is the median of the
 * runs' GFLOP/s over the loop's just before: the load of a shared machine
 * changes over seconds, so the peak taken at the start, minutes earlier,
 * saw another load than the product; a run and its own peak see about the
 * same. */
static double time_gemm(gemm_fn f, mmgan_ctx *ctx, int nt, int m, int n, int k, const float *a, const float *b,
                        float *c, double *paired)
{
    double flops = 2.0 * m * n * k, t[9], ratio[9];
    const long peak_iters = 2000000;
    int reps = (int)(2e8 / flops) + 1, r, i;  /* ~20 ms per timed run at 10 GFLOP/s... and up */
    /* The other library's threads spin for a while after its last call
     * (OpenBLAS's pthreads, libgomp's team): on two cores they took the
     * cores from the threads timed next.  128x3136x1024 on two threads,
     * timed right after OpenBLAS's 64x12544x16, ran at 103 GFLOP/s in 3 of 4
     * runs, against 330-370 alone; 0.3 s of rest lets them go to sleep. */
    struct timespec rest = {0, 300000000L};
    nanosleep(&rest, NULL);
    if (reps > 2000) reps = 2000;
    f(ctx, m, n, k, a, b, c);                 /* warm up caches and threads */
    for (r = 0; r < 9; r++) {
        double t0, pk = nt > 0 ? fma_gflops(nt, peak_iters, fma_loop_time(nt, peak_iters)) : 0;
        t0 = now();
        for (i = 0; i < reps; i++) f(ctx, m, n, k, a, b, c);
        t[r] = (now() - t0) / reps;
        ratio[r] = nt > 0 ? flops / t[r] * 1e-9 / pk : 0;
    }
    qsort(t, 9, sizeof t[0], cmp_double);
    qsort(ratio, 9, sizeof ratio[0], cmp_double);
    if (paired) *paired = ratio[4];
    return flops / t[4] * 1e-9;
}

/* Median seconds of one run of a plan. */
static double time_plan(mmgan_plan *p, double flops)
{
    double t[7];
    int reps = (int)(2e8 / flops) + 1, r, i;
    mmgan_plan_run(p);
    for (r = 0; r < 7; r++) {
        double t0 = now();
        for (i = 0; i < reps; i++) mmgan_plan_run(p);
        t[r] = (now() - t0) / reps;
    }
    qsort(t, 7, sizeof t[0], cmp_double);
    return t[3];
}

/* The MNIST DCGAN layers at batch 64 (4x4 kernels, stride 2, pad 1): each as
 * a forward op, its input gradient and its weight gradient.  D1, D2 are the
 * critic's and G1, G2 the generator's of examples/gan_mnist; the benchmark's
 * GAN steps (tools/bench_gan.c) share the critic, and their generator's two
 * layers are Gb1, Gb2 (Gb1, 256 -> 128, is about half of such a step). */
static void bench_conv(mmgan_ctx *ctx, int nt, double peak)
{
    static const struct { const char *name; int transpose, c, h, o; } layers[] = {
        {"D1 conv 1->64 28x28", 0, 1, 28, 64},
        {"D2 conv 64->128 14x14", 0, 64, 14, 128},
        {"G1 convT 128->64 7x7", 1, 128, 7, 64},
        {"G2 convT 64->1 14x14", 1, 64, 14, 1},
        {"Gb1 convT 256->128 7x7", 1, 256, 7, 128},
        {"Gb2 convT 128->1 14x14", 1, 128, 14, 1},
    };
    int l, n = 64;
    mmgan_rng rng;
    mmgan_rng_seed(&rng, 3, 3);
    for (l = 0; l < (int)(sizeof layers / sizeof layers[0]); l++) {
        int c = layers[l].c, h = layers[l].h, o = layers[l].o, tr = layers[l].transpose;
        int ho = tr ? 2 * h : h / 2, xs[4], ws[4], ys[4], k;
        mmgan_graph *g = mmgan_graph_new(ctx);
        mmgan_node x, w, gy, t[3];
        float *xv, *wv, *gv;
        /* 2 * (small image pixels) * (small channels) * (large channels) * 16 */
        double flops = 2.0 * n * (tr ? h * h : ho * ho) * c * o * 16;
        static const char *what[3] = {"forward", "input-grad", "weight-grad"};
        xs[0] = n; xs[1] = c; xs[2] = h; xs[3] = h;
        ys[0] = n; ys[1] = o; ys[2] = ho; ys[3] = ho;
        ws[0] = tr ? c : o; ws[1] = tr ? o : c; ws[2] = 4; ws[3] = 4;
        x = mmgan_input(g, "x", 4, xs);
        w = mmgan_input(g, "w", 4, ws);
        gy = mmgan_input(g, "gy", 4, ys);
        xv = (float *)malloc(sizeof(float) * n * c * h * h);
        gv = (float *)malloc(sizeof(float) * n * o * ho * ho);
        wv = (float *)malloc(sizeof(float) * 16 * c * o);
        mmgan_rng_fill_uniform(&rng, xv, (size_t)n * c * h * h, -1, 1);
        mmgan_rng_fill_uniform(&rng, gv, (size_t)n * o * ho * ho, -1, 1);
        mmgan_rng_fill_uniform(&rng, wv, (size_t)16 * c * o, -1, 1);
        mmgan_graph_feed(g, x, xv); mmgan_graph_feed(g, w, wv); mmgan_graph_feed(g, gy, gv);
        if (!tr) {
            t[0] = mmgan_conv2d(g, x, w, 2, 1);
            t[1] = mmgan_conv_transpose2d(g, gy, w, 2, 1, 0);
            t[2] = mmgan_conv2d_wgrad(g, x, gy, 4, 4, 2, 1);
        } else {
            t[0] = mmgan_conv_transpose2d(g, x, w, 2, 1, 0);
            t[1] = mmgan_conv2d(g, gy, w, 2, 1);
            t[2] = mmgan_conv2d_wgrad(g, gy, x, 4, 4, 2, 1);
        }
        for (k = 0; k < 3; k++) {
            mmgan_plan *p = mmgan_plan_new(g, 1, &t[k]);
            double sec;
            if (!p) { printf("conv: %s\n", mmgan_ctx_error(ctx)); break; }
            sec = time_plan(p, flops);
            printf("conv %-22s %-11s %d %.1f GFLOP/s %5.1f%% of peak  %.3f ms\n", layers[l].name, what[k], nt,
                   flops / sec * 1e-9, 100 * flops / sec * 1e-9 / peak, sec * 1e3);
            fflush(stdout);
            mmgan_plan_free(p);
        }
        mmgan_graph_free(g);
        free(xv); free(gv); free(wv);
    }
}

int main(int argc, char **argv)
{
    static const int sq[] = {64, 128, 256, 512, 1024, 2048};
    /* batch-64 GAN layers, then implicit-GEMM shapes (M = out channels,
     * N = batch*OH*OW, K = in channels*4*4) of 4x4 stride-2 convs 1->64 on 28x28
     * and 64->128 on 14x14 */
    static const int gan[][3] = {{64, 784, 256}, {64, 256, 256}, {64, 256, 784}, {64, 12544, 16}, {128, 3136, 1024}};
    int threads[2] = {1, 2}, ti, i, maxt = 2, quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    mmgan_ctx *ctx;
    if (argc > 1 && strcmp(argv[1], "--openblas-probe") == 0) return openblas_probe();
    ctx = mmgan_ctx_new(NULL);
    size_t big = 2048 * 2048;
    float *a = (float *)malloc(big * 4), *b = (float *)malloc(big * 4), *c = (float *)malloc(big * 4 * 4);
    mmgan_rng rng;
    double peak[3];
    if (!ctx || !a || !b || !c) return 1;
    mmgan_rng_seed(&rng, 1, 1);
    mmgan_rng_fill_uniform(&rng, a, big, -1, 1);
    mmgan_rng_fill_uniform(&rng, b, big, -1, 1);
    memset(c, 0, big * 16);
#ifndef MMGAN__OMP
    maxt = 1;
#endif
    printf("isa %s, kernel %s %dx%d, kc %d mc %d nc %d\n", mmgan_isa(), mmgan__gemm_kernels[0].name,
           mmgan__gemm_kernels[0].mr, mmgan__gemm_kernels[0].nr, mmgan__gemm_kernels[0].kc,
           mmgan__gemm_kernels[0].mc, mmgan__gemm_kernels[0].nc);
#ifdef MMGAN_BENCH_OPENBLAS
    printf("openblas kernels %s\n", openblas_get_corename());
#endif
    for (ti = 0; ti < maxt; ti++) {
        peak[threads[ti]] = fma_peak(threads[ti]);
        printf("fma_peak %d threads %.1f GFLOP/s\n", threads[ti], peak[threads[ti]]);
    }
    for (ti = 0; ti < maxt; ti++) {
        int nt = threads[ti];
        mmgan_ctx_set_threads(ctx, nt);
#ifdef MMGAN_BENCH_OPENBLAS
        openblas_set_num_threads(nt);
#endif
        for (i = 0; i < (int)(sizeof sq / sizeof sq[0]) + 5; i++) {
            int m, n, k;
            double g, o = 0, pp = 0;
            if (i < 6) { m = n = k = sq[i]; if (quick && m > 1024) continue; }
            else { m = gan[i - 6][0]; n = gan[i - 6][1]; k = gan[i - 6][2]; }
            g = time_gemm(run_mmgan, ctx, nt, m, n, k, a, b, c, &pp);
            printf("gemm %d %d %d %d %.1f GFLOP/s %5.1f%% of peak (%5.1f%% paired)", m, n, k, nt, g,
                   100 * g / peak[nt], 100 * pp);
#ifdef MMGAN_BENCH_OPENBLAS
            o = time_gemm(run_openblas, ctx, 0, m, n, k, a, b, c, NULL);
            printf(" | openblas %.1f GFLOP/s %5.1f%% | ratio %.2f", o, 100 * o / peak[nt], g / o);
#endif
            (void)o;
            printf("\n");
            fflush(stdout);
        }
        bench_conv(ctx, nt, peak[nt]);
    }
    for (ti = 0; ti < maxt; ti++)   /* a percentage above may be judged against this too */
        printf("fma_peak_end %d threads %.1f GFLOP/s (at the start %.1f)\n", threads[ti], fma_peak(threads[ti]),
               peak[threads[ti]]);
    free(a); free(b); free(c);
    mmgan_ctx_free(ctx);
    return 0;
}
