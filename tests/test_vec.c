/* Vector kernels against double-precision libm and plain loops, over dense
 * sweeps, every tail length, and the special values (0, -0, denormals,
 * overflow and underflow edges, infinities, NaN). */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"
#include "harness.h"
#include <math.h>
#include <stdlib.h>

#define NX 40000
static float xs[NX], ys[NX], zs[NX];

/* Error of got against the double reference want, in units of the float
 * spacing at want (denormal results measured in units of the smallest denormal). */
static double ulps(float got, double want)
{
    double spacing;
    int e;
    if (isnan(want)) return isnan(got) ? 0 : 1e30;
    if (fabs(want) > FLT_MAX && fabs(want) >= ldexp(2.0 - ldexp(1.0, -24), 127)) want = want > 0 ? INFINITY : -INFINITY;
    if (isinf(want)) return (isinf(got) && (got > 0) == (want > 0)) ? 0 : 1e30;
    if (fabs(want) < FLT_MIN) spacing = ldexp(1.0, -149);
    else { frexp(want, &e); spacing = ldexp(1.0, e - 24); }
    return fabs((double)got - want) / spacing;
}

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* ARMv7 NEON arithmetic flushes denormal inputs and results to zero in
 * hardware (the header documents it): there the reference is taken the same way. */
#if defined(MMGAN__NEON32)
static int flushes = 1;
#else
static int flushes = 0;
#endif
static double flush(double x) { return flushes && fabs(x) < FLT_MIN ? 0.0 * x : x; }

typedef void (*vfn)(size_t, const float *, float *);

static double worst_ulps(vfn f, double (*ref)(double), int n, double *at)
{
    double worst = 0;
    int i;
    f((size_t)n, xs, ys);
    for (i = 0; i < n; i++) {
        double u = ulps(ys[i], flush(ref(flush(xs[i]))));
        if (u > worst) { worst = u; *at = xs[i]; }
    }
    return worst;
}

static void sweep(float lo, float hi)
{
    int i;
    for (i = 0; i < NX; i++) xs[i] = lo + (hi - lo) * (float)i / (NX - 1);
}

static void test_transcendentals(void)
{
    double w, at = 0;
    static const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-40f, 88.72f, 88.73f, -87.33f, -87.34f,
                                     -100.0f, -103.9f, -104.5f, 200.0f, -200.0f, 9.0f, -9.2f, 20.0f, 0.3466f,
                                     -0.3466f, 1e-4f, -1e-4f, 5e-8f};
    int i, ns = (int)(sizeof specials / sizeof specials[0]);
    sweep(-110.0f, 95.0f);
    w = worst_ulps(mmgan_vec_exp, exp, NX, &at);
    CHECK(w <= 2.0, "exp: %.2f ulp at %g", w, at);
    printf("exp worst %.2f ulp on [-110, 95]\n", w);
    sweep(-10.0f, 10.0f);
    w = worst_ulps(mmgan_vec_tanh, tanh, NX, &at);
    CHECK(w <= 4.0, "tanh: %.2f ulp at %g", w, at);
    printf("tanh worst %.2f ulp on [-10, 10]\n", w);
    sweep(-1e-3f, 1e-3f);
    w = worst_ulps(mmgan_vec_tanh, tanh, NX, &at);
    CHECK(w <= 4.0, "tanh near 0: %.2f ulp at %g", w, at);
    sweep(-100.0f, 30.0f);
    w = worst_ulps(mmgan_vec_sigmoid, ref_sigmoid, NX, &at);
    CHECK(w <= 4.0, "sigmoid: %.2f ulp at %g", w, at);
    printf("sigmoid worst %.2f ulp on [-100, 30]\n", w);
    for (i = 0; i < ns; i++) xs[i] = specials[i];
    xs[ns] = INFINITY; xs[ns + 1] = -INFINITY; xs[ns + 2] = NAN;
    w = worst_ulps(mmgan_vec_exp, exp, ns + 3, &at);
    CHECK(w <= 2.0, "exp special values: %.2f ulp at %g", w, at);
    w = worst_ulps(mmgan_vec_tanh, tanh, ns + 3, &at);
    CHECK(w <= 4.0, "tanh special values: %.2f ulp at %g", w, at);
    w = worst_ulps(mmgan_vec_sigmoid, ref_sigmoid, ns + 3, &at);
    CHECK(w <= 4.0, "sigmoid special values: %.2f ulp at %g", w, at);
    mmgan_vec_tanh(1, xs + 1, ys);
    CHECK(signbit(ys[0]), "tanh(-0) is -0");
}

/* The same answer at every position of every length: tails included. */
static void test_tails(void)
{
    int n, i, ok = 1;
    for (i = 0; i < 64; i++) xs[i] = (float)(i * 0.37 - 11);
    mmgan_vec_tanh(64, xs, zs);
    for (n = 0; n <= 37; n++) {
        for (i = 0; i < 64; i++) ys[i] = -7.0f;
        mmgan_vec_tanh((size_t)n, xs, ys);
        for (i = 0; i < n; i++) ok &= ys[i] == zs[i];
        for (i = n; i < 64; i++) ok &= ys[i] == -7.0f;
    }
    CHECK(ok, "tail handling changes results or writes past n");
}

static void test_arith(void)
{
    mmgan_rng r;
    float a[203], b[203], y[203], y0[203];
    /* a float variable: under FLT_EVAL_METHOD 1 (s390x) the constant 0.2f
     * itself would carry double precision */
    volatile float slope = 0.2f;
    int i, ok;
    mmgan_rng_seed(&r, 3, 3);
    mmgan_rng_fill_normal(&r, a, 203, 0, 1);
    mmgan_rng_fill_normal(&r, b, 203, 0, 1);
#define CHECK_MAP(expr_call, want_expr, tol, name) do { \
        memcpy(y, b, sizeof y); memcpy(y0, b, sizeof y0); expr_call; ok = 1; \
        for (i = 0; i < 203; i++) { double want = (want_expr); \
            ok &= fabs(y[i] - want) <= (tol) * (fabs(want) + 1e-30) + 1e-37; } \
        CHECK(ok, "%s disagrees with the plain loop", name); } while (0)
    CHECK_MAP(mmgan_vec_axpy(203, 0.75f, a, y), 0.75 * a[i] + (double)y0[i], 1e-6 + 1e-6 * fabs(a[i] / (fabs(0.75 * a[i] + y0[i]) + 1e-9)), "axpy");
    CHECK_MAP(mmgan_vec_axpby(203, -1.5f, a, 0.25f, y), -1.5 * a[i] + 0.25 * (double)y0[i], 1e-6 + 1e-6 * fabs(a[i] / (fabs(-1.5 * a[i] + .25 * y0[i]) + 1e-9)), "axpby");
    CHECK_MAP(mmgan_vec_scale(203, 3.0f, a, y), 3.0 * a[i], 6e-8, "scale");
    CHECK_MAP(mmgan_vec_add(203, a, b, y), (double)a[i] + b[i], 6e-8, "add");
    CHECK_MAP(mmgan_vec_sub(203, a, b, y), (double)a[i] - b[i], 6e-8, "sub");
    CHECK_MAP(mmgan_vec_mul(203, a, b, y), (double)a[i] * b[i], 6e-8, "mul");
    CHECK_MAP(mmgan_vec_relu(203, a, y), a[i] > 0 ? a[i] : 0.0, 0, "relu");
    CHECK_MAP(mmgan_vec_leaky_relu(203, slope, a, y), a[i] > 0 ? a[i] : (double)(float)(slope * a[i]), 0, "leaky_relu");
    memcpy(y, a, sizeof y);
    mmgan_vec_relu(203, y, y);
    ok = 1;
    for (i = 0; i < 203; i++) ok &= y[i] == (a[i] > 0 ? a[i] : 0.0f);
    CHECK(ok, "in-place relu");
    {
        double s = 0, d = 0;
        for (i = 0; i < 203; i++) { s += a[i]; d += (double)a[i] * b[i]; }
        CHECK(fabs(mmgan_vec_sum(203, a) - s) < 1e-12, "sum");
        CHECK(fabs(mmgan_vec_dot(203, a, b) - d) < 1e-12, "dot");
    }
    {
        /* the documented order, to the bit, for every tail length: value i
         * in partial sum i mod 8, then ((0+4) + (2+6)) + ((1+5) + (3+7)) */
        int n, bad = 0;
        for (n = 0; n <= 203; n++) {
            double s[8] = {0, 0, 0, 0, 0, 0, 0, 0}, d[8] = {0, 0, 0, 0, 0, 0, 0, 0}, ws, wd;
            for (i = 0; i < n; i++) { s[i % 8] += a[i]; d[i % 8] += (double)a[i] * b[i]; }
            ws = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
            wd = ((d[0] + d[4]) + (d[2] + d[6])) + ((d[1] + d[5]) + (d[3] + d[7]));
            if (mmgan_vec_sum((size_t)n, a) != ws || mmgan_vec_dot((size_t)n, a, b) != wd) bad++;
        }
        CHECK(bad == 0, "vec_sum or vec_dot not in the documented order for %d of 204 lengths", bad);
    }
    {
        /* batch norm's one-pass plane sums are those same sums, bit for bit */
        int n, bad = 0;
        for (n = 0; n <= 203; n++) {
            double o[4], u[4];
            mmgan__bn_plane((size_t)n, a, b, o);
            mmgan__bn_plane((size_t)n, a, NULL, u);
            if (o[0] != mmgan_vec_sum((size_t)n, a) || o[1] != mmgan_vec_dot((size_t)n, a, a) ||
                o[2] != mmgan_vec_sum((size_t)n, b) || o[3] != mmgan_vec_dot((size_t)n, b, a) ||
                u[0] != o[0] || u[1] != o[1] || u[2] != 0.0 || u[3] != 0.0)
                bad++;
        }
        CHECK(bad == 0, "batch norm's plane sums differ from vec_sum and vec_dot for %d of 204 lengths", bad);
    }
}

int main(void)
{
    test_suite = "vec";
    test_transcendentals();
    test_tails();
    test_arith();
    return test_summary();
}
