/* GEMM against a naive double-precision loop: every edge size 1..67 in each
 * of M, N, K, all transposes, alpha/beta cases, padded leading dimensions,
 * sizes that cross every cache block, every compiled kernel (the portable
 * kernel included), and bit-identical results for 1 and 2 threads. */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"
#include <math.h>
#include <stdlib.h>

static mmgan_ctx *ctx;
static mmgan_rng rng;

/* op(X)[i][p] of a row-major X stored with leading dimension ld. */
static double at(const float *x, int ld, int trans, int i, int p)
{
    return trans ? x[(size_t)p * ld + i] : x[(size_t)i * ld + p];
}

/* C (C0 before the product, ldc wide) against the naive double oracle for
 * alpha op(A) op(B) + beta C0, and the padding between rows untouched;
 * returns 1 on agreement (what is named reports the first difference). */
static int matches_oracle(const char *what, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                          int lda, const float *b, int ldb, float beta, const float *c0, const float *c, int ldc)
{
    int i, j, p;
    for (i = 0; i < m; i++) {
        for (j = 0; j < ldc; j++) {
            double want = 0, mag = 0, got = c[(size_t)i * ldc + j], tol;
            if (j >= n) { /* padding between rows must be untouched */
                if (memcmp(&c[(size_t)i * ldc + j], &c0[(size_t)i * ldc + j], 4)) return 0;
                continue;
            }
            for (p = 0; p < k; p++) {
                double t = at(a, lda, ta, i, p) * at(b, ldb, tb, p, j);
                want += t;
                mag += fabs(t);
            }
            want *= alpha;
            mag *= fabs(alpha);
            if (beta != 0.0f) {
                want += (double)beta * c0[(size_t)i * ldc + j];
                mag += fabs((double)beta * c0[(size_t)i * ldc + j]);
            }
            /* float accumulation: error below (k + 2) eps times the magnitude */
            tol = (k + 2) * (double)FLT_EPSILON * mag + 1e-30;
            if (!(fabs(got - want) <= tol)) {
                fprintf(stderr, "  %s ta=%d tb=%d m=%d n=%d k=%d alpha=%g beta=%g: C[%d][%d]=%.9g want %.9g\n",
                        what, ta, tb, m, n, k, alpha, beta, i, j, got, want);
                return 0;
            }
        }
    }
    return 1;
}

/* Runs one product through kernel kr and checks it against the oracle;
 * returns 1 on agreement. */
static int check_case(const mmgan__gemm_kernel *kr, int ta, int tb, int m, int n, int k,
                      float alpha, float beta, int pad)
{
    int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    size_t asz = (size_t)(ta ? k : m) * lda, bsz = (size_t)(tb ? n : k) * ldb, csz = (size_t)m * ldc;
    float *a = (float *)malloc((asz ? asz : 1) * sizeof(float));
    float *b = (float *)malloc((bsz ? bsz : 1) * sizeof(float));
    float *c = (float *)malloc((csz ? csz : 1) * sizeof(float));
    float *c0 = (float *)malloc((csz ? csz : 1) * sizeof(float));
    char what[64];
    int i, j, ok;
    mmgan_rng_fill_uniform(&rng, a, asz, -1.0f, 1.0f);
    mmgan_rng_fill_uniform(&rng, b, bsz, -1.0f, 1.0f);
    mmgan_rng_fill_uniform(&rng, c, csz, -1.0f, 1.0f);
    if (beta == 0.0f) /* beta == 0 must not read C: poison it */
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) c[(size_t)i * ldc + j] = NAN;
    memcpy(c0, c, csz * sizeof(float));
    sprintf(what, "%s pad=%d", kr->name, pad);
    ok = mmgan__gemm_run(ctx, kr, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == MMGAN_OK &&
         matches_oracle(what, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, c, ldc);
    free(a); free(b); free(c); free(c0);
    return ok;
}

static void test_edges(const mmgan__gemm_kernel *kr)
{
    static const int others[] = {1, 5, 17, 33};
    int s, t, o, bad = 0, runs = 0;
    for (t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        for (s = 1; s <= 67; s++) {
            for (o = 0; o < 4; o++) {
                int q = others[(s + o) % 4], r = others[(s + 2 * o + 1) % 4];
                bad += !check_case(kr, ta, tb, s, q, r, 1.0f, 0.0f, 0);
                bad += !check_case(kr, ta, tb, q, s, r, 1.0f, 0.0f, 0);
                bad += !check_case(kr, ta, tb, q, r, s, 1.0f, 0.0f, 0);
                runs += 3;
            }
        }
    }
    CHECK(bad == 0, "%s: %d of %d edge-size products disagree with the oracle", kr->name, bad, runs);
}

static void test_alpha_beta_pad(const mmgan__gemm_kernel *kr)
{
    static const float alphas[] = {1.0f, -0.5f, 2.25f, 0.0f};
    static const float betas[] = {0.0f, 1.0f, 0.3f, -2.0f};
    int ai, bi, t, bad = 0, runs = 0;
    for (ai = 0; ai < 4; ai++)
        for (bi = 0; bi < 4; bi++)
            for (t = 0; t < 4; t++) {
                bad += !check_case(kr, t & 1, t >> 1, 29, 41, 23, alphas[ai], betas[bi], 0);
                bad += !check_case(kr, t & 1, t >> 1, 37, 19, 45, alphas[ai], betas[bi], 7);
                runs += 2;
            }
    CHECK(bad == 0, "%s: %d of %d alpha/beta/stride products disagree", kr->name, bad, runs);
}

static void test_random_shapes(const mmgan__gemm_kernel *kr)
{
    int it, bad = 0;
    for (it = 0; it < 60; it++) {
        /* every fourth up to 300 rows: B read in place up to 256, packed above */
        int m = 1 + (int)mmgan_rng_below(&rng, it % 4 ? 150 : 300), n = 1 + (int)mmgan_rng_below(&rng, 150);
        int k = 1 + (int)mmgan_rng_below(&rng, 300), t = (int)mmgan_rng_below(&rng, 4);
        int pad = (int)mmgan_rng_below(&rng, 3) * 5;
        float beta = (it % 3 == 0) ? 0.0f : 0.75f;
        bad += !check_case(kr, t & 1, t >> 1, m, n, k, 1.5f, beta, pad);
    }
    CHECK(bad == 0, "%s: %d of 60 random shapes disagree", kr->name, bad);
}

/* Products with B read in place in at most four column panels read whole
 * row panels of A in place where the kernel set can (and pack a partial last
 * one): against the oracle with rows a whole number of panels and not, one
 * and two k blocks, padded rows, partial column panels, alpha and beta; and
 * the path is taken where it exists. */
static void test_a_inplace(const mmgan__gemm_kernel *kr)
{
    static const int shapes[][4] = {{8, 48, 64, 0},  {64, 64, 64, 0}, {13, 100, 64, 3}, {100, 192, 300, 5},
                                    {256, 130, 513, 1}, {16, 16, 200, 0}, {40, 7, 70, 2}};
    static const float ab[][2] = {{1.0f, 0.0f}, {-1.5f, 0.5f}, {0.25f, -2.0f}};
    int i, j, bad = 0, runs = 0, taken = 0;
    for (i = 0; i < (int)(sizeof shapes / sizeof shapes[0]); i++) {
        const int m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        mmgan__gemm_args g = mmgan__gemm_args_of(kr, 0, 0, m, n, k, 1.0f, NULL, k, NULL, n, 0.0f, NULL, n, 1);
        taken += mmgan__gemm_a_inplace(&g);
        for (j = 0; j < 3; j++, runs++) bad += !check_case(kr, 0, 0, m, n, k, ab[j][0], ab[j][1], shapes[i][3]);
    }
    CHECK(bad == 0, "%s: %d of %d products with A read in place disagree with the oracle", kr->name, bad, runs);
    CHECK(taken == (kr->ukr_a ? (int)(sizeof shapes / sizeof shapes[0]) : 0),
          "%s: A read in place for %d of the shapes", kr->name, taken);
}

/* Crosses the kc, mc and nc block edges of the kernel. */
static void test_blocks(const mmgan__gemm_kernel *kr)
{
    int m = kr->mc + kr->mr + 3, n = kr->nc + kr->nr + 5, k = 2 * kr->kc + 7, t;
    for (t = 0; t < 4; t += 3)
        CHECK(check_case(kr, t & 1, t >> 1, m, n, k, 1.0f, 0.5f, 3), "%s: %dx%dx%d across cache blocks (trans %d)",
              kr->name, m, n, k, t);
}

/* Bit-identical C for 1 and nt threads.  With tb == 0 and k >= 64, B is
 * read in place for m <= 256 (on threads each its own columns), and packed
 * above; transposed B and k < 64 are packed.  Threads claim their
 * tiles or rows as they go, and more threads than cores make claims from
 * another thread's run happen: whoever computes a tile, its bits are the same. */
static void test_threads_n(int nt, int tb, int m, int n, int k)
{
    int i, maxt;
    size_t csz = (size_t)m * n;
    float *a, *b, *c1, *c2;
    if (test_light((double)m * n * k)) return;
    a = (float *)malloc((size_t)m * k * sizeof(float));
    b = (float *)malloc((size_t)k * n * sizeof(float));
    c1 = (float *)malloc(csz * sizeof(float));
    c2 = (float *)malloc(csz * sizeof(float));
    mmgan_rng_fill_normal(&rng, a, (size_t)m * k, 0, 1);
    mmgan_rng_fill_normal(&rng, b, (size_t)k * n, 0, 1);
    mmgan_rng_fill_normal(&rng, c1, csz, 0, 1);
    memcpy(c2, c1, csz * sizeof(float));
    mmgan_ctx_set_threads(ctx, 1);
    CHECK(mmgan_gemm(ctx, 0, tb, m, n, k, 0.7f, a, k, b, tb ? k : n, 0.2f, c1, n) == MMGAN_OK, "1-thread gemm");
    mmgan_ctx_set_threads(ctx, nt);
    maxt = mmgan_ctx_threads(ctx);
    CHECK(mmgan_gemm(ctx, 0, tb, m, n, k, 0.7f, a, k, b, tb ? k : n, 0.2f, c2, n) == MMGAN_OK, "%d-thread gemm", nt);
    i = memcmp(c1, c2, csz * sizeof(float));
    CHECK(i == 0, "%dx%dx%d: 1 and %d threads give different bits", m, n, k, maxt);
    printf("threads: %dx%dx%d trans_b=%d, 1 vs %d threads bit-identical: %s\n", m, n, k, tb, maxt, i == 0 ? "yes" : "NO");
    mmgan_ctx_set_threads(ctx, 1);
    free(a); free(b); free(c1); free(c2);
}

static void test_threads(int tb, int m, int n, int k) { test_threads_n(2, tb, m, n, k); }

/* B read in place from every float offset within a cache line: C must not
 * depend on where B lies, bit for bit (B's rows a whole number of lines
 * apart start off a line; in long rows the columns before the first line
 * go through a panel of their own), and must match the oracle.  The shapes:
 * B in place on one thread, and with 2 threads each thread its own columns;
 * rows short and long, and wider than a B block (AVX-512: 4080 columns). */
static void test_b_offsets(void)
{
    static const int shapes[][4] = {{9, 1700, 64, 1}, {37, 1601, 70, 1}, {24, 1600, 64, 1}, {64, 200, 100, 1},
                                    {5, 4200, 64, 1}, {40, 1700, 64, 2}, {64, 70, 1000, 2}};
    int si, off, bad = 0, runs = 0;
    for (si = 0; si < (int)(sizeof shapes / sizeof shapes[0]); si++) {
        const int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
        const int ldb = (n + 15) / 16 * 16, ldc = n + 3;
        size_t bsz = (size_t)k * ldb + 16;
        float *braw = (float *)malloc((bsz + 16) * sizeof(float)), *a = (float *)malloc((size_t)m * k * sizeof(float));
        float *c_ref = (float *)malloc((size_t)m * ldc * sizeof(float)), *c_in = (float *)malloc((size_t)m * ldc * sizeof(float));
        float *c = (float *)malloc((size_t)m * ldc * sizeof(float));
        float *b0 = braw + (16 - (size_t)((uintptr_t)braw / sizeof(float) % 16)) % 16;   /* on a line */
        mmgan_ctx_set_threads(ctx, shapes[si][3]);
        mmgan_rng_fill_uniform(&rng, a, (size_t)m * k, -1.0f, 1.0f);
        mmgan_rng_fill_uniform(&rng, b0, (size_t)k * ldb, -1.0f, 1.0f);
        mmgan_rng_fill_uniform(&rng, c_ref, (size_t)m * ldc, -1.0f, 1.0f);
        memcpy(c_in, c_ref, (size_t)m * ldc * sizeof(float));
        CHECK(mmgan_gemm(ctx, 0, 0, m, n, k, 1.25f, a, k, b0, ldb, 0.5f, c_ref, ldc) == MMGAN_OK, "aligned B");
        CHECK(matches_oracle("aligned B", 0, 0, m, n, k, 1.25f, a, k, b0, ldb, 0.5f, c_in, c_ref, ldc),
              "%dx%dx%d: the aligned product disagrees with the oracle", m, n, k);
        for (off = 1; off < 16; off++) {
            float *b = b0 + off;
            memmove(b, b - 1, ((size_t)k * ldb) * sizeof(float));   /* B one float further on */
            memcpy(c, c_in, (size_t)m * ldc * sizeof(float));
            runs++;
            if (mmgan_gemm(ctx, 0, 0, m, n, k, 1.25f, a, k, b, ldb, 0.5f, c, ldc) != MMGAN_OK ||
                memcmp(c, c_ref, (size_t)m * ldc * sizeof(float)) != 0) {
                bad++;
                fprintf(stderr, "  %dx%dx%d, %d threads: B %d floats into a line gives other bits\n", m, n, k,
                        shapes[si][3], off);
            }
        }
        free(braw); free(a); free(c_ref); free(c_in); free(c);
    }
    mmgan_ctx_set_threads(ctx, 1);
    CHECK(bad == 0, "%d of %d products with B off a cache line differ from B on one", bad, runs);
    {   /* and the head is taken where the kernel allows it: 4 floats in, 12
         * to the line, and whole lines more up to a panel's width */
        const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
        float *b = (float *)malloc(64 * sizeof(float));
        float *b4 = b + (16 - (size_t)((uintptr_t)b / sizeof(float) % 16)) % 16 + 4;
        int h = mmgan__gemm_head(kr, 1, b4, 2000, 2000), want = 12;
        while (want + 16 <= kr->nr) want += 16;
        CHECK(kr->edge ? h == want : h == 0, "%s: a head of %d columns for B 4 floats into a line", kr->name, h);
        free(b);
    }
}

static void test_errors(void)
{
    float x[16] = {0};
    mmgan_status st;
    st = mmgan_gemm(ctx, 2, 0, 2, 2, 2, 1, x, 2, x, 2, 0, x, 2);
    CHECK(st == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "trans_a=2"), "bad trans: %s", mmgan_ctx_error(ctx));
    st = mmgan_gemm(ctx, 0, 0, -1, 2, 2, 1, x, 2, x, 2, 0, x, 2);
    CHECK(st == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "negative"), "negative m: %s", mmgan_ctx_error(ctx));
    st = mmgan_gemm(ctx, 0, 0, 2, 3, 4, 1, x, 3, x, 3, 0, x, 3);
    CHECK(st == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "lda=3"), "small lda: %s", mmgan_ctx_error(ctx));
    st = mmgan_gemm(ctx, 0, 1, 2, 3, 4, 1, x, 4, x, 3, 0, x, 3);
    CHECK(st == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "ldb=3"), "small ldb: %s", mmgan_ctx_error(ctx));
    st = mmgan_gemm(ctx, 0, 0, 2, 3, 4, 1, x, 4, x, 3, 0, x, 2);
    CHECK(st == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "ldc=2"), "small ldc: %s", mmgan_ctx_error(ctx));
    st = mmgan_gemm(ctx, 0, 0, 2, 2, 2, 1, NULL, 2, x, 2, 0, x, 2);
    CHECK(st == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "A is NULL"), "NULL A: %s", mmgan_ctx_error(ctx));
    st = mmgan_gemm(NULL, 0, 0, 2, 2, 2, 1, x, 2, x, 2, 0, x, 2);
    CHECK(st == MMGAN_ERR_INVALID, "NULL ctx");
    CHECK(mmgan_gemm(ctx, 0, 0, 0, 5, 5, 1, NULL, 5, NULL, 5, 0, NULL, 5) == MMGAN_OK, "empty product is a no-op");
    x[0] = 3; x[1] = 4;
    CHECK(mmgan_gemm(ctx, 0, 0, 1, 2, 0, 1, NULL, 1, NULL, 2, 0.5f, x, 2) == MMGAN_OK && x[0] == 1.5f && x[1] == 2.0f,
          "k == 0 scales C by beta");
}

int main(void)
{
    int i;
    test_suite = "gemm";
    ctx = mmgan_ctx_new(NULL);
    if (!ctx) return 1;
    mmgan_rng_seed(&rng, 12345, 1);
    mmgan_ctx_set_threads(ctx, 1);
    for (i = 0; i < MMGAN__NKERNELS; i++) {
        const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[i];
        test_edges(kr);
        test_alpha_beta_pad(kr);
        test_random_shapes(kr);
        test_blocks(kr);
        test_a_inplace(kr);
    }
    test_threads(1, 517, 1031, 700);
    test_threads(0, 100, 3001, 300);
    test_threads(0, 60, 2999, 300);
    /* packed B shared by two threads: two column blocks; k blocks of 256,
     * 256, 256 and 212 */
    test_threads(1, 72, 4200, 300);
    test_threads(1, 128, 1024, 980);
    /* B in place on two threads: each thread its own columns (a GAN
     * layer's shape; one panel for two threads; a short last panel; as
     * many rows as B is read in place for; k < 64, packed) */
    test_threads(0, 256, 200, 100);
    test_threads(0, 200, 600, 40);
    test_threads(0, 64, 256, 784);
    test_threads(0, 64, 48, 2000);
    test_threads(0, 37, 100, 2000);
    test_threads(0, 64, 5000, 128);   /* wider than a B block (nc) */
    /* and A read in place as well (few column panels): whole row panels,
     * and a partial one that each thread packs for itself */
    test_threads(0, 256, 128, 256);
    test_threads(0, 100, 150, 300);
    /* packed B, each thread its own rows and A: uneven row panels, two
     * row blocks a thread, more than one B block */
    test_threads(0, 300, 700, 600);
    test_threads(0, 1030, 200, 300);
    test_threads(1, 260, 4500, 70);
#if defined(MMGAN__AVX512)
    /* the deeper k blocks of large products (mmgan__gemm_pick): rows a
     * thread, k blocks of 1024 and a short last one, packed B transposed or not */
    test_threads(0, 300, 200, 1100);
    test_threads(1, 520, 100, 2100);
    CHECK(mmgan__gemm_pick(300, 1100) == &mmgan__gemm_kernels[1] && mmgan__gemm_pick(256, 4096) == &mmgan__gemm_kernels[0] &&
          mmgan__gemm_pick(4096, 512) == &mmgan__gemm_kernels[0], "large products, and only they, take the deep blocks");
#endif
    /* more threads than the 2 cores of CI, so that claims interleave: rows
     * a thread (3 and 4 threads: 3 and 4 A blocks), shared A and B, and
     * seven threads for 18 tiles, some with no run of their own; and B in
     * place on five and seven threads, some with no columns.  Small
     * products: under qemu-s390x's software floating point, larger ones
     * added a minute to make test-cross. */
    test_threads_n(3, 0, 400, 100, 300);
    test_threads_n(4, 1, 530, 150, 300);
    test_threads_n(3, 1, 100, 500, 300);
    test_threads_n(5, 1, 200, 250, 300);
    test_threads_n(7, 1, 72, 50, 1200);
    test_threads_n(5, 0, 200, 250, 300);
    test_threads_n(7, 0, 72, 50, 1200);
    test_b_offsets();
    test_errors();
    mmgan_ctx_free(ctx);
    return test_summary();
}
