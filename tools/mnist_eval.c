/* mnist_eval: scores MNIST samples with the evaluation kit's classifier.
 *
 *   make build/mnist_eval
 *   ./build/mnist_eval --ckpt out/magan.safetensors          (50,000 samples)
 *   ./build/mnist_eval --samples my-digits-idx3-ubyte.gz     (a file of images)
 *
 * The samples come from a generator checkpoint of examples/magan_mnist.c or
 * examples/gan_mnist.c (recognized by their tensors and model tag; batch norm
 * in evaluation mode) or from an IDX file of 28x28 images.  Reported, for
 * the samples and for the real test set (the ceiling):
 *   - the classifier score: exp(E KL(p(y|x) || p(y))), 10 splits, mean +- std
 *     (the MAGAN paper's Inception Score with an MNIST classifier);
 *   - the class histogram (the classifier's argmax), classes covered, and
 *     its KL divergence to the uniform distribution;
 *   - the Frechet distance between the classifier's 128 penultimate
 *     features of the samples and of the test set.
 * A readable table on stdout; --keys PATH writes one "key value" line per
 * figure (PATH "-": stdout, and no table). */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mnist_classifier.h"
#include "../examples/gan_mnist_model.h"
#include "../examples/magan_mnist_model.h"

#define GEN_BATCH 500

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mnist_eval (--ckpt PATH | --samples PATH) [options]\n"
            "  --ckpt PATH         generator checkpoint of examples/magan_mnist or examples/gan_mnist\n"
            "  --samples PATH      or: images to score, IDX (MNIST format), .gz or not, 28x28\n"
            "  --n N               samples to draw from --ckpt (default 50000; a multiple of 10 is best)\n"
            "  --seed N            noise seed for --ckpt (default 1)\n"
            "  --classifier PATH   default data/mnist_classifier.safetensors\n"
            "  --test PATH         the real images: the ceiling and the Frechet reference\n"
            "                      (default data/mnist/t10k-images-idx3-ubyte.gz)\n"
            "  --save-samples PATH write the generated samples as an IDX file (unsigned bytes)\n"
            "  --keys PATH         write 'key value' lines there ('-': stdout instead of the table)\n"
            "  --threads N         OpenMP threads (default: all)\n"
            "  --help              this text\n");
}

static int long_arg(const char *a, const char *v, long lo, long hi, long *out)
{
    char *end;
    *out = strtol(v, &end, 10);
    if (end != v && !*end && *out >= lo && *out <= hi) return 1;
    fprintf(stderr, "mnist_eval: bad value '%s' for %s (an integer from %ld to %ld)\n", v, a, lo, hi);
    return 0;
}

/* Every value finite (a diverged run's checkpoint says so here, not as NaN scores). */
static int finite_param(mmgan_param *p, const char *path)
{
    mmgan_tensor *t = mmgan_param_tensor(p);
    size_t k;
    for (k = 0; k < t->numel; k++)
        if (!isfinite(t->data[k])) {
            fprintf(stderr, "mnist_eval: %s: %s[%lu] = %g: not a usable value (did training diverge?)\n", path,
                    mmgan_param_name(p), (unsigned long)k, t->data[k]);
            return 0;
        }
    return 1;
}

/* Draws n samples in [0, 1] from the generator in checkpoint `path` into
 * out [n, 784].  *kind names the model found.  Returns 0 after saying why. */
static int generate(mmgan_ctx *ctx, const char *path, long n, long seed, float *out, const char **kind)
{
    mmgan_ckpt *ck = mmgan_ckpt_load(ctx, path);
    mmgan_param *p[16] = {0};   /* NG or MAGAN_NG of them */
    mmgan_graph *g = NULL;
    mmgan_plan *plan = NULL;
    mmgan_rng rng;
    mmgan_node z, x;
    const char *tag, *nzs;
    long nz = MAGAN_NZ, i0;
    int np, i, is_gan, ok = 0, shape[4], zs[4] = {GEN_BATCH, 1, 1, 1};
    if (!ck) { fprintf(stderr, "mnist_eval: %s\n", mmgan_ctx_error(ctx)); return 0; }
    tag = mmgan_ckpt_get_meta(ck, "model");
    /* magan_mnist's first checkpoints carried no tag: its tensors identify it. */
    is_gan = tag && !strcmp(tag, MODEL);
    if (!is_gan && !(tag ? !strcmp(tag, MAGAN_MODEL) : mmgan_ckpt_get_meta(ck, "magan.prev_g") != NULL)) {
        fprintf(stderr, "mnist_eval: %s is not a checkpoint of examples/magan_mnist or examples/gan_mnist (model '%s')\n",
                path, tag ? tag : "missing");
        goto done;
    }
    if (is_gan) {
        char *end = NULL;
        nzs = mmgan_ckpt_get_meta(ck, "nz");
        if (nzs) nz = strtol(nzs, &end, 10);
        if (!nzs || !*nzs || *end || nz < 1 || nz > 4096) {
            fprintf(stderr, "mnist_eval: %s: metadata 'nz' is %s (expected an integer 1 to 4096)\n", path,
                    nzs ? nzs : "missing");
            goto done;
        }
    }
    np = is_gan ? NG : MAGAN_NG;
    for (i = 0; i < np; i++) {
        const char *name = is_gan ? GDEF[i].name : MAGAN_GDEF[i].name;
        int nd = is_gan ? GDEF[i].ndim : MAGAN_GDEF[i].ndim;
        memcpy(shape, is_gan ? GDEF[i].shape : MAGAN_GDEF[i].shape, sizeof shape);
        if (is_gan && i == G_FC_W) shape[1] = (int)nz;
        p[i] = mmgan_param_new(ctx, name, nd, shape);
        if (!p[i] || mmgan_ckpt_get_param(ck, p[i]) != MMGAN_OK) {
            fprintf(stderr, "mnist_eval: %s: %s\n", path, mmgan_ctx_error(ctx));
            goto done;
        }
        if (!finite_param(p[i], path)) goto done;
    }
    *kind = is_gan ? "gan_mnist" : "magan_mnist";
    mmgan_rng_seed(&rng, (uint64_t)seed, 0);
    g = mmgan_graph_new(ctx);
    if (!g) goto fail;
    if (is_gan) {
        zs[1] = (int)nz;
        z = mmgan_random_normal(g, &rng, 2, zs, 0.0f, 1.0f);
        x = mmgan_affine(g, generator(g, p, z, 0), 0.5f, 0.5f);   /* [-1, 1] -> [0, 1] */
    } else {
        zs[1] = MAGAN_NZ;
        z = mmgan_random_normal(g, &rng, 4, zs, 0.0f, 1.0f);
        x = magan_generator(g, p, z);
    }
    if (mmgan_graph_status(g) != MMGAN_OK || !(plan = mmgan_plan_new(g, 1, &x))) goto fail;
    for (i0 = 0; i0 < n; i0 += GEN_BATCH) {
        long k = n - i0 < GEN_BATCH ? n - i0 : GEN_BATCH;
        const float *img;
        size_t j;
        if (mmgan_plan_run(plan) != MMGAN_OK) goto fail;
        img = mmgan_plan_value(plan, x);
        for (j = 0; j < (size_t)k * 784; j++)
            if (!isfinite(img[j])) {
                fprintf(stderr, "mnist_eval: %s: the generator produced a non-finite value\n", path);
                goto done;
            }
        memcpy(out + (size_t)i0 * 784, img, sizeof(float) * 784 * (size_t)k);
    }
    ok = 1;
    goto done;
fail:
    fprintf(stderr, "mnist_eval: %s\n", mmgan_ctx_error(ctx));
done:
    mmgan_plan_free(plan);
    mmgan_graph_free(g);
    for (i = 0; i < (int)(sizeof p / sizeof p[0]); i++) mmgan_param_free(p[i]);
    mmgan_ckpt_free(ck);
    return ok;
}

/* n images [n, 784] in [0, 1] as an IDX file of unsigned bytes, rounded. */
static int save_idx(mmgan_ctx *ctx, const char *path, const float *x, long n)
{
    size_t size = 16 + (size_t)n * 784, j;
    unsigned char *b = (unsigned char *)malloc(size);
    unsigned long dims[3];
    int d, ok;
    if (!b) { fprintf(stderr, "mnist_eval: out of memory\n"); return 0; }
    dims[0] = (unsigned long)n; dims[1] = 28; dims[2] = 28;
    b[0] = b[1] = 0; b[2] = 0x08; b[3] = 3;
    for (d = 0; d < 3; d++) {
        b[4 + 4 * d] = (unsigned char)(dims[d] >> 24); b[5 + 4 * d] = (unsigned char)(dims[d] >> 16);
        b[6 + 4 * d] = (unsigned char)(dims[d] >> 8); b[7 + 4 * d] = (unsigned char)dims[d];
    }
    for (j = 0; j < (size_t)n * 784; j++) {
        float v = x[j] < 0 ? 0 : x[j] > 1 ? 1 : x[j];
        b[16 + j] = (unsigned char)(v * 255.0f + 0.5f);
    }
    ok = mmgan_write_file(ctx, path, b, size) == MMGAN_OK;
    if (!ok) fprintf(stderr, "mnist_eval: %s\n", mmgan_ctx_error(ctx));
    free(b);
    return ok;
}

static void print_keys(FILE *f, const char *prefix, const mnc_report *r)
{
    int c;
    fprintf(f, "%s_n %ld\n%s_score %.4f\n%s_score_std %.4f\n%s_classes_covered %d\n%s_kl_uniform %.6f\n", prefix, r->n,
            prefix, r->score, prefix, r->score_std, prefix, r->covered, prefix, r->kl_uniform);
    for (c = 0; c < MNC_CLASSES; c++) fprintf(f, "%s_class_%d %ld\n", prefix, c, r->counts[c]);
    fprintf(f, "%s_fid %.4f\n", prefix, r->fid);
}

#define FAIL(...) do { fprintf(stderr, "mnist_eval: " __VA_ARGS__); fputc('\n', stderr); goto out; } while (0)

int main(int argc, char **argv)
{
    const char *ckpt = NULL, *samples = NULL, *cls = "data/mnist_classifier.safetensors",
               *test = "data/mnist/t10k-images-idx3-ubyte.gz", *save = NULL, *keys = NULL, *kind = "images";
    long n = 50000, seed = 1, threads = 0, i;
    mmgan_ctx *ctx = NULL;
    mmgan_dataset te, sd;
    mnc_net net;
    mmgan_rng rng;
    float *x = NULL, *logits = NULL, *feat = NULL, *tl = NULL, *tf = NULL;
    double *mu = NULL, *cov = NULL;
    mnc_report rs, rt;
    char err[1024];
    int status = 1, have_te = 0, have_sd = 0, c;

    memset(&net, 0, sizeof net);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (strcmp(a, "--ckpt") && strcmp(a, "--samples") && strcmp(a, "--n") && strcmp(a, "--seed") &&
            strcmp(a, "--classifier") && strcmp(a, "--test") && strcmp(a, "--save-samples") && strcmp(a, "--keys") &&
            strcmp(a, "--threads")) {
            fprintf(stderr, "mnist_eval: unknown option %s (try --help)\n", a);
            return 2;
        }
        if (!v) { fprintf(stderr, "mnist_eval: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--ckpt")) ckpt = v;
        else if (!strcmp(a, "--samples")) samples = v;
        else if (!strcmp(a, "--classifier")) cls = v;
        else if (!strcmp(a, "--test")) test = v;
        else if (!strcmp(a, "--save-samples")) save = v;
        else if (!strcmp(a, "--keys")) keys = v;
        else if (!(!strcmp(a, "--n") ? long_arg(a, v, 10, 10000000, &n)
                   : !strcmp(a, "--seed") ? long_arg(a, v, 0, 2147483647L, &seed)
                   : long_arg(a, v, 0, 1024, &threads)))
            return 2;
    }
    if (!ckpt == !samples) {
        fprintf(stderr, "mnist_eval: give either --ckpt (a generator) or --samples (a file of images) (try --help)\n");
        return 2;
    }
    if (save && !ckpt) { fprintf(stderr, "mnist_eval: --save-samples goes with --ckpt\n"); return 2; }

    ctx = mmgan_ctx_new(NULL);
    if (!ctx) return 1;
    if (threads) mmgan_ctx_set_threads(ctx, (int)threads);
    mmgan_rng_seed(&rng, 1, 0);
    if (!mnc_net_new(ctx, &net, &rng)) FAIL("%s", mmgan_ctx_error(ctx));
    if (!mnc_load(ctx, &net, cls, err, sizeof err)) FAIL("%s (tools/mnist_classifier makes it)", err);
    if (mmgan_mnist_load(ctx, test, NULL, 0.0f, 1.0f, &te) != MMGAN_OK) FAIL("%s", mmgan_ctx_error(ctx));
    have_te = 1;
    if (te.h != 28 || te.w != 28) FAIL("%s holds %dx%d images, not 28x28", test, te.h, te.w);
    if (te.n < 10) FAIL("%s holds %d images, fewer than the 10 splits", test, te.n);
    if (samples) {
        if (mmgan_mnist_load(ctx, samples, NULL, 0.0f, 1.0f, &sd) != MMGAN_OK) FAIL("%s", mmgan_ctx_error(ctx));
        have_sd = 1;
        if (sd.h != 28 || sd.w != 28) FAIL("%s holds %dx%d images, not 28x28", samples, sd.h, sd.w);
        if (sd.n < 10) FAIL("%s holds %d images, fewer than the 10 splits", samples, sd.n);
        n = sd.n;
        x = sd.images;
    } else {
        if (!(x = (float *)malloc(sizeof(float) * 784 * (size_t)n))) FAIL("out of memory for %ld samples", n);
        if (!generate(ctx, ckpt, n, seed, x, &kind)) goto out;
        if (save && !save_idx(ctx, save, x, n)) goto out;
    }

    logits = (float *)malloc(sizeof(float) * MNC_CLASSES * (size_t)n);
    feat = (float *)malloc(sizeof(float) * MNC_FEATURES * (size_t)n);
    tl = (float *)malloc(sizeof(float) * MNC_CLASSES * (size_t)te.n);
    tf = (float *)malloc(sizeof(float) * MNC_FEATURES * (size_t)te.n);
    mu = (double *)malloc(sizeof(double) * MNC_FEATURES);
    cov = (double *)malloc(sizeof(double) * MNC_FEATURES * MNC_FEATURES);
    if (!logits || !feat || !tl || !tf || !mu || !cov) FAIL("out of memory");
    if (!mnc_apply(ctx, &net, te.images, te.n, 100, tl, tf) || !mnc_apply(ctx, &net, x, n, 100, logits, feat))
        FAIL("%s", mmgan_ctx_error(ctx));
    mnc_moments(tf, te.n, MNC_FEATURES, mu, cov);
    if (!mnc_report_make(tl, tf, te.n, mu, cov, &rt) || !mnc_report_make(logits, feat, n, mu, cov, &rs))
        FAIL("out of memory");

    if (!keys || strcmp(keys, "-")) {
        printf("samples: %s (%s)\nreal:    %s\n\n", ckpt ? ckpt : samples, kind, test);
        printf("%-22s %-26s %s\n", "", "samples", "real");
        printf("%-22s %-26ld %d\n", "images", n, te.n);
        printf("%-22s %6.3f +- %-16.3f %.3f +- %.3f\n", "classifier score", rs.score, rs.score_std, rt.score,
               rt.score_std);
        printf("%-22s %-26d %d\n", "classes covered", rs.covered, rt.covered);
        printf("%-22s %-26.4f %.4f\n", "KL to uniform (nats)", rs.kl_uniform, rt.kl_uniform);
        printf("%-22s %-26.3f %.3f (itself)\n", "Frechet distance", rs.fid, rt.fid);
        for (c = 0; c < MNC_CLASSES; c++) {
            char label[32], cell[64];
            snprintf(label, sizeof label, "  digit %d", c);
            snprintf(cell, sizeof cell, "%ld (%.1f%%)", rs.counts[c], 100.0 * (double)rs.counts[c] / (double)n);
            printf("%-22s %-26s %ld (%.1f%%)\n", label, cell, rt.counts[c], 100.0 * (double)rt.counts[c] / (double)te.n);
        }
    }
    if (keys) {
        FILE *f = strcmp(keys, "-") ? fopen(keys, "w") : stdout;
        if (!f) FAIL("cannot write %s", keys);
        fprintf(f, "source %s\nkind %s\n", ckpt ? ckpt : samples, kind);
        print_keys(f, "samples", &rs);
        print_keys(f, "real", &rt);
        if (f != stdout && fclose(f) != 0) FAIL("cannot write %s", keys);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) FAIL("cannot write the results to stdout");   /* > /dev/full: not 0 */
    status = 0;
out:
    mnc_net_free(&net);
    if (have_te) mmgan_dataset_free(ctx, &te);
    if (have_sd) mmgan_dataset_free(ctx, &sd);
    else free(x);
    free(logits); free(feat); free(tl); free(tf); free(mu); free(cov);
    mmgan_ctx_free(ctx);
    return status;
}
