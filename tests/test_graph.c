/* Graph, ops and autodiff: every op's first- and second-order derivatives
 * against central finite differences, the checker shown to catch broken
 * VJPs, a conv critic's gradient penalty, pruning, staged plans, memory
 * planning and build-time errors. */
#define MMGAN__TEST_HOOKS
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>

static mmgan_ctx *ctx;
static mmgan_rng rng;

/* Values away from the kinks of relu-like ops (|x| >= 0.2), or positive. */
enum { V_ANY, V_POS, V_DISTINCT };

typedef struct fdcase {
    mmgan_graph *g;
    int nx;
    mmgan_node x[4];
    float *xv[4];
} fdcase;

static mmgan_node add_input(fdcase *c, int ndim, const int *shape, int kind)
{
    mmgan_node x = mmgan_input(c->g, "x", ndim, shape);
    size_t n = mmgan_node_numel(c->g, x), i;
    float *v = (float *)malloc(n * sizeof(float));
    for (i = 0; i < n; i++) {
        float u = mmgan_rng_uniform(&rng);
        if (kind == V_POS) v[i] = 0.5f + 1.5f * u;
        else v[i] = (0.2f + 0.8f * u) * (mmgan_rng_u32(&rng) & 1 ? 1.0f : -1.0f);
    }
    if (kind == V_DISTINCT) {
        /* Magnitudes 0.2 .. 1 in distinct steps >= 0.8/n, so a finite
         * difference never moves the position of a maximum. */
        int *perm = (int *)malloc(n * sizeof(int));
        mmgan_rng_permutation(&rng, perm, (int)n);
        for (i = 0; i < n; i++) v[i] = (v[i] > 0 ? 1.0f : -1.0f) * (0.2f + 0.8f * (float)perm[i] / (float)n);
        free(perm);
    }
    mmgan_graph_feed(c->g, x, v);
    c->x[c->nx] = x;
    c->xv[c->nx++] = v;
    return x;
}

static mmgan_node rand_const(mmgan_graph *g, mmgan_node like)
{
    int shape[4], nd = mmgan_node_shape(g, like, shape);
    size_t n = mmgan_node_numel(g, like);
    float *v = (float *)malloc(n * sizeof(float));
    mmgan_node k;
    mmgan_rng_fill_uniform(&rng, v, n, -1.0f, 1.0f);
    k = mmgan_constant(g, nd, shape, v);
    free(v);
    return k;
}

/* Normalized error ||a - b|| / max(||b||, floor). */
static double rel_err(const float *a, const double *b, size_t n, double floor)
{
    double d = 0, nb = 0;
    size_t i;
    for (i = 0; i < n; i++) { d += (a[i] - b[i]) * (a[i] - b[i]); nb += b[i] * b[i]; }
    nb = sqrt(nb);
    return sqrt(d) / (nb > floor ? nb : floor);
}

/* Checks grad(f, x_i) for every input against central differences of f;
 * returns the worst normalized error. */
static int fd_quiet;   /* set while a check is expected to fail */

static double fd_check(fdcase *c, mmgan_node f, const char *what, double h, double tol)
{
    mmgan_node gr[4], targets[5];
    mmgan_plan *p;
    double worst = 0;
    int i;
    if (mmgan_grad(c->g, f, c->nx, c->x, gr) != MMGAN_OK) {
        CHECK(0, "%s: grad failed: %s", what, mmgan_ctx_error(ctx));
        return 1e9;
    }
    targets[0] = f;
    for (i = 0; i < c->nx; i++) targets[i + 1] = gr[i];
    p = mmgan_plan_new(c->g, c->nx + 1, targets);
    if (!p || mmgan_plan_run(p) != MMGAN_OK) {
        CHECK(0, "%s: plan failed: %s", what, mmgan_ctx_error(ctx));
        mmgan_plan_free(p);
        return 1e9;
    }
    for (i = 0; i < c->nx; i++) {
        size_t n = mmgan_node_numel(c->g, c->x[i]), e;
        float *an = (float *)malloc(n * sizeof(float));
        double *fd = (double *)malloc(n * sizeof(double)), err;
        mmgan_plan_run(p);
        memcpy(an, mmgan_plan_value(p, gr[i]), n * sizeof(float));
        for (e = 0; e < n; e++) {
            float keep = c->xv[i][e];
            double fp, fm;
            c->xv[i][e] = (float)(keep + h); mmgan_plan_run(p); fp = mmgan_plan_value(p, f)[0];
            c->xv[i][e] = (float)(keep - h); mmgan_plan_run(p); fm = mmgan_plan_value(p, f)[0];
            c->xv[i][e] = keep;
            fd[e] = (fp - fm) / ((double)(float)(keep + h) - (double)(float)(keep - h));
        }
        err = rel_err(an, fd, n, 1e-3);
        if (!fd_quiet) CHECK(err <= tol, "%s: d/dx%d error %.3g > %.3g", what, i, err, tol);
        if (err > worst) worst = err;
        free(an); free(fd);
    }
    mmgan_plan_free(p);
    return worst;
}

/* First order: f = <r, y>.  Second order: h = sum_i <s_i, df/dx_i>, whose
 * gradient needs the derivative of every VJP; it is checked with the same
 * finite differences.  Returns the worst error of both orders. */
static double check_op(fdcase *c, mmgan_node y, const char *what, double h)
{
    mmgan_node f, gr[4], hsum = MMGAN_NONE;
    double e1, e2;
    int i;
    char name[96];
    if (mmgan_graph_status(c->g) != MMGAN_OK) {
        CHECK(0, "%s: build failed: %s", what, mmgan_ctx_error(ctx));
        return 1e9;
    }
    f = mmgan_sum(c->g, mmgan_mul(c->g, y, rand_const(c->g, y)));
    snprintf(name, sizeof name, "%s (1st order)", what);
    e1 = fd_check(c, f, name, h, 1e-2);
    mmgan_grad(c->g, f, c->nx, c->x, gr);
    for (i = 0; i < c->nx; i++) {
        mmgan_node t = mmgan_sum(c->g, mmgan_mul(c->g, gr[i], rand_const(c->g, gr[i])));
        hsum = hsum == MMGAN_NONE ? t : mmgan_add(c->g, hsum, t);
    }
    snprintf(name, sizeof name, "%s (2nd order)", what);
    e2 = fd_check(c, hsum, name, h, 1e-2);
    return e1 > e2 ? e1 : e2;
}

static void fd_free(fdcase *c)
{
    int i;
    for (i = 0; i < c->nx; i++) free(c->xv[i]);
    mmgan_graph_free(c->g);
    memset(c, 0, sizeof *c);
}

static void fd_new(fdcase *c)
{
    memset(c, 0, sizeof *c);
    c->g = mmgan_graph_new(ctx);
}

#define S(...) (const int[]){__VA_ARGS__}

/* Parameters made by the cases, freed after them (parameters outlive graphs). */
static mmgan_param *owned[8];
static int nowned;

/* One case per op (and per interesting shape); returns the output node. */
enum { NCASES = 52 };
static mmgan_node build_case(fdcase *c, int k, const char **name)
{
    mmgan_graph *g = c->g;
    mmgan_node a, b;
    switch (k) {
    case 0: *name = "add [3x4]+[4]"; a = add_input(c, 2, S(3, 4), V_ANY); b = add_input(c, 1, S(4), V_ANY); return mmgan_add(g, a, b);
    case 1: *name = "add [2x3x2x2]+[1x3x1x1]"; a = add_input(c, 4, S(2, 3, 2, 2), V_ANY); b = add_input(c, 4, S(1, 3, 1, 1), V_ANY); return mmgan_add(g, a, b);
    case 2: *name = "sub [3x1]-[1x5]"; a = add_input(c, 2, S(3, 1), V_ANY); b = add_input(c, 2, S(1, 5), V_ANY); return mmgan_sub(g, a, b);
    case 3: *name = "mul [4x5]*[4x1]"; a = add_input(c, 2, S(4, 5), V_ANY); b = add_input(c, 2, S(4, 1), V_ANY); return mmgan_mul(g, a, b);
    case 4: *name = "mul same"; a = add_input(c, 2, S(3, 7), V_ANY); b = add_input(c, 2, S(3, 7), V_ANY); return mmgan_mul(g, a, b);
    case 5: *name = "div [3x4]/[4]"; a = add_input(c, 2, S(3, 4), V_ANY); b = add_input(c, 1, S(4), V_ANY); return mmgan_div(g, a, b);
    case 6: *name = "affine"; a = add_input(c, 2, S(2, 5), V_ANY); return mmgan_affine(g, a, -1.5f, 0.25f);
    case 7: *name = "sum_to [2x3x4]->[3x1]"; a = add_input(c, 3, S(2, 3, 4), V_ANY); return mmgan_sum_to(g, a, 2, S(3, 1));
    case 8: *name = "broadcast_to [3x1]->[2x3x4]"; a = add_input(c, 2, S(3, 1), V_ANY); return mmgan_broadcast_to(g, a, 3, S(2, 3, 4));
    case 9: *name = "matmul NN"; a = add_input(c, 2, S(3, 4), V_ANY); b = add_input(c, 2, S(4, 5), V_ANY); return mmgan_matmul(g, a, b, 0, 0);
    case 10: *name = "matmul TN"; a = add_input(c, 2, S(4, 3), V_ANY); b = add_input(c, 2, S(4, 5), V_ANY); return mmgan_matmul(g, a, b, 1, 0);
    case 11: *name = "matmul NT"; a = add_input(c, 2, S(3, 4), V_ANY); b = add_input(c, 2, S(5, 4), V_ANY); return mmgan_matmul(g, a, b, 0, 1);
    case 12: *name = "matmul TT"; a = add_input(c, 2, S(4, 3), V_ANY); b = add_input(c, 2, S(5, 4), V_ANY); return mmgan_matmul(g, a, b, 1, 1);
    case 13: {
        mmgan_node w, bb;
        *name = "linear";
        a = add_input(c, 2, S(3, 6), V_ANY); w = add_input(c, 2, S(4, 6), V_ANY); bb = add_input(c, 1, S(4), V_ANY);
        return mmgan_linear(g, a, w, bb);
    }
    case 14: *name = "bias_add 4-d"; a = add_input(c, 4, S(2, 3, 2, 3), V_ANY); b = add_input(c, 1, S(3), V_ANY); return mmgan_bias_add(g, a, b);
    case 15: *name = "conv2d 3x3 s1 p1"; a = add_input(c, 4, S(2, 2, 5, 5), V_ANY); b = add_input(c, 4, S(3, 2, 3, 3), V_ANY); return mmgan_conv2d(g, a, b, 1, 1);
    case 16: *name = "conv2d 4x4 s2 p1 batch 1"; a = add_input(c, 4, S(1, 2, 6, 6), V_ANY); b = add_input(c, 4, S(3, 2, 4, 4), V_ANY); return mmgan_conv2d(g, a, b, 2, 1);
    case 17: *name = "conv2d 3x2 s2 p0 odd"; a = add_input(c, 4, S(2, 1, 7, 5), V_ANY); b = add_input(c, 4, S(2, 1, 3, 2), V_ANY); return mmgan_conv2d(g, a, b, 2, 0);
    case 18: *name = "conv_transpose2d 4x4 s2 p1"; a = add_input(c, 4, S(2, 3, 3, 3), V_ANY); b = add_input(c, 4, S(3, 2, 4, 4), V_ANY); return mmgan_conv_transpose2d(g, a, b, 2, 1, 0);
    case 19: *name = "conv_transpose2d 3x3 s2 p1 out_pad 1"; a = add_input(c, 4, S(1, 2, 3, 4), V_ANY); b = add_input(c, 4, S(2, 3, 3, 3), V_ANY); return mmgan_conv_transpose2d(g, a, b, 2, 1, 1);
    case 20: *name = "conv_transpose2d 3x3 s1 p0"; a = add_input(c, 4, S(2, 2, 3, 3), V_ANY); b = add_input(c, 4, S(2, 1, 3, 3), V_ANY); return mmgan_conv_transpose2d(g, a, b, 1, 0, 0);
    case 21: *name = "conv2d_wgrad 3x3 s2 p1"; a = add_input(c, 4, S(2, 2, 5, 5), V_ANY); b = add_input(c, 4, S(2, 3, 3, 3), V_ANY); return mmgan_conv2d_wgrad(g, a, b, 3, 3, 2, 1);
    case 22: *name = "reshape"; a = add_input(c, 3, S(2, 3, 4), V_ANY); return mmgan_reshape(g, a, 2, S(4, 6));
    case 23: *name = "flatten"; a = add_input(c, 4, S(2, 3, 2, 2), V_ANY); return mmgan_flatten(g, a);
    case 24: *name = "concat"; a = add_input(c, 2, S(2, 3), V_ANY); b = add_input(c, 2, S(3, 3), V_ANY); return mmgan_concat(g, a, b);
    case 25: *name = "slice"; a = add_input(c, 3, S(5, 2, 2), V_ANY); return mmgan_slice(g, a, 1, 3);
    case 26: *name = "pad_batch"; a = add_input(c, 2, S(2, 3), V_ANY); return mmgan_pad_batch(g, a, 1, 4);
    case 27: *name = "relu"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_relu(g, a);
    case 28: *name = "leaky_relu"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_leaky_relu(g, a, 0.2f);
    case 29: *name = "sigmoid"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_sigmoid(g, mmgan_scale(g, a, 2.0f));
    case 30: *name = "tanh"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_tanh(g, mmgan_scale(g, a, 2.0f));
    case 31: *name = "softplus"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_softplus(g, mmgan_scale(g, a, 3.0f));
    case 32: *name = "log_sigmoid"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_log_sigmoid(g, mmgan_scale(g, a, 3.0f));
    case 33: *name = "exp"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_exp(g, a);
    case 34: *name = "log"; a = add_input(c, 2, S(4, 5), V_POS); return mmgan_log(g, a);
    case 35: *name = "sqrt"; a = add_input(c, 2, S(4, 5), V_POS); return mmgan_sqrt(g, a);
    case 36: *name = "abs"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_abs(g, a);
    case 37: *name = "square"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_square(g, a);
    case 38: *name = "maximum"; a = add_input(c, 2, S(4, 5), V_ANY); return mmgan_maximum(g, mmgan_affine(g, a, 1.0f, 0.3f), 0.3f);
    case 39: *name = "sum"; a = add_input(c, 3, S(2, 3, 4), V_ANY); return mmgan_sum(g, a);
    case 40: *name = "mean"; a = add_input(c, 3, S(2, 3, 4), V_ANY); return mmgan_mean(g, a);
    case 41: *name = "sum_per_sample"; a = add_input(c, 4, S(3, 2, 2, 2), V_ANY); return mmgan_sum_per_sample(g, a);
    case 42: *name = "mean_per_sample"; a = add_input(c, 2, S(3, 5), V_ANY); return mmgan_mean_per_sample(g, a);
    case 43: *name = "max_abs_per_sample"; a = add_input(c, 4, S(3, 2, 2, 3), V_DISTINCT); return mmgan_max_abs_per_sample(g, a);
    case 44: *name = "softmax_per_sample"; a = add_input(c, 3, S(3, 2, 3), V_ANY); return mmgan_softmax_per_sample(g, a, 1.5f);
    case 45: *name = "smooth_max_per_sample"; a = add_input(c, 2, S(3, 6), V_ANY); return mmgan_smooth_max_per_sample(g, a, 1.0f);
    case 46: case 47: {
        mmgan_node gm, bt;
        mmgan_param *rm = mmgan_param_new(ctx, "rm", 1, S(3)), *rv = mmgan_param_new(ctx, "rv", 1, S(3));
        owned[nowned++] = rm;
        owned[nowned++] = rv;
        *name = k == 46 ? "batch_norm train [4x3x2x2]" : "batch_norm eval";
        mmgan_param_init(rv, MMGAN_INIT_CONST, 1.5f, NULL);
        mmgan_param_init(rm, MMGAN_INIT_CONST, 0.1f, NULL);
        a = add_input(c, 4, S(4, 3, 2, 2), V_ANY); gm = add_input(c, 1, S(3), V_ANY); bt = add_input(c, 1, S(3), V_ANY);
        return mmgan_batch_norm(g, a, gm, bt, rm, rv, 0.1f, 1e-5f, k == 46);
    }
    case 48: {
        mmgan_node gm, bt;
        *name = "batch_norm train [5x4]";
        a = add_input(c, 2, S(5, 4), V_ANY); gm = add_input(c, 1, S(4), V_ANY); bt = add_input(c, 1, S(4), V_ANY);
        return mmgan_batch_norm(g, a, gm, bt, NULL, NULL, 0.1f, 1e-5f, 1);
    }
    case 49: {
        mmgan_node gm, bt;
        *name = "layer_norm [3x2x2x2]";
        a = add_input(c, 4, S(3, 2, 2, 2), V_ANY); gm = add_input(c, 3, S(2, 2, 2), V_ANY); bt = add_input(c, 3, S(2, 2, 2), V_ANY);
        return mmgan_layer_norm(g, a, gm, bt, 1e-5f);
    }
    case 50: *name = "conv2d 1x1"; a = add_input(c, 4, S(2, 3, 2, 3), V_ANY); b = add_input(c, 4, S(2, 3, 1, 1), V_ANY); return mmgan_conv2d(g, a, b, 1, 0);
    case 51: *name = "conv2d 5x5 s3 p2"; a = add_input(c, 4, S(1, 2, 7, 8), V_ANY); b = add_input(c, 4, S(2, 2, 5, 5), V_ANY); return mmgan_conv2d(g, a, b, 3, 2);
    }
    return MMGAN_NONE;
}

static void test_every_op(void)
{
    int k;
    for (k = 0; k < NCASES; k++) {
        fdcase c;
        const char *name = "?";
        mmgan_node y;
        fd_new(&c);
        y = build_case(&c, k, &name);
        check_op(&c, y, name, 1e-2);
        fd_free(&c);
        while (nowned > 0) mmgan_param_free(owned[--nowned]);
    }
}

/* Broken on purpose: tanh' with a 10% error, and a tanh' whose first order
 * is right but whose own derivative is lost (a detached factor). */
static mmgan_node broken_tanh(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    (void)i;
    return mmgan_mul(g, gy, mmgan_affine(g, mmgan_square(g, id), -1.1f, 1.0f));
}
static mmgan_node detached_tanh(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    (void)i;
    return mmgan_mul(g, gy, mmgan_detach(g, mmgan_affine(g, mmgan_square(g, id), -1.0f, 1.0f)));
}

static void test_checker_catches_bugs(void)
{
    mmgan__vjp_fn good = mmgan__ops[MMGAN__OP_TANH].vjp;
    fdcase c;
    mmgan_node x, f, gr;
    double e;

    /* First order broken: the first-order check must fail. */
    mmgan__ops[MMGAN__OP_TANH].vjp = broken_tanh;
    fd_new(&c);
    x = add_input(&c, 2, S(3, 4), V_ANY);
    f = mmgan_sum(c.g, mmgan_mul(c.g, mmgan_tanh(c.g, x), rand_const(c.g, x)));
    fd_quiet = 1;
    e = fd_check(&c, f, "broken tanh'", 1e-2, 1e-2);
    fd_quiet = 0;
    CHECK(e > 1e-2, "a 10%% error in tanh' went unnoticed (error %.3g)", e);
    fd_free(&c);

    /* Second order broken: first order passes, second order must fail. */
    mmgan__ops[MMGAN__OP_TANH].vjp = detached_tanh;
    fd_new(&c);
    x = add_input(&c, 2, S(3, 4), V_ANY);
    f = mmgan_sum(c.g, mmgan_mul(c.g, mmgan_tanh(c.g, x), rand_const(c.g, x)));
    e = fd_check(&c, f, "detached tanh' (first order is right)", 1e-2, 1e-2);
    CHECK(e <= 1e-2, "first order of the detached tanh' should pass (%.3g)", e);
    mmgan_grad(c.g, f, 1, &x, &gr);
    f = mmgan_sum(c.g, mmgan_mul(c.g, gr, rand_const(c.g, gr)));
    fd_quiet = 1;
    e = fd_check(&c, f, "detached tanh' second order", 1e-2, 1e-2);
    fd_quiet = 0;
    CHECK(e > 1e-2, "a lost second derivative went unnoticed (error %.3g)", e);
    fd_free(&c);

    /* An op without a derivative is refused when the gradient is built. */
    mmgan__ops[MMGAN__OP_TANH].vjp = NULL;
    fd_new(&c);
    x = add_input(&c, 2, S(3, 4), V_ANY);
    f = mmgan_sum(c.g, mmgan_tanh(c.g, x));
    CHECK(mmgan_grad(c.g, f, 1, &x, &gr) == MMGAN_ERR_UNSUPPORTED && gr == MMGAN_NONE,
          "grad through an op without derivative must fail");
    CHECK(strstr(mmgan_ctx_error(ctx), "tanh") != NULL, "message names the op: %s", mmgan_ctx_error(ctx));
    fd_free(&c);
    mmgan__ops[MMGAN__OP_TANH].vjp = good;
    mmgan_ctx_clear_error(ctx);
}

/* A small critic: conv (stride 2, pad 1) + bias, leaky relu, linear. */
typedef struct critic {
    mmgan_param *w1, *b1, *w2, *b2;
} critic;

static mmgan_node critic_apply(mmgan_graph *g, const critic *cr, mmgan_node x)
{
    mmgan_node h = mmgan_conv2d(g, x, mmgan_parameter(g, cr->w1), 2, 1);
    h = mmgan_leaky_relu(g, mmgan_bias_add(g, h, mmgan_parameter(g, cr->b1)), 0.2f);
    return mmgan_linear(g, mmgan_flatten(g, h), mmgan_parameter(g, cr->w2), mmgan_parameter(g, cr->b2));
}

/* ||d critic / dx||_2 per sample, built with grad. */
static mmgan_node grad_norm(mmgan_graph *g, const critic *cr, mmgan_node x)
{
    mmgan_node gx;
    mmgan_grad(g, critic_apply(g, cr, x), 1, &x, &gx);
    return mmgan_sqrt(g, mmgan_affine(g, mmgan_sum_per_sample(g, mmgan_square(g, gx)), 1.0f, 1e-12f));
}

static void test_critic_penalty(void)
{
    critic cr;
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_param *ps[4];
    mmgan_node x, norm, pen, gw[4], pn[4], targets[6];
    mmgan_plan *p;
    float xv[5 * 36];
    int i, before;

    cr.w1 = mmgan_param_new(ctx, "w1", 4, S(4, 1, 3, 3));
    cr.b1 = mmgan_param_new(ctx, "b1", 1, S(4));
    cr.w2 = mmgan_param_new(ctx, "w2", 2, S(1, 36));
    cr.b2 = mmgan_param_new(ctx, "b2", 1, S(1));
    ps[0] = cr.w1; ps[1] = cr.b1; ps[2] = cr.w2; ps[3] = cr.b2;
    /* Finite differences cannot cross the kinks of leaky relu, so each
     * channel's bias keeps its pre-activations on one side (checked below):
     * two channels on the slope-1 side, two on the slope-0.2 side. */
    mmgan_param_init(cr.w1, MMGAN_INIT_NORMAL, 0.1f, &rng);
    {
        float *b1 = mmgan_param_tensor(cr.b1)->data, *w1 = mmgan_param_tensor(cr.w1)->data;
        int o, j;
        b1[0] = 1.5f; b1[1] = -1.5f; b1[2] = 1.2f; b1[3] = -1.2f;
        for (o = 0; o < 4; o++) {
            double l1 = 0;   /* |pre - b1| <= sum |w1| since |x| <= 1 */
            for (j = 0; j < 9; j++) l1 += fabs(w1[o * 9 + j]);
            CHECK(l1 + 9 * 1e-2 < fabs(b1[o]), "test setup: channel %d may cross a kink", o);
        }
    }
    mmgan_param_init(cr.w2, MMGAN_INIT_XAVIER_UNIFORM, 1.0f, &rng);
    mmgan_param_init(cr.b2, MMGAN_INIT_UNIFORM, 0.3f, &rng);
    mmgan_rng_fill_uniform(&rng, xv, 5 * 36, -1.0f, 1.0f);

    x = mmgan_input(g, "x", 4, S(5, 1, 6, 6));
    mmgan_graph_feed(g, x, xv);
    before = mmgan_graph_size(g);
    norm = grad_norm(g, &cr, x);
    /* The inner grad(D(x), x) builds no weight gradient. */
    {
        int wgrads = 0;
        for (i = before; i < mmgan_graph_size(g); i++) wgrads += g->nodes[i].op == MMGAN__OP_WGRAD;
        CHECK(wgrads == 0, "grad(D(x), x) built %d weight-gradient nodes", wgrads);
    }
    pen = mmgan_mean(g, mmgan_square(g, mmgan_affine(g, norm, 1.0f, -1.0f)));
    for (i = 0; i < 4; i++) pn[i] = mmgan_parameter(g, ps[i]);
    /* Gradient of the penalty with respect to the weights: the double backward. */
    CHECK(mmgan_grad(g, pen, 4, pn, gw) == MMGAN_OK, "grad of the penalty: %s", mmgan_ctx_error(ctx));
    targets[0] = pen; targets[1] = norm;
    for (i = 0; i < 4; i++) targets[i + 2] = gw[i];
    p = mmgan_plan_new(g, 6, targets);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "penalty plan: %s", mmgan_ctx_error(ctx));
    if (!p) return;
    for (i = 0; i < 4; i++) {
        mmgan_tensor *t = mmgan_param_tensor(ps[i]);
        size_t n = t->numel, e;
        float *an = (float *)malloc(n * sizeof(float));
        double *fd = (double *)malloc(n * sizeof(double)), err;
        mmgan_plan_run(p);
        memcpy(an, mmgan_plan_value(p, gw[i]), n * sizeof(float));
        for (e = 0; e < n; e++) {
            float keep = t->data[e];
            double fp, fm, h = 1e-2;
            t->data[e] = (float)(keep + h); mmgan_plan_run(p); fp = mmgan_plan_value(p, pen)[0];
            t->data[e] = (float)(keep - h); mmgan_plan_run(p); fm = mmgan_plan_value(p, pen)[0];
            t->data[e] = keep;
            fd[e] = (fp - fm) / ((double)(float)(keep + h) - (double)(float)(keep - h));
        }
        err = rel_err(an, fd, n, 1e-3);
        CHECK(err <= 1e-2, "gradient penalty d/d%s error %.3g", mmgan_param_name(ps[i]), err);
        free(an); free(fd);
    }
    mmgan_plan_run(p);
    /* The per-sample norm of a batch of 5 equals five single-sample norms. */
    {
        const float *nb = mmgan_plan_value(p, norm);
        for (i = 0; i < 5; i++) {
            mmgan_graph *g1 = mmgan_graph_new(ctx);
            mmgan_node x1 = mmgan_input(g1, "x1", 4, S(1, 1, 6, 6)), n1;
            mmgan_plan *p1;
            mmgan_graph_feed(g1, x1, xv + 36 * i);
            n1 = grad_norm(g1, &cr, x1);
            p1 = mmgan_plan_new(g1, 1, &n1);
            CHECK(p1 && mmgan_plan_run(p1) == MMGAN_OK, "single-sample plan");
            if (p1) {
                double a = nb[i], b = mmgan_plan_value(p1, n1)[0];
                CHECK(fabs(a - b) <= 1e-5 * fabs(b) && b > 0.01, "sample %d: batch norm %.8g, alone %.8g", i, a, b);
            }
            mmgan_plan_free(p1);
            mmgan_graph_free(g1);
        }
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    for (i = 0; i < 4; i++) mmgan_param_free(ps[i]);
}

/* Plans fill an op linear in an all-zero operand with zeros instead of
 * running it.  A critic's loss plus an L-inf hinge penalty whose margin
 * (an input, per sample) is switched between runs of one plan: no sample
 * inside it, all inside (the penalty's whole double backward then zero,
 * skipped), half: the weight gradients must equal a plan that runs every op,
 * and with every sample inside, those of the loss alone.  Alternating makes
 * a skipped op's buffer hold the previous run's values, which must not leak. */
static void test_zero_operands(void)
{
    critic cr;
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_param *ps[4];
    mmgan_node x, c, gx, n, loss, obj, pn[4], gw[4], g0[4], tg[9];
    mmgan_plan *p, *q;
    float xv[5 * 36], cv[5];
    int i, k, run, nshape[4], nd;
    cr.w1 = mmgan_param_new(ctx, "w1", 4, S(4, 1, 3, 3));
    cr.b1 = mmgan_param_new(ctx, "b1", 1, S(4));
    cr.w2 = mmgan_param_new(ctx, "w2", 2, S(1, 36));
    cr.b2 = mmgan_param_new(ctx, "b2", 1, S(1));
    ps[0] = cr.w1; ps[1] = cr.b1; ps[2] = cr.w2; ps[3] = cr.b2;
    for (i = 0; i < 4; i++) mmgan_param_init(ps[i], MMGAN_INIT_UNIFORM, 1.0f, &rng);
    mmgan_rng_fill_uniform(&rng, xv, 5 * 36, -1.0f, 1.0f);
    memset(cv, 0, sizeof cv);   /* the first run, which finds the norms the margins are set from, reads them too */
    x = mmgan_input(g, "x", 4, S(5, 1, 6, 6));
    mmgan_graph_feed(g, x, xv);
    loss = mmgan_mean(g, critic_apply(g, &cr, x));
    mmgan_grad(g, critic_apply(g, &cr, x), 1, &x, &gx);
    n = mmgan_max_abs_per_sample(g, gx);
    nd = mmgan_node_shape(g, n, nshape);
    c = mmgan_input(g, "margin", nd, nshape);
    mmgan_graph_feed(g, c, cv);
    obj = mmgan_add(g, loss, mmgan_scale(g, mmgan_mean(g, mmgan_relu(g, mmgan_sub(g, n, c))), 20.0f));
    for (i = 0; i < 4; i++) pn[i] = mmgan_parameter(g, ps[i]);
    mmgan_grad(g, obj, 4, pn, gw);
    mmgan_grad(g, loss, 4, pn, g0);
    for (i = 0; i < 4; i++) { tg[i] = gw[i]; tg[4 + i] = g0[i]; }
    tg[8] = n;
    p = mmgan_plan_new(g, 9, tg);
    q = mmgan_plan_new(g, 9, tg);
    CHECK(p && q, "zero operands: plans: %s", mmgan_ctx_error(ctx));
    if (!p || !q) goto done;
    q->zero_skip = 0;
    for (run = 0; run < 6; run++) {
        int mode = run % 3, convs = 0, same = 1, pen = 0;   /* 0: all cross the margin, 1: none, 2: every other */
        const float *nv;
        CHECK(mmgan_plan_run(q) == MMGAN_OK, "zero operands: full plan: %s", mmgan_ctx_error(ctx));
        nv = mmgan_plan_value(q, n);
        for (k = 0; k < 5; k++) cv[k] = mode == 0 || (mode == 2 && k % 2) ? 0.5f * nv[k] : 2.0f * nv[k] + 1.0f;
        CHECK(mmgan_plan_run(q) == MMGAN_OK && mmgan_plan_run(p) == MMGAN_OK, "zero operands: runs");
        for (i = 0; i < 4; i++) {
            const float *a = mmgan_plan_value(p, gw[i]), *b = mmgan_plan_value(q, gw[i]), *z = mmgan_plan_value(p, g0[i]);
            size_t e, m = mmgan_param_tensor(ps[i])->numel;
            for (e = 0; e < m; e++) {
                same &= a[e] == b[e];
                if (mode == 1) same &= a[e] == z[e];
                if (i == 0 || i == 2) pen += a[e] != z[e];
            }
        }
        /* the penalty's part of w1's and w2's gradients (b1 and b2 have none) */
        CHECK(mode == 1 ? pen == 0 : pen > 4, "zero operands, margin case %d: %d gradient values with a penalty part",
              mode, pen);
        for (k = 0; k < g->n; k++)
            convs += p->zero[k] && (g->nodes[k].op == MMGAN__OP_CONV || g->nodes[k].op == MMGAN__OP_WGRAD);
        CHECK(same, "zero operands, margin case %d (run %d): weight gradients differ from the full plan's%s", mode,
              run, mode == 1 ? " or the loss alone's" : "");
        /* filled: the hinge's gradient step, its broadcast, its product with
         * the max mask, the conv and weight gradient of that, a step and the
         * linear layer's product */
        CHECK(mode == 1 ? p->zeroed == 7 && convs == 2 : p->zeroed == 0,
              "zero operands, margin case %d: %d ops filled with zeros (%d convolutions)", mode, p->zeroed, convs);
        CHECK(q->zeroed == 0, "zero operands: a plan told not to skip filled %d ops", q->zeroed);
    }
done:
    mmgan_plan_free(p);
    mmgan_plan_free(q);
    mmgan_graph_free(g);
    for (i = 0; i < 4; i++) mmgan_param_free(ps[i]);
}

/* Which ops a zero operand makes zero: the linear ones (in that operand)
 * and functions with f(0) = 0 are filled; a bias, a shift, exp, sigmoid,
 * a leaky relu's step (which keeps its slope where x = 0) and a product
 * with an Inf (0 Inf is NaN) are computed.  Zero fills are filled. */
static void test_zero_rules(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_param *w = mmgan_param_new(ctx, "w", 4, S(3, 2, 3, 3)), *b = mmgan_param_new(ctx, "b", 1, S(3));
    mmgan_node x = mmgan_input(g, "x", 4, S(2, 2, 4, 4)), y = mmgan_input(g, "y", 4, S(2, 2, 4, 4)), z, t[15], gl, yi;
    mmgan_plan *p, *q;
    float xv[64], yv[64], yiv[64];
    int i, run, k, filled[15] = {1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1};
    double closed[15];
    mmgan_param_init(w, MMGAN_INIT_UNIFORM, 1.0f, &rng);
    mmgan_param_init(b, MMGAN_INIT_UNIFORM, 1.0f, &rng);
    mmgan_graph_feed(g, x, xv);
    mmgan_graph_feed(g, y, yv);
    for (i = 0; i < 64; i++) yv[i] = 0.25f + (float)i / 64.0f;
    z = mmgan_relu(g, x);                                             /* zero when x <= 0 */
    t[0] = mmgan_mul(g, y, z);
    t[1] = mmgan_conv2d(g, z, mmgan_parameter(g, w), 1, 1);
    t[2] = mmgan_add(g, z, mmgan_tanh(g, z));
    t[3] = mmgan_bias_add(g, mmgan_conv2d(g, z, mmgan_parameter(g, w), 1, 1), mmgan_parameter(g, b));
    t[4] = mmgan_affine(g, z, 3.0f, 0.0f);
    t[5] = mmgan_conv2d_wgrad(g, y, t[1], 3, 3, 1, 1);
    t[6] = mmgan_affine(g, z, 3.0f, 0.5f);
    t[7] = mmgan_exp(g, z);
    t[8] = mmgan_sigmoid(g, z);
    mmgan_grad(g, mmgan_sum(g, mmgan_mul(g, mmgan_leaky_relu(g, y, 0.2f), z)), 1, &y, &gl);
    t[9] = gl;                                                        /* step_mul(y, z): linear in z */
    gl = mmgan_input(g, "yl", 4, S(2, 2, 4, 4));
    mmgan_graph_feed(g, gl, yv);
    mmgan_grad(g, mmgan_sum(g, mmgan_mul(g, mmgan_leaky_relu(g, z, 0.2f), gl)), 1, &z, &t[10]);
    t[11] = mmgan_sum(g, mmgan_maximum(g, z, 0.5f));
    yi = mmgan_input(g, "yi", 4, S(2, 2, 4, 4));
    mmgan_graph_feed(g, yi, yiv);
    memcpy(yiv, yv, sizeof yiv);
    yiv[3] = INFINITY;
    t[12] = mmgan_mul(g, z, yi);                                      /* NaN at 3 */
    t[13] = mmgan_add(g, mmgan_fill(g, 4, S(2, 2, 40, 40), 0.0f), mmgan_fill(g, 4, S(2, 2, 40, 40), 0.0f));
    mmgan_grad(g, mmgan_sum(g, mmgan_mul(g, mmgan_relu(g, z), y)), 1, &z, &t[14]);   /* step_mul(relu(z), y): 0 */
    for (i = 0; i < 15; i++) closed[i] = 0;
    closed[6] = 0.5; closed[7] = 1; closed[8] = 0.5; closed[11] = 64 * 0.5;
    p = mmgan_plan_new(g, 15, t);
    q = mmgan_plan_new(g, 15, t);
    CHECK(p && q, "zero rules: plans: %s", mmgan_ctx_error(ctx));
    if (!p || !q) goto done;
    q->zero_skip = 0;
    for (run = 0; run < 3; run++) {
        int zero = run == 1;
        for (i = 0; i < 64; i++) xv[i] = (zero ? -1.0f : 1.0f) * (0.5f + (float)(i % 7) / 7.0f);
        CHECK(mmgan_plan_run(p) == MMGAN_OK && mmgan_plan_run(q) == MMGAN_OK, "zero rules: runs");
        for (k = 0; k < 15; k++) {
            const float *a = mmgan_plan_value(p, t[k]), *v = mmgan_plan_value(q, t[k]);
            size_t e, m = mmgan_node_numel(g, t[k]);
            int same = 1, ok = 1;
            for (e = 0; e < m; e++) {
                same &= a[e] == v[e] || (a[e] != a[e] && v[e] != v[e]);
                if (zero && k != 3 && k != 10 && k != 12) ok &= fabs(a[e] - closed[k]) <= 1e-6 * (1 + fabs(closed[k]));
                if (zero && k == 12) ok &= e == 3 ? a[e] != a[e] : a[e] == 0.0f;
            }
            CHECK(same && ok, "zero rules, x %s: value %d differs from the full plan's or its closed form",
                  zero ? "<= 0" : "> 0", k);
            if (zero)
                CHECK((p->zero[t[k]] != 0) == filled[k], "zero rules: value %d %s", k,
                      filled[k] ? "was computed, not filled" : "was taken as zero");
        }
        if (!zero) CHECK(p->zeroed == 3, "zero rules: %d ops filled with x > 0 (the two fills and their sum)", p->zeroed);
        /* the leaky relu's step at 0 is its slope: d/dz = 0.2 yl, not zero */
        if (zero) CHECK(fabs(mmgan_plan_value(p, t[10])[5] - 0.2f * yv[5]) <= 1e-6, "zero rules: leaky step at 0");
    }
    /* the finiteness check over blocks: an Inf or NaN anywhere, the last value included */
    {
        static float big[40000];
        size_t sizes[5] = {1, 16383, 16384, 16385, 40000}, at, n;
        float bad[3];
        int j, b2;
        bad[0] = INFINITY; bad[1] = -INFINITY; bad[2] = NAN;
        for (j = 0; j < 5; j++) {
            n = sizes[j];
            for (at = 0; at < n; at++) big[at] = FLT_MAX * (at % 2 ? -1.0f : 1.0f);
            CHECK(mmgan__all_finite(big, n), "all_finite: %lu finite values", (unsigned long)n);
            for (b2 = 0; b2 < 3; b2++) {
                size_t where[3];
                int w2;
                where[0] = 0; where[1] = n / 2; where[2] = n - 1;
                for (w2 = 0; w2 < 3; w2++) {
                    big[where[w2]] = bad[b2];
                    CHECK(!mmgan__all_finite(big, n), "all_finite: %g at %lu of %lu missed", (double)bad[b2],
                          (unsigned long)where[w2], (unsigned long)n);
                    big[where[w2]] = 1.0f;
                }
            }
        }
    }
done:
    mmgan_plan_free(p);
    mmgan_plan_free(q);
    mmgan_graph_free(g);
    mmgan_param_free(w);
    mmgan_param_free(b);
}

/* A third-order derivative: d^3/dx^3 of sum(tanh(x)) against its closed form. */
static void test_third_order(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    float xv[6] = {-1.2f, -0.4f, 0.0f, 0.3f, 0.9f, 2.0f};
    mmgan_node x = mmgan_input(g, "x", 1, S(6)), g1, g2, g3;
    mmgan_plan *p;
    int i;
    mmgan_graph_feed(g, x, xv);
    mmgan_grad(g, mmgan_sum(g, mmgan_tanh(g, x)), 1, &x, &g1);
    mmgan_grad(g, g1, 1, &x, &g2);
    mmgan_grad(g, g2, 1, &x, &g3);
    p = mmgan_plan_new(g, 1, &g3);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "third-order plan: %s", mmgan_ctx_error(ctx));
    for (i = 0; p && i < 6; i++) {
        double t = tanh(xv[i]), want = -2.0 * (1 - t * t) * (1 - 3 * t * t);
        double got = mmgan_plan_value(p, g3)[i];
        CHECK(fabs(got - want) <= 1e-5 + 1e-5 * fabs(want), "tanh''' at %g: %.8g, want %.8g", xv[i], got, want);
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);
}

static void test_detach_and_pruning(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    float xv[4] = {1, -2, 3, 0.5f};
    mmgan_node x = mmgan_input(g, "x", 1, S(4)), y, gx, unused, z;
    mmgan_plan *p;
    int i;
    mmgan_graph_feed(g, x, xv);
    /* y = sum(detach(x) * x): dy/dx = detach(x) = x, not 2x. */
    y = mmgan_sum(g, mmgan_mul(g, mmgan_detach(g, mmgan_exp(g, x)), x));
    unused = mmgan_exp(g, mmgan_scale(g, x, 3.0f));
    mmgan_grad(g, y, 1, &x, &gx);
    p = mmgan_plan_new(g, 1, &gx);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "detach plan");
    for (i = 0; p && i < 4; i++)
        CHECK(fabsf(mmgan_plan_value(p, gx)[i] - expf(xv[i])) <= 1e-5f * expf(xv[i]), "detach: grad %d", i);
    CHECK(p && mmgan_plan_value(p, unused) == NULL, "a node the targets do not need has no value");
    CHECK(p && p->n < mmgan_graph_size(g), "the plan pruned nothing (%d of %d nodes)", p ? p->n : -1, mmgan_graph_size(g));
    for (i = 0; p && i < p->n; i++) CHECK(p->order[i] != unused, "unused node planned");
    mmgan_plan_free(p);
    /* A wrt node that y does not depend on gets a zero gradient. */
    z = mmgan_input(g, "z", 1, S(3));
    mmgan_grad(g, y, 1, &z, &gx);
    p = mmgan_plan_new(g, 1, &gx);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "zero-gradient plan");
    for (i = 0; p && i < 3; i++) CHECK(mmgan_plan_value(p, gx)[i] == 0.0f, "independent wrt: zero gradient");
    mmgan_plan_free(p);
    mmgan_graph_free(g);
}

/* Liveness: a long chain needs a few buffers, not one per node. */
static void test_buffer_reuse(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    float *xv = (float *)calloc(1024, sizeof(float));
    mmgan_node x = mmgan_input(g, "x", 2, S(4, 256)), y = x;
    mmgan_plan *p;
    int i;
    mmgan_graph_feed(g, x, xv);
    for (i = 0; i < 50; i++) y = mmgan_tanh(g, mmgan_affine(g, y, 0.9f, 0.1f));
    p = mmgan_plan_new(g, 1, &y);
    CHECK(p && mmgan_plan_bytes(p) <= 3 * 1024 * sizeof(float), "100-node chain holds %lu bytes",
          (unsigned long)(p ? mmgan_plan_bytes(p) : 0));
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "chain runs");
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    free(xv);
}

/* Staged plans: a toy GAN whose G step (stage 1) reuses the noise and the
 * generator output of its D step (stage 0) while reading the critic weights
 * as changed in between; checked against the closed form in double. */
static void test_stages(void)
{
    enum { B = 4, NZ = 3, NX = 5, NO = 2 };
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_param *wg = mmgan_param_new(ctx, "G.w", 2, S(NX, NZ)), *wd = mmgan_param_new(ctx, "D.w", 2, S(NO, NX));
    mmgan_rng zr;
    mmgan_node z, fake, fd, yd, yg, pg, pd, dgrad, ggrad, t[3];
    mmgan_plan *p;
    const float *zv, *gv;
    float *w, *v;
    double h[B][NX], dh[B][NX], want[NX][NZ], worst = 0;
    int counts[2] = {2, 1}, bad[2] = {0, 1}, b, j, k, o, i;
    uint64_t before;
    mmgan_param_init(wg, MMGAN_INIT_NORMAL, 0.7f, &rng);
    mmgan_param_init(wd, MMGAN_INIT_NORMAL, 0.7f, &rng);
    mmgan_rng_seed(&zr, 11, 0);
    z = mmgan_random_normal(g, &zr, 2, S(B, NZ), 0.0f, 1.0f);
    pg = mmgan_parameter(g, wg);
    pd = mmgan_parameter(g, wd);
    fake = mmgan_tanh(g, mmgan_matmul(g, z, pg, 0, 1));
    /* The D step on detached fakes, with a long chain after the fake batch
     * so that buffer sharing would overwrite it if it were not kept. */
    fd = mmgan_detach(g, fake);
    for (i = 0; i < 6; i++) fd = mmgan_tanh(g, mmgan_affine(g, fd, 0.9f, 0.05f));
    yd = mmgan_sum(g, mmgan_tanh(g, mmgan_matmul(g, fd, pd, 0, 1)));
    yg = mmgan_sum(g, mmgan_tanh(g, mmgan_matmul(g, fake, pd, 0, 1)));
    mmgan_grad(g, yd, 1, &pd, &dgrad);
    mmgan_grad(g, yg, 1, &pg, &ggrad);
    t[0] = z; t[1] = dgrad; t[2] = ggrad;
    CHECK(mmgan_plan_new_stages(g, 2, bad, t) == NULL && strstr(mmgan_ctx_error(ctx), "stage 0") != NULL,
          "a stage without targets refused: %s", mmgan_ctx_error(ctx));
    p = mmgan_plan_new_stages(g, 2, counts, t);
    CHECK(p && mmgan_plan_stages(p) == 2, "two-stage plan: %s", mmgan_ctx_error(ctx));
    if (!p) { mmgan_graph_free(g); mmgan_param_free(wg); mmgan_param_free(wd); return; }
    CHECK(mmgan_plan_run_stage(p, 1) == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "stage 0") != NULL,
          "stage 1 before stage 0 refused: %s", mmgan_ctx_error(ctx));
    CHECK(mmgan_plan_run_stage(p, 2) == MMGAN_ERR_INVALID, "stage 2 of 2 refused");
    for (i = 0; i < 2; i++) {   /* twice: the second iteration draws new noise */
        CHECK(mmgan_plan_run_stage(p, 0) == MMGAN_OK, "stage 0: %s", mmgan_ctx_error(ctx));
        zv = mmgan_plan_value(p, z);
        before = zr.state;
        /* The "optimizer step" between the stages. */
        w = mmgan_param_tensor(wd)->data;
        for (k = 0; k < NO * NX; k++) w[k] += 0.25f * (float)(k % 3) - 0.2f;
        CHECK(mmgan_plan_run_stage(p, 1) == MMGAN_OK, "stage 1: %s", mmgan_ctx_error(ctx));
        CHECK(zr.state == before, "stage 1 drew the noise again");
        CHECK(mmgan_plan_run_stage(p, 1) == MMGAN_ERR_INVALID, "stage 1 twice refused");
        v = mmgan_param_tensor(wg)->data;
        for (b = 0; b < B; b++)
            for (j = 0; j < NX; j++) {
                double a = 0;
                for (k = 0; k < NZ; k++) a += (double)zv[b * NZ + k] * v[j * NZ + k];
                h[b][j] = tanh(a);
            }
        for (b = 0; b < B; b++) {
            for (j = 0; j < NX; j++) dh[b][j] = 0;
            for (o = 0; o < NO; o++) {
                double a = 0, s;
                for (j = 0; j < NX; j++) a += h[b][j] * w[o * NX + j];
                s = 1 - tanh(a) * tanh(a);
                for (j = 0; j < NX; j++) dh[b][j] += s * w[o * NX + j];
            }
        }
        for (j = 0; j < NX; j++)
            for (k = 0; k < NZ; k++) {
                want[j][k] = 0;
                for (b = 0; b < B; b++) want[j][k] += dh[b][j] * (1 - h[b][j] * h[b][j]) * zv[b * NZ + k];
            }
        gv = mmgan_plan_value(p, ggrad);
        for (j = 0; j < NX; j++)
            for (k = 0; k < NZ; k++) {
                double e = fabs(gv[j * NZ + k] - want[j][k]) / (1e-3 + fabs(want[j][k]));
                if (e > worst) worst = e;
            }
    }
    CHECK(worst <= 1e-5, "G step from the stage-0 noise and the updated critic: relative error %.3g", worst);
    CHECK(mmgan_plan_run(p) == MMGAN_OK, "plan_run runs both stages");
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    mmgan_param_free(wg);
    mmgan_param_free(wd);
    mmgan_ctx_clear_error(ctx);
}

/* The largest total of values alive at one position of plan p (an output
 * written over an input that dies there counted once), with each op's
 * scratch at its position when scratch is set; *values gets it without. */
static size_t live_peak(const mmgan_plan *p, int scratch, size_t *values)
{
    const mmgan_graph *g = p->g;
    int *last = (int *)calloc((size_t)mmgan_graph_size((mmgan_graph *)g), sizeof(int)), i, j, k;
    size_t peak = 0, vpeak = 0;
    for (k = 0; k < p->n; k++) {
        const mmgan__node *nd = &g->nodes[p->order[k]];
        for (i = 0; i < nd->nin; i++) last[nd->in[i]] = k;
    }
    for (k = 0; k < p->n; k++) {
        size_t live = 0;
        for (j = 0; j <= k; j++) {
            const int id = p->order[j];
            const mmgan__node *nd = &g->nodes[id];
            int over = 0;
            for (i = 0; i < nd->nin; i++) over |= p->off[nd->in[i]] == p->off[id];
            if ((mmgan__ops[nd->op].flags & MMGAN__F_LEAF) || p->view[id] || (j == k && over)) continue;
            if (j == k || last[id] >= k || p->keep[id]) live += (nd->numel + 15) & ~(size_t)15;
        }
        vpeak = MMGAN__MAX(vpeak, live);
        if (scratch) live += (p->ssz[p->order[k]] + 15) & ~(size_t)15;
        peak = MMGAN__MAX(peak, live);
    }
    free(last);
    if (values) *values = vpeak;
    return peak;
}

/* The order a plan runs a stage in: two losses added, each with its own
 * activations (the second's twice as large), and the gradient of the sum.
 * In id order both branches' forwards ran before either backward, so the
 * first branch's activations were alive through the second's; a plan runs
 * one branch's backward before the other's forward, and holds no more than
 * the second branch alone and the first's two targets.  Every node after
 * its inputs; random draws from one rng in id order (the large one first,
 * though the small one adds less); the gradients against closed forms. */
static mmgan_node order_branch(mmgan_graph *g, mmgan_node x, mmgan_node r)
{
    return mmgan_tanh(g, mmgan_mul(g, mmgan_tanh(g, x), r));
}

static void test_plan_order(void)
{
    enum { N = 16384 };
    mmgan_graph *g = mmgan_graph_new(ctx), *g2 = mmgan_graph_new(ctx);
    mmgan_rng rng, ref;
    float *xv = (float *)malloc(3 * N * sizeof(float)), *want = (float *)malloc((N + 1) * sizeof(float));
    mmgan_node x1 = mmgan_input(g, "x1", 2, S(16, N / 16)), x2 = mmgan_input(g, "x2", 2, S(32, N / 16));
    mmgan_node y2 = mmgan_input(g2, "x2", 2, S(32, N / 16)), c2 = mmgan_fill(g2, 1, S(1), 0.75f), hh, gg[2];
    mmgan_node ra, rb, h1, h2, loss, wrt[2], gr[2], t[4];
    mmgan_plan *p, *alone;
    int i, j, k, ok = 1;
    mmgan_rng_seed(&rng, 11, 0);
    mmgan_rng_seed(&ref, 11, 0);
    mmgan_rng_fill_uniform(&ref, want, N, 0.5f, 1.5f);
    mmgan_rng_fill_uniform(&ref, want + N, 1, 0.5f, 1.5f);
    for (i = 0; i < 3 * N; i++) xv[i] = 0.001f * (float)(i % 1013) - 0.5f;
    mmgan_graph_feed(g, x1, xv);
    mmgan_graph_feed(g, x2, xv + N);
    ra = mmgan_random_uniform(g, &rng, 2, S(16, N / 16), 0.5f, 1.5f);
    rb = mmgan_random_uniform(g, &rng, 1, S(1), 0.5f, 1.5f);
    h1 = order_branch(g, x1, ra);
    h2 = order_branch(g, x2, rb);
    loss = mmgan_add(g, mmgan_sum(g, mmgan_square(g, h1)), mmgan_sum(g, mmgan_square(g, h2)));
    wrt[0] = x1; wrt[1] = x2;
    CHECK(mmgan_grad(g, loss, 2, wrt, gr) == MMGAN_OK, "order: grad: %s", mmgan_ctx_error(ctx));
    t[0] = gr[0]; t[1] = gr[1]; t[2] = ra; t[3] = rb;
    p = mmgan_plan_new(g, 4, t);
    /* the second branch alone, for its memory */
    mmgan_graph_feed(g2, y2, xv + N);
    hh = order_branch(g2, y2, c2);
    CHECK(mmgan_grad(g2, mmgan_sum(g2, mmgan_square(g2, hh)), 1, &y2, gg) == MMGAN_OK, "order: grad alone");
    gg[1] = c2;
    alone = mmgan_plan_new(g2, 2, gg);
    CHECK(p && alone && mmgan_plan_run(p) == MMGAN_OK, "order: plan: %s", mmgan_ctx_error(ctx));
    if (p && alone) {
        for (k = 0; k < p->n; k++) {   /* topological */
            const mmgan__node *nd = &g->nodes[p->order[k]];
            for (i = 0; i < nd->nin; i++) {
                for (j = 0; j < k && p->order[j] != nd->in[i]; j++) {}
                ok &= j < k;
            }
        }
        CHECK(ok, "order: a node planned before one of its inputs");
        CHECK(memcmp(mmgan_plan_value(p, ra), want, N * sizeof(float)) == 0 &&
              mmgan_plan_value(p, rb)[0] == want[N], "order: the random draws out of their id order");
        CHECK(mmgan_plan_bytes(p) <= mmgan_plan_bytes(alone) + 2 * (N + 16) * sizeof(float),
              "order: %zu bytes, more than the second branch's %zu and two values of the first's",
              mmgan_plan_bytes(p), mmgan_plan_bytes(alone));
        for (i = 0; i < 3 * N; i++) {   /* d/dx sum tanh(tanh(x) r)^2 = 2 h (1 - h^2) r (1 - tanh(x)^2) */
            const double r = i < N ? want[i] : want[N], a = tanh(xv[i]), h = tanh(a * r);
            const double d = 2 * h * (1 - h * h) * r * (1 - a * a);
            const double v = i < N ? mmgan_plan_value(p, gr[0])[i] : mmgan_plan_value(p, gr[1])[i - N];
            if (fabs(v - d) > 1e-5) {
                CHECK(0, "order: gradient %d is %g, not %g", i, v, d);
                break;
            }
        }
    }
    mmgan_plan_free(p);
    mmgan_plan_free(alone);
    mmgan_graph_free(g);
    mmgan_graph_free(g2);
    free(xv);
    free(want);
}

/* Memory planning: views (reshape, detach) share their input's buffer, the
 * arena stays within a few percent of the largest total of values alive at
 * one time, on a graph whose mixed sizes and lifetimes fragment a first-fit
 * free list, and an op's scratch takes the place of values dead at its op. */
static void test_plan_memory(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    float *xv = (float *)calloc(4096, sizeof(float));
    mmgan_node x = mmgan_input(g, "x", 2, S(16, 256)), t, v, keep[8], y, acc;
    mmgan_plan *p, *q;
    size_t one, peak = 0;
    int i, k;
    for (i = 0; i < 4096; i++) xv[i] = 0.001f * (float)(i % 97);
    mmgan_graph_feed(g, x, xv);
    t = mmgan_tanh(g, x);
    v = mmgan_detach(g, mmgan_reshape(g, mmgan_reshape(g, t, 2, S(256, 16)), 4, S(16, 1, 16, 16)));
    y = mmgan_sum(g, mmgan_tanh(g, v));
    p = mmgan_plan_new(g, 1, &y);
    q = mmgan_plan_new(g, 1, &v);
    CHECK(p && q, "view plans: %s", mmgan_ctx_error(ctx));
    if (p && q) {
        mmgan_plan_run(p);
        mmgan_plan_run(q);
        one = (4096 + 16) * sizeof(float);
        CHECK(mmgan_plan_bytes(p) <= 2 * one + 64 * sizeof(float), "views copied: %lu bytes for two 4096-float values",
              (unsigned long)mmgan_plan_bytes(p));
        CHECK(mmgan_plan_value(q, v) != NULL && fabsf(mmgan_plan_value(q, v)[300] - tanhf(xv[300])) < 1e-6f,
              "a view target reads its input's values");
        {
            double want = 0;
            for (i = 0; i < 4096; i++) want += tanh(tanh((double)xv[i]));
            CHECK(fabs(mmgan_plan_value(p, y)[0] - want) <= 1e-4 * want, "sum over views: %.7g, want %.7g",
                  mmgan_plan_value(p, y)[0], want);
        }
    }
    mmgan_plan_free(p);
    mmgan_plan_free(q);
    /* Long-lived values of growing sizes between short-lived big ones. */
    acc = mmgan_sum(g, x);
    for (k = 0; k < 8; k++) {
        mmgan_node big = mmgan_exp(g, mmgan_scale(g, x, 0.1f * (float)(k + 1)));
        keep[k] = mmgan_slice(g, mmgan_tanh(g, big), 0, 1 + k);
        acc = mmgan_add(g, acc, mmgan_sum(g, big));
    }
    for (k = 0; k < 8; k++) acc = mmgan_add(g, acc, mmgan_sum(g, keep[k]));
    p = mmgan_plan_new(g, 1, &acc);
    CHECK(p != NULL, "fragmenting plan: %s", mmgan_ctx_error(ctx));
    if (p) {
        peak = live_peak(p, 0, NULL);
        CHECK(p->arena_floats <= peak + peak / 20, "arena %lu floats for a peak of %lu alive",
              (unsigned long)p->arena_floats, (unsigned long)peak);
        CHECK(mmgan_plan_run(p) == MMGAN_OK && isfinite(mmgan_plan_value(p, acc)[0]), "fragmenting plan runs");
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    free(xv);
    {   /* An op's scratch lives at its position only: a conv's (the critic's
         * 64 -> 128 layer) shares the arena with values that are dead there,
         * two big ones alive together later.  The arena holds the largest
         * live total with the scratch counted at its op (a scratch beside
         * the arena added its size to the values' peak); values through
         * the plan equal those of a plan of the conv alone. */
        static const int xs[4] = {8, 64, 14, 14}, ws[4] = {128, 64, 4, 4}, bs[2] = {512, 1024};
        const size_t nx = 8 * 64 * 14 * 14, nw = 128 * 64 * 16, nb = 512 * 1024;
        float *x0 = (float *)malloc(nx * sizeof(float)), *w0 = (float *)malloc(nw * sizeof(float));
        float *b0 = (float *)malloc(nb * sizeof(float));
        mmgan_node X, W, B, c, e, tot;
        mmgan_plan *alone;
        size_t peak2 = 0, values = 0, sc = 0;
        for (i = 0; i < (int)nx; i++) x0[i] = 0.01f * (float)(i % 89) - 0.4f;
        for (i = 0; i < (int)nw; i++) w0[i] = 0.02f * (float)(i % 37) - 0.35f;
        for (i = 0; i < (int)nb; i++) b0[i] = 0.001f * (float)(i % 1009);
        g = mmgan_graph_new(ctx);
        X = mmgan_input(g, "x", 4, xs);
        W = mmgan_input(g, "w", 4, ws);
        B = mmgan_input(g, "b", 2, bs);
        mmgan_graph_feed(g, X, x0); mmgan_graph_feed(g, W, w0); mmgan_graph_feed(g, B, b0);
        c = mmgan_conv2d(g, X, W, 2, 1);
        e = mmgan_exp(g, mmgan_scale(g, B, 0.5f));
        tot = mmgan_add(g, mmgan_add(g, mmgan_sum(g, c), mmgan_sum(g, mmgan_tanh(g, e))), mmgan_sum(g, e));
        keep[0] = tot; keep[1] = c;
        p = mmgan_plan_new(g, 2, keep);
        alone = mmgan_plan_new(g, 1, &c);
        CHECK(p && alone && mmgan_plan_run(p) == MMGAN_OK && mmgan_plan_run(alone) == MMGAN_OK,
              "scratch plan: %s", mmgan_ctx_error(ctx));
        if (p && alone) {
            peak2 = live_peak(p, 1, &values);
            for (k = 0; k < p->n; k++) sc = MMGAN__MAX(sc, p->ssz[p->order[k]]);
            CHECK(sc > nb / 4 && peak2 < values + sc, "the conv's scratch (%lu floats) no longer fits beside dead values",
                  (unsigned long)sc);
            CHECK(mmgan_plan_bytes(p) <= (peak2 + peak2 / 20) * sizeof(float),
                  "%lu bytes for a peak of %lu floats alive with the scratch", (unsigned long)mmgan_plan_bytes(p),
                  (unsigned long)peak2);
            CHECK(memcmp(mmgan_plan_value(p, c), mmgan_plan_value(alone, c), 8 * 128 * 49 * sizeof(float)) == 0,
                  "the conv through a plan whose scratch shares the arena differs from the conv alone");
        }
        mmgan_plan_free(p);
        mmgan_plan_free(alone);
        mmgan_graph_free(g);
        free(x0); free(w0); free(b0);
    }
}

/* The elementwise, broadcasting and per-channel reductions share their work
 * among threads above a size; results must not depend on the thread count.
 * A batch-norm layer at the size of the DCGAN generator's, its gradients
 * (beta's, a per-channel sum) and an Adam step, with 1 and 2 threads,
 * compared bit for bit. */
static void test_threads_identical(void)
{
    float *out[2], *xv = (float *)malloc(sizeof(float) * 64 * 32 * 14 * 14);
    int t, i, same = 1, n = 64 * 32 * 14 * 14;
    for (i = 0; i < n; i++) xv[i] = (float)((i % 1013) * 31 % 1013) / 1013.0f - 0.3f;
    for (t = 0; t < 2; t++) {
        mmgan_graph *g = mmgan_graph_new(ctx);
        mmgan_param *ga = mmgan_param_new(ctx, "bn.weight", 1, S(32)), *be = mmgan_param_new(ctx, "bn.bias", 1, S(32));
        mmgan_param *rm = mmgan_param_new(ctx, "bn.running_mean", 1, S(32)), *rv = mmgan_param_new(ctx, "bn.running_var", 1, S(32));
        mmgan_param *ps[1];
        mmgan_node x = mmgan_input(g, "x", 4, S(64, 32, 14, 14)), y, wrt[3], gr[4], tg[4];
        mmgan_plan *p;
        mmgan_opt_spec spec = mmgan_opt_default(MMGAN_OPT_ADAM);
        mmgan_optimizer *o;
        const float *gl[1];
        mmgan_ctx_set_threads(ctx, t + 1);
        mmgan_param_init(ga, MMGAN_INIT_CONST, 1.5f, NULL);
        mmgan_param_init(be, MMGAN_INIT_CONST, 0.25f, NULL);
        mmgan_param_init(rm, MMGAN_INIT_ZEROS, 0, NULL);
        mmgan_param_init(rv, MMGAN_INIT_CONST, 1, NULL);
        mmgan_graph_feed(g, x, xv);
        wrt[0] = x; wrt[1] = mmgan_parameter(g, ga); wrt[2] = mmgan_parameter(g, be);
        y = mmgan_leaky_relu(g, mmgan_batch_norm(g, x, wrt[1], wrt[2], rm, rv, 0.1f, 1e-5f, 1), 0.2f);
        y = mmgan_mul(g, y, mmgan_tanh(g, x));
        mmgan_grad(g, mmgan_sum(g, mmgan_square(g, y)), 3, wrt, gr);
        gr[3] = y;   /* gr[2], beta's gradient: a per-channel sum_to */
        tg[0] = gr[0]; tg[1] = gr[1]; tg[2] = gr[3]; tg[3] = gr[2];
        p = mmgan_plan_new(g, 4, tg);
        CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "threads %d: %s", t + 1, mmgan_ctx_error(ctx));
        out[t] = (float *)malloc(sizeof(float) * (2 * (size_t)n + 64 + (size_t)n));
        if (p) {
            /* An Adam step on x's gradient as if x were a parameter of 401408 values. */
            mmgan_param *big = mmgan_param_new(ctx, "big", 1, S(n));
            memcpy(mmgan_param_tensor(big)->data, xv, sizeof(float) * (size_t)n);
            ps[0] = big;
            o = mmgan_opt_new(ctx, &spec, 1, ps);
            gl[0] = mmgan_plan_value(p, gr[0]);
            mmgan_opt_step(o, gl);
            mmgan_opt_step(o, gl);
            memcpy(out[t], mmgan_plan_value(p, gr[0]), sizeof(float) * (size_t)n);
            memcpy(out[t] + n, mmgan_plan_value(p, gr[3]), sizeof(float) * (size_t)n);
            memcpy(out[t] + 2 * (size_t)n, mmgan_plan_value(p, gr[1]), sizeof(float) * 32);
            memcpy(out[t] + 2 * (size_t)n + 32, mmgan_param_tensor(big)->data, sizeof(float) * (size_t)n);
            memcpy(out[t] + 3 * (size_t)n + 32, mmgan_plan_value(p, gr[2]), sizeof(float) * 32);
            mmgan_opt_free(o);
            mmgan_param_free(big);
        }
        mmgan_plan_free(p);
        mmgan_graph_free(g);
        mmgan_param_free(ga); mmgan_param_free(be); mmgan_param_free(rm); mmgan_param_free(rv);
    }
    for (i = 0; i < 3 * n + 64; i++) same &= memcmp(&out[0][i], &out[1][i], sizeof(float)) == 0;
    CHECK(same, "batch norm, its gradients and Adam differ between 1 and 2 threads");
    mmgan_ctx_set_threads(ctx, 1);
    free(out[0]); free(out[1]); free(xv);
}

/* A plan that computes batch norm's dx and dgamma in one stage shares their
 * statistics (the first op keeps them for the second): the gradients must be
 * bitwise those of plans computing each alone, with two batch norms on one x
 * (different gy and eps, which must not be mixed up) and across stages. */
static void test_bn_grad_sharing(void)
{
    float xv[6 * 3 * 4 * 4];
    int i, k, nw, n = 6 * 3 * 4 * 4;
    for (i = 0; i < n; i++) xv[i] = (float)((i * 37) % 101) / 50.0f - 0.9f;
    /* nw = 2: gamma2 is not asked for, so the op after batch norm 2's dx is
     * batch norm 1's: a pairing by x alone would join the wrong two */
    for (nw = 3; nw >= 2; nw--) {
        mmgan_graph *g = mmgan_graph_new(ctx);
        mmgan_param *ga = mmgan_param_new(ctx, "g1", 1, S(3)), *gb = mmgan_param_new(ctx, "g2", 1, S(3));
        mmgan_node x = mmgan_input(g, "x", 4, S(6, 3, 4, 4)), wrt[3], gr[3], y1, y2, loss;
        mmgan_plan *all, *one[3] = {NULL, NULL, NULL}, *staged;
        int counts[2], same = 1, ok;
        counts[0] = 1; counts[1] = nw - 1;
        mmgan_param_init(ga, MMGAN_INIT_CONST, 1.25f, NULL);
        mmgan_param_init(gb, MMGAN_INIT_CONST, -0.5f, NULL);
        mmgan_graph_feed(g, x, xv);
        wrt[0] = x; wrt[1] = mmgan_parameter(g, ga); wrt[2] = mmgan_parameter(g, gb);
        y1 = mmgan_batch_norm(g, x, wrt[1], MMGAN_NONE, NULL, NULL, 0.1f, 1e-5f, 1);
        y2 = mmgan_batch_norm(g, x, wrt[2], MMGAN_NONE, NULL, NULL, 0.1f, 1e-1f, 1);
        loss = mmgan_sum(g, mmgan_add(g, mmgan_square(g, mmgan_tanh(g, y1)), mmgan_mul(g, y2, mmgan_sigmoid(g, x))));
        mmgan_grad(g, loss, nw, wrt, gr);
        all = mmgan_plan_new(g, nw, gr);
        ok = all != NULL;
        for (k = 0; k < nw; k++) ok &= (one[k] = mmgan_plan_new(g, 1, &gr[k])) != NULL;
        staged = mmgan_plan_new_stages(g, 2, counts, gr);
        CHECK(ok && staged, "plans: %s", mmgan_ctx_error(ctx));
        if (ok && staged) {
            CHECK(mmgan_plan_run(all) == MMGAN_OK && mmgan_plan_run(staged) == MMGAN_OK, "runs");
            for (k = 0; k < nw; k++) {
                size_t m = k == 0 ? (size_t)n : 3;
                CHECK(mmgan_plan_run(one[k]) == MMGAN_OK, "run %d", k);
                same &= memcmp(mmgan_plan_value(all, gr[k]), mmgan_plan_value(one[k], gr[k]), m * sizeof(float)) == 0;
                same &= memcmp(mmgan_plan_value(staged, gr[k]), mmgan_plan_value(one[k], gr[k]), m * sizeof(float)) == 0;
            }
            CHECK(same, "%d gradients: batch norm's in one plan differ from those computed alone", nw);
        }
        mmgan_plan_free(all); mmgan_plan_free(staged);
        for (k = 0; k < nw; k++) mmgan_plan_free(one[k]);
        mmgan_graph_free(g);
        mmgan_param_free(ga); mmgan_param_free(gb);
    }
}

/* An elementwise op writes its output over its input when nothing reads the
 * input later: a chain scale -> relu -> tanh then needs one buffer, not two;
 * an input that is read later, or kept, or a view of which is read later,
 * must keep its values. */
static void test_inplace(void)
{
    float xv[1000], ref = 0, ref2 = 0;
    int i, n = 1000;
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node x = mmgan_input(g, "x", 1, S(1000)), a, b, c, t, t2, t3, keep[2], v;
    mmgan_plan *p1, *p2, *p3;
    for (i = 0; i < n; i++) {
        xv[i] = (float)i * 0.01f - 5.0f;
        ref += tanhf(2.0f * xv[i] > 0 ? 2.0f * xv[i] : 0.0f);
        ref2 += 2.0f * xv[i];
    }
    mmgan_graph_feed(g, x, xv);
    a = mmgan_scale(g, x, 2.0f);
    v = mmgan_reshape(g, a, 2, S(10, 100));   /* before the relu: only the view's reader comes after */
    b = mmgan_relu(g, a);
    c = mmgan_tanh(g, b);
    t = mmgan_sum(g, c);
    t2 = mmgan_add(g, t, mmgan_sum(g, a));                      /* a read after relu */
    t3 = mmgan_add(g, t, mmgan_sum(g, v));                      /* a view of a read after relu */
    p1 = mmgan_plan_new(g, 1, &t);
    keep[0] = t; keep[1] = a;
    p2 = mmgan_plan_new(g, 2, keep);
    CHECK(p1 && p2 && mmgan_plan_run(p1) == MMGAN_OK && mmgan_plan_run(p2) == MMGAN_OK, "in-place plans: %s",
          mmgan_ctx_error(ctx));
    if (p1 && p2) {
        CHECK(mmgan_plan_bytes(p1) < mmgan_plan_bytes(p2) && mmgan_plan_bytes(p1) < 2 * (size_t)n * sizeof(float),
              "scale -> relu -> tanh in one buffer: %zu bytes (%zu with the scale kept)", mmgan_plan_bytes(p1),
              mmgan_plan_bytes(p2));
        CHECK(fabsf(mmgan_plan_value(p1, t)[0] - ref) < 1e-3f * fabsf(ref), "in-place chain value %g, want %g",
              mmgan_plan_value(p1, t)[0], ref);
        CHECK(mmgan_plan_value(p2, a)[999] == 2.0f * xv[999], "a kept target is not overwritten");
    }
    mmgan_plan_free(p1); mmgan_plan_free(p2);
    p1 = mmgan_plan_new(g, 1, &t2);
    p3 = mmgan_plan_new(g, 1, &t3);
    CHECK(p1 && p3 && mmgan_plan_run(p1) == MMGAN_OK && mmgan_plan_run(p3) == MMGAN_OK, "plans: %s", mmgan_ctx_error(ctx));
    if (p1 && p3) {
        CHECK(fabsf(mmgan_plan_value(p1, t2)[0] - (ref + ref2)) < 1e-3f * fabsf(ref + ref2),
              "input read later kept: %g, want %g", mmgan_plan_value(p1, t2)[0], ref + ref2);
        CHECK(fabsf(mmgan_plan_value(p3, t3)[0] - (ref + ref2)) < 1e-3f * fabsf(ref + ref2),
              "input whose view is read later kept: %g, want %g", mmgan_plan_value(p3, t3)[0], ref + ref2);
    }
    mmgan_plan_free(p1); mmgan_plan_free(p3);
    /* A binary op: relu's gradient (x > 0) gy written over gy, computed
     * (2 relu(a)) and read by nothing after; d/dx sum(relu(2x)^2) = 8x for
     * x > 0.  a, the other input, is read again by nothing either. */
    {
        mmgan_node wrt = x, gx, r2 = mmgan_sum(g, mmgan_square(g, b));
        CHECK(mmgan_grad(g, r2, 1, &wrt, &gx) == MMGAN_OK, "grad: %s", mmgan_ctx_error(ctx));
        p1 = mmgan_plan_new(g, 1, &gx);
        CHECK(p1 && mmgan_plan_run(p1) == MMGAN_OK, "plan: %s", mmgan_ctx_error(ctx));
        if (p1) {
            const float *d = mmgan_plan_value(p1, gx);
            int bad = 0;
            for (i = 0; i < n; i++) bad += d[i] != (xv[i] > 0 ? 8.0f * xv[i] : 0.0f);
            CHECK(bad == 0, "relu's gradient written over its incoming gradient: %d values wrong", bad);
        }
        mmgan_plan_free(p1);
    }
    /* step_mul (a > 0) gy, a = 2x and gy = 3x: over gy when a is read
     * after it and gy is not; over neither when both are read after it. */
    {
        mmgan_node gy = mmgan_scale(g, x, 3.0f), sm = mmgan__step_mul(g, a, gy, 0.0f, 0.0f);
        mmgan_node s1 = mmgan_add(g, mmgan_sum(g, sm), mmgan_sum(g, a)), s2 = mmgan_add(g, s1, mmgan_sum(g, gy));
        float r1 = 0, r2 = 0;
        for (i = 0; i < n; i++) {
            r1 += (xv[i] > 0 ? 3.0f * xv[i] : 0.0f) + 2.0f * xv[i];
            r2 += 3.0f * xv[i];
        }
        r2 += r1;
        p1 = mmgan_plan_new(g, 1, &s1);
        p2 = mmgan_plan_new(g, 1, &s2);
        CHECK(p1 && p2 && mmgan_plan_run(p1) == MMGAN_OK && mmgan_plan_run(p2) == MMGAN_OK, "plans: %s",
              mmgan_ctx_error(ctx));
        if (p1 && p2) {
            CHECK(mmgan_plan_bytes(p1) < 3 * (size_t)n * sizeof(float), "step_mul over gy: %zu bytes for 2 inputs",
                  mmgan_plan_bytes(p1));
            CHECK(fabsf(mmgan_plan_value(p1, s1)[0] - r1) < 1e-3f * fabsf(r1), "step_mul over gy, a kept: %g, want %g",
                  mmgan_plan_value(p1, s1)[0], r1);
            CHECK(fabsf(mmgan_plan_value(p2, s2)[0] - r2) < 1e-3f * fabsf(r2), "a and gy read after step_mul kept: %g, want %g",
                  mmgan_plan_value(p2, s2)[0], r2);
        }
        mmgan_plan_free(p1); mmgan_plan_free(p2);
    }
    mmgan_graph_free(g);
}

/* Sizes past int: refused with a message when built, before any kernel
 * indexes them (a pad of INT_MAX, a stride of 2^30 once wrapped to small
 * outputs that crashed at the run). */
static void test_size_errors(void)
{
    mmgan_graph *g;
    mmgan_node x, w, y;
    mmgan_plan *p;
    const char *e;
    int i;
    for (i = 0; i < 4; i++) {   /* conv2d, conv2d_wgrad, conv_transpose2d twice */
        g = mmgan_graph_new(ctx);
        x = mmgan_input(g, "x", 4, S(1, 1, 8, 8));
        w = mmgan_input(g, "w", 4, S(1, 1, 3, 3));
        y = i == 0 ? mmgan_conv2d(g, x, w, 1, INT_MAX)
          : i == 1 ? mmgan_conv2d_wgrad(g, x, mmgan_input(g, "gy", 4, S(1, 1, 1, 1)), 3, 3, 1, 1 << 30)
          : i == 2 ? mmgan_conv_transpose2d(g, mmgan_input(g, "s", 4, S(1, 1, 5, 5)), w, 1 << 30, 0, 0)
                   : mmgan_conv_transpose2d(g, mmgan_input(g, "s", 4, S(1, 1, 5, 5)), w, 1 << 14, 0, 0);
        e = mmgan_ctx_error(ctx);
        CHECK(y == MMGAN_NONE && mmgan_graph_status(g) == MMGAN_ERR_SHAPE && strstr(e, "floats an image") != NULL,
              "case %d: an image past INT_MAX floats refused: %s", i, e);
        mmgan_graph_free(g);
    }
    /* a stride of INT_MAX is fine (one output), and its span arithmetic does not overflow (UBSan) */
    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 4, S(1, 1, 8, 8));
    w = mmgan_input(g, "w", 4, S(1, 1, 3, 3));
    y = mmgan_conv2d(g, x, w, INT_MAX, 1000);
    p = y >= 0 ? mmgan_plan_new(g, 1, &y) : NULL;
    {
        static float xv[64], wv[9], *out;
        for (i = 0; i < 64; i++) xv[i] = (float)i;
        for (i = 0; i < 9; i++) wv[i] = 1.0f;
        mmgan_graph_feed(g, x, xv);
        mmgan_graph_feed(g, w, wv);
        CHECK(p && mmgan_plan_run(p) == MMGAN_OK && (out = (float *)mmgan_plan_value(p, y)) != NULL && out[0] == 0.0f,
              "stride INT_MAX, pad 1000: one output, all padding");
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);

    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 1, S(2000000000));
    CHECK(mmgan_concat(g, x, x) == MMGAN_NONE && strstr(mmgan_ctx_error(ctx), "concat") != NULL,
          "concat past INT_MAX samples: %s", mmgan_ctx_error(ctx));
    mmgan_graph_free(g);
    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 2, S(2, 3));
    CHECK(mmgan_pad_batch(g, x, 0, INT_MIN) == MMGAN_NONE && strstr(mmgan_ctx_error(ctx), "pad_batch") != NULL,
          "pad_batch to a negative batch: %s", mmgan_ctx_error(ctx));
    mmgan_graph_free(g);

    /* A size check's message is the graph's, not an empty copy of itself;
     * and a later one does not replace the first error. */
    g = mmgan_graph_new(ctx);
    CHECK(mmgan_fill(g, 5, S(1, 1, 1, 1), 0.0f) == MMGAN_NONE && mmgan_graph_status(g) == MMGAN_ERR_SHAPE &&
          strstr(mmgan_ctx_error(ctx), "fill: 5 dimensions") != NULL, "fill with 5 dimensions: '%s'", mmgan_ctx_error(ctx));
    mmgan_graph_free(g);
    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 2, S(2, 3));
    CHECK(mmgan_reshape(g, x, 2, S(0, 6)) == MMGAN_NONE && strstr(mmgan_ctx_error(ctx), "reshape: dimension 0 is 0") != NULL,
          "reshape to a 0 dimension: '%s'", mmgan_ctx_error(ctx));
    CHECK(mmgan_input(g, "big", 2, S(65536, 65536)) == MMGAN_NONE &&
          strstr(mmgan_ctx_error(ctx), "reshape: dimension 0 is 0") != NULL, "first error kept: '%s'", mmgan_ctx_error(ctx));
    mmgan_graph_free(g);
}

static void test_build_errors(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node x = mmgan_input(g, "x", 4, S(2, 3, 8, 8)), w = mmgan_input(g, "w", 4, S(4, 1, 3, 3)), y, z;
    mmgan_plan *p;
    y = mmgan_conv2d(g, x, w, 1, 1);
    CHECK(y == MMGAN_NONE && mmgan_graph_status(g) == MMGAN_ERR_SHAPE, "conv2d channel mismatch refused");
    CHECK(strstr(mmgan_ctx_error(ctx), "input has 3 channels, weight expects 1") != NULL &&
          strstr(mmgan_ctx_error(ctx), "[2, 3, 8, 8]") != NULL, "message: %s", mmgan_ctx_error(ctx));
    /* Errors propagate quietly: the first message stays. */
    z = mmgan_relu(g, mmgan_add(g, y, x));
    CHECK(z == MMGAN_NONE && strstr(mmgan_ctx_error(ctx), "conv2d") != NULL, "first error kept: %s", mmgan_ctx_error(ctx));
    p = mmgan_plan_new(g, 1, &x);
    CHECK(p == NULL, "a graph with a build error is not planned");
    mmgan_graph_free(g);

    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 2, S(3, 4));
    w = mmgan_input(g, "w", 2, S(5, 3));
    CHECK(mmgan_matmul(g, x, w, 0, 0) == MMGAN_NONE && strstr(mmgan_ctx_error(ctx), "matmul") != NULL,
          "matmul inner mismatch: %s", mmgan_ctx_error(ctx));
    mmgan_graph_free(g);

    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 2, S(3, 4));
    CHECK(mmgan_add(g, x, mmgan_input(g, "b", 1, S(3))) == MMGAN_NONE &&
          strstr(mmgan_ctx_error(ctx), "do not broadcast") != NULL, "broadcast mismatch: %s", mmgan_ctx_error(ctx));
    mmgan_graph_free(g);

    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 4, S(1, 2, 3, 3));
    w = mmgan_input(g, "w", 4, S(2, 2, 3, 3));
    CHECK(mmgan_conv_transpose2d(g, x, w, 2, 0, 2) == MMGAN_NONE, "out_pad >= stride refused");
    CHECK(mmgan_slice(g, x, 1, 1) == MMGAN_NONE, "slice past the batch refused");
    mmgan_graph_free(g);

    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "images", 2, S(2, 2));
    y = mmgan_relu(g, x);
    p = mmgan_plan_new(g, 1, &y);
    CHECK(p && mmgan_plan_value(p, y) == NULL, "no value before the first run");
    CHECK(p && mmgan_plan_run(p) == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "images") != NULL,
          "unfed input reported: %s", mmgan_ctx_error(ctx));
    CHECK(p && mmgan_plan_value(p, y) == NULL, "no value after a run that failed");
    {
        static const float v[4] = {-1.0f, 2.0f, -3.0f, 4.0f};
        const float *r;
        mmgan_graph_feed(g, x, v);
        CHECK(p && mmgan_plan_run(p) == MMGAN_OK && (r = mmgan_plan_value(p, y)) != NULL && r[0] == 0.0f && r[1] == 2.0f,
              "the value once a run computed it");
    }
    mmgan_plan_free(p);
    CHECK(mmgan_reshape(g, x, 1, S(5)) == MMGAN_NONE, "reshape to a different size refused");
    CHECK(mmgan_relu(g, 12345) == MMGAN_NONE, "a node that does not exist is refused");
    mmgan_graph_free(g);
    test_size_errors();
    mmgan_ctx_clear_error(ctx);
}

/* Found by a review's probes of the API (this session): scalars (0-d nodes)
 * through the batch-axis ops and through gradients, an out array that is the
 * wrt array, and options that are not finite or not possible. */
static void test_scalars_and_options(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_param *sp = mmgan_param_new(ctx, "s", 0, NULL);
    float one = 1.0f, xv[3] = {1.0f, 2.0f, 4.0f};
    volatile float big = 1e30f;
    const float inf = big * big, nan = inf - inf;
    mmgan_node x, sc, gs[3], gg, t[4], w[1], y;
    mmgan_plan *p;
    const char *what[10];
    mmgan_node got[10];
    int i;
    mmgan_param_tensor(sp)->data[0] = 1.5f;
    sc = mmgan_constant(g, 0, NULL, &one);
    /* a scalar has no batch axis: pad_batch wrote past its one float, concat kept one value */
    CHECK(mmgan_pad_batch(g, sc, 2, 3) == MMGAN_NONE && strstr(mmgan_ctx_error(ctx), "no batch axis") != NULL,
          "pad_batch of a scalar refused: %s", mmgan_ctx_error(ctx));
    mmgan_graph_free(g);
    g = mmgan_graph_new(ctx);
    sc = mmgan_constant(g, 0, NULL, &one);
    CHECK(mmgan_concat(g, sc, sc) == MMGAN_NONE && strstr(mmgan_ctx_error(ctx), "no batch axis") != NULL,
          "concat of scalars refused: %s", mmgan_ctx_error(ctx));
    mmgan_graph_free(g);
    g = mmgan_graph_new(ctx);
    sc = mmgan_constant(g, 0, NULL, &one);
    CHECK(mmgan_slice(g, sc, 0, 1) == MMGAN_NONE, "slice of a scalar refused");
    mmgan_graph_free(g);

    /* gradients with respect to a scalar parameter, through broadcasting
     * and sums (sum_to and broadcast_to to 0 dimensions), to second order */
    g = mmgan_graph_new(ctx);
    x = mmgan_constant(g, 1, S(3), xv);
    sc = mmgan_parameter(g, sp);
    y = mmgan_sum(g, mmgan_mul(g, sc, x));                                    /* d/ds = 1 + 2 + 4 */
    mmgan_grad(g, y, 1, &sc, &gs[0]);
    mmgan_grad(g, mmgan_sum(g, mmgan_square(g, sc)), 1, &sc, &gs[1]);       /* 2 s = 3 */
    mmgan_grad(g, gs[1], 1, &sc, &gg);                                       /* 2 */
    mmgan_grad(g, mmgan_mean(g, mmgan_div(g, x, sc)), 1, &sc, &gs[2]);      /* -mean(x) / s^2 */
    t[0] = gs[0]; t[1] = gs[1]; t[2] = gg; t[3] = gs[2];
    p = mmgan_graph_status(g) == MMGAN_OK ? mmgan_plan_new(g, 4, t) : NULL;
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "gradients in a scalar parameter: %s", mmgan_ctx_error(ctx));
    if (p && mmgan_plan_value(p, gs[0])) {
        CHECK(mmgan_plan_value(p, gs[0])[0] == 7.0f && mmgan_plan_value(p, gs[1])[0] == 3.0f &&
              mmgan_plan_value(p, gg)[0] == 2.0f, "d sum(s x) = %g (7), d sum(s^2) = %g (3), its derivative %g (2)",
              mmgan_plan_value(p, gs[0])[0], mmgan_plan_value(p, gs[1])[0], mmgan_plan_value(p, gg)[0]);
        CHECK(fabsf(mmgan_plan_value(p, gs[2])[0] + (7.0f / 3.0f) / 2.25f) < 1e-6f, "d mean(x / s) = %g",
              mmgan_plan_value(p, gs[2])[0]);
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    /* out the same array as wrt: its validation read what the cleared out had overwritten */
    g = mmgan_graph_new(ctx);
    w[0] = mmgan_fill(g, 1, S(2), 3.0f);
    y = mmgan_sum(g, mmgan_square(g, w[0]));
    CHECK(mmgan_grad(g, y, 1, w, w) == MMGAN_OK && w[0] != MMGAN_NONE, "grad with out == wrt: %s", mmgan_ctx_error(ctx));
    p = w[0] != MMGAN_NONE ? mmgan_plan_new(g, 1, w) : NULL;
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK && mmgan_plan_value(p, w[0])[0] == 6.0f, "its value 2 x 3");
    mmgan_plan_free(p);
    mmgan_graph_free(g);

    /* options that are not finite, or not possible, are build errors */
    for (i = 0; i < 10; i++) {
        mmgan_node a;
        mmgan_ctx_clear_error(ctx);
        g = mmgan_graph_new(ctx);
        a = mmgan_input(g, "x", 2, S(4, 2));
        switch (i) {
        case 0: what[i] = "fill NaN"; got[i] = mmgan_fill(g, 1, S(2), nan); break;
        case 1: what[i] = "leaky slope NaN"; got[i] = mmgan_leaky_relu(g, a, nan); break;
        case 2: what[i] = "softmax temperature inf"; got[i] = mmgan_softmax_per_sample(g, a, inf); break;
        case 3: what[i] = "scale NaN"; got[i] = mmgan_scale(g, a, nan); break;
        case 4: what[i] = "maximum with NaN"; got[i] = mmgan_maximum(g, a, nan); break;
        case 5: what[i] = "uniform [1, -1)"; got[i] = mmgan_random_uniform(g, &rng, 1, S(2), 1.0f, -1.0f); break;
        case 6: what[i] = "normal std -1"; got[i] = mmgan_random_normal(g, &rng, 1, S(2), 0.0f, -1.0f); break;
        case 7: what[i] = "normal mean NaN"; got[i] = mmgan_random_normal(g, &rng, 1, S(2), nan, 1.0f); break;
        case 8: what[i] = "batch norm eps inf";
            got[i] = mmgan_batch_norm(g, a, MMGAN_NONE, MMGAN_NONE, NULL, NULL, 0.1f, inf, 1); break;
        default: what[i] = "layer norm eps inf"; got[i] = mmgan_layer_norm(g, a, MMGAN_NONE, MMGAN_NONE, inf); break;
        }
        CHECK(got[i] == MMGAN_NONE && mmgan_graph_status(g) == MMGAN_ERR_INVALID && mmgan_ctx_error(ctx)[0],
              "%s refused: %s", what[i], mmgan_ctx_error(ctx));
        mmgan_graph_free(g);
    }
    mmgan_param_free(sp);
    mmgan_ctx_clear_error(ctx);
}

static void test_initializers(void)
{
    mmgan_param *w = mmgan_param_new(ctx, "w", 4, S(64, 32, 4, 4));
    mmgan_tensor *t = mmgan_param_tensor(w);
    double s = 0, s2 = 0, want;
    size_t i;
    mmgan_param_init(w, MMGAN_INIT_HE_NORMAL, 0.0f, &rng);
    for (i = 0; i < t->numel; i++) { s += t->data[i]; s2 += (double)t->data[i] * t->data[i]; }
    want = 2.0 / (32 * 16);
    CHECK(fabs(s2 / t->numel - want) < 0.05 * want, "He normal variance %.4g, want %.4g", s2 / t->numel, want);
    mmgan_param_init(w, MMGAN_INIT_XAVIER_UNIFORM, 1.0f, &rng);
    for (i = 0, s2 = 0; i < t->numel; i++) s2 += (double)t->data[i] * t->data[i];
    want = 2.0 / (32 * 16 + 64 * 16);
    CHECK(fabs(s2 / t->numel - want) < 0.05 * want, "Xavier uniform variance %.4g, want %.4g", s2 / t->numel, want);
    mmgan_param_init(w, MMGAN_INIT_NORMAL, 0.02f, &rng);
    for (i = 0, s2 = 0; i < t->numel; i++) s2 += (double)t->data[i] * t->data[i];
    CHECK(fabs(sqrt(s2 / t->numel) - 0.02) < 0.001, "normal(0.02) std %.4g", sqrt(s2 / t->numel));
    CHECK(mmgan_param_init(w, MMGAN_INIT_NORMAL, 0.02f, NULL) == MMGAN_ERR_INVALID, "init without rng refused");
    (void)s;
    mmgan_param_free(w);
    mmgan_ctx_clear_error(ctx);
}

/* max_abs_per_sample and max_per_sample, their values and subgradient
 * masks, against the plain scan that defines them: the first index whose
 * value is strictly larger than all before it, from index 0, NaNs never
 * larger (index 0 when x_0 is NaN).  Values from a few integers, so that
 * most samples tie; lengths around the kernels' 8-float steps; samples of
 * all zeros, of ties between signs, and NaNs at 0 and inside. */
static void test_max_ties(void)
{
    static const int pers[] = {1, 2, 7, 8, 9, 16, 17, 37};
    const float nanv = (float)NAN;
    int pi, sgn;
    for (pi = 0; pi < (int)(sizeof pers / sizeof pers[0]); pi++)
        for (sgn = 0; sgn < 2; sgn++) {
            const int per = pers[pi], nb = 9;
            mmgan_graph *g = mmgan_graph_new(ctx);
            mmgan_node x = mmgan_input(g, "x", 2, S(nb, per)), m, gx;
            float *xv = (float *)malloc(sizeof(float) * nb * per);
            mmgan_plan *p;
            int b, i, bad = 0;
            for (i = 0; i < nb * per; i++) xv[i] = (float)((int)(mmgan_rng_u32(&rng) % 7) - 3);
            for (i = 0; i < per; i++) {
                xv[i] = 0.0f;                                   /* sample 0: zeros */
                xv[per + i] = i % 2 ? 2.0f : -2.0f;             /* sample 1: ties of both signs */
                xv[2 * per + i] = i == 0 ? -0.0f : 0.0f;        /* sample 2: signed zeros */
            }
            xv[3 * per] = nanv;                                 /* sample 3: NaN first */
            xv[4 * per + per / 2] = nanv;                       /* sample 4: NaN inside */
            mmgan_graph_feed(g, x, xv);
            m = sgn ? mmgan_max_per_sample(g, x) : mmgan_max_abs_per_sample(g, x);
            CHECK(mmgan_grad(g, mmgan_sum(g, m), 1, &x, &gx) == MMGAN_OK, "max ties: grad: %s", mmgan_ctx_error(ctx));
            p = mmgan_plan_new(g, 1, &gx);
            CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "max ties: plan: %s", mmgan_ctx_error(ctx));
            if (p) {
                const float *gv = mmgan_plan_value(p, gx);
                mmgan_plan *pm = mmgan_plan_new(g, 1, &m);
                const float *mv = pm && mmgan_plan_run(pm) == MMGAN_OK ? mmgan_plan_value(pm, m) : NULL;
                CHECK(mv != NULL, "max ties: value plan: %s", mmgan_ctx_error(ctx));
                for (b = 0; b < nb && mv; b++) {
                    const float *a = xv + (size_t)b * per;
                    float best = sgn ? a[0] : 0.0f, want;
                    int k = 0;
                    for (i = 0; i < per; i++) {
                        float v = sgn ? a[i] : fabsf(a[i]);
                        if (v > (sgn ? a[k] : fabsf(a[k]))) k = i;
                        if (i > 0 || !sgn) best = v > best ? v : best;
                    }
                    if (!(mv[b] == best || (mv[b] != mv[b] && best != best))) bad++;
                    for (i = 0; i < per; i++) {
                        want = i != k ? 0.0f : sgn ? 1.0f : a[k] > 0.0f ? 1.0f : a[k] < 0.0f ? -1.0f : 0.0f;
                        if (gv[(size_t)b * per + i] != want) bad++;
                    }
                }
                CHECK(bad == 0, "%s of %d-float samples: %d values or mask entries differ from the scan",
                      sgn ? "max_per_sample" : "max_abs_per_sample", per, bad);
                mmgan_plan_free(pm);
            }
            mmgan_plan_free(p);
            mmgan_graph_free(g);
            free(xv);
        }
}

int main(void)
{
    test_suite = "test_graph";
    ctx = mmgan_ctx_new(NULL);
    mmgan_rng_seed(&rng, 7, 3);
    test_every_op();
    test_checker_catches_bugs();
    test_critic_penalty();
    test_zero_operands();
    test_zero_rules();
    test_third_order();
    test_detach_and_pruning();
    test_buffer_reuse();
    test_stages();
    test_plan_memory();
    test_plan_order();
    test_threads_identical();
    test_bn_grad_sharing();
    test_inplace();
    test_build_errors();
    test_scalars_and_options();
    test_initializers();
    test_max_ties();
    CHECK(mmgan__scratch_overruns == 0, "%d op runs wrote past their planned scratch", mmgan__scratch_overruns);
    mmgan_ctx_free(ctx);
    return test_summary();
}
