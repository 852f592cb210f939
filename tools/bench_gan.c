/* make bench, the GAN part: one training iteration (a discriminator step,
 * then a generator step that reuses the D step's fake batch and makes no
 * critic weight gradients) of three small MNIST GANs, batch 64, in mmgan.
 * tools/bench_gan_torch.py is the same in PyTorch; tools/bench_gan.sh runs
 * both side by side and compares their losses.
 *
 *   magan          MAGAN (appendix B.1 of its paper): auto-encoder critic,
 *                  margin 10, Adamax(5e-4, 0.5, 0.999)
 *   hinge_linf_gp  small DCGAN, hinge loss + 20 mean relu(max|grad D(x^)| - 1)
 *                  at interpolates, Adam(2e-4, 0.5, 0.99)
 *   hinge          the same without the penalty
 *
 *   bench_gan bench --case C --threads N [--iters 30] [--warmup 5] [--csv FILE]
 *       prints `mmgan CASE THREADS median_ms min_ms max_ms peak_rss_mib`
 *   bench_gan factor --threads N [--iters 60] [--warmup 5]
 *       the penalty factor in one process: hinge_linf_gp and hinge built
 *       side by side, their iterations alternating (the order swapped every
 *       pair), so that both see the same load and the same cache; prints
 *       `mmgan factor THREADS gp_ms hinge_ms median_ratio q1 q3` (times the
 *       medians, the ratio the median of the pairs' ratios and its quartiles)
 *   bench_gan check --case C --out FILE.safetensors [--iters 3]
 *       runs a few iterations on one thread from seeded weights and writes
 *       those weights and every iteration's inputs (x.k, z.k, u.k) for the
 *       PyTorch replay; prints `iter k d_loss g_loss penalty`. */
#define _POSIX_C_SOURCE 199309L  /* clock_gettime under -std=c99 (without -fopenmp too) */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "../examples/magan_mnist_model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_common.h"
#include <sys/resource.h>

#define BATCH 64
#define DCGAN_NZ 128

enum { MAGAN, HINGE_LINF_GP, HINGE };
static const char *const CASES[] = {"magan", "hinge_linf_gp", "hinge"};

typedef struct pdef { const char *name; int ndim, shape[4]; mmgan_init init; float a; int trained; } pdef;

/* The DCGAN of cases 2 and 3, with PyTorch's state_dict names.  Normal(0.02)
 * weights as the DCGAN paper, batch norm at scale 1 and shift 0. */
static const pdef DCGAN_G[] = {
    {"G.deconv1.weight", 4, {DCGAN_NZ, 256, 7, 7}, MMGAN_INIT_NORMAL, 0.02f, 1},
    {"G.bn1.weight", 1, {256}, MMGAN_INIT_CONST, 1, 1}, {"G.bn1.bias", 1, {256}, MMGAN_INIT_ZEROS, 0, 1},
    {"G.bn1.running_mean", 1, {256}, MMGAN_INIT_ZEROS, 0, 0}, {"G.bn1.running_var", 1, {256}, MMGAN_INIT_CONST, 1, 0},
    {"G.deconv2.weight", 4, {256, 128, 4, 4}, MMGAN_INIT_NORMAL, 0.02f, 1},
    {"G.bn2.weight", 1, {128}, MMGAN_INIT_CONST, 1, 1}, {"G.bn2.bias", 1, {128}, MMGAN_INIT_ZEROS, 0, 1},
    {"G.bn2.running_mean", 1, {128}, MMGAN_INIT_ZEROS, 0, 0}, {"G.bn2.running_var", 1, {128}, MMGAN_INIT_CONST, 1, 0},
    {"G.deconv3.weight", 4, {128, 1, 4, 4}, MMGAN_INIT_NORMAL, 0.02f, 1},
    {"G.deconv3.bias", 1, {1}, MMGAN_INIT_ZEROS, 0, 1}};
static const pdef DCGAN_D[] = {
    {"D.conv1.weight", 4, {64, 1, 4, 4}, MMGAN_INIT_NORMAL, 0.02f, 1}, {"D.conv1.bias", 1, {64}, MMGAN_INIT_ZEROS, 0, 1},
    {"D.conv2.weight", 4, {128, 64, 4, 4}, MMGAN_INIT_NORMAL, 0.02f, 1}, {"D.conv2.bias", 1, {128}, MMGAN_INIT_ZEROS, 0, 1},
    {"D.fc.weight", 2, {1, 6272}, MMGAN_INIT_NORMAL, 0.02f, 1}, {"D.fc.bias", 1, {1}, MMGAN_INIT_ZEROS, 0, 1}};
/* MAGAN's auto-encoder critic, initialized as the reference code. */
static const pdef MAGAN_D[] = {
    {"D.fc1.weight", 2, {256, 784}, MMGAN_INIT_HE_NORMAL, 0, 1}, {"D.fc1.bias", 1, {256}, MMGAN_INIT_ZEROS, 0, 1},
    {"D.fc2.weight", 2, {256, 256}, MMGAN_INIT_HE_NORMAL, 0, 1}, {"D.fc2.bias", 1, {256}, MMGAN_INIT_ZEROS, 0, 1},
    {"D.fc3.weight", 2, {784, 256}, MMGAN_INIT_XAVIER_UNIFORM, 1, 1}, {"D.fc3.bias", 1, {784}, MMGAN_INIT_ZEROS, 0, 1}};

#define MAXP 16
typedef struct net { mmgan_param *p[MAXP]; int n; } net;

static int make_net(mmgan_ctx *ctx, net *m, const pdef *def, int n, mmgan_rng *rng, float scale)
{
    int i;
    size_t k;
    for (i = 0; i < n; i++) {
        mmgan_tensor *t;
        m->p[m->n] = mmgan_param_new(ctx, def[i].name, def[i].ndim, def[i].shape);
        if (!m->p[m->n] || mmgan_param_init(m->p[m->n], def[i].init, def[i].a, rng) != MMGAN_OK) return 0;
        t = mmgan_param_tensor(m->p[m->n++]);
        if (def[i].ndim > 1) for (k = 0; k < t->numel; k++) t->data[k] *= scale;
    }
    return 1;
}

static mmgan_node magan_critic(mmgan_graph *g, mmgan_node x, void *user)
{
    mmgan_param **p = ((net *)user)->p;
    int img[4] = {BATCH, 1, 28, 28};
    mmgan_node h = mmgan_relu(g, mmgan_linear(g, mmgan_flatten(g, x), mmgan_parameter(g, p[0]), mmgan_parameter(g, p[1])));
    h = mmgan_relu(g, mmgan_linear(g, h, mmgan_parameter(g, p[2]), mmgan_parameter(g, p[3])));
    h = mmgan_sigmoid(g, mmgan_linear(g, h, mmgan_parameter(g, p[4]), mmgan_parameter(g, p[5])));
    return mmgan_reshape(g, h, 4, img);
}

static mmgan_node dcgan_critic(mmgan_graph *g, mmgan_node x, void *user)
{
    mmgan_param **p = ((net *)user)->p;
    mmgan_node h = mmgan_conv2d(g, x, mmgan_parameter(g, p[0]), 2, 1);   /* 14x14 */
    h = mmgan_leaky_relu(g, mmgan_bias_add(g, h, mmgan_parameter(g, p[1])), 0.2f);
    h = mmgan_conv2d(g, h, mmgan_parameter(g, p[2]), 2, 1);              /* 7x7 */
    h = mmgan_leaky_relu(g, mmgan_bias_add(g, h, mmgan_parameter(g, p[3])), 0.2f);
    return mmgan_linear(g, mmgan_flatten(g, h), mmgan_parameter(g, p[4]), mmgan_parameter(g, p[5]));
}

static mmgan_node bn(mmgan_graph *g, mmgan_node x, mmgan_param **p)
{
    return mmgan_batch_norm(g, x, mmgan_parameter(g, p[0]), mmgan_parameter(g, p[1]), p[2], p[3], 0.1f, 1e-5f, 1);
}

static mmgan_node dcgan_generator(mmgan_graph *g, mmgan_param **p, mmgan_node z)
{
    mmgan_node h = mmgan_conv_transpose2d(g, z, mmgan_parameter(g, p[0]), 1, 0, 0);   /* 7x7 */
    h = mmgan_relu(g, bn(g, h, p + 1));
    h = mmgan_conv_transpose2d(g, h, mmgan_parameter(g, p[5]), 2, 1, 0);             /* 14x14 */
    h = mmgan_relu(g, bn(g, h, p + 6));
    h = mmgan_conv_transpose2d(g, h, mmgan_parameter(g, p[10]), 2, 1, 0);            /* 28x28 */
    return mmgan_tanh(g, mmgan_bias_add(g, h, mmgan_parameter(g, p[11])));
}

/* One case: its networks, optimizers and the staged plan of an iteration. */
typedef struct gan {
    int which;
    net G, D;
    mmgan_param *gtrain[MAXP];
    int ngt;
    mmgan_graph *g;
    mmgan_plan *plan;
    mmgan_optimizer *gopt, *dopt;
    mmgan_rng zrng, urng;
    mmgan_node x, z, d_obj, g_obj, pen, u, dgrad[MAXP], ggrad[MAXP];
    float *xb;
} gan;

static int build(mmgan_ctx *ctx, gan *s, int which, uint64_t seed, float d_scale)
{
    mmgan_rng init;
    mmgan_node fake, fd, dpn[MAXP], gpn[MAXP], t[4 + 2 * MAXP];
    mmgan_loss ld, lg;
    mmgan_opt_spec spec;
    int xs[4] = {BATCH, 1, 28, 28}, zs[4] = {BATCH, 0, 1, 1}, i, nt = 0, counts[2];
    memset(s, 0, sizeof *s);
    s->which = which;
    s->pen = s->u = MMGAN_NONE;
    mmgan_rng_seed(&init, seed, 0);
    mmgan_rng_seed(&s->zrng, seed, 1);
    mmgan_rng_seed(&s->urng, seed, 2);
    if (which == MAGAN) {
        for (i = 0; i < MAGAN_NG; i++) {
            const magan_pdef *d = &MAGAN_GDEF[i];
            s->G.p[s->G.n] = mmgan_param_new(ctx, d->name, d->ndim, d->shape);
            if (!s->G.p[s->G.n] || mmgan_param_init(s->G.p[s->G.n], d->init, d->a, &init) != MMGAN_OK) return 0;
            s->gtrain[s->ngt++] = s->G.p[s->G.n++];
        }
        if (!make_net(ctx, &s->D, MAGAN_D, 6, &init, d_scale)) return 0;
        zs[1] = MAGAN_NZ;
    } else {
        if (!make_net(ctx, &s->G, DCGAN_G, 12, &init, 1.0f) || !make_net(ctx, &s->D, DCGAN_D, 6, &init, d_scale))
            return 0;
        for (i = 0; i < 12; i++) if (DCGAN_G[i].trained) s->gtrain[s->ngt++] = s->G.p[i];
        zs[1] = DCGAN_NZ;
    }
    s->xb = (float *)malloc(sizeof(float) * BATCH * 784);
    if (!s->xb) return 0;

    /* One graph: fake = G(z) once; the D step sees it detached, the G step
     * applies the (updated) critic to it again and differentiates through G. */
    s->g = mmgan_graph_new(ctx);
    s->x = mmgan_input(s->g, "x", 4, xs);
    mmgan_graph_feed(s->g, s->x, s->xb);
    s->z = mmgan_random_normal(s->g, &s->zrng, 4, zs, 0.0f, 1.0f);
    fake = which == MAGAN ? magan_generator(s->g, s->G.p, s->z) : dcgan_generator(s->g, s->G.p, s->z);
    fd = mmgan_detach(s->g, fake);
    if (which == MAGAN) {
        mmgan_node er = mmgan_energy(s->g, s->x, magan_critic(s->g, s->x, &s->D), MMGAN_ENERGY_SSE);
        mmgan_node ef = mmgan_energy(s->g, fd, magan_critic(s->g, fd, &s->D), MMGAN_ENERGY_SSE);
        mmgan_node eg = mmgan_energy(s->g, fake, magan_critic(s->g, fake, &s->D), MMGAN_ENERGY_SSE);
        mmgan_ebgan_loss_d(s->g, er, ef, mmgan_fill(s->g, 1, (const int[]){1}, 10.0f), &ld);
        mmgan_ebgan_loss_g(s->g, eg, MMGAN_NONE, 0.0f, &lg);
        s->d_obj = ld.total;
    } else {
        mmgan_loss_spec ls = mmgan_loss_default(MMGAN_LOSS_HINGE, MMGAN_REL_NONE);
        mmgan_node dr = dcgan_critic(s->g, s->x, &s->D);
        mmgan_loss_d(s->g, &ls, dr, dcgan_critic(s->g, fd, &s->D), &ld);
        mmgan_loss_g(s->g, &ls, dr, dcgan_critic(s->g, fake, &s->D), &lg);
        s->d_obj = ld.total;
        if (which == HINGE_LINF_GP) {
            mmgan_gp_spec gs = mmgan_gp_default();
            mmgan_gp gp;
            gs.norm = MMGAN_NORM_LINF;
            gs.shape = MMGAN_GP_HINGE;
            gs.center = 1.0f;
            gs.lambda = 20.0f;
            mmgan_gradient_penalty(s->g, &gs, s->x, fd, dcgan_critic, &s->D, &s->urng, &gp);
            s->pen = gp.penalty;
            s->u = gp.u;
            s->d_obj = mmgan_add(s->g, s->d_obj, s->pen);
        }
    }
    s->g_obj = lg.total;
    for (i = 0; i < s->D.n; i++) dpn[i] = mmgan_parameter(s->g, s->D.p[i]);
    for (i = 0; i < s->ngt; i++) gpn[i] = mmgan_parameter(s->g, s->gtrain[i]);
    mmgan_grad(s->g, s->d_obj, s->D.n, dpn, s->dgrad);
    mmgan_grad(s->g, s->g_obj, s->ngt, gpn, s->ggrad);
    if (mmgan_graph_status(s->g) != MMGAN_OK) return 0;
    t[nt++] = s->d_obj;
    t[nt++] = s->z;
    if (s->pen != MMGAN_NONE) { t[nt++] = s->pen; t[nt++] = s->u; }
    for (i = 0; i < s->D.n; i++) t[nt++] = s->dgrad[i];
    counts[0] = nt;
    t[nt++] = s->g_obj;
    for (i = 0; i < s->ngt; i++) t[nt++] = s->ggrad[i];
    counts[1] = nt - counts[0];
    s->plan = mmgan_plan_new_stages(s->g, 2, counts, t);
    if (!s->plan) return 0;

    if (which == MAGAN) {
        spec = mmgan_opt_default(MMGAN_OPT_ADAMAX);
        spec.lr = 5e-4f; spec.beta1 = 0.5f; spec.beta2 = 0.999f;
    } else {
        spec = mmgan_opt_default(MMGAN_OPT_ADAM);
        spec.lr = 2e-4f; spec.beta1 = 0.5f; spec.beta2 = 0.99f;
    }
    s->dopt = mmgan_opt_new(ctx, &spec, s->D.n, s->D.p);
    s->gopt = mmgan_opt_new(ctx, &spec, s->ngt, s->gtrain);
    return s->dopt && s->gopt;
}

/* The D step, its update, the G step on the same fakes, its update. */
static mmgan_status iteration(gan *s)
{
    mmgan_status st = mmgan_plan_run_stage(s->plan, 0);
    if (st == MMGAN_OK) st = mmgan_opt_step_plan(s->dopt, s->plan, s->dgrad);
    if (st == MMGAN_OK) st = mmgan_plan_run_stage(s->plan, 1);
    if (st == MMGAN_OK) st = mmgan_opt_step_plan(s->gopt, s->plan, s->ggrad);
    return st;
}

static void release(gan *s)
{
    int i;
    mmgan_plan_free(s->plan);
    mmgan_graph_free(s->g);
    mmgan_opt_free(s->dopt);
    mmgan_opt_free(s->gopt);
    for (i = 0; i < s->G.n; i++) mmgan_param_free(s->G.p[i]);
    for (i = 0; i < s->D.n; i++) mmgan_param_free(s->D.p[i]);
    free(s->xb);
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;   /* KiB on Linux */
}

/* The real batch, in the range of the case's generator output. */
static void real_batch(gan *s, mmgan_rng *rng)
{
    mmgan_rng_fill_uniform(rng, s->xb, BATCH * 784, s->which == MAGAN ? 0.0f : -1.0f, 1.0f);
}

/* The q-quantile of sorted t[0..n-1], by linear interpolation (q = 0.5: the median). */
static double quantile(const double *t, int n, double q)
{
    double x = q * (n - 1);
    int i = (int)x;
    return i + 1 < n ? t[i] + (x - i) * (t[i + 1] - t[i]) : t[n - 1];
}

/* The penalty factor measured in one process.  Across processes it is the
 * ratio of two runs seconds apart, and on a shared machine their loads
 * differ by more than the penalty costs; here each pair of iterations, one
 * of each case, sees about the same load, and the order alternates so that
 * neither case always runs on the other's cold cache. */
static int factor(mmgan_ctx *ctx, int threads, int iters, int warmup)
{
    gan s[2];   /* hinge_linf_gp, hinge */
    mmgan_rng xr;
    double *t = (double *)malloc(sizeof(double) * 3 * (size_t)iters), *tg = t, *th = t + iters, *r = t + 2 * iters;
    int i;
    if (!t || !build(ctx, &s[0], HINGE_LINF_GP, 1, 1.0f) || !build(ctx, &s[1], HINGE, 1, 1.0f)) {
        fprintf(stderr, "bench_gan: %s\n", t ? mmgan_ctx_error(ctx) : "out of memory");
        return 1;
    }
    mmgan_rng_seed(&xr, 1, 3);
    real_batch(&s[0], &xr);
    memcpy(s[1].xb, s[0].xb, sizeof(float) * BATCH * 784);
    for (i = 0; i < warmup + iters; i++) {
        double d[2];
        int k, first = i & 1;
        for (k = 0; k < 2; k++) {
            int c = k ^ first;
            double t0 = now();
            if (iteration(&s[c]) != MMGAN_OK) { fprintf(stderr, "bench_gan: %s\n", mmgan_ctx_error(ctx)); return 1; }
            d[c] = (now() - t0) * 1e3;
        }
        if (i >= warmup) { tg[i - warmup] = d[0]; th[i - warmup] = d[1]; r[i - warmup] = d[0] / d[1]; }
    }
    qsort(tg, (size_t)iters, sizeof *t, cmp_double);
    qsort(th, (size_t)iters, sizeof *t, cmp_double);
    qsort(r, (size_t)iters, sizeof *t, cmp_double);
    printf("mmgan penalty factor, %d thread%s: hinge_linf_gp %.3f ms, hinge %.3f ms (medians), factor %.3f "
           "(median of %d alternating pairs' ratios; quartiles %.3f-%.3f)\n", threads, threads == 1 ? "" : "s",
           quantile(tg, iters, 0.5), quantile(th, iters, 0.5), quantile(r, iters, 0.5), iters,
           quantile(r, iters, 0.25), quantile(r, iters, 0.75));
    printf("mmgan factor %d %.3f %.3f %.4f %.4f %.4f\n", threads, quantile(tg, iters, 0.5), quantile(th, iters, 0.5),
           quantile(r, iters, 0.5), quantile(r, iters, 0.25), quantile(r, iters, 0.75));
    release(&s[0]);
    release(&s[1]);
    free(t);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_gan bench --case magan|hinge_linf_gp|hinge --threads N [--iters 30] [--warmup 5] [--csv FILE]\n"
                    "                       [--critic-scale S]  (critic weights times S: S = 8 makes the L-inf penalty active)\n"
                    "       bench_gan factor --threads N [--iters 60] [--warmup 5]  (hinge_linf_gp over hinge, alternating)\n"
                    "       bench_gan check --case magan|hinge_linf_gp|hinge --out FILE.safetensors [--iters 3]\n");
    return 2;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

int main(int argc, char **argv)
{
    mmgan_ctx *ctx;
    gan s;
    mmgan_rng xr;
    const char *csv = NULL, *out = NULL;
    int bench, fac, which = -1, threads = 0, iters = -1, warmup = 5, i, k;
    double cscale = 0.0;
    if (argc < 2 || (strcmp(argv[1], "bench") && strcmp(argv[1], "check") && strcmp(argv[1], "factor"))) return usage();
    fac = !strcmp(argv[1], "factor");
    bench = fac || !strcmp(argv[1], "bench");
    for (i = 2; i < argc; i += 2) {   /* option, value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = v != NULL;
        if (!strcmp(a, "--case") && !fac) {
            for (which = -1, k = 0; ok && k < 3; k++) if (!strcmp(v, CASES[k])) which = k;
            ok = which >= 0;
        } else if (!strcmp(a, "--threads") && bench) ok = ok && parse_int(v, 1, 1024, &threads);
        else if (!strcmp(a, "--iters")) ok = ok && parse_int(v, 1, 1000000, &iters);
        else if (!strcmp(a, "--warmup") && bench) ok = ok && parse_int(v, 0, 1000000, &warmup);
        else if (!strcmp(a, "--csv") && bench && !fac) csv = v;
        else if (!strcmp(a, "--critic-scale") && bench && !fac) {
            char *end;
            cscale = ok ? strtod(v, &end) : 0.0;
            ok = ok && end != v && !*end && cscale > 0.0 && cscale <= 1e3;
        }
        else if (!strcmp(a, "--out") && !bench) out = v;
        else {
            fprintf(stderr, "bench_gan: unknown option %s\n", a);
            return usage();
        }
        if (!ok) {
            fprintf(stderr, "bench_gan: %s needs %s\n", a, !strcmp(a, "--case") ? "magan, hinge_linf_gp or hinge"
                                                           : !strcmp(a, "--csv") || !strcmp(a, "--out") ? "a file name"
                                                           : !strcmp(a, "--critic-scale") ? "a factor in (0, 1000]"
                                                           : "a positive count");
            return 2;
        }
    }
    if ((which < 0 && !fac) || (bench && threads < 1) || (!bench && !out)) {
        fprintf(stderr, "bench_gan: %s\n", which < 0 && !fac ? "--case is required" : bench ? "--threads is required"
                                                                              : "--out is required");
        return usage();
    }
    if (iters < 0) iters = fac ? 60 : bench ? 30 : 3;
    ctx = mmgan_ctx_new(NULL);
    if (!ctx) { fprintf(stderr, "bench_gan: out of memory\n"); return 1; }
    mmgan_ctx_set_threads(ctx, bench ? threads : 1);
    if (fac) {
        k = factor(ctx, threads, iters, warmup);
        mmgan_ctx_free(ctx);
        return k;
    }
    /* The check scales the DCGAN critic's weights up so that its input
     * gradients pass 1 and the L-inf penalty is not zero. */
    if (!build(ctx, &s, which, 1, cscale > 0.0 ? (float)cscale : !bench && which != MAGAN ? 8.0f : 1.0f)) {
        fprintf(stderr, "bench_gan: %s\n", mmgan_ctx_error(ctx));
        return 1;
    }
    mmgan_rng_seed(&xr, 1, 3);
    if (bench) {
        double *t = (double *)malloc(sizeof(double) * (size_t)iters), med, rss;
        FILE *f;
        real_batch(&s, &xr);   /* timing does not depend on the pixels */
        for (i = 0; i < warmup + iters; i++) {
            double t0 = now();
            if (iteration(&s) != MMGAN_OK) { fprintf(stderr, "bench_gan: %s\n", mmgan_ctx_error(ctx)); return 1; }
            if (i >= warmup) t[i - warmup] = (now() - t0) * 1e3;
        }
        qsort(t, (size_t)iters, sizeof *t, cmp_double);
        med = quantile(t, iters, 0.5);
        rss = peak_rss_mib();
        printf("mmgan %s, %d thread%s: median %.3f ms per iteration (min %.3f, max %.3f) over %d iterations after %d "
               "warm-up, peak RSS %.1f MiB (plan %.1f MiB)\n", CASES[which], threads, threads == 1 ? "" : "s", med,
               t[0], t[iters - 1], iters, warmup, rss, mmgan_plan_bytes(s.plan) / 1048576.0);
        if (s.pen != MMGAN_NONE)   /* zero when no sample crosses the margin: its double backward is then skipped */
            printf("mmgan %s: penalty %.6g at the last iteration\n", CASES[which], mmgan_plan_value(s.plan, s.pen)[0]);
        printf("mmgan %s %d %.3f %.3f %.3f %.1f\n", CASES[which], threads, med, t[0], t[iters - 1], rss);
        if (csv) {
            f = fopen(csv, "a");
            if (!f) { fprintf(stderr, "bench_gan: cannot open %s\n", csv); return 1; }
            if (ftell(f) == 0) fprintf(f, "impl,case,threads,median_ms,min_ms,max_ms,peak_rss_mib\n");
            fprintf(f, "mmgan,%s,%d,%.3f,%.3f,%.3f,%.1f\n", CASES[which], threads, med, t[0], t[iters - 1], rss);
            if (fclose(f)) { fprintf(stderr, "bench_gan: cannot write %s\n", csv); return 1; }
        }
        free(t);
    } else {
        mmgan_ckpt *ck = mmgan_ckpt_new(ctx);
        char name[32];
        int sh[4];
        if (!ck) { fprintf(stderr, "bench_gan: %s\n", mmgan_ctx_error(ctx)); return 1; }
        mmgan_status st = mmgan_ckpt_put_meta(ck, "case", CASES[which]);
        for (i = 0; i < s.G.n && st == MMGAN_OK; i++) st = mmgan_ckpt_put_param(ck, s.G.p[i]);
        for (i = 0; i < s.D.n && st == MMGAN_OK; i++) st = mmgan_ckpt_put_param(ck, s.D.p[i]);
        for (k = 0; k < iters; k++) {
            const float *pen;
            real_batch(&s, &xr);
            if (iteration(&s) != MMGAN_OK) { fprintf(stderr, "bench_gan: %s\n", mmgan_ctx_error(ctx)); return 1; }
            pen = s.pen != MMGAN_NONE ? mmgan_plan_value(s.plan, s.pen) : NULL;
            printf("iter %d %.9g %.9g %.9g\n", k, mmgan_plan_value(s.plan, s.d_obj)[0],
                   mmgan_plan_value(s.plan, s.g_obj)[0], pen ? pen[0] : 0.0);
            sprintf(name, "x.%d", k);
            mmgan_node_shape(s.g, s.x, sh);
            if (st == MMGAN_OK) st = mmgan_ckpt_put(ck, name, 4, sh, s.xb);
            sprintf(name, "z.%d", k);
            mmgan_node_shape(s.g, s.z, sh);
            if (st == MMGAN_OK) st = mmgan_ckpt_put(ck, name, 4, sh, mmgan_plan_value(s.plan, s.z));
            if (s.u != MMGAN_NONE) {
                sprintf(name, "u.%d", k);
                mmgan_node_shape(s.g, s.u, sh);
                if (st == MMGAN_OK) st = mmgan_ckpt_put(ck, name, 4, sh, mmgan_plan_value(s.plan, s.u));
            }
        }
        if (st != MMGAN_OK || mmgan_ckpt_save(ck, out) != MMGAN_OK) { fprintf(stderr, "bench_gan: %s\n", mmgan_ctx_error(ctx)); return 1; }
        mmgan_ckpt_free(ck);
    }
    release(&s);
    mmgan_ctx_free(ctx);
    return 0;
}
