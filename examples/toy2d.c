/* A ring of 8 Gaussians in the plane (radius 2, std 0.02, equal weights): the
 * classic toy problem for GAN losses and gradient penalties.  Small MLPs
 * train in seconds with any loss, relativistic form and penalty of mmgan.h,
 * and the result is drawn as an SVG: the critic's level sets, real and
 * generated points, and the settings.
 *
 *   cc -O2 -march=native examples/toy2d.c -lm -o toy2d
 *   ./toy2d                                 (non-saturating GAN)
 *   ./toy2d --loss hinge --penalty interpolate --norm linf --shape hinge --lambda 20
 *                                           (the SVM-GAN paper's best: L1 margins)
 *   ./toy2d --loss nsgan --penalty real --lambda 1     (R1: center 0 by default)
 *   ./toy2d --loss wgan --penalty interpolate --lambda 0.1 --n-critic 5 --lr 1e-4
 *                                           (WGAN-GP as its authors' toy code ran it)
 * With the WGAN-GP paper's lambda 10 and one critic step per G step, the
 * samples still slide around the ring as a thin curve after 3000 steps: a
 * stiff two-sided penalty makes the critic almost linear at this scale.
 *
 * Prints the losses and a mode-coverage statistic as it trains: how many of
 * the 8 modes hold at least 1% of 2000 generated samples within 0.2 of their
 * centre, and the fraction of samples within 0.2 of some mode ("high
 * quality").  Writes OUT/toy2d.svg.  The graph and its four plans are built
 * once; the training loop allocates nothing. */
#define _POSIX_C_SOURCE 199309L  /* clock_gettime (and mkdir) under -std=c99 */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <limits.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#define HAVE_MKDIR 1
#endif

#define BATCH 256
#define HID 128
#define MODES 8
#define RADIUS 2.0
#define STD 0.02
#define NEVAL 2000      /* generated samples for the coverage statistic */
#define NPLOT 512       /* real and generated points drawn */
#define GRID 64         /* critic evaluated on GRID x GRID cells over [-LIM, LIM]^2 */
#define LIM 3.0
#define NEAR 0.2        /* "high quality": within NEAR of a mode's centre */
#define LEVELS 12       /* color bands of the critic's level sets */

static const char *loss_names[] = {"sgan", "nsgan", "lsgan", "hinge", "wgan", NULL};
static const char *rel_names[] = {"none", "average", "centred", "paired", "allpairs", NULL};
static const char *pen_names[] = {"none", "interpolate", "real", "fake", "dragan", NULL};
static const char *norm_names[] = {"l2", "l1", "linf", "smoothmax", "signedmax", NULL};
static const char *shape_names[] = {"squared", "hinge", "onesided", "abs", NULL};

typedef struct opts {
    int loss, rel, pen, norm, shape, n_critic, iters, threads, center_set, pen_opts;
    unsigned long seed;
    float center, lambda, lr;
    const char *out;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: toy2d [options]\n"
            "  --loss sgan|nsgan|lsgan|hinge|wgan    GAN loss (default nsgan; sgan is the saturating minimax G)\n"
            "  --rel none|average|centred|paired|allpairs   relativistic form (default none)\n"
            "  --penalty none|interpolate|real|fake|dragan  gradient penalty points (default none)\n"
            "  --norm l2|l1|linf|smoothmax|signedmax  penalty norm (default l2)\n"
            "  --shape squared|hinge|onesided|abs     penalty shape (default squared)\n"
            "  --center X           penalty center (default 1; 0 for real and fake, i.e. R1 and R2)\n"
            "  --lambda X           penalty weight (default 10)\n"
            "  --n-critic N         critic steps per generator step (default 1)\n"
            "  --lr X               Adam learning rate, betas (0.5, 0.9) (default 2e-4)\n"
            "  --iters N            generator steps (default 3000)\n"
            "  --seed N             random seed (default 1)\n"
            "  --threads N          OpenMP threads (default 1: these matrices are too small to share)\n"
            "  --out DIR            where toy2d.svg goes (default out; created if missing)\n"
            "  --help               this text\n");
}

static int lookup(const char *const *names, const char *v)
{
    int i;
    for (i = 0; names[i]; i++) if (!strcmp(names[i], v)) return i;
    return -1;
}

/* A parsed long as an int; out of an int's range: -1, which every check refuses. */
static int clamp_int(long n) { return n < 0 || n > INT_MAX ? -1 : (int)n; }

static int parse(int argc, char **argv, opts *o)
{
    static const struct { const char *flag; const char *const *names; } word[] = {
        {"--loss", loss_names}, {"--rel", rel_names}, {"--penalty", pen_names}, {"--norm", norm_names},
        {"--shape", shape_names}};
    int i, k;
    memset(o, 0, sizeof *o);
    o->loss = 1; o->n_critic = 1; o->iters = 3000; o->threads = 1; o->seed = 1; o->center = 1.0f; o->lambda = 10.0f;
    o->lr = 2e-4f; o->out = "out";
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        int *slot[5];
        slot[0] = &o->loss; slot[1] = &o->rel; slot[2] = &o->pen; slot[3] = &o->norm; slot[4] = &o->shape;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        for (k = 0; k < 5 && strcmp(a, word[k].flag); k++) {}
        if (k == 5 && strcmp(a, "--center") && strcmp(a, "--lambda") && strcmp(a, "--n-critic") && strcmp(a, "--lr") &&
            strcmp(a, "--iters") && strcmp(a, "--seed") && strcmp(a, "--threads") && strcmp(a, "--out")) {
            fprintf(stderr, "toy2d: unknown option %s (try --help)\n", a);
            return 0;
        }
        if (!v) { fprintf(stderr, "toy2d: %s needs a value\n", a); return 0; }
        i++;
        if (k < 5) {
            if ((*slot[k] = lookup(word[k].names, v)) < 0) {
                fprintf(stderr, "toy2d: bad value '%s' for %s (try --help)\n", v, a);
                return 0;
            }
            if (k >= 3) o->pen_opts = 1;
            continue;
        }
        if (!strcmp(a, "--out")) { o->out = v; continue; }
        errno = 0;   /* 2^32 + 1 iterations had wrapped to 1, a seed past 2^64 had saturated */
        if (!strcmp(a, "--center")) { o->center = strtof(v, &end); o->center_set = o->pen_opts = 1; }
        else if (!strcmp(a, "--lambda")) { o->lambda = strtof(v, &end); o->pen_opts = 1; }
        else if (!strcmp(a, "--lr")) o->lr = strtof(v, &end);
        else if (!strcmp(a, "--n-critic")) o->n_critic = clamp_int(strtol(v, &end, 10));
        else if (!strcmp(a, "--iters")) o->iters = clamp_int(strtol(v, &end, 10));
        else if (!strcmp(a, "--threads")) o->threads = clamp_int(strtol(v, &end, 10));
        else o->seed = strtoul(v, &end, 10);
        if (end == v || *end || errno == ERANGE || (*v == '-' && !strcmp(a, "--seed"))) {
            fprintf(stderr, "toy2d: bad value '%s' for %s\n", v, a);
            return 0;
        }
    }
    {
        const char *bad = !(o->lr > 0 && o->lr < 1) ? "--lr must lie in (0, 1)"
                        : !(o->lambda >= 0 && o->lambda <= 1e6f) ? "--lambda must lie in [0, 1e6]"
                        : !(fabsf(o->center) <= 1e6f) ? "--center must lie in [-1e6, 1e6]"
                        : o->n_critic < 1 || o->n_critic > 100 ? "--n-critic must lie in [1, 100]"
                        : o->iters < 1 || o->iters > 10000000 ? "--iters must lie in [1, 10000000]"
                        : o->threads < 1 || o->threads > 1024 ? "--threads must lie in [1, 1024]" : NULL;
        if (bad) { fprintf(stderr, "toy2d: %s\n", bad); return 0; }
    }
    if (!o->center_set && (o->pen == 2 || o->pen == 3)) o->center = 0.0f;   /* R1 and R2 are zero-centred */
    return 1;
}

/* A 2 -> HID -> HID -> out MLP: p[0..5] = w1, b1, w2, b2, w3, b3, initialized as
 * PyTorch's nn.Linear: weights He-uniform with slope sqrt(5) and biases, both
 * U[-1/sqrt(fan_in), 1/sqrt(fan_in)].  Random biases matter here: with zero
 * biases a relu network of a 2-d input starts positively homogeneous. */
typedef struct mlp { mmgan_param *p[6]; float slope; } mlp;

static int mlp_init(mmgan_ctx *ctx, mlp *m, const char *name, int out, float slope, mmgan_rng *rng)
{
    static const char *part[6] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"};
    int shapes[6][2] = {{HID, 2}, {HID, 0}, {HID, HID}, {HID, 0}, {0, HID}, {0, 0}}, i;
    char full[64];
    shapes[4][0] = shapes[5][0] = out;
    m->slope = slope;
    for (i = 0; i < 6; i++) {
        snprintf(full, sizeof full, "%s.%s", name, part[i]);
        m->p[i] = mmgan_param_new(ctx, full, i % 2 ? 1 : 2, shapes[i]);
        if (!m->p[i]) return 0;
        if (mmgan_param_init(m->p[i], i % 2 ? MMGAN_INIT_UNIFORM : MMGAN_INIT_HE_UNIFORM,
                             i % 2 ? 1.0f / sqrtf((float)shapes[i - 1][1]) : sqrtf(5.0f), rng) != MMGAN_OK)
            return 0;
    }
    return 1;
}

static mmgan_node mlp_apply(mmgan_graph *g, mmgan_node x, const mlp *m)
{
    mmgan_node h = x;
    int i;
    for (i = 0; i < 3; i++) {
        h = mmgan_linear(g, h, mmgan_parameter(g, m->p[2 * i]), mmgan_parameter(g, m->p[2 * i + 1]));
        if (i < 2) h = m->slope > 0 ? mmgan_leaky_relu(g, h, m->slope) : mmgan_relu(g, h);
    }
    return h;
}

/* The critic as an mmgan_critic_fn, so that penalties reapply it with the same weights. */
static mmgan_node critic(mmgan_graph *g, mmgan_node x, void *user) { return mlp_apply(g, x, (const mlp *)user); }

/* A batch of the ring: mode k at angle 2 pi k / 8. */
static void sample_real(mmgan_rng *rng, float *x, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        double a = 2.0 * 3.14159265358979 * mmgan_rng_below(rng, MODES) / MODES;
        x[2 * i] = (float)(RADIUS * cos(a) + STD * mmgan_rng_normal(rng));
        x[2 * i + 1] = (float)(RADIUS * sin(a) + STD * mmgan_rng_normal(rng));
    }
}

/* Modes holding at least 1% of the n samples within NEAR; *hq = fraction within NEAR of any mode. */
static int coverage(const float *x, int n, double *hq)
{
    int count[MODES] = {0}, i, k, good = 0, covered = 0;
    for (i = 0; i < n; i++)
        for (k = 0; k < MODES; k++) {
            double a = 2.0 * 3.14159265358979 * k / MODES;
            double dx = x[2 * i] - RADIUS * cos(a), dy = x[2 * i + 1] - RADIUS * sin(a);
            if (dx * dx + dy * dy < NEAR * NEAR) { count[k]++; good++; break; }
        }
    for (k = 0; k < MODES; k++) covered += count[k] * 100 >= n;
    *hq = (double)good / n;
    return covered;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* A lightened viridis at t in [0, 1], as "#rrggbb". */
static void color(double t, char *buf)
{
    static const double stop[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    double c[3], s = t > 0 ? (t < 1 ? t * 4 : 4) : 0;
    int i, j = s >= 4 ? 3 : (int)s;
    for (i = 0; i < 3; i++) c[i] = 0.55 * (stop[j][i] + (s - j) * (stop[j + 1][i] - stop[j][i])) + 0.45 * 255;
    sprintf(buf, "#%02x%02x%02x", (int)c[0], (int)c[1], (int)c[2]);
}

/* The color band of critic value v on [lo, hi]; 0 for NaN and infinities. */
static int band(float v, float lo, float hi)
{
    double t = hi > lo ? LEVELS * ((double)v - lo) / ((double)hi - lo) : 0;
    return isfinite(v) && t > 0 ? (t < LEVELS - 1 ? (int)t : LEVELS - 1) : 0;
}

#define PX(v) (20 + 600 * ((v) + LIM) / (2 * LIM))    /* plot coordinates: x right, y up */
#define PY(v) (20 + 600 * (LIM - (v)) / (2 * LIM))

/* Level sets as horizontal runs of equal bands, points, a color bar and the settings. */
static int write_svg(const char *path, const opts *o, const float *crit, const float *real, const float *fake,
                     int covered, double hq)
{
    FILE *f = fopen(path, "w");
    float lo = crit[0], hi = crit[0];
    double cell = 600.0 / GRID;
    char c[8];
    int i, j, r, ok;
    if (!f) return 0;
    for (i = 0; i < GRID * GRID; i++)
        if (isfinite(crit[i])) {
            if (!isfinite(lo) || crit[i] < lo) lo = crit[i];
            if (!isfinite(hi) || crit[i] > hi) hi = crit[i];
        }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"740\" font-family=\"sans-serif\" "
               "font-size=\"13\">\n<rect width=\"640\" height=\"740\" fill=\"white\"/>\n<g shape-rendering=\"crispEdges\">\n");
    for (j = 0; j < GRID; j++)            /* row j of the grid is y = LIM - (j + 0.5) cell */
        for (i = 0; i < GRID; i = r) {
            int b = band(crit[j * GRID + i], lo, hi);
            for (r = i + 1; r < GRID && band(crit[j * GRID + r], lo, hi) == b; r++) {}
            color((b + 0.5) / LEVELS, c);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>\n", 20 + i * cell,
                    20 + j * cell, (r - i) * cell + 0.3, cell + 0.3, c);
        }
    fprintf(f, "</g>\n<rect x=\"20\" y=\"20\" width=\"600\" height=\"600\" fill=\"none\" stroke=\"black\"/>\n<g fill=\"black\">\n");
    for (i = 0; i < NPLOT; i++) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.8\"/>\n", PX(real[2 * i]), PY(real[2 * i + 1]));
    fprintf(f, "</g>\n<g fill=\"#e4002b\" fill-opacity=\"0.75\">\n");
    for (i = 0; i < NPLOT; i++) {
        float x = fake[2 * i], y = fake[2 * i + 1];
        if (fabsf(x) < LIM && fabsf(y) < LIM) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\"/>\n", PX(x), PY(y));
    }
    fprintf(f, "</g>\n<text x=\"20\" y=\"14\" font-size=\"11\">[-3, 3] x [-3, 3]</text>\n"
               "<circle cx=\"26\" cy=\"640\" r=\"4\" fill=\"black\"/><text x=\"36\" y=\"644\">real</text>\n"
               "<circle cx=\"86\" cy=\"640\" r=\"4\" fill=\"#e4002b\"/><text x=\"96\" y=\"644\">generated</text>\n"
               "<text x=\"190\" y=\"644\">critic</text><text x=\"320\" y=\"644\" text-anchor=\"end\">%.3g</text>\n", lo);
    for (i = 0; i < LEVELS; i++) {
        color((i + 0.5) / LEVELS, c);
        fprintf(f, "<rect x=\"%d\" y=\"632\" width=\"20\" height=\"14\" fill=\"%s\"/>\n", 325 + 20 * i, c);
    }
    fprintf(f, "<text x=\"%d\" y=\"644\">%.3g</text>\n", 330 + 20 * LEVELS, hi);
    fprintf(f, "<text x=\"20\" y=\"670\">loss %s, relativistic %s, penalty %s", loss_names[o->loss], rel_names[o->rel],
            pen_names[o->pen]);
    if (o->pen) fprintf(f, " (%s, %s, center %g, lambda %g)", norm_names[o->norm], shape_names[o->shape], o->center, o->lambda);
    fprintf(f, "</text>\n<text x=\"20\" y=\"690\">Adam lr %g, betas (0.5, 0.9), batch %d, %d critic step%s per G step, "
               "%d G steps, seed %lu</text>\n", o->lr, BATCH, o->n_critic, o->n_critic > 1 ? "s" : "", o->iters, o->seed);
    fprintf(f, "<text x=\"20\" y=\"710\">modes %d/%d, high-quality %.0f%% (of %d samples within %.1f of a mode)</text>\n"
               "</svg>\n", covered, MODES, 100 * hq, NEVAL, NEAR);
    ok = !ferror(f);
    return fclose(f) == 0 && ok;
}

#define TRY(x) do { if ((x) != MMGAN_OK) { fprintf(stderr, "toy2d: %s\n", mmgan_ctx_error(ctx)); return 1; } } while (0)

int main(int argc, char **argv)
{
    static float xb[BATCH * 2], grid[GRID * GRID * 2], real_plot[NPLOT * 2];
    const int bs[2] = {BATCH, 2}, es[2] = {NEVAL, 2}, gs2[2] = {GRID * GRID, 2};
    opts o;
    mmgan_ctx *ctx;
    mmgan_rng rng, zrng, prng;
    mlp G, D;
    mmgan_graph *g;
    mmgan_node x, fake, d_real, d_fake, pen = MMGAN_NONE, d_obj, gen, score, dpn[6], gpn[6], dgrad[6], ggrad[6];
    mmgan_node dt[8], gt[7];
    mmgan_loss_spec ls;
    mmgan_gp_spec gsp;
    mmgan_gp gp;
    mmgan_loss ld, lg;
    mmgan_plan *dstep, *gstep, *sample, *field;
    mmgan_optimizer *dopt, *gopt;
    mmgan_opt_spec spec;
    double t0, sd = 0, sg = 0, sp = 0, hq = 0;
    int it, k, i, j, n = 0, covered = 0, every;
    char path[1024];

    if (!parse(argc, argv, &o)) return 2;
    if (o.pen_opts && !o.pen) fprintf(stderr, "toy2d: warning: --norm, --shape, --center and --lambda need --penalty\n");
    if (o.loss == 4 && !o.pen)
        fprintf(stderr, "toy2d: warning: WGAN without a penalty has an unconstrained critic (try --penalty interpolate)\n");
    ctx = mmgan_ctx_new(NULL);
    if (!ctx) return 1;
    TRY(mmgan_ctx_set_threads(ctx, o.threads));
    mmgan_rng_seed(&rng, o.seed, 1);
    mmgan_rng_seed(&zrng, o.seed, 2);
    mmgan_rng_seed(&prng, o.seed, 3);
    if (!mlp_init(ctx, &G, "G", 2, 0.0f, &rng) || !mlp_init(ctx, &D, "D", 1, 0.2f, &rng)) {
        fprintf(stderr, "toy2d: %s\n", mmgan_ctx_error(ctx));
        return 1;
    }

    /* One graph: the D step, the G step, 2000 samples, the critic on a grid. */
    ls = mmgan_loss_default(o.loss == 4 ? MMGAN_LOSS_WGAN : o.loss == 3 ? MMGAN_LOSS_HINGE :
                            o.loss == 2 ? MMGAN_LOSS_LSGAN : MMGAN_LOSS_SGAN, (mmgan_relativistic)o.rel);
    ls.saturating = o.loss == 0;
    g = mmgan_graph_new(ctx);
    if (!g) { fprintf(stderr, "toy2d: %s\n", mmgan_ctx_error(ctx)); return 1; }
    x = mmgan_input(g, "x_real", 2, bs);
    fake = mlp_apply(g, mmgan_random_normal(g, &zrng, 2, bs, 0.0f, 1.0f), &G);
    d_real = critic(g, x, &D);
    d_fake = critic(g, fake, &D);
    mmgan_loss_d(g, &ls, d_real, d_fake, &ld);
    mmgan_loss_g(g, &ls, d_real, d_fake, &lg);
    d_obj = ld.total;
    if (o.pen) {
        gsp = mmgan_gp_default();
        gsp.points = (mmgan_gp_points)(o.pen - 1);
        gsp.norm = (mmgan_gp_norm)o.norm;
        gsp.shape = (mmgan_gp_shape)o.shape;
        gsp.center = o.center;
        gsp.lambda = o.lambda;
        mmgan_gradient_penalty(g, &gsp, x, fake, critic, &D, &prng, &gp);
        pen = gp.penalty;
        d_obj = mmgan_add(g, ld.total, pen);
    }
    for (i = 0; i < 6; i++) { dpn[i] = mmgan_parameter(g, D.p[i]); gpn[i] = mmgan_parameter(g, G.p[i]); }
    mmgan_grad(g, d_obj, 6, dpn, dgrad);          /* through the penalty: second order */
    mmgan_grad(g, lg.total, 6, gpn, ggrad);
    gen = mlp_apply(g, mmgan_random_normal(g, &zrng, 2, es, 0.0f, 1.0f), &G);
    for (j = 0; j < GRID; j++)
        for (i = 0; i < GRID; i++) {
            grid[2 * (j * GRID + i)] = (float)(-LIM + (i + 0.5) * 2 * LIM / GRID);
            grid[2 * (j * GRID + i) + 1] = (float)(LIM - (j + 0.5) * 2 * LIM / GRID);
        }
    score = critic(g, mmgan_constant(g, 2, gs2, grid), &D);
    TRY(mmgan_graph_status(g));
    dt[0] = ld.total; dt[7] = pen; gt[0] = lg.total;
    for (i = 0; i < 6; i++) { dt[i + 1] = dgrad[i]; gt[i + 1] = ggrad[i]; }
    dstep = mmgan_plan_new(g, o.pen ? 8 : 7, dt);
    gstep = mmgan_plan_new(g, 7, gt);
    sample = mmgan_plan_new(g, 1, &gen);
    field = mmgan_plan_new(g, 1, &score);
    spec = mmgan_opt_default(MMGAN_OPT_ADAM);
    spec.lr = o.lr; spec.beta1 = 0.5f; spec.beta2 = 0.9f;
    dopt = mmgan_opt_new(ctx, &spec, 6, D.p);
    gopt = mmgan_opt_new(ctx, &spec, 6, G.p);
    if (!dstep || !gstep || !sample || !field || !dopt || !gopt) { fprintf(stderr, "toy2d: %s\n", mmgan_ctx_error(ctx)); return 1; }
    TRY(mmgan_graph_feed(g, x, xb));

    printf("toy2d: loss %s, relativistic %s, penalty %s", loss_names[o.loss], rel_names[o.rel], pen_names[o.pen]);
    if (o.pen) printf(" (%s, %s, center %g, lambda %g)", norm_names[o.norm], shape_names[o.shape], o.center, o.lambda);
    printf("; %d iterations, %d critic step%s each, %s kernels, %d threads\n", o.iters, o.n_critic,
           o.n_critic > 1 ? "s" : "", mmgan_isa(), mmgan_ctx_threads(ctx));
    every = o.iters >= 10 ? o.iters / 10 : 1;
    t0 = now();
    for (it = 1; it <= o.iters; it++) {
        for (k = 0; k < o.n_critic; k++) {
            sample_real(&rng, xb, BATCH);
            TRY(mmgan_plan_run(dstep));
            TRY(mmgan_opt_step_plan(dopt, dstep, dgrad));
        }
        sd += mmgan_plan_value(dstep, ld.total)[0];
        if (o.pen) sp += mmgan_plan_value(dstep, pen)[0];
        TRY(mmgan_plan_run(gstep));        /* relativistic G losses reuse the last real batch */
        TRY(mmgan_opt_step_plan(gopt, gstep, ggrad));
        sg += mmgan_plan_value(gstep, lg.total)[0];
        n++;
        if (it % every == 0 || it == o.iters) {
            TRY(mmgan_plan_run(sample));
            covered = coverage(mmgan_plan_value(sample, gen), NEVAL, &hq);
            printf("iter %6d  D loss %9.4f  G loss %9.4f  penalty %8.4f  modes %d/%d  high-quality %3.0f%%  (%.1f s)\n",
                   it, sd / n, sg / n, sp / n, covered, MODES, 100 * hq, now() - t0);
            fflush(stdout);
            if (!(sd == sd && sg == sg && sp == sp)) { fprintf(stderr, "toy2d: the losses diverged (NaN)\n"); return 1; }
            sd = sg = sp = 0; n = 0;
        }
    }
    TRY(mmgan_plan_run(field));
    sample_real(&rng, real_plot, NPLOT);
#ifdef HAVE_MKDIR
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {   /* before training, not at the first save */
        fprintf(stderr, "toy2d: cannot make the directory '%s': %s\n", o.out, strerror(errno));
        return 1;
    }
#endif
    snprintf(path, sizeof path, "%s/toy2d.svg", o.out);
    if (!write_svg(path, &o, mmgan_plan_value(field, score), real_plot, mmgan_plan_value(sample, gen), covered, hq)) {
        fprintf(stderr, "toy2d: cannot write %s\n", path);
        return 1;
    }
    printf("modes %d/%d, high-quality %.0f%%  (%.1f s; %s)\n", covered, MODES, 100 * hq, now() - t0, path);

    mmgan_plan_free(dstep); mmgan_plan_free(gstep); mmgan_plan_free(sample); mmgan_plan_free(field);
    mmgan_opt_free(dopt); mmgan_opt_free(gopt);
    mmgan_graph_free(g);
    for (i = 0; i < 6; i++) { mmgan_param_free(D.p[i]); mmgan_param_free(G.p[i]); }
    mmgan_ctx_free(ctx);
    return 0;
}
