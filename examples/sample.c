/* Draws samples from a generator trained by examples/gan_mnist.c.
 *
 *   cc -O2 -march=native examples/sample.c -lm -o sample
 *   ./sample --ckpt out/gan.safetensors --n 100 --seed 3 --out samples.png
 *
 * The generator is rebuilt exactly as gan_mnist builds it (same parameter
 * names and shapes), its weights and batch-norm running statistics are read
 * from the checkpoint, strictly: a file of another model, a missing tensor or
 * a wrong shape is an error.  Batch norm uses the running statistics
 * (evaluation mode), so each sample depends on its own noise only. */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gan_mnist_model.h"   /* the generator, as gan_mnist builds it */


static void usage(FILE *f)
{
    fprintf(f,
            "usage: sample [options]\n"
            "  --ckpt PATH    checkpoint written by gan_mnist (default out/gan.safetensors)\n"
            "  --n N          number of samples (default 64, at most 10000)\n"
            "  --cols N       grid columns (default: about the square root of n)\n"
            "  --seed N       noise seed (default 1)\n"
            "  --out PATH     PNG grid to write (default samples.png)\n"
            "  --threads N    OpenMP threads (default: all)\n"
            "  --help         this text\n");
}

/* Strict integer option value in [lo, hi]. */
static int int_arg(const char *a, const char *v, long lo, long hi, long *out)
{
    char *end;
    *out = strtol(v, &end, 10);
    if (end != v && !*end && *out >= lo && *out <= hi) return 1;
    fprintf(stderr, "sample: bad value '%s' for %s (an integer from %ld to %ld)\n", v, a, lo, hi);
    return 0;
}

#define FAIL(...) do { fprintf(stderr, "sample: " __VA_ARGS__); return 1; } while (0)

int main(int argc, char **argv)
{
    const char *ckpt_path = "out/gan.safetensors", *out = "samples.png", *model, *nzs;
    long n = 64, cols = 0, seed = 1, threads = 0, nz = 0;
    mmgan_ctx *ctx;
    mmgan_ckpt *ck;
    mmgan_param *p[NG];
    mmgan_graph *g;
    mmgan_plan *plan;
    mmgan_rng rng;
    mmgan_node z, x;
    const float *img;
    char *end;
    int i, shape[4], zs[2];
    size_t k;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (strcmp(a, "--ckpt") && strcmp(a, "--n") && strcmp(a, "--cols") && strcmp(a, "--seed") &&
            strcmp(a, "--out") && strcmp(a, "--threads")) {
            fprintf(stderr, "sample: unknown option %s (try --help)\n", a);
            return 2;
        }
        if (!v) { fprintf(stderr, "sample: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--ckpt")) ckpt_path = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--n")) ok = int_arg(a, v, 1, 10000, &n);
        else if (!strcmp(a, "--cols")) ok = int_arg(a, v, 1, 10000, &cols);
        else if (!strcmp(a, "--seed")) ok = int_arg(a, v, 0, 2147483647L, &seed);
        else ok = int_arg(a, v, 0, 4096, &threads);
        if (!ok) return 2;
    }
    if (!cols) while (cols * cols < n) cols++;

    ctx = mmgan_ctx_new(NULL);
    if (!ctx) return 1;
    if (threads) mmgan_ctx_set_threads(ctx, (int)threads);
    if (!(ck = mmgan_ckpt_load(ctx, ckpt_path))) FAIL("%s\n", mmgan_ctx_error(ctx));
    model = mmgan_ckpt_get_meta(ck, "model");
    if (!model || strcmp(model, MODEL))
        FAIL("%s is not a gan_mnist checkpoint (model '%s', expected '%s')\n", ckpt_path, model ? model : "missing", MODEL);
    nzs = mmgan_ckpt_get_meta(ck, "nz");
    if (nzs) nz = strtol(nzs, &end, 10);
    if (!nzs || !*nzs || *end || nz < 1 || nz > 4096)
        FAIL("%s: metadata 'nz' is %s (expected an integer 1 to 4096)\n", ckpt_path, nzs ? nzs : "missing");
    /* Every tensor present with the model's exact shape, finite, variances >= 0. */
    for (i = 0; i < NG; i++) {
        mmgan_tensor *t;
        memcpy(shape, GDEF[i].shape, sizeof shape);
        if (i == G_FC_W) shape[1] = (int)nz;
        p[i] = mmgan_param_new(ctx, GDEF[i].name, GDEF[i].ndim, shape);
        if (!p[i] || mmgan_ckpt_get_param(ck, p[i]) != MMGAN_OK) FAIL("%s: %s\n", ckpt_path, mmgan_ctx_error(ctx));
        t = mmgan_param_tensor(p[i]);
        for (k = 0; k < t->numel; k++)
            if (!isfinite(t->data[k]) || ((i == G_BN0_VAR || i == G_BN1_VAR) && t->data[k] < 0))
                FAIL("%s: %s[%lu] = %g: not a usable value (did training diverge?)\n", ckpt_path, GDEF[i].name,
                     (unsigned long)k, t->data[k]);
    }
    mmgan_ckpt_free(ck);

    mmgan_rng_seed(&rng, (uint64_t)seed, 0);
    zs[0] = (int)n; zs[1] = (int)nz;
    g = mmgan_graph_new(ctx);
    z = mmgan_random_normal(g, &rng, 2, zs, 0.0f, 1.0f);
    x = generator(g, p, z, 0);   /* evaluation mode: running statistics */
    if (mmgan_graph_status(g) != MMGAN_OK || !(plan = mmgan_plan_new(g, 1, &x)) || mmgan_plan_run(plan) != MMGAN_OK)
        FAIL("%s\n", mmgan_ctx_error(ctx));
    img = mmgan_plan_value(plan, x);
    for (k = 0; k < (size_t)n * 784; k++)
        if (!isfinite(img[k])) FAIL("the generator produced a non-finite value\n");
    if (mmgan_save_grid_png(ctx, out, img, (int)n, 1, 28, 28, (int)cols, -1.0f, 1.0f) != MMGAN_OK)
        FAIL("%s\n", mmgan_ctx_error(ctx));
    printf("%ld sample%s (nz %ld, seed %ld) from %s -> %s\n", n, n > 1 ? "s" : "", nz, seed, ckpt_path, out);

    mmgan_plan_free(plan);
    mmgan_graph_free(g);
    for (i = 0; i < NG; i++) mmgan_param_free(p[i]);
    mmgan_ctx_free(ctx);
    return 0;
}
