/* GAN losses against closed forms written out in double precision, a sign
 * test per loss, the gradient penalties against finite differences in the
 * critic's weights, and the EBGAN, BEGAN and MAGAN controllers. */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"
#include <math.h>
#include <stdlib.h>

static mmgan_ctx *ctx;
static mmgan_rng rng;
#define S(...) (const int[]){__VA_ARGS__}
#define B 4

/* ---- closed forms ------------------------------------------------------ */
static double sp(double t) { return t > 0 ? t + log1p(exp(-t)) : log1p(exp(t)); }
static double sig(double t) { return 1.0 / (1.0 + exp(-t)); }

/* phi_r and its derivative for each kind. */
static double phir(int k, double t)
{
    switch (k) {
    case MMGAN_LOSS_SGAN: return sp(-t);
    case MMGAN_LOSS_LSGAN: return (t - 1) * (t - 1);
    case MMGAN_LOSS_HINGE: return t < 1 ? 1 - t : 0;
    default: return -t;
    }
}
static double dphir(int k, double t)
{
    switch (k) {
    case MMGAN_LOSS_SGAN: return -sig(-t);
    case MMGAN_LOSS_LSGAN: return 2 * (t - 1);
    case MMGAN_LOSS_HINGE: return t < 1 ? -1 : 0;
    default: return -1;
    }
}
static double phif(int k, double t) { return phir(k, -t); }
static double dphif(int k, double t) { return -dphir(k, -t); }

/* Value (real part, fake part) and gradients of the total w.r.t. r and f. */
static void closed_form(const mmgan_loss_spec *s, int gside, const double *r, const double *f,
                        double *real, double *fake, double *gr, double *gf)
{
    int i, j, k = s->kind;
    double mr = 0, mf = 0;
    for (i = 0; i < B; i++) { mr += r[i] / B; mf += f[i] / B; gr[i] = gf[i] = 0; }
    *real = *fake = 0;
    switch (s->rel) {
    case MMGAN_REL_NONE:
        for (i = 0; i < B; i++) {
            if (!gside) {
                if (k == MMGAN_LOSS_LSGAN) {
                    *real += (r[i] - s->b) * (r[i] - s->b) / B; gr[i] = 2 * (r[i] - s->b) / B;
                    *fake += (f[i] - s->a) * (f[i] - s->a) / B; gf[i] = 2 * (f[i] - s->a) / B;
                } else {
                    *real += phir(k, r[i]) / B; gr[i] = dphir(k, r[i]) / B;
                    *fake += phif(k, f[i]) / B; gf[i] = dphif(k, f[i]) / B;
                }
            } else if (k == MMGAN_LOSS_SGAN && s->saturating) {
                *fake -= sp(f[i]) / B; gf[i] = -sig(f[i]) / B;
            } else if (k == MMGAN_LOSS_SGAN) {
                *fake += sp(-f[i]) / B; gf[i] = -sig(-f[i]) / B;
            } else if (k == MMGAN_LOSS_LSGAN) {
                *fake += (f[i] - s->c) * (f[i] - s->c) / B; gf[i] = 2 * (f[i] - s->c) / B;
            } else {
                *fake -= f[i] / B; gf[i] = -1.0 / B;
            }
        }
        break;
    case MMGAN_REL_AVERAGE:
    case MMGAN_REL_CENTRED: {
        /* real term: mean_i A(r_i - cr); fake term: mean_j F(f_j - cf), with
         * cr = mean f, cf = mean r (average) or both (mr + mf)/2 (centred). */
        int cen = s->rel == MMGAN_REL_CENTRED;
        double cr = cen ? (mr + mf) / 2 : mf, cf = cen ? (mr + mf) / 2 : mr;
        /* d cr / d r_k, d cr / d f_k, d cf / d r_k, d cf / d f_k */
        double crr = cen ? 0.5 / B : 0, crf = cen ? 0.5 / B : 1.0 / B;
        double cfr = cen ? 0.5 / B : 1.0 / B, cff = cen ? 0.5 / B : 0;
        double sa = 0, sf = 0;
        for (i = 0; i < B; i++) {
            double dr = r[i] - cr, df = f[i] - cf;
            double va = gside ? phif(k, dr) : phir(k, dr), da = gside ? dphif(k, dr) : dphir(k, dr);
            double vf = gside ? phir(k, df) : phif(k, df), dff = gside ? dphir(k, df) : dphif(k, df);
            *real += va / B; *fake += vf / B;
            gr[i] += da / B; gf[i] += dff / B;
            sa += da / B; sf += dff / B;
        }
        for (i = 0; i < B; i++) {
            gr[i] -= sa * crr + sf * cfr;
            gf[i] -= sa * crf + sf * cff;
        }
        break;
    }
    case MMGAN_REL_PAIRED:
        for (i = 0; i < B; i++) {
            double d = gside ? f[i] - r[i] : r[i] - f[i], dv = dphir(k, d) / B;
            *real += phir(k, d) / B;
            gr[i] += gside ? -dv : dv;
            gf[i] += gside ? dv : -dv;
        }
        break;
    case MMGAN_REL_ALL_PAIRS:
        for (i = 0; i < B; i++)
            for (j = 0; j < B; j++) {
                double d = gside ? f[j] - r[i] : r[i] - f[j], dv = dphir(k, d) / (B * B);
                *real += phir(k, d) / (B * B);
                gr[i] += gside ? -dv : dv;
                gf[j] += gside ? dv : -dv;
            }
        break;
    }
}

static void test_losses(void)
{
    static const char *kn[] = {"SGAN", "LSGAN", "HINGE", "WGAN"};
    static const char *rn[] = {"none", "average", "centred", "paired", "all-pairs"};
    int k, rel, side, variant;
    for (k = 0; k < 4; k++)
        for (rel = 0; rel < 5; rel++)
            for (variant = 0; variant < 3; variant++)
                for (side = 0; side < 2; side++) {
                    mmgan_loss_spec s = mmgan_loss_default((mmgan_loss_kind)k, (mmgan_relativistic)rel);
                    mmgan_graph *g;
                    mmgan_node r, f, grads[2], t[5];
                    mmgan_loss L;
                    mmgan_plan *p;
                    float rv[B], fv[B];
                    double rd[B], fd[B], real, fake, gr[B], gf[B], eps;
                    int i, ok = 1;
                    char tag[80];
                    if (variant == 1 && !(k == MMGAN_LOSS_SGAN || k == MMGAN_LOSS_LSGAN)) continue;
                    if (variant == 2 && k != MMGAN_LOSS_LSGAN) continue;
                    if (variant == 1) { s.saturating = 1; s.a = -1; }     /* LSGAN: the paper's (-1, 1, 1) */
                    if (variant == 2) { s.a = 0.5f; s.b = -0.3f; s.c = 0.2f; }
                    snprintf(tag, sizeof tag, "%s %s%s %s", kn[k], rn[rel], variant ? (variant == 1 ? " v1" : " v2") : "",
                             side ? "G" : "D");
                    for (i = 0; i < B; i++) {
                        /* Scores in (-1.8, 1.8) away from the hinge kinks at +-1. */
                        float u = mmgan_rng_uniform(&rng);
                        rv[i] = (float)((i % 2 ? -1 : 1) * (0.1 + 0.75 * u) + 0.3 * i - 0.45);
                        fv[i] = (float)(rv[i] * -0.7 + 0.05 * i);
                        if (fabs(fabs(rv[i]) - 1) < 0.05) rv[i] += 0.1f;
                        rd[i] = rv[i]; fd[i] = fv[i];
                    }
                    g = mmgan_graph_new(ctx);
                    r = mmgan_input(g, "r", 2, S(B, 1));
                    f = mmgan_input(g, "f", 1, S(B));            /* [B] and [B, 1] both accepted */
                    mmgan_graph_feed(g, r, rv);
                    mmgan_graph_feed(g, f, fv);
                    if ((side ? mmgan_loss_g : mmgan_loss_d)(g, &s, r, f, &L) != MMGAN_OK) {
                        CHECK(0, "%s: build: %s", tag, mmgan_ctx_error(ctx));
                        mmgan_graph_free(g);
                        continue;
                    }
                    t[0] = L.total; t[1] = L.real; t[2] = L.fake;
                    mmgan_grad(g, L.total, 2, (mmgan_node[]){r, f}, grads);
                    t[3] = grads[0]; t[4] = grads[1];
                    p = mmgan_plan_new(g, 5, t);
                    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "%s: run: %s", tag, mmgan_ctx_error(ctx));
                    if (!p) { mmgan_graph_free(g); continue; }
                    closed_form(&s, side, rd, fd, &real, &fake, gr, gf);
                    eps = 1e-5 * (1 + fabs(real) + fabs(fake));
                    ok &= fabs(mmgan_plan_value(p, L.real)[0] - real) <= eps;
                    ok &= fabs(mmgan_plan_value(p, L.fake)[0] - fake) <= eps;
                    ok &= fabs(mmgan_plan_value(p, L.total)[0] - (real + fake)) <= eps;
                    CHECK(ok, "%s: value %.7g + %.7g, want %.7g + %.7g", tag, mmgan_plan_value(p, L.real)[0],
                          mmgan_plan_value(p, L.fake)[0], real, fake);
                    for (i = 0, ok = 1; i < B; i++) {
                        ok &= fabs(mmgan_plan_value(p, grads[0])[i] - gr[i]) <= 1e-5;
                        ok &= fabs(mmgan_plan_value(p, grads[1])[i] - gf[i]) <= 1e-5;
                    }
                    CHECK(ok, "%s: gradient d/dr[0] %.7g want %.7g, d/df[0] %.7g want %.7g", tag,
                          mmgan_plan_value(p, grads[0])[0], gr[0], mmgan_plan_value(p, grads[1])[0], gf[0]);
                    /* Sign: a descent step of D raises real scores relative to
                     * fake ones; a step of G (on the fake scores) raises them.
                     * (Variant 2's LSGAN targets put the fake above the real
                     * target, so there the step goes the other way on purpose.) */
                    if (variant != 2) {
                        double before = 0, after = 0, lr = 0.05;
                        for (i = 0; i < B; i++) {
                            double r2 = rd[i] - (side ? 0 : lr * mmgan_plan_value(p, grads[0])[i]);
                            double f2 = fd[i] - lr * mmgan_plan_value(p, grads[1])[i];
                            before += rd[i] - fd[i];
                            after += r2 - f2;
                        }
                        if (side) CHECK(after < before - 1e-9, "%s: a G step must raise the fake scores", tag);
                        else CHECK(after > before + 1e-9, "%s: a D step must separate real from fake", tag);
                    }
                    mmgan_plan_free(p);
                    mmgan_graph_free(g);
                }
}

/* ---- gradient penalties ------------------------------------------------ */
typedef struct critic { mmgan_param *w1, *b1, *w2; } critic;

static mmgan_node critic_fn(mmgan_graph *g, mmgan_node x, void *user)
{
    critic *c = (critic *)user;
    mmgan_node h = mmgan_conv2d(g, x, mmgan_parameter(g, c->w1), 2, 1);
    h = mmgan_leaky_relu(g, mmgan_bias_add(g, h, mmgan_parameter(g, c->b1)), 0.2f);
    return mmgan_linear(g, mmgan_flatten(g, h), mmgan_parameter(g, c->w2), MMGAN_NONE);
}

/* Weights whose pre-activations keep one side of the leaky-relu kink for
 * |x| <= 1 (finite differences cannot cross it): see test_graph.c. */
static void critic_draw(critic *c, float w2scale)
{
    float *b1, *w1;
    int o;
    mmgan_param_init(c->w1, MMGAN_INIT_NORMAL, 0.1f, &rng);
    mmgan_param_init(c->w2, MMGAN_INIT_UNIFORM, w2scale, &rng);
    b1 = mmgan_param_tensor(c->b1)->data;
    w1 = mmgan_param_tensor(c->w1)->data;
    b1[0] = 1.5f; b1[1] = -1.5f; b1[2] = 1.3f; b1[3] = -1.3f;
    for (o = 0; o < 4; o++) {
        double l1 = 0;
        int j;
        for (j = 0; j < 9; j++) l1 += fabs(w1[o * 9 + j]);
        if (l1 + 0.05 >= fabs(b1[o])) for (j = 0; j < 9; j++) w1[o * 9 + j] *= 0.5f;
    }
}

static void critic_init(critic *c, float w2scale)
{
    c->w1 = mmgan_param_new(ctx, "w1", 4, S(4, 1, 3, 3));
    c->b1 = mmgan_param_new(ctx, "b1", 1, S(4));
    c->w2 = mmgan_param_new(ctx, "w2", 2, S(1, 36));
    critic_draw(c, w2scale);
}

/* Distance of a gradient sample from the kinks of a norm: |g_i| from 0
 * for L1 and smooth max, the gap between the two largest for the maxima.
 * A weight step h moves each g_i by at most h * max|w2| <= 1e-3 here. */
static double kink_gap(int norm, const float *g, int n)
{
    double m1 = -1e30, m2 = -1e30, mn = 1e30;
    int i;
    for (i = 0; i < n; i++) {
        double v = norm == MMGAN_NORM_SIGNED_MAX ? g[i] : fabs(g[i]);
        if (fabs(g[i]) < mn) mn = fabs(g[i]);
        if (v > m1) { m2 = m1; m1 = v; } else if (v > m2) m2 = v;
    }
    if (norm == MMGAN_NORM_L1 || norm == MMGAN_NORM_SMOOTH_MAX) return mn;   /* |g| inside */
    if (norm == MMGAN_NORM_LINF || norm == MMGAN_NORM_SIGNED_MAX) return m1 - m2;
    return 1e30;
}

static void critic_free(critic *c)
{
    mmgan_param_free(c->w1); mmgan_param_free(c->b1); mmgan_param_free(c->w2);
}

static const char *norm_name[] = {"L2", "L1", "Linf", "smooth-max", "signed-max"};
static const char *shape_name[] = {"squared", "hinge", "one-sided", "abs"};
static const char *pts_name[] = {"interpolate", "real", "fake", "dragan"};

/* Penalty gradient w.r.t. the weights against central differences; the rng
 * is reseeded before every run so random points stay the same. */
static void gp_fd(mmgan_gp_spec s, float w2scale)
{
    critic c;
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_rng prng;
    float xr[5 * 36], xf[5 * 36];
    mmgan_node r, f, pn[3], gw[3], t[8], gx;
    mmgan_gp gp;
    mmgan_plan *p;
    mmgan_param *ps[3];
    int i;
    char tag[96];
    snprintf(tag, sizeof tag, "penalty %s %s %s center %g", pts_name[s.points], norm_name[s.norm],
             shape_name[s.shape], (double)s.center);
    critic_init(&c, w2scale);
    ps[0] = c.w1; ps[1] = c.b1; ps[2] = c.w2;
    mmgan_rng_fill_uniform(&rng, xr, 5 * 36, -1, 1);
    mmgan_rng_fill_uniform(&rng, xf, 5 * 36, -0.5f, 0.5f);
    r = mmgan_input(g, "real", 4, S(5, 1, 6, 6));
    f = mmgan_input(g, "fake", 4, S(5, 1, 6, 6));
    mmgan_graph_feed(g, r, xr);
    mmgan_graph_feed(g, f, xf);
    CHECK(mmgan_gradient_penalty(g, &s, r, f, critic_fn, &c, &prng, &gp) == MMGAN_OK, "%s: build: %s", tag,
          mmgan_ctx_error(ctx));
    for (i = 0; i < 3; i++) pn[i] = mmgan_parameter(g, ps[i]);
    CHECK(mmgan_grad(g, gp.penalty, 3, pn, gw) == MMGAN_OK, "%s: grad: %s", tag, mmgan_ctx_error(ctx));
    /* The input gradient itself, to keep the norm's own kinks out of reach. */
    mmgan_grad(g, critic_fn(g, gp.points, &c), 1, &gp.points, &gx);
    t[0] = gp.penalty; t[1] = gp.norm; t[2] = gw[0]; t[3] = gw[1]; t[4] = gw[2]; t[5] = gx; t[6] = gp.points;
    t[7] = gp.u;
    CHECK((gp.u != MMGAN_NONE) == (s.points == MMGAN_GP_INTERPOLATE || s.points == MMGAN_GP_DRAGAN),
          "%s: the mixing weights u are reported exactly when drawn", tag);
    p = mmgan_plan_new(g, gp.u != MMGAN_NONE ? 8 : 7, t);
    if (!p) { CHECK(0, "%s: plan: %s", tag, mmgan_ctx_error(ctx)); mmgan_graph_free(g); critic_free(&c); return; }
    for (i = 0; i < 50; i++) {
        int b, far = 1;
        mmgan_rng_seed(&prng, 99, 1);
        mmgan_plan_run(p);
        for (b = 0; b < 5; b++) far &= kink_gap(s.norm, mmgan_plan_value(p, gx) + 36 * b, 36) > 2.5e-3;
        if (far) break;
        critic_draw(&c, w2scale);
    }
    CHECK(i < 50, "%s: test setup: no critic with the norm's kinks out of reach", tag);
    if (s.points == MMGAN_GP_INTERPOLATE) {   /* x^ = u x_real + (1 - u) x_fake with the reported u */
        const float *u = mmgan_plan_value(p, gp.u), *xh = mmgan_plan_value(p, gp.points);
        double worst = 0;
        int e;
        for (e = 0; e < 5 * 36; e++) {
            double w = (double)u[e / 36] * xr[e] + (1.0 - u[e / 36]) * xf[e];
            if (fabs(xh[e] - w) > worst) worst = fabs(xh[e] - w);
        }
        CHECK(worst <= 1e-6 && u[0] != u[1], "%s: points from the reported u: error %.3g", tag, worst);
    }
    /* Kinks of the hinge and abs shapes must be out of finite-difference reach. */
    for (i = 0; i < 5; i++) {
        float n = mmgan_plan_value(p, gp.norm)[i];
        CHECK(isfinite(n), "%s: norm %g", tag, n);
        if (s.shape == MMGAN_GP_HINGE || s.shape == MMGAN_GP_ABS)
            CHECK(fabsf(n - s.center) > 0.05f, "%s: test setup: norm %g too close to the center", tag, n);
        if (getenv("GP_DEBUG")) printf("%s: norm[%d] = %g\n", tag, i, n);
    }
    CHECK(mmgan_plan_value(p, gp.penalty)[0] > 1e-4f || s.shape == MMGAN_GP_HINGE || s.shape == MMGAN_GP_ONE_SIDED,
          "%s: penalty is zero", tag);
    for (i = 0; i < 3; i++) {
        mmgan_tensor *w = mmgan_param_tensor(ps[i]);
        size_t e;
        double d2 = 0, n2 = 0, h = 1e-3;
        float *an = (float *)malloc(w->numel * sizeof(float));
        mmgan_rng_seed(&prng, 99, 1);
        mmgan_plan_run(p);
        memcpy(an, mmgan_plan_value(p, gw[i]), w->numel * sizeof(float));
        for (e = 0; e < w->numel; e++) {
            float keep = w->data[e];
            double fp, fm, fd;
            w->data[e] = (float)(keep + h); mmgan_rng_seed(&prng, 99, 1); mmgan_plan_run(p); fp = mmgan_plan_value(p, gp.penalty)[0];
            w->data[e] = (float)(keep - h); mmgan_rng_seed(&prng, 99, 1); mmgan_plan_run(p); fm = mmgan_plan_value(p, gp.penalty)[0];
            w->data[e] = keep;
            fd = (fp - fm) / ((double)(float)(keep + h) - (double)(float)(keep - h));
            d2 += (an[e] - fd) * (an[e] - fd);
            n2 += fd * fd;
        }
        /* Relative to the size of the whole gradient: the bias gradient is exactly 0. */
        CHECK(sqrt(d2) <= 1e-2 * (sqrt(n2) + 1e-2), "%s: d/d%s error %.3g (norm %.3g)", tag,
              mmgan_param_name(ps[i]), sqrt(d2), sqrt(n2));
        free(an);
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    critic_free(&c);
}

static void test_penalties(void)
{
    int n, sh, pts;
    for (n = 0; n < 5; n++)
        for (sh = 0; sh < 4; sh++) {
            mmgan_gp_spec s = mmgan_gp_default();
            s.points = MMGAN_GP_REAL;
            s.norm = (mmgan_gp_norm)n;
            s.shape = (mmgan_gp_shape)sh;
            s.lambda = 20.0f;
            /* w2 scales chosen so the norm is above the center (hinge shapes
             * active) for one and below for the other. */
            gp_fd(s, 1.0f);
            s.center = 0.0f;
            if (sh == MMGAN_GP_SQUARED) gp_fd(s, 0.3f);
        }
    for (pts = 0; pts < 4; pts++) {
        mmgan_gp_spec s = mmgan_gp_default();
        s.points = (mmgan_gp_points)pts;
        s.norm = MMGAN_NORM_LINF;
        s.shape = MMGAN_GP_HINGE;
        s.center = 0.1f;
        gp_fd(s, 1.0f);
    }
}

/* Per-sample semantics, finiteness at a zero gradient, and a real effect
 * on the weights. */
static void test_penalty_semantics(void)
{
    critic c;
    float xr[5 * 36], xf[5 * 36];
    int n, i;
    critic_init(&c, 1.0f);
    /* Small biases: pre-activations on both sides of the kink, so every
     * sample has its own masks and its own gradient. */
    mmgan_param_init(c.b1, MMGAN_INIT_UNIFORM, 0.05f, &rng);
    mmgan_rng_fill_uniform(&rng, xr, 5 * 36, -1, 1);
    mmgan_rng_fill_uniform(&rng, xf, 5 * 36, -1, 1);
    for (n = 0; n < 5; n++) {
        mmgan_gp_spec s = mmgan_gp_default();
        mmgan_graph *g = mmgan_graph_new(ctx);
        mmgan_node r = mmgan_input(g, "r", 4, S(5, 1, 6, 6)), f = mmgan_input(g, "f", 4, S(5, 1, 6, 6));
        mmgan_gp gp;
        mmgan_plan *p;
        s.points = MMGAN_GP_REAL;
        s.norm = (mmgan_gp_norm)n;
        mmgan_graph_feed(g, r, xr);
        mmgan_graph_feed(g, f, xf);
        mmgan_gradient_penalty(g, &s, r, f, critic_fn, &c, NULL, &gp);
        p = mmgan_plan_new(g, 1, &gp.norm);
        CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "%s batch: %s", norm_name[n], mmgan_ctx_error(ctx));
        for (i = 0; p && i < 5; i++) {
            mmgan_graph *g1 = mmgan_graph_new(ctx);
            mmgan_node r1 = mmgan_input(g1, "r", 4, S(1, 1, 6, 6));
            mmgan_gp gp1;
            mmgan_plan *p1;
            mmgan_graph_feed(g1, r1, xr + 36 * i);
            mmgan_gradient_penalty(g1, &s, r1, r1, critic_fn, &c, NULL, &gp1);
            p1 = mmgan_plan_new(g1, 1, &gp1.norm);
            CHECK(p1 && mmgan_plan_run(p1) == MMGAN_OK, "single");
            if (p1) {
                double a = mmgan_plan_value(p, gp.norm)[i], b = mmgan_plan_value(p1, gp1.norm)[0];
                if (i > 0) CHECK(a != mmgan_plan_value(p, gp.norm)[0], "%s: samples 0 and %d share a norm", norm_name[n], i);
                CHECK(fabs(a - b) <= 1e-6 * fabs(b) + 1e-7, "%s norm of sample %d: batch %.8g alone %.8g", norm_name[n], i, a, b);
            }
            mmgan_plan_free(p1);
            mmgan_graph_free(g1);
        }
        mmgan_plan_free(p);
        mmgan_graph_free(g);
    }
    /* A critic with zero weights has a zero input gradient: every norm and
     * shape must give finite penalties and finite weight gradients. */
    {
        mmgan_tensor *w1 = mmgan_param_tensor(c.w1);
        float *keep = (float *)malloc(w1->numel * sizeof(float));
        int sh;
        memcpy(keep, w1->data, w1->numel * sizeof(float));
        mmgan_tensor_fill(w1, 0.0f);
        for (n = 0; n < 5; n++)
            for (sh = 0; sh < 4; sh++) {
                mmgan_gp_spec s = mmgan_gp_default();
                mmgan_graph *g = mmgan_graph_new(ctx);
                mmgan_node r = mmgan_input(g, "r", 4, S(5, 1, 6, 6)), gw[2], pn[2], t[3];
                mmgan_gp gp;
                mmgan_plan *p;
                int ok = 1;
                size_t e;
                s.points = MMGAN_GP_REAL; s.norm = (mmgan_gp_norm)n; s.shape = (mmgan_gp_shape)sh;
                mmgan_graph_feed(g, r, xr);
                mmgan_gradient_penalty(g, &s, r, r, critic_fn, &c, NULL, &gp);
                pn[0] = mmgan_parameter(g, c.w1); pn[1] = mmgan_parameter(g, c.w2);
                mmgan_grad(g, gp.penalty, 2, pn, gw);
                t[0] = gp.penalty; t[1] = gw[0]; t[2] = gw[1];
                p = mmgan_plan_new(g, 3, t);
                ok = p && mmgan_plan_run(p) == MMGAN_OK && isfinite(mmgan_plan_value(p, gp.penalty)[0]);
                for (e = 0; ok && e < 36; e++) ok = isfinite(mmgan_plan_value(p, gw[0])[e % 36]) && isfinite(mmgan_plan_value(p, gw[1])[e]);
                CHECK(ok, "zero gradient, %s %s: non-finite penalty or gradient", norm_name[n], shape_name[sh]);
                mmgan_plan_free(p);
                mmgan_graph_free(g);
            }
        memcpy(w1->data, keep, w1->numel * sizeof(float));
        free(keep);
    }
    /* One descent step on the penalty alone changes the weights and lowers it. */
    {
        mmgan_gp_spec s = mmgan_gp_default();
        mmgan_graph *g = mmgan_graph_new(ctx);
        mmgan_node r = mmgan_input(g, "r", 4, S(5, 1, 6, 6)), f = mmgan_input(g, "f", 4, S(5, 1, 6, 6)), pn[3], gw[3], t[4];
        mmgan_param *ps[3];
        mmgan_gp gp;
        mmgan_plan *p;
        mmgan_rng prng;
        float before, after, delta = 0;
        mmgan_graph_feed(g, r, xr);
        mmgan_graph_feed(g, f, xf);
        mmgan_gradient_penalty(g, &s, r, f, critic_fn, &c, &prng, &gp);
        ps[0] = c.w1; ps[1] = c.b1; ps[2] = c.w2;
        for (i = 0; i < 3; i++) pn[i] = mmgan_parameter(g, ps[i]);
        mmgan_grad(g, gp.penalty, 3, pn, gw);
        t[0] = gp.penalty; t[1] = gw[0]; t[2] = gw[1]; t[3] = gw[2];
        p = mmgan_plan_new(g, 4, t);
        mmgan_rng_seed(&prng, 5, 5);
        CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "step plan");
        if (p) {
            before = mmgan_plan_value(p, gp.penalty)[0];
            for (i = 0; i < 3; i++) {
                mmgan_tensor *w = mmgan_param_tensor(ps[i]);
                size_t e;
                for (e = 0; e < w->numel; e++) {
                    float d = 0.002f * mmgan_plan_value(p, gw[i])[e];
                    w->data[e] -= d;
                    delta += fabsf(d);
                }
            }
            mmgan_rng_seed(&prng, 5, 5);
            mmgan_plan_run(p);
            after = mmgan_plan_value(p, gp.penalty)[0];
            CHECK(delta > 0 && after < before, "a penalty step: weights moved %g, penalty %g -> %g", delta, before, after);
        }
        mmgan_plan_free(p);
        mmgan_graph_free(g);
    }
    critic_free(&c);
}

/* ---- energy-based -------------------------------------------------------- */
static void test_energy(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    float xv[6] = {0.1f, 0.2f, 0.3f, 1.0f, 0.0f, -1.0f}, rv[6] = {0.0f, 0.4f, 0.3f, 0.5f, 0.5f, 0.0f};
    float er[2] = {1.0f, 2.0f}, ef[2] = {3.0f, 0.5f}, m = 2.0f;
    float emb[3 * 2] = {1, 0, 1, 1, 0, -2};
    mmgan_node x = mmgan_input(g, "x", 2, S(2, 3)), rc = mmgan_input(g, "rc", 2, S(2, 3));
    mmgan_node nr = mmgan_input(g, "er", 2, S(2, 1)), nf = mmgan_input(g, "ef", 2, S(2, 1)), ne = mmgan_input(g, "emb", 2, S(3, 2));
    mmgan_node e[3], gf, t[9];
    mmgan_loss ld, lg, lb;
    mmgan_began bg;
    mmgan_plan *p;
    int i;
    mmgan_graph_feed(g, x, xv); mmgan_graph_feed(g, rc, rv);
    mmgan_graph_feed(g, nr, er); mmgan_graph_feed(g, nf, ef); mmgan_graph_feed(g, ne, emb);
    for (i = 0; i < 3; i++) e[i] = mmgan_energy(g, x, rc, (mmgan_energy_kind)i);
    mmgan_ebgan_loss_d(g, nr, nf, mmgan_fill(g, 1, S(1), m), &ld);
    mmgan_ebgan_loss_g(g, nf, ne, 0.1f, &lg);
    mmgan_began_init(&bg, 0.5f, 0.001f);
    bg.k = 0.25f;
    mmgan_began_loss_d(g, &bg, nr, nf, &lb);
    mmgan_grad(g, ld.total, 1, &nf, &gf);
    t[0] = e[0]; t[1] = e[1]; t[2] = e[2]; t[3] = ld.total; t[4] = ld.fake; t[5] = gf; t[6] = lg.total; t[7] = lg.real; t[8] = lb.total;
    CHECK(mmgan_graph_status(g) == MMGAN_OK, "energy graph: %s", mmgan_ctx_error(ctx));
    p = mmgan_plan_new(g, 9, t);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "energy plan");
    if (p) {
        /* sample 0: diffs (-0.1, 0.2, 0): SSE 0.05; sample 1: (-0.5, 0.5, 1): 1.5 */
        CHECK(fabsf(mmgan_plan_value(p, e[0])[0] - 0.05f) < 1e-6f && fabsf(mmgan_plan_value(p, e[0])[1] - 1.5f) < 1e-6f, "SSE energy");
        CHECK(fabsf(mmgan_plan_value(p, e[1])[1] - sqrtf(1.5f)) < 1e-6f, "norm energy");
        CHECK(fabsf(mmgan_plan_value(p, e[2])[1] - 0.5f) < 1e-6f, "MSE energy");
        /* mean(1, 2) + mean(relu(2 - 3), relu(2 - 0.5)) = 1.5 + 0.75 */
        CHECK(fabsf(mmgan_plan_value(p, ld.total)[0] - 2.25f) < 1e-6f, "EBGAN D loss %g", mmgan_plan_value(p, ld.total)[0]);
        CHECK(mmgan_plan_value(p, gf)[0] == 0.0f && fabsf(mmgan_plan_value(p, gf)[1] + 0.5f) < 1e-7f,
              "EBGAN: only fakes under the margin get gradient");
        /* cos^2 of (1,0),(1,1),(0,-2): 1/2, 0, 1/2 -> mean over the 6 ordered pairs = 1/3 */
        CHECK(fabsf(mmgan_plan_value(p, lg.real)[0] - 0.1f / 3) < 1e-6f, "pulling-away term %g", mmgan_plan_value(p, lg.real)[0]);
        CHECK(fabsf(mmgan_plan_value(p, lg.total)[0] - (1.75f + 0.1f / 3)) < 1e-6f, "EBGAN G loss");
        CHECK(fabsf(mmgan_plan_value(p, lb.total)[0] - (1.5f - 0.25f * 1.75f)) < 1e-6f, "BEGAN D loss with k = 0.25");
        bg.k = 0.5f;   /* read at each run */
        mmgan_plan_run(p);
        CHECK(fabsf(mmgan_plan_value(p, lb.total)[0] - (1.5f - 0.5f * 1.75f)) < 1e-6f, "BEGAN D loss follows k");
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);

    /* BEGAN's k: proportional control, clamped to [0, 1]. */
    mmgan_began_init(&bg, 0.5f, 0.001f);
    CHECK(fabsf(mmgan_began_update(&bg, 2.0f, 0.5f) - 2.5f) < 1e-6f && fabsf(bg.k - 0.0005f) < 1e-9f, "BEGAN update");
    mmgan_began_update(&bg, 1.0f, 100.0f);
    CHECK(bg.k == 0.0f, "BEGAN k clamped at 0");
    bg.lambda_k = 1.0f;
    mmgan_began_update(&bg, 10.0f, 0.0f);
    CHECK(bg.k == 1.0f, "BEGAN k clamped at 1");
}

static void magan_epoch(mmgan_magan *m, double e_data, double e_g)
{
    mmgan_magan_observe_real(m, e_data * 64 * 3, 64 * 3);
    mmgan_magan_observe_fake(m, e_g * 64 * 3, 64 * 3);
}

static void test_magan(void)
{
    int strict;
    for (strict = 0; strict < 2; strict++) {
        mmgan_magan m;
        mmgan_magan_init(&m, strict);
        CHECK(m.margin == 0.0f, "pre-training runs with margin 0");
        CHECK(mmgan_magan_start(&m) == MMGAN_ERR_INVALID, "start without an estimate is refused");
        mmgan_magan_observe_real(&m, 20.0, 2);   /* estimation pass: mean 10 */
        mmgan_magan_observe_real(&m, 10.0, 1);
        CHECK(mmgan_magan_start(&m) == MMGAN_OK && m.margin == 10.0f, "initial margin = mean real energy");
        magan_epoch(&m, 8, 12);
        CHECK(mmgan_magan_end_epoch(&m) == 0 && m.margin == 10.0f, "no update after epoch 1 (E_G^0 = inf)");
        magan_epoch(&m, 7, 13);
        CHECK(mmgan_magan_end_epoch(&m) == 1 && m.margin == 7.0f, "all three conditions: m = E_data");
        magan_epoch(&m, 6, 12.5);
        CHECK(mmgan_magan_end_epoch(&m) == 0 && m.margin == 7.0f, "E_G fell: no update");
        magan_epoch(&m, 8, 14);
        CHECK(mmgan_magan_end_epoch(&m) == 0 && m.margin == 7.0f, "E_data >= m: no update");
        magan_epoch(&m, 5, 3);
        mmgan_magan_end_epoch(&m);
        magan_epoch(&m, 5, 4);
        CHECK(mmgan_magan_end_epoch(&m) == 0 && m.margin == 7.0f, "E_data >= E_G: no update");
        magan_epoch(&m, 3, 4);      /* E_G equal to the previous epoch's */
        CHECK(mmgan_magan_end_epoch(&m) == !strict && m.margin == (strict ? 7.0f : 3.0f),
              "E_G^{t-1} == E_G^t updates with the paper's <= only (strict %d)", strict);
        CHECK(m.epoch == 7, "epochs counted");
    }
}

static void test_random_ops(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_rng a, b;
    mmgan_node u, n;
    mmgan_plan *p;
    float want[12];
    int i, same = 1;
    u = mmgan_random_uniform(g, &a, 2, S(3, 4), -1.0f, 2.0f);
    n = mmgan_random_normal(g, &a, 1, S(12), 0.5f, 2.0f);
    p = mmgan_plan_new(g, 2, (mmgan_node[]){u, n});
    mmgan_rng_seed(&a, 3, 4);
    mmgan_rng_seed(&b, 3, 4);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "random plan");
    mmgan_rng_fill_uniform(&b, want, 12, -1.0f, 2.0f);
    for (i = 0; p && i < 12; i++) same &= mmgan_plan_value(p, u)[i] == want[i];
    mmgan_rng_fill_normal(&b, want, 12, 0.5f, 2.0f);
    for (i = 0; p && i < 12; i++) same &= mmgan_plan_value(p, n)[i] == want[i];
    CHECK(same, "random nodes draw the rng's own stream");
    mmgan_plan_free(p);
    mmgan_graph_free(g);
}

static void test_loss_errors(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node r = mmgan_input(g, "r", 2, S(4, 2)), f = mmgan_input(g, "f", 2, S(4, 1));
    mmgan_loss_spec s = mmgan_loss_default(MMGAN_LOSS_HINGE, MMGAN_REL_NONE);
    mmgan_loss L;
    CHECK(mmgan_loss_d(g, &s, r, f, &L) == MMGAN_ERR_SHAPE && strstr(mmgan_ctx_error(ctx), "one score per sample"),
          "two scores per sample refused: %s", mmgan_ctx_error(ctx));
    mmgan_graph_free(g);
    g = mmgan_graph_new(ctx);
    r = mmgan_input(g, "r", 2, S(4, 1));
    f = mmgan_input(g, "f", 2, S(3, 1));
    s.rel = MMGAN_REL_PAIRED;
    CHECK(mmgan_loss_d(g, &s, r, f, &L) == MMGAN_ERR_SHAPE, "paired loss on unequal batches refused");
    mmgan_graph_free(g);
    g = mmgan_graph_new(ctx);
    r = mmgan_input(g, "r", 2, S(4, 1));
    s.kind = (mmgan_loss_kind)17;
    CHECK(mmgan_loss_d(g, &s, r, r, &L) == MMGAN_ERR_INVALID, "unknown loss refused");
    mmgan_graph_free(g);
    g = mmgan_graph_new(ctx);
    {
        mmgan_gp_spec gs = mmgan_gp_default();
        mmgan_gp gp;
        critic c;
        critic_init(&c, 1.0f);
        r = mmgan_input(g, "r", 4, S(2, 1, 6, 6));
        CHECK(mmgan_gradient_penalty(g, &gs, r, r, critic_fn, &c, NULL, &gp) == MMGAN_ERR_INVALID,
              "interpolates without an rng refused");
        critic_free(&c);
    }
    mmgan_graph_free(g);
    {   /* NaN options built graphs whose every value was NaN */
        volatile float zero = 0.0f;
        const float nan = zero / zero;
        mmgan_rng rng;
        mmgan_began bg;
        int k;
        mmgan_rng_seed(&rng, 1, 1);
        for (k = 0; k < 6; k++) {   /* and a negative weight or noise scale (4, 5): no penalty */
            mmgan_gp_spec gs = mmgan_gp_default();
            mmgan_gp gp;
            critic c;
            if (k == 0) gs.lambda = nan;
            if (k == 1) gs.center = nan;
            if (k == 2) { gs.points = MMGAN_GP_DRAGAN; gs.dragan_c = nan; }
            if (k == 3) { gs.norm = MMGAN_NORM_SMOOTH_MAX; gs.smooth_s = nan; }
            if (k == 4) gs.lambda = -10.0f;
            if (k == 5) { gs.points = MMGAN_GP_DRAGAN; gs.dragan_c = -1.0f; }
            mmgan_ctx_clear_error(ctx);
            g = mmgan_graph_new(ctx);
            critic_init(&c, 1.0f);
            r = mmgan_input(g, "r", 4, S(2, 1, 6, 6));
            CHECK(mmgan_gradient_penalty(g, &gs, r, r, critic_fn, &c, &rng, &gp) == MMGAN_ERR_INVALID &&
                  gp.penalty == MMGAN_NONE && strstr(mmgan_ctx_error(ctx), k < 4 ? "must be finite" : ">= 0"),
                  "penalty option %d NaN or negative refused: %s", k, mmgan_ctx_error(ctx));
            critic_free(&c);
            mmgan_graph_free(g);
        }
        g = mmgan_graph_new(ctx);
        r = mmgan_input(g, "r", 2, S(4, 1));
        s = mmgan_loss_default(MMGAN_LOSS_LSGAN, MMGAN_REL_NONE);
        s.c = nan;
        CHECK(mmgan_loss_g(g, &s, r, r, &L) == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "LSGAN targets"),
              "an LSGAN target of NaN refused: %s", mmgan_ctx_error(ctx));
        mmgan_graph_free(g);
        g = mmgan_graph_new(ctx);
        r = mmgan_input(g, "r", 2, S(4, 1));
        CHECK(mmgan_ebgan_loss_g(g, r, r, nan, &L) == MMGAN_ERR_INVALID && L.total == MMGAN_NONE,
              "a pulling-away weight of NaN refused");
        mmgan_graph_free(g);
        g = mmgan_graph_new(ctx);
        r = mmgan_input(g, "r", 2, S(4, 1));
        mmgan_began_init(&bg, nan, 0.001f);
        CHECK(mmgan_began_loss_d(g, &bg, r, r, &L) == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "gamma"),
              "a BEGAN gamma of NaN refused: %s", mmgan_ctx_error(ctx));
        mmgan_graph_free(g);
        mmgan_began_init(&bg, 0.5f, 0.1f);
        mmgan_began_update(&bg, 1.0f, 0.2f);   /* k = 0.1 (0.5 - 0.2) = 0.03 */
        mmgan_began_update(&bg, nan, 0.2f);
        CHECK(fabsf(bg.k - 0.03f) < 1e-6f, "a NaN energy leaves k as it was (%g)", (double)bg.k);
    }
    mmgan_ctx_clear_error(ctx);
}

int main(void)
{
    test_suite = "test_loss";
    ctx = mmgan_ctx_new(NULL);
    mmgan_rng_seed(&rng, 21, 2);
    test_losses();
    test_penalties();
    test_penalty_semantics();
    test_energy();
    test_magan();
    test_random_ops();
    test_loss_errors();
    mmgan_ctx_free(ctx);
    return test_summary();
}
