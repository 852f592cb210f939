/* A small DCGAN on MNIST (or Fashion-MNIST, same IDX format) with any GAN loss
 * of mmgan.h and any gradient penalty, chosen on the command line.
 *
 *   cc -O2 -march=native -fopenmp examples/gan_mnist.c -lm -o gan_mnist
 *   ./gan_mnist                                          non-saturating SGAN
 *   ./gan_mnist --loss wgan --penalty interpolate        WGAN-GP
 *   ./gan_mnist --loss hinge --penalty interpolate --norm linf --shape hinge --lambda 20
 *                                                        the SVM-GAN paper's best
 *   ./gan_mnist --loss nsgan --penalty real --lambda 5   R1 (gamma 10)
 *   ./gan_mnist --resume out/gan.safetensors --iters 4000    continue a run
 *
 * G: z -> linear 128x7x7 -> BN -> relu -> deconv 64 -> BN -> relu -> deconv 1 -> tanh.
 * D: conv 64 -> lrelu -> conv 128 -> lrelu -> linear 1 (no batch norm: it would
 * mix the samples whose gradients a penalty measures).  Every --every
 * iterations: OUT/gan_ITER.png (64 samples from fixed noise) and
 * OUT/gan.safetensors, which holds everything a resumed run needs to continue
 * bit for bit: weights, batch-norm statistics, Adam moments, random
 * generators, the data order and position.  examples/sample.c draws from it. */
#define _POSIX_C_SOURCE 199309L  /* clock_gettime (and mkdir) under -std=c99 */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#define HAVE_MKDIR 1
#endif
#include "gan_mnist_model.h"

#define BATCH 64
#define NSAMPLE 64

static const char *const LOSSES[] = {"sgan", "nsgan", "lsgan", "hinge", "wgan", NULL};
static const char *const RELS[] = {"none", "average", "centred", "paired", "allpairs", NULL};
static const char *const PENALTIES[] = {"none", "interpolate", "real", "fake", "dragan", NULL};
static const char *const NORMS[] = {"l2", "l1", "linf", "smoothmax", "signedmax", NULL};
static const char *const SHAPES[] = {"squared", "hinge", "onesided", "abs", NULL};

typedef struct opts {
    const char *data, *out, *resume;
    int loss, rel, penalty, norm, shape, center_set, n_critic, iters, every, threads, nz;
    float center, lambda, clip, lr, beta1, beta2;
    unsigned long seed;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gan_mnist [options]\n"
            "  --data PATH       MNIST-style images, IDX, .gz or not (default data/mnist/t10k-images-idx3-ubyte.gz)\n"
            "  --loss L          sgan (saturating) | nsgan (non-saturating, default) | lsgan | hinge | wgan\n"
            "  --rel R           relativistic form: none (default) | average | centred | paired | allpairs\n"
            "  --penalty P       gradient penalty points: none (default) | interpolate | real (R1) | fake (R2) | dragan\n"
            "  --norm N          penalty norm: l2 (default) | l1 | linf | smoothmax | signedmax\n"
            "  --shape S         penalty shape: squared (default) | hinge | onesided | abs\n"
            "  --center X        penalty centre (default 1; 0 for real and fake)\n"
            "  --lambda X        penalty weight (default 10)\n"
            "  --clip X          clip D's weights to [-X, X] after each D step (WGAN; default 0: off)\n"
            "  --lr X            Adam learning rate (default 2e-4)\n"
            "  --beta1 X, --beta2 X   Adam betas (default 0.5, 0.999)\n"
            "  --n-critic N      D steps per G step (default 1)\n"
            "  --nz N            latent size (default 64; --resume takes the checkpoint's)\n"
            "  --iters N         G steps to train to (default 2000; with --resume, the total)\n"
            "  --every N         sample grid and checkpoint every N iterations (default 250)\n"
            "  --seed N          random seed (default 1)\n"
            "  --threads N       OpenMP threads (default: all)\n"
            "  --out DIR         where gan_ITER.png and gan.safetensors go (default out; created if missing)\n"
            "  --resume PATH     continue from a checkpoint of this program\n"
            "  --help            this text\n");
}

static int pick(const char *v, const char *const *names)
{
    int i;
    for (i = 0; names[i]; i++)
        if (!strcmp(v, names[i])) return i;
    return -1;
}

static int parse(int argc, char **argv, opts *o)
{
    static const char *const valued[] = {"--data", "--out", "--resume", "--loss", "--rel", "--penalty", "--norm",
        "--shape", "--center", "--lambda", "--clip", "--lr", "--beta1", "--beta2", "--n-critic", "--nz", "--iters",
        "--every", "--seed", "--threads", NULL};
    int i;
    memset(o, 0, sizeof *o);
    o->data = "data/mnist/t10k-images-idx3-ubyte.gz";
    o->out = "out";
    o->loss = 1; o->norm = 0; o->shape = 0; o->center = 1.0f; o->lambda = 10.0f;
    o->lr = 2e-4f; o->beta1 = 0.5f; o->beta2 = 0.999f;
    o->n_critic = 1; o->nz = 64; o->iters = 2000; o->every = 250; o->seed = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        int k = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        if (pick(a, valued) < 0) { fprintf(stderr, "gan_mnist: unknown option %s (try --help)\n", a); return 0; }
        if (!v) { fprintf(stderr, "gan_mnist: %s needs a value\n", a); return 0; }
        i++;
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--resume")) o->resume = v;
        else if (!strcmp(a, "--loss")) k = (o->loss = pick(v, LOSSES)) < 0;
        else if (!strcmp(a, "--rel")) k = (o->rel = pick(v, RELS)) < 0;
        else if (!strcmp(a, "--penalty")) k = (o->penalty = pick(v, PENALTIES)) < 0;
        else if (!strcmp(a, "--norm")) k = (o->norm = pick(v, NORMS)) < 0;
        else if (!strcmp(a, "--shape")) k = (o->shape = pick(v, SHAPES)) < 0;
        else if (!strcmp(a, "--center")) { o->center = strtof(v, &end); o->center_set = 1; }
        else if (!strcmp(a, "--lambda")) o->lambda = strtof(v, &end);
        else if (!strcmp(a, "--clip")) o->clip = strtof(v, &end);
        else if (!strcmp(a, "--lr")) o->lr = strtof(v, &end);
        else if (!strcmp(a, "--beta1")) o->beta1 = strtof(v, &end);
        else if (!strcmp(a, "--beta2")) o->beta2 = strtof(v, &end);
        else if (!strcmp(a, "--seed")) {
            errno = 0;
            o->seed = strtoul(v, &end, 10);
            if (errno == ERANGE) end = (char *)v;   /* past 2^64: refused below, not saturated */
        }
        else {
            long n = strtol(v, &end, 10);
            int *dst = !strcmp(a, "--n-critic") ? &o->n_critic : !strcmp(a, "--nz") ? &o->nz
                     : !strcmp(a, "--iters") ? &o->iters : !strcmp(a, "--every") ? &o->every : &o->threads;
            *dst = n < 0 || n > 100000000 ? -1 : (int)n;
        }
        if (k) {
            const char *const *names = !strcmp(a, "--loss") ? LOSSES : !strcmp(a, "--rel") ? RELS
                                     : !strcmp(a, "--penalty") ? PENALTIES : !strcmp(a, "--norm") ? NORMS : SHAPES;
            fprintf(stderr, "gan_mnist: unknown value '%s' for %s; one of:", v, a);
            for (k = 0; names[k]; k++) fprintf(stderr, " %s", names[k]);
            fprintf(stderr, "\n");
            return 0;
        }
        if (end && (end == v || *end || (*v == '-' && !strcmp(a, "--seed")))) {
            fprintf(stderr, "gan_mnist: bad value '%s' for %s\n", v, a);
            return 0;
        }
    }
    if (!o->center_set && (o->penalty == 2 || o->penalty == 3)) o->center = 0.0f;   /* R1, R2 */
    if (o->iters < 1 || o->every < 1 || o->n_critic < 1 || o->nz < 1 || o->nz > 4096 || o->threads < 0 ||
        !(o->lr > 0 && o->lr < 1) || !(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) ||
        !(o->lambda >= 0 && o->lambda < 1e6f) || !(o->clip >= 0 && o->clip < 1e6f) || !(fabsf(o->center) < 1e6f)) {
        fprintf(stderr, "gan_mnist: need --iters, --every, --n-critic >= 1, --nz 1 to 4096, --threads >= 0, "
                        "--lr in (0, 1), betas in [0, 1), --lambda, --clip >= 0 (and finite)\n");
        return 0;
    }
    return 1;
}

enum { D_C1_W, D_C1_B, D_C2_W, D_C2_B, D_FC_W, D_FC_B, ND };
static const pdef DDEF[ND] = {
    {"D.conv1.weight", 4, {64, 1, 4, 4}, MMGAN_INIT_NORMAL, 0.02f}, {"D.conv1.bias", 1, {64}, MMGAN_INIT_ZEROS, 0},
    {"D.conv2.weight", 4, {128, 64, 4, 4}, MMGAN_INIT_NORMAL, 0.02f}, {"D.conv2.bias", 1, {128}, MMGAN_INIT_ZEROS, 0},
    {"D.fc.weight", 2, {1, FEAT}, MMGAN_INIT_NORMAL, 0.02f}, {"D.fc.bias", 1, {1}, MMGAN_INIT_ZEROS, 0}};
/* The trained ones, in optimizer order. */
static const int GTRAIN[] = {G_FC_W, G_BN0_W, G_BN0_B, G_DC1_W, G_BN1_W, G_BN1_B, G_DC2_W, G_DC2_B};
#define NGT ((int)(sizeof GTRAIN / sizeof GTRAIN[0]))

static int make_params(mmgan_ctx *ctx, const pdef *def, int n, int nz, mmgan_rng *rng, mmgan_param **p)
{
    int i, shape[4];
    for (i = 0; i < n; i++) {
        memcpy(shape, def[i].shape, sizeof shape);
        if (def[i].ndim == 2 && shape[1] == 0) shape[1] = nz;
        p[i] = mmgan_param_new(ctx, def[i].name, def[i].ndim, shape);
        if (!p[i] || mmgan_param_init(p[i], def[i].init, def[i].a, rng) != MMGAN_OK) return 0;
    }
    return 1;
}

/* The critic, as the builder that mmgan_gradient_penalty applies to its points. */
static mmgan_node critic(mmgan_graph *g, mmgan_node x, void *user)
{
    mmgan_param **p = (mmgan_param **)user;
    mmgan_node h = mmgan_conv2d(g, x, mmgan_parameter(g, p[D_C1_W]), 2, 1);   /* 14x14 */
    h = mmgan_leaky_relu(g, mmgan_bias_add(g, h, mmgan_parameter(g, p[D_C1_B])), 0.2f);
    h = mmgan_conv2d(g, h, mmgan_parameter(g, p[D_C2_W]), 2, 1);              /* 7x7 */
    h = mmgan_leaky_relu(g, mmgan_bias_add(g, h, mmgan_parameter(g, p[D_C2_B])), 0.2f);
    return mmgan_linear(g, mmgan_flatten(g, h), mmgan_parameter(g, p[D_FC_W]), mmgan_parameter(g, p[D_FC_B]));
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Everything training depends on, so that a run can be resumed exactly. */
typedef struct state {
    mmgan_param *G[NG], *D[ND];
    mmgan_optimizer *gopt, *dopt;
    mmgan_rng data_rng, z_rng, gp_rng;
    mmgan_batcher *batches;
    float *zfixed;
    int nz, iter;
    char config[256];
    uint32_t data_hash;
} state;

static mmgan_status save(mmgan_ctx *ctx, state *s, const char *path)
{
    mmgan_ckpt *ck = mmgan_ckpt_new(ctx);
    mmgan_status st = ck ? MMGAN_OK : MMGAN_ERR_NOMEM;
    char v[64];
    int i, zs[2] = {NSAMPLE, 0};
    zs[1] = s->nz;
    for (i = 0; i < NG && st == MMGAN_OK; i++) st = mmgan_ckpt_put_param(ck, s->G[i]);
    for (i = 0; i < ND && st == MMGAN_OK; i++) st = mmgan_ckpt_put_param(ck, s->D[i]);
    if (st == MMGAN_OK) st = mmgan_opt_save(s->gopt, ck, "opt.G");
    if (st == MMGAN_OK) st = mmgan_opt_save(s->dopt, ck, "opt.D");
    if (st == MMGAN_OK) st = mmgan_rng_save(&s->data_rng, ck, "rng.data");
    if (st == MMGAN_OK) st = mmgan_rng_save(&s->z_rng, ck, "rng.z");
    if (st == MMGAN_OK) st = mmgan_rng_save(&s->gp_rng, ck, "rng.gp");
    if (st == MMGAN_OK) st = mmgan_batcher_save(s->batches, ck, "data");
    if (st == MMGAN_OK) st = mmgan_ckpt_put(ck, "sample.z", 2, zs, s->zfixed);
    if (st == MMGAN_OK) st = mmgan_ckpt_put_meta(ck, "model", MODEL);
    if (st == MMGAN_OK) st = mmgan_ckpt_put_meta(ck, "config", s->config);
#define META(key, fmt, val) if (st == MMGAN_OK) { snprintf(v, sizeof v, fmt, val); st = mmgan_ckpt_put_meta(ck, key, v); }
    META("nz", "%d", s->nz)
    META("iteration", "%d", s->iter)
    META("data.hash", "%08lx", (unsigned long)s->data_hash)
    if (st == MMGAN_OK) st = mmgan_ckpt_save(ck, path);
    mmgan_ckpt_free(ck);
    return st;
}

/* Reads an integer metadata field in [lo, hi]; 0 and a message if absent or bad. */
static int meta_int(mmgan_ckpt *ck, const char *path, const char *key, long lo, long hi, long *out)
{
    const char *v = mmgan_ckpt_get_meta(ck, key);
    char *end;
    if (v && *v) {
        *out = strtol(v, &end, 10);
        if (!*end && *out >= lo && *out <= hi) return 1;
    }
    fprintf(stderr, "gan_mnist: %s: metadata '%s' is %s (expected an integer %ld to %ld)\n", path, key,
            v ? v : "missing", lo, hi);
    return 0;
}

/* Restores a checkpoint written by save() into s (same nz and dataset size). */
static int load(mmgan_ctx *ctx, state *s, mmgan_ckpt *ck, const char *path)
{
    int i, zs[2] = {NSAMPLE, 0};
    long it;
    const float *z;
    const char *hash = mmgan_ckpt_get_meta(ck, "data.hash"), *cfg = mmgan_ckpt_get_meta(ck, "config");
    zs[1] = s->nz;
    for (i = 0; i < NG + ND; i++) {
        mmgan_param *p = i < NG ? s->G[i] : s->D[i - NG];
        mmgan_tensor *t = mmgan_param_tensor(p);
        size_t j;
        if (mmgan_ckpt_get_param(ck, p) != MMGAN_OK) goto fail;
        for (j = 0; j < t->numel; j++)
            if (!isfinite(t->data[j])) {
                fprintf(stderr, "gan_mnist: %s: %s[%lu] is %g (did training diverge?)\n", path, mmgan_param_name(p),
                        (unsigned long)j, t->data[j]);
                return 0;
            }
    }
    if (mmgan_opt_load(s->gopt, ck, "opt.G") != MMGAN_OK || mmgan_opt_load(s->dopt, ck, "opt.D") != MMGAN_OK ||
        mmgan_rng_load(&s->data_rng, ck, "rng.data") != MMGAN_OK || mmgan_rng_load(&s->z_rng, ck, "rng.z") != MMGAN_OK ||
        mmgan_rng_load(&s->gp_rng, ck, "rng.gp") != MMGAN_OK || !(z = mmgan_ckpt_get(ck, "sample.z", 2, zs)))
        goto fail;
    if (mmgan_batcher_load(s->batches, ck, "data") != MMGAN_OK) goto fail;
    if (!meta_int(ck, path, "iteration", 0, 100000000, &it)) return 0;
    memcpy(s->zfixed, z, sizeof(float) * NSAMPLE * s->nz);
    s->iter = (int)it;
    if (!hash || strtoul(hash, NULL, 16) != s->data_hash)
        fprintf(stderr, "gan_mnist: note: the data differs from the checkpoint's (hash %s, now %08lx)\n",
                hash ? hash : "missing", (unsigned long)s->data_hash);
    if (!cfg || strcmp(cfg, s->config))
        fprintf(stderr, "gan_mnist: note: options differ from the checkpoint's\n  checkpoint: %s\n  now:        %s\n",
                cfg ? cfg : "missing", s->config);
    return 1;
fail:
    fprintf(stderr, "gan_mnist: %s: %s\n", path, mmgan_ctx_error(ctx));
    return 0;
}

static const char *hms(double s, char *buf, size_t n)
{
    long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    return buf;
}

#define TRY(x) do { if ((x) != MMGAN_OK) { fprintf(stderr, "gan_mnist: %s\n", mmgan_ctx_error(ctx)); return 1; } } while (0)

int main(int argc, char **argv)
{
    opts o;
    state s;
    mmgan_ctx *ctx;
    mmgan_rng init_rng, fix_rng;
    mmgan_dataset ds;
    mmgan_batcher batches;
    mmgan_graph *g;
    mmgan_node x, z, zfix, fake, fake_d, d_real, d_fake, d_fake_g, d_obj, samples, pen = MMGAN_NONE;
    mmgan_node dpn[ND], gpn[NGT], dgrad[ND], ggrad[NGT], dtarget[ND + 3], gtarget[NGT + 1];
    mmgan_loss_spec ls;
    mmgan_gp_spec gs;
    mmgan_gp gp;
    mmgan_loss ld, lg;
    mmgan_plan *dplan, *gplan, *splan;
    mmgan_opt_spec spec;
    mmgan_param *gtrain[NGT];
    mmgan_ckpt *resume = NULL;
    float *xb;
    double t0;
    int i, k, start, ndt = 0, xs[4] = {BATCH, 1, 28, 28}, zs[2] = {BATCH, 0}, fs[2] = {NSAMPLE, 0};
    char path[1024], eta[32];

    if (!parse(argc, argv, &o)) return 2;
#ifdef HAVE_MKDIR
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {   /* before training, not at the first save */
        fprintf(stderr, "gan_mnist: cannot make the directory '%s': %s\n", o.out, strerror(errno));
        return 1;
    }
#endif
    ctx = mmgan_ctx_new(NULL);
    if (!ctx) return 1;
    if (o.threads) mmgan_ctx_set_threads(ctx, o.threads);
    memset(&s, 0, sizeof s);
    if (o.resume) {   /* read first: the checkpoint decides nz */
        long nz;
        const char *model;
        if (!(resume = mmgan_ckpt_load(ctx, o.resume))) { fprintf(stderr, "gan_mnist: %s\n", mmgan_ctx_error(ctx)); return 1; }
        model = mmgan_ckpt_get_meta(resume, "model");
        if (!model || strcmp(model, MODEL)) {
            fprintf(stderr, "gan_mnist: %s is not a gan_mnist checkpoint (model '%s', expected '%s')\n", o.resume,
                    model ? model : "missing", MODEL);
            return 1;
        }
        if (!meta_int(resume, o.resume, "nz", 1, 4096, &nz)) return 1;
        o.nz = (int)nz;
    }
    s.nz = zs[1] = fs[1] = o.nz;
    snprintf(s.config, sizeof s.config, "loss=%s rel=%s penalty=%s norm=%s shape=%s center=%g lambda=%g clip=%g "
             "lr=%g beta1=%g beta2=%g n_critic=%d", LOSSES[o.loss], RELS[o.rel], PENALTIES[o.penalty], NORMS[o.norm],
             SHAPES[o.shape], (double)o.center, (double)o.lambda, (double)o.clip, (double)o.lr, (double)o.beta1,
             (double)o.beta2, o.n_critic);
    mmgan_rng_seed(&init_rng, o.seed, 0);
    mmgan_rng_seed(&s.data_rng, o.seed, 1);
    mmgan_rng_seed(&s.z_rng, o.seed, 2);
    mmgan_rng_seed(&s.gp_rng, o.seed, 3);
    mmgan_rng_seed(&fix_rng, o.seed, 4);

    TRY(mmgan_mnist_load(ctx, o.data, NULL, -1.0f, 1.0f, &ds));
    if (ds.h != 28 || ds.w != 28 || ds.n < BATCH) {
        fprintf(stderr, "gan_mnist: %s holds %d images of %dx%d; need at least %d of 28x28\n", o.data, ds.n, ds.h, ds.w, BATCH);
        return 1;
    }
    s.data_hash = 2166136261u;
    for (i = 0; i < ds.n * 784; i++) {   /* a fingerprint of the data (FNV-1a over the float bits) */
        uint32_t bits;
        memcpy(&bits, &ds.images[i], 4);
        s.data_hash = (s.data_hash ^ bits) * 16777619u;
    }
    TRY(mmgan_batcher_init(ctx, &batches, &ds, BATCH, &s.data_rng));
    s.batches = &batches;
    if (!make_params(ctx, GDEF, NG, o.nz, &init_rng, s.G) || !make_params(ctx, DDEF, ND, o.nz, &init_rng, s.D)) {
        fprintf(stderr, "gan_mnist: %s\n", mmgan_ctx_error(ctx));
        return 1;
    }

    /* One graph, three plans: the D step, the G step and the fixed-noise samples. */
    ls = mmgan_loss_default(o.loss == 4 ? MMGAN_LOSS_WGAN : o.loss == 3 ? MMGAN_LOSS_HINGE
                            : o.loss == 2 ? MMGAN_LOSS_LSGAN : MMGAN_LOSS_SGAN, (mmgan_relativistic)o.rel);
    ls.saturating = o.loss == 0;
    g = mmgan_graph_new(ctx);
    x = mmgan_input(g, "x", 4, xs);
    z = mmgan_random_normal(g, &s.z_rng, 2, zs, 0.0f, 1.0f);
    zfix = mmgan_input(g, "z_fixed", 2, fs);
    fake = generator(g, s.G, z, 1);
    d_real = critic(g, x, s.D);
    fake_d = mmgan_detach(g, fake);              /* the D step: G's output is data */
    d_fake = critic(g, fake_d, s.D);
    mmgan_loss_d(g, &ls, d_real, d_fake, &ld);
    d_obj = ld.total;
    if (o.penalty) {
        gs = mmgan_gp_default();
        gs.points = (mmgan_gp_points)(o.penalty - 1);
        gs.norm = (mmgan_gp_norm)o.norm;
        gs.shape = (mmgan_gp_shape)o.shape;
        gs.center = o.center;
        gs.lambda = o.lambda;
        mmgan_gradient_penalty(g, &gs, x, fake_d, critic, s.D, &s.gp_rng, &gp);
        d_obj = mmgan_add(g, d_obj, pen = gp.penalty);
    }
    d_fake_g = critic(g, fake, s.D);   /* the G step: through G */
    mmgan_loss_g(g, &ls, d_real, d_fake_g, &lg);
    for (i = 0; i < ND; i++) dpn[i] = mmgan_parameter(g, s.D[i]);
    for (i = 0; i < NGT; i++) gpn[i] = mmgan_parameter(g, gtrain[i] = s.G[GTRAIN[i]]);
    mmgan_grad(g, d_obj, ND, dpn, dgrad);
    mmgan_grad(g, lg.total, NGT, gpn, ggrad);
    samples = generator(g, s.G, zfix, 0);   /* running statistics, as examples/sample.c */
    TRY(mmgan_graph_status(g));
    dtarget[ndt++] = ld.real; dtarget[ndt++] = ld.fake;
    if (pen != MMGAN_NONE) dtarget[ndt++] = pen;
    for (i = 0; i < ND; i++) dtarget[ndt++] = dgrad[i];
    gtarget[0] = lg.total;
    for (i = 0; i < NGT; i++) gtarget[i + 1] = ggrad[i];
    dplan = mmgan_plan_new(g, ndt, dtarget);
    gplan = mmgan_plan_new(g, NGT + 1, gtarget);
    splan = mmgan_plan_new(g, 1, &samples);
    if (!dplan || !gplan || !splan) { fprintf(stderr, "gan_mnist: %s\n", mmgan_ctx_error(ctx)); return 1; }
    spec = mmgan_opt_default(MMGAN_OPT_ADAM);
    spec.lr = o.lr; spec.beta1 = o.beta1; spec.beta2 = o.beta2;
    s.dopt = mmgan_opt_new(ctx, &spec, ND, s.D);
    s.gopt = mmgan_opt_new(ctx, &spec, NGT, gtrain);
    xb = (float *)malloc(sizeof(float) * BATCH * 784);
    s.zfixed = (float *)malloc(sizeof(float) * NSAMPLE * o.nz);
    if (!s.dopt || !s.gopt || !xb || !s.zfixed) { fprintf(stderr, "gan_mnist: out of memory\n"); return 1; }
    mmgan_rng_fill_normal(&fix_rng, s.zfixed, (size_t)NSAMPLE * o.nz, 0.0f, 1.0f);
    if (resume) {
        k = load(ctx, &s, resume, o.resume);
        mmgan_ckpt_free(resume);
        if (!k) return 1;
    }
    TRY(mmgan_graph_feed(g, x, xb));
    TRY(mmgan_graph_feed(g, zfix, s.zfixed));
    printf("DCGAN on %d images (%s), %s, %s kernels, %d threads%s\n", ds.n, o.data, s.config, mmgan_isa(),
           mmgan_ctx_threads(ctx), resume ? ", resumed" : "");
    /* The starting samples: checks that --out is writable before any training. */
    if (s.iter >= o.iters) {
        printf("nothing to do: the checkpoint is at iteration %d, --iters is %d\n", s.iter, o.iters);
        goto done;
    }
    TRY(mmgan_plan_run(splan));
    snprintf(path, sizeof path, "%s/gan_%06d.png", o.out, s.iter);
    if (mmgan_save_grid_png(ctx, path, mmgan_plan_value(splan, samples), NSAMPLE, 1, 28, 28, 8, -1.0f, 1.0f) != MMGAN_OK) {
        fprintf(stderr, "gan_mnist: %s (does the --out directory exist?)\n", mmgan_ctx_error(ctx));
        return 1;
    }

    t0 = now();
    start = s.iter;
    while (s.iter < o.iters) {
        for (k = 0; k < o.n_critic; k++) {   /* D steps: real batch, fake = detach(G(z)) */
            mmgan_batcher_next(&batches, xb, NULL);
            TRY(mmgan_plan_run(dplan));
            TRY(mmgan_opt_step_plan(s.dopt, dplan, dgrad));
            if (o.clip > 0) for (i = 0; i < ND; i++) mmgan_param_clip(s.D[i], o.clip);
        }
        if (o.rel) mmgan_batcher_next(&batches, xb, NULL);   /* fresh reals for the relativistic G side */
        TRY(mmgan_plan_run(gplan));
        TRY(mmgan_opt_step_plan(s.gopt, gplan, ggrad));
        s.iter++;
        {
            float dr = mmgan_plan_value(dplan, ld.real)[0], df = mmgan_plan_value(dplan, ld.fake)[0];
            float gl = mmgan_plan_value(gplan, lg.total)[0], pv = pen != MMGAN_NONE ? mmgan_plan_value(dplan, pen)[0] : 0;
            int last = s.iter % o.every == 0 || s.iter == o.iters;
            if (!isfinite(dr) || !isfinite(df) || !isfinite(gl) || !isfinite(pv)) {
                fprintf(stderr, "\ngan_mnist: training diverged at iteration %d (D %g + %g, G %g, penalty %g)\n",
                        s.iter, dr, df, gl, pv);
                return 1;
            }
            if (s.iter % 10 == 0 || last) {
                double el = now() - t0, rate = (s.iter - start) / (el > 0 ? el : 1e-9);
                printf("\rit %d/%d  %.3g it/s  D %.4f (real %.4f fake %.4f)  G %.4f  penalty %.4f  ETA %s   ",
                       s.iter, o.iters, rate, dr + df, dr, df, gl, pv, hms((o.iters - s.iter) / rate, eta, sizeof eta));
                fflush(stdout);
            }
            if (last) {
                TRY(mmgan_plan_run(splan));
                snprintf(path, sizeof path, "%s/gan_%06d.png", o.out, s.iter);
                TRY(mmgan_save_grid_png(ctx, path, mmgan_plan_value(splan, samples), NSAMPLE, 1, 28, 28, 8, -1.0f, 1.0f));
                snprintf(path, sizeof path, "%s/gan.safetensors", o.out);
                TRY(save(ctx, &s, path));
                printf("\n");
            }
        }
    }
    printf("done in %s: %s/gan_%06d.png, %s/gan.safetensors\n", hms(now() - t0, eta, sizeof eta), o.out, s.iter, o.out);
done:
    mmgan_plan_free(dplan); mmgan_plan_free(gplan); mmgan_plan_free(splan);
    mmgan_opt_free(s.dopt); mmgan_opt_free(s.gopt);
    mmgan_graph_free(g);
    for (i = 0; i < NG; i++) mmgan_param_free(s.G[i]);
    for (i = 0; i < ND; i++) mmgan_param_free(s.D[i]);
    mmgan_batcher_free(ctx, &batches);
    mmgan_dataset_free(ctx, &ds);
    free(xb); free(s.zfixed);
    mmgan_ctx_free(ctx);
    return 0;
}
