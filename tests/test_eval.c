/* The MNIST evaluation kit (tools/mnist_classifier.h): the scores against
 * closed forms and an independent matrix square root, and the shipped
 * classifier on the shipped test digits.  Run natively only (it classifies
 * 10,000 images: too slow for the scalar and qemu builds). */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"
#include "../tools/mnist_classifier.h"

#define CLASSIFIER "data/mnist_classifier.safetensors"
#define TEST_IMAGES "data/mnist/t10k-images-idx3-ubyte.gz"
#define TEST_LABELS "data/mnist/t10k-labels-idx1-ubyte.gz"

/* Random symmetric positive definite d x d matrix: b b' / d + 0.1 I. */
static void random_spd(mmgan_rng *rng, int d, double *s)
{
    double *b = (double *)malloc(sizeof(double) * d * d);
    int i, j, k;
    for (i = 0; i < d * d; i++) b[i] = mmgan_rng_normal(rng);
    for (i = 0; i < d; i++)
        for (j = 0; j < d; j++) {
            double t = 0;
            for (k = 0; k < d; k++) t += b[i * d + k] * b[j * d + k];
            s[i * d + j] = t / d + (i == j ? 0.1 : 0);
        }
    free(b);
}

static void matmul(const double *a, const double *b, double *c, int d)
{
    int i, j, k;
    for (i = 0; i < d; i++)
        for (j = 0; j < d; j++) {
            double t = 0;
            for (k = 0; k < d; k++) t += a[i * d + k] * b[k * d + j];
            c[i * d + j] = t;
        }
}

/* Inverse by Gauss-Jordan with partial pivoting (small, well-conditioned). */
static void inverse(const double *a, double *inv, int d)
{
    double *m = (double *)malloc(sizeof(double) * d * d * 2);
    int i, j, k, w = 2 * d;
    for (i = 0; i < d; i++)
        for (j = 0; j < w; j++) m[i * w + j] = j < d ? a[i * d + j] : (j - d == i);
    for (k = 0; k < d; k++) {
        int piv = k;
        double t;
        for (i = k + 1; i < d; i++) if (fabs(m[i * w + k]) > fabs(m[piv * w + k])) piv = i;
        for (j = 0; j < w; j++) { t = m[k * w + j]; m[k * w + j] = m[piv * w + j]; m[piv * w + j] = t; }
        t = m[k * w + k];
        for (j = 0; j < w; j++) m[k * w + j] /= t;
        for (i = 0; i < d; i++)
            if (i != k) {
                t = m[i * w + k];
                for (j = 0; j < w; j++) m[i * w + j] -= t * m[k * w + j];
            }
    }
    for (i = 0; i < d; i++)
        for (j = 0; j < d; j++) inv[i * d + j] = m[i * w + d + j];
    free(m);
}

/* trace(sqrtm(a)) for a (non-symmetric) matrix with positive real
 * eigenvalues by the Denman-Beavers iteration: independent of Jacobi. */
static double trace_sqrtm_db(const double *a, int d)
{
    size_t dd = (size_t)d * d;
    double *y = (double *)malloc(sizeof(double) * dd), *z = (double *)malloc(sizeof(double) * dd),
           *yi = (double *)malloc(sizeof(double) * dd), *zi = (double *)malloc(sizeof(double) * dd), tr = 0;
    int i, it;
    memcpy(y, a, sizeof(double) * dd);
    for (i = 0; i < d * d; i++) z[i] = i % (d + 1) == 0;
    for (it = 0; it < 60; it++) {
        inverse(y, yi, d);
        inverse(z, zi, d);
        for (i = 0; i < d * d; i++) { y[i] = 0.5 * (y[i] + zi[i]); z[i] = 0.5 * (z[i] + yi[i]); }
    }
    for (i = 0; i < d; i++) tr += y[i * d + i];
    free(y); free(z); free(yi); free(zi);
    return tr;
}

static void test_score(void)
{
    double *p = (double *)calloc(1000 * MNC_CLASSES, sizeof(double)), m, s;
    int i;
    /* Every sample certain of one class, the classes evenly spread in each
     * split: p(y) uniform, KL = log 10 for each, score 10. */
    for (i = 0; i < 1000; i++) p[i * MNC_CLASSES + i % 10] = 1;
    mnc_score(p, 1000, 10, &m, &s);
    CHECK(fabs(m - 10) < 1e-9 && s < 1e-9, "score of evenly spread certain samples: %g +- %g, expected 10", m, s);
    /* All certain of the same class: score 1. */
    memset(p, 0, sizeof(double) * 1000 * MNC_CLASSES);
    for (i = 0; i < 1000; i++) p[i * MNC_CLASSES + 3] = 1;
    mnc_score(p, 1000, 10, &m, &s);
    CHECK(fabs(m - 1) < 1e-12, "score of one certain class: %g, expected 1", m);
    /* Undecided samples (uniform p(y|x)): score 1. */
    for (i = 0; i < 1000 * MNC_CLASSES; i++) p[i] = 0.1;
    mnc_score(p, 1000, 10, &m, &s);
    CHECK(fabs(m - 1) < 1e-12, "score of undecided samples: %g, expected 1", m);
    /* Two classes, each sample 0.9/0.1 sure, half each way: p(y) = (0.5, 0.5),
     * KL = 0.9 log 1.8 + 0.1 log 0.2, closed form. */
    memset(p, 0, sizeof(double) * 1000 * MNC_CLASSES);
    for (i = 0; i < 1000; i++) { p[i * MNC_CLASSES + i % 2] = 0.9; p[i * MNC_CLASSES + 1 - i % 2] = 0.1; }
    mnc_score(p, 1000, 10, &m, &s);
    CHECK(fabs(m - exp(0.9 * log(1.8) + 0.1 * log(0.2))) < 1e-12, "two-class score %g, expected %g", m,
          exp(0.9 * log(1.8) + 0.1 * log(0.2)));
    free(p);
}

static void test_frechet(void)
{
    mmgan_rng rng;
    double a[144], b[144], ab[144], v[144], w[12], mu1[12], mu2[12], fd, ref, tr;
    int d = 12, i, j, k;
    mmgan_rng_seed(&rng, 7, 0);
    /* Jacobi: a = v diag(w) v' and v orthogonal. */
    random_spd(&rng, d, a);
    memcpy(b, a, sizeof a);
    mnc_jacobi(b, d, w, v);
    {
        double e1 = 0, e2 = 0;
        for (i = 0; i < d; i++)
            for (j = 0; j < d; j++) {
                double r = 0, o = 0;
                for (k = 0; k < d; k++) { r += v[i * d + k] * w[k] * v[j * d + k]; o += v[k * d + i] * v[k * d + j]; }
                e1 = fmax(e1, fabs(r - a[i * d + j]));
                e2 = fmax(e2, fabs(o - (i == j)));
            }
        CHECK(e1 < 1e-12 && e2 < 1e-12, "jacobi: reconstruction error %g, orthogonality error %g", e1, e2);
    }
    /* 2x2, non-commuting: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for M with positive eigenvalues. */
    {
        double s1[4] = {2.0, 0.7, 0.7, 1.0}, s2[4] = {0.5, -0.2, -0.2, 3.0}, m1[2] = {0.3, -1.0}, m2[2] = {1.1, 0.4},
               mm[4], trm;
        matmul(s1, s2, mm, 2);
        trm = sqrt(mm[0] + mm[3] + 2 * sqrt(mm[0] * mm[3] - mm[1] * mm[2]));
        ref = 0.8 * 0.8 + 1.4 * 1.4 + 3.0 + 3.5 - 2 * trm;
        fd = mnc_frechet(m1, s1, m2, s2, 2);
        CHECK(fabs(fd - ref) < 1e-12, "2x2 Frechet distance %.15g, closed form %.15g", fd, ref);
    }
    /* 12x12 random pair against Denman-Beavers on s1 s2 directly. */
    random_spd(&rng, d, a);
    random_spd(&rng, d, b);
    for (i = 0; i < d; i++) { mu1[i] = mmgan_rng_normal(&rng); mu2[i] = mmgan_rng_normal(&rng); }
    matmul(a, b, ab, d);
    tr = trace_sqrtm_db(ab, d);
    ref = 0;
    for (i = 0; i < d; i++) ref += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + a[i * d + i] + b[i * d + i];
    ref -= 2 * tr;
    fd = mnc_frechet(mu1, a, mu2, b, d);
    CHECK(fabs(fd - ref) < 1e-9 * fabs(ref) + 1e-10, "12x12 Frechet distance %.15g, Denman-Beavers %.15g", fd, ref);
    /* A Gaussian against itself: 0. */
    fd = mnc_frechet(mu1, a, mu1, a, d);
    CHECK(fabs(fd) < 1e-10, "Frechet distance of a Gaussian to itself: %g", fd);
    /* Sample moments: mean and unbiased covariance of 3 rows, by hand. */
    {
        float x[6] = {1, 2, 3, 0, 5, 4};
        double mu[2], cov[4];
        mnc_moments(x, 3, 2, mu, cov);
        CHECK(fabs(mu[0] - 3) < 1e-12 && fabs(mu[1] - 2) < 1e-12, "moments: mean (%g, %g), expected (3, 2)", mu[0], mu[1]);
        CHECK(fabs(cov[0] - 4) < 1e-12 && fabs(cov[3] - 4) < 1e-12 && fabs(cov[1] - 2) < 1e-12 && cov[1] == cov[2],
              "moments: covariance [%g %g; %g %g], expected [4 2; 2 4]", cov[0], cov[1], cov[2], cov[3]);
    }
}

/* The cross-entropy composite against its definition in double. */
static void test_cross_entropy(mmgan_ctx *ctx)
{
    mmgan_graph *g = mmgan_graph_new(ctx);
    int s[2] = {3, MNC_CLASSES}, i, c;
    float lg[30], oh[30] = {0};
    mmgan_node l, o, y;
    mmgan_plan *p;
    double ref = 0;
    mmgan_rng rng;
    mmgan_rng_seed(&rng, 3, 0);
    for (i = 0; i < 30; i++) lg[i] = 8 * mmgan_rng_normal(&rng);
    lg[0] = 95.0f;   /* exp(95) overflows float: the shift must keep it finite */
    for (i = 0; i < 3; i++) oh[i * MNC_CLASSES + (3 * i + 1) % 10] = 1;
    l = mmgan_constant(g, 2, s, lg);
    o = mmgan_constant(g, 2, s, oh);
    y = mnc_cross_entropy(g, l, o);
    p = mmgan_plan_new(g, 1, &y);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "cross-entropy plan: %s", mmgan_ctx_error(ctx));
    for (i = 0; i < 3; i++) {
        double mx = lg[i * 10], se = 0;
        for (c = 1; c < 10; c++) mx = fmax(mx, lg[i * 10 + c]);
        for (c = 0; c < 10; c++) se += exp(lg[i * 10 + c] - mx);
        ref -= lg[i * 10 + (3 * i + 1) % 10] - mx - log(se);
    }
    ref /= 3;
    if (p) {
        double v = mmgan_plan_value(p, y)[0];
        CHECK(fabs(v - ref) < 1e-5 * fabs(ref), "cross-entropy %.8g, expected %.8g", v, ref);
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);
}

/* The shipped classifier: accuracy, the real set's scores, degenerate sets. */
static void test_classifier(mmgan_ctx *ctx)
{
    mnc_net net;
    mmgan_rng rng;
    mmgan_dataset te;
    char err[512];
    float *lg, *ft, *one;
    double mu[MNC_FEATURES], *cov = (double *)malloc(sizeof(double) * MNC_FEATURES * MNC_FEATURES);
    mnc_report r, d, half;
    long i, correct = 0, n1 = 0;
    mmgan_rng_seed(&rng, 1, 0);
    CHECK(mnc_net_new(ctx, &net, &rng), "classifier parameters: %s", mmgan_ctx_error(ctx));
    if (!mnc_load(ctx, &net, CLASSIFIER, err, sizeof err)) {
        CHECK(0, "loading the shipped classifier: %s", err);
        mnc_net_free(&net);
        free(cov);
        return;
    }
    if (mmgan_mnist_load(ctx, TEST_IMAGES, TEST_LABELS, 0.0f, 1.0f, &te) != MMGAN_OK) {
        CHECK(0, "loading the test digits: %s", mmgan_ctx_error(ctx));
        mnc_net_free(&net);
        free(cov);
        return;
    }
    lg = (float *)malloc(sizeof(float) * MNC_CLASSES * te.n);
    ft = (float *)malloc(sizeof(float) * MNC_FEATURES * te.n);
    one = (float *)malloc(sizeof(float) * 784 * te.n);
    CHECK(mnc_apply(ctx, &net, te.images, te.n, 100, lg, ft), "classifying: %s", mmgan_ctx_error(ctx));
    for (i = 0; i < te.n; i++) correct += mnc_argmax(lg + i * MNC_CLASSES) == te.labels[i];
    CHECK(correct >= 9870, "test accuracy %.2f%%, the paper's classifier has 98.7%%", correct / 100.0);
    /* Batch size does not change what the classifier says (the padded last batch included). */
    {
        float *lg2 = (float *)malloc(sizeof(float) * MNC_CLASSES * 333), e = 0;
        CHECK(mnc_apply(ctx, &net, te.images, 333, 64, lg2, NULL), "classifying in batches of 64");
        for (i = 0; i < 333 * MNC_CLASSES; i++) e = fmaxf(e, fabsf(lg2[i] - lg[i]));
        CHECK(e < 1e-4f, "logits in batches of 64 and 100 differ by %g", e);
        free(lg2);
    }
    mnc_moments(ft, te.n, MNC_FEATURES, mu, cov);
    CHECK(mnc_report_make(lg, ft, te.n, mu, cov, &r), "report");
    CHECK(r.covered == 10, "the test set covers %d classes", r.covered);
    CHECK(r.score > 9.0 && r.score <= 10.0, "the test set's score %.3f: a 98.7%% classifier should give over 9", r.score);
    CHECK(r.fid < 1e-6, "Frechet distance of the test set to itself: %g", r.fid);
    CHECK(r.kl_uniform < 0.01, "the test set's histogram is %g nats from uniform", r.kl_uniform);
    /* Half of the test set against the whole: near, but not zero. */
    CHECK(mnc_report_make(lg, ft, te.n / 2, mu, cov, &half), "report");
    CHECK(half.fid > 0, "Frechet distance of half the test set: %g", half.fid);
    /* A collapsed generator: every sample the same digit image. */
    for (i = 0; i < te.n && te.labels[i] != 1; i++) {}
    {
        long k, first = i;
        for (k = 0; k < 1000; k++) memcpy(one + k * 784, te.images + first * 784, sizeof(float) * 784);
        CHECK(mnc_apply(ctx, &net, one, 1000, 100, lg, ft), "classifying");
        CHECK(mnc_report_make(lg, ft, 1000, mu, cov, &d), "report");
        CHECK(d.covered == 1 && d.counts[1] == 1000, "one image 1000 times covers %d classes", d.covered);
        CHECK(fabs(d.score - 1) < 1e-6, "one image 1000 times scores %g, expected 1", d.score);
        CHECK(fabs(d.kl_uniform - log(10.0)) < 1e-12, "one class is log 10 nats from uniform, got %g", d.kl_uniform);
        CHECK(d.fid > 50 * half.fid, "a collapsed set's Frechet distance %g is not far above half the real set's, %g",
              d.fid, half.fid);
    }
    /* Every test '1': one digit, many writers: score near 1. */
    for (i = 0; i < te.n; i++)
        if (te.labels[i] == 1) memcpy(one + n1++ * 784, te.images + i * 784, sizeof(float) * 784);
    CHECK(mnc_apply(ctx, &net, one, n1, 100, lg, ft), "classifying");
    CHECK(mnc_report_make(lg, ft, n1, mu, cov, &d), "report");
    CHECK(d.score < 1.1 && d.counts[1] >= 0.98 * n1, "the %ld test '1's: score %.3f, %ld classified as 1", n1, d.score,
          d.counts[1]);
    mmgan_dataset_free(ctx, &te);
    free(lg); free(ft); free(one); free(cov);
    mnc_net_free(&net);
}

int main(void)
{
    mmgan_ctx *ctx = mmgan_ctx_new(NULL);
    test_suite = "test_eval";
    test_score();
    test_frechet();
    test_cross_entropy(ctx);
    test_classifier(ctx);
    mmgan_ctx_free(ctx);
    return test_summary();
}
