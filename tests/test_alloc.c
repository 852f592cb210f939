/* Allocations are counted through the allocator overrides: building graphs
 * and plans allocates, running a built plan never does; untrusted sizes in
 * a file do not size an allocation. */
#include <stdlib.h>
static long allocs, frees;
static size_t biggest;   /* the largest single request */
static void *count_malloc(size_t n) { allocs++; if (n > biggest) biggest = n; return malloc(n); }
static void *count_realloc(void *p, size_t n) { allocs++; if (p) frees++; if (n > biggest) biggest = n; return realloc(p, n); }
static void count_free(void *p) { if (p) frees++; free(p); }
#define MMGAN_MALLOC(u, n) ((void)(u), count_malloc(n))
#define MMGAN_REALLOC(u, p, n) ((void)(u), count_realloc((p), (n)))
#define MMGAN_FREE(u, p) ((void)(u), count_free(p))
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"

#define S(...) (const int[]){__VA_ARGS__}

int main(void)
{
    mmgan_ctx *ctx;
    mmgan_rng rng;
    mmgan_graph *g;
    mmgan_param *w1, *b1, *w2, *gw, *gamma, *beta, *rm, *rv, *params[4];
    mmgan_node x, z, gimg, d, gx, pen, loss, pn[4], grads[4], targets[6];
    mmgan_plan *p;
    float *xv, *zv;
    long before;
    int i, ok = 1;

    test_suite = "test_alloc";
    ctx = mmgan_ctx_new(NULL);
    mmgan_rng_seed(&rng, 5, 0);
    xv = (float *)malloc(8 * 28 * 28 * sizeof(float));
    zv = (float *)malloc(8 * 16 * 7 * 7 * sizeof(float));
    mmgan_rng_fill_uniform(&rng, xv, 8 * 28 * 28, -1, 1);
    mmgan_rng_fill_normal(&rng, zv, 8 * 16 * 7 * 7, 0, 1);

    /* Generator piece (conv_transpose + batch norm + tanh), critic (conv,
     * leaky relu, linear), the gradient penalty and every weight gradient. */
    w1 = mmgan_param_new(ctx, "w1", 4, S(8, 1, 4, 4));
    b1 = mmgan_param_new(ctx, "b1", 1, S(8));
    w2 = mmgan_param_new(ctx, "w2", 2, S(1, 8 * 14 * 14));
    gw = mmgan_param_new(ctx, "gw", 4, S(16, 1, 4, 4));
    gamma = mmgan_param_new(ctx, "gamma", 1, S(16));
    beta = mmgan_param_new(ctx, "beta", 1, S(16));
    rm = mmgan_param_new(ctx, "rm", 1, S(16));
    rv = mmgan_param_new(ctx, "rv", 1, S(16));
    mmgan_param_init(w1, MMGAN_INIT_NORMAL, 0.02f, &rng);
    mmgan_param_init(w2, MMGAN_INIT_NORMAL, 0.02f, &rng);
    mmgan_param_init(gw, MMGAN_INIT_NORMAL, 0.02f, &rng);
    mmgan_param_init(gamma, MMGAN_INIT_CONST, 1.0f, &rng);
    mmgan_param_init(rv, MMGAN_INIT_CONST, 1.0f, &rng);

    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 4, S(8, 1, 28, 28));
    z = mmgan_input(g, "z", 4, S(8, 16, 7, 7));
    mmgan_graph_feed(g, x, xv);
    mmgan_graph_feed(g, z, zv);
    gimg = mmgan_batch_norm(g, z, mmgan_parameter(g, gamma), mmgan_parameter(g, beta), rm, rv, 0.1f, 1e-5f, 1);
    gimg = mmgan_tanh(g, mmgan_conv_transpose2d(g, mmgan_relu(g, gimg), mmgan_parameter(g, gw), 4, 0, 0));
    x = mmgan_add(g, mmgan_scale(g, x, 0.5f), mmgan_scale(g, gimg, 0.5f));
    d = mmgan_conv2d(g, x, mmgan_parameter(g, w1), 2, 1);
    d = mmgan_leaky_relu(g, mmgan_bias_add(g, d, mmgan_parameter(g, b1)), 0.2f);
    d = mmgan_linear(g, mmgan_flatten(g, d), mmgan_parameter(g, w2), MMGAN_NONE);
    mmgan_grad(g, d, 1, &x, &gx);
    pen = mmgan_mean(g, mmgan_square(g, mmgan_affine(g, mmgan_sqrt(g, mmgan_affine(g,
          mmgan_sum_per_sample(g, mmgan_square(g, gx)), 1.0f, 1e-12f)), 1.0f, -1.0f)));
    loss = mmgan_add(g, mmgan_mean(g, d), mmgan_scale(g, pen, 10.0f));
    params[0] = w1; params[1] = b1; params[2] = w2; params[3] = gw;
    for (i = 0; i < 4; i++) pn[i] = mmgan_parameter(g, params[i]);
    CHECK(mmgan_grad(g, loss, 4, pn, grads) == MMGAN_OK, "grad: %s", mmgan_ctx_error(ctx));
    targets[0] = loss; targets[1] = pen;
    for (i = 0; i < 4; i++) targets[i + 2] = grads[i];
    p = mmgan_plan_new(g, 6, targets);
    CHECK(p != NULL, "plan: %s", mmgan_ctx_error(ctx));
    if (p) {
        /* A whole training step: the plan, then the optimizer. */
        mmgan_opt_spec spec = mmgan_opt_default(MMGAN_OPT_ADAM);
        mmgan_optimizer *opt = mmgan_opt_new(ctx, &spec, 4, params);
        CHECK(opt && mmgan_plan_run(p) == MMGAN_OK, "first run");
        before = allocs;
        for (i = 0; i < 100 && opt; i++) {
            ok &= mmgan_plan_run(p) == MMGAN_OK;
            ok &= mmgan_opt_step_plan(opt, p, grads) == MMGAN_OK;
        }
        CHECK(ok, "100 steps");
        CHECK(allocs == before, "100 training steps (plan + Adam) allocated %ld times", allocs - before);
        mmgan_opt_free(opt);
        CHECK(mmgan_plan_value(p, pen)[0] > 0.0f, "penalty is positive");
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    {
        /* 23 bytes of gzip (an empty stored block) whose trailer claims
         * 2^30 - 1 bytes: that size is only a hint, and deflate cannot
         * expand 5 bytes to it, so it must not size the output buffer. */
        static const unsigned char gz[23] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 0, 0, 0xff, 0xff,
                                             0, 0, 0, 0, 0xff, 0xff, 0xff, 0x3f};
        unsigned char *out = NULL;
        size_t on = 0;
        biggest = 0;
        CHECK(mmgan_gunzip(ctx, gz, sizeof gz, &out, &on) == MMGAN_ERR_FORMAT && !out && biggest < 4096,
              "a gzip trailer's size claim allocated %lu bytes", (unsigned long)biggest);
    }
    mmgan_param_free(w1); mmgan_param_free(b1); mmgan_param_free(w2); mmgan_param_free(gw);
    mmgan_param_free(gamma); mmgan_param_free(beta); mmgan_param_free(rm); mmgan_param_free(rv);
    mmgan_ctx_free(ctx);
    CHECK(allocs == frees, "every allocation freed: %ld allocations, %ld frees", allocs, frees);
    free(xv); free(zv);
    return test_summary();
}
