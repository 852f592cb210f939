/* Cross-check of mmgan's graphs and automatic differentiation against PyTorch.
 *
 * This program builds small networks with fixed random weights through the
 * public graph API, runs them once and writes to a file (argv[1], default
 * build/crosscheck.bin) every weight, input and constant, and for each network:
 *   out      the forward output
 *   L        sum(out * r) for a fixed random r
 *   gL.<w>   dL/dw for every weight w and the input x           (first order)
 *   P        the gradient penalty mean_i (||d sum(out) / dx_i||_2 - 1)^2,
 *            with the per-sample norm sqrt(sum_per_sample(gx^2) + 1e-12)
 *   gP.<w>   dP/dw for every weight and x                       (second order)
 *   hv.<w>   d <v, dL/dx> / dw for a fixed random v (Hessian-vector product)
 *   t3.<w>   d <v2, hv.x> / dw for a fixed random v2            (third order)
 *   state0/state1.<s>  batch-norm running statistics before and after the run.
 * Then the GAN loss API (mmgan.h 1.11-1.13) on small fixed critics: every
 * loss kind x relativistic form (loss_*), every gradient penalty points x
 * norm x shape (gp_*), the energies with the EBGAN and BEGAN losses (ebgan_*),
 * each recording its own named targets (values and gradients; see "GAN
 * losses, gradient penalties, EBGAN" below).
 * tests/crosscheck.py rebuilds the same networks in float64 PyTorch (the
 * definitions there mirror the ones here, by network name) and compares.
 *
 * File format, all little-endian:
 *   "MMGANXC1"
 *   records: u8 type, u32 name length, name bytes, then
 *     'T' tensor: u32 ndim, u32 shape[ndim], f32 data[numel]
 *     'E' error:  u32 length, message bytes (a network that could not be built or run)
 *   'Z' end of file (the record type alone).
 * Tensor names are "<net>.<kind>" or "<net>.<kind>.<name>".
 *
 * The exit status is 1 if any network failed to build or run (the file then
 * holds an 'E' record for it, which the Python side counts as a failure). */
#define MMGAN_IMPLEMENTATION
#include "../mmgan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXP 16 /* trainable parameters per network */
#define MAXS 8  /* running-statistics parameters per network */

/* ---------------------------------------------------------------- output */

static FILE *out_file;
static int write_failed;

static void put_bytes(const void *p, size_t n)
{
    if (fwrite(p, 1, n, out_file) != n) write_failed = 1;
}

static void put_u8(unsigned v)
{
    unsigned char b = (unsigned char)v;
    put_bytes(&b, 1);
}

static void put_u32(uint32_t v)
{
    unsigned char b[4];
    b[0] = (unsigned char)(v & 0xff);
    b[1] = (unsigned char)((v >> 8) & 0xff);
    b[2] = (unsigned char)((v >> 16) & 0xff);
    b[3] = (unsigned char)((v >> 24) & 0xff);
    put_bytes(b, 4);
}

static void put_str(const char *s)
{
    size_t n = strlen(s);
    put_u32((uint32_t)n);
    put_bytes(s, n);
}

static void put_tensor(const char *name, int ndim, const int *shape, const float *data)
{
    size_t numel = 1, i;
    int d;
    put_u8('T');
    put_str(name);
    put_u32((uint32_t)ndim);
    for (d = 0; d < ndim; d++) {
        put_u32((uint32_t)shape[d]);
        numel *= (size_t)shape[d];
    }
    for (i = 0; i < numel; i++) {
        uint32_t bits;
        memcpy(&bits, &data[i], 4);
        put_u32(bits);
    }
}

static void put_error(const char *net, const char *msg)
{
    char name[128];
    snprintf(name, sizeof name, "%s.error", net);
    put_u8('E');
    put_str(name);
    put_str(msg);
}

/* ---------------------------------------------------------------- networks */

typedef struct xnet {
    const char *name;
    mmgan_ctx *ctx;
    mmgan_graph *g;
    mmgan_rng rng;
    int np;
    mmgan_param *param[MAXP];
    mmgan_node pnode[MAXP];
    int ns;
    mmgan_param *state[MAXS];
    int overflow;     /* more parameters than MAXP / MAXS */
    int setup_failed; /* mmgan_param_new or mmgan_param_init failed */
} xnet;

static void record_name(char *buf, size_t size, const xnet *n, const char *kind, const char *name)
{
    if (name) snprintf(buf, size, "%s.%s.%s", n->name, kind, name);
    else snprintf(buf, size, "%s.%s", n->name, kind);
}

/* New parameter filled with U[center - half, center + half], as a node. */
static mmgan_node P(xnet *n, const char *name, int ndim, const int *shape, float center, float half)
{
    char rec[128];
    mmgan_param *p;
    mmgan_tensor *t;
    size_t i;
    if (n->np == MAXP) { n->overflow = 1; return MMGAN_NONE; }
    p = mmgan_param_new(n->ctx, name, ndim, shape);
    if (!p) { n->setup_failed = 1; return MMGAN_NONE; }
    n->param[n->np] = p;
    n->pnode[n->np++] = MMGAN_NONE;
    if (mmgan_param_init(p, MMGAN_INIT_UNIFORM, half, &n->rng) != MMGAN_OK) { n->setup_failed = 1; return MMGAN_NONE; }
    t = mmgan_param_tensor(p);
    for (i = 0; i < t->numel; i++) t->data[i] += center;
    record_name(rec, sizeof rec, n, "param", name);
    put_tensor(rec, t->ndim, t->shape, t->data);
    n->pnode[n->np - 1] = mmgan_parameter(n->g, p);
    return n->pnode[n->np - 1];
}

/* New running-statistics parameter (not differentiated), U[center +- half]. */
static mmgan_param *S(xnet *n, const char *name, int c, float center, float half)
{
    char rec[128];
    mmgan_param *p;
    mmgan_tensor *t;
    if (n->ns == MAXS) { n->overflow = 1; return NULL; }
    p = mmgan_param_new(n->ctx, name, 1, &c);
    if (!p) { n->setup_failed = 1; return NULL; }
    n->state[n->ns++] = p;
    t = mmgan_param_tensor(p);
    mmgan_rng_fill_uniform(&n->rng, t->data, t->numel, center - half, center + half);
    record_name(rec, sizeof rec, n, "state0", name);
    put_tensor(rec, t->ndim, t->shape, t->data);
    return p;
}

/* A constant drawn from N(0, 1), as a node. */
static mmgan_node K(xnet *n, const char *name, int ndim, const int *shape)
{
    char rec[128];
    size_t numel = 1;
    int d;
    float *data;
    mmgan_node c;
    for (d = 0; d < ndim; d++) numel *= (size_t)(shape[d] > 0 ? shape[d] : 1);
    data = (float *)malloc(numel * sizeof(float));
    if (!data) { fprintf(stderr, "crosscheck: out of memory\n"); exit(1); }
    mmgan_rng_fill_normal(&n->rng, data, numel, 0.0f, 1.0f);
    record_name(rec, sizeof rec, n, "const", name);
    put_tensor(rec, ndim, shape, data);
    c = mmgan_constant(n->g, ndim, shape, data);
    free(data);
    return c;
}

/* A random constant with the shape of node y. */
static mmgan_node Klike(xnet *n, const char *name, mmgan_node y)
{
    int shape[MMGAN_MAX_DIMS];
    int ndim;
    if (y == MMGAN_NONE) return MMGAN_NONE;
    ndim = mmgan_node_shape(n->g, y, shape);
    if (ndim <= 0) return MMGAN_NONE;
    return K(n, name, ndim, shape);
}

#define G (n->g)
#define SH(...) ((const int[]){__VA_ARGS__})

/* ------------------------------------------- single ops after a linear layer */
/* Network "u_<op>": x [4, 5] -> h = linear(x, w [6, 5], b [6]) -> y = op(h)
 * -> out = y * k, k a random constant of y's shape (so that sum(out) is never
 * constant, e.g. for batch norm).  Ops marked NB use no bias b. */

typedef mmgan_node (*opfn)(xnet *n, mmgan_node h);

static mmgan_node u_relu(xnet *n, mmgan_node h) { return mmgan_relu(G, h); }
static mmgan_node u_leaky_relu(xnet *n, mmgan_node h) { return mmgan_leaky_relu(G, h, 0.2f); }
static mmgan_node u_sigmoid(xnet *n, mmgan_node h) { return mmgan_sigmoid(G, h); }
static mmgan_node u_tanh(xnet *n, mmgan_node h) { return mmgan_tanh(G, h); }
static mmgan_node u_softplus(xnet *n, mmgan_node h) { return mmgan_softplus(G, h); }
static mmgan_node u_log_sigmoid(xnet *n, mmgan_node h) { return mmgan_log_sigmoid(G, h); }
static mmgan_node u_exp(xnet *n, mmgan_node h) { return mmgan_exp(G, h); }
static mmgan_node u_log(xnet *n, mmgan_node h) { return mmgan_log(G, mmgan_affine(G, mmgan_sigmoid(G, h), 1.0f, 0.5f)); }
static mmgan_node u_sqrt(xnet *n, mmgan_node h) { return mmgan_sqrt(G, mmgan_affine(G, mmgan_square(G, h), 1.0f, 0.25f)); }
static mmgan_node u_abs(xnet *n, mmgan_node h) { return mmgan_abs(G, h); }
static mmgan_node u_square(xnet *n, mmgan_node h) { return mmgan_square(G, h); }
static mmgan_node u_maximum(xnet *n, mmgan_node h) { return mmgan_maximum(G, h, 0.1f); }
static mmgan_node u_scale(xnet *n, mmgan_node h) { return mmgan_scale(G, h, -1.5f); }
static mmgan_node u_affine(xnet *n, mmgan_node h) { return mmgan_affine(G, h, 0.7f, 0.3f); }
static mmgan_node u_add_row(xnet *n, mmgan_node h) { return mmgan_add(G, h, P(n, "c", 1, SH(6), 0, 1)); }
static mmgan_node u_add_col(xnet *n, mmgan_node h) { return mmgan_add(G, P(n, "c", 2, SH(4, 1), 0, 1), h); }
static mmgan_node u_add_scalar(xnet *n, mmgan_node h) { return mmgan_add(G, h, P(n, "c", 1, SH(1), 0, 1)); }
static mmgan_node u_add_self(xnet *n, mmgan_node h) { return mmgan_add(G, h, h); }
static mmgan_node u_sub_row(xnet *n, mmgan_node h) { return mmgan_sub(G, P(n, "c", 1, SH(6), 0, 1), h); }
static mmgan_node u_sub_col(xnet *n, mmgan_node h) { return mmgan_sub(G, h, P(n, "c", 2, SH(4, 1), 0, 1)); }
static mmgan_node u_mul_row(xnet *n, mmgan_node h) { return mmgan_mul(G, h, P(n, "c", 2, SH(1, 6), 0, 1)); }
static mmgan_node u_mul_col(xnet *n, mmgan_node h) { return mmgan_mul(G, P(n, "c", 2, SH(4, 1), 0, 1), h); }
static mmgan_node u_mul_self(xnet *n, mmgan_node h) { return mmgan_mul(G, h, h); }
static mmgan_node u_div_row(xnet *n, mmgan_node h)
{
    mmgan_node c = P(n, "c", 1, SH(6), 0, 1);
    return mmgan_div(G, h, mmgan_affine(G, mmgan_square(G, c), 1.0f, 0.5f));
}
static mmgan_node u_div_col(xnet *n, mmgan_node h)
{
    mmgan_node c = P(n, "c", 2, SH(4, 1), 0, 1);
    return mmgan_div(G, c, mmgan_affine(G, mmgan_square(G, h), 1.0f, 0.5f));
}
static mmgan_node u_div_self(xnet *n, mmgan_node h)
{
    mmgan_node d = mmgan_affine(G, mmgan_square(G, h), 1.0f, 0.5f);
    return mmgan_div(G, mmgan_mul(G, h, d), mmgan_mul(G, d, d));
}
static mmgan_node u_sum_to_row(xnet *n, mmgan_node h) { return mmgan_sum_to(G, mmgan_square(G, h), 2, SH(1, 6)); }
static mmgan_node u_sum_to_col(xnet *n, mmgan_node h) { return mmgan_sum_to(G, mmgan_square(G, h), 2, SH(4, 1)); }
static mmgan_node u_sum_to_1d(xnet *n, mmgan_node h) { return mmgan_sum_to(G, mmgan_square(G, h), 1, SH(6)); }
static mmgan_node u_broadcast_row(xnet *n, mmgan_node h)
{
    return mmgan_mul(G, h, mmgan_broadcast_to(G, P(n, "c", 2, SH(1, 6), 0, 1), 2, SH(4, 6)));
}
static mmgan_node u_broadcast_new(xnet *n, mmgan_node h)
{
    return mmgan_mul(G, h, mmgan_broadcast_to(G, P(n, "c", 1, SH(6), 0, 1), 2, SH(4, 6)));
}
static mmgan_node u_broadcast_3d(xnet *n, mmgan_node h)
{
    return mmgan_broadcast_to(G, mmgan_square(G, h), 3, SH(2, 4, 6));
}
static mmgan_node u_matmul_nn(xnet *n, mmgan_node h) { return mmgan_matmul(G, h, P(n, "m", 2, SH(6, 3), 0, 0.5f), 0, 0); }
static mmgan_node u_matmul_nt(xnet *n, mmgan_node h) { return mmgan_matmul(G, h, P(n, "m", 2, SH(3, 6), 0, 0.5f), 0, 1); }
static mmgan_node u_matmul_tn(xnet *n, mmgan_node h) { return mmgan_matmul(G, P(n, "m", 2, SH(4, 3), 0, 0.5f), h, 1, 0); }
static mmgan_node u_matmul_tt(xnet *n, mmgan_node h) { return mmgan_matmul(G, h, P(n, "m", 2, SH(3, 4), 0, 0.5f), 1, 1); }
static mmgan_node u_gram_tn(xnet *n, mmgan_node h) { return mmgan_matmul(G, h, h, 1, 0); }
static mmgan_node u_gram_nt(xnet *n, mmgan_node h) { return mmgan_matmul(G, h, h, 0, 1); }
static mmgan_node u_linear_nobias(xnet *n, mmgan_node h) { return mmgan_linear(G, mmgan_tanh(G, h), P(n, "w2", 2, SH(3, 6), 0, 0.5f), MMGAN_NONE); }
static mmgan_node u_linear_chain(xnet *n, mmgan_node h)
{
    return mmgan_linear(G, mmgan_tanh(G, h), P(n, "w2", 2, SH(3, 6), 0, 0.5f), P(n, "b2", 1, SH(3), 0, 0.5f));
}
static mmgan_node u_bias_add(xnet *n, mmgan_node h) { return mmgan_bias_add(G, mmgan_square(G, h), P(n, "c", 1, SH(6), 0, 1)); }
static mmgan_node u_sum(xnet *n, mmgan_node h) { return mmgan_sum(G, mmgan_square(G, h)); }
static mmgan_node u_mean(xnet *n, mmgan_node h) { return mmgan_mean(G, mmgan_square(G, h)); }
static mmgan_node u_sum_per_sample(xnet *n, mmgan_node h) { return mmgan_sum_per_sample(G, mmgan_square(G, h)); }
static mmgan_node u_mean_per_sample(xnet *n, mmgan_node h) { return mmgan_mean_per_sample(G, mmgan_square(G, h)); }
static mmgan_node u_max_abs_per_sample(xnet *n, mmgan_node h) { return mmgan_max_abs_per_sample(G, h); }
static mmgan_node u_max_abs_square(xnet *n, mmgan_node h) { return mmgan_max_abs_per_sample(G, mmgan_square(G, h)); }
static mmgan_node u_softmax(xnet *n, mmgan_node h) { return mmgan_softmax_per_sample(G, h, 1.3f); }
static mmgan_node u_smooth_max1(xnet *n, mmgan_node h) { return mmgan_smooth_max_per_sample(G, h, 1.0f); }
static mmgan_node u_smooth_max3(xnet *n, mmgan_node h) { return mmgan_smooth_max_per_sample(G, h, 3.0f); }
static mmgan_node u_layer_norm(xnet *n, mmgan_node h)
{
    return mmgan_layer_norm(G, h, P(n, "g", 1, SH(6), 1, 0.5f), P(n, "be", 1, SH(6), 0, 0.5f), 1e-5f);
}
static mmgan_node u_layer_norm_plain(xnet *n, mmgan_node h) { return mmgan_layer_norm(G, h, MMGAN_NONE, MMGAN_NONE, 1e-5f); }
static mmgan_node u_layer_norm_gamma(xnet *n, mmgan_node h) { return mmgan_layer_norm(G, h, P(n, "g", 1, SH(6), 1, 0.5f), MMGAN_NONE, 1e-3f); }
static mmgan_node u_batch_norm(xnet *n, mmgan_node h)
{
    return mmgan_batch_norm(G, h, P(n, "g", 1, SH(6), 1, 0.5f), P(n, "be", 1, SH(6), 0, 0.5f),
                            S(n, "rm", 6, 0, 0.5f), S(n, "rv", 6, 1, 0.5f), 0.1f, 1e-5f, 1);
}
static mmgan_node u_batch_norm_plain(xnet *n, mmgan_node h)
{
    return mmgan_batch_norm(G, h, MMGAN_NONE, MMGAN_NONE, S(n, "rm", 6, 0, 0.5f), S(n, "rv", 6, 1, 0.5f), 0.3f, 1e-5f, 1);
}
static mmgan_node u_batch_norm_beta(xnet *n, mmgan_node h)
{
    return mmgan_batch_norm(G, h, MMGAN_NONE, P(n, "be", 1, SH(6), 0, 0.5f),
                            S(n, "rm", 6, 0, 0.5f), S(n, "rv", 6, 1, 0.5f), 0.1f, 1e-3f, 1);
}
static mmgan_node u_batch_norm_eval(xnet *n, mmgan_node h)
{
    return mmgan_batch_norm(G, h, P(n, "g", 1, SH(6), 1, 0.5f), P(n, "be", 1, SH(6), 0, 0.5f),
                            S(n, "rm", 6, 0, 0.5f), S(n, "rv", 6, 1, 0.5f), 0.1f, 1e-5f, 0);
}
static mmgan_node u_batch_norm_eval_plain(xnet *n, mmgan_node h)
{
    return mmgan_batch_norm(G, h, MMGAN_NONE, MMGAN_NONE, S(n, "rm", 6, 0, 0.5f), S(n, "rv", 6, 1, 0.5f), 0.1f, 1e-2f, 0);
}
static mmgan_node u_concat(xnet *n, mmgan_node h) { return mmgan_concat(G, mmgan_square(G, h), mmgan_slice(G, h, 1, 2)); }
static mmgan_node u_slice(xnet *n, mmgan_node h) { return mmgan_slice(G, mmgan_square(G, h), 1, 2); }
static mmgan_node u_pad_batch(xnet *n, mmgan_node h) { return mmgan_pad_batch(G, mmgan_square(G, h), 1, 6); }
static mmgan_node u_detach(xnet *n, mmgan_node h) { return mmgan_add(G, h, mmgan_mul(G, mmgan_detach(G, h), mmgan_square(G, h))); }
static mmgan_node u_reshape_3d(xnet *n, mmgan_node h) { return mmgan_reshape(G, mmgan_square(G, h), 3, SH(4, 3, 2)); }
static mmgan_node u_reshape_batch(xnet *n, mmgan_node h) { return mmgan_reshape(G, mmgan_square(G, h), 2, SH(8, 3)); }
static mmgan_node u_flatten(xnet *n, mmgan_node h)
{
    mmgan_node r = mmgan_reshape(G, h, 4, SH(4, 2, 3, 1));
    return mmgan_flatten(G, mmgan_bias_add(G, mmgan_square(G, r), P(n, "c", 1, SH(2), 0, 1)));
}
static mmgan_node u_fill(xnet *n, mmgan_node h) { return mmgan_mul(G, h, mmgan_fill(G, 2, SH(1, 6), 0.5f)); }
static mmgan_node u_constant(xnet *n, mmgan_node h) { return mmgan_mul(G, mmgan_square(G, h), K(n, "c", 2, SH(4, 6))); }

/* ------------------------------------------------ single ops on images */
/* Network "i_<op>": x [2, 3, 7, 7] -> y = op(x) -> out = y * k. */

static mmgan_node i_conv_s1p0(xnet *n, mmgan_node x) { return mmgan_conv2d(G, x, P(n, "w", 4, SH(4, 3, 3, 3), 0, 0.3f), 1, 0); }
static mmgan_node i_conv_s2p1(xnet *n, mmgan_node x) { return mmgan_conv2d(G, x, P(n, "w", 4, SH(4, 3, 3, 3), 0, 0.3f), 2, 1); }
static mmgan_node i_conv_s3p2k4(xnet *n, mmgan_node x) { return mmgan_conv2d(G, x, P(n, "w", 4, SH(4, 3, 4, 4), 0, 0.3f), 3, 2); }
static mmgan_node i_conv_k1(xnet *n, mmgan_node x) { return mmgan_conv2d(G, x, P(n, "w", 4, SH(5, 3, 1, 1), 0, 0.5f), 1, 0); }
static mmgan_node i_conv_k2x3(xnet *n, mmgan_node x) { return mmgan_conv2d(G, x, P(n, "w", 4, SH(2, 3, 2, 3), 0, 0.4f), 2, 1); }
static mmgan_node i_conv_bias_tanh(xnet *n, mmgan_node x)
{
    mmgan_node c = mmgan_conv2d(G, x, P(n, "w", 4, SH(4, 3, 3, 3), 0, 0.3f), 1, 1);
    return mmgan_tanh(G, mmgan_bias_add(G, c, P(n, "b", 1, SH(4), 0, 0.5f)));
}
static mmgan_node i_convt_s1p0(xnet *n, mmgan_node x) { return mmgan_conv_transpose2d(G, x, P(n, "w", 4, SH(3, 4, 3, 3), 0, 0.3f), 1, 0, 0); }
static mmgan_node i_convt_s2p1op1(xnet *n, mmgan_node x) { return mmgan_conv_transpose2d(G, x, P(n, "w", 4, SH(3, 4, 3, 3), 0, 0.3f), 2, 1, 1); }
static mmgan_node i_convt_s2p1k4(xnet *n, mmgan_node x) { return mmgan_conv_transpose2d(G, x, P(n, "w", 4, SH(3, 2, 4, 4), 0, 0.3f), 2, 1, 0); }
static mmgan_node i_convt_s3p1op2(xnet *n, mmgan_node x) { return mmgan_conv_transpose2d(G, x, P(n, "w", 4, SH(3, 2, 3, 3), 0, 0.3f), 3, 1, 2); }
static mmgan_node i_convt_k2x3(xnet *n, mmgan_node x) { return mmgan_conv_transpose2d(G, x, P(n, "w", 4, SH(3, 2, 2, 3), 0, 0.4f), 2, 0, 1); }
static mmgan_node i_convt_tanh(xnet *n, mmgan_node x)
{
    return mmgan_tanh(G, mmgan_conv_transpose2d(G, x, P(n, "w", 4, SH(3, 4, 3, 3), 0, 0.3f), 2, 1, 0));
}
static mmgan_node i_wgrad_s1p0(xnet *n, mmgan_node x)
{
    mmgan_node gy = mmgan_tanh(G, mmgan_conv2d(G, x, P(n, "w", 4, SH(4, 3, 3, 3), 0, 0.3f), 1, 0));
    return mmgan_conv2d_wgrad(G, x, gy, 3, 3, 1, 0);
}
static mmgan_node i_wgrad_s2p1(xnet *n, mmgan_node x)
{
    mmgan_node gy = mmgan_conv2d(G, mmgan_tanh(G, x), P(n, "w", 4, SH(4, 3, 3, 3), 0, 0.3f), 2, 1);
    return mmgan_conv2d_wgrad(G, x, gy, 3, 3, 2, 1);
}
static mmgan_node i_wgrad_k2x4(xnet *n, mmgan_node x)
{
    mmgan_node gy = mmgan_square(G, mmgan_conv2d(G, x, P(n, "w", 4, SH(2, 3, 2, 4), 0, 0.3f), 2, 1));
    return mmgan_conv2d_wgrad(G, x, gy, 2, 4, 2, 1);
}
static mmgan_node i_bias_add(xnet *n, mmgan_node x) { return mmgan_square(G, mmgan_bias_add(G, x, P(n, "b", 1, SH(3), 0, 1))); }
static mmgan_node i_add_chan(xnet *n, mmgan_node x) { return mmgan_mul(G, x, mmgan_add(G, x, P(n, "c", 3, SH(3, 1, 1), 0, 1))); }
static mmgan_node i_mul_w(xnet *n, mmgan_node x) { return mmgan_mul(G, mmgan_square(G, x), P(n, "c", 2, SH(1, 7), 0, 1)); }
static mmgan_node i_div_sample(xnet *n, mmgan_node x)
{
    mmgan_node s = mmgan_affine(G, mmgan_mean_per_sample(G, mmgan_square(G, x)), 1.0f, 0.1f);
    return mmgan_div(G, x, s);
}
static mmgan_node i_batch_norm(xnet *n, mmgan_node x)
{
    return mmgan_batch_norm(G, x, P(n, "g", 1, SH(3), 1, 0.5f), P(n, "be", 1, SH(3), 0, 0.5f),
                            S(n, "rm", 3, 0, 0.5f), S(n, "rv", 3, 1, 0.5f), 0.1f, 1e-5f, 1);
}
static mmgan_node i_batch_norm_plain(xnet *n, mmgan_node x)
{
    return mmgan_batch_norm(G, x, MMGAN_NONE, MMGAN_NONE, S(n, "rm", 3, 0, 0.5f), S(n, "rv", 3, 1, 0.5f), 0.2f, 1e-5f, 1);
}
static mmgan_node i_batch_norm_eval(xnet *n, mmgan_node x)
{
    return mmgan_batch_norm(G, x, P(n, "g", 1, SH(3), 1, 0.5f), P(n, "be", 1, SH(3), 0, 0.5f),
                            S(n, "rm", 3, 0, 0.5f), S(n, "rv", 3, 1, 0.5f), 0.1f, 1e-5f, 0);
}
static mmgan_node i_layer_norm(xnet *n, mmgan_node x)
{
    return mmgan_layer_norm(G, x, P(n, "g", 3, SH(3, 7, 7), 1, 0.5f), P(n, "be", 3, SH(3, 7, 7), 0, 0.5f), 1e-5f);
}
static mmgan_node i_layer_norm_plain(xnet *n, mmgan_node x) { return mmgan_layer_norm(G, x, MMGAN_NONE, MMGAN_NONE, 1e-5f); }
static mmgan_node i_sum_per_sample(xnet *n, mmgan_node x) { return mmgan_sum_per_sample(G, mmgan_square(G, x)); }
static mmgan_node i_mean_per_sample(xnet *n, mmgan_node x) { return mmgan_mean_per_sample(G, mmgan_tanh(G, x)); }
static mmgan_node i_max_abs_per_sample(xnet *n, mmgan_node x) { return mmgan_max_abs_per_sample(G, mmgan_tanh(G, x)); }
static mmgan_node i_softmax(xnet *n, mmgan_node x) { return mmgan_softmax_per_sample(G, x, 0.7f); }
static mmgan_node i_smooth_max(xnet *n, mmgan_node x) { return mmgan_smooth_max_per_sample(G, x, 2.0f); }
static mmgan_node i_sum(xnet *n, mmgan_node x) { return mmgan_sum(G, mmgan_tanh(G, x)); }
static mmgan_node i_mean(xnet *n, mmgan_node x) { return mmgan_mean(G, mmgan_square(G, x)); }
static mmgan_node i_flatten(xnet *n, mmgan_node x) { return mmgan_flatten(G, mmgan_square(G, x)); }
static mmgan_node i_reshape(xnet *n, mmgan_node x) { return mmgan_reshape(G, mmgan_square(G, x), 4, SH(2, 7, 3, 7)); }
static mmgan_node i_concat(xnet *n, mmgan_node x) { return mmgan_concat(G, mmgan_slice(G, x, 1, 1), mmgan_square(G, x)); }
static mmgan_node i_pad_batch(xnet *n, mmgan_node x) { return mmgan_pad_batch(G, mmgan_square(G, x), 2, 5); }
static mmgan_node i_sum_to(xnet *n, mmgan_node x) { return mmgan_sum_to(G, mmgan_square(G, x), 4, SH(1, 3, 1, 7)); }
static mmgan_node i_broadcast(xnet *n, mmgan_node x)
{
    return mmgan_mul(G, x, mmgan_broadcast_to(G, P(n, "c", 3, SH(3, 1, 7), 0, 1), 4, SH(2, 3, 7, 7)));
}

/* ------------------------------------------------ composite networks */

/* Dense net through every elementwise op, both norms and the batch ops. */
static mmgan_node c_dense(xnet *n, mmgan_node x)
{
    mmgan_node h, h3, s, t1, t2, a, b, c, d, e, m1, m2, m3, m4, sm, f;
    h = mmgan_leaky_relu(G, mmgan_linear(G, x, P(n, "w1", 2, SH(6, 7), 0, 0.5f), P(n, "b1", 1, SH(6), 0, 0.3f)), 0.2f);
    h = mmgan_layer_norm(G, h, P(n, "ln_g", 1, SH(6), 1, 0.5f), P(n, "ln_b", 1, SH(6), 0, 0.5f), 1e-5f);
    h = mmgan_tanh(G, mmgan_linear(G, h, P(n, "w2", 2, SH(4, 6), 0, 0.5f), P(n, "b2", 1, SH(4), 0, 0.3f)));
    h = mmgan_batch_norm(G, h, P(n, "bn_g", 1, SH(4), 1, 0.5f), P(n, "bn_b", 1, SH(4), 0, 0.5f),
                         S(n, "rm", 4, 0, 0.5f), S(n, "rv", 4, 1, 0.5f), 0.1f, 1e-5f, 1);
    h3 = mmgan_linear(G, h, P(n, "w3", 2, SH(3, 4), 0, 0.6f), P(n, "b3", 1, SH(3), 0, 0.3f));
    s = mmgan_sigmoid(G, h3);
    t1 = mmgan_log(G, mmgan_affine(G, s, 1.0f, 0.5f));
    t2 = mmgan_sqrt(G, mmgan_affine(G, mmgan_square(G, h3), 1.0f, 0.25f));
    a = mmgan_mul(G, t1, P(n, "cv", 1, SH(3), 0, 1));
    b = mmgan_div(G, mmgan_softplus(G, h3), mmgan_affine(G, t2, 1.0f, 0.5f));
    c = mmgan_sub(G, mmgan_log_sigmoid(G, h3), mmgan_exp(G, mmgan_scale(G, h3, 0.5f)));
    d = mmgan_add(G, mmgan_mul(G, mmgan_abs(G, h3), mmgan_maximum(G, h3, 0.1f)), mmgan_relu(G, h3));
    e = mmgan_add(G, mmgan_add(G, a, b), mmgan_add(G, c, d));
    m1 = mmgan_mean_per_sample(G, e);
    m2 = mmgan_sum_per_sample(G, e);
    m3 = mmgan_max_abs_per_sample(G, e);
    m4 = mmgan_smooth_max_per_sample(G, e, 1.0f);
    sm = mmgan_softmax_per_sample(G, e, 1.5f);
    f = mmgan_sub(G, mmgan_mul(G, sm, e), m1);
    f = mmgan_add(G, f, mmgan_mul(G, m3, m4));
    f = mmgan_div(G, f, mmgan_affine(G, mmgan_square(G, m2), 1.0f, 1.0f));
    f = mmgan_concat(G, mmgan_slice(G, f, 2, 3), mmgan_slice(G, f, 0, 2));
    f = mmgan_reshape(G, f, 4, SH(5, 3, 1, 1));
    f = mmgan_flatten(G, mmgan_bias_add(G, f, P(n, "fb", 1, SH(3), 0, 0.5f)));
    return mmgan_batch_norm(G, f, P(n, "bn2_g", 1, SH(3), 1, 0.5f), P(n, "bn2_b", 1, SH(3), 0, 0.5f),
                            S(n, "rm2", 3, 0, 0.3f), S(n, "rv2", 3, 0.5f, 0.2f), 0.1f, 1e-5f, 0);
}

/* Convolutional critic: conv, batch norm, layer norm, linear head. */
static mmgan_node c_critic(xnet *n, mmgan_node x)
{
    mmgan_node h;
    h = mmgan_conv2d(G, x, P(n, "w1", 4, SH(4, 2, 3, 3), 0, 0.4f), 2, 1);                 /* [3,4,5,5] */
    h = mmgan_leaky_relu(G, mmgan_bias_add(G, h, P(n, "b1", 1, SH(4), 0, 0.3f)), 0.2f);
    h = mmgan_conv2d(G, h, P(n, "w2", 4, SH(5, 4, 4, 4), 0, 0.2f), 1, 0);                 /* [3,5,2,2] */
    h = mmgan_batch_norm(G, h, P(n, "bn_g", 1, SH(5), 1, 0.5f), P(n, "bn_b", 1, SH(5), 0, 0.5f),
                         S(n, "rm", 5, 0, 0.5f), S(n, "rv", 5, 1, 0.5f), 0.1f, 1e-5f, 1);
    h = mmgan_leaky_relu(G, h, 0.2f);
    h = mmgan_conv2d(G, h, P(n, "w3", 4, SH(6, 5, 2, 2), 0, 0.3f), 1, 1);                 /* [3,6,3,3] */
    h = mmgan_layer_norm(G, h, P(n, "ln_g", 3, SH(6, 3, 3), 1, 0.5f), P(n, "ln_b", 3, SH(6, 3, 3), 0, 0.5f), 1e-5f);
    h = mmgan_leaky_relu(G, h, 0.2f);
    return mmgan_linear(G, mmgan_flatten(G, h), P(n, "w4", 2, SH(1, 54), 0, 0.2f), P(n, "b4", 1, SH(1), 0, 0.3f));
}

/* WGAN-GP style critic without batch norm: samples independent. */
static mmgan_node c_critic_ln(xnet *n, mmgan_node x)
{
    mmgan_node h;
    h = mmgan_conv2d(G, x, P(n, "w1", 4, SH(4, 2, 4, 4), 0, 0.3f), 2, 1);                 /* [3,4,4,4] */
    h = mmgan_leaky_relu(G, mmgan_bias_add(G, h, P(n, "b1", 1, SH(4), 0, 0.3f)), 0.2f);
    h = mmgan_conv2d(G, h, P(n, "w2", 4, SH(6, 4, 4, 4), 0, 0.2f), 2, 1);                 /* [3,6,2,2] */
    h = mmgan_layer_norm(G, h, P(n, "ln_g", 3, SH(6, 2, 2), 1, 0.5f), P(n, "ln_b", 3, SH(6, 2, 2), 0, 0.5f), 1e-5f);
    h = mmgan_leaky_relu(G, h, 0.2f);
    return mmgan_linear(G, mmgan_flatten(G, h), P(n, "w3", 2, SH(1, 24), 0, 0.3f), P(n, "b3", 1, SH(1), 0, 0.3f));
}

/* DCGAN-like generator: linear, reshape, transposed convolutions, batch norm. */
static mmgan_node c_gen(xnet *n, mmgan_node z)
{
    mmgan_node h;
    h = mmgan_relu(G, mmgan_linear(G, z, P(n, "w1", 2, SH(36, 6), 0, 0.5f), P(n, "b1", 1, SH(36), 0, 0.3f)));
    h = mmgan_reshape(G, h, 4, SH(3, 4, 3, 3));
    h = mmgan_conv_transpose2d(G, h, P(n, "wt1", 4, SH(4, 3, 4, 4), 0, 0.3f), 2, 1, 0);  /* [3,3,6,6] */
    h = mmgan_batch_norm(G, h, P(n, "bn_g", 1, SH(3), 1, 0.5f), P(n, "bn_b", 1, SH(3), 0, 0.5f),
                         S(n, "rm", 3, 0, 0.5f), S(n, "rv", 3, 1, 0.5f), 0.1f, 1e-5f, 1);
    h = mmgan_relu(G, h);
    h = mmgan_conv_transpose2d(G, h, P(n, "wt2", 4, SH(3, 2, 3, 3), 0, 0.3f), 2, 1, 1);  /* [3,2,12,12] */
    return mmgan_tanh(G, mmgan_bias_add(G, h, P(n, "bt2", 1, SH(2), 0, 0.3f)));
}

/* ---------------------------------------------------------------- table */

enum { UNARY, UNARY_NB, IMAGE, WHOLE };

typedef struct netdef {
    const char *name;
    int kind;
    opfn fn;
    int xndim;
    int xshape[MMGAN_MAX_DIMS];
} netdef;

#define UN(op) { "u_" #op, UNARY, u_##op, 2, { 4, 5, 1, 1 } }
#define UN_NB(op) { "u_" #op, UNARY_NB, u_##op, 2, { 4, 5, 1, 1 } }
#define IM(op) { "i_" #op, IMAGE, i_##op, 4, { 2, 3, 7, 7 } }

static const netdef nets[] = {
    UN(relu), UN(leaky_relu), UN(sigmoid), UN(tanh), UN(softplus), UN(log_sigmoid), UN(exp),
    UN(log), UN(sqrt), UN(abs), UN(square), UN(maximum), UN(scale), UN(affine),
    UN(add_row), UN(add_col), UN(add_scalar), UN(add_self), UN(sub_row), UN(sub_col),
    UN(mul_row), UN(mul_col), UN(mul_self), UN(div_row), UN(div_col), UN(div_self),
    UN(sum_to_row), UN(sum_to_col), UN(sum_to_1d), UN(broadcast_row), UN(broadcast_new), UN(broadcast_3d),
    UN(matmul_nn), UN(matmul_nt), UN(matmul_tn), UN(matmul_tt), UN(gram_tn), UN(gram_nt),
    UN(linear_nobias), UN(linear_chain), UN(bias_add),
    UN(sum), UN(mean), UN(sum_per_sample), UN(mean_per_sample), UN(max_abs_per_sample), UN(max_abs_square),
    UN(softmax), UN(smooth_max1), UN(smooth_max3),
    UN(layer_norm), UN(layer_norm_plain), UN(layer_norm_gamma),
    /* No bias before batch norm: the loss would not depend on it, and its
     * gradient, analytically 0, would be float32 rounding noise. */
    UN_NB(batch_norm), UN_NB(batch_norm_plain), UN_NB(batch_norm_beta), UN(batch_norm_eval), UN(batch_norm_eval_plain),
    UN(concat), UN(slice), UN(pad_batch), UN(detach), UN(reshape_3d), UN(reshape_batch), UN(flatten),
    UN(fill), UN(constant),
    IM(conv_s1p0), IM(conv_s2p1), IM(conv_s3p2k4), IM(conv_k1), IM(conv_k2x3), IM(conv_bias_tanh),
    IM(convt_s1p0), IM(convt_s2p1op1), IM(convt_s2p1k4), IM(convt_s3p1op2), IM(convt_k2x3), IM(convt_tanh),
    IM(wgrad_s1p0), IM(wgrad_s2p1), IM(wgrad_k2x4),
    IM(bias_add), IM(add_chan), IM(mul_w), IM(div_sample),
    IM(batch_norm), IM(batch_norm_plain), IM(batch_norm_eval), IM(layer_norm), IM(layer_norm_plain),
    IM(sum_per_sample), IM(mean_per_sample), IM(max_abs_per_sample), IM(softmax), IM(smooth_max),
    IM(sum), IM(mean), IM(flatten), IM(reshape), IM(concat), IM(pad_batch), IM(sum_to), IM(broadcast),
    { "dense", WHOLE, c_dense, 2, { 5, 7, 1, 1 } },
    { "critic", WHOLE, c_critic, 4, { 3, 2, 9, 9 } },
    { "critic_ln", WHOLE, c_critic_ln, 4, { 3, 2, 8, 8 } },
    { "gen", WHOLE, c_gen, 2, { 3, 6, 1, 1 } },
};

/* ---------------------------------------------------------------- driver */

static const char *quantity[4] = { "gL", "gP", "hv", "t3" };

/* Builds, runs and records one network; 0 on success, else 1 (with an 'E' record). */
static int run_net(mmgan_ctx *ctx, const netdef *d, uint64_t index)
{
    xnet net;
    xnet *n = &net;
    mmgan_node x, out, L, gx, nrm, pen, hvs, t3s;
    mmgan_node wrt[MAXP + 1], grads[4][MAXP + 1], targets[3 + 4 * (MAXP + 1)];
    mmgan_plan *plan = NULL;
    mmgan_status st;
    float *xdata = NULL;
    size_t xnumel = 1;
    char rec[128], msg[1024];
    int i, q, nw, nt = 0, ok = 0;

    memset(n, 0, sizeof *n);
    n->name = d->name;
    n->ctx = ctx;
    mmgan_rng_seed(&n->rng, 20240601u, index);
    n->g = mmgan_graph_new(ctx);
    if (!n->g) {
        snprintf(msg, sizeof msg, "mmgan_graph_new: %s", mmgan_ctx_error(ctx));
        goto done;
    }

    for (i = 0; i < d->xndim; i++) xnumel *= (size_t)d->xshape[i];
    xdata = (float *)malloc(xnumel * sizeof(float));
    if (!xdata) { snprintf(msg, sizeof msg, "out of memory"); goto done; }
    mmgan_rng_fill_normal(&n->rng, xdata, xnumel, 0.0f, 1.0f);
    record_name(rec, sizeof rec, n, "input", "x");
    put_tensor(rec, d->xndim, d->xshape, xdata);
    x = mmgan_input(n->g, "x", d->xndim, d->xshape);

    if (d->kind == UNARY || d->kind == UNARY_NB) {
        mmgan_node w = P(n, "w", 2, SH(6, 5), 0, 0.6f);
        mmgan_node b = d->kind == UNARY ? P(n, "b", 1, SH(6), 0, 0.5f) : MMGAN_NONE;
        mmgan_node y = d->fn(n, mmgan_linear(n->g, x, w, b));
        out = mmgan_mul(n->g, y, Klike(n, "k", y));
    } else if (d->kind == IMAGE) {
        mmgan_node y = d->fn(n, x);
        out = mmgan_mul(n->g, y, Klike(n, "k", y));
    } else {
        out = d->fn(n, x);
    }
    if (n->overflow) { snprintf(msg, sizeof msg, "crosscheck.c: raise MAXP or MAXS"); goto done; }
    if (n->setup_failed) {
        snprintf(msg, sizeof msg, "creating or initializing a parameter failed: %s", mmgan_ctx_error(ctx));
        goto done;
    }
    if ((st = mmgan_graph_status(n->g)) != MMGAN_OK || out == MMGAN_NONE) {
        snprintf(msg, sizeof msg, "building the network failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(ctx));
        goto done;
    }
    if (mmgan_graph_feed(n->g, x, xdata) != MMGAN_OK) {
        snprintf(msg, sizeof msg, "mmgan_graph_feed: %s", mmgan_ctx_error(ctx));
        goto done;
    }

    /* Differentiate with respect to every weight and the input (last). */
    nw = n->np + 1;
    for (i = 0; i < n->np; i++) wrt[i] = n->pnode[i];
    wrt[n->np] = x;

    /* First order: gradients of L = sum(out * r). */
    L = mmgan_sum(n->g, mmgan_mul(n->g, out, Klike(n, "r", out)));
    if ((st = mmgan_grad(n->g, L, nw, wrt, grads[0])) != MMGAN_OK) {
        snprintf(msg, sizeof msg, "mmgan_grad(L) failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(ctx));
        goto done;
    }
    /* Second order: gradient penalty on d sum(out) / dx, differentiated. */
    if ((st = mmgan_grad(n->g, out, 1, &x, &gx)) != MMGAN_OK) {
        snprintf(msg, sizeof msg, "mmgan_grad(out, x) failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(ctx));
        goto done;
    }
    nrm = mmgan_sqrt(n->g, mmgan_affine(n->g, mmgan_sum_per_sample(n->g, mmgan_square(n->g, gx)), 1.0f, 1e-12f));
    pen = mmgan_mean(n->g, mmgan_square(n->g, mmgan_affine(n->g, nrm, 1.0f, -1.0f)));
    if ((st = mmgan_grad(n->g, pen, nw, wrt, grads[1])) != MMGAN_OK) {
        snprintf(msg, sizeof msg, "mmgan_grad(P) failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(ctx));
        goto done;
    }
    /* Second order: Hessian-vector product d <v, dL/dx> / d(weights, x). */
    hvs = mmgan_sum(n->g, mmgan_mul(n->g, grads[0][n->np], Klike(n, "v", x)));
    if ((st = mmgan_grad(n->g, hvs, nw, wrt, grads[2])) != MMGAN_OK) {
        snprintf(msg, sizeof msg, "mmgan_grad(<v, dL/dx>) failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(ctx));
        goto done;
    }
    /* Third order: d <v2, hv.x> / d(weights, x). */
    t3s = mmgan_sum(n->g, mmgan_mul(n->g, grads[2][n->np], Klike(n, "v2", x)));
    if ((st = mmgan_grad(n->g, t3s, nw, wrt, grads[3])) != MMGAN_OK) {
        snprintf(msg, sizeof msg, "mmgan_grad(third order) failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(ctx));
        goto done;
    }
    if ((st = mmgan_graph_status(n->g)) != MMGAN_OK) {
        snprintf(msg, sizeof msg, "building the loss or penalty failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(ctx));
        goto done;
    }

    targets[nt++] = out;
    targets[nt++] = L;
    targets[nt++] = pen;
    for (q = 0; q < 4; q++)
        for (i = 0; i < nw; i++) targets[nt++] = grads[q][i];
    plan = mmgan_plan_new(n->g, nt, targets);
    if (!plan) {
        snprintf(msg, sizeof msg, "mmgan_plan_new: %s", mmgan_ctx_error(ctx));
        goto done;
    }
    if ((st = mmgan_plan_run(plan)) != MMGAN_OK) {
        snprintf(msg, sizeof msg, "mmgan_plan_run failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(ctx));
        goto done;
    }

    for (i = 0; i < nt; i++) {
        int shape[MMGAN_MAX_DIMS];
        int ndim = mmgan_node_shape(n->g, targets[i], shape);
        const float *v = mmgan_plan_value(plan, targets[i]);
        if (!v) {
            snprintf(msg, sizeof msg, "mmgan_plan_value returned NULL for target %d", i);
            goto done;
        }
        if (i == 0) record_name(rec, sizeof rec, n, "out", NULL);
        else if (i == 1) record_name(rec, sizeof rec, n, "L", NULL);
        else if (i == 2) record_name(rec, sizeof rec, n, "P", NULL);
        else {
            int k = (i - 3) % nw;
            record_name(rec, sizeof rec, n, quantity[(i - 3) / nw],
                        k < n->np ? mmgan_param_name(n->param[k]) : "x");
        }
        put_tensor(rec, ndim, shape, v);
    }
    for (i = 0; i < n->ns; i++) {
        mmgan_tensor *t = mmgan_param_tensor(n->state[i]);
        record_name(rec, sizeof rec, n, "state1", mmgan_param_name(n->state[i]));
        put_tensor(rec, t->ndim, t->shape, t->data);
    }
    ok = 1;

done:
    if (!ok) {
        fprintf(stderr, "crosscheck: %s: %s\n", d->name, msg);
        put_error(d->name, msg);
        mmgan_ctx_clear_error(ctx);
    }
    mmgan_plan_free(plan);
    mmgan_graph_free(n->g);
    for (i = 0; i < n->np; i++) mmgan_param_free(n->param[i]);
    for (i = 0; i < n->ns; i++) mmgan_param_free(n->state[i]);
    free(xdata);
    fflush(out_file);
    return ok ? 0 : 1;
}

/* ======================================== GAN losses, gradient penalties, EBGAN */
/* Networks of the loss API (mmgan.h 1.11-1.13).  Each records named targets,
 * "<net>.<label>", instead of run_net's fixed set, with its weights ("param")
 * and inputs ("input"):
 *   loss_<kind>_<rel>[_<variant>]   mmgan_loss_d / mmgan_loss_g on critic1:
 *       d_real, d_fake          the critic's outputs
 *       D.total/real/fake       the D side, gD.<w> d D.total / dw
 *       G.total/real/fake       the G side, gG.<w> d G.total / dw
 *     (w: every weight and both inputs x_real, x_fake)
 *   gp_<points>_<norm>_<shape>_c<center>_<level>   mmgan_gradient_penalty on critic1:
 *       penalty, norm, points   the gp node's outputs (points: the x^ used)
 *       gP.<w>                  d penalty / dw (a second derivative)
 *   ebgan_<energy>          auto-encoder critic, energies and the EBGAN/BEGAN losses:
 *       e_real, e_fake, embed, D.* gD.* (EBGAN D), G.* gG.* (EBGAN G with the
 *       pulling-away term), G0.* gG0.* (without it), pt, B.* gB.* (BEGAN D),
 *       upd.k upd.M (mmgan_began_update from the run's mean energies). */

#define MAXT 64 /* recorded targets per network */
#define MAXI 4  /* inputs per network */

typedef struct xrun {
    xnet net;
    mmgan_plan *plan;
    int nt, ni, bad;  /* bad: too many targets or inputs */
    mmgan_node target[MAXT];
    char label[MAXT][32];
    float *inbuf[MAXI];
    char msg[1024];   /* first failure */
} xrun;

static int xrun_begin(xrun *r, mmgan_ctx *ctx, const char *name, uint64_t stream)
{
    memset(r, 0, sizeof *r);
    r->net.name = name;
    r->net.ctx = ctx;
    mmgan_rng_seed(&r->net.rng, 20240601u, stream);
    r->net.g = mmgan_graph_new(ctx);
    if (!r->net.g) snprintf(r->msg, sizeof r->msg, "mmgan_graph_new: %s", mmgan_ctx_error(ctx));
    return r->net.g != NULL;
}

/* An input (value (mean + std z) * sample_scale[i] for sample i, z ~ N(0, 1)),
 * recorded as "input.<name>" and fed. */
static mmgan_node X(xrun *r, const char *name, int ndim, const int *shape, float mean, float std,
                    const float *sample_scale)
{
    char rec[128];
    size_t numel = 1, per, i;
    int d;
    float *data;
    mmgan_node x;
    if (r->ni == MAXI) { r->bad = 1; return MMGAN_NONE; }
    for (d = 0; d < ndim; d++) numel *= (size_t)shape[d];
    per = numel / (size_t)shape[0];
    data = (float *)malloc(numel * sizeof(float));
    if (!data) { fprintf(stderr, "crosscheck: out of memory\n"); exit(1); }
    r->inbuf[r->ni++] = data;
    mmgan_rng_fill_normal(&r->net.rng, data, numel, mean, std);
    if (sample_scale)
        for (i = 0; i < numel; i++) data[i] *= sample_scale[i / per];
    record_name(rec, sizeof rec, &r->net, "input", name);
    put_tensor(rec, ndim, shape, data);
    x = mmgan_input(r->net.g, name, ndim, shape);
    if (x != MMGAN_NONE && mmgan_graph_feed(r->net.g, x, data) != MMGAN_OK && !r->msg[0])
        snprintf(r->msg, sizeof r->msg, "mmgan_graph_feed(%s): %s", name, mmgan_ctx_error(r->net.ctx));
    return x;
}

/* Records node y as "<net>.<label>". */
static void T(xrun *r, const char *label, mmgan_node y)
{
    if (r->nt == MAXT) { r->bad = 1; return; }
    snprintf(r->label[r->nt], sizeof r->label[0], "%s", label);
    r->target[r->nt++] = y;
}

/* Records d sum(y) / d wrt[i] as "<net>.<prefix>.<wname[i]>". */
static void TG(xrun *r, const char *prefix, mmgan_node y, int nw, const mmgan_node *wrt, const char *const *wname)
{
    mmgan_node gr[MAXP + 2];
    mmgan_status st;
    char label[32];
    int i;
    if (y == MMGAN_NONE) return; /* the builder's failure is in the graph status */
    if (nw > MAXP + 2) { r->bad = 1; return; }
    if ((st = mmgan_grad(r->net.g, y, nw, wrt, gr)) != MMGAN_OK) {
        if (!r->msg[0])
            snprintf(r->msg, sizeof r->msg, "mmgan_grad(%s) failed (%s): %s", prefix, mmgan_status_name(st),
                     mmgan_ctx_error(r->net.ctx));
        return;
    }
    for (i = 0; i < nw; i++) {
        snprintf(label, sizeof label, "%s.%s", prefix, wname[i]);
        T(r, label, gr[i]);
    }
}

/* Records the loss parts as "<prefix>.total/real/fake". */
static void TL(xrun *r, const char *prefix, const mmgan_loss *l)
{
    char label[32];
    snprintf(label, sizeof label, "%s.total", prefix);
    T(r, label, l->total);
    snprintf(label, sizeof label, "%s.real", prefix);
    T(r, label, l->real);
    snprintf(label, sizeof label, "%s.fake", prefix);
    T(r, label, l->fake);
}

/* Plans and runs the targets and records their values; 1 on success. */
static int xrun_run(xrun *r)
{
    mmgan_status st;
    char rec[128];
    int i;
    if (r->msg[0]) return 0;
    if (r->bad || r->net.overflow) { snprintf(r->msg, sizeof r->msg, "crosscheck.c: raise MAXT, MAXI, MAXP or MAXS"); return 0; }
    if (r->net.setup_failed) {
        snprintf(r->msg, sizeof r->msg, "creating or initializing a parameter failed: %s", mmgan_ctx_error(r->net.ctx));
        return 0;
    }
    if ((st = mmgan_graph_status(r->net.g)) != MMGAN_OK) {
        snprintf(r->msg, sizeof r->msg, "building the network failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(r->net.ctx));
        return 0;
    }
    for (i = 0; i < r->nt; i++)
        if (r->target[i] == MMGAN_NONE) { snprintf(r->msg, sizeof r->msg, "target %s is MMGAN_NONE", r->label[i]); return 0; }
    r->plan = mmgan_plan_new(r->net.g, r->nt, r->target);
    if (!r->plan) { snprintf(r->msg, sizeof r->msg, "mmgan_plan_new: %s", mmgan_ctx_error(r->net.ctx)); return 0; }
    if ((st = mmgan_plan_run(r->plan)) != MMGAN_OK) {
        snprintf(r->msg, sizeof r->msg, "mmgan_plan_run failed (%s): %s", mmgan_status_name(st), mmgan_ctx_error(r->net.ctx));
        return 0;
    }
    for (i = 0; i < r->nt; i++) {
        int shape[MMGAN_MAX_DIMS];
        int ndim = mmgan_node_shape(r->net.g, r->target[i], shape);
        const float *v = mmgan_plan_value(r->plan, r->target[i]);
        if (!v) { snprintf(r->msg, sizeof r->msg, "mmgan_plan_value returned NULL for %s", r->label[i]); return 0; }
        snprintf(rec, sizeof rec, "%s.%s", r->net.name, r->label[i]);
        put_tensor(rec, ndim, shape, v);
    }
    return 1;
}

/* Writes the error record if !ok, frees everything; 0 on success, else 1. */
static int xrun_end(xrun *r, int ok)
{
    int i;
    if (!ok) {
        fprintf(stderr, "crosscheck: %s: %s\n", r->net.name, r->msg);
        put_error(r->net.name, r->msg);
        mmgan_ctx_clear_error(r->net.ctx);
    }
    mmgan_plan_free(r->plan);
    mmgan_graph_free(r->net.g);
    for (i = 0; i < r->net.np; i++) mmgan_param_free(r->net.param[i]);
    for (i = 0; i < r->ni; i++) free(r->inbuf[i]);
    fflush(out_file);
    return ok ? 0 : 1;
}

/* critic1: x [B, 1, 6, 6] -> conv2d(w1 [3, 1, 3, 3], stride 2, pad 1) + b1 -> leaky_relu(0.2)
 * -> flatten [B, 27] -> linear(w2 [1, 27], b2 [1] or no bias) -> [B, 1]. */
typedef struct critic1 {
    mmgan_node w1, b1, w2, b2;
} critic1;

/* New weights; wrt/wname get the weights, then x_real and x_fake; returns their count. */
static int critic1_new(xnet *n, critic1 *c, float w2_half, int with_b2, mmgan_node xr, mmgan_node xf,
                       mmgan_node *wrt, const char **wname)
{
    int nw = 0;
    c->w1 = P(n, "w1", 4, SH(3, 1, 3, 3), 0, 0.5f);
    c->b1 = P(n, "b1", 1, SH(3), 0, 0.3f);
    c->w2 = P(n, "w2", 2, SH(1, 27), 0, w2_half);
    c->b2 = with_b2 ? P(n, "b2", 1, SH(1), 0, 0.3f) : MMGAN_NONE;
    wrt[nw] = c->w1; wname[nw++] = "w1";
    wrt[nw] = c->b1; wname[nw++] = "b1";
    wrt[nw] = c->w2; wname[nw++] = "w2";
    if (with_b2) { wrt[nw] = c->b2; wname[nw++] = "b2"; }
    wrt[nw] = xr; wname[nw++] = "x_real";
    wrt[nw] = xf; wname[nw++] = "x_fake";
    return nw;
}

static mmgan_node critic1_apply(mmgan_graph *g, mmgan_node x, void *user)
{
    const critic1 *c = (const critic1 *)user;
    mmgan_node h = mmgan_leaky_relu(g, mmgan_bias_add(g, mmgan_conv2d(g, x, c->w1, 2, 1), c->b1), 0.2f);
    return mmgan_linear(g, mmgan_flatten(g, h), c->w2, c->b2);
}

/* ------------------------------------------------ losses (1.11) */

static const char *const kind_names[4] = { "sgan", "lsgan", "hinge", "wgan" };
static const char *const rel_names[5] = { "none", "average", "centred", "paired", "all_pairs" };

typedef struct lossdef {
    const char *name;     /* NULL: "loss_<kind>_<rel>" with the default spec */
    mmgan_loss_kind kind;
    mmgan_relativistic rel;
    int saturating;
    float a, b, c;
    int fake_batch;
} lossdef;

/* Beyond the 20 defaults (mirrored in crosscheck.py's LOSS_EXTRA). */
static const lossdef loss_extra[] = {
    { "loss_sgan_none_saturating", MMGAN_LOSS_SGAN, MMGAN_REL_NONE, 1, 0.0f, 1.0f, 1.0f, 6 },
    { "loss_lsgan_none_m111", MMGAN_LOSS_LSGAN, MMGAN_REL_NONE, 0, -1.0f, 1.0f, 1.0f, 6 },
    { "loss_lsgan_none_011", MMGAN_LOSS_LSGAN, MMGAN_REL_NONE, 0, 0.0f, 1.0f, 1.0f, 6 },
    { "loss_lsgan_none_odd", MMGAN_LOSS_LSGAN, MMGAN_REL_NONE, 0, 0.5f, -0.3f, 0.2f, 6 },
    /* relativistic LSGAN: targets +-1 whatever (a, b, c) */
    { "loss_lsgan_average_odd", MMGAN_LOSS_LSGAN, MMGAN_REL_AVERAGE, 0, 0.5f, -0.3f, 0.2f, 6 },
    { "loss_lsgan_paired_odd", MMGAN_LOSS_LSGAN, MMGAN_REL_PAIRED, 0, 0.5f, -0.3f, 0.2f, 6 },
    /* unequal real and fake batches (6 and 4) */
    { "loss_sgan_all_pairs_b4", MMGAN_LOSS_SGAN, MMGAN_REL_ALL_PAIRS, 0, 0.0f, 1.0f, 1.0f, 4 },
    { "loss_hinge_centred_b4", MMGAN_LOSS_HINGE, MMGAN_REL_CENTRED, 0, 0.0f, 1.0f, 1.0f, 4 },
    { "loss_lsgan_average_b4", MMGAN_LOSS_LSGAN, MMGAN_REL_AVERAGE, 0, 0.0f, 1.0f, 1.0f, 4 },
    { "loss_wgan_none_b4", MMGAN_LOSS_WGAN, MMGAN_REL_NONE, 0, 0.0f, 1.0f, 1.0f, 4 },
};

static int run_loss(mmgan_ctx *ctx, const char *name, const mmgan_loss_spec *spec, int fake_batch, uint64_t stream)
{
    xrun run;
    xrun *r = &run;
    critic1 c;
    mmgan_node xr, xf, dr, df, wrt[6];
    const char *wname[6];
    mmgan_loss ld, lg;
    mmgan_graph *g;
    int nw;
    if (!xrun_begin(r, ctx, name, stream)) return xrun_end(r, 0);
    g = r->net.g;
    xr = X(r, "x_real", 4, SH(6, 1, 6, 6), 0.4f, 1.0f, NULL);
    xf = X(r, "x_fake", 4, SH(fake_batch, 1, 6, 6), -0.3f, 1.0f, NULL);
    /* The relativistic losses depend on score differences only: their
     * gradient in an output bias, analytically 0, would be float32 rounding
     * noise (as for a bias before batch norm), so their critic has none. */
    nw = critic1_new(&r->net, &c, 0.8f, spec->rel == MMGAN_REL_NONE, xr, xf, wrt, wname);
    dr = critic1_apply(g, xr, &c);
    df = critic1_apply(g, xf, &c);
    T(r, "d_real", dr);
    T(r, "d_fake", df);
    if (mmgan_loss_d(g, spec, dr, df, &ld) == MMGAN_OK) {
        TL(r, "D", &ld);
        TG(r, "gD", ld.total, nw, wrt, wname);
    }
    if (mmgan_loss_g(g, spec, dr, df, &lg) == MMGAN_OK) {
        TL(r, "G", &lg);
        TG(r, "gG", lg.total, nw, wrt, wname);
    }
    return xrun_end(r, xrun_run(r));
}

static int run_losses(mmgan_ctx *ctx, int *count)
{
    char names[20][40];
    int k, rel, i, failed = 0;
    uint64_t stream = 1000;
    for (k = 0; k < 4; k++)
        for (rel = 0; rel < 5; rel++) {
            char *name = names[k * 5 + rel];
            mmgan_loss_spec spec = mmgan_loss_default((mmgan_loss_kind)k, (mmgan_relativistic)rel);
            snprintf(name, sizeof names[0], "loss_%s_%s", kind_names[k], rel_names[rel]);
            failed += run_loss(ctx, name, &spec, 6, stream++);
            ++*count;
        }
    for (i = 0; i < (int)(sizeof loss_extra / sizeof loss_extra[0]); i++) {
        const lossdef *d = &loss_extra[i];
        mmgan_loss_spec spec = mmgan_loss_default(d->kind, d->rel);
        spec.saturating = d->saturating;
        spec.a = d->a; spec.b = d->b; spec.c = d->c;
        failed += run_loss(ctx, d->name, &spec, d->fake_batch, stream++);
        ++*count;
    }
    return failed;
}

/* ------------------------------------------------ gradient penalties (1.12) */

static const char *const points_names[4] = { "interpolate", "real", "fake", "dragan" };
static const char *const norm_names[5] = { "l2", "l1", "linf", "smax", "signed" };
static const char *const shape_names[4] = { "squared", "hinge", "onesided", "abs" };

/* Half-range of critic1's w2 per norm and level, so that for center 1 every
 * per-sample norm is below 1 ("lo") or above 1 ("hi"); crosscheck.py checks
 * that it is so.  The gradient d C / d x is linear in w2. */
static const float gp_w2_half[5][2] = {
    { 0.15f, 2.5f },  /* l2 */
    { 0.03f, 0.6f },  /* l1 */
    { 0.5f, 6.0f },   /* linf */
    { 0.4f, 7.0f },   /* smooth max */
    { 0.5f, 8.0f },   /* signed max */
};

static int run_gp(mmgan_ctx *ctx, int points, int norm, int shape, float center, int level, uint64_t stream)
{
    xrun run;
    xrun *r = &run;
    critic1 c;
    char name[64];
    mmgan_node xr, xf, wrt[6];
    const char *wname[6];
    mmgan_gp_spec spec = mmgan_gp_default();
    mmgan_rng rng;
    mmgan_gp gp;
    mmgan_status st;
    int nw;
    /* Mirrored in crosscheck.py's gp_spec(). */
    spec.points = (mmgan_gp_points)points;
    spec.norm = (mmgan_gp_norm)norm;
    spec.shape = (mmgan_gp_shape)shape;
    spec.center = center;
    spec.lambda = 10.0f;
    spec.smooth_s = level ? 3.0f : 1.0f;
    spec.dragan_c = level ? 1.5f : 0.5f;
    snprintf(name, sizeof name, "gp_%s_%s_%s_c%d_%s", points_names[points], norm_names[norm], shape_names[shape],
             (int)center, level ? "hi" : "lo");
    if (!xrun_begin(r, ctx, name, stream)) return xrun_end(r, 0);
    mmgan_rng_seed(&rng, 777u, stream);
    xr = X(r, "x_real", 4, SH(6, 1, 6, 6), 0.4f, 1.0f, NULL);
    xf = X(r, "x_fake", 4, SH(6, 1, 6, 6), -0.3f, 1.0f, NULL);
    nw = critic1_new(&r->net, &c, gp_w2_half[norm][level], 1, xr, xf, wrt, wname);
    st = mmgan_gradient_penalty(r->net.g, &spec, xr, xf, critic1_apply, &c, &rng, &gp);
    if (st == MMGAN_OK) {
        T(r, "penalty", gp.penalty);
        T(r, "norm", gp.norm);
        T(r, "points", gp.points);
        TG(r, "gP", gp.penalty, nw, wrt, wname);
    }
    return xrun_end(r, xrun_run(r));
}

static int run_gps(mmgan_ctx *ctx, int *count)
{
    int p, nm, s, level, failed = 0;
    uint64_t stream = 2000;
    for (p = 0; p < 4; p++)
        for (nm = 0; nm < 5; nm++) {
            for (s = 0; s < 4; s++)
                for (level = 0; level < 2; level++) {
                    failed += run_gp(ctx, p, nm, s, 1.0f, level, stream++);
                    ++*count;
                }
            /* zero-centred (R1 / R2 with REAL / FAKE points) */
            for (s = 0; s < 4; s += 3) {
                failed += run_gp(ctx, p, nm, s, 0.0f, 1, stream++);
                ++*count;
            }
        }
    return failed;
}

/* ------------------------------------------------ energy-based GANs (1.13) */

static const char *const energy_names[3] = { "sse", "norm", "mse" };
/* EBGAN margins, between the smallest and largest fake energy (checked by crosscheck.py). */
static const float ebgan_margin[3] = { 6.0f, 2.5f, 0.4f };

static int run_energy(mmgan_ctx *ctx, int kind, uint64_t stream)
{
    static const float fake_scale[5] = { 0.3f, 0.6f, 1.0f, 1.5f, 2.2f };
    static const char *const wname[6] = { "we", "be", "wd", "bd", "x_real", "x_fake" };
    xrun run;
    xrun *r = &run;
    char name[32];
    mmgan_graph *g;
    mmgan_node xr, xf, we, be, wd, bd, hr, hf, er, ef, wrt[6];
    mmgan_loss ld, lg, lg0, lb;
    mmgan_began began;
    int ok;
    snprintf(name, sizeof name, "ebgan_%s", energy_names[kind]);
    if (!xrun_begin(r, ctx, name, stream)) return xrun_end(r, 0);
    g = r->net.g;
    /* auto-encoder: x [5, 16] -> h = relu(linear(we, be)) [5, 8] -> recon = linear(wd, bd) */
    xr = X(r, "x_real", 2, SH(5, 16), 0.0f, 0.7f, NULL);
    xf = X(r, "x_fake", 2, SH(5, 16), 0.0f, 0.7f, fake_scale);
    we = P(&r->net, "we", 2, SH(8, 16), 0, 0.4f);
    be = P(&r->net, "be", 1, SH(8), 0.2f, 0.2f);
    wd = P(&r->net, "wd", 2, SH(16, 8), 0, 0.5f);
    bd = P(&r->net, "bd", 1, SH(16), 0, 0.2f);
    wrt[0] = we; wrt[1] = be; wrt[2] = wd; wrt[3] = bd; wrt[4] = xr; wrt[5] = xf;
    hr = mmgan_relu(g, mmgan_linear(g, xr, we, be));
    hf = mmgan_relu(g, mmgan_linear(g, xf, we, be));
    er = mmgan_energy(g, xr, mmgan_linear(g, hr, wd, bd), (mmgan_energy_kind)kind);
    ef = mmgan_energy(g, xf, mmgan_linear(g, hf, wd, bd), (mmgan_energy_kind)kind);
    T(r, "e_real", er);
    T(r, "e_fake", ef);
    T(r, "embed", hf);
    if (mmgan_ebgan_loss_d(g, er, ef, mmgan_fill(g, 1, SH(1), ebgan_margin[kind]), &ld) == MMGAN_OK) {
        TL(r, "D", &ld);
        TG(r, "gD", ld.total, 6, wrt, wname);
    }
    if (mmgan_ebgan_loss_g(g, ef, hf, 0.7f, &lg) == MMGAN_OK) {
        TL(r, "G", &lg);
        TG(r, "gG", lg.total, 6, wrt, wname);
    }
    if (mmgan_ebgan_loss_g(g, ef, MMGAN_NONE, 0.7f, &lg0) == MMGAN_OK) {
        TL(r, "G0", &lg0);
        TG(r, "gG0", lg0.total, 6, wrt, wname);
    }
    T(r, "pt", mmgan_pulling_away(g, hf));
    mmgan_began_init(&began, 0.5f, 0.001f);
    began.k = 0.3f;
    began.lambda_k = 0.01f;  /* large enough for the update to show at 1e-4 */
    if (mmgan_began_loss_d(g, &began, er, ef, &lb) == MMGAN_OK) {
        TL(r, "B", &lb);
        TG(r, "gB", lb.total, 6, wrt, wname);
    }
    ok = xrun_run(r);
    if (ok) {
        /* BEGAN's update from this run's mean energies (D.real, G0.total). */
        const float *mr = mmgan_plan_value(r->plan, ld.real), *mf = mmgan_plan_value(r->plan, lg0.total);
        float k1, m;
        char rec[128];
        m = mmgan_began_update(&began, mr[0], mf[0]);
        k1 = began.k;
        snprintf(rec, sizeof rec, "%s.upd.k", name);
        put_tensor(rec, 1, SH(1), &k1);
        snprintf(rec, sizeof rec, "%s.upd.M", name);
        put_tensor(rec, 1, SH(1), &m);
    }
    return xrun_end(r, ok);
}

static int run_energies(mmgan_ctx *ctx, int *count)
{
    int k, failed = 0;
    for (k = 0; k < 3; k++) {
        failed += run_energy(ctx, k, 3000 + (uint64_t)k);
        ++*count;
    }
    return failed;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "build/crosscheck.bin";
    size_t i, count = sizeof nets / sizeof nets[0];
    int failed = 0, extra = 0;
    mmgan_ctx *ctx = mmgan_ctx_new(NULL);
    if (!ctx) { fprintf(stderr, "crosscheck: mmgan_ctx_new failed\n"); return 1; }
    out_file = fopen(path, "wb");
    if (!out_file) { fprintf(stderr, "crosscheck: cannot write %s\n", path); return 1; }
    put_bytes("MMGANXC1", 8);
    for (i = 0; i < count; i++) failed += run_net(ctx, &nets[i], (uint64_t)i);
    failed += run_losses(ctx, &extra);
    failed += run_gps(ctx, &extra);
    failed += run_energies(ctx, &extra);
    put_u8('Z');
    if (fclose(out_file) != 0) write_failed = 1;
    mmgan_ctx_free(ctx);
    if (write_failed) { fprintf(stderr, "crosscheck: writing %s failed\n", path); return 1; }
    printf("crosscheck: %d networks written to %s [%s], %d failed to build or run\n",
           (int)count + extra, path, mmgan_isa(), failed);
    return failed ? 1 : 0;
}
