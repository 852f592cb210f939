/* The MNIST evaluation kit's shared parts: the classifier network (built with
 * mmgan.h, trained by tools/mnist_classifier.c, used by tools/mnist_eval.c and
 * tests/test_eval.c) and the scores computed from its outputs.
 *
 * The classifier: three convolutions and two linear layers,
 *   conv 3x3 1->32 (28x28) -> relu -> conv 4x4/2 32->64 (14x14) -> relu
 *   -> conv 4x4/2 64->64 (7x7) -> relu -> linear 3136->128 -> relu (features)
 *   -> linear 128->10 (logits)
 * on images in [0, 1].  The 128 features feed the Frechet distance, the
 * logits' softmax the classifier score (the Inception Score with this network
 * in place of Inception, as the MAGAN paper's section 4.1).
 *
 * Include after mmgan.h (with or without its implementation). */
#ifndef MNIST_CLASSIFIER_H
#define MNIST_CLASSIFIER_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MNC_MODEL "mmgan.mnist_classifier.v1"   /* the checkpoint's model tag */
#define MNC_FEATURES 128
#define MNC_CLASSES 10

enum { MNC_C1_W, MNC_C1_B, MNC_C2_W, MNC_C2_B, MNC_C3_W, MNC_C3_B, MNC_F1_W, MNC_F1_B, MNC_F2_W, MNC_F2_B, MNC_NP };

typedef struct mnc_net { mmgan_param *p[MNC_NP]; } mnc_net;

/* Creates the parameters, He-normal weights before relu, Xavier for the
 * logits, zero biases.  Returns 0 (with ctx's error set) on failure. */
static inline int mnc_net_new(mmgan_ctx *ctx, mnc_net *m, mmgan_rng *rng)
{
    static const struct { const char *name; int ndim, shape[4]; mmgan_init init; } def[MNC_NP] = {
        {"C.conv1.weight", 4, {32, 1, 3, 3}, MMGAN_INIT_HE_NORMAL}, {"C.conv1.bias", 1, {32}, MMGAN_INIT_ZEROS},
        {"C.conv2.weight", 4, {64, 32, 4, 4}, MMGAN_INIT_HE_NORMAL}, {"C.conv2.bias", 1, {64}, MMGAN_INIT_ZEROS},
        {"C.conv3.weight", 4, {64, 64, 4, 4}, MMGAN_INIT_HE_NORMAL}, {"C.conv3.bias", 1, {64}, MMGAN_INIT_ZEROS},
        {"C.fc1.weight", 2, {MNC_FEATURES, 3136}, MMGAN_INIT_HE_NORMAL}, {"C.fc1.bias", 1, {MNC_FEATURES}, MMGAN_INIT_ZEROS},
        {"C.fc2.weight", 2, {MNC_CLASSES, MNC_FEATURES}, MMGAN_INIT_XAVIER_UNIFORM},
        {"C.fc2.bias", 1, {MNC_CLASSES}, MMGAN_INIT_ZEROS}};
    int i;
    memset(m, 0, sizeof *m);
    for (i = 0; i < MNC_NP; i++) {
        m->p[i] = mmgan_param_new(ctx, def[i].name, def[i].ndim, def[i].shape);
        if (!m->p[i]) return 0;
        if (def[i].init != MMGAN_INIT_ZEROS &&
            mmgan_param_init(m->p[i], def[i].init, def[i].init == MMGAN_INIT_HE_NORMAL ? 0.0f : 1.0f, rng) != MMGAN_OK)
            return 0;
    }
    return 1;
}

static inline void mnc_net_free(mnc_net *m)
{
    int i;
    for (i = 0; i < MNC_NP; i++) mmgan_param_free(m->p[i]);
}

/* x [B, 1, 28, 28] -> logits [B, 10]; *features gets the [B, 128] layer. */
static inline mmgan_node mnc_forward(mmgan_graph *g, const mnc_net *m, mmgan_node x, mmgan_node *features)
{
#define MNC_P(i) mmgan_parameter(g, m->p[i])
    mmgan_node h = mmgan_relu(g, mmgan_bias_add(g, mmgan_conv2d(g, x, MNC_P(MNC_C1_W), 1, 1), MNC_P(MNC_C1_B)));
    h = mmgan_relu(g, mmgan_bias_add(g, mmgan_conv2d(g, h, MNC_P(MNC_C2_W), 2, 1), MNC_P(MNC_C2_B)));
    h = mmgan_relu(g, mmgan_bias_add(g, mmgan_conv2d(g, h, MNC_P(MNC_C3_W), 2, 1), MNC_P(MNC_C3_B)));
    h = mmgan_relu(g, mmgan_linear(g, mmgan_flatten(g, h), MNC_P(MNC_F1_W), MNC_P(MNC_F1_B)));
    if (features) *features = h;
    return mmgan_linear(g, h, MNC_P(MNC_F2_W), MNC_P(MNC_F2_B));
#undef MNC_P
}

/* Mean cross-entropy of logits [B, 10] against one-hot targets [B, 10], as
 * log-sum-exp shifted by each row's (detached) maximum so exp never overflows. */
static inline mmgan_node mnc_cross_entropy(mmgan_graph *g, mmgan_node logits, mmgan_node onehot)
{
    int s[2];
    mmgan_node shifted, lse;
    mmgan_node_shape(g, logits, s);
    shifted = mmgan_sub(g, logits, mmgan_detach(g, mmgan_max_per_sample(g, logits)));
    lse = mmgan_log(g, mmgan_sum_per_sample(g, mmgan_exp(g, shifted)));
    return mmgan_scale(g, mmgan_sum(g, mmgan_mul(g, onehot, mmgan_sub(g, shifted, lse))), -1.0f / (float)s[0]);
}

/* Loads the classifier's weights from a checkpoint written by
 * tools/mnist_classifier, strictly (model tag, every name and shape).
 * Returns 0 with a message in err on failure. */
static inline int mnc_load(mmgan_ctx *ctx, mnc_net *m, const char *path, char *err, size_t errsize)
{
    mmgan_ckpt *ck = mmgan_ckpt_load(ctx, path);
    const char *tag;
    int i;
    if (!ck) { snprintf(err, errsize, "%s", mmgan_ctx_error(ctx)); return 0; }
    tag = mmgan_ckpt_get_meta(ck, "model");
    if (!tag || strcmp(tag, MNC_MODEL)) {
        snprintf(err, errsize, "%s: not a checkpoint of tools/mnist_classifier (model '%s', expected '%s')", path,
                 tag ? tag : "(none)", MNC_MODEL);
        mmgan_ckpt_free(ck);
        return 0;
    }
    for (i = 0; i < MNC_NP; i++)
        if (mmgan_ckpt_get_param(ck, m->p[i]) != MMGAN_OK) {
            snprintf(err, errsize, "%s", mmgan_ctx_error(ctx));
            mmgan_ckpt_free(ck);
            return 0;
        }
    mmgan_ckpt_free(ck);
    return 1;
}

/* Runs the classifier over n images [n, 1, 28, 28] in [0, 1], `batch` at a
 * time (the last batch padded with zeros), writing logits [n, 10] and, when
 * not NULL, features [n, 128].  Returns 0 with ctx's error set on failure. */
static inline int mnc_apply(mmgan_ctx *ctx, const mnc_net *m, const float *images, long n, int batch, float *logits,
                     float *features)
{
    int xs[4] = {1, 1, 28, 28};
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node x, f = MMGAN_NONE, y, t[2];
    mmgan_plan *plan = NULL;
    float *xb = (float *)malloc(sizeof(float) * 784 * (size_t)batch);
    long i0;
    int ok = 0;
    xs[0] = batch;
    if (!g || !xb) goto done;
    x = mmgan_input(g, "x", 4, xs);
    y = mnc_forward(g, m, x, &f);
    t[0] = y; t[1] = f;
    if (mmgan_graph_status(g) != MMGAN_OK || !(plan = mmgan_plan_new(g, 2, t)) || mmgan_graph_feed(g, x, xb) != MMGAN_OK)
        goto done;
    for (i0 = 0; i0 < n; i0 += batch) {
        long k = n - i0 < batch ? n - i0 : batch;
        memcpy(xb, images + (size_t)i0 * 784, sizeof(float) * 784 * (size_t)k);
        if (k < batch) memset(xb + (size_t)k * 784, 0, sizeof(float) * 784 * (size_t)(batch - k));
        if (mmgan_plan_run(plan) != MMGAN_OK) goto done;
        memcpy(logits + (size_t)i0 * MNC_CLASSES, mmgan_plan_value(plan, y), sizeof(float) * MNC_CLASSES * (size_t)k);
        if (features)
            memcpy(features + (size_t)i0 * MNC_FEATURES, mmgan_plan_value(plan, f),
                   sizeof(float) * MNC_FEATURES * (size_t)k);
    }
    ok = 1;
done:
    mmgan_plan_free(plan);
    mmgan_graph_free(g);
    free(xb);
    return ok;
}

/* Softmax of one row of logits, in double. */
static inline void mnc_softmax(const float *logit, double *p)
{
    double mx = logit[0], s = 0;
    int c;
    for (c = 1; c < MNC_CLASSES; c++) if (logit[c] > mx) mx = logit[c];
    for (c = 0; c < MNC_CLASSES; c++) s += p[c] = exp((double)logit[c] - mx);
    for (c = 0; c < MNC_CLASSES; c++) p[c] /= s;
}

static inline int mnc_argmax(const float *logit)
{
    int c, best = 0;
    for (c = 1; c < MNC_CLASSES; c++) if (logit[c] > logit[best]) best = c;
    return best;
}

/* The classifier score: exp(E_x KL(p(y|x) || p(y))) over `splits` equal
 * consecutive splits of the n rows of class probabilities (n / splits each,
 * the rest unused), mean and population standard deviation over the splits,
 * as the Inception Score's reference code.  probs may hold exact zeros. */
static inline void mnc_score(const double *probs, long n, int splits, double *mean, double *std)
{
    long per = n / splits, i;
    double s1 = 0, s2 = 0;
    int k, c;
    for (k = 0; k < splits; k++) {
        const double *p = probs + (size_t)k * per * MNC_CLASSES;
        double py[MNC_CLASSES] = {0}, kl = 0, v;
        for (i = 0; i < per; i++)
            for (c = 0; c < MNC_CLASSES; c++) py[c] += p[i * MNC_CLASSES + c];
        for (c = 0; c < MNC_CLASSES; c++) py[c] /= (double)per;
        for (i = 0; i < per; i++)
            for (c = 0; c < MNC_CLASSES; c++) {
                double q = p[i * MNC_CLASSES + c];
                if (q > 0) kl += q * (log(q) - log(py[c]));
            }
        v = exp(kl / (double)per);
        s1 += v; s2 += v * v;
    }
    *mean = s1 / splits;
    *std = sqrt(fmax(0.0, s2 / splits - *mean * *mean));
}

/* Eigen-decomposition of a symmetric n x n matrix a (destroyed) by cyclic
 * Jacobi rotations: eigenvalues in w, eigenvectors in the columns of v.
 * Slow (n^3 per sweep) but simple and accurate; n is 128 here. */
static inline void mnc_jacobi(double *a, int n, double *w, double *v)
{
    int i, j, k, sweep;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) v[i * n + j] = i == j;
    for (sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (i = 0; i < n; i++) {
            diag += a[i * n + i] * a[i * n + i];
            for (j = i + 1; j < n; j++) off += a[i * n + j] * a[i * n + j];
        }
        if (off <= 1e-30 * diag || off == 0) break;
        for (i = 0; i < n; i++)
            for (j = i + 1; j < n; j++) {
                double apq = a[i * n + j], theta, t, c, s;
                if (apq == 0) continue;
                theta = (a[j * n + j] - a[i * n + i]) / (2 * apq);
                t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                c = 1 / sqrt(t * t + 1);
                s = t * c;
                for (k = 0; k < n; k++) {   /* columns i and j */
                    double aki = a[k * n + i], akj = a[k * n + j];
                    a[k * n + i] = c * aki - s * akj;
                    a[k * n + j] = s * aki + c * akj;
                }
                for (k = 0; k < n; k++) {   /* rows i and j */
                    double aik = a[i * n + k], ajk = a[j * n + k];
                    a[i * n + k] = c * aik - s * ajk;
                    a[j * n + k] = s * aik + c * ajk;
                }
                for (k = 0; k < n; k++) {
                    double vki = v[k * n + i], vkj = v[k * n + j];
                    v[k * n + i] = c * vki - s * vkj;
                    v[k * n + j] = s * vki + c * vkj;
                }
            }
    }
    for (i = 0; i < n; i++) w[i] = a[i * n + i];
}

/* Mean [d] and covariance [d x d] (divided by n - 1) of n rows of d features. */
static inline void mnc_moments(const float *x, long n, int d, double *mu, double *cov)
{
    long r;
    int i, j;
    for (i = 0; i < d; i++) mu[i] = 0;
    for (r = 0; r < n; r++)
        for (i = 0; i < d; i++) mu[i] += x[(size_t)r * d + i];
    for (i = 0; i < d; i++) mu[i] /= (double)n;
    memset(cov, 0, sizeof(double) * (size_t)d * d);
    for (r = 0; r < n; r++) {
        const float *row = x + (size_t)r * d;
        for (i = 0; i < d; i++) {
            double ci = row[i] - mu[i];
            for (j = i; j < d; j++) cov[i * d + j] += ci * (row[j] - mu[j]);
        }
    }
    for (i = 0; i < d; i++)
        for (j = i; j < d; j++) cov[j * d + i] = cov[i * d + j] /= (double)(n > 1 ? n - 1 : 1);
}

/* The Frechet distance between Gaussians (mu1, s1) and (mu2, s2) in d
 * dimensions: |mu1 - mu2|^2 + tr(s1 + s2 - 2 (s1 s2)^(1/2)), with the trace
 * of the square root as sum sqrt(eig(r s2 r)), r = s1^(1/2): r s2 r is
 * symmetric and has the eigenvalues of s1 s2.  Eigenvalues a rounding error
 * below zero count as zero.  NaN when out of memory. */
static inline double mnc_frechet(const double *mu1, const double *s1, const double *mu2, const double *s2, int d)
{
    size_t dd = (size_t)d * d;
    double *a = (double *)malloc(sizeof(double) * dd), *v = (double *)malloc(sizeof(double) * dd),
           *r = (double *)malloc(sizeof(double) * dd), *t = (double *)malloc(sizeof(double) * dd),
           *w = (double *)malloc(sizeof(double) * (size_t)d);
    double dist = 0, tr = 0;
    int i, j, k;
    if (!a || !v || !r || !t || !w) {
        free(a); free(v); free(r); free(t); free(w);
        return NAN;   /* out of memory */
    }
    for (i = 0; i < d; i++) dist += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + s1[i * d + i] + s2[i * d + i];
    memcpy(a, s1, sizeof(double) * dd);
    mnc_jacobi(a, d, w, v);
    for (i = 0; i < d; i++) w[i] = sqrt(fmax(w[i], 0.0));
    for (i = 0; i < d; i++)          /* r = v diag(sqrt w) v' */
        for (j = 0; j < d; j++) {
            double s = 0;
            for (k = 0; k < d; k++) s += v[i * d + k] * w[k] * v[j * d + k];
            r[i * d + j] = s;
        }
    for (i = 0; i < d; i++)          /* t = r s2 */
        for (j = 0; j < d; j++) {
            double s = 0;
            for (k = 0; k < d; k++) s += r[i * d + k] * s2[k * d + j];
            t[i * d + j] = s;
        }
    for (i = 0; i < d; i++)          /* a = t r, symmetrized against rounding */
        for (j = 0; j < d; j++) {
            double s = 0;
            for (k = 0; k < d; k++) s += t[i * d + k] * r[k * d + j];
            a[i * d + j] = s;
        }
    for (i = 0; i < d; i++)
        for (j = i + 1; j < d; j++) a[i * d + j] = a[j * d + i] = 0.5 * (a[i * d + j] + a[j * d + i]);
    mnc_jacobi(a, d, w, v);
    for (i = 0; i < d; i++) tr += sqrt(fmax(w[i], 0.0));
    free(a); free(v); free(r); free(t); free(w);
    return dist - 2 * tr;
}

/* Everything mnist_eval reports about one set of images. */
typedef struct mnc_report {
    long n;
    double score, score_std;            /* classifier score over 10 splits */
    long counts[MNC_CLASSES];           /* argmax class histogram */
    int covered;                        /* classes with at least one sample */
    double kl_uniform;                  /* KL(histogram || uniform), nats */
    double fid;                         /* Frechet distance to the reference features */
} mnc_report;

/* Scores n images: logits [n, 10] and features [n, 128] already computed;
 * ref_mu/ref_cov are the reference set's feature moments (NULL: no FID).
 * Returns 0 when out of memory. */
static inline int mnc_report_make(const float *logits, const float *features, long n, const double *ref_mu,
                           const double *ref_cov, mnc_report *rep)
{
    double *probs = (double *)malloc(sizeof(double) * MNC_CLASSES * (size_t)n), *mu = NULL, *cov = NULL;
    long i;
    int c;
    if (!probs) return 0;
    memset(rep, 0, sizeof *rep);
    rep->n = n;
    for (i = 0; i < n; i++) {
        mnc_softmax(logits + (size_t)i * MNC_CLASSES, probs + (size_t)i * MNC_CLASSES);
        rep->counts[mnc_argmax(logits + (size_t)i * MNC_CLASSES)]++;
    }
    mnc_score(probs, n, 10, &rep->score, &rep->score_std);
    for (c = 0; c < MNC_CLASSES; c++)
        if (rep->counts[c]) {
            double p = (double)rep->counts[c] / (double)n;
            rep->covered++;
            rep->kl_uniform += p * log(p * MNC_CLASSES);
        }
    rep->fid = -1;
    if (ref_mu && features) {
        mu = (double *)malloc(sizeof(double) * MNC_FEATURES);
        cov = (double *)malloc(sizeof(double) * MNC_FEATURES * MNC_FEATURES);
        if (!mu || !cov) { free(probs); free(mu); free(cov); return 0; }
        mnc_moments(features, n, MNC_FEATURES, mu, cov);
        rep->fid = mnc_frechet(mu, cov, ref_mu, ref_cov, MNC_FEATURES);
        if (rep->fid != rep->fid) { free(probs); free(mu); free(cov); return 0; }
        if (rep->fid < 0) rep->fid = 0;   /* a set against itself: -1e-12 is rounding */
    }
    free(probs); free(mu); free(cov);
    return 1;
}

#endif
