/* MAGAN on MNIST: Margin Adaptation for GANs (Wang et al.), Algorithm 1 and
 * appendix B.1.  The critic is an auto-encoder whose reconstruction error is
 * the energy; its hinge margin starts at the real data's energy after two
 * epochs of auto-encoder pre-training and drops to the epoch's mean real
 * energy whenever the generator's energy stalls.
 *
 *   cc -O2 -march=native -fopenmp examples/magan_mnist.c -lm -o magan
 *   ./magan --epochs 20 --out out/        (the shipped 10,000 test digits)
 *   ./magan --data train-images-idx3-ubyte.gz --epochs 200   (as the paper)
 *
 * Writes out/samples_EPOCH.png (64 samples from fixed noise),
 * out/energy.svg (mean real and fake energy and the margin per epoch, like
 * the paper's Figure 3) and out/magan.safetensors after every epoch, from
 * which --resume continues exactly where the run stopped. */
#define _POSIX_C_SOURCE 199309L  /* clock_gettime (and mkdir) under -std=c99 */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <math.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#define HAVE_MKDIR 1
#endif
#include "magan_mnist_model.h"   /* the generator, as mnist_eval rebuilds it */

#define BATCH 64
#define NZ MAGAN_NZ

typedef struct opts {
    const char *data, *out, *resume;
    int epochs, threads, strict, reference_adamax, fixed;
    unsigned long seed;
    float fixed_margin, lr;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: magan_mnist [options]\n"
            "  --data PATH          MNIST images, IDX, .gz or not (default data/mnist/t10k-images-idx3-ubyte.gz)\n"
            "  --out DIR            where samples and plots go (default out; created if missing)\n"
            "  --epochs N           training epochs after pre-training (default 20; the paper: 200)\n"
            "  --seed N             random seed (default 1)\n"
            "  --threads N          OpenMP threads (default: all)\n"
            "  --lr X               Adamax learning rate (default 5e-4)\n"
            "  --fixed-margin M     EBGAN baseline: keep the margin at M, no adaptation\n"
            "  --strict             the reference code's '<' in the update rule (the paper: '<=')\n"
            "  --reference-adamax   Adamax without bias correction, as the authors' code\n"
            "  --resume PATH        continue from a checkpoint (OUT/magan.safetensors) to --epochs\n"
            "  --help               this text\n");
}

static int parse(int argc, char **argv, opts *o)
{
    int i;
    o->data = "data/mnist/t10k-images-idx3-ubyte.gz";
    o->resume = NULL;
    o->out = "out";
    o->epochs = 20; o->threads = 0; o->strict = 0; o->reference_adamax = 0;
    o->seed = 1; o->fixed_margin = 0.0f; o->fixed = 0; o->lr = 5e-4f;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--strict")) o->strict = 1;
        else if (!strcmp(a, "--reference-adamax")) o->reference_adamax = 1;
        else if (strcmp(a, "--data") && strcmp(a, "--out") && strcmp(a, "--epochs") && strcmp(a, "--seed") &&
                 strcmp(a, "--threads") && strcmp(a, "--lr") && strcmp(a, "--fixed-margin") && strcmp(a, "--resume")) {
            fprintf(stderr, "magan_mnist: unknown option %s (try --help)\n", a);
            return 0;
        } else if (!v) { fprintf(stderr, "magan_mnist: %s needs a value\n", a); return 0; }
        else if (!strcmp(a, "--data")) { o->data = v; i++; }
        else if (!strcmp(a, "--out")) { o->out = v; i++; }
        else if (!strcmp(a, "--resume")) { o->resume = v; i++; }
        else {
            /* numbers: the whole value, in range (a seed of -5 or 2^64 had wrapped around) */
            long n = 0;
            errno = 0;
            if (!strcmp(a, "--seed")) { o->seed = strtoul(v, &end, 10); bad = *v == '-'; }
            else if (!strcmp(a, "--lr")) o->lr = strtof(v, &end);
            else if (!strcmp(a, "--fixed-margin")) { o->fixed_margin = strtof(v, &end); o->fixed = 1; }
            else n = strtol(v, &end, 10);
            if (!strcmp(a, "--epochs")) o->epochs = n < 1 || n > 1000000 ? -1 : (int)n;
            if (!strcmp(a, "--threads")) o->threads = n < 0 || n > 1024 ? -1 : (int)n;
            bad |= end == v || *end || errno == ERANGE;
            i++;
        }
        if (bad) { fprintf(stderr, "magan_mnist: bad value '%s' for %s\n", v, a); return 0; }
    }
    if (o->epochs < 1 || o->threads < 0 || !(o->lr > 0) || !isfinite(o->lr) ||
        (o->fixed && !(o->fixed_margin >= 0 && isfinite(o->fixed_margin)))) {
        fprintf(stderr, "magan_mnist: --epochs 1 to 1000000, --threads 0 to 1024, --lr > 0, --fixed-margin >= 0 "
                        "(finite)\n");
        return 0;
    }
    return 1;
}

/* The auto-encoder critic of appendix B.1: 784-256-256-784, relu, relu, sigmoid. */
typedef struct net { mmgan_param *p[12]; int n; } net;

static mmgan_param *add(mmgan_ctx *ctx, net *m, const char *name, int ndim, const int *shape, mmgan_init init, float a,
                        mmgan_rng *rng)
{
    mmgan_param *p = mmgan_param_new(ctx, name, ndim, shape);
    if (p && init != MMGAN_INIT_ZEROS) mmgan_param_init(p, init, a, rng);
    m->p[m->n++] = p;
    return p;
}

static mmgan_node critic(mmgan_graph *g, const net *d, mmgan_node x, mmgan_node *code)
{
    int flat[2] = {BATCH, 784}, img[4] = {BATCH, 1, 28, 28};
    mmgan_node h = mmgan_reshape(g, x, 2, flat);
    h = mmgan_relu(g, mmgan_linear(g, h, mmgan_parameter(g, d->p[0]), mmgan_parameter(g, d->p[1])));
    h = mmgan_relu(g, mmgan_linear(g, h, mmgan_parameter(g, d->p[2]), mmgan_parameter(g, d->p[3])));
    if (code) *code = h;
    h = mmgan_sigmoid(g, mmgan_linear(g, h, mmgan_parameter(g, d->p[4]), mmgan_parameter(g, d->p[5])));
    return mmgan_reshape(g, h, 4, img);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Everything a run needs to continue bit for bit: weights, optimizer
 * moments, both random streams, the batch order, the controller, the fixed
 * sampling noise and the curves so far. */
typedef struct state {
    net *D, *G;
    mmgan_optimizer *dopt, *gopt;
    mmgan_rng *rng, *zrng;
    mmgan_batcher *batches;
    mmgan_magan *magan;
    float *zfixed;
    double *hist_r, *hist_f, *hist_m;
    int epoch;
} state;

static mmgan_status save_state(mmgan_ctx *ctx, const state *s, const char *path)
{
    mmgan_ckpt *ck = mmgan_ckpt_new(ctx);
    mmgan_status st = ck ? MMGAN_OK : MMGAN_ERR_NOMEM;
    char v[64];
    float *h = (float *)malloc(sizeof(float) * 3 * (size_t)(s->epoch + 1));
    int i;
    if (!h) st = MMGAN_ERR_NOMEM;
    for (i = 0; i < 6 && st == MMGAN_OK; i++) {
        st = mmgan_ckpt_put_param(ck, s->D->p[i]);
        if (st == MMGAN_OK) st = mmgan_ckpt_put_param(ck, s->G->p[i]);
    }
    if (st == MMGAN_OK) st = mmgan_opt_save(s->dopt, ck, "D.adamax");
    if (st == MMGAN_OK) st = mmgan_opt_save(s->gopt, ck, "G.adamax");
    if (st == MMGAN_OK) st = mmgan_rng_save(s->rng, ck, "rng.data");
    if (st == MMGAN_OK) st = mmgan_rng_save(s->zrng, ck, "rng.z");
    if (st == MMGAN_OK) st = mmgan_ckpt_put(ck, "z_fixed", 2, (const int[]){BATCH, NZ}, s->zfixed);
    if (st == MMGAN_OK) st = mmgan_batcher_save(s->batches, ck, "batcher");
    if (st == MMGAN_OK) st = mmgan_ckpt_put(ck, "magan.margin", 1, (const int[]){1}, &s->magan->margin);
    for (i = 0; h && i < s->epoch; i++) {
        h[3 * i] = (float)s->hist_r[i]; h[3 * i + 1] = (float)s->hist_f[i]; h[3 * i + 2] = (float)s->hist_m[i];
    }
    if (st == MMGAN_OK && s->epoch) st = mmgan_ckpt_put(ck, "curves", 2, (const int[]){s->epoch, 3}, h);
    snprintf(v, sizeof v, "%d", s->epoch);
    if (st == MMGAN_OK) st = mmgan_ckpt_put_meta(ck, "epoch", v);
    if (st == MMGAN_OK) st = mmgan_ckpt_put_meta(ck, "model", MAGAN_MODEL);
    /* %a: the previous epoch's fake energy, a double, exactly. */
    snprintf(v, sizeof v, "%a", s->magan->prev_g);
    if (st == MMGAN_OK) st = mmgan_ckpt_put_meta(ck, "magan.prev_g", v);
    snprintf(v, sizeof v, "%d %d", s->magan->epoch, s->magan->strict);
    if (st == MMGAN_OK) st = mmgan_ckpt_put_meta(ck, "magan.epoch_strict", v);
    if (st == MMGAN_OK) st = mmgan_ckpt_save(ck, path);
    mmgan_ckpt_free(ck);
    free(h);
    return st;
}

/* Whether every weight of both networks is finite. */
static int finite_params(const net *d, const net *g)
{
    int i;
    size_t j;
    for (i = 0; i < 12; i++) {
        const mmgan_tensor *t = mmgan_param_tensor(i < 6 ? d->p[i] : g->p[i - 6]);
        for (j = 0; j < t->numel; j++)
            if (!isfinite(t->data[j])) return 0;
    }
    return 1;
}

/* An integer metadata field in [lo, hi], whole ("1junk" is not 1). */
static int meta_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    if (!v || !*v) return 0;
    errno = 0;
    *out = strtol(v, &end, 10);
    return !*end && errno != ERANGE && *out >= lo && *out <= hi;
}

static mmgan_status load_state(mmgan_ctx *ctx, state *s, const char *path, int max_epochs, int strict_opt)
{
    mmgan_ckpt *ck = mmgan_ckpt_load(ctx, path);
    const float *f;
    const char *m;
    char *end;
    long ep, me, strict;
    int i;
    if (!ck) {
        fprintf(stderr, "magan_mnist: %s\n", mmgan_ctx_error(ctx));
        return MMGAN_ERR_FORMAT;
    }
    if (!(m = mmgan_ckpt_get_meta(ck, "model")) || strcmp(m, MAGAN_MODEL)) {
        fprintf(stderr, "magan_mnist: %s is not a magan_mnist checkpoint (model '%s', expected '%s')\n", path,
                m ? m : "missing", MAGAN_MODEL);
        mmgan_ckpt_free(ck);
        return MMGAN_ERR_FORMAT;
    }
    for (i = 0; i < 6; i++)
        if (mmgan_ckpt_get_param(ck, s->D->p[i]) != MMGAN_OK || mmgan_ckpt_get_param(ck, s->G->p[i]) != MMGAN_OK) goto bad;
    if (mmgan_opt_load(s->dopt, ck, "D.adamax") != MMGAN_OK || mmgan_opt_load(s->gopt, ck, "G.adamax") != MMGAN_OK ||
        mmgan_rng_load(s->rng, ck, "rng.data") != MMGAN_OK || mmgan_rng_load(s->zrng, ck, "rng.z") != MMGAN_OK)
        goto bad;
    if (!(f = mmgan_ckpt_get(ck, "z_fixed", 2, (const int[]){BATCH, NZ}))) goto bad;
    memcpy(s->zfixed, f, sizeof(float) * BATCH * NZ);
    if (mmgan_batcher_load(s->batches, ck, "batcher") != MMGAN_OK) goto bad;
    if (!finite_params(s->D, s->G)) {
        fprintf(stderr, "magan_mnist: %s holds weights that are not finite (did training diverge?)\n", path);
        mmgan_ckpt_free(ck);
        return MMGAN_ERR_FORMAT;
    }
    if (!(f = mmgan_ckpt_get(ck, "magan.margin", 1, (const int[]){1})) || !(f[0] >= 0.0f) || !isfinite(f[0])) goto bad;
    s->magan->margin = f[0];
    if (!meta_long(mmgan_ckpt_get_meta(ck, "epoch"), 0, 1000000, &ep)) goto bad;
    s->epoch = (int)ep;
    if (s->epoch > max_epochs) {
        fprintf(stderr, "magan_mnist: %s is at epoch %d, beyond --epochs %d\n", path, s->epoch, max_epochs);
        mmgan_ckpt_free(ck);
        return MMGAN_ERR_INVALID;
    }
    /* E_G of the previous epoch: a number, or infinity before the first */
    if (!(m = mmgan_ckpt_get_meta(ck, "magan.prev_g")) || !*m) goto bad;
    s->magan->prev_g = strtod(m, &end);
    if (*end || s->magan->prev_g != s->magan->prev_g || s->magan->prev_g == -HUGE_VAL) goto bad;
    {   /* "EPOCH STRICT": two whole numbers, one space apart */
        char first[24];
        const char *sp = (m = mmgan_ckpt_get_meta(ck, "magan.epoch_strict")) ? strchr(m, ' ') : NULL;
        if (!sp || sp - m >= (long)sizeof first) goto bad;
        memcpy(first, m, (size_t)(sp - m));
        first[sp - m] = '\0';
        if (!meta_long(first, 0, 1000000, &me) || !meta_long(sp + 1, 0, 1, &strict)) goto bad;
    }
    s->magan->epoch = (int)me;
    if (strict != strict_opt) {
        fprintf(stderr, "magan_mnist: %s was trained %s --strict; resume it the same way\n", path,
                strict ? "with" : "without");
        mmgan_ckpt_free(ck);
        return MMGAN_ERR_INVALID;
    }
    if (s->epoch) {
        if (!(f = mmgan_ckpt_get(ck, "curves", 2, (const int[]){s->epoch, 3}))) goto bad;
        for (i = 0; i < s->epoch; i++) { s->hist_r[i] = f[3 * i]; s->hist_f[i] = f[3 * i + 1]; s->hist_m[i] = f[3 * i + 2]; }
    }
    mmgan_ckpt_free(ck);
    return MMGAN_OK;
bad:
    if (strstr(mmgan_ctx_error(ctx), "checkpoint")) fprintf(stderr, "magan_mnist: %s\n", mmgan_ctx_error(ctx));
    else fprintf(stderr, "magan_mnist: %s: incomplete or inconsistent state\n", path);
    mmgan_ckpt_free(ck);
    return MMGAN_ERR_FORMAT;
}

#define TRY(x) do { if ((x) != MMGAN_OK) { fprintf(stderr, "magan_mnist: %s\n", mmgan_ctx_error(ctx)); return 1; } } while (0)

int main(int argc, char **argv)
{
    opts o;
    mmgan_ctx *ctx;
    mmgan_rng rng, zrng;
    mmgan_dataset ds;
    mmgan_batcher batches;
    mmgan_magan magan;
    net D = {{0}, 0}, G = {{0}, 0};
    mmgan_graph *g;
    mmgan_node x, z, zfix, fake, fake_d, e_real, e_fake, e_fake_g, dgrad[6], ggrad[6], dpn[6], gpn[6], margin, pre_loss, pre_grad[6], samples;
    mmgan_loss ld;
    mmgan_plan *pre, *dstep, *gstep, *sample;
    mmgan_optimizer *dopt, *gopt;
    mmgan_opt_spec spec;
    float *xb, *zfixed;
    double *hist_r, *hist_f, *hist_m, t0;
    int steps, epoch, i, t, start = 0;
    state st;
    char path[1024];
    const int sz[4] = {BATCH, NZ, 1, 1}, xs[4] = {BATCH, 1, 28, 28};

    if (!parse(argc, argv, &o)) return 2;
#ifdef HAVE_MKDIR
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {   /* before training, not at the first save */
        fprintf(stderr, "magan_mnist: cannot make the directory '%s': %s\n", o.out, strerror(errno));
        return 1;
    }
#endif
    ctx = mmgan_ctx_new(NULL);
    if (!ctx) return 1;
    if (o.threads) mmgan_ctx_set_threads(ctx, o.threads);
    mmgan_rng_seed(&rng, o.seed, 1);
    mmgan_rng_seed(&zrng, o.seed, 2);
    TRY(mmgan_mnist_load(ctx, o.data, NULL, 0.0f, 1.0f, &ds));   /* [0, 1], as the paper's sigmoid outputs */
    if (ds.h != 28 || ds.w != 28) { fprintf(stderr, "magan_mnist: %s holds %dx%d images, not 28x28\n", o.data, ds.h, ds.w); return 1; }
    TRY(mmgan_batcher_init(ctx, &batches, &ds, BATCH, &rng));
    steps = ds.n / BATCH;

    /* He-normal before relu, Xavier-uniform elsewhere, zero biases: the
     * initialization of the reference code. */
    add(ctx, &D, "D.fc1.weight", 2, (const int[]){256, 784}, MMGAN_INIT_HE_NORMAL, 0, &rng);
    add(ctx, &D, "D.fc1.bias", 1, (const int[]){256}, MMGAN_INIT_ZEROS, 0, &rng);
    add(ctx, &D, "D.fc2.weight", 2, (const int[]){256, 256}, MMGAN_INIT_HE_NORMAL, 0, &rng);
    add(ctx, &D, "D.fc2.bias", 1, (const int[]){256}, MMGAN_INIT_ZEROS, 0, &rng);
    add(ctx, &D, "D.fc3.weight", 2, (const int[]){784, 256}, MMGAN_INIT_XAVIER_UNIFORM, 1, &rng);
    add(ctx, &D, "D.fc3.bias", 1, (const int[]){784}, MMGAN_INIT_ZEROS, 0, &rng);
    for (i = 0; i < MAGAN_NG; i++)
        add(ctx, &G, MAGAN_GDEF[i].name, MAGAN_GDEF[i].ndim, MAGAN_GDEF[i].shape, MAGAN_GDEF[i].init, MAGAN_GDEF[i].a, &rng);
    for (i = 0; i < 6; i++) if (!D.p[i] || !G.p[i]) { fprintf(stderr, "magan_mnist: %s\n", mmgan_ctx_error(ctx)); return 1; }

    /* One graph, four plans: pre-training, the D step, the G step, samples. */
    mmgan_magan_init(&magan, o.strict);
    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 4, xs);
    z = mmgan_random_normal(g, &zrng, 4, sz, 0.0f, 1.0f);
    zfix = mmgan_input(g, "z_fixed", 4, sz);
    e_real = mmgan_energy(g, x, critic(g, &D, x, NULL), MMGAN_ENERGY_SSE);
    fake = mmgan_detach(g, magan_generator(g, G.p, z));     /* D step: G's output is data */
    e_fake = mmgan_energy(g, fake, critic(g, &D, fake, NULL), MMGAN_ENERGY_SSE);
    margin = mmgan_magan_margin(g, &magan);
    mmgan_ebgan_loss_d(g, e_real, e_fake, margin, &ld);
    fake_d = magan_generator(g, G.p, mmgan_random_normal(g, &zrng, 4, sz, 0.0f, 1.0f));
    e_fake_g = mmgan_energy(g, fake_d, critic(g, &D, fake_d, NULL), MMGAN_ENERGY_SSE);
    for (i = 0; i < 6; i++) { dpn[i] = mmgan_parameter(g, D.p[i]); gpn[i] = mmgan_parameter(g, G.p[i]); }
    pre_loss = mmgan_mean(g, e_real);
    mmgan_grad(g, pre_loss, 6, dpn, pre_grad);
    mmgan_grad(g, ld.total, 6, dpn, dgrad);
    mmgan_grad(g, mmgan_mean(g, e_fake_g), 6, gpn, ggrad);
    samples = magan_generator(g, G.p, zfix);
    TRY(mmgan_graph_status(g));
    {
        mmgan_node t1[7], t2[8], t3[7];
        t1[0] = e_real; t2[0] = e_real; t2[1] = e_fake; t3[0] = e_fake_g;
        for (i = 0; i < 6; i++) { t1[i + 1] = pre_grad[i]; t2[i + 2] = dgrad[i]; t3[i + 1] = ggrad[i]; }
        pre = mmgan_plan_new(g, 7, t1);
        dstep = mmgan_plan_new(g, 8, t2);
        gstep = mmgan_plan_new(g, 7, t3);
        sample = mmgan_plan_new(g, 1, &samples);
        if (!pre || !dstep || !gstep || !sample) { fprintf(stderr, "magan_mnist: %s\n", mmgan_ctx_error(ctx)); return 1; }
    }
    spec = mmgan_opt_default(MMGAN_OPT_ADAMAX);
    spec.lr = o.lr;
    spec.beta1 = 0.5f;
    spec.bias_correction = !o.reference_adamax;
    dopt = mmgan_opt_new(ctx, &spec, 6, D.p);
    gopt = mmgan_opt_new(ctx, &spec, 6, G.p);
    if (!dopt || !gopt) { fprintf(stderr, "magan_mnist: %s\n", mmgan_ctx_error(ctx)); return 1; }

    xb = (float *)malloc(sizeof(float) * BATCH * 784);
    zfixed = (float *)malloc(sizeof(float) * BATCH * NZ);
    hist_r = (double *)calloc((size_t)o.epochs, sizeof(double));
    hist_f = (double *)calloc((size_t)o.epochs, sizeof(double));
    hist_m = (double *)calloc((size_t)o.epochs, sizeof(double));
    if (!xb || !zfixed || !hist_r || !hist_f || !hist_m) return 1;
    mmgan_rng_fill_normal(&zrng, zfixed, BATCH * NZ, 0.0f, 1.0f);
    st.D = &D; st.G = &G; st.dopt = dopt; st.gopt = gopt; st.rng = &rng; st.zrng = &zrng;
    st.batches = &batches; st.magan = &magan; st.zfixed = zfixed; st.epoch = 0;
    st.hist_r = hist_r; st.hist_f = hist_f; st.hist_m = hist_m;

    TRY(mmgan_graph_feed(g, x, xb));
    TRY(mmgan_graph_feed(g, zfix, zfixed));
    printf("MAGAN on %d images (%s), %d steps per epoch, %s kernels, %d threads\n", ds.n, o.data, steps, mmgan_isa(),
           mmgan_ctx_threads(ctx));

    t0 = now();
    if (o.resume) {
        if (load_state(ctx, &st, o.resume, o.epochs, o.strict) != MMGAN_OK) return 1;   /* it said why */
        start = st.epoch;
        if (start >= o.epochs) {   /* its samples and curves were written when it got there */
            printf("nothing to do: %s is at epoch %d, --epochs is %d\n", o.resume, start, o.epochs);
            return 0;
        }
        printf("resumed from %s after epoch %d, margin %.3f\n", o.resume, start, magan.margin);
    }
    /* Algorithm 1, lines 1-9: two epochs as an auto-encoder (margin 0), then
     * the mean real energy over one more pass sets the first margin (the
     * authors' code uses a separate pass without training for it). */
    if (!o.resume) {
        for (epoch = 0; epoch < 2; epoch++)
            for (t = 0; t < steps; t++) {
                mmgan_batcher_next(&batches, xb, NULL);
                TRY(mmgan_plan_run(pre));
                TRY(mmgan_opt_step_plan(dopt, pre, pre_grad));
            }
        for (t = 0; t < steps; t++) {
            mmgan_batcher_next(&batches, xb, NULL);
            TRY(mmgan_plan_run(pre));
            mmgan_magan_observe_real(&magan, mmgan_vec_sum(BATCH, mmgan_plan_value(pre, e_real)), BATCH);
        }
        TRY(mmgan_magan_start(&magan));
        if (o.fixed) magan.margin = o.fixed_margin;
        printf("pre-training: %.1f s, initial margin %.3f%s\n", now() - t0, magan.margin,
               o.fixed ? " (fixed: EBGAN)" : "");
        if (!isfinite(magan.margin)) {
            fprintf(stderr, "magan_mnist: pre-training diverged (initial margin %g); try a smaller --lr\n", magan.margin);
            return 1;
        }
    }

    for (epoch = start; epoch < o.epochs; epoch++) {
        double er = 0, ef = 0, te = now();
        int updated;
        for (t = 0; t < steps; t++) {
            mmgan_batcher_next(&batches, xb, NULL);
            TRY(mmgan_plan_run(dstep));     /* lines 13-17: D step */
            mmgan_magan_observe_real(&magan, mmgan_vec_sum(BATCH, mmgan_plan_value(dstep, e_real)), BATCH);
            TRY(mmgan_opt_step_plan(dopt, dstep, dgrad));
            TRY(mmgan_plan_run(gstep));     /* lines 18-21: G step */
            mmgan_magan_observe_fake(&magan, mmgan_vec_sum(BATCH, mmgan_plan_value(gstep, e_fake_g)), BATCH);
            TRY(mmgan_opt_step_plan(gopt, gstep, ggrad));
            if ((t + 1) % 20 == 0 || t + 1 == steps) {
                double el = now() - te, rate = (t + 1) / el;
                printf("\repoch %d/%d  step %d/%d  %.1f it/s  E real %.2f  E fake %.2f  margin %.2f  ETA %.0f s   ",
                       epoch + 1, o.epochs, t + 1, steps, rate, magan.sum_data / magan.n_data, magan.sum_g / magan.n_g,
                       magan.margin, ((double)(o.epochs - epoch) * steps - (t + 1)) / rate);
                fflush(stdout);
            }
        }
        er = magan.sum_data / magan.n_data;
        ef = magan.sum_g / magan.n_g;
        /* Line 23: the margin update at the end of the epoch. */
        updated = o.fixed ? (mmgan_magan_end_epoch(&magan), magan.margin = o.fixed_margin, 0)
                          : mmgan_magan_end_epoch(&magan);
        hist_r[epoch] = er; hist_f[epoch] = ef; hist_m[epoch] = magan.margin;
        printf("\repoch %d/%d  E real %.3f  E fake %.3f  margin %.3f%s  (%.1f s)                        \n", epoch + 1,
               o.epochs, er, ef, magan.margin, updated ? " (updated)" : "", now() - te);
        if (!isfinite(er) || !isfinite(ef) || !isfinite(magan.margin) || !finite_params(&D, &G)) {
            /* a checkpoint of NaNs would replace the last good one */
            fprintf(stderr, "magan_mnist: training diverged in epoch %d; %s/magan.safetensors (if any) is kept from "
                            "before it (try a smaller --lr)\n", epoch + 1, o.out);
            return 1;
        }
        TRY(mmgan_plan_run(sample));
        snprintf(path, sizeof path, "%s/samples_%03d.png", o.out, epoch + 1);
        TRY(mmgan_save_grid_png(ctx, path, mmgan_plan_value(sample, samples), BATCH, 1, 28, 28, 8, 0.0f, 1.0f));
        snprintf(path, sizeof path, "%s/energy.svg", o.out);
        {
            const char *labels[3] = {"E real", "E fake", "margin"};
            const double *ys[3];
            ys[0] = hist_r; ys[1] = hist_f; ys[2] = hist_m;
            TRY(mmgan_svg_curves(ctx, path, "MAGAN on MNIST: mean energies and margin", "epoch", 3, labels, ys, epoch + 1));
        }
        st.epoch = epoch + 1;
        snprintf(path, sizeof path, "%s/magan.safetensors", o.out);
        TRY(save_state(ctx, &st, path));
    }
    snprintf(path, sizeof path, "%s/samples.png", o.out);
    TRY(mmgan_save_grid_png(ctx, path, mmgan_plan_value(sample, samples), BATCH, 1, 28, 28, 8, 0.0f, 1.0f));
    printf("done in %.1f s: %s, %s/energy.svg\n", now() - t0, path, o.out);

    mmgan_plan_free(pre); mmgan_plan_free(dstep); mmgan_plan_free(gstep); mmgan_plan_free(sample);
    mmgan_opt_free(dopt); mmgan_opt_free(gopt);
    mmgan_graph_free(g);
    for (i = 0; i < 6; i++) { mmgan_param_free(D.p[i]); mmgan_param_free(G.p[i]); }
    mmgan_batcher_free(ctx, &batches);
    mmgan_dataset_free(ctx, &ds);
    free(xb); free(zfixed); free(hist_r); free(hist_f); free(hist_m);
    mmgan_ctx_free(ctx);
    return 0;
}
