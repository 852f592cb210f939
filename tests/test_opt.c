/* Optimizers against their update rules written out in double precision,
 * first steps against hand-computed values, a regression trained through a
 * plan, and the moving average. */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"
#include <math.h>

static mmgan_ctx *ctx;
#define S(...) (const int[]){__VA_ARGS__}

/* The rules of the header comment, in double, for one value. */
typedef struct ref { double w, m, v; } ref;
static void ref_step(const mmgan_opt_spec *s, ref *r, double g, long t)
{
    double c1 = 1 - pow(s->beta1, (double)t), c2 = 1 - pow(s->beta2, (double)t), d;
    g += s->weight_decay * r->w;
    switch (s->kind) {
    case MMGAN_OPT_SGD:
        if (s->momentum > 0) { r->m = t == 1 ? g : s->momentum * r->m + g; g = r->m; }
        r->w -= s->lr * g;
        break;
    case MMGAN_OPT_ADAM:
        r->m = s->beta1 * r->m + (1 - s->beta1) * g;
        r->v = s->beta2 * r->v + (1 - s->beta2) * g * g;
        r->w -= s->lr * (r->m / c1) / (sqrt(r->v / c2) + s->eps);
        break;
    case MMGAN_OPT_ADAMAX:
        r->m = s->beta1 * r->m + (1 - s->beta1) * g;
        if (s->bias_correction) { r->v = fmax(s->beta2 * r->v, fabs(g) + s->eps); r->w -= s->lr / c1 * r->m / r->v; }
        else { r->v = fmax(s->beta2 * r->v + s->eps, fabs(g)); r->w -= s->lr * r->m / r->v; }
        break;
    case MMGAN_OPT_RMSPROP:
        r->v = s->beta2 * r->v + (1 - s->beta2) * g * g;
        d = g / (sqrt(r->v) + s->eps);
        if (s->momentum > 0) { r->m = s->momentum * r->m + d; d = r->m; }
        r->w -= s->lr * d;
        break;
    }
}

#define NV 37
static void test_rules(void)
{
    static const char *names[] = {"SGD", "Adam", "Adamax", "RMSprop"};
    int k, variant;
    for (k = 0; k < 4; k++)
        for (variant = 0; variant < 3; variant++) {
            mmgan_opt_spec s = mmgan_opt_default((mmgan_opt_kind)k);
            /* 37 values: the vector loops of every ISA and a scalar tail */
            mmgan_param *p = mmgan_param_new(ctx, "w", 1, S(NV));
            mmgan_optimizer *o;
            ref r[NV];
            float *w = mmgan_param_tensor(p)->data;
            double worst = 0;
            int i, t;
            if (variant == 1) { s.momentum = 0.9f; s.weight_decay = 0.01f; s.lr = 0.05f; }
            if (variant == 2) { s.beta1 = 0.5f; s.lr = 5e-4f; s.bias_correction = 0; }   /* MAGAN's Adamax */
            for (i = 0; i < NV; i++) { w[i] = 0.5f - 0.03f * i; r[i].w = w[i]; r[i].m = r[i].v = 0; }
            o = mmgan_opt_new(ctx, &s, 1, &p);
            CHECK(o != NULL, "%s: new: %s", names[k], mmgan_ctx_error(ctx));
            if (!o) { mmgan_param_free(p); continue; }
            for (t = 1; t <= 25; t++) {
                float g[NV];
                const float *gp = g;
                for (i = 0; i < NV; i++) {
                    /* gradients of varying sign and size, some exactly 0 now and then */
                    g[i] = (float)(sin(1.3 * t + i) * (i % 5 + 1) * (t % 7 == 0 && i % 3 == 1 ? 0 : 1));
                    ref_step(&s, &r[i], g[i], t);
                }
                mmgan_opt_step(o, &gp);
                /* float rounding of weights of size ~1 over 25 steps: ~1e-6 */
                for (i = 0; i < NV; i++) worst = fmax(worst, fabs(w[i] - r[i].w) / (1.0 + fabs(r[i].w)));
            }
            CHECK(worst < 1e-5, "%s variant %d: 25 steps off the rule by %.3g", names[k], variant, worst);
            CHECK(mmgan_opt_steps(o) == 25, "step count");
            mmgan_opt_free(o);
            mmgan_param_free(p);
        }
}

/* First steps by hand: Adam moves each weight by lr * g / (|g| + eps);
 * bias-corrected Adamax the same; MAGAN's Adamax by lr (1 - b1) sign(g). */
static void test_first_steps(void)
{
    mmgan_param *p = mmgan_param_new(ctx, "w", 1, S(2));
    float *w = mmgan_param_tensor(p)->data, g[2] = {0.3f, -2.0f};
    const float *gp = g;
    mmgan_opt_spec s;
    mmgan_optimizer *o;
    int k;
    for (k = 0; k < 3; k++) {
        s = mmgan_opt_default(k == 0 ? MMGAN_OPT_ADAM : MMGAN_OPT_ADAMAX);
        s.lr = 0.01f;
        s.beta1 = 0.5f;
        if (k == 2) s.bias_correction = 0;
        w[0] = 1.0f; w[1] = 1.0f;
        o = mmgan_opt_new(ctx, &s, 1, &p);
        mmgan_opt_step(o, &gp);
        if (k < 2) {
            CHECK(fabsf(w[0] - (1.0f - 0.01f * 0.3f / (0.3f + 1e-8f))) < 1e-7f &&
                  fabsf(w[1] - (1.0f + 0.01f)) < 1e-7f, "%s first step: %.9g %.9g", k ? "Adamax" : "Adam", w[0], w[1]);
        } else {
            CHECK(fabsf(w[0] - (1.0f - 0.005f)) < 1e-7f && fabsf(w[1] - 1.005f) < 1e-7f,
                  "Adamax without bias correction first step: %.9g %.9g", w[0], w[1]);
        }
        mmgan_opt_free(o);
    }
    mmgan_param_free(p);
}

/* Least squares y = X a through a graph and a plan: Adam finds a. */
static void test_regression(void)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_param *a = mmgan_param_new(ctx, "a", 2, S(1, 3));
    mmgan_rng rng;
    float xv[32 * 3], yv[32], want[3] = {1.5f, -2.0f, 0.25f};
    mmgan_node x = mmgan_input(g, "x", 2, S(32, 3)), y = mmgan_input(g, "y", 2, S(32, 1)), an, loss, ga;
    mmgan_opt_spec s = mmgan_opt_default(MMGAN_OPT_ADAM);
    mmgan_optimizer *o;
    mmgan_plan *p;
    mmgan_node t[2];
    int i, step;
    mmgan_rng_seed(&rng, 8, 8);
    mmgan_rng_fill_normal(&rng, xv, 96, 0, 1);
    for (i = 0; i < 32; i++) yv[i] = want[0] * xv[3 * i] + want[1] * xv[3 * i + 1] + want[2] * xv[3 * i + 2];
    mmgan_graph_feed(g, x, xv);
    mmgan_graph_feed(g, y, yv);
    an = mmgan_parameter(g, a);
    loss = mmgan_mean(g, mmgan_square(g, mmgan_sub(g, mmgan_linear(g, x, an, MMGAN_NONE), y)));
    mmgan_grad(g, loss, 1, &an, &ga);
    t[0] = loss; t[1] = ga;
    p = mmgan_plan_new(g, 2, t);
    s.lr = 0.05f;
    o = mmgan_opt_new(ctx, &s, 1, &a);
    for (step = 0; step < 600 && p && o; step++) {
        mmgan_plan_run(p);
        mmgan_opt_step_plan(o, p, &ga);
    }
    for (i = 0; i < 3; i++)
        CHECK(fabsf(mmgan_param_tensor(a)->data[i] - want[i]) < 1e-3f, "regression coefficient %d: %g want %g", i,
              mmgan_param_tensor(a)->data[i], want[i]);
    CHECK(mmgan_opt_step_plan(o, p, &loss) == MMGAN_ERR_INVALID, "a node of the wrong size is refused");
    mmgan_opt_free(o);
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    mmgan_param_free(a);
    mmgan_ctx_clear_error(ctx);
}

static void test_ema_and_errors(void)
{
    mmgan_param *p = mmgan_param_new(ctx, "w", 1, S(2));
    float *w = mmgan_param_tensor(p)->data;
    mmgan_ema *e;
    mmgan_optimizer *o;
    mmgan_rng rng;
    mmgan_opt_spec s = mmgan_opt_default(MMGAN_OPT_ADAM);
    mmgan_rng_seed(&rng, 7, 0);
    w[0] = 1.0f; w[1] = -1.0f;
    e = mmgan_ema_new(ctx, 0.9f, 1, &p);
    w[0] = 2.0f; w[1] = 0.0f;
    mmgan_ema_update(e);            /* 0.9 * 1 + 0.1 * 2 = 1.1; 0.9 * -1 + 0 = -0.9 */
    mmgan_ema_swap(e);
    CHECK(fabsf(w[0] - 1.1f) < 1e-6f && fabsf(w[1] + 0.9f) < 1e-6f, "EMA values %g %g", w[0], w[1]);
    mmgan_ema_swap(e);
    CHECK(w[0] == 2.0f && w[1] == 0.0f, "EMA swap back");
    mmgan_ema_free(e);
    s.beta1 = 1.0f;
    CHECK(mmgan_opt_new(ctx, &s, 1, &p) == NULL && strstr(mmgan_ctx_error(ctx), "out of range"), "beta1 = 1 refused");
    s = mmgan_opt_default(MMGAN_OPT_SGD);
    s.lr = -1.0f;
    CHECK(mmgan_opt_new(ctx, &s, 1, &p) == NULL, "negative lr refused");
    CHECK(mmgan_ema_new(ctx, 1.5f, 1, &p) == NULL, "EMA decay above 1 refused");
    {   /* infinite options passed the >= 0 tests and made every weight NaN */
        volatile float inf = 1e30f;
        int k;
        inf *= inf;
        for (k = 0; k < 4; k++) {
            s = mmgan_opt_default(k == 1 ? MMGAN_OPT_SGD : MMGAN_OPT_ADAM);
            if (k == 0) s.lr = inf;
            if (k == 1) s.momentum = inf;
            if (k == 2) s.weight_decay = inf;
            if (k == 3) s.eps = inf;
            CHECK(mmgan_opt_new(ctx, &s, 1, &p) == NULL && strstr(mmgan_ctx_error(ctx), "inf"),
                  "option %d infinite refused: %s", k, mmgan_ctx_error(ctx));
        }
        w[0] = 5.0f;
        CHECK(mmgan_param_init(p, MMGAN_INIT_HE_NORMAL, inf - inf, NULL) == MMGAN_ERR_INVALID, "HE with a = NaN refused");
        CHECK(mmgan_param_init(p, MMGAN_INIT_CONST, inf, NULL) == MMGAN_ERR_INVALID && w[0] == 5.0f,
              "a constant of inf refused, the weights untouched");
    }
    {   /* eps 0 divided a zero gradient's 0 by 0: NaN weights from a valid-looking step */
        static const mmgan_opt_kind kinds[3] = {MMGAN_OPT_ADAM, MMGAN_OPT_ADAMAX, MMGAN_OPT_RMSPROP};
        int k;
        for (k = 0; k < 3; k++) {
            s = mmgan_opt_default(kinds[k]);
            s.eps = 0.0f;
            CHECK(mmgan_opt_new(ctx, &s, 1, &p) == NULL && strstr(mmgan_ctx_error(ctx), "eps > 0") != NULL,
                  "kind %d: eps 0 refused: %s", (int)kinds[k], mmgan_ctx_error(ctx));
        }
        s = mmgan_opt_default(MMGAN_OPT_SGD);
        s.eps = 0.0f;
        o = mmgan_opt_new(ctx, &s, 1, &p);
        CHECK(o != NULL, "SGD, which has no eps, takes 0: %s", mmgan_ctx_error(ctx));
        CHECK(o && mmgan_opt_set_lr(o, 0.5f) == MMGAN_OK, "a finite lr set");
        CHECK(o && mmgan_opt_set_lr(o, 1e30f * 1e30f) == MMGAN_ERR_INVALID && strstr(mmgan_ctx_error(ctx), "0.5") != NULL,
              "an infinite lr refused, 0.5 kept: %s", mmgan_ctx_error(ctx));
        CHECK(o && mmgan_opt_set_lr(o, -1.0f) == MMGAN_ERR_INVALID, "a negative lr refused");
        w[0] = 1.0f; w[1] = -1.0f;
        {
            const float gv[2] = {1.0f, 1.0f}, *gp = gv;
            CHECK(o && mmgan_opt_step(o, &gp) == MMGAN_OK && w[0] == 0.5f && w[1] == -1.5f,
                  "the step took lr 0.5: %g %g", w[0], w[1]);
        }
        mmgan_opt_free(o);
        {   /* floats through volatile objects: s390x evaluates float constants and
             * products in double (0.01f != (float)0.01f there, 1e30f * 1e30f is finite) */
            volatile float c01 = 0.01f, m001 = -0.001f, big = 1e30f, inf2, nan2;
            inf2 = big * big;
            nan2 = inf2 - inf2;
            w[0] = 0.5f; w[1] = m001;
            CHECK(mmgan_param_clip(p, c01) == MMGAN_OK && w[0] == c01 && w[1] == m001, "clip to 0.01");
            CHECK(mmgan_param_clip(p, -c01) == MMGAN_ERR_INVALID && w[0] == c01 && strstr(mmgan_ctx_error(ctx), "clip"),
                  "a negative bound refused, the weights untouched: %s", mmgan_ctx_error(ctx));
            CHECK(mmgan_param_clip(p, nan2) == MMGAN_ERR_INVALID, "a NaN bound refused");
            CHECK(mmgan_param_init(p, MMGAN_INIT_UNIFORM, 3e38f, &rng) == MMGAN_ERR_INVALID &&
                  mmgan_param_init(p, MMGAN_INIT_NORMAL, 3e38f, &rng) == MMGAN_ERR_INVALID &&
                  mmgan_param_init(p, MMGAN_INIT_XAVIER_UNIFORM, 3e38f, &rng) == MMGAN_ERR_INVALID && w[0] == c01,
                  "scales whose draws overflow refused: %s", mmgan_ctx_error(ctx));
        }
        CHECK(mmgan_param_init(p, MMGAN_INIT_UNIFORM, 1e37f, &rng) == MMGAN_OK && isfinite(w[0]) &&
              isfinite(w[1]), "1e37 is fine: %g %g", w[0], w[1]);
    }
    mmgan_param_free(p);
    mmgan_ctx_clear_error(ctx);
}

int main(void)
{
    test_suite = "test_opt";
    ctx = mmgan_ctx_new(NULL);
    test_rules();
    test_first_steps();
    test_regression();
    test_ema_and_errors();
    mmgan_ctx_free(ctx);
    return test_summary();
}
