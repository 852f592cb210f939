/* Convolutions through the graph against naive double-precision loops:
 * conv2d by its definition, conv_transpose2d as the adjoint of conv2d
 * (<conv(x), y> == <x, conv_transpose(y)>) and by its own definition, and
 * conv2d_wgrad as the weight gradient, over many shapes. */
#define MMGAN__TEST_HOOKS
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>

static mmgan_ctx *ctx;
static mmgan_rng rng;

typedef struct shp { int n, c, h, w, o, kh, kw, s, p; } shp;

static int out_size(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* y[n][o][oy][ox] = sum x[n][c][oy*s-p+i][ox*s-p+j] w[o][c][i][j], in double. */
static void naive_conv(const shp *q, const float *x, const float *w, double *y)
{
    int ho = out_size(q->h, q->kh, q->s, q->p), wo = out_size(q->w, q->kw, q->s, q->p);
    int n, o, oy, ox, c, i, j;
    for (n = 0; n < q->n; n++) for (o = 0; o < q->o; o++) for (oy = 0; oy < ho; oy++) for (ox = 0; ox < wo; ox++) {
        double s = 0;
        for (c = 0; c < q->c; c++) for (i = 0; i < q->kh; i++) for (j = 0; j < q->kw; j++) {
            int iy = oy * q->s - q->p + i, ix = ox * q->s - q->p + j;
            if (iy < 0 || iy >= q->h || ix < 0 || ix >= q->w) continue;
            s += (double)x[((n * q->c + c) * q->h + iy) * q->w + ix] * w[((o * q->c + c) * q->kh + i) * q->kw + j];
        }
        y[((n * q->o + o) * ho + oy) * wo + ox] = s;
    }
}

/* Transposed conv by its own definition: scatter each input pixel. x [N, O, Ho, Wo]
 * (O = q->o), w [O, C, kh, kw] -> y [N, C, H + op, W + op]. */
static void naive_convt(const shp *q, int oph, int opw, const float *x, const float *w, double *y)
{
    int ho = out_size(q->h, q->kh, q->s, q->p), wo = out_size(q->w, q->kw, q->s, q->p);
    int H = (ho - 1) * q->s - 2 * q->p + q->kh + oph, W = (wo - 1) * q->s - 2 * q->p + q->kw + opw;
    int n, o, oy, ox, c, i, j;
    memset(y, 0, sizeof(double) * q->n * q->c * H * W);
    for (n = 0; n < q->n; n++) for (o = 0; o < q->o; o++) for (oy = 0; oy < ho; oy++) for (ox = 0; ox < wo; ox++)
        for (c = 0; c < q->c; c++) for (i = 0; i < q->kh; i++) for (j = 0; j < q->kw; j++) {
            int yy = oy * q->s - q->p + i, yx = ox * q->s - q->p + j;
            if (yy < 0 || yy >= H || yx < 0 || yx >= W) continue;
            y[((n * q->c + c) * H + yy) * W + yx] +=
                (double)x[((n * q->o + o) * ho + oy) * wo + ox] * w[((o * q->c + c) * q->kh + i) * q->kw + j];
        }
}

/* Weight gradient by its definition, dW = d<conv(x, W), gy>/dW:
 * dw[o][c][i][j] = sum gy[n][o][oy][ox] x[n][c][oy*s-p+i][ox*s-p+j], in double. */
static void naive_wgrad(const shp *q, const float *x, const float *gy, double *dw)
{
    int ho = out_size(q->h, q->kh, q->s, q->p), wo = out_size(q->w, q->kw, q->s, q->p);
    int o, c, i, j, n, oy, ox;
    for (o = 0; o < q->o; o++) for (c = 0; c < q->c; c++) for (i = 0; i < q->kh; i++) for (j = 0; j < q->kw; j++) {
        double s = 0;
        for (n = 0; n < q->n; n++) for (oy = 0; oy < ho; oy++) for (ox = 0; ox < wo; ox++) {
            int iy = oy * q->s - q->p + i, ix = ox * q->s - q->p + j;
            if (iy < 0 || iy >= q->h || ix < 0 || ix >= q->w) continue;
            s += (double)gy[((n * q->o + o) * ho + oy) * wo + ox] * x[((n * q->c + c) * q->h + iy) * q->w + ix];
        }
        dw[((o * q->c + c) * q->kh + i) * q->kw + j] = s;
    }
}

static double max_rel(const float *a, const double *b, size_t n)
{
    double m = 0, mb = 1e-30;
    size_t i;
    for (i = 0; i < n; i++) if (fabs(b[i]) > mb) mb = fabs(b[i]);
    for (i = 0; i < n; i++) { double d = fabs(a[i] - b[i]) / mb; if (d > m) m = d; }
    return m;
}

static float *rnd(size_t n)
{
    float *v = (float *)malloc(n * sizeof(float));
    mmgan_rng_fill_uniform(&rng, v, n, -1.0f, 1.0f);
    return v;
}

static void check_shape(const shp *q)
{
    int ho = out_size(q->h, q->kh, q->s, q->p), wo = out_size(q->w, q->kw, q->s, q->p);
    int xs[4] = {q->n, q->c, q->h, q->w}, ws[4] = {q->o, q->c, q->kh, q->kw}, ys[4] = {q->n, q->o, ho, wo};
    size_t nx = (size_t)q->n * q->c * q->h * q->w, nw = (size_t)q->o * q->c * q->kh * q->kw;
    size_t ny = (size_t)q->n * q->o * ho * wo;
    int oph = q->h - ((ho - 1) * q->s - 2 * q->p + q->kh), opw = q->w - ((wo - 1) * q->s - 2 * q->p + q->kw);
    float *x = rnd(nx), *w = rnd(nw), *gy = rnd(ny);
    double *ref = (double *)malloc(sizeof(double) * (nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw)));
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node X = mmgan_input(g, "x", 4, xs), Wn = mmgan_input(g, "w", 4, ws), GY = mmgan_input(g, "gy", 4, ys);
    mmgan_node t[3];
    mmgan_plan *p;
    char tag[128];
#if MMGAN__WINO   /* in F(4x4, 2x2) (mmgan__wino_fit): check_wino's bound */
    const int wino = q->kh == 4 && q->kw == 4 && q->s == 2 && q->p == 1 && q->c >= 32 && q->o >= 32 && ho <= 16 &&
                     wo <= 16 && q->n * ((ho + 3) / 4) * ((wo + 3) / 4) >= 64;
#else
    const int wino = 0;
#endif
    snprintf(tag, sizeof tag, "x [%d,%d,%d,%d] w [%d,%d,%d,%d] s%d p%d", q->n, q->c, q->h, q->w,
             q->o, q->c, q->kh, q->kw, q->s, q->p);
    mmgan_graph_feed(g, X, x); mmgan_graph_feed(g, Wn, w); mmgan_graph_feed(g, GY, gy);
    t[0] = mmgan_conv2d(g, X, Wn, q->s, q->p);
    t[1] = mmgan__conv_transpose(g, GY, Wn, q->s, q->p, oph, opw);
    t[2] = mmgan_conv2d_wgrad(g, X, GY, q->kh, q->kw, q->s, q->p);
    p = mmgan_plan_new(g, 3, t);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "%s: plan: %s", tag, mmgan_ctx_error(ctx));
    if (p) {
        const float *y = mmgan_plan_value(p, t[0]), *xt = mmgan_plan_value(p, t[1]), *dw = mmgan_plan_value(p, t[2]);
        double e, lhs = 0, rhs = 0, scale = 0;
        size_t i;
        naive_conv(q, x, w, ref);
        e = max_rel(y, ref, ny);
        CHECK(e < (wino ? 3e-5 : 1e-5), "%s: conv2d error %.3g", tag, e);
        /* Adjoint identity, in double from the float results. */
        for (i = 0; i < ny; i++) { lhs += ref[i] * gy[i]; scale += fabs(ref[i] * gy[i]); }
        for (i = 0; i < nx; i++) rhs += (double)x[i] * xt[i];
        CHECK(fabs(lhs - rhs) <= 1e-5 * scale, "%s: <conv(x), y> = %.9g, <x, convT(y)> = %.9g", tag, lhs, rhs);
        naive_convt(q, oph, opw, gy, w, ref);
        e = max_rel(xt, ref, nx);
        CHECK(e < (wino ? 3e-5 : 1e-5), "%s: conv_transpose2d error %.3g", tag, e);
        naive_wgrad(q, x, gy, ref);
        e = max_rel(dw, ref, nw);
        CHECK(e < 1e-5, "%s: conv2d_wgrad error %.3g", tag, e);
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    free(x); free(w); free(gy); free(ref);
}

/* The GEMM's gathered B (implicit im2col) equals the explicit column
 * matrix bit for bit: the weight gradient built here from im2col and a plain
 * GEMM, against the gathered path and the transposed product the op uses. */
static void check_implicit(const shp *s)
{
    mmgan__convgeom q;
    int o = s->o, n = s->n, ckk, hw;
    size_t img, ny, nw;
    float *x, *gy, *cols, *g, *d1, *d2, *d3, *ws;
    q.c = s->c; q.h = s->h; q.w = s->w; q.kh = s->kh; q.kw = s->kw; q.stride = s->s; q.pad = s->p;
    q.ho = out_size(s->h, s->kh, s->s, s->p); q.wo = out_size(s->w, s->kw, s->s, s->p);
    ckk = q.c * q.kh * q.kw; hw = q.ho * q.wo;
    img = (size_t)q.c * q.h * q.w; ny = (size_t)n * o * hw; nw = (size_t)o * ckk;
    x = rnd(n * img); gy = rnd(ny);
    cols = (float *)malloc((size_t)ckk * n * hw * 4); g = (float *)malloc(ny * 4);
    d1 = (float *)malloc(nw * 4); d2 = (float *)malloc(nw * 4); d3 = (float *)malloc(nw * 4);
    ws = (float *)malloc(MMGAN__MAX(mmgan__conv_ws(&q, n, o, MMGAN__WS_COLS_T), mmgan__conv_ws(&q, n, o, MMGAN__WS_GATHER)) * 4);
    /* the explicit reference, in one chunk: GY [O, n HoWo] * cols^T */
    mmgan__im2col_chunk(ctx, &q, x, n, cols, (size_t)n * hw, img);
    mmgan__batch_to_rows(ctx, gy, n, o, hw, g, (size_t)n * hw);
    mmgan_gemm(ctx, 0, 1, o, ckk, n * hw, 1.0f, g, n * hw, cols, n * hw, 0.0f, d1, ckk);
    mmgan__conv2d_bwd_weight_implicit(ctx, &q, n, o, x, gy, d2, ws);
    mmgan__conv2d_bwd_weight_t(ctx, &q, n, o, x, gy, d3, ws);
    if (mmgan__conv_chunk(&q, n) == n && (ckk == 1 || o == 1)) {
        /* The explicit reference is then a matrix-vector product, which
         * mmgan_gemm sums in vector lanes rather than through the blocked
         * kernels: equal to float rounding, not bit for bit. */
        size_t i;
        double e = 0;
        for (i = 0; i < nw; i++) {
            double d = fabs((double)d1[i] - d2[i]) / (fabs((double)d1[i]) + 1e-30);
            if (d > e) e = d;
        }
        CHECK(e < 1e-5, "implicit im2col differs from explicit for x [%d,%d,%d,%d] k %dx%d: %.3g",
              n, s->c, s->h, s->w, s->kh, s->kw, e);
        CHECK(memcmp(d1, d3, nw * 4) == 0, "transposed weight gradient differs for x [%d,%d,%d,%d]", n, s->c, s->h, s->w);
    } else if (mmgan__conv_chunk(&q, n) == n) {   /* with one chunk the sums run in the same order */
        CHECK(memcmp(d1, d2, nw * 4) == 0, "implicit im2col differs from explicit for x [%d,%d,%d,%d] k %dx%d s%d p%d",
              n, s->c, s->h, s->w, s->kh, s->kw, s->s, s->p);
        CHECK(memcmp(d1, d3, nw * 4) == 0, "transposed weight gradient differs for x [%d,%d,%d,%d]", n, s->c, s->h, s->w);
    }
    free(x); free(gy); free(cols); free(g); free(d1); free(d2); free(d3); free(ws);
}

#if defined(MMGAN__AVX512)
/* The row-register unfolding and folding (rows of up to 32 floats) against
 * the plane-based and bounds-tested loops, bit for bit, with a bias: strides
 * 1-4, pads up to past the window, window widths up to 16, and rows both
 * sides of 16 and of 32 (over 32: the general loops for both). */
static void check_rows(void)
{
    /* first the DCGAN's 4x4 stride-2 layers (14x14 -> 7x7 and back, odd
     * and even channel counts) and a stride-1 one, then random ones */
    static const int fixed[][6] = {{3, 14, 14, 2, 1, 4}, {4, 14, 14, 2, 1, 4}, {2, 6, 16, 1, 0, 4}, {1, 16, 7, 2, 2, 4}};
    int t, bad_i = 0, bad_c = 0, fit = 0, fit4 = 0, pair4 = 0;
    mmgan_rng_seed(&rng, 13, 2);   /* the same geometries with and without OpenMP (its checks draw from rng) */
    for (t = 0; t < 400; t++) {
        mmgan__convgeom q;
        size_t ncol, nimg, i;
        float *x, *cols, *a, *b, *bias;
        q.c = 1 + (int)mmgan_rng_below(&rng, 3);
        q.kh = 1 + (int)mmgan_rng_below(&rng, 5);
        q.kw = 1 + (int)mmgan_rng_below(&rng, t % 4 ? 5 : 17);
        q.stride = 1 + (int)mmgan_rng_below(&rng, 4);
        q.pad = (int)mmgan_rng_below(&rng, 4);
        q.h = q.kh + (int)mmgan_rng_below(&rng, 6);
        q.w = MMGAN__MAX(q.kw, 1 + (int)mmgan_rng_below(&rng, 40));
        if (t < 4) {
            q.c = fixed[t][0]; q.h = fixed[t][1]; q.w = fixed[t][2]; q.stride = fixed[t][3]; q.pad = fixed[t][4];
            q.kh = q.kw = fixed[t][5];
        }
        if (q.w + 2 * q.pad < q.kw || q.h + 2 * q.pad < q.kh) continue;
        q.ho = out_size(q.h, q.kh, q.stride, q.pad);
        q.wo = out_size(q.w, q.kw, q.stride, q.pad);
        fit += MMGAN__ROWS_FIT(&q);
        fit4 += MMGAN__ROWS_FIT(&q) && MMGAN__PUT4_FITS(&q);
        pair4 += MMGAN__ROWS_FIT(&q) && MMGAN__PAIR_FITS(&q) && q.kw == 4 && q.ho <= MMGAN__RUNS_HO;   /* mmgan__im2col_rows4 */
        ncol = (size_t)q.c * q.kh * q.kw * (q.ho * q.wo + 3);   /* rows ld = HoWo + 3 apart */
        nimg = (size_t)q.c * q.h * q.w;
        x = rnd(nimg); cols = rnd(ncol); bias = rnd((size_t)q.c);
        a = (float *)malloc(ncol * sizeof(float)); b = (float *)malloc(ncol * sizeof(float));
        memcpy(a, cols, ncol * sizeof(float)); memcpy(b, cols, ncol * sizeof(float));
        mmgan__im2col(&q, x, a, (size_t)q.ho * q.wo + 3);
        mmgan__im2col_any(&q, x, b, (size_t)q.ho * q.wo + 3);
        bad_i += memcmp(a, b, ncol * sizeof(float)) != 0;   /* also: nothing written between rows */
        free(a); free(b);
        a = (float *)malloc(nimg * sizeof(float)); b = (float *)malloc(nimg * sizeof(float));
        for (i = 0; i < 2; i++) {
            mmgan__col2im(&q, cols, (size_t)q.ho * q.wo + 3, i ? bias : NULL, a);
            mmgan__col2im_any(&q, cols, (size_t)q.ho * q.wo + 3, i ? bias : NULL, b);
            bad_c += memcmp(a, b, nimg * sizeof(float)) != 0;
        }
        free(a); free(b); free(x); free(cols); free(bias);
    }
    CHECK(fit > 200, "only %d of the geometries took the row-register paths", fit);
    CHECK(fit4 >= 10, "only %d of the geometries took the unrolled 4-wide folding", fit4);
    CHECK(pair4 >= 10, "only %d of the geometries took the unrolled 4-wide unfolding", pair4);
    CHECK(bad_i == 0, "row-register im2col differs from the general one in %d geometries", bad_i);
    CHECK(bad_c == 0, "row-register col2im differs from the general one in %d geometries", bad_c);
}
#endif

#if defined(MMGAN__AVX512)
/* Output rows whose windows reach into the padding (2.6, mmgan__runs_of):
 * the forward and data-gradient products of a padded layer go in runs of
 * rows and skip those products.  Against the naive loops (check_shape),
 * and bit for bit against the plain products and, on 2, 3 and 8 threads
 * (which split each chunk's images; 8 take rows of the exact length, the
 * scratch's slack being for 4), against one thread: the DCGAN's
 * 14x14 <-> 7x7 layers (runs of 16 images: 21 is chunks of 16 and 5), a
 * 28x28 one (3.6% saved), a 5x5 window with 5 runs, 3x3 stride-1 windows,
 * a non-square image, and random padded geometries.  Counted: the
 * geometries that took runs in each direction, on one thread and on
 * more. */
static void run_three(const shp *q, float *out)
{
    int ho = out_size(q->h, q->kh, q->s, q->p), wo = out_size(q->w, q->kw, q->s, q->p);
    int xs[4] = {q->n, q->c, q->h, q->w}, ws[4] = {q->o, q->c, q->kh, q->kw}, ys[4] = {q->n, q->o, ho, wo};
    const int oph = q->h - ((ho - 1) * q->s - 2 * q->p + q->kh), opw = q->w - ((wo - 1) * q->s - 2 * q->p + q->kw);
    size_t nx = (size_t)q->n * q->c * q->h * q->w, nw = (size_t)q->o * q->c * q->kh * q->kw;
    size_t ny = (size_t)q->n * q->o * ho * wo, sz[3];
    float *x, *w, *gy;
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node X = mmgan_input(g, "x", 4, xs), Wn = mmgan_input(g, "w", 4, ws), GY = mmgan_input(g, "gy", 4, ys), t[3];
    mmgan_plan *p;
    mmgan_rng r;
    size_t off = 0;
    int k;
    mmgan_rng_seed(&r, 5, 5);   /* the same data for every call */
    x = (float *)malloc(nx * sizeof(float)); w = (float *)malloc(nw * sizeof(float)); gy = (float *)malloc(ny * sizeof(float));
    mmgan_rng_fill_uniform(&r, x, nx, -1, 1); mmgan_rng_fill_uniform(&r, w, nw, -1, 1); mmgan_rng_fill_uniform(&r, gy, ny, -1, 1);
    sz[0] = ny; sz[1] = nx; sz[2] = nw;
    mmgan_graph_feed(g, X, x); mmgan_graph_feed(g, Wn, w); mmgan_graph_feed(g, GY, gy);
    t[0] = mmgan_conv2d(g, X, Wn, q->s, q->p);
    t[1] = mmgan__conv_transpose(g, GY, Wn, q->s, q->p, oph, opw);
    t[2] = mmgan_conv2d_wgrad(g, X, GY, q->kh, q->kw, q->s, q->p);
    p = mmgan_plan_new(g, 3, t);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "runs: plan: %s", mmgan_ctx_error(ctx));
    for (k = 0; k < 3 && p; off += sz[k], k++) memcpy(out + off, mmgan_plan_value(p, t[k]), sz[k] * sizeof(float));
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    free(x); free(w); free(gy);
}

/* The weight gradient in runs takes a thread per group of channels. */
#ifdef _OPENMP
static int unfold_groups(const shp *s)
{
    mmgan__convgeom q;
    int g;
    memset(&q, 0, sizeof q);
    q.c = s->c; q.kh = s->kh; q.kw = s->kw;
    g = mmgan__unfold_group(&q, 1);
    return (s->c + g - 1) / g;
}
#endif

static void check_runs(void)
{
    static const shp fixed[] = {{21, 64, 14, 14, 128, 4, 4, 2, 1}, {17, 128, 14, 14, 32, 4, 4, 2, 1},
                                {19, 8, 28, 28, 16, 4, 4, 2, 1}, {18, 8, 9, 9, 16, 5, 5, 1, 2},
                                {17, 16, 10, 12, 24, 3, 3, 1, 1}, {20, 16, 12, 10, 24, 4, 4, 2, 1},
                                {33, 32, 7, 7, 8, 4, 4, 2, 1}};
    int i, t, k, took[3] = {0, 0, 0}, took_t[3] = {0, 0, 0}, tried = 0, teams_short = 0, exact0 = mmgan__runs_exact;
    double big, err;
    mmgan_ctx_set_threads(ctx, 1);
    for (i = 0; i < 40; i++) {
        shp q;
        int ho, wo, h0[3];
        size_t total, nyx;
        float *a, *b;
        if (i < (int)(sizeof fixed / sizeof fixed[0])) {
            q = fixed[i];
        } else {   /* padded, windows of 64 values or more */
            q.kh = 2 + (int)mmgan_rng_below(&rng, 4);
            q.kw = 2 + (int)mmgan_rng_below(&rng, 4);
            q.s = 1 + (int)mmgan_rng_below(&rng, 3);
            q.p = 1 + (int)mmgan_rng_below(&rng, 3);
            q.c = 8 * (1 + (int)mmgan_rng_below(&rng, 4));
            q.o = 8 + (int)mmgan_rng_below(&rng, 33);
            q.h = MMGAN__MAX(q.kh, 3 + (int)mmgan_rng_below(&rng, 12));
            q.w = MMGAN__MAX(q.kw, 3 + (int)mmgan_rng_below(&rng, 14));
            q.n = 17 + (int)mmgan_rng_below(&rng, 20);
        }
        ho = out_size(q.h, q.kh, q.s, q.p);
        wo = out_size(q.w, q.kw, q.s, q.p);
        if (ho < 1 || wo < 1) continue;
        tried++;
        nyx = (size_t)q.n * (q.c * q.h * q.w + q.o * ho * wo);
        total = nyx + (size_t)q.o * q.c * q.kh * q.kw;
        a = (float *)calloc(total, sizeof(float));
        b = (float *)calloc(total, sizeof(float));
        for (k = 0; k < 3; k++) h0[k] = mmgan__runs_hits[k];
        if (i < (int)(sizeof fixed / sizeof fixed[0]) || i % 3 == 0) check_shape(&q);   /* the naive loops: costly */
        run_three(&q, a);
        for (k = 0; k < 3; k++) took[k] += mmgan__runs_hits[k] > h0[k];
        CHECK(i >= 4 || (mmgan__runs_hits[0] > h0[0] && mmgan__runs_hits[1] > h0[1] && mmgan__runs_hits[2] > h0[2]),
              "x [%d,%d,%d,%d] w [%d,%d,%d,%d] s%d p%d: not in runs", q.n, q.c, q.h, q.w, q.o, q.c, q.kh, q.kw, q.s, q.p);
        mmgan__runs_off = 1;
        run_three(&q, b);
        mmgan__runs_off = 0;
        /* the forward and transposed products: the same bits as the plain
         * ones; the weight gradient's sums run in another order */
        CHECK(memcmp(a, b, nyx * sizeof(float)) == 0,
              "x [%d,%d,%d,%d] w [%d,%d,%d,%d] s%d p%d: the products in runs differ from the plain ones",
              q.n, q.c, q.h, q.w, q.o, q.c, q.kh, q.kw, q.s, q.p);
        for (k = 0, big = 0, err = 0; k < (int)(total - nyx); k++) {
            big = MMGAN__MAX(big, fabs(b[nyx + k]));
            err = MMGAN__MAX(err, fabs((double)a[nyx + k] - b[nyx + k]));
        }
        CHECK(err <= 1e-5 * big, "x [%d,%d,%d,%d] w [%d,%d,%d,%d] s%d p%d: the weight gradient in runs is %g off the "
              "plain one (largest %g)", q.n, q.c, q.h, q.w, q.o, q.c, q.kh, q.kw, q.s, q.p, err, big);
        for (t = 2; t <= 8; t = t == 3 ? 8 : t + 1) {
            mmgan_ctx_set_threads(ctx, t);
            for (k = 0; k < 3; k++) h0[k] = mmgan__runs_hits[k];
            run_three(&q, b);
            if (t <= 3)
                for (k = 0; k < 3; k++) took_t[k] += mmgan__runs_hits[k] > h0[k];
#ifdef _OPENMP
            /* teams as large as asked for (OMP_THREAD_LIMIT allowing); the
             * weight gradient's at most MMGAN__WRUNS_THREADS, one per group */
            if (omp_get_thread_limit() >= t) {
                const int groups = unfold_groups(&q);
                for (k = 0; k < 2; k++) teams_short += mmgan__runs_hits[k] > h0[k] && mmgan__runs_team_seen[k] != t;
                teams_short += mmgan__runs_hits[2] > h0[2] &&
                               mmgan__runs_team_seen[2] != MMGAN__MIN(MMGAN__MIN(t, MMGAN__WRUNS_THREADS), groups);
            }
#endif
            CHECK(memcmp(a, b, total * sizeof(float)) == 0,
                  "x [%d,%d,%d,%d] w [%d,%d,%d,%d] s%d p%d: the products in runs differ between 1 and %d threads",
                  q.n, q.c, q.h, q.w, q.o, q.c, q.kh, q.kw, q.s, q.p, t);
        }
        mmgan_ctx_set_threads(ctx, 1);
        free(a); free(b);
    }
    CHECK(took[0] >= 12 && took[1] >= 12 && took[2] >= 12,
          "of %d geometries, %d forward, %d transposed and %d weight-gradient products took runs",
          tried, took[0], took[1], took[2]);
    CHECK(took_t[0] == 2 * took[0] && took_t[1] == 2 * took[1] && took_t[2] == 2 * took[2],
          "on 2 and 3 threads %d, %d and %d products took runs, on one %d, %d and %d (each twice)",
          took_t[0], took_t[1], took_t[2], took[0], took[1], took[2]);
    CHECK(teams_short == 0, "%d products in runs ran on fewer threads than asked for", teams_short);
    (void)exact0;
#ifdef _OPENMP
    /* 8 threads on chunks of 16 images: rows rounded to lines no longer fit */
    CHECK(omp_get_thread_limit() < 8 || mmgan__runs_exact > exact0, "no product in runs took exact rows");
#endif
}

/* The one place the products in runs are not the plain products' bits (2.6,
 * mmgan__conv2d_fwd_runs): a bias-free output whose products all round to
 * zero, the valid ones -0 (positive x, negative weights) and the padding's
 * +0 (positive weights on the last window row, which lies over it for the
 * last output row), is -0 in runs and +0 in the plain product, whose sums
 * end on the padding's term.  Runs on every thread count, so the sign must
 * be the same on 1, 2 and 3 threads; the plain product here must differ,
 * or the data did not reach the case. */
static void check_runs_signed_zero(void)
{
    static const int xs[4] = {16, 64, 14, 14}, ws[4] = {128, 64, 4, 4};
    const size_t nx = 16 * 64 * 196, nw = 128 * 64 * 16, ny = 16 * 128 * 49;
    float *x = (float *)malloc(nx * sizeof(float)), *w = (float *)malloc(nw * sizeof(float));
    float *y[4];
    size_t i;
    int t, neg = 0, plain_pos = 0;
    for (i = 0; i < nx; i++) x[i] = 1e-30f;
    for (i = 0; i < nw; i++) w[i] = i % 16 >= 12 ? 1e-30f : -1e-30f;   /* window row 3 positive */
    for (t = 0; t < 4; t++) {   /* 1, 2, 3 threads, then 1 thread plain */
        mmgan_graph *g = mmgan_graph_new(ctx);
        mmgan_node X = mmgan_input(g, "x", 4, xs), Wn = mmgan_input(g, "w", 4, ws), Y;
        mmgan_plan *p;
        mmgan_ctx_set_threads(ctx, t < 3 ? t + 1 : 1);
        mmgan__runs_off = t == 3;
        mmgan_graph_feed(g, X, x);
        mmgan_graph_feed(g, Wn, w);
        Y = mmgan_conv2d(g, X, Wn, 2, 1);
        p = mmgan_plan_new(g, 1, &Y);
        CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "signed zero: %s", mmgan_ctx_error(ctx));
        y[t] = (float *)malloc(ny * sizeof(float));
        if (p) memcpy(y[t], mmgan_plan_value(p, Y), ny * sizeof(float));
        mmgan_plan_free(p);
        mmgan_graph_free(g);
    }
    mmgan__runs_off = 0;
    mmgan_ctx_set_threads(ctx, 1);
    for (i = 0; i < ny; i++) {
        neg += y[0][i] == 0.0f && signbit(y[0][i]);
        plain_pos += y[3][i] == 0.0f && !signbit(y[3][i]) && signbit(y[0][i]);
    }
    CHECK(neg > 0 && plain_pos > 0, "signed zero: %d outputs -0 in runs, %d of them +0 in the plain product: the "
          "data missed the case", neg, plain_pos);
    for (t = 1; t < 3; t++)
        CHECK(memcmp(y[0], y[t], ny * sizeof(float)) == 0, "signed zero: 1 and %d threads differ", t + 1);
    for (t = 0; t < 4; t++) free(y[t]);
    free(x); free(w);
}

#endif

#if MMGAN__WINO
/* conv2d (tr 0: x [n, c, h, w] -> [n, o, ho, wo]), conv_transpose2d (tr 1:
 * x [n, o, ho, wo] -> [n, c, h, w]), both with w [o, c, 4, 4] + bias, or the
 * weight gradient (tr 2: x [n, c, h, w], w the gradient [n, o, ho, wo] ->
 * [o, c, 4, 4], no bias), through the graph on t threads, into y (ny
 * floats). */
static void run_conv(const shp *q, int tr, const float *x, const float *w, const float *b, int t, float *y, size_t ny)
{
    const int ho = out_size(q->h, q->kh, q->s, q->p), wo = out_size(q->w, q->kw, q->s, q->p);
    int xs[4] = {q->n, q->c, q->h, q->w}, ws[4] = {q->o, q->c, q->kh, q->kw}, bs[1] = {tr ? q->c : q->o};
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node X, Wn, B, Y;
    mmgan_plan *p;
    if (tr == 1) { xs[1] = q->o; xs[2] = ho; xs[3] = wo; }
    if (tr == 2) { ws[0] = q->n; ws[1] = q->o; ws[2] = ho; ws[3] = wo; }
    X = mmgan_input(g, "x", 4, xs);
    Wn = mmgan_input(g, "w", 4, ws);
    B = mmgan_input(g, "b", 1, bs);
    mmgan_ctx_set_threads(ctx, t);
    mmgan_graph_feed(g, X, x);
    mmgan_graph_feed(g, Wn, w);
    mmgan_graph_feed(g, B, b);
    Y = tr == 2 ? mmgan_conv2d_wgrad(g, X, Wn, q->kh, q->kw, q->s, q->p)
        : tr ? mmgan__conv_transpose(g, X, Wn, q->s, q->p, q->h - ((ho - 1) * q->s - 2 * q->p + q->kh),
                                     q->w - ((wo - 1) * q->s - 2 * q->p + q->kw))
             : mmgan_conv2d(g, X, Wn, q->s, q->p);
    if (tr < 2) Y = mmgan_bias_add(g, Y, B);
    p = mmgan_plan_new(g, 1, &Y);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "winograd: %s", mmgan_ctx_error(ctx));
    if (p) memcpy(y, mmgan_plan_value(p, Y), ny * sizeof(float));
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    mmgan_ctx_set_threads(ctx, 1);
}

/* The 4x4 stride-2 products in F(4x4, 2x2) (mmgan__conv2d_wino), conv2d,
 * conv_transpose2d and the weight gradient, against the naive loops in
 * double, with a bias: the critic's 64 -> 128 layer, chunks of about 8
 * images with partial ones (33, 17, 70 images), odd channel counts
 * (the weights' transform's last vector partial), outputs from 3x3 to
 * 16x16, odd image sizes (the transpose's output padding), and two that
 * stay direct (too few tiles, no padding).  The error bound: the
 * transforms' sums in another order and scaled, measured at 2-11e-6 of the
 * largest output on random data (the direct products 2-5e-7), against 3e-5
 * here; a wrong coefficient of a transform put it at 3e-3 to 1.4.  The same
 * bits on 1, 2, 3 and 8 threads, and where an output is not finite (an
 * Inf or a NaN in x, or a sum that overflows) the direct product's bits. */
static void check_wino(void)
{
    static const shp fixed[] = {{16, 64, 14, 14, 128, 4, 4, 2, 1}, {33, 32, 15, 9, 40, 4, 4, 2, 1},
                                {64, 33, 8, 8, 32, 4, 4, 2, 1},    {4, 32, 32, 32, 33, 4, 4, 2, 1},
                                {70, 48, 7, 7, 36, 4, 4, 2, 1},    {17, 32, 14, 14, 32, 4, 4, 2, 1},
                                {2, 40, 4, 5, 32, 4, 4, 2, 1},     {12, 32, 6, 6, 32, 4, 4, 2, 0}};
    int i, t, k, tr, h0, took = 0, fell = 0, tried = 0;
    for (i = 0; i < (int)(sizeof fixed / sizeof fixed[0]); i++) {
        if (test_light(16.0 * fixed[i].n * fixed[i].o * out_size(fixed[i].h, 4, 2, fixed[i].p) *
                       out_size(fixed[i].w, 4, 2, fixed[i].p) * fixed[i].c))
            continue;
        tried += i < 6 ? 3 : 0;
        for (tr = 0; tr < 3; tr++) {
            const shp *q = &fixed[i];
            const int ho = out_size(q->h, 4, 2, q->p), wo = out_size(q->w, 4, 2, q->p), in = i < 6;
            const size_t big = (size_t)q->n * q->c * q->h * q->w, small = (size_t)q->n * q->o * ho * wo;
            const size_t nk = (size_t)q->o * q->c * 16, nx = tr == 1 ? small : big;
            const size_t ny = tr == 2 ? nk : tr ? big : small, nw = tr == 2 ? small : nk;
            float *x = rnd(nx), *w = rnd(nw), *b = rnd((size_t)(tr ? q->c : q->o));
            float *y = (float *)malloc(ny * 4), *y2 = (float *)malloc(ny * 4);
            double *ref = (double *)malloc(ny * sizeof(double)), e;
            const size_t plane = tr == 2 ? 16 : ny / ((size_t)q->n * (tr ? q->c : q->o));
            size_t j;
            char tag[96];
            snprintf(tag, sizeof tag, "%s x [%d,%d,%d,%d] w [%d,%d,4,4] p%d",
                     tr == 2 ? "conv2d_wgrad" : tr ? "conv_transpose2d" : "conv2d", q->n, tr == 1 ? q->o : q->c,
                     tr == 1 ? ho : q->h, tr == 1 ? wo : q->w, q->o, q->c, q->p);
            h0 = mmgan__wino_hits[tr];
            run_conv(q, tr, x, w, b, 1, y, ny);
            took += mmgan__wino_hits[tr] > h0;
            CHECK((mmgan__wino_hits[tr] > h0) == in, "%s: %s F(4x4, 2x2)", tag, in ? "not in" : "in");
            if (tr == 2) naive_wgrad(q, x, w, ref);
            else if (tr) naive_convt(q, q->h - (2 * ho + 2 - 2 * q->p), q->w - (2 * wo + 2 - 2 * q->p), x, w, ref);
            else naive_conv(q, x, w, ref);
            for (j = 0; j < ny && tr < 2; j++) ref[j] += b[j / plane % (tr ? q->c : q->o)];
            e = max_rel(y, ref, ny);
            CHECK(e < 3e-5, "%s: error %.3g", tag, e);
            for (t = 2; t <= 8; t = t == 3 ? 8 : t + 1) {
                run_conv(q, tr, x, w, b, t, y2, ny);
                CHECK(memcmp(y, y2, ny * 4) == 0, "%s: differs on 1 and %d threads", tag, t);
            }
            for (k = 0; k < 3 && in; k++) {   /* an Inf, a NaN, an overflow: the direct product */
                float *x2 = (float *)malloc(nx * 4), *w2 = (float *)malloc(nw * 4);
                memcpy(x2, x, nx * 4);
                memcpy(w2, w, nw * 4);
                if (k < 2) x2[nx / 2 + 7 * (size_t)i] = k ? NAN : INFINITY;
                else for (j = 0; j < nw; j++) w2[j] *= 3e37f;
                h0 = mmgan__wino_hits[tr];
                run_conv(q, tr, x2, w2, b, 1 + k % 2, y, ny);
                fell += mmgan__wino_hits[tr] > h0;
                mmgan__wino_off = 1;
                run_conv(q, tr, x2, w2, b, 1, y2, ny);
                mmgan__wino_off = 0;
                for (j = 0; j < ny && isfinite(y2[j]); j++) {}
                CHECK(j < ny && memcmp(y, y2, ny * 4) == 0, "%s: %s: not the direct product's bits", tag,
                      k == 0 ? "an Inf" : k == 1 ? "a NaN" : "overflow");
                free(x2); free(w2);
            }
            free(x); free(w); free(b); free(y); free(y2); free(ref);
        }
    }
    CHECK(took == tried && fell == 3 * tried, "%d of %d products in F(4x4, 2x2), %d of %d tried there before the direct one",
          took, tried, fell, 3 * tried);
    if (!test_light(16.0 * 16 * 256 * 49 * 32)) {
        /* a plan made with it switched off, run with it on: each product
         * in F(4x4, 2x2) where its scratch holds it, direct where not (here
         * none has room: 256 channels on one side, 32 on the other, make
         * the transformed weights larger than the direct product's
         * scratch), and the same values either way (within the bound) */
        static const int xs[4] = {16, 32, 14, 14}, ws[4] = {256, 32, 4, 4}, gs[4] = {16, 256, 7, 7};
        const size_t len[3] = {16 * 256 * 49, 16 * 32 * 196, 256 * 32 * 16};
        float *x = rnd(16 * 32 * 196), *w = rnd(256 * 32 * 16), *gy = rnd(16 * 256 * 49), *out[2][3];
        int v, ran = 0;
        for (v = 0; v < 2; v++) {
            mmgan_graph *g = mmgan_graph_new(ctx);
            mmgan_node X = mmgan_input(g, "x", 4, xs), Wn = mmgan_input(g, "w", 4, ws), GY = mmgan_input(g, "gy", 4, gs);
            mmgan_node t[3];
            mmgan_plan *p;
            mmgan_graph_feed(g, X, x); mmgan_graph_feed(g, Wn, w); mmgan_graph_feed(g, GY, gy);
            t[0] = mmgan_conv2d(g, X, Wn, 2, 1);
            t[1] = mmgan_conv_transpose2d(g, GY, Wn, 2, 1, 0);
            t[2] = mmgan_conv2d_wgrad(g, X, GY, 4, 4, 2, 1);
            mmgan__wino_off = v;
            p = mmgan_plan_new(g, 3, t);
            mmgan__wino_off = 0;
            for (i = 0; i < 3; i++) ran -= mmgan__wino_hits[i];
            CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "winograd, planned %s: %s", v ? "without" : "with",
                  mmgan_ctx_error(ctx));
            for (i = 0; i < 3; i++) ran += mmgan__wino_hits[i];
            for (i = 0; i < 3; i++) {
                out[v][i] = (float *)calloc(len[i], sizeof(float));
                if (p) memcpy(out[v][i], mmgan_plan_value(p, t[i]), len[i] * sizeof(float));
            }
            mmgan_plan_free(p);
            mmgan_graph_free(g);
        }
        for (i = 0; i < 3; i++) {
            double big = 0, err = 0;
            size_t j;
            for (j = 0; j < len[i]; j++) {
                big = MMGAN__MAX(big, fabs(out[0][i][j]));
                err = MMGAN__MAX(err, fabs((double)out[0][i][j] - out[1][i][j]));
            }
            CHECK(err <= 6e-5 * big, "winograd, planned without it: product %d off by %g (largest %g)", i, err, big);
            free(out[0][i]); free(out[1][i]);
        }
        CHECK(ran == 3, "of 3 products planned with F(4x4, 2x2) and 3 without, %d took it (3: those planned "
              "without it have no room for it)", ran);
        free(x); free(w); free(gy);
    }
}
#endif

/* The chunks of images a conv's products take may follow the thread count
 * (and do, for the forward and data-gradient products): the outputs must
 * not.  Forward, transposed and weight gradient with 2 to most threads, bit
 * for bit against 1. */
#define MOST_THREADS 3
static void check_threads(const shp *q, int most)
{
    int ho = out_size(q->h, q->kh, q->s, q->p), wo = out_size(q->w, q->kw, q->s, q->p);
    int xs[4] = {q->n, q->c, q->h, q->w}, ws[4] = {q->o, q->c, q->kh, q->kw}, ys[4] = {q->n, q->o, ho, wo}, t, k;
    const int outpad = (q->h + 2 * q->p - q->kh) % q->s;
    size_t nx = (size_t)q->n * q->c * q->h * q->w, nw = (size_t)q->o * q->c * q->kh * q->kw;
    size_t ny = (size_t)q->n * q->o * ho * wo;
    float *x, *w, *gy, *out[MOST_THREADS];
    mmgan_graph *gs[MOST_THREADS];   /* freed at the end, so that no run finds an earlier one's outputs */
    mmgan_plan *ps[MOST_THREADS];
    mmgan_node r3[MOST_THREADS][3];
    size_t sz[3];
    if (test_light((double)ny * nw / q->o)) return;
    x = rnd(nx); w = rnd(nw); gy = rnd(ny);
    sz[0] = ny; sz[1] = nx; sz[2] = nw;
    if (most > MOST_THREADS) most = MOST_THREADS;
    CHECK(q->h == q->w && q->kh == q->kw, "check_threads takes square images and windows (one out_pad)");
    for (t = 0; t < most; t++) {
        mmgan_graph *g = mmgan_graph_new(ctx);
        mmgan_node X = mmgan_input(g, "x", 4, xs), Wn = mmgan_input(g, "w", 4, ws), GY = mmgan_input(g, "gy", 4, ys), r[3];
        mmgan_plan *p;
        size_t off = 0;
        mmgan_ctx_set_threads(ctx, t + 1);
        mmgan_graph_feed(g, X, x); mmgan_graph_feed(g, Wn, w); mmgan_graph_feed(g, GY, gy);
        r[0] = mmgan_conv2d(g, X, Wn, q->s, q->p);
        r[1] = mmgan_conv_transpose2d(g, GY, Wn, q->s, q->p, outpad);   /* back to x's size */
        r[2] = mmgan_conv2d_wgrad(g, X, GY, q->kh, q->kw, q->s, q->p);
        p = mmgan_plan_new(g, 3, r);
        CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "threads %d: %s", t + 1, mmgan_ctx_error(ctx));
        out[t] = (float *)calloc(nx + ny + nw, sizeof(float));
        for (k = 0; k < 3 && p; off += sz[k], k++) memcpy(out[t] + off, mmgan_plan_value(p, r[k]), sz[k] * sizeof(float));
        gs[t] = g; ps[t] = p;
        for (k = 0; k < 3; k++) r3[t][k] = r[k];
    }
    for (t = 1; t < most; t++)
        CHECK(memcmp(out[0], out[t], (nx + ny + nw) * sizeof(float)) == 0,
              "x [%d,%d,%d,%d] w [%d,%d,%d,%d]: conv2d, conv_transpose2d or conv2d_wgrad differ between 1 and %d threads",
              q->n, q->c, q->h, q->w, q->o, q->c, q->kh, q->kw, t + 1);
    /* A plan run on another thread count than it was made with (the
     * caller's to change at any time): the one-thread plan on 3 threads,
     * the plan of the most threads on one (whose chunks of images are the
     * largest).  Each op's scratch was sized when the plan was made; the
     * same bits, and no run past it (main counts those). */
    for (t = 0; t < most; t += most > 1 ? most - 1 : 1) {
        const int run = t == 0 ? 3 : 1;
        size_t off = 0;
        if (!ps[t]) continue;
        mmgan_ctx_set_threads(ctx, run);
        CHECK(mmgan_plan_run(ps[t]) == MMGAN_OK, "planned on %d thread%s, run on %d: %s", t + 1, t ? "s" : "", run,
              mmgan_ctx_error(ctx));
        for (k = 0; k < 3; off += sz[k], k++)
            if (memcmp(out[0] + off, mmgan_plan_value(ps[t], r3[t][k]), sz[k] * sizeof(float))) break;
        CHECK(k == 3, "x [%d,%d,%d,%d] w [%d,%d,%d,%d]: product %d of a plan made on %d thread%s differs run on %d",
              q->n, q->c, q->h, q->w, q->o, q->c, q->kh, q->kw, k, t + 1, t ? "s" : "", run);
    }
    mmgan_ctx_set_threads(ctx, 1);
    for (t = 0; t < most; t++) {
        free(out[t]);
        mmgan_plan_free(ps[t]);
        mmgan_graph_free(gs[t]);
    }
    free(x); free(w); free(gy);
}

/* Sparse columns (2.6): conv2d (with and without bias) and its weight
 * gradient on mostly-zero inputs against the naive loops in double, the
 * sparse path taken (and not for dense inputs), the same bits on 1, 2 and 3
 * threads.  Patterns: 0 one nonzero pixel of one channel per image and
 * every third image zero (an L-inf gradient with samples inside the margin);
 * 1 about 1% of pixels nonzero in every channel (5: 3%, which leaves a
 * quarter to a half of the columns of wider windows); 2 all zeros; 3 x dense
 * and gy nonzero at about 5% of its columns (the weight gradient from gy's
 * side); 4 dense (the ordinary path); 6 as 0 with an Inf in w and in gy,
 * 7 as 3 with an Inf in x (0 Inf is NaN: every column computed); 8 the
 * first image dense but for its first channel, the rest zero.  A
 * product takes the sparse path when at most a quarter of its columns
 * multiply anything (counted here), and of the first image's, its windows
 * hold 64 values or more and a batch of 32 columns fits in its scratch. */
static void check_sparse(const shp *q, int pattern)
{
    int ho = out_size(q->h, q->kh, q->s, q->p), wo = out_size(q->w, q->kw, q->s, q->p);
    int xs[4] = {q->n, q->c, q->h, q->w}, ws[4] = {q->o, q->c, q->kh, q->kw}, ys[4] = {q->n, q->o, ho, wo};
    int bs[1], t, k, b, i, hits[MOST_THREADS], most = MOST_THREADS;
    size_t nx = (size_t)q->n * q->c * q->h * q->w, nw = (size_t)q->o * q->c * q->kh * q->kw;
    size_t ny = (size_t)q->n * q->o * ho * wo, plane = (size_t)q->h * q->w, hw = (size_t)ho * wo, e;
    float *x = rnd(nx), *w = rnd(nw), *gy = rnd(ny), *bias = rnd((size_t)q->o), *out[MOST_THREADS];
    double *ref = (double *)malloc(sizeof(double) * (ny > nw ? ny : nw)), err;
    mmgan_graph *gs[MOST_THREADS];
    mmgan_plan *ps[MOST_THREADS];
    mmgan_node r[3], r0 = 0, r2 = 0;
    char tag[160];
    bs[0] = q->o;
    snprintf(tag, sizeof tag, "sparse %d: x [%d,%d,%d,%d] w [%d,%d,%d,%d] s%d p%d", pattern, q->n, q->c, q->h, q->w,
             q->o, q->c, q->kh, q->kw, q->s, q->p);
    if (pattern == 0 || pattern == 2 || pattern == 6) {
        memset(x, 0, nx * sizeof(float));
        for (b = 0; b < q->n && pattern != 2; b++)
            if (b % 3 != 1)
                x[(size_t)b * q->c * plane + mmgan_rng_below(&rng, (uint32_t)(q->c * plane))] = 0.5f + mmgan_rng_uniform(&rng);
    } else if (pattern == 1 || pattern == 5) {
        for (b = 0; b < q->n; b++)
            for (e = 0; e < plane; e++)
                if (mmgan_rng_below(&rng, pattern == 1 ? 100 : 33) != 0)
                    for (k = 0; k < q->c; k++) x[((size_t)b * q->c + k) * plane + e] = 0.0f;
    } else if (pattern == 3 || pattern == 7) {
        for (b = 0; b < q->n; b++)
            for (e = 0; e < hw; e++)
                if (mmgan_rng_below(&rng, 20) != 0)
                    for (k = 0; k < q->o; k++) gy[((size_t)b * q->o + k) * hw + e] = 0.0f;
    }
    if (pattern == 6) {   /* a window's first weight, and one gy value */
        w[0] = INFINITY;
        gy[0] = INFINITY;
    }
    if (pattern == 7) {   /* gy's first column zero, so that dw has Inf x 0 there */
        x[0] = INFINITY;
        for (k = 0; k < q->o; k++) gy[(size_t)k * hw] = 0.0f;
    }
    if (pattern == 8) {
        memset(x, 0, plane * sizeof(float));
        memset(x + (size_t)q->c * plane, 0, (nx - (size_t)q->c * plane) * sizeof(float));
    }
    mmgan_ctx_set_threads(ctx, 2);
    if (mmgan_ctx_threads(ctx) == 1) most = 1;   /* no OpenMP: once */
    for (t = 0; t < most; t++) {
        mmgan_graph *g = mmgan_graph_new(ctx);
        mmgan_node X = mmgan_input(g, "x", 4, xs), Wn = mmgan_input(g, "w", 4, ws), GY = mmgan_input(g, "gy", 4, ys);
        mmgan_node B = mmgan_input(g, "b", 1, bs);
        int before = mmgan__sparse_hits;
        mmgan_ctx_set_threads(ctx, t + 1);
        mmgan_graph_feed(g, X, x); mmgan_graph_feed(g, Wn, w); mmgan_graph_feed(g, GY, gy); mmgan_graph_feed(g, B, bias);
        r[0] = mmgan_conv2d(g, X, Wn, q->s, q->p);
        r[1] = mmgan_bias_add(g, mmgan_conv2d(g, X, Wn, q->s, q->p), B);
        r[2] = mmgan_conv2d_wgrad(g, X, GY, q->kh, q->kw, q->s, q->p);
        r0 = r[0]; r2 = r[2];
        ps[t] = mmgan_plan_new(g, 3, r);
        gs[t] = g;
        CHECK(ps[t] && mmgan_plan_run(ps[t]) == MMGAN_OK, "%s: plan: %s", tag, mmgan_ctx_error(ctx));
        hits[t] = mmgan__sparse_hits - before;
        out[t] = (float *)calloc(2 * ny + nw, sizeof(float));
        if (ps[t]) {
            memcpy(out[t], mmgan_plan_value(ps[t], r[0]), ny * sizeof(float));
            memcpy(out[t] + ny, mmgan_plan_value(ps[t], r[1]), ny * sizeof(float));
            memcpy(out[t] + 2 * ny, mmgan_plan_value(ps[t], r[2]), nw * sizeof(float));
        }
    }
    mmgan_ctx_set_threads(ctx, 1);
    if (pattern == 6) {   /* y's channel 0 NaN or Inf in every column, and a NaN in dw's row 0 */
        int nan_y = 1, nan_w = 0;
        for (b = 0; b < q->n; b++) for (e = 0; e < hw; e++) nan_y &= !(fabsf(out[0][(size_t)b * q->o * hw + e]) <= FLT_MAX);
        for (e = 0; e < (size_t)q->c * q->kh * q->kw; e++) nan_w |= out[0][2 * ny + e] != out[0][2 * ny + e];
        CHECK(nan_y && nan_w, "%s: the NaNs of 0 x Inf are missing (y %d, dw %d)", tag, nan_y, nan_w);
        goto counted;
    }
    if (pattern == 7) {   /* dw's first column multiplies gy's zero columns by x's Inf */
        int nan_w = 0;
        for (e = 0; e < nw; e++) nan_w |= out[0][2 * ny + e] != out[0][2 * ny + e];
        CHECK(nan_w, "%s: the NaNs of 0 x Inf are missing from dw", tag);
        goto counted;
    }
    naive_conv(q, x, w, ref);
    err = max_rel(out[0], ref, ny);
    CHECK(err < 1e-5, "%s: conv2d error %.3g", tag, err);
    for (e = 0; e < ny; e++) ref[e] += bias[(e / hw) % (size_t)q->o];
    err = max_rel(out[0] + ny, ref, ny);
    CHECK(err < 1e-5, "%s: conv2d + bias error %.3g", tag, err);
    naive_wgrad(q, x, gy, ref);
    err = max_rel(out[0] + 2 * ny, ref, nw);
    if (pattern == 2) for (e = 0, err = 0; e < nw; e++) err += fabs(out[0][2 * ny + e]);
    CHECK(err < 1e-5, "%s: conv2d_wgrad error %.3g", tag, err);
counted:
    /* conv2d twice and the weight gradient (unless its window is one
     * AVX-512 vector: always dense), by the columns that multiply anything */
    {
        size_t xcols = 0, wcols = 0, x0 = 0, w0 = 0, total = (size_t)q->n * hw, ckk = (size_t)q->c * q->kh * q->kw;
        size_t maps = ((size_t)q->n * (plane + 2 * hw) + 3) / 4, need = maps + 16 + (ckk + (size_t)q->o + 1) * 32;
        int want, n, oy, ox, c, i2, j2, deep = ckk >= MMGAN__SPARSE_MIN_K;
        mmgan__convgeom g1;
        g1.c = q->c; g1.kh = q->kh; g1.kw = q->kw;
        for (n = 0; n < q->n; n++) for (oy = 0; oy < ho; oy++) for (ox = 0; ox < wo; ox++) {
            int xnz = 0, gnz = 0;
            for (c = 0; c < q->c; c++) for (i2 = 0; i2 < q->kh; i2++) for (j2 = 0; j2 < q->kw; j2++) {
                int iy = oy * q->s - q->p + i2, ix = ox * q->s - q->p + j2;
                if (iy >= 0 && iy < q->h && ix >= 0 && ix < q->w) xnz |= x[((n * q->c + c) * q->h + iy) * q->w + ix] != 0;
            }
            for (c = 0; c < q->o; c++) gnz |= gy[((n * q->o + c) * ho + oy) * wo + ox] != 0;
            xcols += (size_t)xnz;
            wcols += (size_t)(xnz && gnz);
            if (n == 0) { x0 += (size_t)xnz; w0 += (size_t)(xnz && gnz); }
        }
        if (q->n == 70 && pattern == 0)
            CHECK(xcols > MMGAN__SPARSE_COLS, "%s: %lu columns, one gathered product", tag, (unsigned long)xcols);
        want = pattern == 3 || pattern == 4 || pattern >= 6 || !deep ? 0
             : xcols * 4 <= total && x0 * 4 <= hw && mmgan__conv_scratch(gs[0], &gs[0]->nodes[r0]) >= need ? 2 : 0;
        if (pattern != 4 && pattern < 6 && deep && !mmgan__wgrad_dot(&g1) && wcols * 4 <= total && w0 * 4 <= hw &&
            mmgan__conv_scratch(gs[0], &gs[0]->nodes[r2]) >= need)
            want++;
        for (t = 0; t < most; t++)
            CHECK(hits[t] == want, "%s, %d thread%s: %d products took the sparse path, not %d", tag, t + 1,
                  t ? "s" : "", hits[t], want);
    }
    for (t = 1; t < most; t++)
        CHECK(memcmp(out[0], out[t], (2 * ny + nw) * sizeof(float)) == 0, "%s: 1 and %d threads differ", tag, t + 1);
    for (t = 0; t < most; t++) {
        free(out[t]);
        mmgan_plan_free(ps[t]);
        mmgan_graph_free(gs[t]);
    }
    (void)i;
    free(x); free(w); free(gy); free(bias); free(ref);
}

#ifdef MMGAN__OMP
/* On threads each thread unfolds and multiplies its own images of each
 * chunk, with no barrier between chunks: the matrices of two threads must
 * not overlap in any two chunks (a thread ahead would overwrite one behind,
 * as when they followed each chunk's split: the classifier's batches of 100
 * in chunks of 18), and must lie within the scratch.  Layouts for the
 * critic's layer, the classifier's 3x3 one and the critic's first layer (1
 * channel, 28x28), batches 1-100, 2-4 threads. */
static void check_own_layout(void)
{
    static const int geo[3][3] = {{64, 4, 14}, {64, 3, 14}, {1, 4, 28}};   /* channels, window, size */
    int gi, n, nt, bad = 0, used = 0;
    for (gi = 0; gi < 3; gi++)
        for (n = 1; n <= 100; n++)
            for (nt = 2; nt <= 4; nt++) {
                mmgan__convgeom q;
                const int o = 128;
                int chunk, hw, t, u, b0, b1, s, e, s2, e2;
                size_t rows, cap;
                q.c = geo[gi][0]; q.kh = q.kw = geo[gi][1]; q.h = q.w = geo[gi][2]; q.stride = 2; q.pad = 1;
                q.ho = q.wo = (q.h + 2 - q.kh) / 2 + 1;
                hw = q.ho * q.wo; rows = (size_t)q.c * q.kh * q.kw + o;
                chunk = mmgan__conv_chunk_nt(&q, n, nt);
                mmgan_ctx_set_threads(ctx, nt);
                if (!mmgan__conv_own(ctx, &q, n, o, o, chunk)) continue;
                used++;
                /* the scratch the plan sizes, less the weights packed after the matrices */
                cap = mmgan__conv_ws(&q, n, o, MMGAN__WS_COLS) - 16;
                if (mmgan__conv_packs_w(&q, n)) cap -= mmgan__gemm_apk_floats(&mmgan__gemm_kernels[0], o, (int)rows - o);
                for (t = 0; t < nt; t++)
                    for (u = 0; u < nt; u++)
                        for (b0 = 0; b0 < n; b0 += chunk)
                            for (b1 = 0; b1 < n; b1 += chunk) {
                                size_t ld, ld2;
                                const size_t a0 = mmgan__own_part(rows, chunk, MMGAN__MIN(chunk, n - b0), hw, t, nt,
                                                                  &s, &e, &ld), a1 = a0 + rows * ld;
                                const size_t c0 = mmgan__own_part(rows, chunk, MMGAN__MIN(chunk, n - b1), hw, u, nt,
                                                                  &s2, &e2, &ld2), c1 = c0 + rows * ld2;
                                if (a1 > cap || (t != u && s < e && s2 < e2 && a0 < c1 && c0 < a1)) bad++;
                            }
            }
    mmgan_ctx_set_threads(ctx, 1);
    CHECK(used > 100 && bad == 0, "threads' own column matrices: %d overlaps or overruns in %d layouts",
          bad, used);
}
#endif

/* bias_add on a conv2d or conv_transpose2d becomes part of it: values,
 * gradients and the gradients of a gradient norm (a penalty's double
 * backward) must be those of the op followed by a separate add, bit for bit
 * (the op without bias is also read, so both run), and the output the naive
 * loop + b to rounding.  transpose: conv_transpose2d from q's output size
 * back to its input size. */
static void check_bias(const shp *q, int transpose)
{
    int ho = out_size(q->h, q->kh, q->s, q->p), wo = out_size(q->w, q->kw, q->s, q->p);
    int oph = transpose ? (q->h + 2 * q->p - q->kh) % q->s : 0, opw = transpose ? (q->w + 2 * q->p - q->kw) % q->s : 0;
    int xs[4] = {q->n, q->c, q->h, q->w}, ws[4] = {q->o, q->c, q->kh, q->kw}, ys[4] = {q->n, q->o, ho, wo};
    int *ins = transpose ? ys : xs, *outs = transpose ? xs : ys, bo = transpose ? q->c : q->o;
    int bs4[4] = {1, 1, 1, 1}, k, same = 1;
    size_t nin = (size_t)ins[0] * ins[1] * ins[2] * ins[3], nwt = (size_t)q->o * q->c * q->kh * q->kw;
    size_t nout = (size_t)outs[0] * outs[1] * outs[2] * outs[3], plane = (size_t)outs[2] * outs[3], i, sz[6];
    float *x = rnd(nin), *w = rnd(nwt), *b = rnd((size_t)bo), *t = rnd(nout);
    double *ref = (double *)malloc(nout * sizeof(double));
    mmgan_graph *g = mmgan_graph_new(ctx);
    mmgan_node X = mmgan_input(g, "x", 4, ins), W = mmgan_input(g, "w", 4, ws), B = mmgan_input(g, "b", 1, &bo);
    mmgan_node T = mmgan_input(g, "t", 4, outs), c, y[2], wrt[3], gr[2][3], pg[2][2], tg[12];
    mmgan_plan *p;
    bs4[1] = bo;
    mmgan_graph_feed(g, X, x); mmgan_graph_feed(g, W, w); mmgan_graph_feed(g, B, b); mmgan_graph_feed(g, T, t);
    if (oph != opw) {   /* out_pad is one value for both axes: such a shape has no transpose to test */
        mmgan_graph_free(g);
        free(x); free(w); free(b); free(t); free(ref);
        return;
    }
    c = transpose ? mmgan_conv_transpose2d(g, X, W, q->s, q->p, oph) : mmgan_conv2d(g, X, W, q->s, q->p);
    y[0] = mmgan_bias_add(g, c, B);
    y[1] = mmgan_add(g, c, mmgan_reshape(g, B, 4, bs4));
    wrt[0] = X; wrt[1] = W; wrt[2] = B;
    for (k = 0; k < 2; k++) {
        mmgan_node l = mmgan_sum(g, mmgan_mul(g, mmgan_tanh(g, y[k]), T));
        mmgan_grad(g, l, 3, wrt, gr[k]);
        mmgan_grad(g, mmgan_sum(g, mmgan_square(g, gr[k][0])), 2, wrt + 1, pg[k]);
        tg[6 * k] = y[k];
        tg[6 * k + 1] = gr[k][0]; tg[6 * k + 2] = gr[k][1]; tg[6 * k + 3] = gr[k][2];
        tg[6 * k + 4] = pg[k][0]; tg[6 * k + 5] = pg[k][1];
    }
    CHECK(y[0] >= 0 && g->nodes[y[0]].op == g->nodes[c].op && g->nodes[y[0]].nin == 3, "bias_add on a %s is fused",
          transpose ? "conv_transpose2d" : "conv2d");
    p = mmgan_plan_new(g, 12, tg);
    CHECK(p && mmgan_plan_run(p) == MMGAN_OK, "conv + bias plan: %s", mmgan_ctx_error(ctx));
    if (p) {
        sz[0] = nout; sz[1] = nin; sz[2] = nwt; sz[3] = (size_t)bo; sz[4] = nwt; sz[5] = (size_t)bo;
        for (k = 0; k < 6; k++)
            same &= memcmp(mmgan_plan_value(p, tg[k]), mmgan_plan_value(p, tg[6 + k]), sz[k] * sizeof(float)) == 0;
        CHECK(same, "%s + bias differs from it then add for x [%d,%d,%d,%d] k %dx%d s%d p%d",
              transpose ? "conv_transpose2d" : "conv2d", q->n, q->c, q->h, q->w, q->kh, q->kw, q->s, q->p);
        if (transpose) naive_convt(q, oph, opw, x, w, ref);
        else naive_conv(q, x, w, ref);
        for (i = 0; i < nout; i++) ref[i] += b[i / plane % (size_t)bo];
        CHECK(max_rel(mmgan_plan_value(p, y[0]), ref, nout) < 1e-5, "%s + bias against the naive loop",
              transpose ? "conv_transpose2d" : "conv2d");
    }
    mmgan_plan_free(p);
    mmgan_graph_free(g);
    free(x); free(w); free(b); free(t); free(ref);
}

int main(void)
{
    static const shp fixed[] = {
        {64 / 16, 1, 28, 28, 64, 4, 4, 2, 1},   /* the MNIST critic's first layer (smaller batch) */
        {2, 64, 14, 14, 128, 4, 4, 2, 1},       /* its second layer */
        {1, 1, 1, 1, 1, 1, 1, 1, 0},
        {1, 3, 5, 5, 2, 5, 5, 1, 0},            /* kernel covers the image */
        {4, 256, 7, 7, 128, 7, 7, 1, 0},        /* ... the generator's z -> 7x7 layer (smaller batch) */
        {3, 5, 4, 6, 7, 4, 6, 2, 0},            /* ... with a stride and a non-square window */
        {3, 2, 7, 9, 5, 3, 3, 1, 1},
        {2, 3, 8, 8, 4, 3, 3, 2, 1},
        {2, 4, 9, 9, 3, 4, 4, 2, 1},            /* out_pad 1 for the transpose */
        {1, 2, 6, 7, 3, 2, 3, 3, 2},
        {5, 1, 4, 4, 2, 1, 1, 1, 0},
        {2, 2, 3, 3, 2, 5, 5, 1, 2},            /* pad larger than half the kernel */
        {23, 64, 14, 14, 4, 4, 4, 2, 1},        /* 50k columns per image: chunks of 20 and 3 images */
        {23, 1, 28, 28, 6, 4, 4, 2, 1},         /* a 16-value window in chunks of 20 and 3 images */
        {3, 1, 12, 12, 27, 4, 4, 2, 1},         /* ... 27 channels: rows by 16, 8 and 3 */
        {2, 1, 10, 10, 20, 3, 3, 1, 1},         /* ... 9 values, rows by 16 and 4 */
        {2, 2, 9, 9, 17, 2, 2, 1, 0},           /* ... 2 channels of 2x2 */
        {2, 2, 70, 66, 3, 3, 3, 2, 1},          /* padded plane over MMGAN__PLANE_MAX: the bounds-tested loops */
    };
    int i;
    test_suite = "test_conv";
    ctx = mmgan_ctx_new(NULL);
    mmgan_rng_seed(&rng, 11, 1);
    for (i = 0; i < (int)(sizeof fixed / sizeof fixed[0]); i++) {
        /* one thread makes the column matrix in channel groups, more whole
         * (builds without OpenMP have one thread: once is enough) */
        mmgan_ctx_set_threads(ctx, 2);
        if (mmgan_ctx_threads(ctx) > 1) check_shape(&fixed[i]);
        mmgan_ctx_set_threads(ctx, 1);
        check_shape(&fixed[i]);
        check_implicit(&fixed[i]);
        check_bias(&fixed[i], 0);
        check_bias(&fixed[i], 1);
    }
#if defined(MMGAN__AVX512)
    /* the 4x4 stride-2 layers go in runs only without F(4x4, 2x2) */
#  if MMGAN__WINO
    mmgan__wino_off = 1;
#  endif
    check_rows();
    check_runs();
    check_runs_signed_zero();
#  if MMGAN__WINO
    mmgan__wino_off = 0;
#  endif
#endif
#if MMGAN__WINO
    check_wino();
#endif
    {
        /* the critic's layer (made in channel groups on one thread; 21
         * images are chunks of 20 and 1 there, as its batch of 64 is 3 x
         * 20 + 4, at a third of the cost under qemu (on AVX-512 in runs,
         * chunks of 16 and 5: mmgan__runs_chunk), and chunks of 10, 10
         * and 1 on two threads, where each thread unfolds and multiplies
         * its own images: 5 and 5, then 0 and 1; 1 and 2 threads only, the
         * costly one), one output channel in chunks of 14 and 2 on one
         * thread, 8 and 8 on two, 9 and 7 on three (the weights packed
         * once whatever the threads: one chunk unpacked would be a
         * matrix-vector product, summed in another order), 12 images in
         * chunks of 8 and 4 on one thread, of 4 on two and of 6 on three
         * (rounded up to whole images a thread), one output channel in one
         * chunk (a matrix-vector
         * product, which must not be split into groups on one thread
         * only), groups of 28 channels of 3x3 windows (252 rows, not a
         * whole number of micro-kernel tiles), the critic's first layer,
         * 256 output channels (each of two threads its own rows of the
         * gathered weight gradient; 18 images, 9 and 6 a thread of their
         * own on two and three threads), the critic's
         * layer with 24 output channels, which every kernel set's threads
         * take as their own images (12, 12 and 1 on three threads, 10, 10
         * and 5 on two), 257 channels of 1x1 windows with 300 on the small
         * side (groups of 255 and 2 rows on one thread: a last group of one
         * row was a matrix-vector product, summed in another order), and
         * one output channel of 1x1 outputs, 3 and 7 images (chunks of 2 and
         * 1 on two threads, 6 and 1 on three: a last chunk of one image was
         * a product of one row and one column, summed in another order) */
        static const shp thr[] = {{21, 64, 14, 14, 128, 4, 4, 2, 1}, {16, 512, 4, 4, 1, 4, 4, 1, 1},
                                  {12, 512, 7, 7, 1, 4, 4, 1, 0}, {2, 64, 4, 4, 1, 4, 4, 1, 1},
                                  {8, 64, 9, 9, 16, 3, 3, 1, 1}, {64, 1, 28, 28, 64, 4, 4, 2, 1},
                                  {18, 32, 8, 8, 256, 4, 4, 2, 1}, {25, 64, 14, 14, 24, 4, 4, 2, 1},
                                  {8, 257, 4, 4, 300, 1, 1, 1, 0}, {3, 64, 6, 6, 1, 5, 5, 3, 0},
                                  {7, 64, 3, 3, 1, 3, 3, 3, 1}};
        mmgan__convgeom g1;
        g1.c = 512; g1.h = g1.w = 4; g1.kh = g1.kw = 4; g1.stride = 1; g1.pad = 1; g1.ho = g1.wo = 3;
        CHECK(mmgan__conv_chunk_nt(&g1, 16, 1) == 14 && mmgan__conv_chunk_nt(&g1, 16, 2) == 8 &&
                  mmgan__conv_chunk_nt(&g1, 16, 3) == 9 && mmgan__conv_packs_w(&g1, 16),
              "the one-channel case no longer splits differently by threads, its weights packed");
        g1.h = g1.w = 7; g1.pad = 0; g1.ho = g1.wo = 4;
        CHECK(mmgan__conv_chunk_nt(&g1, 12, 1) == 8 && mmgan__conv_chunk_nt(&g1, 12, 2) == 4 &&
                  mmgan__conv_chunk_nt(&g1, 12, 3) == 6,
              "12 images of 512 channels no longer take chunks of 8, 4 and 6 on 1, 2 and 3 threads");
        g1.c = 64; g1.h = g1.w = 14; g1.stride = 2; g1.pad = 1; g1.ho = g1.wo = 7;
        CHECK(mmgan__conv_chunk_nt(&g1, 21, 1) == 20 && mmgan__conv_chunk_nt(&g1, 21, 2) == 10 &&
                  mmgan__conv_chunk(&g1, 21) < 21,
              "the critic's layer of 21 images is no longer chunks of 20 and 1 on one thread and of 10 on two");
        for (i = 0; i < (int)(sizeof thr / sizeof thr[0]); i++) check_threads(&thr[i], i == 0 ? 2 : MOST_THREADS);
#ifdef MMGAN__OMP
        check_own_layout();
        /* the critic's first layer (batch 64, 1 channel): chunks of 20 on
         * two threads, each thread multiplying its own images (its chunks'
         * products, split between the threads, ran slower than on one) */
        memset(&g1, 0, sizeof g1);
        g1.c = 1; g1.h = g1.w = 28; g1.kh = g1.kw = 4; g1.stride = 2; g1.pad = 1; g1.ho = g1.wo = 14;
        mmgan_ctx_set_threads(ctx, 2);
        CHECK(mmgan__conv_chunk_nt(&g1, 64, 2) == 20 &&
                  (mmgan_ctx_threads(ctx) < 2 || mmgan__conv_own(ctx, &g1, 64, 64, 64, 20)),
              "the critic's first layer no longer takes its own images on two threads");
        mmgan_ctx_set_threads(ctx, 1);
#endif
    }
    {
        /* the critic's layer (narrower), its first layer (16-value windows:
         * dense), a 3x3 window with padding, a 1x1 window (its unpadded
         * weight gradient has no scratch of its own: dense), a non-square
         * one with a pad of 2, 70 small images (one-hot: more columns than
         * one gathered product takes) */
        static const shp sp[] = {{6, 16, 14, 14, 32, 4, 4, 2, 1}, {5, 1, 28, 28, 64, 4, 4, 2, 1},
                                 {4, 8, 9, 7, 5, 3, 3, 1, 1}, {3, 64, 8, 8, 4, 1, 1, 1, 0},
                                 {2, 5, 11, 10, 7, 5, 3, 2, 2}, {70, 8, 6, 6, 9, 3, 3, 1, 1}};
        int pat;
        for (i = 0; i < (int)(sizeof sp / sizeof sp[0]); i++)
            for (pat = 0; pat < 9; pat++) check_sparse(&sp[i], pat);
    }
    for (i = 0; i < 60; i++) {
        shp q;
        q.n = 1 + (int)mmgan_rng_below(&rng, 3);
        q.c = 1 + (int)mmgan_rng_below(&rng, 5);
        q.o = 1 + (int)mmgan_rng_below(&rng, 6);
        q.kh = 1 + (int)mmgan_rng_below(&rng, 5);
        q.kw = 1 + (int)mmgan_rng_below(&rng, 5);
        q.s = 1 + (int)mmgan_rng_below(&rng, 3);
        q.p = (int)mmgan_rng_below(&rng, 3);
        q.h = q.kh + (int)mmgan_rng_below(&rng, 9);
        q.w = q.kw + (int)mmgan_rng_below(&rng, 9);
        check_shape(&q);
    }
    CHECK(mmgan__scratch_overruns == 0, "%d op runs wrote past their planned scratch", mmgan__scratch_overruns);
    mmgan_ctx_free(ctx);
    return test_summary();
}
