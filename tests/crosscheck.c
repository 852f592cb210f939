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

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "build/crosscheck.bin";
    size_t i, count = sizeof nets / sizeof nets[0];
    int failed = 0;
    mmgan_ctx *ctx = mmgan_ctx_new(NULL);
    if (!ctx) { fprintf(stderr, "crosscheck: mmgan_ctx_new failed\n"); return 1; }
    out_file = fopen(path, "wb");
    if (!out_file) { fprintf(stderr, "crosscheck: cannot write %s\n", path); return 1; }
    put_bytes("MMGANXC1", 8);
    for (i = 0; i < count; i++) failed += run_net(ctx, &nets[i], (uint64_t)i);
    put_u8('Z');
    if (fclose(out_file) != 0) write_failed = 1;
    mmgan_ctx_free(ctx);
    if (write_failed) { fprintf(stderr, "crosscheck: writing %s failed\n", path); return 1; }
    printf("crosscheck: %d networks written to %s [%s], %d failed to build or run\n",
           (int)count, path, mmgan_isa(), failed);
    return failed ? 1 : 0;
}
