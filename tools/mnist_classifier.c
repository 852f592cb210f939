/* mnist_classifier: trains the evaluation kit's MNIST classifier with mmgan
 * (the network of tools/mnist_classifier.h), reports its test accuracy and
 * saves its weights.  Seeded and deterministic: the same seed gives the same
 * weights, bit for bit, whatever the thread count.
 *
 *   make build/mnist_classifier
 *   sh tools/fetch_mnist.sh                  (the 60,000 training digits)
 *   ./build/mnist_classifier                 (into build/mnist_classifier.safetensors; --out
 *                                            data/mnist_classifier.safetensors replaces the shipped one)
 *
 * Adam (lr 1e-3, then 1e-4 for the last epoch), batch 64, cross-entropy. */
#define _POSIX_C_SOURCE 199309L  /* clock_gettime under -std=c99 */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mnist_classifier.h"

#define BATCH 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mnist_classifier [options]\n"
            "  --train PATH    training images (default data/mnist-full/train-images-idx3-ubyte.gz);\n"
            "                  the labels are the file with 'images-idx3' replaced by 'labels-idx1'\n"
            "  --test PATH     test images, labels found the same way (default data/mnist/t10k-images-idx3-ubyte.gz)\n"
            "  --epochs N      passes over the training set (default 4; the last at a tenth of the rate)\n"
            "  --limit N       train on the first N images only (default: all)\n"
            "  --seed N        random seed (default 1)\n"
            "  --threads N     OpenMP threads (default: all)\n"
            "  --out PATH      checkpoint to write (default build/mnist_classifier.safetensors, beside\n"
            "                  the shipped data/mnist_classifier.safetensors, which mnist_eval reads)\n"
            "  --help          this text\n");
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* The labels file beside an images file: "...-images-idx3-ubyte..." ->
 * "...-labels-idx1-ubyte...".  Returns 0 when the name has no such part. */
static int labels_path(const char *images, char *out, size_t size)
{
    const char *p = strstr(images, "images-idx3");
    size_t k;
    if (!p || strlen(images) + 1 > size) return 0;
    k = (size_t)(p - images);
    memcpy(out, images, k);
    memcpy(out + k, "labels-idx1", 11);
    strcpy(out + k + 11, p + 11);
    return 1;
}

static int long_arg(const char *a, const char *v, long lo, long hi, long *out)
{
    char *end;
    *out = strtol(v, &end, 10);
    if (end != v && !*end && *out >= lo && *out <= hi) return 1;
    fprintf(stderr, "mnist_classifier: bad value '%s' for %s (an integer from %ld to %ld)\n", v, a, lo, hi);
    return 0;
}

#define FAIL(...) do { fprintf(stderr, "mnist_classifier: " __VA_ARGS__); fputc('\n', stderr); goto out; } while (0)

int main(int argc, char **argv)
{
    const char *train = "data/mnist-full/train-images-idx3-ubyte.gz", *test = "data/mnist/t10k-images-idx3-ubyte.gz",
               *out_path = "build/mnist_classifier.safetensors";
    long epochs = 4, limit = 0, seed = 1, threads = 0, i, correct = 0, steps, t, ep;
    char trl[1024], tel[1024], v[64];
    mmgan_ctx *ctx = NULL;
    mmgan_dataset tr, te;
    mmgan_batcher batches;
    mmgan_rng rng;
    mnc_net net;
    mmgan_graph *g = NULL;
    mmgan_plan *plan = NULL;
    mmgan_optimizer *opt = NULL;
    mmgan_opt_spec spec;
    mmgan_ckpt *ck = NULL;
    mmgan_node x, onehot, loss, grads[MNC_NP], targets[MNC_NP + 1], pn[MNC_NP];
    float *xb = NULL, *yb = NULL, *logits = NULL;
    unsigned char lb[BATCH];
    int xs[4] = {BATCH, 1, 28, 28}, ys[2] = {BATCH, MNC_CLASSES}, status = 1, have_tr = 0, have_te = 0;
    double t0, acc;

    memset(&net, 0, sizeof net);
    memset(&batches, 0, sizeof batches);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (strcmp(a, "--train") && strcmp(a, "--test") && strcmp(a, "--epochs") && strcmp(a, "--limit") &&
            strcmp(a, "--seed") && strcmp(a, "--threads") && strcmp(a, "--out")) {
            fprintf(stderr, "mnist_classifier: unknown option %s (try --help)\n", a);
            return 2;
        }
        if (!val) { fprintf(stderr, "mnist_classifier: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--train")) train = val;
        else if (!strcmp(a, "--test")) test = val;
        else if (!strcmp(a, "--out")) out_path = val;
        else if (!(!strcmp(a, "--epochs") ? long_arg(a, val, 1, 1000, &epochs)
                   : !strcmp(a, "--limit") ? long_arg(a, val, 0, 100000000, &limit)
                   : !strcmp(a, "--seed") ? long_arg(a, val, 0, 2147483647, &seed)
                   : long_arg(a, val, 0, 1024, &threads)))
            return 2;
    }
    if (!labels_path(train, trl, sizeof trl) || !labels_path(test, tel, sizeof tel)) {
        fprintf(stderr, "mnist_classifier: cannot find the labels of %s: the images' name must contain "
                        "'images-idx3' (as MNIST's files)\n", strstr(train, "images-idx3") ? test : train);
        return 2;
    }
    ctx = mmgan_ctx_new(NULL);
    if (!ctx) return 1;
    if (threads) mmgan_ctx_set_threads(ctx, (int)threads);
    if (mmgan_mnist_load(ctx, train, trl, 0.0f, 1.0f, &tr) != MMGAN_OK)
        FAIL("%s (sh tools/fetch_mnist.sh downloads the training digits)", mmgan_ctx_error(ctx));
    have_tr = 1;
    if (mmgan_mnist_load(ctx, test, tel, 0.0f, 1.0f, &te) != MMGAN_OK) FAIL("%s", mmgan_ctx_error(ctx));
    have_te = 1;
    if (tr.h != 28 || tr.w != 28 || te.h != 28 || te.w != 28) FAIL("the images must be 28x28");
    if (limit && limit < tr.n) tr.n = (int)limit;
    if (tr.n < BATCH) FAIL("%d training images, fewer than one batch of %d", tr.n, BATCH);

    mmgan_rng_seed(&rng, (uint64_t)seed, 1);
    if (!mnc_net_new(ctx, &net, &rng)) FAIL("%s", mmgan_ctx_error(ctx));
    if (mmgan_batcher_init(ctx, &batches, &tr, BATCH, &rng) != MMGAN_OK) FAIL("%s", mmgan_ctx_error(ctx));
    g = mmgan_graph_new(ctx);
    if (!g) FAIL("%s", mmgan_ctx_error(ctx));
    x = mmgan_input(g, "x", 4, xs);
    onehot = mmgan_input(g, "onehot", 2, ys);
    loss = mnc_cross_entropy(g, mnc_forward(g, &net, x, NULL), onehot);
    for (i = 0; i < MNC_NP; i++) pn[i] = mmgan_parameter(g, net.p[i]);
    mmgan_grad(g, loss, MNC_NP, pn, grads);
    if (mmgan_graph_status(g) != MMGAN_OK) FAIL("%s", mmgan_ctx_error(ctx));
    targets[0] = loss;
    memcpy(targets + 1, grads, sizeof grads);
    xb = (float *)malloc(sizeof(float) * BATCH * 784);
    yb = (float *)malloc(sizeof(float) * BATCH * MNC_CLASSES);
    logits = (float *)malloc(sizeof(float) * MNC_CLASSES * (size_t)te.n);
    if (!xb || !yb || !logits) FAIL("out of memory");
    if (!(plan = mmgan_plan_new(g, MNC_NP + 1, targets)) || mmgan_graph_feed(g, x, xb) != MMGAN_OK ||
        mmgan_graph_feed(g, onehot, yb) != MMGAN_OK)
        FAIL("%s", mmgan_ctx_error(ctx));
    spec = mmgan_opt_default(MMGAN_OPT_ADAM);
    spec.lr = 1e-3f;
    if (!(opt = mmgan_opt_new(ctx, &spec, MNC_NP, net.p))) FAIL("%s", mmgan_ctx_error(ctx));

    steps = tr.n / BATCH;
    printf("training on %d images, testing on %d, %ld epochs of %ld steps, %s kernels, %d threads\n", tr.n, te.n,
           epochs, steps, mmgan_isa(), mmgan_ctx_threads(ctx));
    t0 = now();
    for (ep = 0; ep < epochs; ep++) {
        double sum = 0;
        if (ep == epochs - 1 && epochs > 1) mmgan_opt_set_lr(opt, 1e-4f);
        for (t = 0; t < steps; t++) {
            int k;
            mmgan_batcher_next(&batches, xb, lb);
            memset(yb, 0, sizeof(float) * BATCH * MNC_CLASSES);
            for (k = 0; k < BATCH; k++) {
                if (lb[k] >= MNC_CLASSES) FAIL("label %d in %s: MNIST labels are 0 to 9", lb[k], trl);
                yb[k * MNC_CLASSES + lb[k]] = 1.0f;
            }
            if (mmgan_plan_run(plan) != MMGAN_OK || mmgan_opt_step_plan(opt, plan, grads) != MMGAN_OK)
                FAIL("%s", mmgan_ctx_error(ctx));
            sum += mmgan_plan_value(plan, loss)[0];
        }
        printf("epoch %ld/%ld  loss %.4f  (%.1f s)\n", ep + 1, epochs, sum / (double)steps, now() - t0);
        fflush(stdout);
    }
    if (!mnc_apply(ctx, &net, te.images, te.n, 100, logits, NULL)) FAIL("%s", mmgan_ctx_error(ctx));
    for (i = 0; i < te.n; i++) correct += mnc_argmax(logits + i * MNC_CLASSES) == te.labels[i];
    acc = 100.0 * (double)correct / (double)te.n;
    printf("test accuracy %.2f%% (%ld of %d), %.1f s\n", acc, correct, te.n, now() - t0);

    if (!(ck = mmgan_ckpt_new(ctx))) FAIL("%s", mmgan_ctx_error(ctx));
    for (i = 0; i < MNC_NP; i++)
        if (mmgan_ckpt_put_param(ck, net.p[i]) != MMGAN_OK) FAIL("%s", mmgan_ctx_error(ctx));
    snprintf(v, sizeof v, "%.2f", acc);
    if (mmgan_ckpt_put_meta(ck, "model", MNC_MODEL) != MMGAN_OK || mmgan_ckpt_put_meta(ck, "test_accuracy", v) != MMGAN_OK)
        FAIL("%s", mmgan_ctx_error(ctx));
    snprintf(v, sizeof v, "seed %ld, %ld epochs, %d images", seed, epochs, tr.n);
    if (mmgan_ckpt_put_meta(ck, "training", v) != MMGAN_OK || mmgan_ckpt_save(ck, out_path) != MMGAN_OK)
        FAIL("%s", mmgan_ctx_error(ctx));
    printf("saved %s\n", out_path);
    status = 0;
out:
    mmgan_ckpt_free(ck);
    mmgan_opt_free(opt);
    mmgan_plan_free(plan);
    mmgan_graph_free(g);
    mnc_net_free(&net);
    mmgan_batcher_free(ctx, &batches);
    if (have_tr) mmgan_dataset_free(ctx, &tr);
    if (have_te) mmgan_dataset_free(ctx, &te);
    free(xb); free(yb); free(logits);
    mmgan_ctx_free(ctx);
    return status;
}
