/* Contexts, errors, allocator overrides, tensors and the random streams. */
#include <stdlib.h>
#include <stdint.h>
/* Count every allocation through the override hooks: the library must route
 * all of its memory through them and give all of it back. */
static long alloc_live, alloc_calls;
static int alloc_fail_after = -1;   /* fail the n-th allocation from now; -1 never */
static void *count_malloc(void *user, size_t sz)
{
    (void)user;
    if (alloc_fail_after == 0) return NULL;
    if (alloc_fail_after > 0) alloc_fail_after--;
    alloc_live++; alloc_calls++;
    return malloc(sz);
}
static void count_free(void *user, void *p) { (void)user; if (p) alloc_live--; free(p); }
static int realloc_fail_after = -1;   /* fail the n-th reallocation from now; -1 never */
static void *count_realloc(void *user, void *p, size_t sz)
{
    (void)user;
    if (realloc_fail_after == 0) { realloc_fail_after = -1; return NULL; }
    if (realloc_fail_after > 0) realloc_fail_after--;
    if (!p) { alloc_live++; alloc_calls++; }
    return realloc(p, sz);
}
#define MMGAN_MALLOC(u, sz) count_malloc((u), (sz))
#define MMGAN_REALLOC(u, p, sz) count_realloc((u), (p), (sz))
#define MMGAN_FREE(u, p) count_free((u), (p))
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"
#include <math.h>

static void test_status_and_context(void)
{
    mmgan_ctx *ctx;
    int i, user = 7;
    CHECK(strcmp(mmgan_status_name(MMGAN_ERR_SHAPE), "MMGAN_ERR_SHAPE") == 0, "status name");
    CHECK(strcmp(mmgan_status_name((mmgan_status)42), "MMGAN_ERR_UNKNOWN") == 0, "unknown status name");
    CHECK(mmgan_ctx_error(NULL)[0] != '\0', "error text without a context");
    alloc_live = 0;
    ctx = mmgan_ctx_new(&user);
    CHECK(ctx != NULL && alloc_live > 0, "context allocates through the override");
    CHECK(mmgan_ctx_error(ctx)[0] == '\0', "fresh context has no error");
    CHECK(mmgan_ctx_set_threads(ctx, 0) == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "thread"), "0 threads refused");
    mmgan_ctx_clear_error(ctx);
    CHECK(mmgan_ctx_error(ctx)[0] == '\0', "clear error");
    CHECK(mmgan_ctx_set_threads(ctx, 3) == MMGAN_OK && mmgan_ctx_threads(ctx) >= 1, "threads settable");
    /* a team of INT_MAX threads made libgomp exit for want of memory */
    CHECK(mmgan_ctx_set_threads(ctx, INT_MAX) == MMGAN_OK && mmgan_ctx_threads(ctx) >= 1 &&
          mmgan_ctx_threads(ctx) <= 256, "INT_MAX threads capped (%d)", mmgan_ctx_threads(ctx));
    mmgan_ctx_free(ctx);
    CHECK(alloc_live == 0, "context frees all it allocated (%ld live)", alloc_live);
    mmgan_ctx_free(NULL);
    /* Out of memory at every allocation of construction: NULL, never a crash or leak. */
    for (i = 0; i < 2; i++) {
        alloc_live = 0;
        alloc_fail_after = i;
        ctx = mmgan_ctx_new(NULL);
        alloc_fail_after = -1;
        CHECK(ctx == NULL && alloc_live == 0, "ctx_new with allocation %d failing returns NULL and leaks nothing", i);
    }
}

static void test_tensors(void)
{
    mmgan_ctx *ctx = mmgan_ctx_new(NULL);
    int shape[4] = {2, 3, 4, 5}, bad[2] = {3, 0}, flat[1] = {120}, other[2] = {7, 7};
    char buf[64];
    float data[6] = {1, 2, 3, 4, 5, 6};
    mmgan_tensor *t, *u, *w;
    size_t i;
    int zero = 1;
    long live0 = alloc_live;
    t = mmgan_tensor_new(ctx, 4, shape);
    CHECK(t && t->numel == 120 && t->ndim == 4 && ((uintptr_t)t->data % 64) == 0, "4-d tensor, aligned");
    for (i = 0; t && i < t->numel; i++) zero &= t->data[i] == 0.0f;
    CHECK(zero, "new tensor is zero");
    CHECK(strcmp(mmgan_shape_str(t, buf, sizeof buf), "[2, 3, 4, 5]") == 0, "shape string %s", buf);
    CHECK(mmgan_tensor_new(ctx, 2, bad) == NULL && strstr(mmgan_ctx_error(ctx), "dimension 1 is 0"),
          "zero dimension refused: %s", mmgan_ctx_error(ctx));
    CHECK(mmgan_tensor_new(ctx, 5, shape) == NULL && strstr(mmgan_ctx_error(ctx), "5 dimensions"),
          "5 dimensions refused: %s", mmgan_ctx_error(ctx));
    {
        int huge[3] = {65536, 65536, 2};
        CHECK(mmgan_tensor_new(ctx, 3, huge) == NULL && mmgan_ctx_error(ctx)[0], "overflowing shape refused: %s",
              mmgan_ctx_error(ctx));
    }
    CHECK(mmgan_tensor_reshape(ctx, t, 1, flat) == MMGAN_OK && t->ndim == 1 && t->shape[0] == 120, "reshape");
    CHECK(mmgan_tensor_reshape(ctx, t, 2, other) == MMGAN_ERR_SHAPE && strstr(mmgan_ctx_error(ctx), "120 elements"),
          "bad reshape: %s", mmgan_ctx_error(ctx));
    {
        int s23[2] = {2, 3};
        u = mmgan_tensor_wrap(ctx, data, 2, s23);
        w = mmgan_tensor_new(ctx, 2, s23);
        CHECK(mmgan_tensor_copy(ctx, w, u) == MMGAN_OK && w->data[5] == 6.0f, "copy");
        CHECK(mmgan_tensor_copy(ctx, t, u) == MMGAN_ERR_SHAPE && strstr(mmgan_ctx_error(ctx), "[120]"),
              "copy shape mismatch: %s", mmgan_ctx_error(ctx));
        mmgan_tensor_fill(w, 2.5f);
        CHECK(w->data[0] == 2.5f && w->data[5] == 2.5f, "fill");
        CHECK(mmgan_tensor_wrap(ctx, NULL, 2, s23) == NULL && strstr(mmgan_ctx_error(ctx), "NULL"), "wrap NULL");
        mmgan_tensor_free(ctx, u);
        mmgan_tensor_free(ctx, w);
        CHECK(data[0] == 1.0f, "wrapped data survives free");
    }
    {
        mmgan_tensor *s = mmgan_tensor_new(ctx, 0, NULL);
        CHECK(s && s->numel == 1, "0-d tensor is a scalar");
        mmgan_tensor_free(ctx, s);
    }
    mmgan_tensor_free(ctx, t);
    CHECK(alloc_live == live0, "tensors give back their memory (%ld live)", alloc_live - live0);
    mmgan_ctx_free(ctx);
}

/* Known answers: PCG32's published first outputs for seed 42, stream 54, and
 * normals from the independent Python model in tests/rng_reference.py. */
static void test_rng_known_answers(void)
{
    static const uint32_t pcg[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u, 0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
    static const uint32_t nrm[8] = {0x3ec704b2u, 0x3d075096u, 0xbf219a77u, 0xbf1340acu,
                                    0x3e87039eu, 0x3efa4ef9u, 0xbf80fd1du, 0x3f914cccu};
    mmgan_rng r;
    int i, ok = 1;
    uint32_t acc = 0;
    mmgan_rng_seed(&r, 42, 54);
    for (i = 0; i < 6; i++) ok &= mmgan_rng_u32(&r) == pcg[i];
    CHECK(ok, "PCG32 stream differs from the reference values");
    mmgan_rng_seed(&r, 2026, 7);
    ok = 1;
    for (i = 0; i < 8; i++) ok &= mmgan__f2u(mmgan_rng_normal(&r)) == nrm[i];
    CHECK(ok, "normal variates differ from the reference bits");
    mmgan_rng_seed(&r, 1, 0);
    for (i = 0; i < 100000; i++) acc = acc * 31u + mmgan__f2u(mmgan_rng_normal(&r));
    CHECK(acc == 0xaa0b3eb6u, "hash of 100000 normals is 0x%08x, reference 0xaa0b3eb6", (unsigned)acc);
}

static void test_rng_statistics(void)
{
    mmgan_rng r, copy;
    int i, n = 400000, counts[10] = {0}, ok = 1, perm[50], seen[50] = {0};
    double s = 0, s2 = 0, s4 = 0, umin = 1, umax = 0;
    float buf[1000];
    mmgan_rng_seed(&r, 99, 3);
    for (i = 0; i < n; i++) {
        double z = mmgan_rng_normal(&r), u = mmgan_rng_uniform(&r);
        s += z; s2 += z * z; s4 += z * z * z * z;
        if (u < umin) umin = u;
        if (u > umax) umax = u;
        counts[mmgan_rng_below(&r, 10)]++;
    }
    s /= n; s2 /= n; s4 /= n;
    CHECK(fabs(s) < 0.01 && fabs(s2 - 1) < 0.01 && fabs(s4 - 3) < 0.05, "normal moments: mean %g var %g kurt %g", s, s2, s4);
    CHECK(umin >= 0 && umax < 1 && umin < 1e-4 && umax > 1 - 1e-4, "uniform range [%g, %g]", umin, umax);
    for (i = 0; i < 10; i++) ok &= abs(counts[i] - n / 10) < 1000;
    CHECK(ok, "below(10) is uniform");
    copy = r;
    mmgan_rng_fill_normal(&r, buf, 1000, 2.0f, 0.5f);
    {
        /* volatile: the compiler must not fuse the reference into an FMA;
         * the cast: s390x evaluates float sums in double (FLT_EVAL_METHOD 1) */
        volatile float scaled = 0.5f * mmgan_rng_normal(&copy);
        CHECK((float)(2.0f + scaled) == buf[0], "a copied generator replays the stream");
    }
    mmgan_rng_fill_uniform(&r, buf, 1000, -3.0f, -1.0f);
    ok = 1;
    for (i = 0; i < 1000; i++) ok &= buf[i] >= -3.0f && buf[i] < -1.0f;
    CHECK(ok, "fill_uniform stays in [lo, hi)");
    mmgan_rng_permutation(&r, perm, 50);
    ok = 1;
    for (i = 0; i < 50; i++) { ok &= perm[i] >= 0 && perm[i] < 50 && !seen[perm[i]]; if (ok) seen[perm[i]] = 1; }
    CHECK(ok, "permutation is a permutation");
    {
        mmgan_rng a, b;
        mmgan_rng_seed(&a, 5, 1);
        mmgan_rng_seed(&b, 5, 2);
        CHECK(mmgan_rng_u32(&a) != mmgan_rng_u32(&b), "streams differ");
    }
    /* a NULL generator: nothing, and draws of 0 (it crashed) */
    mmgan_rng_seed(NULL, 1, 1);
    buf[0] = 5.0f;
    mmgan_rng_fill_uniform(NULL, buf, 4, 0.0f, 1.0f);
    mmgan_rng_fill_normal(NULL, buf, 4, 0.0f, 1.0f);
    mmgan_rng_fill_normal(&r, NULL, 4, 0.0f, 1.0f);
    CHECK(buf[0] == 5.0f && mmgan_rng_u32(NULL) == 0 && mmgan_rng_below(NULL, 10) == 0 && mmgan_rng_uniform(NULL) == 0.0f &&
          mmgan_rng_normal(NULL) == 0.0f, "a NULL rng is a no-op drawing 0");
}

static void test_portable_log(void)
{
    double worst = 0, x;
    for (x = 1e-300; x < 1.0; x *= 1.37) {
        double e = fabs(mmgan__log_portable(x) - log(x)) / fabs(log(x));
        if (e > worst) worst = e;
    }
    CHECK(worst < 1e-15, "portable log relative error %g", worst);
}

/* Out of memory growing a graph's nodes inside mmgan_grad: the derivative
 * steps of sub, mul and div built a node that failed, then read the node
 * before it (an out-of-bounds read; ASan stopped the run).  Filler nodes
 * move the growth over every step of two gradients; each failure must end
 * as MMGAN_ERR_NOMEM with a message and give back all memory. */
static void test_grad_out_of_memory(void)
{
    long live0 = alloc_live;
    mmgan_ctx *ctx = mmgan_ctx_new(NULL);
    int pad, failed = 0, bad = 0;
    for (pad = 0; pad < 140; pad++) {
        mmgan_graph *g = mmgan_graph_new(ctx);
        mmgan_node x = mmgan_input(g, "x", 2, (const int[]){2, 3}), w = mmgan_input(g, "w", 1, (const int[]){3});
        mmgan_node y, gw, ggw;
        mmgan_status st;
        int k;
        for (k = 0; k < pad; k++) mmgan_detach(g, x);
        y = mmgan_sum(g, mmgan_div(g, mmgan_mul(g, mmgan_sub(g, x, w), w), mmgan_affine(g, mmgan_square(g, w), 1.0f, 1.0f)));
        realloc_fail_after = 0;   /* the first growth of the node array from here fails */
        st = mmgan_grad(g, y, 1, &w, &gw);
        if (st == MMGAN_OK) st = mmgan_grad(g, mmgan_sum(g, mmgan_square(g, gw)), 1, &w, &ggw);
        if (realloc_fail_after == -1 && st == MMGAN_OK) bad++;   /* a growth failed, unreported */
        if (st != MMGAN_OK) {
            failed++;
            if (st != MMGAN_ERR_NOMEM || mmgan_ctx_error(ctx)[0] == '\0') bad++;
        }
        realloc_fail_after = -1;
        mmgan_graph_free(g);
        mmgan_ctx_clear_error(ctx);
    }
    mmgan_ctx_free(ctx);
    CHECK(failed > 0 && bad == 0 && alloc_live == live0,
          "graph growth failing inside mmgan_grad: %d failures, %d misreported, %ld blocks left", failed, bad,
          alloc_live - live0);
}

/* Out of memory at each allocation of mmgan_plan_new (the order's work
 * arrays, the placement's, the arena, batch norm's pairs): NULL with
 * an "out of memory" message, nothing leaked; then a plan that runs. */
static void test_plan_out_of_memory(void)
{
    long live0 = alloc_live;
    mmgan_ctx *ctx = mmgan_ctx_new(NULL);
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node x = mmgan_input(g, "x", 4, (const int[]){2, 3, 2, 2}), gm = mmgan_input(g, "g", 1, (const int[]){3});
    mmgan_node y, gr[2], wrt[2];
    mmgan_plan *p = NULL;
    float xv[24], gv[3] = {1.0f, 0.5f, 2.0f};
    int i, k, failed = 0, bad = 0;
    for (i = 0; i < 24; i++) xv[i] = 0.1f * (float)(i % 7) - 0.2f;
    mmgan_graph_feed(g, x, xv);
    mmgan_graph_feed(g, gm, gv);
    y = mmgan_sum(g, mmgan_square(g, mmgan_relu(g, mmgan_batch_norm(g, x, gm, MMGAN_NONE, NULL, NULL, 0.1f, 1e-5f, 1))));
    wrt[0] = x; wrt[1] = gm;
    CHECK(mmgan_grad(g, y, 2, wrt, gr) == MMGAN_OK, "plan out of memory: grad: %s", mmgan_ctx_error(ctx));
    for (k = 0; k < 60 && !p; k++) {
        long live = alloc_live;
        alloc_fail_after = k;
        p = mmgan_plan_new(g, 2, gr);
        alloc_fail_after = -1;
        if (!p) {
            failed++;
            if (!strstr(mmgan_ctx_error(ctx), "out of memory") ||
                alloc_live != live)
                bad++;
            mmgan_ctx_clear_error(ctx);
        }
    }
    CHECK(p && failed >= 10 && bad == 0 && mmgan_plan_run(p) == MMGAN_OK,
          "plan_new failing at each allocation: %d failures, %d misreported or leaking, then %s", failed, bad,
          p ? "a plan" : "none");
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    mmgan_ctx_free(ctx);
    CHECK(alloc_live == live0, "plan out of memory: %ld blocks left", alloc_live - live0);
}

int main(void)
{
    test_suite = "core";
    test_status_and_context();
    test_tensors();
    test_rng_known_answers();
    test_rng_statistics();
    test_portable_log();
    test_grad_out_of_memory();
    test_plan_out_of_memory();
    CHECK(alloc_live == 0, "no memory left allocated at exit (%ld)", alloc_live);
    return test_summary();
}
