/* mmgan.h - GAN training in one portable C header.               v0.1.0
 *
 * WHAT IT IS
 *   Everything needed to train generative adversarial networks in plain C99
 *   with no dependency beyond libc and libm: float32 tensors and cache-blocked
 *   SIMD kernels (AVX-512, AVX2+FMA, SSE2, NEON on aarch64 and ARMv7, portable
 *   C); graphs with reverse-mode autodiff whose gradients are differentiable
 *   again (gradient penalties through every op, convolutions included); every
 *   GAN loss with its relativistic forms, the max-margin gradient penalties,
 *   EBGAN/BEGAN/MAGAN controllers; optimizers; MNIST loading, PNG grids, SVG
 *   curves and safetensors checkpoints.  OpenMP is optional; results are
 *   bit-identical whatever the thread count.
 *
 * QUICK START
 *   In exactly one C or C++ file:
 *
 *       #define MMGAN_IMPLEMENTATION
 *       #include "mmgan.h"
 *
 *   and include "mmgan.h" without the define anywhere else.  Then:
 *
 *       mmgan_ctx *ctx = mmgan_ctx_new(NULL);      // NULL: default allocator
 *       if (!ctx) return 1;                         // only fails out of memory
 *       int shape[2] = {64, 784};
 *       mmgan_tensor *x = mmgan_tensor_new(ctx, 2, shape);
 *       mmgan_rng rng;
 *       mmgan_rng_seed(&rng, 42, 0);                // same stream on every CPU
 *       mmgan_rng_fill_normal(&rng, x->data, x->numel, 0.0f, 1.0f);
 *       // C(64x64) = X * X^T
 *       float c[64 * 64];
 *       if (mmgan_gemm(ctx, 0, 1, 64, 64, 784, 1.0f, x->data, 784,
 *                      x->data, 784, 0.0f, c, 64) != MMGAN_OK)
 *           fprintf(stderr, "%s\n", mmgan_ctx_error(ctx));
 *       mmgan_tensor_free(ctx, x);
 *       mmgan_ctx_free(ctx);
 *
 *   Build: cc -O2 -march=native prog.c -lm          (add -fopenmp for threads)
 *
 *   Networks are graphs, built once and run many times (examples/penalty.c):
 *
 *       mmgan_graph *g = mmgan_graph_new(ctx);
 *       mmgan_node x = mmgan_input(g, "x", 4, xshape), gx, gw;
 *       mmgan_node w = mmgan_parameter(g, w1);          // an mmgan_param
 *       mmgan_node d = mmgan_sum(g, mmgan_tanh(g, mmgan_conv2d(g, x, w, 2, 1)));
 *       mmgan_grad(g, d, 1, &x, &gx);                   // dD/dx, itself a graph
 *       mmgan_node pen = mmgan_sum(g, mmgan_square(g, gx));
 *       mmgan_grad(g, pen, 1, &w, &gw);                 // second order
 *       mmgan_plan *p = mmgan_plan_new(g, 1, &gw);      // check mmgan_graph_status
 *       mmgan_graph_feed(g, x, data);
 *       mmgan_plan_run(p);                              // allocates nothing
 *       const float *dw = mmgan_plan_value(p, gw);
 *
 * CONFIGURATION MACROS (define before including, in the implementation file)
 *   MMGAN_IMPLEMENTATION   compile the implementation into this translation unit.
 *   MMGAN_STATIC           make every function static (private to one file).
 *   MMGAN_ASSERT(x)        internal invariant check; defaults to assert(x).
 *   MMGAN_MALLOC(u,sz) MMGAN_REALLOC(u,p,sz) MMGAN_FREE(u,p)
 *                          replace the allocator; all three or none.  `u` is the
 *                          user pointer given to mmgan_ctx_new().
 *   MMGAN_NO_STDIO         leave out every function that opens a file.
 *   MMGAN_NO_SIMD          use only the portable C kernels.
 *   MMGAN_NO_AVX512, MMGAN_NO_AVX2, MMGAN_NO_NEON
 *                          cap the instruction set below what the compiler
 *                          targets (the ISA is chosen at compile time from the
 *                          compiler's own macros, e.g. -march=native, -mavx2 -mfma).
 *   MMGAN_NO_OPENMP        stay single-threaded even when built with -fopenmp.
 *   MMGAN_WINOGRAD         0 or 1: whether 4x4 stride-2 padding-1 convolutions with
 *                          32 channels or more go through Winograd's F(4x4, 2x2)
 *                          (about half the multiply-adds, about 20 times the
 *                          rounding error; 2.6).  Default 1, except on AVX-512,
 *                          where only the direct products were measured.
 *   MMGAN_GEMM_MT_MIN      multiply-adds below which a GEMM stays on one thread
 *                          (default 2^22, measured on a 2-core Zen 5).
 *   MMGAN_READ_MAX         bytes mmgan_read_file reads at most (default 2^31,
 *                          which every IDX file and checkpoint it loads fits).
 *
 * ERRORS
 *   Functions return an mmgan_status (or NULL) and leave a readable message in
 *   their context: mmgan_ctx_error(ctx).  The library never prints, never calls
 *   exit() or abort() on bad input.  MMGAN_ASSERT guards internal invariants only.
 *
 * LICENCE
 *   MIT or public domain (Unlicense), your choice: see the end of this file.
 *
 * CONTENTS
 *   Part 1, the API (this half of the file):
 *     1.1 Version and packaging        1.10 Execution plans
 *     1.2 Status codes and errors      1.11 GAN losses
 *     1.3 Contexts and memory          1.12 Gradient penalties
 *     1.4 Tensors                      1.13 Energy-based GANs: EBGAN, BEGAN, MAGAN
 *     1.5 Random numbers               1.14 Optimizers
 *     1.6 GEMM and vector kernels      1.15 Data: inflate, gzip, IDX, MNIST batches
 *     1.7 Parameters                   1.16 Images
 *     1.8 Graphs and ops               1.17 Checkpoints (safetensors)
 *     1.9 Automatic differentiation
 *   Part 2, the implementation (under MMGAN_IMPLEMENTATION):
 *     2.1 Platform and SIMD layer      2.9 The op table: forward kernels and VJPs
 *     2.2 Memory                       2.10 Execution plans
 *     2.3 Errors and contexts          2.11 Automatic differentiation
 *     2.4 Tensors and random numbers   2.12 GAN losses, penalties, controllers
 *     2.5 GEMM                         2.13 Optimizers
 *     2.6 Convolution                  2.14 I/O: inflate, gzip, IDX, PNG, files
 *     2.7 Elementwise vector kernels   2.15 Checkpoints (safetensors)
 *     2.8 Parameters and graph building
 */
#ifndef MMGAN_H_INCLUDED
#define MMGAN_H_INCLUDED

/* ===================================================================== */
/* 1.1 Version and packaging                                              */
/* ===================================================================== */
#define MMGAN_VERSION_MAJOR 0
#define MMGAN_VERSION_MINOR 1
#define MMGAN_VERSION_PATCH 0
#define MMGAN_VERSION_STRING "0.1.0"

#include <stddef.h>
#include <stdint.h>

#ifdef MMGAN_STATIC
#  if defined(__GNUC__) || defined(__clang__)
/* Unused public functions of a static build must not warn (a known stb pain). */
#    define MMGAN_DEF static __attribute__((unused))
#  else
#    define MMGAN_DEF static
#  endif
#else
#  ifdef __cplusplus
#    define MMGAN_DEF extern "C"
#  else
#    define MMGAN_DEF extern
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================== */
/* 1.2 Status codes and errors                                            */
/* ===================================================================== */
typedef enum mmgan_status {
    MMGAN_OK = 0,
    MMGAN_ERR_INVALID = -1,     /* an argument is out of its domain */
    MMGAN_ERR_SHAPE = -2,       /* tensor shapes do not fit together */
    MMGAN_ERR_NOMEM = -3,       /* an allocation failed */
    MMGAN_ERR_IO = -4,          /* reading or writing a file failed */
    MMGAN_ERR_FORMAT = -5,      /* a file or buffer is malformed */
    MMGAN_ERR_UNSUPPORTED = -6  /* valid request this build cannot do */
} mmgan_status;

typedef struct mmgan_ctx mmgan_ctx;

/* Short constant name of a status code ("MMGAN_ERR_SHAPE"), never NULL. */
MMGAN_DEF const char *mmgan_status_name(mmgan_status s);
/* Message of the last failure in ctx ("" if none); valid until the next call. */
MMGAN_DEF const char *mmgan_ctx_error(const mmgan_ctx *ctx);
/* Forget the last failure message of ctx. */
MMGAN_DEF void mmgan_ctx_clear_error(mmgan_ctx *ctx);

/* ===================================================================== */
/* 1.3 Contexts and memory                                                */
/* ===================================================================== */
/* A context owns the kernels' scratch memory, the thread count and the last
 * error message.  Use one context per thread of the caller. */

/* New context; alloc_user is passed to MMGAN_MALLOC/REALLOC/FREE.  NULL only
 * when memory is exhausted. */
MMGAN_DEF mmgan_ctx *mmgan_ctx_new(void *alloc_user);
/* Free a context (NULL is ignored).  Everything made from it (tensors, params,
 * graphs, plans, optimizers, checkpoints, buffers) must be freed first. */
MMGAN_DEF void mmgan_ctx_free(mmgan_ctx *ctx);
/* Ask for n >= 1 threads; capped at what the build offers (1 without OpenMP,
 * else 256); a single GEMM uses at most 64. */
MMGAN_DEF mmgan_status mmgan_ctx_set_threads(mmgan_ctx *ctx, int n);
/* Number of threads kernels of ctx may use (1 without OpenMP). */
MMGAN_DEF int mmgan_ctx_threads(const mmgan_ctx *ctx);
/* 64-byte aligned allocation through the context's allocator; NULL on failure. */
MMGAN_DEF void *mmgan_alloc(mmgan_ctx *ctx, size_t bytes);
/* Release memory from mmgan_alloc (NULL is ignored). */
MMGAN_DEF void mmgan_free(mmgan_ctx *ctx, void *p);
/* Name of the compiled-in kernel set: "avx512", "avx2", "sse2", "neon64",
 * "neon32" or "scalar". */
MMGAN_DEF const char *mmgan_isa(void);

/* ===================================================================== */
/* 1.4 Tensors                                                            */
/* ===================================================================== */
#define MMGAN_MAX_DIMS 4

/* A dense row-major float32 array of 0 to 4 dimensions (images are NCHW).
 * A 0-dimensional tensor is a scalar with numel 1. */
typedef struct mmgan_tensor {
    int ndim;
    int shape[MMGAN_MAX_DIMS];  /* unused entries are 1 */
    size_t numel;               /* product of the shape */
    float *data;                /* 64-byte aligned when owned */
    int owns_data;              /* 1: freed with the tensor */
} mmgan_tensor;

/* Zero-filled tensor; NULL (with a message in ctx) on a bad shape or no memory. */
MMGAN_DEF mmgan_tensor *mmgan_tensor_new(mmgan_ctx *ctx, int ndim, const int *shape);
/* Tensor header over caller-owned data (not freed by mmgan_tensor_free). */
MMGAN_DEF mmgan_tensor *mmgan_tensor_wrap(mmgan_ctx *ctx, float *data, int ndim, const int *shape);
/* Free a tensor and, if owned, its data (NULL is ignored). */
MMGAN_DEF void mmgan_tensor_free(mmgan_ctx *ctx, mmgan_tensor *t);
/* Give t a new shape with the same number of elements. */
MMGAN_DEF mmgan_status mmgan_tensor_reshape(mmgan_ctx *ctx, mmgan_tensor *t, int ndim, const int *shape);
/* Copy src's values into dst; shapes must be equal. */
MMGAN_DEF mmgan_status mmgan_tensor_copy(mmgan_ctx *ctx, mmgan_tensor *dst, const mmgan_tensor *src);
/* Set every element of t to v. */
MMGAN_DEF void mmgan_tensor_fill(mmgan_tensor *t, float v);
/* 1 if a and b have the same dimensions, else 0. */
MMGAN_DEF int mmgan_tensor_same_shape(const mmgan_tensor *a, const mmgan_tensor *b);
/* Writes "[64, 1, 28, 28]" into buf (always terminated); returns buf. */
MMGAN_DEF char *mmgan_shape_str(const mmgan_tensor *t, char *buf, size_t size);

/* ===================================================================== */
/* 1.5 Random numbers                                                     */
/* ===================================================================== */
/* PCG32 (O'Neill, 2014) with integer-only state, and variates computed with
 * IEEE operations in a fixed order, so a (seed, stream) pair gives the same
 * numbers, bit for bit, on every CPU and compiler.  The struct is plain data:
 * copy it to save or restore the generator. */
typedef struct mmgan_rng {
    uint64_t state;
    uint64_t inc;         /* stream selector, always odd */
    float spare;          /* second normal variate of the last pair */
    int has_spare;
} mmgan_rng;

/* Seed a generator; different streams with one seed are independent sequences.
 * (Every rng function takes a NULL rng, or NULL x, as a no-op drawing 0.) */
MMGAN_DEF void mmgan_rng_seed(mmgan_rng *rng, uint64_t seed, uint64_t stream);
/* Next 32 uniformly distributed bits. */
MMGAN_DEF uint32_t mmgan_rng_u32(mmgan_rng *rng);
/* Uniform integer in [0, n) without modulo bias; n must be >= 1. */
MMGAN_DEF uint32_t mmgan_rng_below(mmgan_rng *rng, uint32_t n);
/* Uniform float in [0, 1) on the 2^-24 grid. */
MMGAN_DEF float mmgan_rng_uniform(mmgan_rng *rng);
/* Standard normal variate (Marsaglia's polar method). */
MMGAN_DEF float mmgan_rng_normal(mmgan_rng *rng);
/* x[i] = lo + (hi - lo) * uniform, for n values. */
MMGAN_DEF void mmgan_rng_fill_uniform(mmgan_rng *rng, float *x, size_t n, float lo, float hi);
/* x[i] = mean + std * normal, for n values. */
MMGAN_DEF void mmgan_rng_fill_normal(mmgan_rng *rng, float *x, size_t n, float mean, float std);
/* Random permutation of 0..n-1 into idx (Fisher-Yates); nothing when rng or idx is NULL. */
MMGAN_DEF void mmgan_rng_permutation(mmgan_rng *rng, int *idx, int n);

/* ===================================================================== */
/* 1.6 GEMM and vector kernels                                            */
/* ===================================================================== */
/* C = alpha * op(A) * op(B) + beta * C, all row-major.  op(A) is m x k (A is
 * m x k, or k x m when trans_a), op(B) is k x n (B is k x n, or n x k when
 * trans_b), C is m x n; lda/ldb/ldc are row strides in floats.  beta == 0
 * never reads C.  Bit-identical for any thread count of ctx. */
MMGAN_DEF mmgan_status mmgan_gemm(mmgan_ctx *ctx, int trans_a, int trans_b,
                                  int m, int n, int k, float alpha,
                                  const float *a, int lda, const float *b, int ldb,
                                  float beta, float *c, int ldc);

/* Vector kernels on n floats.  Output may alias an input exactly.  On ARMv7
 * NEON the hardware flushes denormals to zero, so results below FLT_MIN are 0. */
/* y += a * x */
MMGAN_DEF void mmgan_vec_axpy(size_t n, float a, const float *x, float *y);
/* y = a * x + b * y */
MMGAN_DEF void mmgan_vec_axpby(size_t n, float a, const float *x, float b, float *y);
/* y = a * x */
MMGAN_DEF void mmgan_vec_scale(size_t n, float a, const float *x, float *y);
/* z = x + y */
MMGAN_DEF void mmgan_vec_add(size_t n, const float *x, const float *y, float *z);
/* z = x - y */
MMGAN_DEF void mmgan_vec_sub(size_t n, const float *x, const float *y, float *z);
/* z = x * y */
MMGAN_DEF void mmgan_vec_mul(size_t n, const float *x, const float *y, float *z);
/* y = max(x, 0) */
MMGAN_DEF void mmgan_vec_relu(size_t n, const float *x, float *y);
/* y = x if x > 0 else slope * x */
MMGAN_DEF void mmgan_vec_leaky_relu(size_t n, float slope, const float *x, float *y);
/* y = exp(x), within 2 ulp (denormal results included); NaN stays NaN. */
MMGAN_DEF void mmgan_vec_exp(size_t n, const float *x, float *y);
/* y = tanh(x), within 4 ulp; keeps the sign of -0. */
MMGAN_DEF void mmgan_vec_tanh(size_t n, const float *x, float *y);
/* y = 1 / (1 + exp(-x)), within 4 ulp, tiny values of very negative x kept. */
MMGAN_DEF void mmgan_vec_sigmoid(size_t n, const float *x, float *y);
/* Sum of x in double precision, in a fixed order. */
MMGAN_DEF double mmgan_vec_sum(size_t n, const float *x);
/* Dot product of x and y in double precision, in a fixed order. */
MMGAN_DEF double mmgan_vec_dot(size_t n, const float *x, const float *y);

/* ===================================================================== */
/* 1.7 Parameters                                                         */
/* ===================================================================== */
/* A parameter is a persistent tensor (weights, biases, batch-norm running
 * statistics) that outlives graphs: every graph and plan that uses it reads
 * and the optimizer writes the same storage. */
typedef struct mmgan_param mmgan_param;

/* Initializers.  `a` means: CONST the value; NORMAL the standard deviation;
 * UNIFORM the half-width (U[-a, a]); HE_* the leaky-relu slope after the
 * layer (0 for relu); XAVIER_* the gain (1 for linear/sigmoid).  Fans follow
 * PyTorch: fan_in = shape[1] * kh * kw, fan_out = shape[0] * kh * kw; a 1-d
 * tensor, which PyTorch refuses, takes fan_in = fan_out = shape[0]. */
typedef enum mmgan_init {
    MMGAN_INIT_ZEROS, MMGAN_INIT_CONST, MMGAN_INIT_NORMAL, MMGAN_INIT_UNIFORM,
    MMGAN_INIT_HE_NORMAL, MMGAN_INIT_HE_UNIFORM, MMGAN_INIT_XAVIER_NORMAL, MMGAN_INIT_XAVIER_UNIFORM
} mmgan_init;

/* New zero-filled parameter of the given shape; name is copied (up to 63 chars). */
MMGAN_DEF mmgan_param *mmgan_param_new(mmgan_ctx *ctx, const char *name, int ndim, const int *shape);
/* Frees a parameter; no graph that uses it may run afterwards. */
MMGAN_DEF void mmgan_param_free(mmgan_param *p);
/* Fills the parameter from an initializer (a finite; a scale at most 1e37), drawing from rng
 * (unused for ZEROS/CONST). */
MMGAN_DEF mmgan_status mmgan_param_init(mmgan_param *p, mmgan_init kind, float a, mmgan_rng *rng);
/* The parameter's tensor; its data may be read and written between plan runs. */
MMGAN_DEF mmgan_tensor *mmgan_param_tensor(mmgan_param *p);
/* The name given at creation. */
MMGAN_DEF const char *mmgan_param_name(const mmgan_param *p);

/* ===================================================================== */
/* 1.8 Graphs and ops                                                     */
/* ===================================================================== */
/* A graph is built once and run many times through plans (1.10).  Nodes are
 * small integers, indices into the graph that made them: a node of another
 * graph is taken as this graph's node of that number (only ids out of range
 * are refused), so keep each graph's nodes apart.  A builder that fails
 * returns MMGAN_NONE, records the first error in the graph
 * (mmgan_graph_status) and the context's message, e.g.
 * "conv2d: input has 3 channels, weight expects 1 (input [2, 3, 8, 8], weight
 * [4, 1, 3, 3])"; builders given MMGAN_NONE return MMGAN_NONE, so a whole
 * network can be built and checked once at the end.  Shapes are NCHW for
 * images and [N, features] for vectors; axis 0 is always the batch. */
typedef struct mmgan_graph mmgan_graph;
typedef int mmgan_node;
#define MMGAN_NONE (-1)

/* New empty graph on ctx. */
MMGAN_DEF mmgan_graph *mmgan_graph_new(mmgan_ctx *ctx);
/* Frees the graph (not its parameters).  Plans on it must be freed first. */
MMGAN_DEF void mmgan_graph_free(mmgan_graph *g);
/* MMGAN_OK, or the status of the first failed builder (message in the context). */
MMGAN_DEF mmgan_status mmgan_graph_status(const mmgan_graph *g);
/* Number of nodes built so far. */
MMGAN_DEF int mmgan_graph_size(const mmgan_graph *g);
/* Shape of a node: returns ndim and writes up to 4 sizes to shape (may be NULL);
 * 0 if invalid, and for a valid 0-d node (a scalar: numel 1). */
MMGAN_DEF int mmgan_node_shape(const mmgan_graph *g, mmgan_node x, int *shape);
/* Number of elements of a node (0 if invalid). */
MMGAN_DEF size_t mmgan_node_numel(const mmgan_graph *g, mmgan_node x);

/* Leaves.  An input is fed before each run with mmgan_graph_feed. */
MMGAN_DEF mmgan_node mmgan_input(mmgan_graph *g, const char *name, int ndim, const int *shape);
/* Binds an input to caller memory (numel floats, read at each run, not copied). */
MMGAN_DEF mmgan_status mmgan_graph_feed(mmgan_graph *g, mmgan_node input, const float *data);
/* A parameter as a node (the same node each time it is asked for in one graph);
 * gradients with respect to it are ordinary nodes. */
MMGAN_DEF mmgan_node mmgan_parameter(mmgan_graph *g, mmgan_param *p);
/* A constant, copied from data (numel floats). */
MMGAN_DEF mmgan_node mmgan_constant(mmgan_graph *g, int ndim, const int *shape, const float *data);
/* A constant tensor with every element equal to v. */
MMGAN_DEF mmgan_node mmgan_fill(mmgan_graph *g, int ndim, const int *shape, float v);

/* Elementwise arithmetic with NumPy broadcasting (shapes aligned on the right,
 * sizes equal or 1). */
MMGAN_DEF mmgan_node mmgan_add(mmgan_graph *g, mmgan_node a, mmgan_node b);
/* a - b, broadcasting. */
MMGAN_DEF mmgan_node mmgan_sub(mmgan_graph *g, mmgan_node a, mmgan_node b);
/* a * b, broadcasting. */
MMGAN_DEF mmgan_node mmgan_mul(mmgan_graph *g, mmgan_node a, mmgan_node b);
/* a / b, broadcasting. */
MMGAN_DEF mmgan_node mmgan_div(mmgan_graph *g, mmgan_node a, mmgan_node b);
/* s * x */
MMGAN_DEF mmgan_node mmgan_scale(mmgan_graph *g, mmgan_node x, float s);
/* s * x + c */
MMGAN_DEF mmgan_node mmgan_affine(mmgan_graph *g, mmgan_node x, float s, float c);
/* Sums x over the axes where shape has size 1 (right-aligned, like broadcasting in reverse). */
MMGAN_DEF mmgan_node mmgan_sum_to(mmgan_graph *g, mmgan_node x, int ndim, const int *shape);
/* Repeats x along its size-1 axes (and new leading axes) to the given shape; x's
 * leading axes beyond the shape's must be 1. */
MMGAN_DEF mmgan_node mmgan_broadcast_to(mmgan_graph *g, mmgan_node x, int ndim, const int *shape);

/* Dense layers.  op(a) * op(b) for 2-d nodes, op = transpose when the flag is set. */
MMGAN_DEF mmgan_node mmgan_matmul(mmgan_graph *g, mmgan_node a, mmgan_node b, int trans_a, int trans_b);
/* x [N, in] * w^T [in, out] + b [out] (PyTorch layout: w is [out, in]); b may be MMGAN_NONE. */
MMGAN_DEF mmgan_node mmgan_linear(mmgan_graph *g, mmgan_node x, mmgan_node w, mmgan_node b);
/* x + b with b [C] added along axis 1 (channels of NCHW, features of [N, F]).
 * On the output of a convolution it becomes part of that op. */
MMGAN_DEF mmgan_node mmgan_bias_add(mmgan_graph *g, mmgan_node x, mmgan_node b);

/* Convolutions (cross-correlation, as in PyTorch).  x [N, C, H, W], w [O, C, kh, kw]
 * -> [N, O, (H + 2 pad - kh) / stride + 1, (W + 2 pad - kw) / stride + 1].
 * 4x4 stride-2 padding-1 ones with 32 channels or more on each side (the
 * DCGAN's), all three products, go through Winograd's F(4x4, 2x2) except on
 * AVX-512: half the multiplies, an error up to about 1e-5 of the largest
 * output (the direct product's 5e-7). */
MMGAN_DEF mmgan_node mmgan_conv2d(mmgan_graph *g, mmgan_node x, mmgan_node w, int stride, int pad);
/* The adjoint of conv2d in its input: x [N, C, H, W], w [C, O, kh, kw] (PyTorch
 * layout) -> [N, O, (H - 1) stride - 2 pad + kh + out_pad, same for W]. */
MMGAN_DEF mmgan_node mmgan_conv_transpose2d(mmgan_graph *g, mmgan_node x, mmgan_node w,
                                            int stride, int pad, int out_pad);
/* Weight gradient of conv2d as an op: the correlation of x [N, C, H, W] with
 * gy [N, O, Ho, Wo] -> [O, C, kh, kw]; differentiable like the convolutions. */
MMGAN_DEF mmgan_node mmgan_conv2d_wgrad(mmgan_graph *g, mmgan_node x, mmgan_node gy,
                                        int kh, int kw, int stride, int pad);

/* Shape and batch ops. */
MMGAN_DEF mmgan_node mmgan_reshape(mmgan_graph *g, mmgan_node x, int ndim, const int *shape);
/* [N, ...] -> [N, rest]. */
MMGAN_DEF mmgan_node mmgan_flatten(mmgan_graph *g, mmgan_node x);
/* Concatenation along the batch axis (axis 0; not of scalars); the other axes must match. */
MMGAN_DEF mmgan_node mmgan_concat(mmgan_graph *g, mmgan_node a, mmgan_node b);
/* Samples [start, start + count) of the batch. */
MMGAN_DEF mmgan_node mmgan_slice(mmgan_graph *g, mmgan_node x, int start, int count);
/* x placed at samples [start, start + N) of a zero batch of `total` samples (slice's adjoint). */
MMGAN_DEF mmgan_node mmgan_pad_batch(mmgan_graph *g, mmgan_node x, int start, int total);
/* Same value, but a constant for differentiation (stop-gradient). */
MMGAN_DEF mmgan_node mmgan_detach(mmgan_graph *g, mmgan_node x);

/* Activations and elementwise functions.  max(x, 0), derivative 0 at 0. */
MMGAN_DEF mmgan_node mmgan_relu(mmgan_graph *g, mmgan_node x);
/* x if x > 0 else slope * x */
MMGAN_DEF mmgan_node mmgan_leaky_relu(mmgan_graph *g, mmgan_node x, float slope);
/* 1 / (1 + exp(-x)) */
MMGAN_DEF mmgan_node mmgan_sigmoid(mmgan_graph *g, mmgan_node x);
/* tanh(x) */
MMGAN_DEF mmgan_node mmgan_tanh(mmgan_graph *g, mmgan_node x);
/* log(1 + exp(x)), computed without overflow. */
MMGAN_DEF mmgan_node mmgan_softplus(mmgan_graph *g, mmgan_node x);
/* log(sigmoid(x)) = -softplus(-x), computed without overflow. */
MMGAN_DEF mmgan_node mmgan_log_sigmoid(mmgan_graph *g, mmgan_node x);
/* exp(x) */
MMGAN_DEF mmgan_node mmgan_exp(mmgan_graph *g, mmgan_node x);
/* log(x) */
MMGAN_DEF mmgan_node mmgan_log(mmgan_graph *g, mmgan_node x);
/* sqrt(x); its derivative is infinite at 0, so add a margin where x can be 0. */
MMGAN_DEF mmgan_node mmgan_sqrt(mmgan_graph *g, mmgan_node x);
/* |x|, with derivative sign(x) (0 at 0). */
MMGAN_DEF mmgan_node mmgan_abs(mmgan_graph *g, mmgan_node x);
/* x * x */
MMGAN_DEF mmgan_node mmgan_square(mmgan_graph *g, mmgan_node x);
/* max(x, c), derivative 1 where x > c. */
MMGAN_DEF mmgan_node mmgan_maximum(mmgan_graph *g, mmgan_node x, float c);

/* Reductions.  Whole-tensor results have shape [1]; per-sample results
 * [N, 1, ...] (x's ndim, all but the batch axis 1), ready to broadcast back. */
MMGAN_DEF mmgan_node mmgan_sum(mmgan_graph *g, mmgan_node x);
/* Mean of all elements, shape [1]. */
MMGAN_DEF mmgan_node mmgan_mean(mmgan_graph *g, mmgan_node x);
/* Sum over every axis but the batch. */
MMGAN_DEF mmgan_node mmgan_sum_per_sample(mmgan_graph *g, mmgan_node x);
/* Mean over every axis but the batch. */
MMGAN_DEF mmgan_node mmgan_mean_per_sample(mmgan_graph *g, mmgan_node x);
/* max |x| over every axis but the batch (the L-infinity norm); the derivative
 * goes to the first element reaching the maximum, with its sign. */
MMGAN_DEF mmgan_node mmgan_max_abs_per_sample(mmgan_graph *g, mmgan_node x);
/* softmax(s * x) over every axis but the batch, same shape as x. */
MMGAN_DEF mmgan_node mmgan_softmax_per_sample(mmgan_graph *g, mmgan_node x, float s);
/* Smooth maximum sum_i x_i e^(s x_i) / sum_i e^(s x_i) per sample (the SVM-GAN
 * paper's smax with s = 1); tends to the maximum as s grows. */
MMGAN_DEF mmgan_node mmgan_smooth_max_per_sample(mmgan_graph *g, mmgan_node x, float s);

/* Normalization.  Batch norm over axes 0, 2, 3 (or 0 for [N, F]) per channel,
 * gamma and beta [C] (either may be MMGAN_NONE).  training != 0: batch
 * statistics, and each run updates running_mean/var (params of shape [C])
 * with r = (1 - momentum) r + momentum * stat (unbiased variance, as PyTorch);
 * training == 0: the running statistics are used and left unchanged. */
MMGAN_DEF mmgan_node mmgan_batch_norm(mmgan_graph *g, mmgan_node x, mmgan_node gamma, mmgan_node beta,
                                      mmgan_param *running_mean, mmgan_param *running_var,
                                      float momentum, float eps, int training);
/* Layer norm over every axis but the batch; gamma and beta have x's shape
 * without the batch axis (either may be MMGAN_NONE). */
MMGAN_DEF mmgan_node mmgan_layer_norm(mmgan_graph *g, mmgan_node x, mmgan_node gamma, mmgan_node beta, float eps);

/* Random values drawn from rng at every run of a plan (interpolation weights,
 * noise), shape as given; constants for differentiation.  lo <= hi, finite. */
MMGAN_DEF mmgan_node mmgan_random_uniform(mmgan_graph *g, mmgan_rng *rng, int ndim, const int *shape,
                                          float lo, float hi);
/* Normal values drawn from rng at every run (std >= 0; finite options). */
MMGAN_DEF mmgan_node mmgan_random_normal(mmgan_graph *g, mmgan_rng *rng, int ndim, const int *shape,
                                         float mean, float std);
/* A [1] node that reads *value at every run (a scalar controlled from outside). */
MMGAN_DEF mmgan_node mmgan_scalar_ref(mmgan_graph *g, const float *value);
/* max over every axis but the batch (signed), with derivative 1 at the first maximum. */
MMGAN_DEF mmgan_node mmgan_max_per_sample(mmgan_graph *g, mmgan_node x);

/* ===================================================================== */
/* 1.9 Automatic differentiation                                          */
/* ===================================================================== */
/* Appends to g the gradient of sum(y) with respect to each wrt[i], written to
 * out[i] (same shape as wrt[i]).  The new nodes are ordinary differentiable
 * ops, so mmgan_grad may be applied to them again, to any order.  Only paths
 * from the wrt nodes to y are built; detached values are constants; a wrt
 * that y does not depend on gets a zero constant.  Fails (MMGAN_ERR_UNSUPPORTED)
 * if the path crosses an op without a derivative. */
MMGAN_DEF mmgan_status mmgan_grad(mmgan_graph *g, mmgan_node y, int n, const mmgan_node *wrt, mmgan_node *out);

/* ===================================================================== */
/* 1.10 Execution plans                                                   */
/* ===================================================================== */
/* A plan computes a set of target nodes.  It is made once: the nodes the
 * targets need, in a topological order chosen to keep memory low (one
 * branch's backward may run before another branch's forward; random draws
 * keep the order they were made in), with buffers shared between values
 * whose lifetimes do not overlap (an elementwise op may write over its
 * input; an op's scratch lives at that op only).  Running a plan allocates
 * nothing; only targets are readable after a run.  An op whose value must
 * be all zeros (a product with an all-zero operand and a finite other one,
 * a sum of zeros: the gradients of a hinge penalty no sample crosses) is
 * not run, its zeros written only where something reads them; the values
 * are the same, up to the sign of a zero. */
typedef struct mmgan_plan mmgan_plan;

/* Plans the computation of targets[0..n) (NULL and a message on failure). */
MMGAN_DEF mmgan_plan *mmgan_plan_new(mmgan_graph *g, int n, const mmgan_node *targets);
/* A plan in stages that run one after another, with anything (an optimizer
 * step) in between: stage s computes its counts[s] targets (taken in turn
 * from targets), reusing every value an earlier stage computed instead of
 * computing it again.  So a GAN's G step can reuse the fake batch, and the
 * generator activations, of its D step: build the critic twice, on
 * detach(fake) for the D step and on fake for the G step, and only the
 * generator's forward is shared.  A reused value is as its stage left it:
 * parameters changed since are seen only by the nodes the later stage
 * computes itself (as with PyTorch's retained graph). */
MMGAN_DEF mmgan_plan *mmgan_plan_new_stages(mmgan_graph *g, int nstages, const int *counts,
                                            const mmgan_node *targets);
/* Frees a plan. */
MMGAN_DEF void mmgan_plan_free(mmgan_plan *p);
/* Runs the plan, every stage in order: every input it needs must have been fed. */
MMGAN_DEF mmgan_status mmgan_plan_run(mmgan_plan *p);
/* Runs stage s alone: stage 0 at any time, stage s > 0 right after stage s - 1. */
MMGAN_DEF mmgan_status mmgan_plan_run_stage(mmgan_plan *p, int s);
/* Number of stages (1 for mmgan_plan_new). */
MMGAN_DEF int mmgan_plan_stages(const mmgan_plan *p);
/* Value of a target (or input, parameter, constant) after the last run that
 * computed it; NULL otherwise (a target before its stage first ran). */
MMGAN_DEF const float *mmgan_plan_value(const mmgan_plan *p, mmgan_node x);
/* Bytes of activation and scratch memory the plan holds. */
MMGAN_DEF size_t mmgan_plan_bytes(const mmgan_plan *p);

/* ===================================================================== */
/* 1.11 GAN losses                                                        */
/* ===================================================================== */
/* Every loss is built from raw critic outputs (logits, shape [B] or [B, 1],
 * never passed through a sigmoid), and both sides are MINIMIZED: the
 * discriminator (critic) minimizes the D side, the generator the G side.
 * The G side takes the real critic output too, which the relativistic forms
 * need.  docs/losses.md has every formula with its source.  With
 * d_r = C(x_real), d_f = C(x_fake), means over the batch:
 *   SGAN       D: mean softplus(-d_r) + mean softplus(d_f)
 *              G: -mean softplus(d_f) (saturating, the minimax game) or
 *                 mean softplus(-d_f) (non-saturating)
 *   LSGAN      D: mean (d_r - b)^2 + mean (d_f - a)^2    G: mean (d_f - c)^2
 *              (a, b, c) = (0, 1, 1) as in the reference code, (-1, 1, 1) the
 *              SVM-GAN paper's f1, f2, f3; no factor 1/2
 *   HINGE      D: mean relu(1 - d_r) + mean relu(1 + d_f)  G: -mean d_f
 *   WGAN       D: mean d_f - mean d_r                      G: -mean d_f
 * Relativistic forms of SGAN, LSGAN (targets +-1), HINGE (and WGAN) replace
 * d_r, d_f in the D terms phi_r(d_r) + phi_f(d_f) by differences, and swap
 * the roles on the G side:
 *   AVERAGE    D: mean phi_r(d_r - mean d_f) + mean phi_f(d_f - mean d_r)
 *              G: mean phi_f(d_r - mean d_f) + mean phi_r(d_f - mean d_r)
 *   CENTRED    as AVERAGE with both means replaced by c = (mean d_r + mean d_f)/2
 *   PAIRED     D: mean_i phi_r(d_r,i - d_f,i)   G: mean_i phi_r(d_f,i - d_r,i)
 *   ALL_PAIRS  as PAIRED over all B^2 pairs (i, j)
 * phi_r(t) = softplus(-t), (t - 1)^2, relu(1 - t), -t and phi_f(t) = phi_r(-t).
 * PAIRED follows the paper; the MaximumMarginGANs code doubles the D side
 * (as if lambda were halved) and, for ALL_PAIRS, the G side too. */
typedef enum mmgan_loss_kind {
    MMGAN_LOSS_SGAN,        /* standard GAN (non-saturating G unless .saturating) */
    MMGAN_LOSS_LSGAN,       /* least squares with targets (a, b, c) */
    MMGAN_LOSS_HINGE,
    MMGAN_LOSS_WGAN         /* Wasserstein: add a penalty or mmgan_param_clip */
} mmgan_loss_kind;

typedef enum mmgan_relativistic {
    MMGAN_REL_NONE, MMGAN_REL_AVERAGE, MMGAN_REL_CENTRED, MMGAN_REL_PAIRED, MMGAN_REL_ALL_PAIRS
} mmgan_relativistic;

typedef struct mmgan_loss_spec {
    mmgan_loss_kind kind;
    mmgan_relativistic rel;
    int saturating;          /* non-relativistic SGAN G side: the minimax -mean softplus(d_f) */
    float a, b, c;           /* LSGAN targets: fake, real, generator (non-relativistic) */
} mmgan_loss_spec;

/* The parts of a loss, each a [1] node: total = real + fake, the terms of
 * the real and of the fake scores.  The non-relativistic G side has only a
 * fake term (real = 0); PAIRED and ALL_PAIRS, whose terms do not separate,
 * put everything in real (fake = 0). */
typedef struct mmgan_loss {
    mmgan_node total, real, fake;
} mmgan_loss;

/* A spec with defaults: non-saturating SGAN G, LSGAN (a, b, c) = (0, 1, 1). */
MMGAN_DEF mmgan_loss_spec mmgan_loss_default(mmgan_loss_kind kind, mmgan_relativistic rel);
/* Builds the discriminator side from critic outputs on real and fake batches. */
MMGAN_DEF mmgan_status mmgan_loss_d(mmgan_graph *g, const mmgan_loss_spec *spec,
                                    mmgan_node d_real, mmgan_node d_fake, mmgan_loss *out);
/* Builds the generator side (d_real is only read by the relativistic forms). */
MMGAN_DEF mmgan_status mmgan_loss_g(mmgan_graph *g, const mmgan_loss_spec *spec,
                                    mmgan_node d_real, mmgan_node d_fake, mmgan_loss *out);
/* Clamps every value of p to [-c, c] (the original WGAN's weight clipping);
 * c must be finite and >= 0. */
MMGAN_DEF mmgan_status mmgan_param_clip(mmgan_param *p, float c);

/* ===================================================================== */
/* 1.12 Gradient penalties                                                */
/* ===================================================================== */
/* penalty = lambda * mean_i shape(norm(g_i) - center), g_i = d C(x^_i) / d x^_i
 * over all non-batch axes of sample i, computed with mmgan_grad (so the
 * penalty's own gradient is a second derivative).  The points x^ are
 * constants (real and fake are detached):
 *   INTERPOLATE  x^ = u x_real + (1 - u) x_fake, one u ~ U[0, 1) per sample
 *   REAL (R1), FAKE (R2)  x^ = x_real or x_fake; with center 0 and SQUARED
 *                this is R1/R2 with gamma = 2 lambda in the gamma/2 convention
 *   DRAGAN       x^ = x_real + u * dragan_c * std(x_real) * U[0, 1) noise, std
 *                over the whole batch (population, not per feature)
 * Norms: L1 sum |g|; L2 sqrt(sum g^2 + 1e-12) (finite gradient at g = 0);
 * LINF max |g| (subgradient sign(g_k) at the first k reaching it);
 * SMOOTH_MAX sum |g| e^(s|g|) / sum e^(s|g|) per sample (the paper's smax);
 * SIGNED_MAX max g without |.|: what MaximumMarginGANs' "--l1_margin" runs
 * compute (its abs flag is inverted), not a norm.
 * Shapes: SQUARED (n - t)^2, HINGE max(0, n - t), ONE_SIDED max(0, n - t)^2,
 * ABS |n - t|. */
typedef enum mmgan_gp_points { MMGAN_GP_INTERPOLATE, MMGAN_GP_REAL, MMGAN_GP_FAKE, MMGAN_GP_DRAGAN } mmgan_gp_points;
typedef enum mmgan_gp_norm { MMGAN_NORM_L2, MMGAN_NORM_L1, MMGAN_NORM_LINF, MMGAN_NORM_SMOOTH_MAX,
                             MMGAN_NORM_SIGNED_MAX } mmgan_gp_norm;
typedef enum mmgan_gp_shape { MMGAN_GP_SQUARED, MMGAN_GP_HINGE, MMGAN_GP_ONE_SIDED, MMGAN_GP_ABS } mmgan_gp_shape;

typedef struct mmgan_gp_spec {
    mmgan_gp_points points;
    mmgan_gp_norm norm;
    mmgan_gp_shape shape;
    float center;            /* t: 1 (WGAN-GP) or 0 (zero-centred, R1/R2) */
    float lambda;            /* the weight, >= 0 */
    float smooth_s;          /* SMOOTH_MAX temperature s (the paper runs use 1) */
    float dragan_c;          /* DRAGAN noise scale, >= 0 (0.5 in its paper) */
} mmgan_gp_spec;

/* The critic as a builder: applies it to x in g and returns its output node
 * (the same parameters, so the penalty differentiates the same weights). */
typedef mmgan_node (*mmgan_critic_fn)(mmgan_graph *g, mmgan_node x, void *user);

/* What a penalty builds: the [1] penalty (lambda included), the per-sample
 * norms [B, 1, ...] and the points x^, for logging; u, the per-sample
 * weights drawn for INTERPOLATE and DRAGAN (else MMGAN_NONE), so that a run
 * can be replayed elsewhere. */
typedef struct mmgan_gp {
    mmgan_node penalty, norm, points, u;
} mmgan_gp;

/* WGAN-GP defaults: interpolates, L2, squared, center 1, lambda 10, s 1, c 0.5. */
MMGAN_DEF mmgan_gp_spec mmgan_gp_default(void);
/* Builds the penalty on critic(x^); rng draws u and the DRAGAN noise at each run. */
MMGAN_DEF mmgan_status mmgan_gradient_penalty(mmgan_graph *g, const mmgan_gp_spec *spec,
                                              mmgan_node x_real, mmgan_node x_fake,
                                              mmgan_critic_fn critic, void *user,
                                              mmgan_rng *rng, mmgan_gp *out);

/* ===================================================================== */
/* 1.13 Energy-based GANs: EBGAN, BEGAN, MAGAN                            */
/* ===================================================================== */
/* The critic is an auto-encoder; a sample's energy is its reconstruction
 * error, per sample ([B, 1, ...]):
 *   SSE   sum (recon - x)^2       (what the MAGAN code computes; the default)
 *   NORM  sqrt(SSE + 1e-12)       (the MAGAN paper's ||Dec(Enc(x)) - x||)
 *   MSE   mean (recon - x)^2      (the per-pixel scale of most EBGAN code) */
typedef enum mmgan_energy_kind { MMGAN_ENERGY_SSE, MMGAN_ENERGY_NORM, MMGAN_ENERGY_MSE } mmgan_energy_kind;

/* Per-sample reconstruction energy of x given recon (same shape). */
MMGAN_DEF mmgan_node mmgan_energy(mmgan_graph *g, mmgan_node x, mmgan_node recon, mmgan_energy_kind kind);
/* EBGAN critic side: mean E(x_real) + mean max(0, margin - E(x_fake)); margin a [1] node
 * (mmgan_fill for a fixed margin, mmgan_magan_margin for MAGAN's). */
MMGAN_DEF mmgan_status mmgan_ebgan_loss_d(mmgan_graph *g, mmgan_node e_real, mmgan_node e_fake,
                                          mmgan_node margin, mmgan_loss *out);
/* EBGAN generator side: mean E(x_fake) (the fake part) + pt_weight * PT(embed)
 * (the real part, 0 when embed is MMGAN_NONE). */
MMGAN_DEF mmgan_status mmgan_ebgan_loss_g(mmgan_graph *g, mmgan_node e_fake, mmgan_node embed,
                                          float pt_weight, mmgan_loss *out);
/* EBGAN's pulling-away term on embeddings s [B, ...]: the mean over i != j of
 * cos^2(s_i, s_j) (squared, diagonal excluded, as in the paper). */
MMGAN_DEF mmgan_node mmgan_pulling_away(mmgan_graph *g, mmgan_node embed);

/* BEGAN: L_D = mean E(x) - k mean E(G(z)), L_G = mean E(G(z)); after each
 * step k <- clamp(k + lambda_k (gamma mean E(x) - mean E(G(z))), 0, 1). */
typedef struct mmgan_began {
    float k, gamma, lambda_k;
    float convergence;       /* M = E(x) + |gamma E(x) - E(G(z))| of the last update */
} mmgan_began;

/* Sets k = 0 and the given gamma (the paper uses 0.3 to 0.7) and lambda_k
 * (the paper: 0.001). */
MMGAN_DEF void mmgan_began_init(mmgan_began *b, float gamma, float lambda_k);
/* Builds L_D, reading b->k at every run (b must outlive the graph); gamma and
 * lambda_k must be finite. */
MMGAN_DEF mmgan_status mmgan_began_loss_d(mmgan_graph *g, mmgan_began *b, mmgan_node e_real,
                                          mmgan_node e_fake, mmgan_loss *out);
/* Updates k from the step's mean energies (a NaN leaves k as it was); returns
 * the convergence measure M. */
MMGAN_DEF float mmgan_began_update(mmgan_began *b, float e_real, float e_fake);

/* MAGAN's margin controller (Algorithm 1 of Wang et al.): pre-train the
 * critic as an auto-encoder with margin 0, estimate the real energy over an
 * epoch, then at the end of each epoch t set m = E_data^t when
 *   E_data^t < m  and  E_data^t < E_G^t  and  E_G^{t-1} <= E_G^t
 * with E the epoch means of the energies and E_G^0 = infinity (no update
 * after the first epoch).  The paper compares E_G with <=, the authors' code
 * with <; .strict selects the code's.  The default is the paper's. */
typedef struct mmgan_magan {
    float margin;            /* read by the graph at every run */
    int strict;              /* 1: E_G^{t-1} < E_G^t as the reference code */
    int epoch;               /* completed training epochs */
    double sum_data, sum_g, prev_g;
    long n_data, n_g;
} mmgan_magan;

/* Margin 0 for pre-training; strict as above. */
MMGAN_DEF void mmgan_magan_init(mmgan_magan *m, int strict);
/* A [1] node that reads m->margin at every run. */
MMGAN_DEF mmgan_node mmgan_magan_margin(mmgan_graph *g, mmgan_magan *m);
/* Accumulates real energies (sum over n samples) during an epoch or the estimation pass. */
MMGAN_DEF void mmgan_magan_observe_real(mmgan_magan *m, double energy_sum, long n);
/* Accumulates fake energies (sum over n samples) during an epoch. */
MMGAN_DEF void mmgan_magan_observe_fake(mmgan_magan *m, double energy_sum, long n);
/* After pre-training and the estimation pass: m = mean real energy observed. */
MMGAN_DEF mmgan_status mmgan_magan_start(mmgan_magan *m);
/* End of a training epoch: applies the rule, resets the sums; 1 if m changed.
 * An epoch with no real or no fake energy observed changes nothing (returns 0). */
MMGAN_DEF int mmgan_magan_end_epoch(mmgan_magan *m);

/* ===================================================================== */
/* 1.14 Optimizers                                                        */
/* ===================================================================== */
/* An optimizer updates a fixed list of parameters from gradients (usually
 * the values of gradient nodes after a plan run).  Its state is allocated
 * once at creation; a step allocates nothing.  Formulas as PyTorch's, with
 * t the step count from 1 and g += weight_decay * w first:
 *   SGD      b = momentum b + g (b = g at the first step); w -= lr b
 *   ADAM     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *            w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *   ADAMAX   m = b1 m + (1-b1) g;  u = max(b2 u, |g| + eps);  w -= lr / (1 - b1^t) * m / u
 *            bias_correction = 0 gives the MAGAN reference code's variant:
 *            u = max(b2 u + eps, |g|);  w -= lr m / u
 *   RMSPROP  v = alpha v + (1-alpha) g^2; with momentum > 0: b = momentum b +
 *            g / (sqrt(v) + eps), w -= lr b; else w -= lr g / (sqrt(v) + eps) */
typedef enum mmgan_opt_kind { MMGAN_OPT_SGD, MMGAN_OPT_ADAM, MMGAN_OPT_ADAMAX, MMGAN_OPT_RMSPROP } mmgan_opt_kind;

typedef struct mmgan_opt_spec {
    mmgan_opt_kind kind;
    float lr, beta1, beta2, eps;   /* beta2 is RMSprop's alpha */
    float momentum, weight_decay;
    int bias_correction;           /* ADAMAX only; 1 as PyTorch */
} mmgan_opt_spec;

typedef struct mmgan_optimizer mmgan_optimizer;

/* PyTorch's defaults for kind (lr 1e-3, RMSprop 1e-2, Adamax 2e-3; Adam/Adamax
 * betas (0.9, 0.999), eps 1e-8; RMSprop alpha 0.99, eps 1e-8), bias correction on. */
MMGAN_DEF mmgan_opt_spec mmgan_opt_default(mmgan_opt_kind kind);
/* An optimizer over params[0..n) (the array is copied; the params must outlive it). */
MMGAN_DEF mmgan_optimizer *mmgan_opt_new(mmgan_ctx *ctx, const mmgan_opt_spec *spec, int n, mmgan_param *const *params);
/* Frees an optimizer (not its parameters). */
MMGAN_DEF void mmgan_opt_free(mmgan_optimizer *o);
/* One step from grads[i], each holding as many floats as params[i]. */
MMGAN_DEF mmgan_status mmgan_opt_step(mmgan_optimizer *o, const float *const *grads);
/* One step reading the gradients from the nodes grad[i] of a plan that has just run. */
MMGAN_DEF mmgan_status mmgan_opt_step_plan(mmgan_optimizer *o, const mmgan_plan *p, const mmgan_node *grad);
/* Steps taken so far. */
MMGAN_DEF long mmgan_opt_steps(const mmgan_optimizer *o);
/* The learning rate may change between steps (schedules); finite and >= 0. */
MMGAN_DEF mmgan_status mmgan_opt_set_lr(mmgan_optimizer *o, float lr);

/* Exponential moving average of parameters (of a generator, for sampling):
 * s = decay s + (1 - decay) w after each update. */
typedef struct mmgan_ema mmgan_ema;

/* Shadow copies of params[0..n), starting equal to them. */
MMGAN_DEF mmgan_ema *mmgan_ema_new(mmgan_ctx *ctx, float decay, int n, mmgan_param *const *params);
/* Frees the averages. */
MMGAN_DEF void mmgan_ema_free(mmgan_ema *e);
/* Folds the current parameter values into the averages. */
MMGAN_DEF void mmgan_ema_update(mmgan_ema *e);
/* Exchanges parameters and averages (call twice to swap back). */
MMGAN_DEF void mmgan_ema_swap(mmgan_ema *e);

/* ===================================================================== */
/* 1.15 Data: inflate, gzip, IDX files, MNIST batches                     */
/* ===================================================================== */
/* Every reader validates what it reads against the bytes it has: a
 * malformed, truncated or corrupted file is an MMGAN_ERR_FORMAT with a
 * message, never a crash or an over-read. */

/* Decompresses raw DEFLATE (RFC 1951) data; *out is allocated (mmgan_free). */
MMGAN_DEF mmgan_status mmgan_inflate(mmgan_ctx *ctx, const unsigned char *in, size_t n,
                                     unsigned char **out, size_t *out_size);
/* Decompresses gzip data (RFC 1952): its members, concatenated, each checked by its CRC-32 and length. */
MMGAN_DEF mmgan_status mmgan_gunzip(mmgan_ctx *ctx, const unsigned char *in, size_t n,
                                    unsigned char **out, size_t *out_size);
/* CRC-32 (the gzip and PNG polynomial) of n bytes, continuing from crc (0 to start). */
MMGAN_DEF uint32_t mmgan_crc32(uint32_t crc, const unsigned char *p, size_t n);

/* An IDX array (the MNIST format): unsigned bytes, up to 4 dimensions. */
typedef struct mmgan_idx {
    int ndim, dims[4];
    size_t count;              /* product of dims */
    unsigned char *data;       /* count bytes (owned; mmgan_idx_free) */
} mmgan_idx;

/* Parses an IDX image in memory (gunzipped first if it starts with the gzip
 * magic).  Like every loader here, clears *out first: freeing it after an error is safe. */
MMGAN_DEF mmgan_status mmgan_idx_parse(mmgan_ctx *ctx, const unsigned char *buf, size_t n, mmgan_idx *out);
/* Frees an IDX array's data. */
MMGAN_DEF void mmgan_idx_free(mmgan_ctx *ctx, mmgan_idx *idx);

/* Images as floats [n, 1, h, w] scaled to [lo, hi], with optional labels. */
typedef struct mmgan_dataset {
    int n, c, h, w;
    float *images;             /* n * c * h * w floats (owned) */
    unsigned char *labels;     /* n labels or NULL (owned) */
} mmgan_dataset;

/* Builds a dataset from IDX images (3-d) and optional labels (1-d, same count). */
MMGAN_DEF mmgan_status mmgan_dataset_from_idx(mmgan_ctx *ctx, const mmgan_idx *images, const mmgan_idx *labels,
                                              float lo, float hi, mmgan_dataset *out);
/* Frees a dataset's arrays. */
MMGAN_DEF void mmgan_dataset_free(mmgan_ctx *ctx, mmgan_dataset *ds);

/* Batches of a dataset in a shuffled order, reshuffled (seeded) every epoch. */
typedef struct mmgan_batcher {
    const mmgan_dataset *ds;
    mmgan_rng *rng;
    int batch, pos, *order;
    long epoch;                /* completed passes over the data */
} mmgan_batcher;

/* Prepares batches of `batch` samples (allocates the order once; rng NULL: no
 * shuffling).  *b is cleared first: after a failure next returns -1, free is safe. */
MMGAN_DEF mmgan_status mmgan_batcher_init(mmgan_ctx *ctx, mmgan_batcher *b, const mmgan_dataset *ds, int batch,
                                          mmgan_rng *rng);
/* Copies the next batch into images (batch * c * h * w floats) and labels
 * (may be NULL); a batch never straddles two epochs. Returns 1 when this
 * batch started a new epoch, else 0; -1, copying nothing, for a NULL batcher
 * or one whose mmgan_batcher_init failed. */
MMGAN_DEF int mmgan_batcher_next(mmgan_batcher *b, float *images, unsigned char *labels);
/* Frees the batcher's order array. */
MMGAN_DEF void mmgan_batcher_free(mmgan_ctx *ctx, mmgan_batcher *b);

/* ===================================================================== */
/* 1.16 Images                                                            */
/* ===================================================================== */
/* Encodes 8-bit gray (channels 1) or RGB (3) pixels, rows top to bottom, as a
 * PNG in memory (*out allocated, mmgan_free). */
MMGAN_DEF mmgan_status mmgan_png_encode(mmgan_ctx *ctx, const unsigned char *pixels, int w, int h, int channels,
                                        unsigned char **out, size_t *out_size);
/* Tiles n images [n, c, h, w] (c = 1 or 3), values in [lo, hi], into a grid of
 * `cols` columns with a 1-pixel border; writes (W x H x c) bytes to pixels
 * when not NULL and returns the grid size in *gw, *gh. */
MMGAN_DEF mmgan_status mmgan_image_grid(mmgan_ctx *ctx, const float *images, int n, int c, int h, int w, int cols,
                                        float lo, float hi, unsigned char *pixels, int *gw, int *gh);

#ifndef MMGAN_NO_STDIO
/* Reads a whole file into *data (mmgan_free). */
MMGAN_DEF mmgan_status mmgan_read_file(mmgan_ctx *ctx, const char *path, unsigned char **data, size_t *size);
/* Writes a file atomically: a temporary file next to it (path.tmp), flushed, then
 * renamed over path (a symbolic link there is replaced, its target kept).  On
 * POSIX systems a path under /dev/ (/dev/stdout) or of a device or a FIFO is
 * written in place instead. */
MMGAN_DEF mmgan_status mmgan_write_file(mmgan_ctx *ctx, const char *path, const void *data, size_t size);
/* Loads an IDX file, gzip-compressed or not. */
MMGAN_DEF mmgan_status mmgan_idx_load(mmgan_ctx *ctx, const char *path, mmgan_idx *out);
/* Loads MNIST-style images and labels (labels_path may be NULL) scaled to [lo, hi]. */
MMGAN_DEF mmgan_status mmgan_mnist_load(mmgan_ctx *ctx, const char *images_path, const char *labels_path,
                                        float lo, float hi, mmgan_dataset *out);
/* Writes a grid of images as a PNG file (see mmgan_image_grid). */
MMGAN_DEF mmgan_status mmgan_save_grid_png(mmgan_ctx *ctx, const char *path, const float *images, int n, int c,
                                           int h, int w, int cols, float lo, float hi);
/* Writes training curves as an SVG line plot: ncurves (1 to 8) series
 * ys[k][0..n) against 1..n, each with its label, a shared y axis from min(0, ...) to max. */
MMGAN_DEF mmgan_status mmgan_svg_curves(mmgan_ctx *ctx, const char *path, const char *title, const char *xlabel,
                                        int ncurves, const char *const *labels, const double *const *ys, int n);
#endif

/* ===================================================================== */
/* 1.17 Checkpoints (safetensors)                                         */
/* ===================================================================== */
/* A checkpoint is a set of named float32 arrays plus string metadata, saved
 * in the safetensors format (an 8-byte little-endian header length, a JSON
 * header, the raw little-endian data), so PyTorch users can open it.  Saving
 * is atomic: a crash of the process mid-save leaves the previous file whole
 * (there is no fsync: a power loss may still lose the newest save).  Loading checks
 * every header field against the file before anything is read.  A save also
 * writes its data's CRC-32 as metadata (mmgan.data_crc32), which loading checks
 * where it is present (safetensors itself has no checksum; other writers' files
 * are read unchecked). */
typedef struct mmgan_ckpt mmgan_ckpt;

/* An empty checkpoint to fill and save. */
MMGAN_DEF mmgan_ckpt *mmgan_ckpt_new(mmgan_ctx *ctx);
/* Frees a checkpoint. */
MMGAN_DEF void mmgan_ckpt_free(mmgan_ckpt *ck);
/* Adds a copy of an array (names: up to 127 printable characters, no quotes or backslashes). */
MMGAN_DEF mmgan_status mmgan_ckpt_put(mmgan_ckpt *ck, const char *name, int ndim, const int *shape, const float *data);
/* Adds a parameter under its own name. */
MMGAN_DEF mmgan_status mmgan_ckpt_put_param(mmgan_ckpt *ck, const mmgan_param *p);
/* Adds a metadata string (same naming rules; the value up to 255 characters). */
MMGAN_DEF mmgan_status mmgan_ckpt_put_meta(mmgan_ckpt *ck, const char *key, const char *value);
/* Serializes to memory (*out allocated, mmgan_free). */
MMGAN_DEF mmgan_status mmgan_ckpt_encode(mmgan_ckpt *ck, unsigned char **out, size_t *out_size);
/* Parses a safetensors image (F32 arrays only), validating it completely. */
MMGAN_DEF mmgan_ckpt *mmgan_ckpt_decode(mmgan_ctx *ctx, const unsigned char *buf, size_t n);
/* An array by name whose shape must be exactly the one given (NULL and a message otherwise). */
MMGAN_DEF const float *mmgan_ckpt_get(mmgan_ckpt *ck, const char *name, int ndim, const int *shape);
/* Copies the array named like p into p, checking its shape. */
MMGAN_DEF mmgan_status mmgan_ckpt_get_param(mmgan_ckpt *ck, mmgan_param *p);
/* A metadata string, or NULL. */
MMGAN_DEF const char *mmgan_ckpt_get_meta(const mmgan_ckpt *ck, const char *key);
/* Number of arrays in the checkpoint. */
MMGAN_DEF int mmgan_ckpt_count(const mmgan_ckpt *ck);
/* Name of array i (0 <= i < count), for listing; NULL otherwise. */
MMGAN_DEF const char *mmgan_ckpt_name(const mmgan_ckpt *ck, int i);
/* Index of the array called name, or -1 when there is none. */
MMGAN_DEF int mmgan_ckpt_find(const mmgan_ckpt *ck, const char *name);
/* Shape of array i: *ndim (0-4) and shape[0, ndim), so a file can be read
 * without knowing its shapes first; MMGAN_ERR_INVALID for an i out of range. */
MMGAN_DEF mmgan_status mmgan_ckpt_shape(const mmgan_ckpt *ck, int i, int *ndim, int shape[MMGAN_MAX_DIMS]);

/* Optimizer state (moments, step count) under "prefix.<param>.m/.v" and metadata. */
MMGAN_DEF mmgan_status mmgan_opt_save(const mmgan_optimizer *o, mmgan_ckpt *ck, const char *prefix);
/* Restores optimizer state saved by mmgan_opt_save for the same parameters. */
MMGAN_DEF mmgan_status mmgan_opt_load(mmgan_optimizer *o, mmgan_ckpt *ck, const char *prefix);
/* Batch order, position and epoch of a batcher, under "prefix.order" and metadata. */
MMGAN_DEF mmgan_status mmgan_batcher_save(const mmgan_batcher *b, mmgan_ckpt *ck, const char *prefix);
/* Restores them into a batcher over a dataset of the same size (the order must be a permutation). */
MMGAN_DEF mmgan_status mmgan_batcher_load(mmgan_batcher *b, mmgan_ckpt *ck, const char *prefix);
/* Random generator state, exactly, as metadata "key". */
MMGAN_DEF mmgan_status mmgan_rng_save(const mmgan_rng *rng, mmgan_ckpt *ck, const char *key);
/* Restores a generator saved by mmgan_rng_save. */
MMGAN_DEF mmgan_status mmgan_rng_load(mmgan_rng *rng, mmgan_ckpt *ck, const char *key);

#ifndef MMGAN_NO_STDIO
/* Saves atomically (temporary file, flush, rename). */
MMGAN_DEF mmgan_status mmgan_ckpt_save(mmgan_ckpt *ck, const char *path);
/* Loads and validates a file (NULL and a message on any problem). */
MMGAN_DEF mmgan_ckpt *mmgan_ckpt_load(mmgan_ctx *ctx, const char *path);
#endif

#ifdef __cplusplus
}
#endif
#endif /* MMGAN_H_INCLUDED */

/* ===================================================================== */
/* ===================================================================== */
/*                  PART 2: THE IMPLEMENTATION                            */
/* ===================================================================== */
/* ===================================================================== */
#ifdef MMGAN_IMPLEMENTATION
#ifndef MMGAN__IMPLEMENTED
#define MMGAN__IMPLEMENTED

/* g++ 12's AVX-512 intrinsics start from a self-initialised "undefined"
 * vector, which its own -O2 -Wmaybe-uninitialized then reports at every
 * call (fixed in GCC 13; C and clang are not affected). */
#if defined(__cplusplus) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#  define MMGAN__GXX_QUIET 1
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/* ===================================================================== */
/* 2.1 Platform and SIMD layer                                            */
/* ===================================================================== */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>   /* vsnprintf for messages; files only without MMGAN_NO_STDIO */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#ifndef MMGAN_READ_MAX
#  define MMGAN_READ_MAX ((size_t)1 << 31)   /* bytes mmgan_read_file takes at most */
#endif
#if !defined(MMGAN_NO_STDIO) && (defined(__unix__) || defined(__unix) || defined(__APPLE__))
#  include <sys/stat.h>   /* stat: a save to a device or a FIFO writes it, not a file beside it */
#  define MMGAN__HAVE_STAT 1
#endif

#ifndef MMGAN_ASSERT
#  include <assert.h>
#  define MMGAN_ASSERT(x) assert(x)
#endif

#if defined(MMGAN_MALLOC) && defined(MMGAN_REALLOC) && defined(MMGAN_FREE)
#elif !defined(MMGAN_MALLOC) && !defined(MMGAN_REALLOC) && !defined(MMGAN_FREE)
#  define MMGAN_MALLOC(u, sz) ((void)(u), malloc(sz))
#  define MMGAN_REALLOC(u, p, sz) ((void)(u), realloc((p), (sz)))
#  define MMGAN_FREE(u, p) ((void)(u), free(p))
#else
#  error "mmgan.h: define all of MMGAN_MALLOC, MMGAN_REALLOC and MMGAN_FREE, or none of them"
#endif

#if defined(_OPENMP) && !defined(MMGAN_NO_OPENMP)
#  include <omp.h>
#  define MMGAN__OMP 1
#  define MMGAN__PRAGMA(x) _Pragma(#x)
#  define MMGAN__OMP_BARRIER() MMGAN__PRAGMA(omp barrier)
/* A loop over independent items (each writes only its own output), on nt
 * threads when the work is worth it: results are the same either way. */
#  define MMGAN__PAR_FOR(nt, worth) MMGAN__PRAGMA(omp parallel for num_threads(nt) if(worth) schedule(static))
#else
#  define MMGAN__OMP_BARRIER() ((void)0)
#  define MMGAN__PAR_FOR(nt, worth)
#endif

#ifdef __cplusplus
#  define MMGAN__RESTRICT
#else
#  define MMGAN__RESTRICT restrict
#endif
#define MMGAN__INLINE static inline
/* For a micro-kernel called from a loop nest of its own: inlined there,
 * its 24 accumulators went to the stack. */
#if defined(__GNUC__) || defined(__clang__)
#  define MMGAN__NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#  define MMGAN__NOINLINE __declspec(noinline)
#else
#  define MMGAN__NOINLINE
#endif

/* Micro-kernels start on a 64-byte line: where the linker happened to put
 * the AVX2 one decided 2.5-3.5% of a GAN step (Zen 3, gcc 12: the same code
 * with the kernel 16 bytes past a line ran MAGAN's and the DCGAN's steps
 * that much slower than at 0 or 32, in 6 alternating rounds). */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__TINYC__)
#  define MMGAN__KERNEL_ALIGN __attribute__((aligned(64)))
#else
#  define MMGAN__KERNEL_ALIGN
#endif

/* The kernel set is a compile-time choice from the compiler's target macros,
 * so one binary never carries code its CPU cannot run. */
#if !defined(MMGAN_NO_SIMD) && !defined(__TINYC__)
#  if defined(__AVX512F__) && !defined(MMGAN_NO_AVX512) && !defined(MMGAN_NO_AVX2)
#    define MMGAN__AVX512 1
#  elif defined(__AVX2__) && defined(__FMA__) && !defined(MMGAN_NO_AVX2)
#    define MMGAN__AVX2 1
#  elif defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#    define MMGAN__SSE2 1
#  elif (defined(__ARM_NEON) || defined(__ARM_NEON__)) && !defined(MMGAN_NO_NEON)
#    if defined(__aarch64__) || defined(_M_ARM64)
#      define MMGAN__NEON64 1
#    else
#      define MMGAN__NEON32 1
#    endif
#  endif
#endif
/* F(4x4, 2x2) (2.6) in the build or not (MMGAN_WINOGRAD). */
#if defined(MMGAN_WINOGRAD)
#  if (0 - MMGAN_WINOGRAD - 1) == 1   /* (defined empty) */
#    error "MMGAN_WINOGRAD must be defined as 0 or 1"
#  elif MMGAN_WINOGRAD != 0 && MMGAN_WINOGRAD != 1
#    error "MMGAN_WINOGRAD must be defined as 0 or 1"
#  endif
#  define MMGAN__WINO (MMGAN_WINOGRAD)
#elif defined(MMGAN__AVX512)
#  define MMGAN__WINO 0
#else
#  define MMGAN__WINO 1
#endif

#if defined(MMGAN__AVX512) || defined(MMGAN__AVX2) || defined(MMGAN__SSE2)
#  include <immintrin.h>
#elif defined(MMGAN__NEON64) || defined(MMGAN__NEON32)
#  include <arm_neon.h>
#endif

#define MMGAN__MIN(a, b) ((a) < (b) ? (a) : (b))
#define MMGAN__MAX(a, b) ((a) > (b) ? (a) : (b))

MMGAN_DEF const char *mmgan_isa(void)
{
#if defined(MMGAN__AVX512)
    return "avx512";
#elif defined(MMGAN__AVX2)
    return "avx2";
#elif defined(MMGAN__SSE2)
    return "sse2";
#elif defined(MMGAN__NEON64)
    return "neon64";
#elif defined(MMGAN__NEON32)
    return "neon32";
#else
    return "scalar";
#endif
}

/* Bit casts without aliasing trouble. */
MMGAN__INLINE uint32_t mmgan__f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
MMGAN__INLINE float mmgan__u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* A product the compiler cannot fuse into a following add: FMA contraction
 * (on by default for aarch64, s390x, riscv64 in GNU modes) would otherwise
 * change the last bit of results that must be identical on every platform. */
static double mmgan__dmul(double a, double b) { volatile double t = a * b; return t; }
static float mmgan__fmul(float a, float b) { volatile float t = a * b; return t; }

/* One small vector vocabulary per ISA (type mmgan__v, width MMGAN__VN, and
 * operations): the elementwise kernels and the packing routines are written
 * once in it. */
#if defined(MMGAN__AVX512)
typedef __m512 mmgan__v;
#define MMGAN__VN 16
#define MMGAN__VLOAD(p) _mm512_loadu_ps(p)
#define MMGAN__VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define MMGAN__VSET(x) _mm512_set1_ps(x)
#define MMGAN__VADD(a, b) _mm512_add_ps((a), (b))
#define MMGAN__VSUB(a, b) _mm512_sub_ps((a), (b))
#define MMGAN__VMUL(a, b) _mm512_mul_ps((a), (b))
#define MMGAN__VDIV(a, b) _mm512_div_ps((a), (b))
#define MMGAN__VSQRT(a) _mm512_sqrt_ps(a)
#define MMGAN__VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define MMGAN__VMAX(a, b) _mm512_max_ps((a), (b))
#define MMGAN__VMIN(a, b) _mm512_min_ps((a), (b))
#define MMGAN__VGT0_SEL(x, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask((x), _mm512_setzero_ps(), _CMP_GT_OQ), (b), (a))
#define MMGAN__VNAN_SEL(x, y) _mm512_mask_blend_ps(_mm512_cmp_ps_mask((x), (x), _CMP_UNORD_Q), (y), (x))
#define MMGAN__VABS(x) _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)))
#define MMGAN__VSIGNOF(x) _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)))
#define MMGAN__VXOR(a, b) _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
/* 2^(bits(t) - bits(magic)) as a float, for |exponent| <= 127: (e + 127) << 23 */
#define MMGAN__VPOW2I(t, magic, half) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32( \
    half(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(magic))), _mm512_set1_epi32(127)), 23))
#define MMGAN__VIHALF(i) _mm512_srai_epi32((i), 1)
#define MMGAN__VIREST(i) _mm512_sub_epi32((i), _mm512_srai_epi32((i), 1))
#elif defined(MMGAN__AVX2)
typedef __m256 mmgan__v;
#define MMGAN__VN 8
#define MMGAN__VLOAD(p) _mm256_loadu_ps(p)
#define MMGAN__VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define MMGAN__VSET(x) _mm256_set1_ps(x)
#define MMGAN__VADD(a, b) _mm256_add_ps((a), (b))
#define MMGAN__VSUB(a, b) _mm256_sub_ps((a), (b))
#define MMGAN__VMUL(a, b) _mm256_mul_ps((a), (b))
#define MMGAN__VDIV(a, b) _mm256_div_ps((a), (b))
#define MMGAN__VSQRT(a) _mm256_sqrt_ps(a)
#define MMGAN__VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define MMGAN__VMAX(a, b) _mm256_max_ps((a), (b))
#define MMGAN__VMIN(a, b) _mm256_min_ps((a), (b))
#define MMGAN__VGT0_SEL(x, a, b) _mm256_blendv_ps((b), (a), _mm256_cmp_ps((x), _mm256_setzero_ps(), _CMP_GT_OQ))
#define MMGAN__VNAN_SEL(x, y) _mm256_blendv_ps((y), (x), _mm256_cmp_ps((x), (x), _CMP_UNORD_Q))
#define MMGAN__VABS(x) _mm256_and_ps((x), _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)))
#define MMGAN__VSIGNOF(x) _mm256_and_ps((x), _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u)))
#define MMGAN__VXOR(a, b) _mm256_xor_ps((a), (b))
#define MMGAN__VPOW2I(t, magic, half) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32( \
    half(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic))), _mm256_set1_epi32(127)), 23))
#define MMGAN__VIHALF(i) _mm256_srai_epi32((i), 1)
#define MMGAN__VIREST(i) _mm256_sub_epi32((i), _mm256_srai_epi32((i), 1))
#elif defined(MMGAN__SSE2)
typedef __m128 mmgan__v;
#define MMGAN__VN 4
#define MMGAN__VLOAD(p) _mm_loadu_ps(p)
#define MMGAN__VSTORE(p, v) _mm_storeu_ps((p), (v))
#define MMGAN__VSET(x) _mm_set1_ps(x)
#define MMGAN__VADD(a, b) _mm_add_ps((a), (b))
#define MMGAN__VSUB(a, b) _mm_sub_ps((a), (b))
#define MMGAN__VMUL(a, b) _mm_mul_ps((a), (b))
#define MMGAN__VDIV(a, b) _mm_div_ps((a), (b))
#define MMGAN__VSQRT(a) _mm_sqrt_ps(a)
#define MMGAN__VFMA(a, b, c) _mm_add_ps(_mm_mul_ps((a), (b)), (c))
#define MMGAN__VMAX(a, b) _mm_max_ps((a), (b))
#define MMGAN__VMIN(a, b) _mm_min_ps((a), (b))
MMGAN__INLINE __m128 mmgan__sse_sel(__m128 m, __m128 a, __m128 b) { return _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b)); }
#define MMGAN__VGT0_SEL(x, a, b) mmgan__sse_sel(_mm_cmpgt_ps((x), _mm_setzero_ps()), (a), (b))
#define MMGAN__VNAN_SEL(x, y) mmgan__sse_sel(_mm_cmpunord_ps((x), (x)), (x), (y))
#define MMGAN__VABS(x) _mm_and_ps((x), _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff)))
#define MMGAN__VSIGNOF(x) _mm_and_ps((x), _mm_castsi128_ps(_mm_set1_epi32((int)0x80000000u)))
#define MMGAN__VXOR(a, b) _mm_xor_ps((a), (b))
#define MMGAN__VPOW2I(t, magic, half) _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32( \
    half(_mm_sub_epi32(_mm_castps_si128(t), _mm_castps_si128(magic))), _mm_set1_epi32(127)), 23))
#define MMGAN__VIHALF(i) _mm_srai_epi32((i), 1)
#define MMGAN__VIREST(i) _mm_sub_epi32((i), _mm_srai_epi32((i), 1))
#elif defined(MMGAN__NEON64) || defined(MMGAN__NEON32)
typedef float32x4_t mmgan__v;
#define MMGAN__VN 4
#define MMGAN__VLOAD(p) vld1q_f32(p)
#define MMGAN__VSTORE(p, v) vst1q_f32((p), (v))
#define MMGAN__VSET(x) vdupq_n_f32(x)
#define MMGAN__VADD(a, b) vaddq_f32((a), (b))
#define MMGAN__VSUB(a, b) vsubq_f32((a), (b))
#define MMGAN__VMUL(a, b) vmulq_f32((a), (b))
#if defined(MMGAN__NEON64)
#define MMGAN__VDIV(a, b) vdivq_f32((a), (b))
#define MMGAN__VSQRT(a) vsqrtq_f32(a)
#define MMGAN__VFMA(a, b, c) vfmaq_f32((c), (a), (b))
#else
/* ARMv7 NEON has no vector divide: reciprocal estimate and two Newton steps. */
MMGAN__INLINE float32x4_t mmgan__neon_div(float32x4_t a, float32x4_t b)
{
    float32x4_t r = vrecpeq_f32(b);
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    return vmulq_f32(a, r);
}
#define MMGAN__VDIV(a, b) mmgan__neon_div((a), (b))
/* ... nor a vector square root: lane by lane, exact (an estimate would make
 * sqrt(0) a NaN). */
MMGAN__INLINE float32x4_t mmgan__neon_sqrt(float32x4_t a)
{
    float t[4];
    vst1q_f32(t, a);
    t[0] = sqrtf(t[0]); t[1] = sqrtf(t[1]); t[2] = sqrtf(t[2]); t[3] = sqrtf(t[3]);
    return vld1q_f32(t);
}
#define MMGAN__VSQRT(a) mmgan__neon_sqrt(a)
#define MMGAN__VFMA(a, b, c) vmlaq_f32((c), (a), (b))
#endif
#define MMGAN__VMAX(a, b) vmaxq_f32((a), (b))
#define MMGAN__VMIN(a, b) vminq_f32((a), (b))
#define MMGAN__VGT0_SEL(x, a, b) vbslq_f32(vcgtq_f32((x), vdupq_n_f32(0.0f)), (a), (b))
#define MMGAN__VNAN_SEL(x, y) vbslq_f32(vceqq_f32((x), (x)), (y), (x))
#define MMGAN__VABS(x) vabsq_f32(x)
#define MMGAN__VSIGNOF(x) vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u)))
#define MMGAN__VXOR(a, b) vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(a), vreinterpretq_u32_f32(b)))
#define MMGAN__VPOW2I(t, magic, half) vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32( \
    half(vsubq_s32(vreinterpretq_s32_f32(t), vreinterpretq_s32_f32(magic))), vdupq_n_s32(127)), 23))
#define MMGAN__VIHALF(i) vshrq_n_s32((i), 1)
#define MMGAN__VIREST(i) vsubq_s32((i), vshrq_n_s32((i), 1))
#else
/* The portable vocabulary: one lane, the same algorithms. */
typedef float mmgan__v;
#define MMGAN__VN 1
#define MMGAN__VLOAD(p) (*(p))
#define MMGAN__VSTORE(p, v) (*(p) = (v))
#define MMGAN__VSET(x) (x)
#define MMGAN__VADD(a, b) ((a) + (b))
#define MMGAN__VSUB(a, b) ((a) - (b))
#define MMGAN__VMUL(a, b) ((a) * (b))
#define MMGAN__VDIV(a, b) ((a) / (b))
#define MMGAN__VSQRT(a) sqrtf(a)
#define MMGAN__VFMA(a, b, c) ((a) * (b) + (c))
/* Written so that a NaN in x comes through, as the SIMD forms do. */
#define MMGAN__VMAX(a, b) ((a) > (b) ? (a) : (b))
#define MMGAN__VMIN(a, b) ((a) < (b) ? (a) : (b))
#define MMGAN__VGT0_SEL(x, a, b) ((x) > 0.0f ? (a) : (b))
#define MMGAN__VNAN_SEL(x, y) ((x) != (x) ? (x) : (y))
#define MMGAN__VABS(x) mmgan__u2f(mmgan__f2u(x) & 0x7fffffffu)
#define MMGAN__VSIGNOF(x) mmgan__u2f(mmgan__f2u(x) & 0x80000000u)
#define MMGAN__VXOR(a, b) mmgan__u2f(mmgan__f2u(a) ^ mmgan__f2u(b))
MMGAN__INLINE int32_t mmgan__ihalf(int32_t i) { return i >= 0 ? i / 2 : -((1 - i) / 2); } /* floor(i/2) */
#define MMGAN__VPOW2I(t, magic, half) \
    mmgan__u2f((uint32_t)(half((int32_t)(mmgan__f2u(t) - mmgan__f2u(magic))) + 127) << 23)
#define MMGAN__VIHALF(i) mmgan__ihalf(i)
#define MMGAN__VIREST(i) ((i) - mmgan__ihalf(i))
#endif

/* ===================================================================== */
/* 2.2 Memory                                                             */
/* ===================================================================== */
#define MMGAN__ALIGN 64

static void *mmgan__alloc_aligned(void *user, size_t bytes)
{
    unsigned char *raw, *p;
    size_t extra = MMGAN__ALIGN + sizeof(void *);
    if (bytes > (size_t)-1 - extra) return NULL;
    raw = (unsigned char *)MMGAN_MALLOC(user, bytes + extra);
    if (!raw) return NULL;
    p = raw + sizeof(void *);
    p += (MMGAN__ALIGN - (size_t)((uintptr_t)p % MMGAN__ALIGN)) % MMGAN__ALIGN;
    memcpy(p - sizeof(void *), &raw, sizeof(void *));
    return p;
}

static void mmgan__free_aligned(void *user, void *p)
{
    void *raw;
    if (!p) return;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(void *));
    MMGAN_FREE(user, raw);
    (void)user;
}

/* ===================================================================== */
/* 2.3 Errors and contexts                                                */
/* ===================================================================== */
struct mmgan_ctx {
    void *alloc_user;
    int threads;
    float *gemm_ws;          /* packed A block, then packed B block */
    size_t gemm_ws_floats;
    char err[512];
};

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static mmgan_status mmgan__fail(mmgan_ctx *ctx, mmgan_status s, const char *fmt, ...)
{
    va_list ap;
    if (!ctx) return s;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
    return s;
}

/* Neither infinite nor NaN: an option that is either makes every value NaN. */
static int mmgan__finite(float x) { return x - x == 0.0f; }

#ifndef MMGAN_NO_STDIO
/* Puts "path: " in front of the message a reader left, so it names the file. */
static mmgan_status mmgan__fail_in(mmgan_ctx *ctx, mmgan_status s, const char *path)
{
    char msg[sizeof ctx->err];
    if (!ctx || s == MMGAN_OK || s == MMGAN_ERR_NOMEM) return s;
    memcpy(msg, ctx->err, sizeof msg);
    return mmgan__fail(ctx, s, "%s: %s", path, msg);
}
#endif

/* Appends printf output to a growing buffer. */
typedef struct mmgan__sbuf { char *p; size_t len, cap; int bad; void *user; } mmgan__sbuf;
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static void mmgan__sb_printf(mmgan__sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (b->bad) return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->bad = 1; return; }
        if (b->p && (size_t)n < room) { b->len += (size_t)n; return; }
        {
            size_t cap = (b->cap + (size_t)n + 1) * 2;
            char *np = (char *)MMGAN_REALLOC(b->user, b->p, cap);
            if (!np) { b->bad = 1; return; }
            b->p = np;
            b->cap = cap;
        }
    }
}


MMGAN_DEF const char *mmgan_status_name(mmgan_status s)
{
    switch (s) {
    case MMGAN_OK: return "MMGAN_OK";
    case MMGAN_ERR_INVALID: return "MMGAN_ERR_INVALID";
    case MMGAN_ERR_SHAPE: return "MMGAN_ERR_SHAPE";
    case MMGAN_ERR_NOMEM: return "MMGAN_ERR_NOMEM";
    case MMGAN_ERR_IO: return "MMGAN_ERR_IO";
    case MMGAN_ERR_FORMAT: return "MMGAN_ERR_FORMAT";
    case MMGAN_ERR_UNSUPPORTED: return "MMGAN_ERR_UNSUPPORTED";
    }
    return "MMGAN_ERR_UNKNOWN";
}

MMGAN_DEF const char *mmgan_ctx_error(const mmgan_ctx *ctx)
{
    return ctx ? ctx->err : "mmgan: no context (mmgan_ctx_new failed or was not called)";
}

MMGAN_DEF void mmgan_ctx_clear_error(mmgan_ctx *ctx)
{
    if (ctx) ctx->err[0] = '\0';
}

static size_t mmgan__gemm_ws_floats(void);

MMGAN_DEF mmgan_ctx *mmgan_ctx_new(void *alloc_user)
{
    mmgan_ctx *ctx = (mmgan_ctx *)MMGAN_MALLOC(alloc_user, sizeof(mmgan_ctx));
    if (!ctx) return NULL;
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc_user = alloc_user;
    ctx->threads = 1;
#ifdef MMGAN__OMP
    ctx->threads = omp_get_max_threads();
    if (ctx->threads < 1) ctx->threads = 1;
#endif
    /* Packing space is taken once here so no kernel call ever allocates. */
    ctx->gemm_ws_floats = mmgan__gemm_ws_floats();
    ctx->gemm_ws = (float *)mmgan__alloc_aligned(alloc_user, ctx->gemm_ws_floats * sizeof(float));
    if (!ctx->gemm_ws) {
        MMGAN_FREE(alloc_user, ctx);
        return NULL;
    }
    return ctx;
}

MMGAN_DEF void mmgan_ctx_free(mmgan_ctx *ctx)
{
    void *user;
    if (!ctx) return;
    user = ctx->alloc_user;
    mmgan__free_aligned(user, ctx->gemm_ws);
    MMGAN_FREE(user, ctx);
    (void)user;
}

MMGAN_DEF mmgan_status mmgan_ctx_set_threads(mmgan_ctx *ctx, int n)
{
    if (!ctx) return MMGAN_ERR_INVALID;
    if (n < 1) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "set_threads: thread count must be >= 1, got %d", n);
#ifdef MMGAN__OMP
    /* a team far past the cores only waits, and one of INT_MAX threads made
     * libgomp exit for want of memory; OpenMP grants fewer than asked
     * (OMP_THREAD_LIMIT) on its own, which every parallel region handles */
    ctx->threads = n > 256 ? 256 : n;
#else
    ctx->threads = 1;   /* built without OpenMP: one thread, same results */
#endif
    return MMGAN_OK;
}

MMGAN_DEF int mmgan_ctx_threads(const mmgan_ctx *ctx) { return ctx ? ctx->threads : 1; }

MMGAN_DEF void *mmgan_alloc(mmgan_ctx *ctx, size_t bytes)
{
    void *p;
    if (!ctx) return NULL;
    p = mmgan__alloc_aligned(ctx->alloc_user, bytes ? bytes : 1);
    if (!p) mmgan__fail(ctx, MMGAN_ERR_NOMEM, "out of memory allocating %lu bytes", (unsigned long)bytes);
    return p;
}

MMGAN_DEF void mmgan_free(mmgan_ctx *ctx, void *p)
{
    if (ctx) mmgan__free_aligned(ctx->alloc_user, p);
}

/* ===================================================================== */
/* 2.4 Tensors and random numbers                                         */
/* ===================================================================== */
static mmgan_status mmgan__check_shape(mmgan_ctx *ctx, const char *who, int ndim, const int *shape, size_t *numel)
{
    int i;
    size_t n = 1;
    if (ndim < 0 || ndim > MMGAN_MAX_DIMS)
        return mmgan__fail(ctx, MMGAN_ERR_SHAPE, "%s: %d dimensions, must be 0 to %d", who, ndim, MMGAN_MAX_DIMS);
    if (ndim > 0 && !shape) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "%s: shape is NULL", who);
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return mmgan__fail(ctx, MMGAN_ERR_SHAPE, "%s: dimension %d is %d, must be >= 1", who, i, shape[i]);
        if (n > (size_t)INT_MAX / (size_t)shape[i])
            return mmgan__fail(ctx, MMGAN_ERR_SHAPE, "%s: more than %d elements", who, INT_MAX);
        n *= (size_t)shape[i];
    }
    *numel = n;
    return MMGAN_OK;
}

static mmgan_tensor *mmgan__tensor_header(mmgan_ctx *ctx, const char *who, int ndim, const int *shape)
{
    size_t numel = 0;
    int i;
    mmgan_tensor *t;
    if (!ctx) return NULL;
    if (mmgan__check_shape(ctx, who, ndim, shape, &numel) != MMGAN_OK) return NULL;
    t = (mmgan_tensor *)MMGAN_MALLOC(ctx->alloc_user, sizeof(mmgan_tensor));
    if (!t) {
        mmgan__fail(ctx, MMGAN_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (i = 0; i < MMGAN_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = numel;
    return t;
}

MMGAN_DEF mmgan_tensor *mmgan_tensor_new(mmgan_ctx *ctx, int ndim, const int *shape)
{
    mmgan_tensor *t = mmgan__tensor_header(ctx, "tensor_new", ndim, shape);
    if (!t) return NULL;
    t->data = (float *)mmgan__alloc_aligned(ctx->alloc_user, t->numel * sizeof(float));
    if (!t->data) {
        mmgan__fail(ctx, MMGAN_ERR_NOMEM, "tensor_new: out of memory for %lu floats", (unsigned long)t->numel);
        MMGAN_FREE(ctx->alloc_user, t);
        return NULL;
    }
    memset(t->data, 0, t->numel * sizeof(float));
    t->owns_data = 1;
    return t;
}

MMGAN_DEF mmgan_tensor *mmgan_tensor_wrap(mmgan_ctx *ctx, float *data, int ndim, const int *shape)
{
    mmgan_tensor *t;
    if (ctx && !data) {
        mmgan__fail(ctx, MMGAN_ERR_INVALID, "tensor_wrap: data is NULL");
        return NULL;
    }
    t = mmgan__tensor_header(ctx, "tensor_wrap", ndim, shape);
    if (t) t->data = data;
    return t;
}

MMGAN_DEF void mmgan_tensor_free(mmgan_ctx *ctx, mmgan_tensor *t)
{
    if (!ctx || !t) return;
    if (t->owns_data) mmgan__free_aligned(ctx->alloc_user, t->data);
    MMGAN_FREE(ctx->alloc_user, t);
}

MMGAN_DEF char *mmgan_shape_str(const mmgan_tensor *t, char *buf, size_t size)
{
    size_t len = 0;
    int i;
    if (!buf || size == 0) return buf;
    buf[0] = '\0';
    if (!t) { snprintf(buf, size, "(null)"); return buf; }
    len += (size_t)snprintf(buf, size, "[");
    for (i = 0; i < t->ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, i ? ", %d" : "%d", t->shape[i]);
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

MMGAN_DEF mmgan_status mmgan_tensor_reshape(mmgan_ctx *ctx, mmgan_tensor *t, int ndim, const int *shape)
{
    size_t numel = 0;
    int i;
    char s[64];
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!t) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "tensor_reshape: tensor is NULL");
    if (mmgan__check_shape(ctx, "tensor_reshape", ndim, shape, &numel) != MMGAN_OK) return MMGAN_ERR_SHAPE;
    if (numel != t->numel)
        return mmgan__fail(ctx, MMGAN_ERR_SHAPE, "tensor_reshape: %s has %lu elements, new shape has %lu",
                           mmgan_shape_str(t, s, sizeof s), (unsigned long)t->numel, (unsigned long)numel);
    t->ndim = ndim;
    for (i = 0; i < MMGAN_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    return MMGAN_OK;
}

MMGAN_DEF int mmgan_tensor_same_shape(const mmgan_tensor *a, const mmgan_tensor *b)
{
    int i;
    if (!a || !b || a->ndim != b->ndim) return 0;
    for (i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

MMGAN_DEF mmgan_status mmgan_tensor_copy(mmgan_ctx *ctx, mmgan_tensor *dst, const mmgan_tensor *src)
{
    char s1[64], s2[64];
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!dst || !src) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "tensor_copy: tensor is NULL");
    if (!mmgan_tensor_same_shape(dst, src))
        return mmgan__fail(ctx, MMGAN_ERR_SHAPE, "tensor_copy: destination %s, source %s",
                           mmgan_shape_str(dst, s1, sizeof s1), mmgan_shape_str(src, s2, sizeof s2));
    if (dst->data != src->data) memmove(dst->data, src->data, src->numel * sizeof(float));
    return MMGAN_OK;
}

MMGAN_DEF void mmgan_tensor_fill(mmgan_tensor *t, float v)
{
    size_t i;
    if (!t) return;
    for (i = 0; i < t->numel; i++) t->data[i] = v;
}

/* PCG32, XSH-RR output: 64-bit LCG state, 32-bit permuted output. */
MMGAN_DEF uint32_t mmgan_rng_u32(mmgan_rng *rng)
{
    uint64_t old;
    uint32_t xs, rot;
    if (!rng) return 0;
    old = rng->state;
    rng->state = old * 6364136223846793005ULL + rng->inc;
    xs = (uint32_t)(((old >> 18) ^ old) >> 27);
    rot = (uint32_t)(old >> 59);
    return (xs >> rot) | (xs << ((32u - rot) & 31u));
}

MMGAN_DEF void mmgan_rng_seed(mmgan_rng *rng, uint64_t seed, uint64_t stream)
{
    if (!rng) return;
    rng->state = 0;
    rng->inc = (stream << 1) | 1u;
    (void)mmgan_rng_u32(rng);
    rng->state += seed;
    (void)mmgan_rng_u32(rng);
    rng->spare = 0.0f;
    rng->has_spare = 0;
}

MMGAN_DEF uint32_t mmgan_rng_below(mmgan_rng *rng, uint32_t n)
{
    uint32_t threshold, r;
    if (n <= 1 || !rng) return 0;
    threshold = (0u - n) % n;   /* 2^32 mod n: values below it would bias r % n */
    for (;;) {
        r = mmgan_rng_u32(rng);
        if (r >= threshold) return r % n;
    }
}

MMGAN_DEF float mmgan_rng_uniform(mmgan_rng *rng)
{
    return (float)(mmgan_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

/* log(x) for normal x > 0 from IEEE +,-,*,/ in a fixed order: libm's log may
 * differ in the last bit between platforms, this one may not.  x = m 2^e with
 * m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(f), f = (m-1)/(m+1), |f| < 0.172,
 * series to f^23 (error below 2^-56). */
static double mmgan__log_portable(double x)
{
    static const double ln2_hi = 6.93147180369123816490e-01;  /* 32 bits: e*ln2_hi exact */
    static const double ln2_lo = 1.90821492927058770002e-10;
    int e, i;
    double m = frexp(x, &e), f, f2, p;
    if (m < 0.70710678118654752440) { m *= 2.0; e -= 1; }
    f = (m - 1.0) / (m + 1.0);
    f2 = mmgan__dmul(f, f);
    p = 1.0 / 23.0;
    for (i = 21; i >= 3; i -= 2) p = mmgan__dmul(p, f2) + 1.0 / (double)i;
    p = mmgan__dmul(mmgan__dmul(f, f2), p);          /* f^3/3 + f^5/5 + ... */
    return mmgan__dmul((double)e, ln2_hi) + ((2.0 * f + 2.0 * p) + mmgan__dmul((double)e, ln2_lo));
}

MMGAN_DEF float mmgan_rng_normal(mmgan_rng *rng)
{
    double u, v, s, f;
    if (!rng) return 0.0f;
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    do {
        /* 24-bit values: u*u and v*v are exact in double, so no rounding choice. */
        u = (double)(mmgan_rng_u32(rng) >> 8) * (1.0 / 8388608.0) - 1.0;
        v = (double)(mmgan_rng_u32(rng) >> 8) * (1.0 / 8388608.0) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    f = sqrt(-2.0 * mmgan__log_portable(s) / s);
    rng->spare = (float)(v * f);
    rng->has_spare = 1;
    return (float)(u * f);
}

MMGAN_DEF void mmgan_rng_fill_uniform(mmgan_rng *rng, float *x, size_t n, float lo, float hi)
{
    size_t i;
    float w = hi - lo;
    if (!rng || !x) return;
    for (i = 0; i < n; i++) x[i] = lo + mmgan__fmul(w, mmgan_rng_uniform(rng));
}

MMGAN_DEF void mmgan_rng_fill_normal(mmgan_rng *rng, float *x, size_t n, float mean, float std)
{
    size_t i;
    if (!rng || !x) return;
    for (i = 0; i < n; i++) x[i] = mean + mmgan__fmul(std, mmgan_rng_normal(rng));
}

MMGAN_DEF void mmgan_rng_permutation(mmgan_rng *rng, int *idx, int n)
{
    int i;
    if (!rng || !idx) return;
    for (i = 0; i < n; i++) idx[i] = i;
    for (i = n - 1; i > 0; i--) {
        int j = (int)mmgan_rng_below(rng, (uint32_t)i + 1u), t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* ===================================================================== */
/* 2.5 GEMM                                                               */
/* ===================================================================== */
/* BLIS-style: for each NC-column block of B and KC-deep slice, pack B into
 * NR-wide panels; for each MC-row block of A pack it into MR-tall panels; then
 * a register-blocked micro-kernel computes each MR x NR tile of C from one A
 * panel and one B panel.  Packed panels are zero-padded, so the micro-kernel
 * always works on a full tile; partial tiles go through a stack tile, or
 * through the kernel set's edge kernel where it has one (AVX-512: masked
 * stores, and only the vectors that hold columns of C).
 *
 * Micro-kernel contract: c[i*ldc + j] = alpha * sum_p a[p*MR + i] * b[p*bs + j]
 *                                       + beta * c[i*ldc + j]   (i < MR, j < NR)
 * and with beta == 0 the old C is not read.  bs is NR for a packed B panel;
 * small-m products pass B itself (bs = ldb) and skip packing it, and those
 * with few column panels A as well where the kernel set can (ukr_a). */
typedef void (*mmgan__ukr_fn)(int k, const float *a, const float *b, ptrdiff_t bs,
                              float *c, ptrdiff_t ldc, float alpha, float beta);
/* The same on the first rows x cols of the tile only (C outside untouched). */
typedef void (*mmgan__ukr_edge_fn)(int k, const float *a, const float *b, ptrdiff_t bs,
                                   float *c, ptrdiff_t ldc, float alpha, float beta, int rows, int cols);
/* All MR rows and the first cols columns, with A read in place: a[i*as + p]
 * for a[p*MR + i] (mmgan__gemm_a_inplace).  The same sums in the same order. */
typedef void (*mmgan__ukr_a_fn)(int k, const float *a, ptrdiff_t as, const float *b, ptrdiff_t bs,
                                float *c, ptrdiff_t ldc, float alpha, float beta, int cols);

typedef struct mmgan__gemm_kernel {
    const char *name;
    int mr, nr;        /* register tile */
    int kc, mc, nc;    /* cache blocks: kc*nr floats in L1, mc*kc in L2, kc*nc in L3 */
    mmgan__ukr_fn ukr;
    mmgan__ukr_edge_fn edge;   /* NULL: partial tiles go through a stack tile */
    mmgan__ukr_a_fn ukr_a;     /* NULL: A is always packed */
} mmgan__gemm_kernel;

#define MMGAN__MAX_TILE (16 * 64)   /* largest mr*nr of any kernel */

/* The portable kernel: the oracle every SIMD kernel is tested against, and
 * the kernel of tcc, riscv64, s390x and MMGAN_NO_SIMD builds. */
static void mmgan__ukr_ref(int k, const float *a, const float *b, ptrdiff_t bs, float *c,
                           ptrdiff_t ldc, float alpha, float beta)
{
    float acc[4][4];
    int p, i, j;
    memset(acc, 0, sizeof acc);
    for (p = 0; p < k; p++, a += 4, b += bs)
        for (i = 0; i < 4; i++)
            for (j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
    for (i = 0; i < 4; i++)
        for (j = 0; j < 4; j++)
            c[i * ldc + j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

#define MMGAN__ROWS4(X) X(0) X(1) X(2) X(3)
#define MMGAN__ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define MMGAN__ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

#if defined(MMGAN__AVX512)
/* 8 x 48: 24 accumulators + 3 B vectors + 1 broadcast of the 32 zmm
 * registers.  Measured against 14 x 32 (28 accumulators): fewer broadcasts per
 * FMA and m = 64 in whole tiles made it 3-50% faster on the GAN shapes.
 * The first rows x cols of the tile: partial tiles (n = 256 = 5 x 48 + 16)
 * use only the vectors that hold columns of C, one per row instead of three,
 * and masked stores instead of a stack tile (64x256x784 1.15x faster).
 * Whole tiles take it with every mask set: as fast as unmasked stores. */
/* The k loops unrolled by four (and the tile of C prefetched whole, every
 * line of its rows): the DCGAN step 1.2% faster, single products up to 1.1x
 * (64x12544x128, 64x784x256; paired, same process), 1024^3 1.5%, one shape
 * 2-5% slower (128x3136x1024, B read in place). */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
#  define MMGAN__UNROLL4 _Pragma("GCC unroll 4")
#else
#  define MMGAN__UNROLL4
#endif
/* The first n lanes of a vector (none for n <= 0, all for n >= 16). */
MMGAN__INLINE __mmask16 mmgan__mask16(int n)
{
    return (__mmask16)(n >= 16 ? 0xFFFFu : n <= 0 ? 0u : (1u << n) - 1u);
}

/* as = 0: A packed (a[p*8 + i]); otherwise A in place (a[i*as + p]). */
MMGAN__INLINE void mmgan__avx512_tile(int k, const float *a, ptrdiff_t as, const float *b, ptrdiff_t bs, float *c,
                                      ptrdiff_t ldc, float alpha, float beta, int rows, int cols)
{
    const ptrdiff_t ri = as ? as : 1, pk = as ? 1 : 8;   /* constants for packed A */
    const int nv = (cols + 15) >> 4;
    const __mmask16 m0 = mmgan__mask16(cols), m1 = mmgan__mask16(cols - 16), m2 = mmgan__mask16(cols - 32);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    int p;
#define MMGAN__D(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(), c##i##2 = _mm512_setzero_ps(); \
    if (i < rows) { _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0); _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0); \
        _mm_prefetch((const char *)(c + i * ldc + 32), _MM_HINT_T0); _mm_prefetch((const char *)(c + i * ldc + 47), _MM_HINT_T0); }
    MMGAN__ROWS8(MMGAN__D)
#undef MMGAN__D
    if (nv == 1) {
        MMGAN__UNROLL4
        for (p = 0; p < k; p++, a += pk, b += bs) {
            __m512 b0 = _mm512_loadu_ps(b);
#define MMGAN__F(i) c##i##0 = _mm512_fmadd_ps(_mm512_set1_ps(a[i * ri]), b0, c##i##0);
            MMGAN__ROWS8(MMGAN__F)
#undef MMGAN__F
        }
    } else if (nv == 2) {
        MMGAN__UNROLL4
        for (p = 0; p < k; p++, a += pk, b += bs) {
            __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#define MMGAN__F(i) { __m512 ai = _mm512_set1_ps(a[i * ri]); \
            c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); }
            MMGAN__ROWS8(MMGAN__F)
#undef MMGAN__F
        }
    } else {
        MMGAN__UNROLL4
        for (p = 0; p < k; p++, a += pk, b += bs) {
            __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32);
#define MMGAN__F(i) { __m512 ai = _mm512_set1_ps(a[i * ri]); c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); \
            c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2); }
            MMGAN__ROWS8(MMGAN__F)
#undef MMGAN__F
        }
    }
    /* Masked-off lanes are neither read nor written; with beta == 0 C is not read. */
#define MMGAN__V(i, v, mk) \
    _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mk, beta == 0.0f ? _mm512_mul_ps(va, c##i##v) \
        : _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, c + i * ldc + 16 * v), _mm512_mul_ps(va, c##i##v)));
#define MMGAN__S(i) if (i < rows) { MMGAN__V(i, 0, m0) MMGAN__V(i, 1, m1) MMGAN__V(i, 2, m2) }
    MMGAN__ROWS8(MMGAN__S)
#undef MMGAN__S
#undef MMGAN__V
}

MMGAN__KERNEL_ALIGN
static void mmgan__ukr_avx512(int k, const float *a, const float *b, ptrdiff_t bs, float *c,
                              ptrdiff_t ldc, float alpha, float beta)
{
    mmgan__avx512_tile(k, a, 0, b, bs, c, ldc, alpha, beta, 8, 48);
}

MMGAN__KERNEL_ALIGN
static void mmgan__ukr_avx512_a(int k, const float *a, ptrdiff_t as, const float *b, ptrdiff_t bs, float *c,
                                ptrdiff_t ldc, float alpha, float beta, int cols)
{
    mmgan__avx512_tile(k, a, as, b, bs, c, ldc, alpha, beta, 8, cols);
}

MMGAN__KERNEL_ALIGN
static void mmgan__ukr_avx512_edge(int k, const float *a, const float *b, ptrdiff_t bs, float *c,
                                   ptrdiff_t ldc, float alpha, float beta, int rows, int cols)
{
    mmgan__avx512_tile(k, a, 0, b, bs, c, ldc, alpha, beta, rows, cols);
}
#endif

#if defined(MMGAN__AVX2)
/* 6 x 16: 12 accumulators, 2 B vectors, 1 broadcast of the 16 ymm registers. */
MMGAN__KERNEL_ALIGN
static void mmgan__ukr_avx2(int k, const float *a, const float *b, ptrdiff_t bs, float *c,
                            ptrdiff_t ldc, float alpha, float beta)
{
    int p;
    __m256 va, vb;
#define MMGAN__D(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
    MMGAN__ROWS6(MMGAN__D)
#undef MMGAN__D
    for (p = 0; p < k; p++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#define MMGAN__F(i) { __m256 ai = _mm256_broadcast_ss(a + i); \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1); }
        MMGAN__ROWS6(MMGAN__F)
#undef MMGAN__F
        a += 6;
        b += bs;
    }
    va = _mm256_set1_ps(alpha);
    vb = _mm256_set1_ps(beta);
    if (beta == 0.0f) {
#define MMGAN__S(i) _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, c##i##0)); \
        _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, c##i##1));
        MMGAN__ROWS6(MMGAN__S)
#undef MMGAN__S
    } else {
#define MMGAN__S(i) \
        _mm256_storeu_ps(c + i * ldc, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + i * ldc), _mm256_mul_ps(va, c##i##0))); \
        _mm256_storeu_ps(c + i * ldc + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + i * ldc + 8), _mm256_mul_ps(va, c##i##1)));
        MMGAN__ROWS6(MMGAN__S)
#undef MMGAN__S
    }
}
#endif

#if defined(MMGAN__SSE2)
/* 6 x 8 without FMA: 12 accumulators, 2 B vectors, 1 broadcast. */
MMGAN__KERNEL_ALIGN
static void mmgan__ukr_sse2(int k, const float *a, const float *b, ptrdiff_t bs, float *c,
                            ptrdiff_t ldc, float alpha, float beta)
{
    int p;
    __m128 va, vb;
#define MMGAN__D(i) __m128 c##i##0 = _mm_setzero_ps(), c##i##1 = _mm_setzero_ps();
    MMGAN__ROWS6(MMGAN__D)
#undef MMGAN__D
    for (p = 0; p < k; p++) {
        __m128 b0 = _mm_loadu_ps(b), b1 = _mm_loadu_ps(b + 4);
#define MMGAN__F(i) { __m128 ai = _mm_set1_ps(a[i]); \
        c##i##0 = _mm_add_ps(c##i##0, _mm_mul_ps(ai, b0)); c##i##1 = _mm_add_ps(c##i##1, _mm_mul_ps(ai, b1)); }
        MMGAN__ROWS6(MMGAN__F)
#undef MMGAN__F
        a += 6;
        b += bs;
    }
    va = _mm_set1_ps(alpha);
    vb = _mm_set1_ps(beta);
    if (beta == 0.0f) {
#define MMGAN__S(i) _mm_storeu_ps(c + i * ldc, _mm_mul_ps(va, c##i##0)); \
        _mm_storeu_ps(c + i * ldc + 4, _mm_mul_ps(va, c##i##1));
        MMGAN__ROWS6(MMGAN__S)
#undef MMGAN__S
    } else {
#define MMGAN__S(i) \
        _mm_storeu_ps(c + i * ldc, _mm_add_ps(_mm_mul_ps(vb, _mm_loadu_ps(c + i * ldc)), _mm_mul_ps(va, c##i##0))); \
        _mm_storeu_ps(c + i * ldc + 4, _mm_add_ps(_mm_mul_ps(vb, _mm_loadu_ps(c + i * ldc + 4)), _mm_mul_ps(va, c##i##1)));
        MMGAN__ROWS6(MMGAN__S)
#undef MMGAN__S
    }
}
#endif

#if defined(MMGAN__NEON64)
/* 8 x 12: 24 accumulators, 3 B vectors, 2 A vectors of the 32 q registers;
 * by-lane FMAs save the broadcasts. */
MMGAN__KERNEL_ALIGN
static void mmgan__ukr_neon64(int k, const float *a, const float *b, ptrdiff_t bs, float *c,
                              ptrdiff_t ldc, float alpha, float beta)
{
    int p;
#define MMGAN__D(i) float32x4_t c##i##0 = vdupq_n_f32(0.0f), c##i##1 = c##i##0, c##i##2 = c##i##0;
    MMGAN__ROWS8(MMGAN__D)
#undef MMGAN__D
    for (p = 0; p < k; p++) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
#define MMGAN__F(i, av, l) c##i##0 = vfmaq_laneq_f32(c##i##0, b0, av, l); \
        c##i##1 = vfmaq_laneq_f32(c##i##1, b1, av, l); c##i##2 = vfmaq_laneq_f32(c##i##2, b2, av, l);
        MMGAN__F(0, a0, 0) MMGAN__F(1, a0, 1) MMGAN__F(2, a0, 2) MMGAN__F(3, a0, 3)
        MMGAN__F(4, a1, 0) MMGAN__F(5, a1, 1) MMGAN__F(6, a1, 2) MMGAN__F(7, a1, 3)
#undef MMGAN__F
        a += 8;
        b += bs;
    }
    if (beta == 0.0f) {
#define MMGAN__S(i) vst1q_f32(c + i * ldc, vmulq_n_f32(c##i##0, alpha)); \
        vst1q_f32(c + i * ldc + 4, vmulq_n_f32(c##i##1, alpha)); vst1q_f32(c + i * ldc + 8, vmulq_n_f32(c##i##2, alpha));
        MMGAN__ROWS8(MMGAN__S)
#undef MMGAN__S
    } else {
#define MMGAN__S(i) \
        vst1q_f32(c + i * ldc, vfmaq_n_f32(vmulq_n_f32(c##i##0, alpha), vld1q_f32(c + i * ldc), beta)); \
        vst1q_f32(c + i * ldc + 4, vfmaq_n_f32(vmulq_n_f32(c##i##1, alpha), vld1q_f32(c + i * ldc + 4), beta)); \
        vst1q_f32(c + i * ldc + 8, vfmaq_n_f32(vmulq_n_f32(c##i##2, alpha), vld1q_f32(c + i * ldc + 8), beta));
        MMGAN__ROWS8(MMGAN__S)
#undef MMGAN__S
    }
}
#endif

#if defined(MMGAN__NEON32)
/* 4 x 8 with ARMv7-safe intrinsics only (16 q registers, no vfmaq_laneq):
 * 8 accumulators, 2 B vectors, A as two d-register halves. */
MMGAN__KERNEL_ALIGN
static void mmgan__ukr_neon32(int k, const float *a, const float *b, ptrdiff_t bs, float *c,
                              ptrdiff_t ldc, float alpha, float beta)
{
    int p;
#define MMGAN__D(i) float32x4_t c##i##0 = vdupq_n_f32(0.0f), c##i##1 = c##i##0;
    MMGAN__ROWS4(MMGAN__D)
#undef MMGAN__D
    for (p = 0; p < k; p++) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
        float32x2_t alo = vld1_f32(a), ahi = vld1_f32(a + 2);
#define MMGAN__F(i, av, l) c##i##0 = vmlaq_lane_f32(c##i##0, b0, av, l); c##i##1 = vmlaq_lane_f32(c##i##1, b1, av, l);
        MMGAN__F(0, alo, 0) MMGAN__F(1, alo, 1) MMGAN__F(2, ahi, 0) MMGAN__F(3, ahi, 1)
#undef MMGAN__F
        a += 4;
        b += bs;
    }
    if (beta == 0.0f) {
#define MMGAN__S(i) vst1q_f32(c + i * ldc, vmulq_n_f32(c##i##0, alpha)); \
        vst1q_f32(c + i * ldc + 4, vmulq_n_f32(c##i##1, alpha));
        MMGAN__ROWS4(MMGAN__S)
#undef MMGAN__S
    } else {
#define MMGAN__S(i) \
        vst1q_f32(c + i * ldc, vmlaq_n_f32(vmulq_n_f32(c##i##0, alpha), vld1q_f32(c + i * ldc), beta)); \
        vst1q_f32(c + i * ldc + 4, vmlaq_n_f32(vmulq_n_f32(c##i##1, alpha), vld1q_f32(c + i * ldc + 4), beta));
        MMGAN__ROWS4(MMGAN__S)
#undef MMGAN__S
    }
}
#endif

/* The blocking table: the first entry is the build's kernel, the portable one
 * is always last (tests run every entry).  Blocks: kc*nr*4 bytes within L1,
 * mc*kc*4 within half of L2, kc*nc*4 within a share of L3.  On AVX-512 a
 * second entry blocks the same kernel deeper in k (mmgan__gemm_pick), its
 * nc 1056 so that 1024 columns are one block: with 1008 the last 16 had a
 * block of their own and A was packed again for them (one thread, in one
 * process against the peak: 1024^3 1.023x, 2048^3 1.018x; two threads
 * 1024^3 1.028x). */
static const mmgan__gemm_kernel mmgan__gemm_kernels[] = {
#if defined(MMGAN__AVX512)
    {"avx512", 8, 48, 256, 8 * 32, 48 * 85, mmgan__ukr_avx512, mmgan__ukr_avx512_edge, mmgan__ukr_avx512_a},
    {"avx512_deep", 8, 48, 1024, 8 * 8, 48 * 22, mmgan__ukr_avx512, mmgan__ukr_avx512_edge, mmgan__ukr_avx512_a},
#elif defined(MMGAN__AVX2)
    {"avx2", 6, 16, 256, 6 * 24, 4096, mmgan__ukr_avx2, NULL, NULL},
#elif defined(MMGAN__SSE2)
    {"sse2", 6, 8, 256, 6 * 24, 4096, mmgan__ukr_sse2, NULL, NULL},
#elif defined(MMGAN__NEON64)
    {"neon64", 8, 12, 256, 8 * 16, 12 * 128, mmgan__ukr_neon64, NULL, NULL},
#elif defined(MMGAN__NEON32)
    {"neon32", 4, 8, 128, 4 * 32, 8 * 128, mmgan__ukr_neon32, NULL, NULL},
#endif
    {"scalar", 4, 4, 256, 4 * 32, 4 * 256, mmgan__ukr_ref, NULL, NULL}
};
#define MMGAN__NKERNELS ((int)(sizeof mmgan__gemm_kernels / sizeof mmgan__gemm_kernels[0]))

/* Packed A blocks the workspace holds: one per thread that packs its own
 * rows (mmgan__gemm_thread_rows), up to this many threads; one without
 * OpenMP. */
#ifdef MMGAN__OMP
#define MMGAN__GEMM_A_BLOCKS 4
#else
#define MMGAN__GEMM_A_BLOCKS 1
#endif
/* The context's packing workspace, in this order: packed A block 0 (mc x kc,
 * rounded to 16 floats), the packed B block (kc x nc), A blocks 1 to
 * MMGAN__GEMM_A_BLOCKS - 1, the head panel (kc x nr; mmgan__gemm_head).
 * mmgan__gemm_ws_after_b finds what follows the B block. */
static size_t mmgan__gemm_ws_floats(void)
{
    size_t most = 0;
    int i;
    for (i = 0; i < MMGAN__NKERNELS; i++) {
        const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[i];
        size_t need = (size_t)kr->mc * kr->kc * MMGAN__GEMM_A_BLOCKS + (size_t)kr->kc * kr->nc +
                      (size_t)kr->kc * kr->nr + 3 * MMGAN__ALIGN;
        if (need > most) most = need;
    }
    return most;
}

/* Splits [0, total) into nt near-equal contiguous ranges. */
static void mmgan__range(int total, int tid, int nt, int *begin, int *end)
{
    *begin = (int)((long long)total * tid / nt);
    *end = (int)((long long)total * (tid + 1) / nt);
}

/* Convolution geometry (see 2.6), here because the GEMM can read its B
 * operand straight from images: an implicit im2col. */
typedef struct mmgan__convgeom {
    int c, h, w;        /* the large ("image") side */
    int kh, kw, stride, pad;
    int ho, wo;         /* the small ("output of the forward conv") side */
} mmgan__convgeom;

/* B gathered from nb images x [nb][c][h + 2 pad][w + 2 pad], zero-padded so
 * that every window lies inside: the transposed column matrix, rows (image,
 * oy, ox) and columns (c, i, j), as the weight gradient needs.  Padding the
 * images first cut the gather's share of a DCGAN step from 9.4% to 3.6%
 * (perf, one thread) against a bounds test per value.  A, the output
 * gradient [O, nb HoWo], is then read in its NCHW order: column p of row i
 * at a[(p / HoWo) O HoWo + i HoWo + p % HoWo] (lda = HoWo), with no copy
 * into rows first. */
typedef struct mmgan__bgather {
    const mmgan__convgeom *q;
    const float *x;
} mmgan__bgather;

/* What threads that claim their work as they go share (mmgan__claim_run).
 * They finish together even when one core runs slower than the other: on
 * the dev VM the second thread's micro-kernel ran 1024^3 10-34% slower than
 * the first's (per-thread timers, quiet and loaded), and with equal shares
 * the faster thread spent that long waiting at each k block's barrier. */
#define MMGAN__SHARE_MAX 64   /* threads a product uses at most */
typedef struct mmgan__gemm_share {
    int lo[MMGAN__SHARE_MAX];      /* each thread's run of units: [lo, lo + len) */
    int len[MMGAN__SHARE_MAX];
    int taken[MMGAN__SHARE_MAX];   /* how many of a run are claimed, counted on atomically */
} mmgan__gemm_share;

typedef struct mmgan__gemm_args {
    const mmgan__gemm_kernel *kr;
    int ta, tb, m, n, k;
    float alpha, beta;
    const float *a, *b;
    int lda, ldb, ldc;
    int direct_b;     /* micro-kernels read full-width B panels in place */
    int head;         /* columns before b and c, packed as a panel of their own (mmgan__gemm_head) */
    float *hp;        /* where that panel is packed */
    const mmgan__bgather *bg;   /* non-NULL: B is gathered from images */
    const float *apk;           /* non-NULL: A packed whole beforehand (mmgan__gemm_prepack_a) */
    mmgan__gemm_share *sh;      /* on threads: their shared claims of work */
    float *c, *ap, *bp;
} mmgan__gemm_args;

/* Adds n to a counter the threads share; returns its value before. */
MMGAN__INLINE int mmgan__claim(int *count, int n)
{
    int v;
#ifdef MMGAN__OMP
    MMGAN__PRAGMA(omp atomic capture)
#endif
    { v = *count; *count += n; }
    return v;
}

/* Claims units of work (row panels or tiles) for thread tid: from its own
 * run first, so that its part of C stays in its cache from one k block to
 * the next (claims from one counter shared by all measured 3-8% slower on
 * 1024^3), then from the others'.  A claim takes half of what is left of
 * its own run, a tenth of another's, at least `least` and at most `most`
 * units; one thread claims its run at once.  Each claim is one atomic
 * addition.  Returns how many units from *q0, 0 when none is left. */
static int mmgan__claim_run(mmgan__gemm_share *sh, int tid, int nt, int least, int most, int *q0)
{
    int i;
    for (i = 0; i < nt; i++) {
        const int t = (tid + i) % nt, len = sh->len[t];
        int seen, n, v;
#ifdef MMGAN__OMP
        MMGAN__PRAGMA(omp atomic read)
#endif
        seen = sh->taken[t];
        if (seen >= len) continue;
        n = nt == 1 ? len : (len - seen) / (i ? 10 : 2);
        n = MMGAN__MIN(most, MMGAN__MAX(least, n));
        v = mmgan__claim(&sh->taken[t], n);
        if (v >= len) continue;
        *q0 = sh->lo[t] + v;
        return MMGAN__MIN(n, len - v);
    }
    return 0;
}

/* Gives each of nt threads its equal run of `total` units to claim. */
static void mmgan__claim_reset(mmgan__gemm_share *sh, int nt, int total)
{
    int t, end;
    for (t = 0; t < nt; t++) {
        mmgan__range(total, t, nt, &sh->lo[t], &end);
        sh->len[t] = end - sh->lo[t];
        sh->taken[t] = 0;
    }
}

/* Transposes a square block of registers, MMGAN__TB floats a side:
 * dst[r * ldd + c] = src[c * lds + r].  Packing a transposed operand a float
 * at a time took 11% of a 64x256x784 product (A) and made products with B
 * transposed 1.5x slower than without. */
#if defined(MMGAN__AVX512) || defined(MMGAN__AVX2)
#define MMGAN__TB 8
/* An 8x8 block's rows r[0..7] into its columns, in place. */
MMGAN__INLINE void mmgan__tr8(__m256 *r)
{
    /* pairs, then quads within each 128-bit half, then the halves */
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

MMGAN__INLINE void mmgan__tr_block(const float *src, size_t lds, float *dst, size_t ldd)
{
    __m256 r[8];
    r[0] = _mm256_loadu_ps(src); r[1] = _mm256_loadu_ps(src + lds);
    r[2] = _mm256_loadu_ps(src + 2 * lds); r[3] = _mm256_loadu_ps(src + 3 * lds);
    r[4] = _mm256_loadu_ps(src + 4 * lds); r[5] = _mm256_loadu_ps(src + 5 * lds);
    r[6] = _mm256_loadu_ps(src + 6 * lds); r[7] = _mm256_loadu_ps(src + 7 * lds);
    mmgan__tr8(r);
    _mm256_storeu_ps(dst, r[0]); _mm256_storeu_ps(dst + ldd, r[1]);
    _mm256_storeu_ps(dst + 2 * ldd, r[2]); _mm256_storeu_ps(dst + 3 * ldd, r[3]);
    _mm256_storeu_ps(dst + 4 * ldd, r[4]); _mm256_storeu_ps(dst + 5 * ldd, r[5]);
    _mm256_storeu_ps(dst + 6 * ldd, r[6]); _mm256_storeu_ps(dst + 7 * ldd, r[7]);
}
#elif defined(MMGAN__SSE2)
#define MMGAN__TB 4
MMGAN__INLINE void mmgan__tr_block(const float *src, size_t lds, float *dst, size_t ldd)
{
    __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + lds);
    __m128 r2 = _mm_loadu_ps(src + 2 * lds), r3 = _mm_loadu_ps(src + 3 * lds);
    __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpacklo_ps(r2, r3);
    __m128 t2 = _mm_unpackhi_ps(r0, r1), t3 = _mm_unpackhi_ps(r2, r3);
    _mm_storeu_ps(dst, _mm_movelh_ps(t0, t1));
    _mm_storeu_ps(dst + ldd, _mm_movehl_ps(t1, t0));
    _mm_storeu_ps(dst + 2 * ldd, _mm_movelh_ps(t2, t3));
    _mm_storeu_ps(dst + 3 * ldd, _mm_movehl_ps(t3, t2));
}
#elif defined(MMGAN__NEON64) || defined(MMGAN__NEON32)
#define MMGAN__TB 4
MMGAN__INLINE void mmgan__tr_block(const float *src, size_t lds, float *dst, size_t ldd)
{
    /* two rounds of pairwise transposes */
    float32x4x2_t x = vtrnq_f32(vld1q_f32(src), vld1q_f32(src + lds));
    float32x4x2_t y = vtrnq_f32(vld1q_f32(src + 2 * lds), vld1q_f32(src + 3 * lds));
    vst1q_f32(dst, vcombine_f32(vget_low_f32(x.val[0]), vget_low_f32(y.val[0])));
    vst1q_f32(dst + ldd, vcombine_f32(vget_low_f32(x.val[1]), vget_low_f32(y.val[1])));
    vst1q_f32(dst + 2 * ldd, vcombine_f32(vget_high_f32(x.val[0]), vget_high_f32(y.val[0])));
    vst1q_f32(dst + 3 * ldd, vcombine_f32(vget_high_f32(x.val[1]), vget_high_f32(y.val[1])));
}
#endif

/* The AVX2 and SSE2 micro-kernels take A in panels of 6 rows, which no
 * square block divides: 8 (4) columns of 6 rows, the missing rows zeros,
 * transposed in registers into 48 (24) contiguous floats, dst[p * 6 + i] =
 * src[i * lds + p].  Packed a float at a time, A (F(4x4, 2x2)'s
 * transformed weights above all: 11 M floats a DCGAN step) had taken 7% of
 * the step; this way the DCGAN step ran 1.07x faster on one thread, MAGAN's
 * 1.07x, the penalty case 1.06x (on two threads 1.04x and 1.02x; Zen 3). */
#if defined(MMGAN__AVX2)
MMGAN__INLINE void mmgan__tr_6(const float *src, size_t lds, float *dst)
{
    __m256 r[8];
    r[0] = _mm256_loadu_ps(src); r[1] = _mm256_loadu_ps(src + lds);
    r[2] = _mm256_loadu_ps(src + 2 * lds); r[3] = _mm256_loadu_ps(src + 3 * lds);
    r[4] = _mm256_loadu_ps(src + 4 * lds); r[5] = _mm256_loadu_ps(src + 5 * lds);
    r[6] = r[7] = _mm256_setzero_ps();
    mmgan__tr8(r);
    /* column i in lanes 0-5: each 8-float store's last two lanes are
     * overwritten by the next column's, the last column stored as 4 + 2 */
    _mm256_storeu_ps(dst, r[0]); _mm256_storeu_ps(dst + 6, r[1]); _mm256_storeu_ps(dst + 12, r[2]);
    _mm256_storeu_ps(dst + 18, r[3]); _mm256_storeu_ps(dst + 24, r[4]); _mm256_storeu_ps(dst + 30, r[5]);
    _mm256_storeu_ps(dst + 36, r[6]);
    _mm_storeu_ps(dst + 42, _mm256_castps256_ps128(r[7]));
    _mm_storel_pi((__m64 *)(void *)(dst + 46), _mm256_extractf128_ps(r[7], 1));
}
#define MMGAN__TR6 8
#elif defined(MMGAN__SSE2)
MMGAN__INLINE void mmgan__tr_6(const float *src, size_t lds, float *dst)
{
    __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + lds);
    __m128 r2 = _mm_loadu_ps(src + 2 * lds), r3 = _mm_loadu_ps(src + 3 * lds);
    __m128 r4 = _mm_loadu_ps(src + 4 * lds), r5 = _mm_loadu_ps(src + 5 * lds);
    __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpacklo_ps(r2, r3);
    __m128 t2 = _mm_unpackhi_ps(r0, r1), t3 = _mm_unpackhi_ps(r2, r3);
    __m128 t4 = _mm_unpacklo_ps(r4, r5), t5 = _mm_unpackhi_ps(r4, r5);
    _mm_storeu_ps(dst, _mm_movelh_ps(t0, t1));
    _mm_storel_pi((__m64 *)(void *)(dst + 4), t4);
    _mm_storeu_ps(dst + 6, _mm_movehl_ps(t1, t0));
    _mm_storeh_pi((__m64 *)(void *)(dst + 10), t4);
    _mm_storeu_ps(dst + 12, _mm_movelh_ps(t2, t3));
    _mm_storel_pi((__m64 *)(void *)(dst + 16), t5);
    _mm_storeu_ps(dst + 18, _mm_movehl_ps(t3, t2));
    _mm_storeh_pi((__m64 *)(void *)(dst + 22), t5);
}
#define MMGAN__TR6 4
#endif

/* dst[p * rows + i] = src[i * lds + p] for i < rows and the leading p < kc
 * that make whole blocks; returns how many p it did (the caller does the
 * rest).  rows is a panel's height or width. */
static int mmgan__tr_panel(int rows, int kc, const float *src, size_t lds, float *dst)
{
    int p = 0;
#ifdef MMGAN__TR6
    if (rows == 6) {
        for (; p + MMGAN__TR6 <= kc; p += MMGAN__TR6) mmgan__tr_6(src + p, lds, dst + (size_t)p * 6);
        return p;
    }
#endif
#ifdef MMGAN__TB
    int i;
    if (rows % MMGAN__TB == 0)
        for (; p + MMGAN__TB <= kc; p += MMGAN__TB)
            for (i = 0; i < rows; i += MMGAN__TB)
                mmgan__tr_block(src + (size_t)i * lds + p, lds, dst + (size_t)p * rows + i, (size_t)rows);
#else
    (void)rows; (void)kc; (void)src; (void)lds; (void)dst;
#endif
    return p;
}

/* Panels [q0, q1) of the MR-tall packing of op(A)[i0:i0+mc, p0:p0+kc]. */
static void mmgan__pack_a(const mmgan__gemm_args *g, int i0, int mc, int p0, int kc, int q0, int q1)
{
    const int mr = g->kr->mr;
    int q, i, p;
    for (q = q0; q < q1; q++) {
        float *dst = g->ap + (size_t)q * mr * kc;
        int r0 = q * mr, rows = MMGAN__MIN(mr, mc - r0);
        if (!g->ta) {
            /* Contiguous stores, mr sequential read streams: scattered
             * stores would cost a cache line each.  A in NCHW order
             * (mmgan__bgather) goes in runs of one image each, a plain A in
             * one run. */
            const int hw = g->bg ? g->bg->q->ho * g->bg->q->wo : 0;
            const size_t lda = (size_t)g->lda;
            int pe, p1;
            for (p = 0; p < kc; p = pe) {
                const float *src = g->a + (size_t)(i0 + r0) * lda;
                float *d = dst + (size_t)p * mr;
                if (hw) {
                    const int pos = (p0 + p) % hw;
                    src += (size_t)((p0 + p) / hw) * g->m * hw + pos;
                    pe = MMGAN__MIN(kc, p + hw - pos);
                } else {
                    src += p0 + p;
                    pe = kc;
                }
                p1 = rows == mr ? mmgan__tr_panel(mr, pe - p, src, lda, d) : 0;
                for (d += (size_t)p1 * mr; p1 < pe - p; p1++, d += mr) {
                    for (i = 0; i < rows; i++) d[i] = src[i * lda + p1];
                    for (; i < mr; i++) d[i] = 0.0f;
                }
            }
        } else {
            for (p = 0; p < kc; p++) {
                const float *src = g->a + (size_t)(p0 + p) * g->lda + i0 + r0;
                for (i = 0; i < rows; i++) dst[p * mr + i] = src[i];
                for (; i < mr; i++) dst[p * mr + i] = 0.0f;
            }
        }
    }
}

/* Where window entry e = (c, i, j) lies from the window's corner in zero-padded
 * images [c][h + 2 pad][w + 2 pad]. */
static long mmgan__win_off(const mmgan__convgeom *q, int e)
{
    const int kk = q->kh * q->kw, pw = q->w + 2 * q->pad;
    return (long)(e / kk) * (q->h + 2 * q->pad) * pw + (long)(e % kk / q->kw) * pw + e % q->kw;
}

/* Implicit im2col: panels of B read from the images.  A pixel (image, oy,
 * ox) per row and a window entry (c, i, j) per column make an element; the
 * columns are decoded once per panel, the rows once per row. */
static void mmgan__pack_b_gather(const mmgan__gemm_args *g, int p0, int kc, int j0, int nc, int q0, int q1)
{
    const mmgan__convgeom *cq = g->bg->q;
    const float *x = g->bg->x;
    const int nr = g->kr->nr, hw = cq->ho * cq->wo, s = cq->stride;
    const int pw = cq->w + 2 * cq->pad, plane = (cq->h + 2 * cq->pad) * pw;
    const size_t img = (size_t)cq->c * plane;
    int q, jj, p, quads;
    long off[64];   /* per panel column: where its window entry (c, i, j) lies */
    MMGAN_ASSERT(nr <= 64);
    for (q = q0; q < q1; q++) {
        float *dst = g->bp + (size_t)q * nr * kc;
        int c0 = j0 + q * nr, cols = MMGAN__MIN(nr, nc - q * nr);
        int b = p0 / hw, oy = p0 % hw / cq->wo, ox = p0 % cq->wo;   /* row p0's pixel, then counted on */
        for (jj = 0; jj < cols; jj++) off[jj] = mmgan__win_off(cq, c0 + jj);
        /* Window rows of 4 (4x4 kernels) are 4 floats side by side in the
         * image: copied 16 bytes at a time, 3x fewer moves than a float at a time. */
        quads = cols % 4 == 0;
        for (jj = 0; jj < cols && quads; jj += 4)
            quads = off[jj + 1] == off[jj] + 1 && off[jj + 2] == off[jj] + 2 && off[jj + 3] == off[jj] + 3;
        for (p = 0; p < kc; p++, dst += nr) {
            const float *src = x + (size_t)b * img + (size_t)oy * s * pw + (size_t)ox * s;
            if (quads) for (jj = 0; jj < cols; jj += 4) memcpy(dst + jj, src + off[jj], 4 * sizeof(float));
            else for (jj = 0; jj < cols; jj++) dst[jj] = src[off[jj]];
            for (jj = cols; jj < nr; jj++) dst[jj] = 0.0f;
            if (++ox == cq->wo) {
                ox = 0;
                if (++oy == cq->ho) { oy = 0; b++; }
            }
        }
    }
}

/* Panels [q0, q1) of the NR-wide packing of op(B)[p0:p0+kc, j0:j0+nc]. */
static void mmgan__pack_b(const mmgan__gemm_args *g, int p0, int kc, int j0, int nc, int q0, int q1)
{
    const int nr = g->kr->nr;
    int q, j, p;
    if (g->bg) {
        mmgan__pack_b_gather(g, p0, kc, j0, nc, q0, q1);
        return;
    }
    if (!g->tb && nr % MMGAN__VN == 0) {
        /* Whole panels row by row across all of them, in vector copies: one
         * sequential read of each row of B instead of a 4 KB-strided walk per
         * panel down a large B, and no memcpy call per short row. */
        int full = MMGAN__MIN(q1, nc / nr);
        for (p = 0; p < kc; p++) {
            const float *src = g->b + (size_t)(p0 + p) * g->ldb + j0;
            for (q = q0; q < full; q++) {
                float *dst = g->bp + ((size_t)q * kc + p) * nr;
                for (j = 0; j < nr; j += MMGAN__VN) MMGAN__VSTORE(dst + j, MMGAN__VLOAD(src + q * nr + j));
            }
        }
        q0 = MMGAN__MAX(q0, full);
    }
    for (q = q0; q < q1; q++) {
        float *dst = g->bp + (size_t)q * nr * kc;
        int c0 = q * nr, cols = MMGAN__MIN(nr, nc - c0);
        if (!g->tb) {   /* the partial last panel (whole ones went row by row above) */
            const float *src = g->b + (size_t)p0 * g->ldb + j0 + c0;
            for (p = 0; p < kc; p++, src += g->ldb, dst += nr) {
                for (j = 0; j + MMGAN__VN <= cols; j += MMGAN__VN) MMGAN__VSTORE(dst + j, MMGAN__VLOAD(src + j));
                for (; j < cols; j++) dst[j] = src[j];
                for (; j < nr && j % MMGAN__VN; j++) dst[j] = 0.0f;
                for (; j + MMGAN__VN <= nr; j += MMGAN__VN) MMGAN__VSTORE(dst + j, MMGAN__VSET(0.0f));
                for (; j < nr; j++) dst[j] = 0.0f;
            }
        } else {
            p = cols == nr ? mmgan__tr_panel(nr, kc, g->b + (size_t)(j0 + c0) * g->ldb + p0, (size_t)g->ldb, dst) : 0;
            for (j = 0; j < cols; j++) {
                const float *src = g->b + (size_t)(j0 + c0 + j) * g->ldb + p0;
                int p1;
                for (p1 = p; p1 < kc; p1++) dst[p1 * nr + j] = src[p1];
            }
            for (; j < nr; j++)
                for (p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
        }
    }
}

/* Where the block of an A packed whole (mmgan__gemm_prepack_a) for the k
 * block from pc and the rows from ic (a multiple of the micro-kernel's)
 * starts: k blocks one after the other, each holding every row rounded up
 * to the micro-kernel's, rows in order. */
static size_t mmgan__apk_off(const mmgan__gemm_kernel *kr, int m, int pc, int ic, int kc)
{
    return (size_t)pc * (size_t)((m + kr->mr - 1) / kr->mr * kr->mr) + (size_t)ic * kc;
}

/* One tile of C from packed A and B (or B in place, row stride bs). */
static void mmgan__gemm_tile(const mmgan__gemm_args *g, int kc, const float *ap, const float *bp, ptrdiff_t bs,
                             float *cp, float beta, int rows, int cols)
{
    const mmgan__gemm_kernel *kr = g->kr;
    const int mr = kr->mr, nr = kr->nr;
    float tile[MMGAN__MAX_TILE];
    if (rows == mr && cols == nr) {
        kr->ukr(kc, ap, bp, bs, cp, g->ldc, g->alpha, beta);
    } else if (kr->edge) {
        kr->edge(kc, ap, bp, bs, cp, g->ldc, g->alpha, beta, rows, cols);
    } else {
        int i, j;
        kr->ukr(kc, ap, bp, bs, tile, nr, g->alpha, 0.0f);
        for (i = 0; i < rows; i++)
            for (j = 0; j < cols; j++)
                cp[(size_t)i * g->ldc + j] = beta == 0.0f ? tile[i * nr + j]
                                             : tile[i * nr + j] + beta * cp[(size_t)i * g->ldc + j];
    }
}

/* Products whose B is read in place in at most this many column panels read
 * A in place as well, where the kernel set can (ukr_a): packing A pays for
 * itself over the panels that reuse it, over so few it did not (one thread,
 * alternating in one process, Zen 5: 64^3 1.10-1.14x, 128^3 1.06-1.07x,
 * 64x128x128 1.02-1.13x, 256x128x256 1.03-1.09x).  With any number of
 * panels (a trial) 64x784x256 gained 1.01x and 128x3136x1024, its rows of A
 * 4 KB apart, ran 0.93-1.02x.  Only whole row panels: a partial one is
 * packed. */
#define MMGAN__GEMM_A_INPLACE_PANELS 4

static int mmgan__gemm_a_inplace(const mmgan__gemm_args *g)
{
    return g->kr->ukr_a && g->direct_b && !g->ta && !g->bg && !g->apk &&
           g->n <= MMGAN__GEMM_A_INPLACE_PANELS * g->kr->nr;
}

/* Tile ir of the row block from ic (mc rows) at cp, k from pc: a whole row
 * panel with A in place where ain (mmgan__gemm_a_inplace), else from the
 * packed block abase. */
static void mmgan__gemm_tile_at(const mmgan__gemm_args *g, int ain, int kc, const float *abase, int ic, int ir,
                                int mc, int pc, const float *bp, ptrdiff_t bs, float *cp, float beta, int cols)
{
    const int mr = g->kr->mr, rows = MMGAN__MIN(mr, mc - ir * mr);
    if (ain && rows == mr)
        g->kr->ukr_a(kc, g->a + (size_t)(ic + ir * mr) * g->lda + pc, g->lda, bp, bs, cp, g->ldc, g->alpha, beta, cols);
    else
        mmgan__gemm_tile(g, kc, abase + (size_t)ir * mr * kc, bp, bs, cp, beta, rows, cols);
}

/* A block i >= 1 of the workspace, or with i = MMGAN__GEMM_A_BLOCKS the
 * head panel: after the B block at g->bp. */
static float *mmgan__gemm_ws_after_b(const mmgan__gemm_args *g, int i)
{
    return g->bp + (size_t)g->kr->kc * g->kr->nc + (size_t)(i - 1) * g->kr->mc * g->kr->kc;
}

/* Packs the head columns of B's k block from pc into g->hp (see
 * mmgan__gemm_head). */
static void mmgan__pack_head(const mmgan__gemm_args *g, int pc, int kc)
{
    mmgan__gemm_args h = *g;
    h.b = g->b - g->head;
    h.bp = g->hp;
    mmgan__pack_b(&h, pc, kc, 0, g->head, 0, 1);
}

/* The head's tile in row panel ir of a block of rows from ic. */
static void mmgan__head_tile(const mmgan__gemm_args *g, int kc, const float *abase, int ic, int ir, int mc,
                             float beta)
{
    const int mr = g->kr->mr;
    mmgan__gemm_tile(g, kc, abase + (size_t)ir * mr * kc, g->hp, g->kr->nr,
                     g->c - g->head + (size_t)(ic + ir * mr) * g->ldc, beta, MMGAN__MIN(mr, mc - ir * mr), g->head);
}

#if defined(MMGAN__OMP) || MMGAN__WINO   /* (threads, and F(4x4, 2x2) on one thread) */
/* Floats of workspace each thread of mmgan__gemm_thread_cols uses: its own
 * packed A block, a partial last B panel and the head panel. */
static size_t mmgan__gemm_cols_ws(const mmgan__gemm_kernel *kr)
{
    return ((size_t)kr->mc * kr->kc + 2 * (size_t)kr->nr * kr->kc + 15) & ~(size_t)15;
}

/* A product with B read in place, on threads: each thread takes a run of
 * B's column panels for the whole of k and packs A itself, block of rows by
 * block, so no thread waits on another.  The shared packing took two
 * barriers per k block: 64x256x256 and 64x256x784 on two threads ran
 * 1.4-1.6x slower (0.84-0.89x OpenBLAS), 64x784x784 and 64x12544x128
 * 1.03-1.06x (in one process).  Tiles and their k order are those of
 * mmgan__gemm_thread: the same bits. */
static void mmgan__gemm_thread_cols(const mmgan__gemm_args *g, int tid, int nt, float *ws)
{
    const mmgan__gemm_kernel *kr = g->kr;
    const int mr = kr->mr, nr = kr->nr;
    const int npn = (g->n + nr - 1) / nr, ain = mmgan__gemm_a_inplace(g);
    mmgan__gemm_args my = *g;
    int pc, ic, q0, q1, jr, ir;
    mmgan__range(npn, tid, nt, &q0, &q1);
    my.ap = ws + (size_t)tid * mmgan__gemm_cols_ws(kr);
    my.bp = my.ap + (size_t)kr->mc * kr->kc;   /* the partial last panel */
    my.hp = my.bp + (size_t)kr->nr * kr->kc;
    if (q0 >= q1) return;
    for (pc = 0; pc < g->k; pc += kr->kc) {
        const int kc = MMGAN__MIN(kr->kc, g->k - pc);
        const float beta = pc == 0 ? g->beta : 1.0f;
        if (g->n % nr && q1 == npn) mmgan__pack_b(&my, pc, kc, (npn - 1) * nr, g->n - (npn - 1) * nr, 0, 1);
        if (g->head && q0 == 0) mmgan__pack_head(&my, pc, kc);   /* the head goes with the first panel */
        for (ic = 0; ic < g->m; ic += kr->mc) {
            const int mc = MMGAN__MIN(kr->mc, g->m - ic), npm = (mc + mr - 1) / mr;
            const float *abase = my.ap;
            if (g->apk) abase = g->apk + mmgan__apk_off(kr, g->m, pc, ic, kc);
            else if (!ain) mmgan__pack_a(&my, ic, mc, pc, kc, 0, npm);
            else if (mc % mr) mmgan__pack_a(&my, ic, mc, pc, kc, npm - 1, npm);   /* the partial row panel */
            if (g->head && q0 == 0)
                for (ir = 0; ir < npm; ir++) mmgan__head_tile(&my, kc, abase, ic, ir, mc, beta);
            for (jr = q0; jr < q1; jr++) {
                const int cols = MMGAN__MIN(nr, g->n - jr * nr);
                const float *bp = cols == nr ? g->b + (size_t)pc * g->ldb + (size_t)jr * nr : my.bp;
                const ptrdiff_t bs = cols == nr ? g->ldb : nr;
                for (ir = 0; ir < npm; ir++)
                    mmgan__gemm_tile_at(g, ain, kc, abase, ic, ir, mc, pc, bp, bs,
                                        g->c + (size_t)(ic + ir * mr) * g->ldc + (size_t)jr * nr, beta, cols);
            }
        }
    }
}
#endif

#ifdef MMGAN__OMP
/* A product with packed B on threads: each thread claims runs of C's row
 * panels (its own, then the others' leftovers: mmgan__claim_run) and packs
 * their A itself; the threads pack each B block together and meet twice
 * per k block, not twice per row block as in mmgan__gemm_thread.
 * The same tiles, each summed over the k blocks in order: the same bits.
 * Thread 0 packs its A where mmgan__gemm_thread does, the others after
 * the B block (MMGAN__GEMM_A_BLOCKS).  On two threads (in one process):
 * 2048x490x256 (the generator's transposed conv) 1.05-1.07x, 256^3
 * 1.04-1.06x, 1024^3 1.02x, 2048^3 1.03x; with 64 rows a thread
 * (128x3136x1024) 0.82-0.86x, each thread then reading all of B for few
 * rows: MMGAN__GEMM_ROWS_MIN rows a thread at least.  Claiming rather
 * than taking equal shares, medians of 10-12 alternating pairs on two
 * threads: 1024^3 1.03x, 256^3 1.03x, 2048x490x256 1.02x; with another
 * process busy on one core, 1024^3 1.45x and 2048x490x256 1.41x (5 pairs). */
#define MMGAN__GEMM_ROWS_MIN 128

static void mmgan__gemm_thread_rows(const mmgan__gemm_args *g, int tid, int nt)
{
    const mmgan__gemm_kernel *kr = g->kr;
    const int mr = kr->mr, nr = kr->nr, npm_all = (g->m + mr - 1) / mr;
    mmgan__gemm_args my = *g;
    int jc, pc, q, n, q0, q1, jr, ir;
    if (tid) my.ap = mmgan__gemm_ws_after_b(g, tid);
    for (jc = 0; jc < g->n; jc += kr->nc) {
        const int nc = MMGAN__MIN(kr->nc, g->n - jc), npn = (nc + nr - 1) / nr;
        for (pc = 0; pc < g->k; pc += kr->kc) {
            const int kc = MMGAN__MIN(kr->kc, g->k - pc);
            const float beta = pc == 0 ? g->beta : 1.0f;
            MMGAN__OMP_BARRIER();   /* everyone is done with the last B block and its claims */
            mmgan__range(npn, tid, nt, &q0, &q1);
            mmgan__pack_b(g, pc, kc, jc, nc, q0, q1);
            if (tid == 0) mmgan__claim_reset(g->sh, nt, npm_all);
            MMGAN__OMP_BARRIER();
            while ((n = mmgan__claim_run(g->sh, tid, nt, 1, kr->mc / mr, &q)) > 0) {
                const int ic = q * mr, mc = MMGAN__MIN(n * mr, g->m - ic), npm = n;
                const float *abase = my.ap;
                if (g->apk) abase = g->apk + mmgan__apk_off(kr, g->m, pc, ic, kc);
                else mmgan__pack_a(&my, ic, mc, pc, kc, 0, npm);
                for (jr = 0; jr < npn; jr++)
                    for (ir = 0; ir < npm; ir++)
                        mmgan__gemm_tile(g, kc, abase + (size_t)ir * mr * kc, g->bp + (size_t)jr * nr * kc, nr,
                                         g->c + (size_t)(ic + ir * mr) * g->ldc + jc + jr * nr, beta,
                                         MMGAN__MIN(mr, mc - ir * mr), MMGAN__MIN(nr, nc - jr * nr));
            }
        }
    }
}
#endif

/* One thread's share of the whole product.  Every tile of C is computed by
 * one micro-kernel call per KC slice, in slice order, whichever thread makes
 * the call: that is why results do not depend on the thread count, nor on
 * which thread claims a tile (mmgan__claim_run).  Claiming rather than
 * taking equal shares, medians of 10 alternating pairs on two threads:
 * 64x12544x16 1.13x, 128x256x256 1.08x, 128x3136x1024 1.02x. */
static void mmgan__gemm_thread(const mmgan__gemm_args *g, int tid, int nt)
{
    const mmgan__gemm_kernel *kr = g->kr;
    const int mr = kr->mr, nr = kr->nr, ain = mmgan__gemm_a_inplace(g);
    int jc, pc, ic, q0, q1, t, u, n;
    for (jc = 0; jc < g->n; jc += kr->nc) {
        int nc = MMGAN__MIN(kr->nc, g->n - jc), npn = (nc + nr - 1) / nr, head = jc == 0 && g->head;
        for (pc = 0; pc < g->k; pc += kr->kc) {
            int kc = MMGAN__MIN(kr->kc, g->k - pc);
            float beta = pc == 0 ? g->beta : 1.0f;
            if (g->direct_b) { /* only a partial last panel (and the head) need packing */
                if (nc % nr && tid == 0) mmgan__pack_b(g, pc, kc, jc, nc, npn - 1, npn);
                if (head && tid == 0) mmgan__pack_head(g, pc, kc);
            } else {
                mmgan__range(npn, tid, nt, &q0, &q1);
                mmgan__pack_b(g, pc, kc, jc, nc, q0, q1);
            }
            for (ic = 0; ic < g->m; ic += kr->mc) {
                int mc = MMGAN__MIN(kr->mc, g->m - ic), npm = (mc + mr - 1) / mr;
                const float *abase = g->ap;
                if (g->apk) {
                    abase = g->apk + mmgan__apk_off(kr, g->m, pc, ic, kc);
                } else if (ain) {   /* only a partial row panel is packed */
                    if (mc % mr && tid == 0) mmgan__pack_a(g, ic, mc, pc, kc, npm - 1, npm);
                } else {
                    mmgan__range(npm, tid, nt, &q0, &q1);
                    mmgan__pack_a(g, ic, mc, pc, kc, q0, q1);
                }
                /* Tiles in column-panel-major order: consecutive tiles of a
                 * thread share the B panel that sits in L1.  The head is the
                 * last panel.  Threads claim runs of tiles, a column panel's
                 * at least. */
                if (tid == 0) mmgan__claim_reset(g->sh, nt, npm * (npn + head));
                if (nt > 1) { MMGAN__OMP_BARRIER(); }   /* one thread: no team to wait for */
                while ((n = mmgan__claim_run(g->sh, tid, nt, npm, npm * (npn + head), &u)) > 0) {
                    for (t = u; t < u + n; t++) {
                        int jr = t / npm, ir = t % npm;
                        if (jr == npn) {
                            mmgan__head_tile(g, kc, abase, ic, ir, mc, beta);
                            continue;
                        }
                        int cols = MMGAN__MIN(nr, nc - jr * nr);
                        const float *bp = g->bp + (size_t)jr * nr * kc;
                        ptrdiff_t bs = nr;
                        if (g->direct_b && cols == nr) {
                            bp = g->b + (size_t)pc * g->ldb + jc + jr * nr;
                            bs = g->ldb;
                        }
                        mmgan__gemm_tile_at(g, ain, kc, abase, ic, ir, mc, pc, bp, bs,
                                            g->c + (size_t)(ic + ir * mr) * g->ldc + jc + jr * nr, beta, cols);
                    }
                }
                if (nt > 1) { MMGAN__OMP_BARRIER(); }
            }
        }
    }
}

/* Up to this many rows of C, B is read in place rather than packed. */
#define MMGAN__GEMM_DIRECT_B_M 256

/* Below this many multiply-adds a second thread costs more than it saves. */
#ifndef MMGAN_GEMM_MT_MIN
#define MMGAN_GEMM_MT_MIN (1 << 22)
#endif

/* Floats of A packed whole: rows rounded up to the micro-kernel's. */
static size_t mmgan__gemm_apk_floats(const mmgan__gemm_kernel *kr, int m, int k)
{
    return (size_t)((m + kr->mr - 1) / kr->mr * kr->mr) * (size_t)k;
}

/* op(A) [m, k] packed whole, block by block in the order the driver reads
 * it (kc blocks, then mc blocks), for products that share A: a convolution
 * packs its weights once for all its chunks of images, not once a chunk. */
static void mmgan__gemm_prepack_a(const mmgan__gemm_kernel *kr, int ta, int m, int k, const float *a, int lda,
                                  float *dst)
{
    mmgan__gemm_args g;
    int pc, ic;
    memset(&g, 0, sizeof g);
    g.kr = kr; g.ta = ta; g.a = a; g.lda = lda;
    for (pc = 0; pc < k; pc += kr->kc) {
        int kc = MMGAN__MIN(kr->kc, k - pc);
        for (ic = 0; ic < m; ic += kr->mc) {
            int mc = MMGAN__MIN(kr->mc, m - ic);
            g.ap = dst + mmgan__apk_off(kr, m, pc, ic, kc);
            mmgan__pack_a(&g, ic, mc, pc, kc, 0, (mc + kr->mr - 1) / kr->mr);
        }
    }
}

/* x . y over n contiguous floats: VN float partial sums, then the lanes in
 * order.  mmgan_vec_dot's double sums made the 64x1x6272 product 3x slower. */
static float mmgan__dot_f(size_t n, const float *x, const float *y)
{
    mmgan__v acc = MMGAN__VSET(0.0f);
    float lanes[MMGAN__VN], s = 0.0f;
    size_t i = 0;
    int l;
    for (; i + MMGAN__VN <= n; i += MMGAN__VN) acc = MMGAN__VFMA(MMGAN__VLOAD(x + i), MMGAN__VLOAD(y + i), acc);
    MMGAN__VSTORE(lanes, acc);
    for (l = 0; l < MMGAN__VN; l++) s += lanes[l];
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

/* c[0, n) = alpha sum_p coef[p * cs] rows[p * ldr + (0, n)], a row at a time
 * through the vector kernels, each sum in p order. */
static void mmgan__gemv_rows(int k, int n, float alpha, const float *coef, size_t cs, const float *rows,
                             size_t ldr, float *c)
{
    int p;
    memset(c, 0, (size_t)n * sizeof(float));
    for (p = 0; p < k; p++) mmgan_vec_axpy((size_t)n, coef[(size_t)p * cs], rows + (size_t)p * ldr, c);
    mmgan_vec_scale((size_t)n, alpha, c, c);
}

/* Products with one row or one column of C (a critic's output layer, its
 * gradients): the blocked path packs whole panels to use one row or column
 * of them (the 64x1x6272 product ran at 2.5 GFLOP/s).  Contiguous operands
 * only; returns 0 where it does not apply (the blocked path takes those). */
static int mmgan__gemv(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc)
{
    int i, j;
    /* One row of C: each column summed over k on its own, for any n, n = 1
     * included (that went to a dot product, or with B strided to the blocked
     * path): a 1-channel conv splits its images into chunks by the thread
     * count, and a chunk of one 1x1 output changed the last image's value. */
    if (m == 1 && !tb && beta == 0.0f) {
        mmgan__gemv_rows(k, n, alpha, a, ta ? (size_t)lda : 1, b, (size_t)ldb, c);   /* c = alpha op(A)[0, :] B */
        return 1;
    }
    if (n == 1 && !ta) {    /* c[i] = alpha A[i, :] . op(B)[:, 0] + beta c[i] */
        if (!tb && ldb != 1) return 0;
        for (i = 0; i < m; i++) {
            float d = mmgan__dot_f((size_t)k, a + (size_t)i * lda, b), *ci = c + (size_t)i * ldc;
            *ci = beta == 0.0f ? alpha * d : alpha * d + beta * *ci;
        }
        return 1;
    }
    if (n == 1) {           /* c = alpha A^T b: the rows of stored A, contiguous in i */
        if (ldc != 1 || beta != 0.0f) return 0;
        mmgan__gemv_rows(k, m, alpha, b, tb ? 1 : (size_t)ldb, a, (size_t)lda, c);
        return 1;
    }
    if (m != 1) return 0;
    if (tb) {               /* c[j] = alpha op(A)[0, :] . B[j, :] + beta c[j] */
        if (ta && lda != 1) return 0;
        for (j = 0; j < n; j++) {
            float d = mmgan__dot_f((size_t)k, a, b + (size_t)j * ldb);
            c[j] = beta == 0.0f ? alpha * d : alpha * d + beta * c[j];
        }
        return 1;
    }
    return 0;   /* !tb with beta: the blocked path */
}

/* Columns of B read in place to take apart as a head, so that the in-place
 * panels start on a cache line.  A malloc'd B (glibc: 16 bytes into a line)
 * with rows a whole number of lines apart has every 16-float load of every
 * row split over two lines, which costs where the rows are long: with the
 * head 128x3136x1024 1.21-1.23x, 64x3136x1024 1.20x, 64x4096x64 1.15x,
 * 64x12544x128 1.09x, 64x2000x256 1.05x, 128x1600x512 1.02x; from 1536
 * columns down it was 0.99-1.00x, and 0.85-0.91x with 256 (one more vector
 * column of tiles, more packed).  The head is as wide as a panel allows (12
 * columns, to the line only, made one more tile per row).  Only with an
 * edge kernel, which sums a column as the whole tile does: where B lies
 * does not change a bit of C. */
#define MMGAN__LINE_FLOATS 16
static int mmgan__gemm_head(const mmgan__gemm_kernel *kr, int direct_b, const float *b, int ldb, int n)
{
    int head;
    if (!direct_b || !kr->edge || ldb % MMGAN__LINE_FLOATS || (uintptr_t)b % sizeof(float)) return 0;
    head = (int)((uintptr_t)b / sizeof(float) % MMGAN__LINE_FLOATS);
    if (head == 0) return 0;
    head = MMGAN__LINE_FLOATS - head;
    while (head + MMGAN__LINE_FLOATS <= kr->nr) head += MMGAN__LINE_FLOATS;
    return n <= 32 * kr->nr ? 0 : head;
}

/* A product's arguments, B read in place or not as direct_b says, with its
 * head taken apart (mmgan__gemm_head); no operand gathered or prepacked,
 * no workspace yet. */
static mmgan__gemm_args mmgan__gemm_args_of(const mmgan__gemm_kernel *kr, int ta, int tb, int m, int n, int k,
                                            float alpha, const float *a, int lda, const float *b, int ldb,
                                            float beta, float *c, int ldc, int direct_b)
{
    mmgan__gemm_args g;
    memset(&g, 0, sizeof g);
    g.kr = kr;
    g.ta = ta; g.tb = tb; g.m = m; g.n = n; g.k = k;
    g.alpha = alpha; g.beta = beta;
    g.a = a; g.b = b; g.c = c;
    g.lda = lda; g.ldb = ldb; g.ldc = ldc;
    g.direct_b = direct_b;
    g.head = mmgan__gemm_head(kr, direct_b, b, ldb, n);
    if (g.head) { g.b += g.head; g.c += g.head; g.n -= g.head; }   /* b is NULL for a gathered B */
    return g;
}

#if defined(MMGAN__OMP) || MMGAN__WINO
/* One thread's whole product C = op(A) B + beta C (op(A) m x k, or packed
 * whole in apk; B read in place), from inside a parallel region, with ws
 * (mmgan__gemm_cols_ws floats) its own: the tiles and sums of
 * mmgan__gemm_thread on one thread. */
static void mmgan__gemm_alone(const mmgan__gemm_kernel *kr, int ta, int m, int n, int k, const float *a, int lda,
                              const float *b, int ldb, const float *apk, float beta, float *c, int ldc, float *ws)
{
    mmgan__gemm_args g = mmgan__gemm_args_of(kr, ta, 0, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc, 1);
    MMGAN_ASSERT(m > 1 && n > 1);
    g.apk = apk;
    mmgan__gemm_thread_cols(&g, 0, 1, ws);
}
#endif

/* mmgan__gemm_run_ex with mt_min multiply-adds below which it stays on one
 * thread (MMGAN_GEMM_MT_MIN there). */
static mmgan_status mmgan__gemm_run_mt(mmgan_ctx *ctx, const mmgan__gemm_kernel *kr, int ta, int tb,
                                       int m, int n, int k, float alpha, const float *a, int lda,
                                       const float *b, int ldb, const mmgan__bgather *bg,
                                       const float *apk, float beta, float *c, int ldc, double mt_min)
{
    mmgan__gemm_args g;
    mmgan__gemm_share sh;
    int nt;
    if (!ctx) return MMGAN_ERR_INVALID;
    if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1))
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: trans_a=%d trans_b=%d, each must be 0 or 1", ta, tb);
    if (m < 0 || n < 0 || k < 0)
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: negative size m=%d n=%d k=%d", m, n, k);
    if (ldc < MMGAN__MAX(1, n))
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: ldc=%d is less than n=%d", ldc, n);
    if (lda < MMGAN__MAX(1, ta ? m : k) && !bg)   /* gathered products read A by images (lda = HoWo) */
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: lda=%d is less than the %d columns of A%s",
                           lda, ta ? m : k, ta ? " (transposed, k x m)" : " (m x k)");
    if (ldb < MMGAN__MAX(1, tb ? k : n))
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: ldb=%d is less than the %d columns of B%s",
                           ldb, tb ? k : n, tb ? " (transposed, n x k)" : " (k x n)");
    if (m == 0 || n == 0) return MMGAN_OK;
    if (!c) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: C is NULL");
    if (k == 0 || alpha == 0.0f) {
        int i, j;
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
        return MMGAN_OK;
    }
    if (!a || (!b && !bg)) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: %s is NULL", a ? "B" : "A");
    if (!bg && !apk && (m == 1 || n == 1) && mmgan__gemv(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
        return MMGAN_OK;

    nt = MMGAN__MIN(ctx->threads, MMGAN__SHARE_MAX);
    if ((double)m * n * k < mt_min) nt = 1;
    /* A gathered B one panel wide (the weight gradient of a 1-channel layer,
     * 16 columns) is packed by one thread while the other waits at each k
     * block: one thread measured faster than two (0.57-0.70 ms against
     * 0.73-0.89 for the DCGAN critic's first layer). */
    if (bg && n <= kr->nr) nt = 1;
    /* Packing B costs a copy of B per call, paid back by reuse over the rows
     * of A; with few rows it is not, and untransposed rows of B are already
     * contiguous.  With k < 64 the copy is cheap and packing measured faster.
     * On one thread reading B in place measured 6-15% faster (Xeon, AVX-512,
     * power-of-two strides included: 64x256x784 +13%), and 3% for 256 rows
     * (256x245x2048, the generator's conv products; the DCGAN step 1.2%
     * faster than packing above 128 rows, MAGAN's 1.1%; 512 rows gained
     * nothing more).  On two threads (each its own columns of B,
     * mmgan__gemm_thread_cols) it was for 64 rows on the Xeon (64x784x256
     * +12-16%, 64x12544x128 +3-7%, MAGAN's step 4%), and on the Zen 5 for
     * up to 256 rows as well: 128x3136x1024 1.21x, 256x3136x1024 1.29x,
     * 256^3 1.25x, 256x1024x1024 1.17x, 128x2048x2048 1.11x, 160x1024x4096
     * 1.13x (medians of 6-8 alternating pairs; the GAN steps, whose
     * convolutions run a product per thread, unchanged), where the Xeon had
     * measured packing 2-5% faster for 128 rows with the code of then.
     * Either way the sums are the same, in the same order. */
    g = mmgan__gemm_args_of(kr, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                            !bg && !tb && m <= MMGAN__GEMM_DIRECT_B_M && k >= 64);
    g.bg = bg;
    g.apk = apk;
    g.sh = &sh;
    g.ap = ctx->gemm_ws;
    g.bp = ctx->gemm_ws + (((size_t)kr->mc * kr->kc + 15) & ~(size_t)15);
    g.hp = mmgan__gemm_ws_after_b(&g, MMGAN__GEMM_A_BLOCKS);
    MMGAN_ASSERT((size_t)(g.hp - g.ap) + (size_t)kr->kc * kr->nr <= ctx->gemm_ws_floats);

#ifdef MMGAN__OMP
    if (nt > 1 && g.direct_b && m <= kr->mc &&
        (size_t)nt * mmgan__gemm_cols_ws(kr) <= ctx->gemm_ws_floats) {
        MMGAN__PRAGMA(omp parallel num_threads(nt))
        mmgan__gemm_thread_cols(&g, omp_get_thread_num(), omp_get_num_threads(), ctx->gemm_ws);
        return MMGAN_OK;
    }
    if (nt > 1 && !g.direct_b && nt <= MMGAN__GEMM_A_BLOCKS && m >= MMGAN__GEMM_ROWS_MIN * nt) {
        MMGAN__PRAGMA(omp parallel num_threads(nt))
        mmgan__gemm_thread_rows(&g, omp_get_thread_num(), omp_get_num_threads());
        return MMGAN_OK;
    }
    if (nt > 1) {
        MMGAN__PRAGMA(omp parallel num_threads(nt))
        mmgan__gemm_thread(&g, omp_get_thread_num(), omp_get_num_threads());
        return MMGAN_OK;
    }
#endif
    (void)nt;
    mmgan__gemm_thread(&g, 0, 1);
    return MMGAN_OK;
}

static mmgan_status mmgan__gemm_run_ex(mmgan_ctx *ctx, const mmgan__gemm_kernel *kr, int ta, int tb,
                                       int m, int n, int k, float alpha, const float *a, int lda,
                                       const float *b, int ldb, const mmgan__bgather *bg,
                                       const float *apk, float beta, float *c, int ldc)
{
    return mmgan__gemm_run_mt(ctx, kr, ta, tb, m, n, k, alpha, a, lda, b, ldb, bg, apk, beta, c, ldc,
                              (double)MMGAN_GEMM_MT_MIN);
}

static mmgan_status mmgan__gemm_run(mmgan_ctx *ctx, const mmgan__gemm_kernel *kr, int ta, int tb,
                                    int m, int n, int k, float alpha, const float *a, int lda,
                                    const float *b, int ldb, float beta, float *c, int ldc)
{
    return mmgan__gemm_run_ex(ctx, kr, ta, tb, m, n, k, alpha, a, lda, b, ldb, NULL, NULL, beta, c, ldc);
}

/* The blocking for a product.  Large ones (B packed: more rows than are
 * read in place, and k >= 768) go in k blocks of 1024 on AVX-512, where each
 * tile loads and stores its C a quarter as often: one thread, the FMA peak
 * measured in the same process, 1024^3 from 86.2% to 89.6% of it (medians of
 * six runs each), 2048^3 1.07x, 768^3 1.10x, 1024x256x1024 1.06x; on two
 * threads 1024^3 1.02x, 2048^3 1.05x.  512^3 ran 0.94x that way (rows in
 * blocks of 64, not 256), and the convolutions, whose products are built
 * around k blocks of 256 (mmgan__unfold_group), keep the first entry. */
static const mmgan__gemm_kernel *mmgan__gemm_pick(int m, int k)
{
#if defined(MMGAN__AVX512)
    if (m > MMGAN__GEMM_DIRECT_B_M && k >= 768) return &mmgan__gemm_kernels[1];
#else
    (void)m; (void)k;
#endif
    return &mmgan__gemm_kernels[0];
}

MMGAN_DEF mmgan_status mmgan_gemm(mmgan_ctx *ctx, int trans_a, int trans_b, int m, int n, int k,
                                  float alpha, const float *a, int lda, const float *b, int ldb,
                                  float beta, float *c, int ldc)
{
    return mmgan__gemm_run(ctx, mmgan__gemm_pick(m, k), trans_a, trans_b, m, n, k,
                           alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ===================================================================== */
/* 2.6 Convolution                                                        */
/* ===================================================================== */
/* All three convolution ops are GEMMs over the same column matrix: for an
 * image x [C, H, W] and a kh x kw window, row (c, i, j) and column (oy, ox)
 * of cols hold x[c][oy*stride - pad + i][ox*stride - pad + j] (0 outside).
 * A chunk of nb images lies side by side in cols, so one GEMM covers
 * nb * Ho * Wo columns: per-image products are too narrow for the
 * micro-kernel (49 columns waste most of a 48-wide tile).
 *   conv2d:            Y   = W [O, CKK] * cols(X)            then NCHW order
 *   conv_transpose2d:  Y   = col2im(W^T [CKK, Cin] * X)       (the adjoint)
 *   conv2d_wgrad:      dW += GY [O, nb HoWo] * cols(X)^T, with cols(X)^T
 *                      gathered by the GEMM as it packs B (implicit im2col, 2.5),
 *                      or for narrow windows dW^T = cols(X) * GY^T, and on
 *                      AVX-512 with padding dW^T = cols(X) * GY^T in runs
 *                      (mmgan__conv2d_bwd_weight_runs)
 * Measured side by side on the MNIST DCGAN layers (batch 64, one thread):
 * the gathered B is 4-8% faster for the weight gradient; for conv2d the
 * explicit column matrix (contiguous runs, vector packing) is 3-18% faster;
 * with C kh kw < O (1-channel layers) the transposed weight gradient is 1.2x
 * faster, its 16-row result fitting the micro-kernel far better, unless the
 * kernel set has an edge kernel for narrow tiles (AVX-512): then the gathered
 * product (64x16 and 128x16 results) is 1.2-1.6x faster than the transposed
 * one, before counting the latter's im2col (Xeon, one thread).
 * Chunks and batch entries are visited in order and the GEMM is
 * thread-count free, so results do not depend on threads either: the
 * forward and data-gradient products size their chunks by the thread count
 * (mmgan__conv_chunk_nt), which only changes which images share a product,
 * while the weight gradient, whose sums run across chunks, keeps one size. */
/* Except on AVX-512, the 4x4 stride-2 padding-1 layers with enough
 * channels and tiles (mmgan__wino_fit) take Winograd's F(4x4, 2x2) for all
 * three products instead (mmgan__conv2d_wino, mmgan__conv2d_bwd_weight_wino):
 * 0.51 of the multiplies on 7x7 outputs; on a Zen 3 (AVX2) the DCGAN steps
 * 1.43x faster, MAGAN's 1.34x, on one thread. */
/* Floats of column matrix per GEMM: about 4 MB for the weight gradient, and
 * at most that for the forward and data-gradient products (the same on one
 * thread; on threads they start from half and grow to whole images per
 * thread: mmgan__conv_chunk_nt); wide GEMMs, bounded scratch.  (Products in
 * runs take chunks of 16 images instead: mmgan__runs_chunk.) */
#define MMGAN__CONV_CHUNK_FLOATS (1 << 20)
/* Below this many floats moved, the image loops stay on one thread. */
#define MMGAN__PAR_MIN (1 << 18)

/* ... and no more images than make this many columns: wider products gain
 * nothing, and a layer with few channels (1 -> 64 on 28x28) would otherwise
 * take a 4 MB scratch for its whole batch. */
#define MMGAN__CONV_CHUNK_COLS 4096

static int mmgan__conv_chunk_of(const mmgan__convgeom *q, int n, size_t floats)
{
    size_t hw = (size_t)q->ho * q->wo, per = (size_t)q->c * q->kh * q->kw * hw;
    size_t nb = floats / (per ? per : 1), nc = (MMGAN__CONV_CHUNK_COLS + hw - 1) / (hw ? hw : 1);
    if (nb > nc) nb = nc;
    return nb < 1 ? 1 : nb > (size_t)n ? n : (int)nb;
}

/* The chunk of the weight gradient, whose sums over images it orders: the
 * same for every thread count. */
static int mmgan__conv_chunk(const mmgan__convgeom *q, int n)
{
    return mmgan__conv_chunk_of(q, n, MMGAN__CONV_CHUNK_FLOATS);
}

/* The chunk of the forward and data-gradient products, where a column of
 * the result is one image's and no sum crosses chunks, so it may follow the
 * threads.  On one thread, the weight gradient's: on the Xeon (2 MB of L2)
 * a column matrix of half the size, staying in L2 between the unfolding,
 * the product and the folding, had made the DCGAN step 3-4% faster (1 and
 * 1.5 MB no faster, 3 MB slower), but on the Zen 5 (1 MB of L2) the whole
 * chunk is the faster, the steps by 1.7-1.9% (40 alternating iterations in
 * one process) and the generator's 256 -> 128 layer by 2-3%, a quarter of
 * it 8-19% slower.  There the 7x7 layers' products are images of 49
 * columns, and each product's last 48-wide tile mostly empty: less so the
 * more images it holds.  (The channel groups, mmgan__fold_group and
 * mmgan__unfold_group, keep the part of the matrix in use at 1 MB or less
 * either way.)  On threads the image loops around the product split by
 * images, so the chunk grows (up to the 4 MB one) to a whole number of
 * images per thread: 5 images of the generator's 256 -> 128 layer split 3:2
 * and ran 4% slower than 10, while 6 ran as fast as 10; layers that already
 * split evenly keep the smaller chunk (MAGAN's peak memory on 2 threads
 * 28.7 -> 26.5 MiB; its and the critic's 64 -> 128 layers 0.97-1.04x, the
 * steps within noise). */
static int mmgan__conv_chunk_nt(const mmgan__convgeom *q, int n, int threads)
{
    const int nb = mmgan__conv_chunk_of(q, n, MMGAN__CONV_CHUNK_FLOATS / 2);
    const int most = mmgan__conv_chunk(q, n), whole = nb + (threads - nb % threads) % threads;
    if (threads < 2) return most;
    /* rounded down where up is too many: 21 images split 11:10 did not fit
     * the threads' matrices into the scratch (mmgan__conv_own), 20 do */
    if (whole > most) return most >= threads ? most - most % threads : most;
    return whole;
}

/* Whether the forward and data-gradient products pack the weights once for
 * their chunks: whenever one thread would take more than one chunk, whatever
 * the thread count, so that every count takes the same product path (with
 * one output channel an unpacked single chunk would be a matrix-vector
 * product, summed in another order). */
static int mmgan__conv_packs_w(const mmgan__convgeom *q, int n)
{
    return mmgan__conv_chunk_nt(q, n, 1) < n;
}

/* The output columns ox whose input column ox*stride - pad + j lies inside
 * the image: [*lo, *hi).  Outside them the window reads padding. */
static void mmgan__conv_span(const mmgan__convgeom *q, int j, int *lo, int *hi)
{
    int a = q->pad - j, b = q->w + q->pad - j;   /* need a <= ox*stride < b */
    *lo = a <= 0 ? 0 : (a - 1) / q->stride + 1;   /* rounded up, with no a + stride to overflow */
    *hi = b <= 0 ? 0 : (b - 1) / q->stride + 1;
    if (*hi > q->wo) *hi = q->wo;
    if (*lo > *hi) *lo = *hi;
}

/* Output rows whose windows reach into the padding multiply its zeros: the
 * first and last rows of the DCGAN's 4x4 stride-2 layers between 14x14 and
 * 7x7 read one window row in four from the padding, 7.1% of the products'
 * multiply-adds (13.8% with the columns'; 3.6% between 28x28 and 14x14).
 * On AVX-512 the forward and data-gradient products leave them out, on
 * any number of threads (mmgan__runs_threads).  The output rows fall into
 * runs whose windows keep the same rows [lo, hi) inside the image, and a
 * chunk's matrix holds each run's columns together, image by image within
 * the run.  The forward product then takes, for a run's columns, each
 * channel's window rows [lo, hi) of k (mmgan__avx512_tile_seg); the data
 * gradient's matrix has its rows in (i, c, j) order, window row outermost
 * within a group of channels, so that a run's rows of C are one range.  Measured on the DCGAN steps (one
 * thread, Zen 5, 40 alternating iterations in one process): 1.044-1.046x
 * faster, with and without the penalty.  The weight gradient, as dW^T =
 * cols(X) GY^T with cols(X)'s rows in (i, c, j) order, takes for each
 * window row one range of k: the runs that hold it inside the image.
 * Runs of columns as well (runs of rows times runs of columns) left out
 * all 13.8%, but then a row of an image split into three runs, and
 * unfolding it took four times the stores: 1.29x slower at best (the
 * critic's 64 -> 128 layer).  A plain matrix is the layout of one run of
 * all rows, in (c, i, j) order. */
#define MMGAN__RUNS_MAX 8
typedef struct mmgan__runs {
    int n;                         /* runs */
    int at[MMGAN__RUNS_MAX + 1];   /* run r: output rows [at[r], at[r + 1]) */
    int lo[MMGAN__RUNS_MAX], hi[MMGAN__RUNS_MAX];   /* its window rows inside the image */
    int nb;                        /* images in the chunk */
    int icj;                       /* rows in (i, c, j) order, not (c, i, j) */
} mmgan__runs;

#if defined(MMGAN__AVX512)   /* (the paths that take runs) */
/* The runs of q's output rows (0 where there are more than MMGAN__RUNS_MAX). */
static int mmgan__runs_of(const mmgan__convgeom *q, mmgan__runs *L)
{
    int oy, r = 0;
    for (oy = 0; oy < q->ho; oy++) {
        const long base = (long)oy * q->stride - q->pad;
        const int lo = base >= 0 ? 0 : (int)MMGAN__MIN(-base, (long)q->kh);
        const int hi = (int)MMGAN__MAX((long)lo, MMGAN__MIN((long)q->kh, (long)q->h - base));
        if (r && L->lo[r - 1] == lo && L->hi[r - 1] == hi) continue;
        if (r == MMGAN__RUNS_MAX) return L->n = 0;
        L->at[r] = oy; L->lo[r] = lo; L->hi[r] = hi;
        r++;
    }
    L->at[r] = q->ho;
    L->nb = 1;
    L->icj = 0;
    return L->n = r;
}

/* The matrix row of window entry (c, i, 0) (L NULL: the plain layout). */
MMGAN__INLINE size_t mmgan__runs_row(const mmgan__runs *L, const mmgan__convgeom *q, int c, int i)
{
    return (size_t)(L && L->icj ? i * q->c + c : c * q->kh + i) * q->kw;
}

/* The matrix columns at[oy] where image b's output rows start. */
#define MMGAN__RUNS_HO 64   /* output rows at most, in runs */
static void mmgan__runs_cols(const mmgan__runs *L, const mmgan__convgeom *q, int b, size_t *at)
{
    int r, oy;
    for (r = 0; r < L->n; r++)
        for (oy = L->at[r]; oy < L->at[r + 1]; oy++)
            at[oy] = ((size_t)L->nb * L->at[r] + (size_t)b * (L->at[r + 1] - L->at[r]) + (size_t)(oy - L->at[r])) * q->wo;
}
#endif

/* Images whose zero-padded plane fits this many floats (on the stack) are
 * unfolded through that plane: every window then lies inside it, with no
 * bounds to test.  On the MNIST DCGAN layers (batch 64, one thread) im2col
 * and col2im ran 1.3-1.7x faster that way than with a padding test per row
 * and span.  (On AVX-512, rows of up to 32 floats, all of the DCGAN's, go
 * through registers instead: mmgan__im2col_rows below.) */
#define MMGAN__PLANE_MAX 4096

/* y = x + b over n floats (x == y allowed).  A float add rounds the same in
 * a vector lane as alone, so the tail goes a float at a time: through a
 * zero-padded vector (MMGAN__MAP1's tail off AVX-512), the 49- and 14-float
 * rows of the DCGAN's planes were slower than the separate add this
 * replaces. */
static void mmgan__add_bias(size_t n, const float *x, float b, float *y)
{
    size_t i = 0;
    const mmgan__v vb = MMGAN__VSET(b);
    for (; i + MMGAN__VN <= n; i += MMGAN__VN) MMGAN__VSTORE(y + i, MMGAN__VADD(MMGAN__VLOAD(x + i), vb));
    for (; i < n; i++) y[i] = x[i] + b;
}

/* One plane [h][w] into the interior of a zero-bordered plane [h + 2 pad][w + 2 pad]. */
static void mmgan__pad_plane(const mmgan__convgeom *q, const float *x, float *padded)
{
    const int pw = q->w + 2 * q->pad;
    int i;
    for (i = 0; i < q->h; i++)
        memcpy(padded + (size_t)(i + q->pad) * pw + q->pad, x + (size_t)i * q->w, (size_t)q->w * sizeof(float));
}

/* d[k] = r[2k] and its adjoint r[2k] += d[k], k < n: the rows of a stride-2
 * window.  AVX-512 does a row of up to 16 in a few masked instructions (no
 * lane outside the row is read or written), for images too wide for the
 * row-register paths: the DCGAN's 4x4 stride-2 layers ran 1.15-2.9x faster
 * that way than a float at a time, before those paths. */
MMGAN__INLINE void mmgan__take_evens(float *d, const float *r, int n)
{
    int k;
#if defined(MMGAN__AVX512)
    if (n >= 6 && n <= 16) {   /* shorter rows: a masked store then an overlapping load stalls */
        const __m512i idx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        const int span = 2 * n - 1;
        __m512 v0 = _mm512_maskz_loadu_ps(mmgan__mask16(span), r);
        __m512 v1 = _mm512_maskz_loadu_ps(mmgan__mask16(span - 16), r + 16);
        _mm512_mask_storeu_ps(d, mmgan__mask16(n), _mm512_permutex2var_ps(v0, idx, v1));
        return;
    }
#endif
    for (k = 0; k < n; k++) d[k] = r[2 * k];
}

MMGAN__INLINE void mmgan__add_evens(float *r, const float *d, int n)
{
    int k;
#if defined(MMGAN__AVX512)
    if (n >= 6 && n <= 16) {   /* shorter rows: a masked store then an overlapping load stalls */
        const __m512i lo = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
        const __m512i hi = _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
        const int span = 2 * n - 1;
        const __mmask16 m0 = (__mmask16)(0x5555u & mmgan__mask16(span)), m1 = (__mmask16)(0x5555u & mmgan__mask16(span - 16));
        __m512 v = _mm512_maskz_loadu_ps(mmgan__mask16(n), d);
        _mm512_mask_storeu_ps(r, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, r), _mm512_permutexvar_ps(lo, v)));
        if (m1) _mm512_mask_storeu_ps(r + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, r + 16), _mm512_permutexvar_ps(hi, v)));
        return;
    }
#endif
    for (k = 0; k < n; k++) r[2 * k] += d[k];
}

#if defined(MMGAN__AVX512)
/* Image rows of up to 32 floats held in two vectors, windows of up to 16
 * columns: one permute per window column picks a row of the column matrix
 * out of an image row (im2col), and one per window entry places a row of it
 * into an image row summed in registers (col2im), each image row stored
 * once.  On the DCGAN's 4x4 stride-2 layers (7- and 14-float rows) the step
 * ran 4.4% faster than through the padded planes, once the chunks were
 * small enough for the column matrix to stay in L2; before that its traffic
 * hid the difference. */
#define MMGAN__ROWS_FIT(q) ((q)->w <= 32 && (q)->wo <= 16 && (q)->kw <= 16)

/* Window column j: lane ox of a matrix row reads image column s ox + j - pad
 * (lanes reading padding, or past wo, are off in the mask).  With pair (2 wo
 * <= 16), lanes wo + ox do the same for a second image row, held in the
 * second vector of a two-vector permute (indices from 16). */
static __mmask16 mmgan__win_take(const mmgan__convgeom *q, int j, int pair, __m512i *idx)
{
    int t[16], ox, r;
    unsigned m = 0;
    for (ox = 0; ox < 16; ox++) t[ox] = 0;
    for (r = 0; r <= pair; r++)
        for (ox = 0; ox < q->wo; ox++) {
            long ix = (long)ox * q->stride + j - q->pad;
            if (ix >= 0 && ix < q->w) {
                t[r * q->wo + ox] = 16 * r + (int)ix;
                m |= 1u << (r * q->wo + ox);
            }
        }
    *idx = _mm512_loadu_si512((const void *)t);
    return (__mmask16)m;
}

/* ... and its adjoint for image lanes [16 h, 16 h + 16): lane ix takes
 * matrix entry ox = (ix + pad - j) / s where that is whole and inside. */
static __mmask16 mmgan__win_put(const mmgan__convgeom *q, int j, int h, __m512i *idx)
{
    int t[16], l;
    unsigned m = 0;
    for (l = 0; l < 16; l++) {
        int d = 16 * h + l + q->pad - j, ox = d / q->stride;
        t[l] = 0;
        if (16 * h + l < q->w && d >= 0 && d % q->stride == 0 && ox < q->wo) {
            t[l] = ox;
            m |= 1u << l;
        }
    }
    *idx = _mm512_loadu_si512((const void *)t);
    return (__mmask16)m;
}

/* The next channel's plane is prefetched while this one is unfolded: the
 * hardware's prefetchers left the loads of image rows waiting on memory
 * (the loads took 60% of the critic's 64 -> 128 unfolding, which itself
 * took 21% of that forward conv; 12% with the prefetch, the forward 1.07x
 * faster on one thread and 1.015x on two, Zen 5).  Planes larger than
 * this are left to the hardware. */
#define MMGAN__PREFETCH_PLANE_MAX 16384   /* bytes */

/* Every cache line of [p, p + bytes) into L1 (bytes > 0). */
MMGAN__INLINE void mmgan__prefetch_bytes(const void *p, size_t bytes)
{
    const char *b = (const char *)p;
    size_t l;
    for (l = 0; l < bytes; l += 64) _mm_prefetch(b + l, _MM_HINT_T0);
    _mm_prefetch(b + bytes - 1, _MM_HINT_T0);
}

/* Rows of the column matrix at most 8 wide go two at a time: one permute
 * takes a window column out of two image rows, and one store writes the two
 * matrix rows, which lie side by side.  On the critic's 64 -> 128 layer
 * (7-float rows) the unfolding ran 1.16-1.44x faster (20 images, one
 * thread, alternating runs). */
#define MMGAN__PAIR_FITS(q) ((q)->w <= 16 && 2 * (q)->wo <= 16)

/* mmgan__im2col_rows for 4-wide windows on rows that pair (the DCGAN's 4x4
 * stride-2 layers from 14x14): the four window columns' permutes and masks
 * held in registers, the four matrix rows written straight out, and an image
 * row of at most 16 one vector.  Through the loop below the index vectors
 * and masks were reloaded from the stack for every store; this one unfolds
 * the critic's 64 -> 128 input and the generator's 128-channel gradient
 * 1.55x faster alone (one thread, Zen 5), the same bits.  at: the columns
 * of the output rows (L NULL: rows of padding are written as zeros). */
static void mmgan__im2col_rows4(const mmgan__convgeom *q, const float *x, float *cols, size_t ld,
                                const mmgan__runs *L, const size_t *at)
{
    const int ho = q->ho, wo = q->wo, h = q->h, w = q->w, s = q->stride;
    const __mmask16 mo = mmgan__mask16(wo), mo2 = mmgan__mask16(2 * wo), mw = mmgan__mask16(w);
    const size_t plane = (size_t)h * w;
    __m512i i0, i1, i2, i3, p0, p1, p2, p3;
    __mmask16 k0, k1, k2, k3, t0, t1, t2, t3;
    int c, i, oy;
    k0 = mmgan__win_take(q, 0, 0, &i0); k1 = mmgan__win_take(q, 1, 0, &i1);
    k2 = mmgan__win_take(q, 2, 0, &i2); k3 = mmgan__win_take(q, 3, 0, &i3);
    t0 = mmgan__win_take(q, 0, 1, &p0); t1 = mmgan__win_take(q, 1, 1, &p1);
    t2 = mmgan__win_take(q, 2, 1, &p2); t3 = mmgan__win_take(q, 3, 1, &p3);
    for (c = 0; c < q->c; c++) {
        const float *xc = x + (size_t)c * plane;
        if (c + 1 < q->c && plane * sizeof(float) <= MMGAN__PREFETCH_PLANE_MAX)
            mmgan__prefetch_bytes(xc + plane, plane * sizeof(float));
        for (i = 0; i < q->kh; i++) {
            float *d = cols + mmgan__runs_row(L, q, c, i) * ld;
            for (oy = 0; oy < ho;) {
                const int iy = oy * s + i - q->pad, iy1 = iy + s;
                const int in = iy >= 0 && iy < h;
                float *e = d + at[oy];
                __m512 v0 = _mm512_setzero_ps(), v1 = v0;
                if (L && !in) {   /* rows of padding in runs: never read */
                    oy++;
                    continue;
                }
                if (in) v0 = _mm512_maskz_loadu_ps(mw, xc + (size_t)iy * w);
                if (oy + 1 < ho && at[oy + 1] == at[oy] + (size_t)wo) {
                    if (iy1 >= 0 && iy1 < h) v1 = _mm512_maskz_loadu_ps(mw, xc + (size_t)iy1 * w);
                    _mm512_mask_storeu_ps(e, mo2, _mm512_maskz_permutex2var_ps(t0, v0, p0, v1));
                    _mm512_mask_storeu_ps(e + ld, mo2, _mm512_maskz_permutex2var_ps(t1, v0, p1, v1));
                    _mm512_mask_storeu_ps(e + 2 * ld, mo2, _mm512_maskz_permutex2var_ps(t2, v0, p2, v1));
                    _mm512_mask_storeu_ps(e + 3 * ld, mo2, _mm512_maskz_permutex2var_ps(t3, v0, p3, v1));
                    oy += 2;
                    continue;
                }
                _mm512_mask_storeu_ps(e, mo, _mm512_maskz_permutexvar_ps(k0, i0, v0));
                _mm512_mask_storeu_ps(e + ld, mo, _mm512_maskz_permutexvar_ps(k1, i1, v0));
                _mm512_mask_storeu_ps(e + 2 * ld, mo, _mm512_maskz_permutexvar_ps(k2, i2, v0));
                _mm512_mask_storeu_ps(e + 3 * ld, mo, _mm512_maskz_permutexvar_ps(k3, i3, v0));
                oy++;
            }
        }
    }
}

static void mmgan__im2col_rows(const mmgan__convgeom *q, const float *x, float *cols, size_t ld,
                               const mmgan__runs *L, int img)
{
    __m512i idx[16], idx2[16];
    __mmask16 m[16], m2[16];
    const __mmask16 mo = mmgan__mask16(q->wo), m0 = mmgan__mask16(q->w), m1 = mmgan__mask16(q->w - 16);
    const __mmask16 mo2 = mmgan__mask16(2 * q->wo);
    const size_t plane = (size_t)q->h * q->w * sizeof(float);
    const int pairs = MMGAN__PAIR_FITS(q);
    size_t at[MMGAN__RUNS_HO];
    int c, i, j, oy;
    if (L) mmgan__runs_cols(L, q, img, at);
    if (q->kw == 4 && pairs && q->ho <= MMGAN__RUNS_HO) {
        if (!L)
            for (oy = 0; oy < q->ho; oy++) at[oy] = (size_t)oy * q->wo;
        mmgan__im2col_rows4(q, x, cols, ld, L, at);
        return;
    }
#define MMGAN__AT(oy) (L ? at[oy] : (size_t)(oy) * q->wo)
    for (j = 0; j < q->kw; j++) {
        m[j] = mmgan__win_take(q, j, 0, &idx[j]);
        m2[j] = pairs ? mmgan__win_take(q, j, 1, &idx2[j]) : 0;
    }
    for (c = 0; c < q->c; c++)
        for (i = 0; i < q->kh; i++) {
            float *d = cols + mmgan__runs_row(L, q, c, i) * ld;
            if (i == 0 && c + 1 < q->c && plane <= MMGAN__PREFETCH_PLANE_MAX)
                mmgan__prefetch_bytes(x + (size_t)(c + 1) * q->h * q->w, plane);
            for (oy = 0; oy < q->ho;) {
                const int iy = oy * q->stride + i - q->pad, iy1 = iy + q->stride;
                float *e = d + MMGAN__AT(oy);
                __m512 v0 = _mm512_setzero_ps(), v1 = v0;
                if (L && (iy < 0 || iy >= q->h)) {   /* rows of padding in runs: never read */
                    oy++;
                    continue;
                }
                if (pairs && oy + 1 < q->ho && MMGAN__AT(oy + 1) == MMGAN__AT(oy) + q->wo) {
                    if (iy >= 0 && iy < q->h) v0 = _mm512_maskz_loadu_ps(m0, x + ((size_t)c * q->h + iy) * q->w);
                    if (iy1 >= 0 && iy1 < q->h) v1 = _mm512_maskz_loadu_ps(m0, x + ((size_t)c * q->h + iy1) * q->w);
                    for (j = 0; j < q->kw; j++)
                        _mm512_mask_storeu_ps(e + (size_t)j * ld, mo2, _mm512_maskz_permutex2var_ps(m2[j], v0, idx2[j], v1));
                    oy += 2;
                    continue;
                }
                if (iy >= 0 && iy < q->h) {
                    const float *r = x + ((size_t)c * q->h + iy) * q->w;
                    v0 = _mm512_maskz_loadu_ps(m0, r);
                    if (m1) v1 = _mm512_maskz_loadu_ps(m1, r + 16);
                }
                for (j = 0; j < q->kw; j++)
                    _mm512_mask_storeu_ps(e + (size_t)j * ld, mo, _mm512_maskz_permutex2var_ps(m[j], v0, idx[j], v1));
                oy++;
            }
        }
#undef MMGAN__AT
}

/* Geometries mmgan__col2im_rows folds 4-wide windows for, unrolled (below). */
#define MMGAN__PUT4_FITS(q) ((q)->kw == 4 && (q)->w <= 16 && (q)->ho * (q)->wo >= 16)

/* The index vectors and masks of a 4-wide window's entries (mmgan__win_put). */
typedef struct mmgan__put4 {
    __m512i i0, i1, i2, i3;
    __mmask16 m0, m1, m2, m3, mo;
} mmgan__put4;

/* acc += the four terms of window row sv (entries j = 0..3, rows ld apart)
 * on one image row, in j order.  whole: the rows may be read 16 floats from
 * sv (masked loads throughout made col2im 1.23-1.29x slower). */
MMGAN__INLINE __m512 mmgan__col2im_row4(__m512 acc, const float *sv, size_t ld, int whole, const mmgan__put4 *p)
{
#define MMGAN__T(j) acc = _mm512_mask_add_ps(acc, p->m##j, acc, _mm512_permutexvar_ps(p->i##j, \
        whole ? _mm512_loadu_ps(sv + j * ld) : _mm512_maskz_loadu_ps(p->mo, sv + j * ld)));
    MMGAN__T(0) MMGAN__T(1) MMGAN__T(2) MMGAN__T(3)
#undef MMGAN__T
    return acc;
}

/* Each image value sums its terms in (i, j) order from zero, then the bias:
 * the order of the other paths, so the results are the same bits. */
static void mmgan__col2im_rows(const mmgan__convgeom *q, const float *cols, size_t ld, const float *bias, float *x,
                               const mmgan__runs *L, int img)
{
    __m512i idx[2][16];
    __mmask16 m[2][16];
    const __mmask16 mo = mmgan__mask16(q->wo), m0 = mmgan__mask16(q->w), m1 = mmgan__mask16(q->w - 16);
    size_t at[MMGAN__RUNS_HO];
    int c, i, j, y;
    if (L) mmgan__runs_cols(L, q, img, at);
#define MMGAN__AT(oy) (L ? at[oy] : (size_t)(oy) * q->wo)
    for (j = 0; j < q->kw; j++) m[0][j] = mmgan__win_put(q, j, 0, &idx[0][j]);
    if (MMGAN__PUT4_FITS(q) && q->h <= MMGAN__RUNS_HO && q->kh <= 16) {
        /* 4-wide windows on rows of up to 16 (the DCGAN's 14x14 planes): the
         * terms unrolled, whole-vector loads wherever a row of the matrix
         * follows (at least 16 floats: a matrix row holds hw >= 16 of each
         * image), and four channels at a time, whose sums are four chains of
         * dependent adds rather than one, the window rows that reach each
         * image row (and their columns) listed once for all channels.  Two
         * channels at a time were 1.66x faster than the loop below alone, the
         * 64 -> 128 layer's transpose 1.10-1.17x (one thread); four, with the
         * list, folded the DCGAN's 14x14 planes another 1.33-1.38x faster
         * (one thread, Zen 5). */
        const size_t rows = (size_t)q->c * q->kh * 4, rs = (size_t)(L && L->icj ? 1 : q->kh) * 4;   /* rows a channel apart */
        int tn[MMGAN__RUNS_HO], ti[MMGAN__RUNS_HO][16], u, e;
        size_t tc[MMGAN__RUNS_HO][16];
        mmgan__put4 p;
        p.i0 = idx[0][0]; p.i1 = idx[0][1]; p.i2 = idx[0][2]; p.i3 = idx[0][3];
        p.m0 = m[0][0]; p.m1 = m[0][1]; p.m2 = m[0][2]; p.m3 = m[0][3]; p.mo = mo;
        for (y = 0; y < q->h; y++)
            for (tn[y] = 0, i = 0; i < q->kh; i++) {
                const int t = y + q->pad - i;
                if (t < 0 || t % q->stride || t / q->stride >= q->ho) continue;
                ti[y][tn[y]] = i;
                tc[y][tn[y]++] = MMGAN__AT(t / q->stride);
            }
        for (c = 0; c < q->c; c += 4) {
            const int nc = MMGAN__MIN(4, q->c - c);
            for (y = 0; y < q->h; y++) {
                __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (u = 0; u < tn[y]; u++) {
                    const size_t r0 = mmgan__runs_row(L, q, c, ti[y][u]);
                    const float *sv = cols + r0 * ld + tc[y][u];
                    if (nc == 4) {   /* written out: a test per channel folded 1.5x slower */
                        a0 = mmgan__col2im_row4(a0, sv, ld, r0 + 4 < rows, &p);
                        a1 = mmgan__col2im_row4(a1, sv + rs * ld, ld, r0 + rs + 4 < rows, &p);
                        a2 = mmgan__col2im_row4(a2, sv + 2 * rs * ld, ld, r0 + 2 * rs + 4 < rows, &p);
                        a3 = mmgan__col2im_row4(a3, sv + 3 * rs * ld, ld, r0 + 3 * rs + 4 < rows, &p);
                    } else {   /* the last channels, one at a time */
                        a0 = mmgan__col2im_row4(a0, sv, ld, r0 + 4 < rows, &p);
                        if (nc > 1) a1 = mmgan__col2im_row4(a1, sv + rs * ld, ld, r0 + rs + 4 < rows, &p);
                        if (nc > 2) a2 = mmgan__col2im_row4(a2, sv + 2 * rs * ld, ld, r0 + 2 * rs + 4 < rows, &p);
                    }
                }
                for (e = 0; e < nc; e++) {
                    __m512 v = e == 0 ? a0 : e == 1 ? a1 : e == 2 ? a2 : a3;
                    if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[c + e]));
                    _mm512_mask_storeu_ps(x + ((size_t)(c + e) * q->h + y) * q->w, m0, v);
                }
            }
        }
        return;
    }
    for (j = 0; j < q->kw; j++) m[1][j] = mmgan__win_put(q, j, 1, &idx[1][j]);   /* image lanes 16-31 */
    for (c = 0; c < q->c; c++)
        for (y = 0; y < q->h; y++) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0;
            float *r = x + ((size_t)c * q->h + y) * q->w;
            for (i = 0; i < q->kh; i++) {
                const int t = y + q->pad - i;
                const float *sv;
                if (t < 0 || t % q->stride || t / q->stride >= q->ho) continue;
                sv = cols + mmgan__runs_row(L, q, c, i) * ld + MMGAN__AT(t / q->stride);
                for (j = 0; j < q->kw; j++) {
                    /* lanes without a term are left alone, not given +0: a
                     * -0 (under flush-to-zero) stays -0 as in the loops */
                    const __m512 v = _mm512_maskz_loadu_ps(mo, sv + (size_t)j * ld);
                    a0 = _mm512_mask_add_ps(a0, m[0][j], a0, _mm512_permutexvar_ps(idx[0][j], v));
                    if (m1) a1 = _mm512_mask_add_ps(a1, m[1][j], a1, _mm512_permutexvar_ps(idx[1][j], v));
                }
            }
            if (bias) {
                a0 = _mm512_add_ps(a0, _mm512_set1_ps(bias[c]));
                a1 = _mm512_add_ps(a1, _mm512_set1_ps(bias[c]));
            }
            _mm512_mask_storeu_ps(r, m0, a0);
            if (m1) _mm512_mask_storeu_ps(r + 16, m1, a1);
        }
#undef MMGAN__AT
}
#endif

/* Columns of one image into cols, whose rows are ld floats apart. */
static void mmgan__im2col_any(const mmgan__convgeom *q, const float *x, float *cols, size_t ld)
{
    int c, i, j, oy, ox, s = q->stride;
    const int pw = q->w + 2 * q->pad, ph = q->h + 2 * q->pad;
    if ((size_t)ph * pw <= MMGAN__PLANE_MAX) {
        float plane[MMGAN__PLANE_MAX];
        memset(plane, 0, (size_t)ph * pw * sizeof(float));   /* the border stays 0 for every channel */
        for (c = 0; c < q->c; c++) {
            mmgan__pad_plane(q, x + (size_t)c * q->h * q->w, plane);
            for (i = 0; i < q->kh; i++)
                for (j = 0; j < q->kw; j++) {
                    float *d = cols + (size_t)((c * q->kh + i) * q->kw + j) * ld;
                    for (oy = 0; oy < q->ho; oy++, d += q->wo) {
                        const float *r = plane + (size_t)(oy * s + i) * pw + j;
                        if (s == 1) memcpy(d, r, (size_t)q->wo * sizeof(float));
                        else if (s == 2) mmgan__take_evens(d, r, q->wo);
                        else for (ox = 0; ox < q->wo; ox++) d[ox] = r[ox * s];
                    }
                }
        }
        return;
    }
    for (c = 0; c < q->c; c++)
        for (i = 0; i < q->kh; i++)
            for (j = 0; j < q->kw; j++) {
                float *dst = cols + (size_t)((c * q->kh + i) * q->kw + j) * ld;
                int lo, hi;
                mmgan__conv_span(q, j, &lo, &hi);
                for (oy = 0; oy < q->ho; oy++) {
                    int iy = oy * s - q->pad + i;
                    float *d = dst + oy * q->wo;
                    const float *row = x + ((size_t)c * q->h + (iy < 0 ? 0 : iy)) * q->w;
                    const int off = j - q->pad;   /* input column of ox is ox*s + off */
                    if (iy < 0 || iy >= q->h) {
                        for (ox = 0; ox < q->wo; ox++) d[ox] = 0.0f;
                        continue;
                    }
                    /* Padding on both sides, a bounds-free run in between. */
                    for (ox = 0; ox < lo; ox++) d[ox] = 0.0f;
                    if (s == 1) { if (hi > lo) memcpy(d + lo, row + lo + off, (size_t)(hi - lo) * sizeof(float)); }
                    else if (s == 2) for (ox = lo; ox < hi; ox++) d[ox] = row[2 * ox + off];
                    else for (ox = lo; ox < hi; ox++) d[ox] = row[ox * s + off];
                    for (ox = hi; ox < q->wo; ox++) d[ox] = 0.0f;
                }
            }
}

/* x [C, H, W] = the columns folded back onto the image (im2col's adjoint),
 * plus bias[c] unless bias is NULL.  Each value sums its terms in (i, j, oy)
 * order either way, and the bias last. */
static void mmgan__col2im_any(const mmgan__convgeom *q, const float *cols, size_t ld, const float *bias, float *x)
{
    int c, i, j, oy, ox, s = q->stride;
    const int pw = q->w + 2 * q->pad, ph = q->h + 2 * q->pad;
    if ((size_t)ph * pw <= MMGAN__PLANE_MAX) {
        float plane[MMGAN__PLANE_MAX];
        for (c = 0; c < q->c; c++) {
            memset(plane, 0, (size_t)ph * pw * sizeof(float));
            for (i = 0; i < q->kh; i++)
                for (j = 0; j < q->kw; j++) {
                    const float *sv = cols + (size_t)((c * q->kh + i) * q->kw + j) * ld;
                    for (oy = 0; oy < q->ho; oy++, sv += q->wo) {
                        float *r = plane + (size_t)(oy * s + i) * pw + j;
                        if (s == 1) for (ox = 0; ox < q->wo; ox++) r[ox] += sv[ox];
                        else if (s == 2) mmgan__add_evens(r, sv, q->wo);
                        else for (ox = 0; ox < q->wo; ox++) r[ox * s] += sv[ox];
                    }
                }
            for (i = 0; i < q->h; i++)   /* what fell on the padding is dropped */
                memcpy(x + ((size_t)c * q->h + i) * q->w, plane + (size_t)(i + q->pad) * pw + q->pad,
                       (size_t)q->w * sizeof(float));
            if (bias) {   /* the channel's plane, contiguous and still in L1 */
                float *d = x + (size_t)c * q->h * q->w;
                mmgan__add_bias((size_t)q->h * q->w, d, bias[c], d);
            }
        }
        return;
    }
    memset(x, 0, (size_t)q->c * q->h * q->w * sizeof(float));
    for (c = 0; c < q->c; c++)
        for (i = 0; i < q->kh; i++)
            for (j = 0; j < q->kw; j++) {
                const float *src = cols + (size_t)((c * q->kh + i) * q->kw + j) * ld;
                int lo, hi;
                mmgan__conv_span(q, j, &lo, &hi);
                for (oy = 0; oy < q->ho; oy++) {
                    int iy = oy * s - q->pad + i;
                    const float *sv = src + oy * q->wo;
                    const int off = j - q->pad;
                    float *row;
                    if (iy < 0 || iy >= q->h) continue;
                    row = x + ((size_t)c * q->h + iy) * q->w;
                    if (s == 1) for (ox = lo; ox < hi; ox++) row[ox + off] += sv[ox];
                    else if (s == 2) for (ox = lo; ox < hi; ox++) row[2 * ox + off] += sv[ox];
                    else for (ox = lo; ox < hi; ox++) row[ox * s + off] += sv[ox];
                }
            }
    if (bias)
        for (c = 0; c < q->c; c++) {
            float *d = x + (size_t)c * q->h * q->w;
            mmgan__add_bias((size_t)q->h * q->w, d, bias[c], d);
        }
}

static void mmgan__im2col(const mmgan__convgeom *q, const float *x, float *cols, size_t ld)
{
#if defined(MMGAN__AVX512)
    if (MMGAN__ROWS_FIT(q)) {
        mmgan__im2col_rows(q, x, cols, ld, NULL, 0);
        return;
    }
#endif
    mmgan__im2col_any(q, x, cols, ld);
}

static void mmgan__col2im(const mmgan__convgeom *q, const float *cols, size_t ld, const float *bias, float *x)
{
#if defined(MMGAN__AVX512)
    if (MMGAN__ROWS_FIT(q)) {
        mmgan__col2im_rows(q, cols, ld, bias, x, NULL, 0);
        return;
    }
#endif
    mmgan__col2im_any(q, cols, ld, bias, x);
}

/* The row stride of a chunk's matrices of nb * hw columns: a whole number of
 * 64-byte lines, so that a product reading one in place loads its B panels
 * from line starts (rows of 245 or 490 floats split most loads over two
 * lines).  The DCGAN step 1.4-2.4% faster on 1 and 2 threads (paired runs);
 * its layers 1.03-1.13x on one thread (in one process, loaded). */
static size_t mmgan__chunk_ld(int nb, int hw)
{
    return ((size_t)nb * hw + MMGAN__LINE_FLOATS - 1) / MMGAN__LINE_FLOATS * MMGAN__LINE_FLOATS;
}

/* nb images [nb][ch][hw] <-> a matrix [ch][nb * hw] (rows ld apart), image
 * by image: the image x [ch][hw] into columns [b hw, (b + 1) hw) of m ... */
static void mmgan__image_to_rows(const float *x, int b, int ch, int hw, float *m, size_t ld)
{
    int c;
    for (c = 0; c < ch; c++)
        memcpy(m + (size_t)c * ld + (size_t)b * hw, x + (size_t)c * hw, (size_t)hw * sizeof(float));
}

static void mmgan__batch_to_rows(mmgan_ctx *ctx, const float *x, int nb, int ch, int hw, float *m, size_t ld)
{
    int b;
    (void)ctx;
    MMGAN__PAR_FOR(ctx->threads, (size_t)nb * ch * hw >= MMGAN__PAR_MIN)
    for (b = 0; b < nb; b++) mmgan__image_to_rows(x + (size_t)b * ch * hw, b, ch, hw, m, ld);
}

/* ... and back: columns [b hw, (b + 1) hw) of m into the image x [ch][hw],
 * adding bias[c] to channel c unless bias is NULL. */
static void mmgan__row_to_image(const float *m, size_t ld, int b, int ch, int hw, const float *bias, float *x)
{
    int c;
    for (c = 0; c < ch; c++) {
        float *d = x + (size_t)c * hw;
        const float *src = m + (size_t)c * ld + (size_t)b * hw;
        if (bias) mmgan__add_bias((size_t)hw, src, bias[c], d);
        else memcpy(d, src, (size_t)hw * sizeof(float));
    }
}

static void mmgan__rows_to_batch(mmgan_ctx *ctx, const float *m, size_t ld, int nb, int ch, int hw, const float *bias,
                                 float *x)
{
    int b;
    (void)ctx;
    MMGAN__PAR_FOR(ctx->threads, (size_t)nb * ch * hw >= MMGAN__PAR_MIN)
    for (b = 0; b < nb; b++) mmgan__row_to_image(m, ld, b, ch, hw, bias, x + (size_t)b * ch * hw);
}

/* Columns of images x[0..nb) side by side in cols (rows ld floats apart). */
static void mmgan__im2col_chunk(mmgan_ctx *ctx, const mmgan__convgeom *q, const float *x, int nb, float *cols,
                                size_t ld, size_t img)
{
    const int ckk = q->c * q->kh * q->kw, hw = q->ho * q->wo;
    int b;
    (void)ctx; (void)ckk;   /* read only by the OpenMP clause */
    MMGAN__PAR_FOR(ctx->threads, (size_t)ckk * nb * hw >= MMGAN__PAR_MIN)
    for (b = 0; b < nb; b++) mmgan__im2col(q, x + (size_t)b * img, cols + (size_t)b * hw, ld);
}

/* Scratch floats for n images, o channels on the small side: a chunk of the
 * small side's rows and the column matrix (MMGAN__WS_COLS), or those and the
 * transposed weight gradient (_COLS_T), or the padded images a gathered
 * product reads (_GATHER; it reads the small side in place), or as _COLS
 * with the weights packed group by group (_FOLD, the data gradient), or
 * the padded images and a 16-float vector per pixel (_WDOT). */
#define MMGAN__WS_COLS 0
#define MMGAN__WS_COLS_T 1
#define MMGAN__WS_GATHER 2
#define MMGAN__WS_FOLD 3
#define MMGAN__WS_WDOT 4
#define MMGAN__WS_WRUNS 5

/* On one thread a convolution's column matrix is made and used in groups of
 * channels, each about one k block of rows (256), while they sit in L2: the
 * forward product's k blocks one at a time, each unfolded just before
 * (summed in the same order as one product: C = A0 B0, then C += A1 B1), and
 * the data gradient's rows a group at a time, each folded just after (rows
 * are independent sums).  Made whole, the rows used first had left L2 by the
 * time they were read (the folding had half its samples on those loads):
 * the critic's 64 -> 128 layer 1.07x (forward) and 1.07-1.10x (data
 * gradient) faster, the generator's 256 -> 128 layer 1.00-1.04x.  Products
 * split between threads split worse in pieces (0.77-0.93x), so those stay
 * whole; a thread that takes its own images (mmgan__conv_own, and the
 * products in runs on any number of threads) takes one thread's groups. */
#define MMGAN__GROUP_ROWS 256

/* Channels per group of the data gradient's rows (all of them when threads
 * split the products): at most one block of the GEMM's rows, so that a
 * thread's own product is one block (mmgan__gemm_alone), and never a last
 * group of one row, which the GEMM would take as a matrix-vector product
 * (summed in another order than the same row in a whole block). */
static int mmgan__fold_group(const mmgan__convgeom *q, int threads)
{
    const int kk = q->kh * q->kw, rows = MMGAN__MIN(MMGAN__GROUP_ROWS, mmgan__gemm_kernels[0].mc);
    int g = rows / kk;
    if (threads > 1 || g >= q->c) return q->c;
    if (g < 1) return 1;
    while (kk == 1 && g > 1 && q->c % g == 1) g--;
    return g;
}

/* Channels per group of the forward product's k blocks: whole k blocks only,
 * so that the sums keep their order (all channels when threads split the
 * products). */
static int mmgan__unfold_group(const mmgan__convgeom *q, int threads)
{
    const int kk = q->kh * q->kw, kc = mmgan__gemm_kernels[0].kc;
    return threads > 1 || kc % kk || kc / kk >= q->c ? q->c : kc / kk;
}

/* Floats of the data gradient's weights packed group by group: at most one
 * micro-kernel's rows per group above packing them whole. */
static size_t mmgan__fold_apk_floats(const mmgan__convgeom *q, int o)
{
    const int g = mmgan__fold_group(q, 1), kk = q->kh * q->kw;
    size_t f = 0;
    int c0;
    for (c0 = 0; c0 < q->c; c0 += g)
        f += mmgan__gemm_apk_floats(&mmgan__gemm_kernels[0], MMGAN__MIN(g, q->c - c0) * kk, o);
    return f;
}

#if defined(MMGAN__TEST_HOOKS) && defined(MMGAN__AVX512)
static int mmgan__runs_hits[3];   /* products in runs: forward, data gradient, weight gradient */
static int mmgan__runs_off;       /* nonzero: none in runs */
#endif

/* Whether q's forward products (group: mmgan__unfold_group's) or its data
 * gradient's (mmgan__fold_group's), o channels on the small side, can go in
 * runs (mmgan__runs_of): AVX-512's unfolding and folding (rows in
 * registers), a group's k one block (and o, the data gradient's k, one
 * block too), its rows of one window row whole row panels of the
 * micro-kernel (the data gradient's runs are ranges of C's rows), and at
 * least 3% of the multiply-adds saved.  L: the runs. */
static int mmgan__runs_fit(const mmgan__convgeom *q, int o, int group, mmgan__runs *L)
{
#if defined(MMGAN__AVX512)
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    long used = 0;
    int r;
#if defined(MMGAN__TEST_HOOKS)
    if (mmgan__runs_off) return 0;
#endif
    if (!q->pad || !MMGAN__ROWS_FIT(q) || q->ho > MMGAN__RUNS_HO || q->c * q->kh * q->kw < 64 || o < kr->mr ||
        o > kr->kc || group * q->kh * q->kw > kr->kc || (group * q->kw) % kr->mr || (q->c % group * q->kw) % kr->mr ||
        mmgan__runs_of(q, L) < 2)
        return 0;
    for (r = 0; r < L->n; r++) used += (long)(L->at[r + 1] - L->at[r]) * (L->hi[r] - L->lo[r]);
    return used <= 0.97 * q->ho * q->kh;
#else
    (void)q; (void)o; (void)group; (void)L;
    return 0;
#endif
}

/* Their chunk: the whole number of 16 images nearest the plain chunk, so
 * that every run's columns fill whole vectors on one thread (threads split
 * it: mmgan__runs_threads).  On the DCGAN's 7x7 layers the plain chunks
 * (10 images of the generator's 256 -> 128 layer, 20 of the critic's 64 ->
 * 128) left each run a partial tile:
 * in chunks of 16 images the steps ran 1.020-1.023x faster (40 alternating
 * iterations in one process, Zen 5), their peak memory 1.2-1.3 MiB more. */
static int mmgan__runs_chunk(const mmgan__convgeom *q, int n)
{
    const int nb = (mmgan__conv_chunk(q, n) + 8) / 16 * 16;
    return MMGAN__MIN(MMGAN__MAX(nb, 16), n);
}

/* Whether the products of scratch kind how (mmgan__conv_ws) may go in runs. */
static int mmgan__conv_ws_runs(const mmgan__convgeom *q, int o, int how)
{
    mmgan__runs L;
    return (how == MMGAN__WS_COLS && mmgan__runs_fit(q, o, mmgan__unfold_group(q, 1), &L)) ||
           (how == MMGAN__WS_FOLD && mmgan__runs_fit(q, o, mmgan__fold_group(q, 1), &L));
}

/* The images a chunk's matrices are sized for (scratch, mmgan__conv_ws). */
static int mmgan__conv_ws_chunk(const mmgan__convgeom *q, int n, int o, int how)
{
    const int nb = mmgan__conv_chunk(q, n);
    return mmgan__conv_ws_runs(q, o, how) ? MMGAN__MAX(nb, mmgan__runs_chunk(q, n)) : nb;
}

/* Threads the weight gradient in runs takes at most (each a column matrix
 * of its own in the scratch, untouched by fewer threads). */
#define MMGAN__WRUNS_THREADS 8
/* The weight gradient in runs (mmgan__conv2d_bwd_weight_runs): its scratch,
 * and where its parts lie (at, floats from the start, unless NULL): dw^T, a
 * chunk's gy^T, each thread's image of it, and their column matrices of a
 * group. */
static size_t mmgan__wruns_ws(const mmgan__convgeom *q, int n, int o, size_t *at)
{
    const size_t hw = (size_t)q->ho * q->wo, ckk = (size_t)q->c * q->kh * q->kw, l = MMGAN__LINE_FLOATS;
    const int group = mmgan__unfold_group(q, 1), groups = (q->c + group - 1) / group;
    const size_t nb = (size_t)mmgan__runs_chunk(q, n), rows = (size_t)group * q->kh * q->kw;
    const size_t nt = (size_t)MMGAN__MIN(MMGAN__WRUNS_THREADS, groups);   /* a thread per group at most */
    size_t f = 0;
#define MMGAN__PUT(i, size) do { if (at) at[i] = f; f += ((size) + l - 1) / l * l; } while (0)
    MMGAN__PUT(0, ckk * o);                                  /* dw^T */
    /* a chunk's gy^T; the micro-kernel's loads of its last row run up to
     * 15 floats past it (unmasked, never stored), into the next part */
    MMGAN__PUT(1, nb * hw * o);
    MMGAN__PUT(2, nt * hw * o);                              /* each thread's image of it */
    MMGAN__PUT(3, nt * rows * mmgan__chunk_ld((int)nb, (int)hw));   /* their column matrices */
#undef MMGAN__PUT
    return f;
}

/* Threads in runs (mmgan__runs_threads) each take a matrix of their own,
 * its rows rounded up to whole cache lines: the scratch leaves room for the
 * roundings of this many threads' matrices (more threads take rows of the
 * exact length instead). */
#define MMGAN__RUNS_SLACK 4

/* Floats per row of the scratch's matrix [ckk + o][ld]. */
static size_t mmgan__conv_ws_ld(const mmgan__convgeom *q, int n, int o, int how)
{
    const size_t ld = mmgan__chunk_ld(mmgan__conv_ws_chunk(q, n, o, how), q->ho * q->wo);
    return mmgan__conv_ws_runs(q, o, how) ? ld + (MMGAN__RUNS_SLACK - 1) * MMGAN__LINE_FLOATS : ld;
}

static size_t mmgan__conv_ws(const mmgan__convgeom *q, int n, int o, int how)
{
    size_t nb = (size_t)mmgan__conv_ws_chunk(q, n, o, how), hw = (size_t)q->ho * q->wo, ckk = (size_t)q->c * q->kh * q->kw;
    size_t f = 16, ld = mmgan__conv_ws_ld(q, n, o, how);
    const int packs = mmgan__conv_packs_w(q, n) || mmgan__conv_ws_runs(q, o, how);   /* the weights packed once */
    if (how == MMGAN__WS_WDOT)
        return f + 64 + nb * hw * 16 + nb * q->c * (size_t)(q->h + 2 * q->pad) * (size_t)(q->w + 2 * q->pad);
    if (how == MMGAN__WS_WRUNS) return f + mmgan__wruns_ws(q, n, o, NULL);
    if (how != MMGAN__WS_GATHER) f += ld * ((size_t)o + ckk);
    if (how == MMGAN__WS_FOLD && packs) f += mmgan__fold_apk_floats(q, o);
    if (how == MMGAN__WS_COLS_T) f += ckk * (size_t)o;
    if (how == MMGAN__WS_GATHER && q->pad)
        f += nb * q->c * (size_t)(q->h + 2 * q->pad) * (size_t)(q->w + 2 * q->pad);
    if (how == MMGAN__WS_COLS && packs) f += mmgan__gemm_apk_floats(&mmgan__gemm_kernels[0], o, (int)ckk);
    return f;
}

/* nb images [c][h][w] into zero-padded planes [c][h + 2 pad][w + 2 pad]. */
static void mmgan__pad_images(mmgan_ctx *ctx, const mmgan__convgeom *q, const float *x, int nb, float *xp)
{
    const int pw = q->w + 2 * q->pad, ph = q->h + 2 * q->pad;
    int b;
    (void)ctx;
    MMGAN__PAR_FOR(ctx->threads, (size_t)nb * q->c * ph * pw >= MMGAN__PAR_MIN)
    for (b = 0; b < nb; b++) {
        int c;   /* private to the thread */
        float *d = xp + (size_t)b * q->c * ph * pw;
        memset(d, 0, (size_t)q->c * ph * pw * sizeof(float));
        for (c = 0; c < q->c; c++)
            mmgan__pad_plane(q, x + ((size_t)b * q->c + c) * q->h * q->w, d + (size_t)c * ph * pw);
    }
}

/* The weight gradient is computed transposed for narrow windows (2.6). */
static int mmgan__wgrad_transposed(const mmgan__convgeom *q, int o)
{
    return q->c * q->kh * q->kw < o && !mmgan__gemm_kernels[0].edge;
}

/* ... or, on AVX-512, with a window of up to 16 values as one vector per
 * pixel (mmgan__conv2d_bwd_weight_dot). */
#define MMGAN__WDOT_MAX 16
static int mmgan__wgrad_dot(const mmgan__convgeom *q)
{
#if defined(MMGAN__AVX512)
    return q->c * q->kh * q->kw <= MMGAN__WDOT_MAX;
#else
    (void)q;
    return 0;
#endif
}

#ifdef MMGAN__OMP
/* Column-matrix floats per row that each thread's share of a chunk of
 * images takes on threads (mmgan__conv_own_run): the same for every chunk,
 * so that a thread ahead of the others in the chunks never writes where
 * one behind still reads. */
static size_t mmgan__own_ld(int chunk, int hw, int nt)
{
    return mmgan__chunk_ld((chunk + nt - 1) / nt, hw);
}

/* Thread tid's images [*s, *e) of a chunk of nb, and where in the scratch
 * (floats from its start) its matrix [rows][*ld] lies. */
static size_t mmgan__own_part(size_t rows, int chunk, int nb, int hw, int tid, int nt, int *s, int *e, size_t *ld)
{
    mmgan__range(nb, tid, nt, s, e);
    *ld = mmgan__chunk_ld(*e - *s, hw);
    return (size_t)tid * rows * mmgan__own_ld(chunk, hw, nt);
}

/* Whether the forward or data-gradient products (rows of C each: a group's
 * rows at most) run as one product per thread over that thread's own images
 * (mmgan__conv_own_run): where one thread's is not a matrix-vector product
 * (rows and images' columns 2 or more; mmgan__fold_group leaves no one-row
 * group), so that every column is summed as on one thread.  The whole
 * batch's work must be worth the threads, not one chunk's: the 1-channel
 * layers' chunks (20 images, 16 rows of k) fell below that and went as
 * products split between the threads, three waits a chunk, slower on two
 * threads than on one (two threads, own images against split products:
 * the critic's 1 -> 64 forward 1.44x, the generator's 128 -> 1 data
 * gradient 1.3x, its 128 -> 1 transposed conv 1.15x). */
static int mmgan__conv_own(const mmgan_ctx *ctx, const mmgan__convgeom *q, int n, int o, int rows, int chunk)
{
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    const int hw = q->ho * q->wo, nt = ctx->threads;
    const size_t ckk = (size_t)q->c * q->kh * q->kw;
    if (nt < 2 || rows < 2 || hw < 2 || chunk < nt) return 0;
    if ((double)o * ckk * hw * n < (double)MMGAN_GEMM_MT_MIN * nt) return 0;
    if ((size_t)nt * mmgan__gemm_cols_ws(kr) > ctx->gemm_ws_floats) return 0;
    return (size_t)nt * mmgan__own_ld(chunk, hw, nt) <= mmgan__chunk_ld(mmgan__conv_chunk(q, n), hw);
}

/* The forward or data-gradient (fold) products on threads, each thread
 * unfolding (or reordering), multiplying and then reordering (or folding)
 * only its own images of each chunk, as one thread would, in one thread's
 * channel groups: the column matrix a thread reads was written by that
 * thread (it stays in its core's L2), and no thread waits on another.
 * Splitting each product's rows or columns instead, with B packed together
 * behind barriers, made the critic's 64 -> 128 layer and the generator's
 * data gradient scale 1.3-1.4x on two threads, where the generator's
 * transposed products, whose B needs no unfolding, scaled 1.7-1.8x.  Own
 * images on two threads (in one process, against the split products): the
 * critic's 64 -> 128 forward 1.35-1.51x, the generator's 128 -> 256 data
 * gradient (a conv2d) 1.27-1.31x, the transposed products 1.05x (256 ->
 * 128) and 1.10-1.18x (128 -> 64); on AVX2 1.12-1.28x; the DCGAN step
 * 1.10-1.20x, MAGAN's 1.08-1.11x (paired runs). */
static void mmgan__conv_own_run(mmgan_ctx *ctx, const mmgan__convgeom *q, int n, int o, int chunk, int group, int fold,
                                const float *x, const float *w, const float *apk, const float *bias, float *y,
                                float *ws)
{
    const int ckk = q->c * q->kh * q->kw, kk = q->kh * q->kw, hw = q->ho * q->wo, plane = q->h * q->w;
    const size_t img = (size_t)q->c * plane;
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    MMGAN__PRAGMA(omp parallel num_threads(ctx->threads))
    {
        /* granted fewer threads than the layout was checked for: one does it all */
        const int got = omp_get_num_threads(), nt = got == ctx->threads ? got : 1, tid = omp_get_thread_num();
        float *gws = ctx->gemm_ws + (size_t)tid * mmgan__gemm_cols_ws(kr);
        int b0, b, c0, s, e;
        for (b0 = tid < nt ? 0 : n; b0 < n; b0 += chunk) {
            const int nb = MMGAN__MIN(chunk, n - b0);
            size_t ld, off;
            float *cols = ws + mmgan__own_part((size_t)ckk + o, chunk, nb, hw, tid, nt, &s, &e, &ld);
            float *small = cols + (size_t)ckk * ld;   /* the small side's rows: y's (forward), x's (fold) */
            if (s == e) continue;
            if (fold)
                for (b = s; b < e; b++)
                    mmgan__image_to_rows(x + (size_t)(b0 + b) * o * hw, b - s, o, hw, small, ld);
            for (c0 = 0, off = 0; c0 < q->c; c0 += group) {   /* forward: k blocks in order */
                mmgan__convgeom qg = *q;
                qg.c = MMGAN__MIN(group, q->c - c0);
                if (fold) {
                    mmgan__gemm_alone(kr, 1, qg.c * kk, (e - s) * hw, o, w + (size_t)c0 * kk, ckk, small, (int)ld,
                                      apk ? apk + off : NULL, 0.0f, cols, (int)ld, gws);
                    off += mmgan__gemm_apk_floats(kr, qg.c * kk, o);
                    for (b = s; b < e; b++)
                        mmgan__col2im(&qg, cols + (size_t)(b - s) * hw, ld, bias ? bias + c0 : NULL,
                                      y + (size_t)(b0 + b) * img + (size_t)c0 * plane);
                } else {
                    for (b = s; b < e; b++)
                        mmgan__im2col(&qg, x + (size_t)(b0 + b) * img + (size_t)c0 * plane,
                                      cols + (size_t)(b - s) * hw, ld);
                    mmgan__gemm_alone(kr, 0, o, (e - s) * hw, qg.c * kk, w + (size_t)c0 * kk, ckk, cols, (int)ld,
                                      apk ? apk + mmgan__apk_off(kr, o, c0 * kk, 0, 0) : NULL,
                                      c0 ? 1.0f : 0.0f, small, (int)ld, gws);
                }
            }
            if (!fold)
                for (b = s; b < e; b++)
                    mmgan__row_to_image(small, ld, b - s, o, hw, bias, y + (size_t)(b0 + b) * o * hw);
        }
    }
}
#endif

/* Whether every value is finite: a product skipped for a zero operand must
 * not hide the NaN an Inf or NaN in the other would have made. */
static int mmgan__all_finite(const float *y, size_t n)
{
    size_t i, lo;
    for (lo = 0; lo < n; lo += 4096) {   /* no early exit inside a block */
        size_t hi = n - lo < 4096 ? n : lo + 4096;
#if MMGAN__VN > 1
        /* x - x is 0, or NaN for an Inf or a NaN: summed a vector at a time
         * (gcc -O2 left the test below a float at a time: checking the
         * weights before F(4x4, 2x2) took 1.3% of the generator's layer) */
        mmgan__v acc = MMGAN__VSET(0.0f);
        float lanes[MMGAN__VN], sum = 0.0f;
        int l;
        for (i = lo; i + MMGAN__VN <= hi; i += MMGAN__VN) {
            const mmgan__v v = MMGAN__VLOAD(y + i);
            acc = MMGAN__VADD(acc, MMGAN__VSUB(v, v));
        }
        for (; i < hi; i++) sum += y[i] - y[i];
        MMGAN__VSTORE(lanes, acc);
        for (l = 0; l < MMGAN__VN; l++) sum += lanes[l];
        if (sum != sum) return 0;
#else
        int bad = 0;
        for (i = lo; i < hi; i++) bad |= !(fabsf(y[i]) <= FLT_MAX);
        if (bad) return 0;
#endif
    }
    return 1;
}

#if defined(MMGAN__AVX512)
/* A group's weights for the data gradient, w^T [kb][o] (w from the
 * group's first column), packed as the GEMM packs an A whole (one k block,
 * rows in the micro-kernel's panels), its rows, the group's window
 * entries, in (i, c, j) order.  The panels are filled 16 of w's rows at a
 * time: a panel at a time read all o rows, ckk floats apart (8 KB on the
 * DCGAN's 256 -> 128 layer), a stride that maps them to a few cache sets,
 * so each panel read them again from L3: the packing took 5% of that
 * layer's transposed conv, 2% blocked, the layer 1.02-1.03x faster (one
 * thread, alternating runs). */
#define MMGAN__PACK_WT_ROWS 16

/* Row e of a group's (i, c, j)-ordered rows (qg->c channels): its window
 * entry in (c, i, j) order, as w's rows and dw's columns hold them. */
static size_t mmgan__icj_entry(const mmgan__convgeom *qg, int e)
{
    const int j = e % qg->kw, c = e / qg->kw % qg->c, i = e / qg->kw / qg->c;
    return (size_t)(c * qg->kh + i) * qg->kw + j;
}

static void mmgan__runs_pack_wt(const mmgan__gemm_kernel *kr, const mmgan__convgeom *qg, int o, const float *w,
                                size_t ckk, float *dst)
{
    const int mr = kr->mr, kb = qg->c * qg->kh * qg->kw;
    size_t src[16];
    int r0, ii, p, p0;
    for (p0 = 0; p0 < o; p0 += MMGAN__PACK_WT_ROWS) {
        const int p1 = MMGAN__MIN(o, p0 + MMGAN__PACK_WT_ROWS);
        for (r0 = 0; r0 < kb; r0 += mr) {
            const int live = MMGAN__MIN(mr, kb - r0);
            int quads = mr == 8 && live == 8;   /* the panel's rows two runs of 4 entries (4-wide windows) */
            for (ii = 0; ii < live; ii++) {
                src[ii] = mmgan__icj_entry(qg, r0 + ii);
                quads &= src[ii] == src[ii & ~3] + (size_t)(ii & 3);
            }
            for (p = p0; p < p1; p++) {
                const float *wp = w + (size_t)p * ckk;
                float *d = dst + (size_t)r0 * o + (size_t)p * mr;
                /* two loads and a store for eight scalar moves, which had
                 * left the packing at 0.7% of the DCGAN step: its 256 ->
                 * 128 layer 1.02x faster (one thread, alternating runs) */
                if (quads) {
                    _mm256_storeu_ps(d, _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(wp + src[0])),
                                                             _mm_loadu_ps(wp + src[4]), 1));
                    continue;
                }
                for (ii = 0; ii < live; ii++) d[ii] = wp[src[ii]];
                for (; ii < mr; ii++) d[ii] = 0.0f;
            }
        }
    }
}

/* The micro-kernel's tile (8 x 48, AVX-512) over k in segments: len
 * entries, then skip entries left out, nseg times (a and b at the first
 * entry; A packed, 8 floats an entry; B's rows bs apart).  Each sum runs
 * over its entries in order, as the whole tile's. */
MMGAN__NOINLINE static void mmgan__avx512_tile_seg(int nseg, int len, int skip, const float *a, const float *b,
                                                   ptrdiff_t bs, float *c, ptrdiff_t ldc, float beta, int rows,
                                                   int cols)
{
    const int nv = (cols + 15) >> 4;
    const __mmask16 m0 = mmgan__mask16(cols), m1 = mmgan__mask16(cols - 16), m2 = mmgan__mask16(cols - 32);
    const ptrdiff_t bskip = (ptrdiff_t)skip * bs;
    int s, p;
#define MMGAN__D(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(), c##i##2 = _mm512_setzero_ps();
    MMGAN__ROWS8(MMGAN__D)
#undef MMGAN__D
    if (nv == 1) {
        for (s = 0; s < nseg; s++, a += 8 * skip, b += bskip)
            for (p = 0; p < len; p++, a += 8, b += bs) {
                const __m512 b0 = _mm512_loadu_ps(b);
#define MMGAN__F(i) c##i##0 = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, c##i##0);
                MMGAN__ROWS8(MMGAN__F)
#undef MMGAN__F
            }
    } else if (nv == 2) {
        for (s = 0; s < nseg; s++, a += 8 * skip, b += bskip)
            for (p = 0; p < len; p++, a += 8, b += bs) {
                const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#define MMGAN__F(i) { __m512 ai = _mm512_set1_ps(a[i]); \
                c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); }
                MMGAN__ROWS8(MMGAN__F)
#undef MMGAN__F
            }
    } else {
        for (s = 0; s < nseg; s++, a += 8 * skip, b += bskip)
            for (p = 0; p < len; p++, a += 8, b += bs) {
                const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32);
#define MMGAN__F(i) { __m512 ai = _mm512_set1_ps(a[i]); c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); \
                c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2); }
                MMGAN__ROWS8(MMGAN__F)
#undef MMGAN__F
            }
    }
#define MMGAN__V(i, v, mk) \
    _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mk, beta == 0.0f ? c##i##v \
        : _mm512_add_ps(_mm512_maskz_loadu_ps(mk, c + i * ldc + 16 * v), c##i##v));
#define MMGAN__S(i) if (i < rows) { MMGAN__V(i, 0, m0) if (nv > 1) MMGAN__V(i, 1, m1) if (nv > 2) MMGAN__V(i, 2, m2) }
    MMGAN__ROWS8(MMGAN__S)
#undef MMGAN__S
#undef MMGAN__V
}

/* Products in runs split each chunk's images between threads: a thread
 * unfolds (or reorders) its own images into a matrix of its own, multiplies
 * each run's columns of it and folds (or reorders) them back.  Every column
 * is summed as on one thread, so the results are the same bits on any
 * number of threads.  Threads writing columns side by side in one matrix
 * made the critic's 64 -> 128 forward product 1.20x slower on two threads
 * (their cores passing the lines they shared back and forth), with matrices
 * of their own 1.02x faster than the plain products it replaced. */

#ifdef MMGAN__TEST_HOOKS
static int mmgan__runs_team_seen[3];   /* the team size of the last product in runs, by kind */
static int mmgan__runs_exact;       /* products in runs whose threads took exact rows */
#endif

/* Thread tid's images [*s, *e) of a chunk of nb, its matrix's row stride
 * *ld (rounded to whole lines, or exact), and the row strides of the
 * matrices before it (a matrix [rows][ld] starts rows times that many
 * floats into the scratch). */
static size_t mmgan__runs_part(int nb, int hw, int tid, int nt, int rounded, int *s, int *e, size_t *ld)
{
    size_t before = 0;
    int t, a, b;
    for (t = 0; t < tid; t++) {
        mmgan__range(nb, t, nt, &a, &b);
        before += rounded ? mmgan__chunk_ld(b - a, hw) : (size_t)(b - a) * hw;
    }
    mmgan__range(nb, tid, nt, s, e);
    *ld = rounded ? mmgan__chunk_ld(*e - *s, hw) : (size_t)(*e - *s) * hw;
    return before;
}

/* Thread tid's matrix [rows][*ld] in the scratch ws and its images [*s, *e)
 * of a chunk of nb (none for tid -1, a short team's spare thread). */
static float *mmgan__runs_matrix(float *ws, size_t rows, int nb, int hw, int tid, int nt, int rounded, int *s, int *e,
                                 size_t *ld)
{
    size_t before = 0;
    *s = *e = 0;
    *ld = 0;
    if (tid >= 0) before = mmgan__runs_part(nb, hw, tid, nt, rounded, s, e, ld);
    return ws + rows * before;
}

/* The threads: as many as asked for, up to one per image of a chunk, whose
 * edge-tile buffers (kc x nr, mmgan__runs_tiles) fit the context's GEMM
 * workspace; *rounded where their matrices with rows rounded to whole lines
 * fit rows of cap floats (mmgan__conv_ws_ld; exact rows always fit). */
static int mmgan__runs_threads(const mmgan_ctx *ctx, int chunk, int hw, size_t cap, int *rounded)
{
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    const size_t fit = ctx->gemm_ws_floats / ((size_t)kr->nr * kr->kc);
    int nt = ctx->threads < 2 ? 1 : (size_t)ctx->threads < fit ? ctx->threads : fit > 0 ? (int)fit : 1, s, e;
    size_t ld;
    if (nt > chunk) nt = chunk;
    *rounded = mmgan__runs_part(chunk, hw, nt, nt, 1, &s, &e, &ld) <= cap;
#ifdef MMGAN__TEST_HOOKS
    mmgan__runs_exact += !*rounded;
#endif
    return nt;
}

/* This thread's place in a team asked to be want strong: *nt threads,
 * *tid its index, or -1 where the team came short (one thread then does
 * everything, the others only pass the barriers). */
static void mmgan__runs_team(int want, int *nt, int *tid, int kind)
{
    *nt = 1;
    *tid = 0;
#ifdef MMGAN__OMP
    if (omp_get_num_threads() == want) {
        *nt = want;
        *tid = omp_get_thread_num();
    } else if (omp_get_thread_num() > 0) {
        *tid = -1;
    }
#else
    (void)want;
#endif
#ifdef MMGAN__TEST_HOOKS
    if (*tid == 0) mmgan__runs_team_seen[kind] = *nt;
#else
    (void)kind;
#endif
}

/* The width of the micro-kernel's column panel that starts r columns from
 * the end: nr, but where that would leave fewer than 32 (a 16-wide tile
 * runs at 68% of the 48-wide one's speed, a 32-wide at 97%, one thread,
 * Zen 5), 32 first.  The runs' 112 columns (16 images of a one-row run
 * of 7) go 48 + 32 + 32, not 48 + 48 + 16; each sum is the same. */
static int mmgan__panel_cols(int r, int nr)
{
    return r > nr && r < nr + 32 && nr > 32 ? 32 : MMGAN__MIN(r, nr);
}

/* C (+)= A B over A's rows [r0, r1) and columns [0, n), k in nseg segments
 * of len entries from k0, seg entries apart: A packed as the GEMM packs it
 * whole (one k block of kp entries), B in place (rows ldb apart) but for
 * its partial last panel, packed into bp.  With one segment, the
 * micro-kernel itself. */
static void mmgan__runs_tiles(const mmgan__gemm_kernel *kr, const float *apk, int kp, int k0, int nseg, int len,
                              int seg, int r0, int r1, const float *b, size_t ldb, int n, float beta, float *c,
                              size_t ldc, float *bp)
{
    const int mr = kr->mr, nr = kr->nr, kspan = (nseg - 1) * seg + len;   /* B's rows the segments reach */
    mmgan__gemm_args g;
    int j, r, p, ic, cols;
    memset(&g, 0, sizeof g);
    g.kr = kr;
    g.ldc = (int)ldc;
    g.alpha = 1.0f;
    for (ic = r0; ic < r1; ic += kr->mc)   /* A's rows a block at a time, as the GEMM takes them */
        for (j = 0; j < n; j += cols) {
            const int rend = MMGAN__MIN(r1, ic + kr->mc);
            const float *bb = b + (size_t)k0 * ldb + j;
            ptrdiff_t bs = (ptrdiff_t)ldb;
            cols = mmgan__panel_cols(n - j, nr);
            if (cols % 16) {   /* the micro-kernel reads whole vectors of B's rows */
                for (p = 0; p < kspan; p++) {
                    memcpy(bp + (size_t)p * nr, bb + (size_t)p * ldb, (size_t)cols * sizeof(float));
                    memset(bp + (size_t)p * nr + cols, 0, (size_t)(nr - cols) * sizeof(float));
                }
                bb = bp;
                bs = nr;
            }
            for (r = ic; r < rend; r += mr) {
                const float *ap = apk + (size_t)r * kp + (size_t)k0 * mr;
                float *cp = c + (size_t)r * ldc + j;
                if (nseg == 1) mmgan__gemm_tile(&g, len, ap, bb, bs, cp, beta, MMGAN__MIN(mr, rend - r), cols);
                else mmgan__avx512_tile_seg(nseg, len, seg - len, ap, bb, bs, cp, (ptrdiff_t)ldc, beta,
                                            MMGAN__MIN(mr, rend - r), cols);
            }
        }
}

/* Image b [ch][hw] <-> its columns in a matrix in runs (rows ld apart),
 * plus bias[c] on the way out unless bias is NULL. */
static void mmgan__runs_to_image(const mmgan__runs *L, const float *m, size_t ld, int b, int ch, int wo,
                                 const float *bias, float *x)
{
    const size_t hw = (size_t)L->at[L->n] * wo;
    int c, r;
    for (c = 0; c < ch; c++)
        for (r = 0; r < L->n; r++) {
            const size_t len = (size_t)(L->at[r + 1] - L->at[r]) * wo;
            const float *src = m + (size_t)c * ld + (size_t)L->nb * L->at[r] * wo + (size_t)b * len;
            float *d = x + (size_t)c * hw + (size_t)L->at[r] * wo;
            if (bias) mmgan__add_bias(len, src, bias[c], d);
            else memcpy(d, src, len * sizeof(float));
        }
}

static void mmgan__image_to_runs(const mmgan__runs *L, const float *x, int b, int ch, int wo, float *m, size_t ld)
{
    const size_t hw = (size_t)L->at[L->n] * wo;
    int c, r;
    for (c = 0; c < ch; c++)
        for (r = 0; r < L->n; r++) {
            const size_t len = (size_t)(L->at[r + 1] - L->at[r]) * wo;
            memcpy(m + (size_t)c * ld + (size_t)L->nb * L->at[r] * wo + (size_t)b * len,
                   x + (size_t)c * hw + (size_t)L->at[r] * wo, len * sizeof(float));
        }
}

/* conv2d in runs (for mmgan__conv2d_fwd, on any number of threads): each
 * group of channels unfolded, then each run's columns multiplied over its
 * window rows alone, k in segments of one channel's rows of the window.
 * Each sum drops only products with the padding's zeros and keeps its order
 * otherwise, and adding +-0 leaves a sum as it is, so the results are the
 * same bits as the whole product's but for two cases.  A weight that is an
 * Inf or a NaN makes a NaN of 0: such weights take the whole product
 * (checked by the caller).  And a sum that is -0, its products so small
 * that they rounded to zero, becomes +0 when a +0 is added: the whole
 * product can give +0 where this gives -0 (a zero's sign only, and only
 * without a bias; found by review, not by the tests' data).  Which path a
 * layer takes does not depend on the thread count, so neither does that
 * sign. */
static void mmgan__conv2d_fwd_runs(mmgan_ctx *ctx, const mmgan__convgeom *q, const mmgan__runs *L0, int n, int o,
                                   int chunk, int group, const float *x, const float *apk, const float *bias, float *y,
                                   float *ws, size_t cap)
{
    const int ckk = q->c * q->kh * q->kw, kk = q->kh * q->kw, hw = q->ho * q->wo, plane = q->h * q->w;
    const size_t img = (size_t)q->c * plane;
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    int rounded;
    const int want = mmgan__runs_threads(ctx, chunk, hw, cap, &rounded);
#ifdef MMGAN__TEST_HOOKS
    mmgan__runs_hits[0]++;
#endif
#ifdef MMGAN__OMP
    MMGAN__PRAGMA(omp parallel num_threads(want) if(want > 1))
#endif
    {
        mmgan__runs L = *L0;
        int nt, tid, b0, b, c0, r, s, e;
        float *bp;
        mmgan__runs_team(want, &nt, &tid, 0);
        bp = ctx->gemm_ws + (size_t)(tid > 0 ? tid : 0) * kr->nr * kr->kc;
        for (b0 = 0; b0 < n; b0 += chunk) {
            const int nb = MMGAN__MIN(chunk, n - b0);
            size_t ld;
            float *cols = mmgan__runs_matrix(ws, (size_t)(ckk + o), nb, hw, tid, nt, rounded, &s, &e, &ld);
            float *out = cols + (size_t)ckk * ld;
            L.nb = e - s;
            for (c0 = 0; c0 < q->c && s < e; c0 += group) {
                mmgan__convgeom qg = *q;
                qg.c = MMGAN__MIN(group, q->c - c0);
                for (b = s; b < e; b++)
                    mmgan__im2col_rows(&qg, x + (size_t)(b0 + b) * img + (size_t)c0 * plane, cols, ld, &L, b - s);
                for (r = 0; r < L.n; r++) {
                    const size_t at = (size_t)L.nb * L.at[r] * q->wo;
                    const int span = (L.hi[r] - L.lo[r]) * q->kw;
                    mmgan__runs_tiles(kr, apk + mmgan__apk_off(kr, o, c0 * kk, 0, 0), qg.c * kk, L.lo[r] * q->kw,
                                      span == kk ? 1 : qg.c, span == kk ? qg.c * kk : span, kk, 0, o, cols + at, ld,
                                      L.nb * (L.at[r + 1] - L.at[r]) * q->wo, c0 ? 1.0f : 0.0f, out + at, ld, bp);
                }
            }
            for (b = s; b < e; b++)
                mmgan__runs_to_image(&L, out, ld, b - s, o, q->wo, bias, y + (size_t)(b0 + b) * o * hw);
            if (b0 + chunk < n && n - b0 - chunk < chunk) {
                MMGAN__OMP_BARRIER();   /* a last, smaller chunk lays the matrices out anew */
            }
        }
    }
}

/* conv_transpose2d in runs (for mmgan__conv2d_bwd_data, on any number of
 * threads): per group, each run's columns multiplied into the rows of the
 * window rows inside the image alone, then folded.  The rows left out are
 * those the folding never reads, so the results are the same bits. */
static void mmgan__conv2d_bwd_data_runs(mmgan_ctx *ctx, const mmgan__convgeom *q, const mmgan__runs *L0, int n,
                                        int o, int chunk, int group, const float *x, const float *w, float *apk,
                                        const float *bias, float *y, float *ws, size_t cap)
{
    const int ckk = q->c * q->kh * q->kw, kk = q->kh * q->kw, hw = q->ho * q->wo, plane = q->h * q->w;
    const size_t img = (size_t)q->c * plane;
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    int rounded, c0;
    const int want = mmgan__runs_threads(ctx, chunk, hw, cap, &rounded);
    size_t off;
#ifdef MMGAN__TEST_HOOKS
    mmgan__runs_hits[1]++;
#endif
    for (c0 = 0, off = 0; c0 < q->c; c0 += group) {
        mmgan__convgeom qg = *q;
        qg.c = MMGAN__MIN(group, q->c - c0);
        mmgan__runs_pack_wt(kr, &qg, o, w + (size_t)c0 * kk, (size_t)ckk, apk + off);
        off += mmgan__gemm_apk_floats(kr, qg.c * kk, o);
    }
#ifdef MMGAN__OMP
    MMGAN__PRAGMA(omp parallel num_threads(want) if(want > 1))
#endif
    {
        mmgan__runs L = *L0;
        int nt, tid, b0, b, r, s, e, g0;
        size_t goff;
        float *bp;
        mmgan__runs_team(want, &nt, &tid, 1);
        bp = ctx->gemm_ws + (size_t)(tid > 0 ? tid : 0) * kr->nr * kr->kc;
        L.icj = 1;
        for (b0 = 0; b0 < n; b0 += chunk) {
            const int nb = MMGAN__MIN(chunk, n - b0);
            size_t ld;
            float *cols = mmgan__runs_matrix(ws, (size_t)(ckk + o), nb, hw, tid, nt, rounded, &s, &e, &ld);
            float *in = cols + (size_t)ckk * ld;
            L.nb = e - s;
            for (b = s; b < e; b++) mmgan__image_to_runs(&L, x + (size_t)(b0 + b) * o * hw, b - s, o, q->wo, in, ld);
            for (g0 = 0, goff = 0; g0 < q->c && s < e; g0 += group) {
                mmgan__convgeom qg = *q;
                qg.c = MMGAN__MIN(group, q->c - g0);
                for (r = 0; r < L.n; r++) {
                    const size_t at = (size_t)L.nb * L.at[r] * q->wo;
                    mmgan__runs_tiles(kr, apk + goff, o, 0, 1, o, o, L.lo[r] * qg.c * q->kw, L.hi[r] * qg.c * q->kw,
                                      in + at, ld, L.nb * (L.at[r + 1] - L.at[r]) * q->wo, 0.0f, cols + at, ld, bp);
                }
                goff += mmgan__gemm_apk_floats(kr, qg.c * kk, o);
                for (b = s; b < e; b++)
                    mmgan__col2im_rows(&qg, cols, ld, bias ? bias + g0 : NULL,
                                       y + (size_t)(b0 + b) * img + (size_t)g0 * plane, &L, b - s);
            }
            if (b0 + chunk < n && n - b0 - chunk < chunk) {
                MMGAN__OMP_BARRIER();   /* a last, smaller chunk lays the matrices out anew */
            }
        }
    }
}
#endif

#if MMGAN__WINO
/* The 4x4 stride-2 padding-1 convolution (the DCGAN's 14x14 -> 7x7 layers)
 * and its transpose in Winograd's F(4x4, 2x2).
 * conv2d: split by the parity of its window's rows and columns, it is a
 * 2x2 stride-1 convolution over four phases of the padded image (x's rows
 * and columns 2u + p - 1, p the phase): 4C input channels (phase, c).
 * F(4x4, 2x2), with the points 0, 1, -1, 1/2 and infinity, makes a 4x4
 * tile of output from a 5x5 tile of each phase with 25 products where the
 * window takes 64, the phases summed in the transformed domain: 25 GEMMs
 * M = U V, U [O, 4C] = G g G^T of the weights, V [4C, tiles] = B^T d B of
 * the input tiles, then y = A^T M A.
 * conv_transpose2d (x [N, O, Ho, Wo] -> y [N, C, H, W]): each parity
 * (py, px) of y's rows and columns is a 2x2 stride-1 correlation of x,
 * rows u + py - 1 + a, taps w[3 - 2a - py][3 - 2e - px].  Its tiles start
 * one row (column) earlier in the odd phase, so that every phase's tile
 * reads the same 5x5 of x (rows 4 ty - 1 .. 4 ty + 3): one V [O, tiles],
 * and U [4C, O] (phase, c) with the four phases' taps.
 * A 7x7 output (a phase of 14x14) is 2x2 tiles, its last row and column
 * computed and dropped: 0.51 of the direct products.  The same sums in
 * another order, through transforms that add and scale: the error is about
 * 20 times the direct product's (2-11e-6 of the largest output with 32-256
 * channels, against 2-5e-7).  A value that is not finite spreads across its
 * tile, so where an output is not finite (the weights or the input not
 * finite, or a sum that overflows) the direct product does it all again.
 * A vector holds one value of MMGAN__VN images (the transforms are the same
 * for every tile), and each thread takes whole chunks of images through
 * all three steps in buffers of its own (a prototype whose threads shared
 * V and M ran its transforms 3x slower on two threads).  The chunks, and so
 * every sum, do not depend on the thread count.  Off by default on AVX-512
 * (MMGAN_WINOGRAD), whose products in runs (mmgan__conv2d_fwd_runs) were
 * measured there and this was not; there, with it on, the 4x4 stride-2
 * layers it takes no longer go in runs. */
#define MMGAN__WG_P 25        /* transformed points: 5 x 5 */
#define MMGAN__WINO_THREADS 8 /* threads with buffers of their own, at most */

#if defined(MMGAN__TEST_HOOKS)
static int mmgan__wino_hits[3];   /* products in F(4x4, 2x2): conv2d, conv_transpose2d, weight gradient */
static int mmgan__wino_off;       /* nonzero: none */
#endif

/* Whether q's products on n images (o channels on the small side) go
 * through F(4x4, 2x2): the geometry, outputs up to 16x16 (a chunk's
 * buffers grow with the tiles), channels enough for the GEMMs to pay for
 * the transforms, and 64 tiles or more (4x4 of q's small side), over which
 * the weights' transform pays: 5 images of 7x7 ran 1.2x slower than the
 * direct product, 3 of 16x16 2.7x (one thread, Zen 3). */
static int mmgan__wino_fit(const mmgan__convgeom *q, int n, int o)
{
#if defined(MMGAN__TEST_HOOKS)
    if (mmgan__wino_off) return 0;
#endif
    return q->kh == 4 && q->kw == 4 && q->stride == 2 && q->pad == 1 && q->c >= 32 && o >= 32 && q->ho >= 2 &&
           q->wo >= 2 && q->ho <= 16 && q->wo <= 16 && (long)n * ((q->ho + 3) / 4) * ((q->wo + 3) / 4) >= 64;
}

/* The shape of one product (tr: the transpose): tiles t1 a row of them, tt
 * in all; its input and output planes; images a chunk (a whole number of
 * vectors, chunks of about 8 images, as even as they come) and chunks for
 * n images.  Chunks of 8 ran as fast as chunks of 32 or faster (one Zen 3
 * thread: the critic's 64 -> 128 products 1.03-1.06x, the generator's
 * 256 -> 128 1.07x) in a quarter of the buffers. */
typedef struct mmgan__wgeo {
    int t1, tt, hi, wi, hq, wq, imgs, chunks;
} mmgan__wgeo;

static mmgan__wgeo mmgan__wino_geo(const mmgan__convgeom *q, int tr, int n)
{
    mmgan__wgeo e;
    const int cap = 8;
    if (tr) {   /* the odd phase's tiles start a row earlier: one more row to cover */
        e.t1 = (MMGAN__MAX((q->w + 1) / 2, q->w / 2 + 1) + 3) / 4;
        e.tt = (MMGAN__MAX((q->h + 1) / 2, q->h / 2 + 1) + 3) / 4 * e.t1;
        e.hi = q->ho; e.wi = q->wo; e.hq = q->h; e.wq = q->w;
    } else {
        e.t1 = (q->wo + 3) / 4;
        e.tt = (q->ho + 3) / 4 * e.t1;
        e.hi = q->h; e.wi = q->w; e.hq = q->ho; e.wq = q->wo;
    }
    e.chunks = (n + cap - 1) / cap;
    e.imgs = ((n + e.chunks - 1) / e.chunks + MMGAN__VN - 1) / MMGAN__VN * MMGAN__VN;
    return e;
}

/* Its scratch for n images, ci channels in and co out, on up to threads
 * threads, and where its parts lie (at, floats from the start, unless
 * NULL; *per: one thread's buffers): U [phase][25][co][ci] packed, then
 * each thread's V [ci][25][cols] (U's row panels made there first), M [co]
 * [25][cols], a channel of x's images [hi][wi][VN] and one of y's [hq][wq]
 * [VN].  A phase at a time (conv2d: V's phase, M summed over them, x's
 * images laid out again for each; the transpose: M's phase): MAGAN's peak
 * memory, 10x under PyTorch's before F(4x4, 2x2), stays so. */
static size_t mmgan__wino_ws(const mmgan__convgeom *q, int tr, int n, int ci, int co, int threads, size_t *at,
                             size_t *per)
{
    const mmgan__wgeo e = mmgan__wino_geo(q, tr, n);
    const size_t l = MMGAN__LINE_FLOATS, cols = (size_t)e.tt * e.imgs;
    const int nt = MMGAN__MAX(1, MMGAN__MIN(threads, MMGAN__MIN(MMGAN__WINO_THREADS, e.chunks)));
    size_t f = 0, mine;
    int t;
#define MMGAN__PUT(i, size) do { if (at) at[i] = f; f += ((size) + l - 1) / l * l; } while (0)
    MMGAN__PUT(0, 4 * MMGAN__WG_P * mmgan__gemm_apk_floats(&mmgan__gemm_kernels[0], co, ci));
    mine = f;
    MMGAN__PUT(1, (size_t)ci * MMGAN__MAX(MMGAN__WG_P * cols,   /* V, or a row panel of U and its taps */
                                         (size_t)(MMGAN__WG_P + 16) * mmgan__gemm_kernels[0].mr));
    MMGAN__PUT(2, MMGAN__WG_P * (size_t)co * cols);
    MMGAN__PUT(3, (size_t)e.hi * e.wi * MMGAN__VN);
    MMGAN__PUT(4, (size_t)e.hq * e.wq * MMGAN__VN);
#undef MMGAN__PUT
    mine = f - mine;
    if (per) *per = mine;
    for (t = 1; t < nt; t++) f += mine;
    return f;
}

/* G (5 x 2) of F(4x4, 2x2) for the points 0, 1, -1, 1/2, infinity, its
 * rows scaled so that B^T is in small integers. */
static const float mmgan__wg_g[5][2] = {{1.0f, 0.0f}, {0.5f, 0.5f}, {1.0f / 6, -1.0f / 6}, {8.0f / 3, 4.0f / 3},
                                        {0.0f, 0.5f}};

/* d = B^T d over five vectors s apart (in place), exact in float for
 * integers: B^T's rows [1 -2 -1 2 0], [0 -1 1 2 0], [0 -1 3 -2 0],
 * [0 1 0 -1 0], [0 1 -2 -1 2]. */
MMGAN__INLINE void mmgan__wg_bt(mmgan__v *d, int s)
{
    const mmgan__v d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s];
    const mmgan__v two = MMGAN__VSET(2.0f), e = MMGAN__VSUB(d1, d3);
    d[0] = MMGAN__VFMA(two, MMGAN__VSUB(d3, d1), MMGAN__VSUB(d0, d2));
    d[s] = MMGAN__VFMA(two, d3, MMGAN__VSUB(d2, d1));
    d[2 * s] = MMGAN__VSUB(MMGAN__VMUL(MMGAN__VSET(3.0f), d2), MMGAN__VFMA(two, d3, d1));
    d[3 * s] = e;
    d[4 * s] = MMGAN__VFMA(two, MMGAN__VSUB(d4, d2), e);
}

/* y = A^T m over five vectors (s apart) into four (t apart): A^T's rows
 * [1 1 1 1 0], [0 1 -1 1/2 0], [0 1 1 1/4 0], [0 1 -1 1/8 1]. */
MMGAN__INLINE void mmgan__wg_at(const mmgan__v *m, int s, mmgan__v *y, int t)
{
    const mmgan__v m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s];
    const mmgan__v a = MMGAN__VADD(m1, m2), b = MMGAN__VSUB(m1, m2);
    y[0] = MMGAN__VADD(MMGAN__VADD(m0, a), m3);
    y[t] = MMGAN__VFMA(MMGAN__VSET(0.5f), m3, b);
    y[2 * t] = MMGAN__VFMA(MMGAN__VSET(0.25f), m3, a);
    y[3 * t] = MMGAN__VADD(MMGAN__VFMA(MMGAN__VSET(0.125f), m3, b), m4);
}

/* dst [cols][rows] (rows ldd apart) = src [rows][cols] (lds apart). */
static void mmgan__wg_transpose(const float *src, size_t rows, size_t cols, size_t lds, float *dst, size_t ldd)
{
    size_t r = 0, c, c0 = 0;
#ifdef MMGAN__TB
    const size_t rb = rows - rows % MMGAN__TB;
    c0 = cols - cols % MMGAN__TB;
    for (; r < rb; r += MMGAN__TB)
        for (c = 0; c < c0; c += MMGAN__TB) mmgan__tr_block(src + r * lds + c, lds, dst + c * ldd + r, ldd);
    for (r = 0; r < rb; r++)   /* the last columns of the blocks' rows */
        for (c = c0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
    r = rb;
#endif
    (void)c0;
    for (; r < rows; r++)
        for (c = 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

/* The n <= MMGAN__VN floats at p as a vector, its lanes past n zeros. */
MMGAN__INLINE mmgan__v mmgan__wg_load(const float *p, int n)
{
    float buf[MMGAN__VN];
    int l;
    if (n == MMGAN__VN) return MMGAN__VLOAD(p);
    for (l = 0; l < MMGAN__VN; l++) buf[l] = l < n ? p[l] : 0.0f;
    return MMGAN__VLOAD(buf);
}

/* v's first n lanes to p. */
MMGAN__INLINE void mmgan__wg_store(float *p, mmgan__v v, int n)
{
    float buf[MMGAN__VN];
    int l;
    if (n == MMGAN__VN) {
        MMGAN__VSTORE(p, v);
        return;
    }
    MMGAN__VSTORE(buf, v);
    for (l = 0; l < n; l++) p[l] = buf[l];
}

/* Whether no lane of chk (sums of o - o over the outputs o) is a NaN: every
 * output finite. */
MMGAN__INLINE int mmgan__wg_finite(mmgan__v chk)
{
    float lanes[MMGAN__VN];
    MMGAN__VSTORE(lanes, chk);
    return mmgan__all_finite(lanes, MMGAN__VN);
}

/* The 25 points x * 5 + y of G g G^T, dst[pt * upt + i] for i < len,
 * from the 2x2 kernels g [a][e] = src[2 a + e][i]: a vector of them at a
 * time, the last one partial. */
static void mmgan__wg_u_row(const float *const *src, int len, float *dst, size_t upt)
{
    int i, l, x, y;
    for (i = 0; i < len; i += MMGAN__VN) {
        const int n = MMGAN__MIN(MMGAN__VN, len - i);
        mmgan__v t[4], h[5][2];
        for (l = 0; l < 4; l++) t[l] = mmgan__wg_load(src[l] + i, n);
        for (x = 0; x < 5; x++) {   /* h = G g (5 x 2), then G g G^T = h G^T */
            const mmgan__v g0 = MMGAN__VSET(mmgan__wg_g[x][0]), g1 = MMGAN__VSET(mmgan__wg_g[x][1]);
            h[x][0] = MMGAN__VFMA(g1, t[2], MMGAN__VMUL(g0, t[0]));
            h[x][1] = MMGAN__VFMA(g1, t[3], MMGAN__VMUL(g0, t[1]));
        }
        for (x = 0; x < 5; x++)
            for (y = 0; y < 5; y++) {
                const mmgan__v e = MMGAN__VFMA(MMGAN__VSET(mmgan__wg_g[y][1]), h[x][1],
                                               MMGAN__VMUL(MMGAN__VSET(mmgan__wg_g[y][0]), h[x][0]));
                mmgan__wg_store(dst + (size_t)(x * 5 + y) * upt + i, e, n);
            }
    }
}

/* U's row panel p (the micro-kernel's mr rows) for the four phases (of
 * x's rows and columns for conv2d, y's for the transpose), [25][co][ci]
 * each, packed for the micro-kernel, each point apart (upk_pt floats):
 * the panel's 16 taps gathered out of w [O, C, 4, 4] into tmp [mr][16][ci]
 * first (after U's rows), a phase's rows then made row-major in tmp
 * [25][mr][ci] and packed.  conv2d (ci = C, co = O): row oc, column c, taps
 * (2a + py, 2e + px).  The transpose (ci = O, co = C): row c, column o,
 * taps (3 - 2a - py, 3 - 2e - px).  The taps a panel at a time, w read in
 * runs of 16 floats (conv2d) or of the panel's 6 x 16 (the transpose): a
 * phase's four taps a row at a time, the transpose's rows 8 KB apart, had
 * taken 60% of the time of making U, 1.5 of the generator's 26 ms layer. */
static void mmgan__wino_pack_u(int tr, int ci, int co, const float *w, int p, float *tmp, float *upk, size_t upk_pt)
{
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    const int mr = kr->mr, r0 = p * mr, n = MMGAN__MIN(mr, co - r0);
    float *gat = tmp + (size_t)MMGAN__WG_P * mr * ci;
    mmgan__gemm_args g;
    int r, pt, pc, a, e, ph;
    for (r = 0; r < n; r++)   /* [ci][16] to [16][ci] */
        mmgan__wg_transpose(w + (tr ? (size_t)(r0 + r) * 16 : (size_t)(r0 + r) * ci * 16), (size_t)ci, 16,
                            tr ? (size_t)co * 16 : 16, gat + (size_t)r * 16 * ci, (size_t)ci);
    memset(&g, 0, sizeof g);
    g.kr = kr;
    g.lda = ci;
    for (ph = 0; ph < 4; ph++) {
        const int py = ph >> 1, px = ph & 1;
        for (r = 0; r < n; r++) {
            const float *src[4];
            for (a = 0; a < 2; a++)
                for (e = 0; e < 2; e++) {
                    const int tap = tr ? (3 - 2 * a - py) * 4 + 3 - 2 * e - px : (2 * a + py) * 4 + 2 * e + px;
                    src[2 * a + e] = gat + ((size_t)r * 16 + tap) * ci;
                }
            mmgan__wg_u_row(src, ci, tmp + (size_t)r * ci, (size_t)mr * ci);
        }
        for (pt = 0; pt < MMGAN__WG_P; pt++)
            for (pc = 0; pc < ci; pc += kr->kc) {
                const int kc = MMGAN__MIN(kr->kc, ci - pc);
                g.a = tmp + (size_t)pt * mr * ci;
                g.ap = upk + ((size_t)ph * MMGAN__WG_P + pt) * upk_pt + mmgan__apk_off(kr, co, pc, r0, kc);
                mmgan__pack_a(&g, 0, n, pc, kc, 0, 1);
            }
    }
}

/* xs [p][VN] = the planes (p floats) of cnt images, stride floats apart,
 * images last; the lanes past cnt zeros. */
static void mmgan__wg_images(const float *src, int cnt, int p, size_t stride, float *xs)
{
    int r, s;
    if (cnt == MMGAN__VN) {
        mmgan__wg_transpose(src, MMGAN__VN, (size_t)p, stride, xs, MMGAN__VN);
        return;
    }
    memset(xs, 0, (size_t)p * MMGAN__VN * sizeof(float));
    for (r = 0; r < cnt; r++)
        for (s = 0; s < p; s++) xs[(size_t)s * MMGAN__VN + r] = src[(size_t)r * stride + s];
}

/* d = B^T t B for the 5x5 tile t of xs [hi][wi][VN] whose rows are row0 +
 * rs r and columns col0 + cs s (the padding's zeros outside). */
static void mmgan__wg_tile_v(const float *xs, int hi, int wi, int row0, int rs, int col0, int cs, mmgan__v *d)
{
    int r, s;
    for (r = 0; r < 5; r++) {
        const int row = row0 + rs * r;
        for (s = 0; s < 5; s++) {
            const int col = col0 + cs * s;
            d[r * 5 + s] = row >= 0 && row < hi && col >= 0 && col < wi
                               ? MMGAN__VLOAD(xs + ((size_t)row * wi + col) * MMGAN__VN)
                               : MMGAN__VSET(0.0f);
        }
    }
    for (s = 0; s < 5; s++) mmgan__wg_bt(d + s, 5);     /* B^T t: down the columns */
    for (r = 0; r < 5; r++) mmgan__wg_bt(d + 5 * r, 1);   /* (B^T t) B: along the rows */
}

/* V for a chunk (images [b0, b0 + nb)): 5x5 tiles of x (of its phase ph
 * for conv2d), a vector of images, the padding's zeros outside, the images
 * past nb zeros too; V [ci][25][(tile, image)], rows ld apart. */
static void mmgan__wino_v(const mmgan__wgeo *e, int tr, int ph, int ci, int b0, int nb, const float *x, float *v,
                          size_t ld, float *xs)
{
    const int nbp = e->imgs, cols = e->tt * nbp, vn = MMGAN__VN, pin = e->hi * e->wi;
    int cc, g, t, pt;
    for (cc = 0; cc < ci; cc++)
        for (g = 0; g < nbp; g += vn) {
            mmgan__wg_images(x + ((size_t)(b0 + g) * ci + cc) * pin, MMGAN__MAX(0, MMGAN__MIN(vn, nb - g)), pin,
                             (size_t)ci * pin, xs);
            for (t = 0; t < e->tt; t++) {
                const int ty = t / e->t1, tx = t % e->t1;
                float *dst = v + (size_t)cc * ld + (size_t)t * nbp + g;
                mmgan__v d[MMGAN__WG_P];
                if (tr) mmgan__wg_tile_v(xs, e->hi, e->wi, 4 * ty - 1, 1, 4 * tx - 1, 1, d);
                else mmgan__wg_tile_v(xs, e->hi, e->wi, 8 * ty + (ph >> 1) - 1, 2, 8 * tx + (ph & 1) - 1, 2, d);
                for (pt = 0; pt < MMGAN__WG_P; pt++) MMGAN__VSTORE(dst + (size_t)pt * cols, d[pt]);
            }
        }
}

/* One chunk (images [b0, b0 + nb)) of a product (tr: the transpose; ci
 * channels in, co out) in one thread's buffers: V, 25 GEMMs a phase (gws:
 * the thread's GEMM workspace), y.  0 where an output is not finite. */
static int mmgan__wino_chunk(const mmgan__wgeo *e, int tr, int ci, int co, int b0, int nb, const float *x,
                             const float *upk, const float *bias, float *y, float *v, float *m, float *xs, float *ys,
                             float *gws)
{
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    const int nbp = e->imgs, cols = e->tt * nbp, vn = MMGAN__VN, pout = e->hq * e->wq;
    const size_t ld = (size_t)MMGAN__WG_P * cols, upk_pt = mmgan__gemm_apk_floats(kr, co, ci);
    mmgan__v chk = MMGAN__VSET(0.0f);
    int cc, g, ph, t, r, s, pt, l;
    if (tr) mmgan__wino_v(e, tr, 0, ci, b0, nb, x, v, ld, xs);   /* one V for the four phases */
    for (ph = 0; ph < 4; ph++) {
        if (!tr) mmgan__wino_v(e, tr, ph, ci, b0, nb, x, v, ld, xs);
        /* M (+)= U V: conv2d sums the phases, the transpose takes each apart */
        for (pt = 0; pt < MMGAN__WG_P; pt++)
            mmgan__gemm_alone(kr, 0, co, cols, ci, NULL, ci, v + (size_t)pt * cols, (int)ld,
                              upk + ((size_t)ph * MMGAN__WG_P + pt) * upk_pt, !tr && ph ? 1.0f : 0.0f,
                              m + (size_t)pt * cols, (int)ld, gws);
        if (!tr && ph < 3) continue;
        /* y = A^T M A (+ bias), a vector of images: conv2d's tiles into ys
         * [hq][wq][VN] and then each image's plane, the transpose's phase
         * (its odd tiles a row and a column earlier) straight into y */
        for (cc = 0; cc < co; cc++)
            for (g = 0; g < nbp && g < nb; g += vn) {
                const int cnt = MMGAN__MIN(vn, nb - g);
                const mmgan__v bv = MMGAN__VSET(bias ? bias[cc] : 0.0f);
                float *dst = y + ((size_t)(b0 + g) * co + cc) * pout;
                for (t = 0; t < e->tt; t++) {
                    const int ty = t / e->t1, tx = t % e->t1, py = ph >> 1, px = ph & 1;
                    const float *src = m + (size_t)cc * ld + (size_t)t * nbp + g;
                    mmgan__v mm[MMGAN__WG_P], h[20], out[16];
                    for (pt = 0; pt < MMGAN__WG_P; pt++) mm[pt] = MMGAN__VLOAD(src + (size_t)pt * cols);
                    for (r = 0; r < 5; r++) mmgan__wg_at(mm + r, 5, h + r, 5);            /* A^T m: h [4][5] */
                    for (r = 0; r < 4; r++) mmgan__wg_at(h + 5 * r, 1, out + 4 * r, 1);   /* (A^T m) A */
                    for (r = 0; r < 4; r++) {
                        const int yy = tr ? 2 * (4 * ty + r - py) + py : 4 * ty + r;
                        if (yy < 0 || yy >= e->hq) continue;
                        for (s = 0; s < 4; s++) {
                            const int xx = tr ? 2 * (4 * tx + s - px) + px : 4 * tx + s;
                            mmgan__v o;
                            if (xx < 0 || xx >= e->wq) continue;
                            o = MMGAN__VADD(out[4 * r + s], bv);
                            chk = MMGAN__VADD(chk, MMGAN__VSUB(o, o));   /* NaN from here on if o is not finite */
                            if (tr) {
                                float lanes[MMGAN__VN];
                                MMGAN__VSTORE(lanes, o);
                                for (l = 0; l < cnt; l++) dst[(size_t)l * co * pout + (size_t)yy * e->wq + xx] = lanes[l];
                            } else {
                                MMGAN__VSTORE(ys + ((size_t)yy * e->wq + xx) * vn, o);
                            }
                        }
                    }
                }
                if (tr) continue;
                if (cnt == vn) {
                    mmgan__wg_transpose(ys, (size_t)pout, (size_t)vn, (size_t)vn, dst, (size_t)co * pout);
                } else {
                    for (r = 0; r < cnt; r++)
                        for (s = 0; s < pout; s++) dst[(size_t)r * co * pout + s] = ys[(size_t)s * vn + r];
                }
            }
    }
    return mmgan__wg_finite(chk);
}

/* conv2d (tr 0: x [N, C, H, W] -> y [N, O, Ho, Wo], + bias [O]) or
 * conv_transpose2d (tr 1: x [N, O, Ho, Wo] -> y [N, C, H, W], + bias [C]),
 * w [O, C, 4, 4], in F(4x4, 2x2); 0 (y partly written) where an output is
 * not finite, for the direct product to redo. */
static int mmgan__conv2d_wino(mmgan_ctx *ctx, const mmgan__convgeom *q, int tr, int n, int o, const float *x,
                              const float *w, const float *bias, float *y, float *ws, size_t cap)
{
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    const mmgan__wgeo e = mmgan__wino_geo(q, tr, n);
    const int ci = tr ? o : q->c, co = tr ? q->c : o, panels = (co + kr->mr - 1) / kr->mr;
    const size_t gper = mmgan__gemm_cols_ws(kr), upk_pt = mmgan__gemm_apk_floats(kr, co, ci);
    size_t at[5], per;
    const size_t fixed = mmgan__wino_ws(q, tr, n, ci, co, 1, at, &per) - per;
    /* threads: as many as the chunks and the workspaces take, and as the
     * scratch holds buffers for (sized by the thread count when the plan
     * was made) */
    const int want = (int)MMGAN__MIN(MMGAN__MIN((size_t)MMGAN__MIN(ctx->threads, MMGAN__MIN(MMGAN__WINO_THREADS, e.chunks)),
                                                MMGAN__MAX((size_t)1, ctx->gemm_ws_floats / gper)),
                                     MMGAN__MAX((size_t)1, (cap > fixed ? cap - fixed : 0) / per));
    int bad = 0;
    float *upk = ws + at[0];
    MMGAN_ASSERT(at[2] - at[1] >= (size_t)(MMGAN__WG_P + 16) * kr->mr * ci);
    /* a plan made without it (a test's switch) has no room for it */
    if (cap < fixed + per || !mmgan__all_finite(w, (size_t)o * q->c * 16)) return 0;
#ifdef MMGAN__TEST_HOOKS
    mmgan__wino_hits[tr]++;
#endif
#ifdef MMGAN__OMP
    MMGAN__PRAGMA(omp parallel num_threads(want) if(want > 1) reduction(|:bad))
#endif
    {
        int nt = 1, tid = 0, ch, p;
        float *mine;
#ifdef MMGAN__OMP
        if (omp_get_num_threads() == want) {
            nt = want;
            tid = omp_get_thread_num();
        } else if (omp_get_thread_num() > 0) {
            nt = 0;   /* a short team: the first thread does it all */
        }
#endif
        mine = ws + at[1] + (size_t)tid * per;
        for (p = tid; nt && p < panels; p += nt)   /* U, in V's place */
            mmgan__wino_pack_u(tr, ci, co, w, p, mine, upk, upk_pt);
        MMGAN__OMP_BARRIER();   /* U whole before any chunk reads it */
        for (ch = tid; nt && ch < e.chunks; ch += nt) {
            const int b0 = ch * e.imgs;
            bad |= !mmgan__wino_chunk(&e, tr, ci, co, b0, MMGAN__MIN(e.imgs, n - b0), x, upk, bias, y, mine,
                                      mine + (at[2] - at[1]), mine + (at[3] - at[1]), mine + (at[4] - at[1]),
                                      ctx->gemm_ws + (size_t)tid * gper);
        }
    }
    (void)want;
    return !bad;
}

/* The weight gradient of the same conv2d in F(4x4, 2x2): y's tile is
 * A^T (sum_k U[k] V[k]) A point by point, so dU [25][O][4C] = sum over the
 * tiles of (A gy A^T) V^T (gy's 4x4 tiles, zeros past Ho and Wo, to 5x5),
 * and dw's 2x2 taps of each phase are G^T dU G.  A chunk of images at a
 * time, in order: V and A gy A^T (threads over channels), then 25 GEMMs
 * over its tiles into dU (threads inside each, splitting its outputs: every
 * sum on one thread, in one order, whatever the thread count); at the end
 * dw.  Chunks of 8 images (32 columns of 7x7 outputs): the whole batch at
 * once took 2.6x the memory (MAGAN's peak 7.6x under PyTorch's instead of
 * 10x), and the steps ran no faster.  Scratch: V [4C][25][cols], A gy A^T
 * [O][25][cols], dU [25][O][4C], and each of up to MMGAN__WINO_THREADS
 * threads' images of a channel; dw^T [O][16][C] at the end where V was. */
#define MMGAN__WINO_W_IMGS 8

static size_t mmgan__wino_w_ws(const mmgan__convgeom *q, int n, int o, size_t *at)
{
    const size_t l = MMGAN__LINE_FLOATS, k = 4 * (size_t)q->c, tt = (size_t)((q->ho + 3) / 4) * ((q->wo + 3) / 4);
    const size_t cols = tt * (((size_t)MMGAN__MIN(n, MMGAN__WINO_W_IMGS) + MMGAN__VN - 1) / MMGAN__VN * MMGAN__VN);
    size_t f = 0;
#define MMGAN__PUT(i, size) do { if (at) at[i] = f; f += ((size) + l - 1) / l * l; } while (0)
    MMGAN__PUT(0, MMGAN__MAX(k * MMGAN__WG_P * cols, 16 * (size_t)o * q->c));   /* V, then dw^T */
    MMGAN__PUT(1, (size_t)o * MMGAN__WG_P * cols);
    MMGAN__PUT(2, MMGAN__WG_P * (size_t)o * k);
    MMGAN__PUT(3, MMGAN__WINO_THREADS * (size_t)MMGAN__MAX(q->h * q->w, q->ho * q->wo) * MMGAN__VN);
#undef MMGAN__PUT
    return f;
}

/* d = A m over four vectors s apart into five (t apart): A^T's columns,
 * [1 0 0 0], [1 1 1 1], [1 -1 1 -1], [1 1/2 1/4 1/8], [0 0 0 1]. */
MMGAN__INLINE void mmgan__wg_a(const mmgan__v *m, int s, mmgan__v *d, int t)
{
    const mmgan__v m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s];
    const mmgan__v a = MMGAN__VADD(m0, m2), b = MMGAN__VADD(m1, m3);
    d[0] = m0;
    d[t] = MMGAN__VADD(a, b);
    d[2 * t] = MMGAN__VSUB(a, b);
    d[3 * t] = MMGAN__VFMA(MMGAN__VSET(0.125f), m3, MMGAN__VFMA(MMGAN__VSET(0.25f), m2,
                                                                MMGAN__VFMA(MMGAN__VSET(0.5f), m1, m0)));
    d[4 * t] = m3;
}

/* dw [O, C, 4, 4] = wgrad(x [N, C, H, W], gy [N, O, Ho, Wo]) in F(4x4, 2x2);
 * 0 where a value of dw is not finite, for the direct product to redo. */
static int mmgan__conv2d_bwd_weight_wino(mmgan_ctx *ctx, const mmgan__convgeom *q, int n, int o, const float *x,
                                         const float *gy, float *dw, float *ws, size_t cap)
{
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    const int c = q->c, k = 4 * c, vn = MMGAN__VN, t1 = (q->wo + 3) / 4, tt = ((q->ho + 3) / 4) * t1;
    const int pin = q->h * q->w, pout = q->ho * q->wo;
    size_t at[4];
    float *v, *gm, *du, *dwt, *xs0;
    int i, b0, bad = 0;
    if (mmgan__wino_w_ws(q, n, o, at) > cap) return 0;   /* a plan made without it (a test's switch) */
    v = dwt = ws + at[0]; gm = ws + at[1]; du = ws + at[2]; xs0 = ws + at[3];
#ifdef MMGAN__TEST_HOOKS
    mmgan__wino_hits[2]++;
#endif
    for (b0 = 0; b0 < n; b0 += MMGAN__WINO_W_IMGS) {
        const int nb = MMGAN__MIN(MMGAN__WINO_W_IMGS, n - b0), nbp = (nb + vn - 1) / vn * vn, cols = tt * nbp;
        const int ld = MMGAN__WG_P * cols;
        /* V [(phase, c)][25][(tile, image)] and A gy A^T [o][25][(tile,
         * image)], a channel a step: rows 0 .. c - 1 are x's channels, then
         * gy's */
#ifdef MMGAN__OMP
        MMGAN__PRAGMA(omp parallel for num_threads(MMGAN__MIN(ctx->threads, MMGAN__WINO_THREADS)) schedule(static))
#endif
        for (i = 0; i < c + o; i++) {
            const int isx = i < c, ch = isx ? i : i - c, p = isx ? pin : pout, chans = isx ? c : o;
#ifdef MMGAN__OMP
            float *xs = xs0 + (size_t)omp_get_thread_num() * MMGAN__MAX(pin, pout) * vn;
#else
            float *xs = xs0;
#endif
            int g, ph, t, r, s, pt;
            for (g = 0; g < nbp; g += vn) {
                mmgan__wg_images((isx ? x : gy) + ((size_t)(b0 + g) * chans + ch) * p, MMGAN__MIN(vn, nb - g), p,
                                 (size_t)chans * p, xs);
                for (ph = 0; ph < (isx ? 4 : 1); ph++)
                    for (t = 0; t < tt; t++) {
                        const int ty = t / t1, tx = t % t1;
                        mmgan__v d[MMGAN__WG_P], h[20];
                        float *dst;
                        if (isx) {
                            dst = v + (size_t)(ph * c + ch) * ld + (size_t)t * nbp + g;
                            mmgan__wg_tile_v(xs, q->h, q->w, 8 * ty + (ph >> 1) - 1, 2, 8 * tx + (ph & 1) - 1, 2, d);
                        } else {
                            dst = gm + (size_t)ch * ld + (size_t)t * nbp + g;
                            for (r = 0; r < 4; r++)
                                for (s = 0; s < 4; s++) {
                                    const int row = 4 * ty + r, col = 4 * tx + s;
                                    h[r * 5 + s] = row < q->ho && col < q->wo
                                                       ? MMGAN__VLOAD(xs + ((size_t)row * q->wo + col) * vn)
                                                       : MMGAN__VSET(0.0f);
                                }
                            for (s = 0; s < 4; s++) mmgan__wg_a(h + s, 5, d + s, 5);            /* A gy */
                            for (r = 0; r < 5; r++) mmgan__wg_a(d + 5 * r, 1, d + 5 * r, 1);   /* then A^T, in place */
                        }
                        for (pt = 0; pt < MMGAN__WG_P; pt++) MMGAN__VSTORE(dst + (size_t)pt * cols, d[pt]);
                    }
            }
        }
        /* dU[pt] (+)= (A gy A^T)[pt] V[pt]^T, on threads from 2^18
         * multiply-adds, not 2^22: the critic's 64 -> 128 products (1M each)
         * had stayed on one thread while the transforms split, and its
         * weight gradient ran slower on two threads than on one (7.3 ->
         * 8.3 ms).  With this threshold the steps on two threads ran 1.06x
         * (the DCGAN) and 1.13x (MAGAN) faster on a quiet host, 1.01-1.03x
         * with a neighbour's load; on one thread the same (Zen 3). */
        for (i = 0; i < MMGAN__WG_P; i++)
            mmgan__gemm_run_mt(ctx, kr, 0, 1, o, k, cols, 1.0f, gm + (size_t)i * cols, ld, v + (size_t)i * cols, ld,
                               NULL, NULL, b0 ? 1.0f : 0.0f, du + (size_t)i * o * k, k, (double)(1 << 18));
    }
    /* dw's taps (2a + p, 2e + q) = G^T dU G, as dw^T [o][i][j][c], then dw */
    MMGAN__PAR_FOR(ctx->threads, (size_t)o * k * MMGAN__WG_P >= 4 * MMGAN__PAR_MIN)
    for (i = 0; i < o; i++) {
        mmgan__v chk = MMGAN__VSET(0.0f);
        int ph, cc, a, e, x5, y5;
        for (ph = 0; ph < 4; ph++)
            for (cc = 0; cc < c; cc += vn) {
                const int m = MMGAN__MIN(vn, c - cc);
                const float *src = du + (size_t)i * k + (size_t)ph * c + cc;
                mmgan__v hg[5][2], tap[4];
                for (x5 = 0; x5 < 5; x5++) {   /* (dU G) row x5: 2 values */
                    mmgan__v s0 = MMGAN__VSET(0.0f), s1 = MMGAN__VSET(0.0f);
                    for (y5 = 0; y5 < 5; y5++) {
                        const mmgan__v u = mmgan__wg_load(src + (size_t)(x5 * 5 + y5) * o * k, m);
                        s0 = MMGAN__VFMA(MMGAN__VSET(mmgan__wg_g[y5][0]), u, s0);
                        s1 = MMGAN__VFMA(MMGAN__VSET(mmgan__wg_g[y5][1]), u, s1);
                    }
                    hg[x5][0] = s0;
                    hg[x5][1] = s1;
                }
                for (a = 0; a < 2; a++)
                    for (e = 0; e < 2; e++) {
                        mmgan__v s0 = MMGAN__VSET(0.0f);
                        for (x5 = 0; x5 < 5; x5++) s0 = MMGAN__VFMA(MMGAN__VSET(mmgan__wg_g[x5][a]), hg[x5][e], s0);
                        tap[2 * a + e] = s0;
                        chk = MMGAN__VADD(chk, MMGAN__VSUB(s0, s0));
                    }
                for (a = 0; a < 2; a++)
                    for (e = 0; e < 2; e++)
                        mmgan__wg_store(dwt + ((size_t)i * 16 + (2 * a + (ph >> 1)) * 4 + 2 * e + (ph & 1)) * c + cc,
                                        tap[2 * a + e], m);
            }
        mmgan__wg_transpose(dwt + (size_t)i * 16 * c, 16, (size_t)c, (size_t)c, dw + (size_t)i * c * 16, 16);
        if (!mmgan__wg_finite(chk)) {
#ifdef MMGAN__OMP
            MMGAN__PRAGMA(omp atomic write)
#endif
            bad = 1;
        }
    }
    return !bad;
}
#endif

/* y [N, O, Ho, Wo] = conv2d(x [N, C, H, W], w [O, C, kh, kw]) (+ bias [O]);
 * ws: the scratch, cap floats. */
static void mmgan__conv2d_fwd(mmgan_ctx *ctx, const mmgan__convgeom *q, int n, int o,
                              const float *x, const float *w, const float *bias, float *y, float *ws, size_t cap)
{
    const int ckk = q->c * q->kh * q->kw, kk = q->kh * q->kw, hw = q->ho * q->wo;
    const int chunk = mmgan__conv_chunk_nt(q, n, ctx->threads), group = mmgan__unfold_group(q, ctx->threads);
    const size_t img = (size_t)q->c * q->h * q->w;
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    /* where the weights go packed (mmgan__conv_ws) */
    float *apk = NULL, *apk_at = ws + (size_t)(ckk + o) * mmgan__conv_ws_ld(q, n, o, MMGAN__WS_COLS);
    int b0;
#if MMGAN__WINO
    if (mmgan__wino_fit(q, n, o) && mmgan__conv2d_wino(ctx, q, 0, n, o, x, w, bias, y, ws, cap)) return;
#else
    (void)cap;
#endif
#if defined(MMGAN__AVX512)
    {
        mmgan__runs L;
        const int group1 = mmgan__unfold_group(q, 1);   /* the scratch's (mmgan__conv_ws_runs) */
        if (mmgan__runs_fit(q, o, group1, &L) && mmgan__all_finite(w, (size_t)o * ckk)) {
            mmgan__gemm_prepack_a(kr, 0, o, ckk, w, ckk, apk_at);
            mmgan__conv2d_fwd_runs(ctx, q, &L, n, o, mmgan__runs_chunk(q, n), group1, x, apk_at, bias, y, ws,
                                   mmgan__conv_ws_ld(q, n, o, MMGAN__WS_COLS));
            return;
        }
    }
#endif
    if (mmgan__conv_packs_w(q, n)) {
        apk = apk_at;
        mmgan__gemm_prepack_a(kr, 0, o, ckk, w, ckk, apk);
    }
#ifdef MMGAN__OMP
    if (mmgan__conv_own(ctx, q, n, o, o, chunk)) {
        mmgan__conv_own_run(ctx, q, n, o, chunk, mmgan__unfold_group(q, 1), 0, x, w, apk, bias, y, ws);
        return;
    }
#endif
    for (b0 = 0; b0 < n; b0 += chunk) {
        int nb = MMGAN__MIN(chunk, n - b0), c0;
        const size_t ld = mmgan__chunk_ld(nb, hw);
        float *cols = ws, *out = ws + (size_t)ckk * ld;
        /* a matrix-vector product (one row or column, A not packed) sums
         * over all of k at once: whole, as on threads */
        const int g = apk || (o > 1 && nb * hw > 1) ? group : q->c;
        for (c0 = 0; c0 < q->c; c0 += g) {   /* k blocks in order (above mmgan__fold_group) */
            mmgan__convgeom qg = *q;
            qg.c = MMGAN__MIN(g, q->c - c0);
            mmgan__im2col_chunk(ctx, &qg, x + (size_t)b0 * img + (size_t)c0 * q->h * q->w, nb, cols, ld, img);
            mmgan__gemm_run_ex(ctx, kr, 0, 0, o, nb * hw, qg.c * kk, 1.0f, w + (size_t)c0 * kk, ckk, cols, (int)ld,
                               NULL, apk ? apk + mmgan__apk_off(kr, o, c0 * kk, 0, 0) : NULL,
                               c0 ? 1.0f : 0.0f, out, (int)ld);
        }
        mmgan__rows_to_batch(ctx, out, ld, nb, o, hw, bias, y + (size_t)b0 * o * hw);
    }
}

/* y [N, C, H, W] = conv_transpose2d(x [N, O, Ho, Wo], w [O, C, kh, kw])
 * (+ bias [C]): the geometry q is that of the forward conv from y's size to x's. */
static void mmgan__conv2d_bwd_data(mmgan_ctx *ctx, const mmgan__convgeom *q, int n, int o,
                                   const float *x, const float *w, const float *bias, float *y, float *ws,
                                   size_t cap)
{
    const int ckk = q->c * q->kh * q->kw, kk = q->kh * q->kw, hw = q->ho * q->wo, plane = q->h * q->w;
    const int chunk = mmgan__conv_chunk_nt(q, n, ctx->threads);
    int group = mmgan__fold_group(q, ctx->threads);
    const size_t img = (size_t)q->c * plane;
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];
    /* where the weights go packed (mmgan__conv_ws) */
    float *apk = NULL, *apk_at = ws + (size_t)(ckk + o) * mmgan__conv_ws_ld(q, n, o, MMGAN__WS_FOLD);
    size_t off;
    int b0, b, c0;
#ifdef MMGAN__OMP
    const int group1 = mmgan__fold_group(q, 1), own = mmgan__conv_own(ctx, q, n, o, group1 * kk, chunk);
    if (own) group = group1;
#endif
#if MMGAN__WINO
    if (mmgan__wino_fit(q, n, o) && mmgan__conv2d_wino(ctx, q, 1, n, o, x, w, bias, y, ws, cap)) return;
#else
    (void)cap;
#endif
#if defined(MMGAN__AVX512)
    {
        mmgan__runs L;
        const int g1 = mmgan__fold_group(q, 1);   /* the scratch's (mmgan__conv_ws_runs) */
        if (mmgan__runs_fit(q, o, g1, &L)) {
            mmgan__conv2d_bwd_data_runs(ctx, q, &L, n, o, mmgan__runs_chunk(q, n), g1, x, w, apk_at, bias, y, ws,
                                        mmgan__conv_ws_ld(q, n, o, MMGAN__WS_FOLD));
            return;
        }
    }
#endif
    if (mmgan__conv_packs_w(q, n)) {
        apk = apk_at;
        for (c0 = 0, off = 0; c0 < q->c; c0 += group) {
            const int rows = MMGAN__MIN(group, q->c - c0) * kk;
            mmgan__gemm_prepack_a(kr, 1, rows, o, w + (size_t)c0 * kk, ckk, apk + off);
            off += mmgan__gemm_apk_floats(kr, rows, o);
        }
    }
#ifdef MMGAN__OMP
    if (own) {
        mmgan__conv_own_run(ctx, q, n, o, chunk, group, 1, x, w, apk, bias, y, ws);
        return;
    }
#endif
    for (b0 = 0; b0 < n; b0 += chunk) {
        int nb = MMGAN__MIN(chunk, n - b0);
        const size_t ld = mmgan__chunk_ld(nb, hw);
        float *cols = ws, *in = ws + (size_t)ckk * ld;
        mmgan__batch_to_rows(ctx, x + (size_t)b0 * o * hw, nb, o, hw, in, ld);
        for (c0 = 0, off = 0; c0 < q->c; c0 += group) {   /* above mmgan__fold_group */
            mmgan__convgeom qg = *q;
            qg.c = MMGAN__MIN(group, q->c - c0);
            mmgan__gemm_run_ex(ctx, kr, 1, 0, qg.c * kk, nb * hw, o, 1.0f, w + (size_t)c0 * kk, ckk, in, (int)ld,
                               NULL, apk ? apk + off : NULL, 0.0f, cols, (int)ld);
            off += mmgan__gemm_apk_floats(kr, qg.c * kk, o);
            MMGAN__PAR_FOR(ctx->threads, (size_t)qg.c * kk * nb * hw >= MMGAN__PAR_MIN)
            for (b = 0; b < nb; b++)
                mmgan__col2im(&qg, cols + (size_t)b * hw, ld, bias ? bias + c0 : NULL,
                              y + (size_t)(b0 + b) * img + (size_t)c0 * plane);
        }
    }
}

/* dw [O, C, kh, kw] = sum over the batch of gy_n * cols(x_n)^T, with
 * cols^T gathered from the images by the GEMM's packing (2.5). */
static void mmgan__conv2d_bwd_weight_implicit(mmgan_ctx *ctx, const mmgan__convgeom *q, int n, int o,
                                              const float *x, const float *gy, float *dw, float *ws)
{
    const int ckk = q->c * q->kh * q->kw, hw = q->ho * q->wo, chunk = mmgan__conv_chunk(q, n);
    const size_t img = (size_t)q->c * q->h * q->w;
    int b0;
    for (b0 = 0; b0 < n; b0 += chunk) {
        int nb = MMGAN__MIN(chunk, n - b0);
        mmgan__bgather bg;
        bg.q = q;
        bg.x = x + (size_t)b0 * img;
        if (q->pad) {
            mmgan__pad_images(ctx, q, bg.x, nb, ws);
            bg.x = ws;
        }
        mmgan__gemm_run_ex(ctx, &mmgan__gemm_kernels[0], 0, 0, o, ckk, nb * hw, 1.0f, gy + (size_t)b0 * o * hw, hw,
                           NULL, ckk, &bg, NULL, b0 == 0 ? 0.0f : 1.0f, dw, ckk);
    }
}

#if defined(MMGAN__AVX512)
/* Whether the weight gradient goes in runs: where the forward product would. */
static int mmgan__wgrad_runs(const mmgan__convgeom *q, int o, mmgan__runs *L)
{
    return !mmgan__wgrad_dot(q) && mmgan__runs_fit(q, o, mmgan__unfold_group(q, 1), L);
}

/* dw [O, C, kh, kw] = the weight gradient in runs: dw^T = cols(x) gy^T, the
 * rows of cols(x) in (i, c, j) order within each group of channels, its
 * columns in runs, so that each window row's rows take one range of k: the
 * runs whose windows hold that row inside the image (7.1% of the DCGAN
 * layers' multiply-adds left out).  The micro-kernel reads cols(x) in
 * place (8 rows, ld apart) and gy^T, made per chunk in the runs' column
 * order, as B; dw^T is turned into dw at the end.  Against the product with
 * B gathered from the padded images (2.5), which packs B as wide as the
 * unfolding here: the generator's 256 -> 128 weight gradient alone 1.04x
 * faster, the critic's 64 -> 128 1.06-1.09x; the DCGAN steps, alternating
 * in one process (40 pairs), 1.017x (plain) and 1.019x (penalty) on one
 * thread, 1.063x and 1.046x on two, where the gathered product split its
 * columns between the threads.  Each sum runs over the chunks in order and
 * within a chunk over its columns in order, from zero (another order than
 * the gathered product's: not its bits); the threads take groups of rows
 * (at most MMGAN__WRUNS_THREADS, one per group), so the thread count
 * changes no sum. */
static void mmgan__conv2d_bwd_weight_runs(mmgan_ctx *ctx, const mmgan__convgeom *q, const mmgan__runs *L0, int n,
                                          int o, const float *x, const float *gy, float *dw, float *ws)
{
    const int ckk = q->c * q->kh * q->kw, kk = q->kh * q->kw, hw = q->ho * q->wo, plane = q->h * q->w;
    const int chunk = mmgan__runs_chunk(q, n), group = mmgan__unfold_group(q, 1);
    const int ngroups = (q->c + group - 1) / group;
    const size_t img = (size_t)q->c * plane, rows = (size_t)group * kk;
    const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[0];   /* 8 x 48, reading A in place */
    size_t at[4];
    float *dwt, *gyt, *tmps, *colbase;
    const int want = MMGAN__MIN(MMGAN__MIN(ctx->threads, MMGAN__WRUNS_THREADS), ngroups);
    mmgan__wruns_ws(q, n, o, at);
    dwt = ws + at[0]; gyt = ws + at[1]; tmps = ws + at[2]; colbase = ws + at[3];
#ifdef MMGAN__TEST_HOOKS
    mmgan__runs_hits[2]++;
#endif
#ifdef MMGAN__OMP
    MMGAN__PRAGMA(omp parallel num_threads(want) if(want > 1))
#endif
    {
        mmgan__runs L = *L0;
        int nt, tid, b0, b, r, i, oo, p, g, gs = 0, ge = 0, bs = 0, be = 0;
        float *tmp;
        mmgan__runs_team(want, &nt, &tid, 2);
        if (tid >= 0) mmgan__range(ngroups, tid, nt, &gs, &ge);
        if (gs < ge)   /* this thread's groups' rows of dw^T, the sums' start */
            memset(dwt + (size_t)gs * group * kk * o, 0,
                   (size_t)(MMGAN__MIN(q->c, ge * group) - gs * group) * kk * o * sizeof(float));
        tmp = tmps + (size_t)(tid > 0 ? tid : 0) * hw * o;
        L.icj = 1;
        for (b0 = 0; b0 < n; b0 += chunk) {
            const int nb = MMGAN__MIN(chunk, n - b0);
            const size_t ld = mmgan__chunk_ld(nb, hw);
            float *cols = colbase + (size_t)(tid > 0 ? tid : 0) * rows * ld;
            L.nb = nb;
            if (tid >= 0) mmgan__range(nb, tid, nt, &bs, &be);
            for (b = bs; b < be; b++) {   /* gy^T in the runs' column order, [nb hw][o], each thread its images */
                const float *src = gy + (size_t)(b0 + b) * o * hw;
                for (oo = 0; oo + MMGAN__TB <= o; oo += MMGAN__TB)
                    for (p = 0; p + MMGAN__TB <= hw; p += MMGAN__TB)
                        mmgan__tr_block(src + (size_t)oo * hw + p, (size_t)hw, tmp + (size_t)p * o + oo, (size_t)o);
                for (oo = 0; oo < o; oo++)
                    for (p = oo < o - o % MMGAN__TB ? hw - hw % MMGAN__TB : 0; p < hw; p++)
                        tmp[(size_t)p * o + oo] = src[(size_t)oo * hw + p];
                for (r = 0; r < L.n; r++) {
                    const size_t len = (size_t)(L.at[r + 1] - L.at[r]) * q->wo;
                    memcpy(gyt + ((size_t)nb * L.at[r] * q->wo + (size_t)b * len) * o,
                           tmp + (size_t)L.at[r] * q->wo * o, len * o * sizeof(float));
                }
            }
            MMGAN__OMP_BARRIER();
            for (g = gs; g < ge; g++) {
                mmgan__convgeom qg = *q;
                const int c0 = g * group;
                qg.c = MMGAN__MIN(group, q->c - c0);
                for (b = 0; b < nb; b++)
                    mmgan__im2col_rows(&qg, x + (size_t)(b0 + b) * img + (size_t)c0 * plane, cols, ld, &L, b);
                for (i = 0; i < q->kh; i++) {
                    int ra = -1, rb = -1, n0;
                    size_t k0, k1, kb;
                    const size_t r0 = (size_t)i * qg.c * q->kw, r1 = r0 + (size_t)qg.c * q->kw;
                    for (r = 0; r < L.n; r++)
                        if (L.lo[r] <= i && i < L.hi[r]) { if (ra < 0) ra = r; rb = r; }
                    if (ra < 0) continue;
                    k0 = (size_t)nb * L.at[ra] * q->wo;
                    k1 = (size_t)nb * L.at[rb + 1] * q->wo;
                    for (n0 = 0; n0 < o; n0 += mmgan__panel_cols(o - n0, kr->nr))
                        for (kb = k0; kb < k1; kb += (size_t)kr->kc) {
                            const int kl = (int)MMGAN__MIN((size_t)kr->kc, k1 - kb);
                            size_t row;
                            for (row = r0; row < r1; row += (size_t)kr->mr)
                                kr->ukr_a(kl, cols + row * ld + kb, (ptrdiff_t)ld, gyt + kb * o + n0, o,
                                          dwt + ((size_t)c0 * kk + row) * o + n0, o, 1.0f, 1.0f,
                                          mmgan__panel_cols(o - n0, kr->nr));
                        }
                }
            }
            MMGAN__OMP_BARRIER();
        }
        /* dw [o][c][i][j] from dw^T's rows (i, c, j) of each group, by 8 x 8
         * blocks (a row of dw^T at a time wrote ckk floats apart and took
         * 15% of the 256 -> 128 layer's weight gradient) */
        for (g = gs; g < ge; g++) {
            mmgan__convgeom qg = *q;
            const int c0 = g * group;
            int o0, r0, t, gr;
            qg.c = MMGAN__MIN(group, q->c - c0);
            gr = qg.c * kk;
            for (r0 = 0; r0 < gr; r0 += 8) {
                size_t dcol[8];
                for (t = 0; t < 8; t++) dcol[t] = (size_t)c0 * kk + mmgan__icj_entry(&qg, r0 + t);
                for (o0 = 0; o0 < o; o0 += 8) {
                    const float *src = dwt + ((size_t)c0 * kk + r0) * o + o0;
                    float tb[64];
                    if (o0 + 8 <= o) {
                        mmgan__tr_block(src, (size_t)o, tb, 8);
                        for (oo = 0; oo < 8; oo++)
                            for (t = 0; t < 8; t++) dw[(size_t)(o0 + oo) * ckk + dcol[t]] = tb[oo * 8 + t];
                    } else {
                        for (oo = 0; o0 + oo < o; oo++)
                            for (t = 0; t < 8; t++) dw[(size_t)(o0 + oo) * ckk + dcol[t]] = src[(size_t)t * o + oo];
                    }
                }
            }
        }
    }
}
#endif

/* The weight gradient as its transpose, dw^T [CKK, O] = cols(x) * GY^T, for
 * narrow windows (CKK < O).  ws also holds dw^T. */
static void mmgan__conv2d_bwd_weight_t(mmgan_ctx *ctx, const mmgan__convgeom *q, int n, int o,
                                       const float *x, const float *gy, float *dw, float *ws)
{
    const int ckk = q->c * q->kh * q->kw, hw = q->ho * q->wo, chunk = mmgan__conv_chunk(q, n);
    const size_t img = (size_t)q->c * q->h * q->w;
    float *dwt = ws;
    int b0, i, j;
    for (b0 = 0; b0 < n; b0 += chunk) {
        int nb = MMGAN__MIN(chunk, n - b0);
        const size_t ld = mmgan__chunk_ld(nb, hw);
        float *cols = ws + (size_t)ckk * o, *g = cols + (size_t)ckk * ld;
        mmgan__im2col_chunk(ctx, q, x + (size_t)b0 * img, nb, cols, ld, img);
        mmgan__batch_to_rows(ctx, gy + (size_t)b0 * o * hw, nb, o, hw, g, ld);
        mmgan_gemm(ctx, 0, 1, ckk, o, nb * hw, 1.0f, cols, (int)ld, g, (int)ld, b0 == 0 ? 0.0f : 1.0f, dwt, o);
    }
    for (i = 0; i < o; i++)
        for (j = 0; j < ckk; j++) dw[(size_t)i * ckk + j] = dwt[(size_t)j * o + i];
}

#if defined(MMGAN__AVX512)
/* The weight gradient of a window of at most 16 values (the 1-channel
 * layers' 4x4: dw [64, 16] and [128, 16] summed over 12544 pixels), with
 * the window's values at a pixel as one vector: dw[r] += gy[r][pixel] *
 * window(pixel), gy's values broadcast straight from its rows.  The GEMM
 * transposed gy into panels for its broadcasts and filled a 48-wide B panel
 * for 16 columns: 33 GFLOP/s in the DCGAN step; this is 1.65-1.7x faster
 * (Xeon, one thread, in-process pairs).  Dot products along the pixels (no
 * transpose either, but 8 loads per 16 FMAs from L2) were 1.07x; 8 rows at
 * a time rather than 16, 1.3x.  Each output is one call's, summed in pixel
 * order: thread-count free. */
/* dw rows [o0, o0 + 8) (the last repeated past o, unused), or with wide
 * [o0, o0 + 16), from the window vectors win [pixel][16] of nb images, in
 * pixel order: first stores, later chunks add. */
#define MMGAN__WD8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
static void mmgan__wdot_rows(const mmgan__convgeom *q, int nb, int o, const float *gy, const float *win, int o0,
                             int wide, int first, float *dw)
{
    const int hw = q->ho * q->wo, ckk = q->c * q->kh * q->kw;
    const size_t r8 = (size_t)8 * hw;
    const __mmask16 mk = mmgan__mask16(ckk);
#define MMGAN__RO(i) const size_t r##i = (size_t)(MMGAN__MIN(o0 + i, o - 1) - o0) * hw;
    MMGAN__WD8(MMGAN__RO)
#undef MMGAN__RO
#define MMGAN__Z(i) __m512 a##i = _mm512_setzero_ps(), b##i = a##i;
    MMGAN__WD8(MMGAN__Z)
#undef MMGAN__Z
    int bi, p;
    for (bi = 0; bi < nb; bi++) {
        const float *g = gy + ((size_t)bi * o + o0) * hw, *w = win + (size_t)bi * hw * 16;
        if (wide)
            for (p = 0; p < hw; p++, g++, w += 16) {
                const __m512 v = _mm512_load_ps(w);
                const float *h = g + r8;   /* the same offsets as from g: 8 registers, not 16 */
#define MMGAN__F(i) a##i = _mm512_fmadd_ps(_mm512_set1_ps(g[r##i]), v, a##i); \
                b##i = _mm512_fmadd_ps(_mm512_set1_ps(h[r##i]), v, b##i);
                MMGAN__WD8(MMGAN__F)
#undef MMGAN__F
            }
        else
            for (p = 0; p < hw; p++, g++, w += 16) {
                const __m512 v = _mm512_load_ps(w);
#define MMGAN__F(i) a##i = _mm512_fmadd_ps(_mm512_set1_ps(g[r##i]), v, a##i);
                MMGAN__WD8(MMGAN__F)
#undef MMGAN__F
            }
    }
#define MMGAN__ST(i) if (o0 + i < o) { float *d = dw + (size_t)(o0 + i) * ckk; \
        _mm512_mask_storeu_ps(d, mk, first ? a##i : _mm512_add_ps(_mm512_maskz_loadu_ps(mk, d), a##i)); } \
    if (wide) { float *d = dw + (size_t)(o0 + 8 + i) * ckk; \
        _mm512_mask_storeu_ps(d, mk, first ? b##i : _mm512_add_ps(_mm512_maskz_loadu_ps(mk, d), b##i)); }
    MMGAN__WD8(MMGAN__ST)
#undef MMGAN__ST
}
#undef MMGAN__WD8

static void mmgan__conv2d_bwd_weight_dot(mmgan_ctx *ctx, const mmgan__convgeom *q, int n, int o,
                                         const float *x, const float *gy, float *dw, float *ws)
{
    const int ckk = q->c * q->kh * q->kw, hw = q->ho * q->wo, chunk = mmgan__conv_chunk(q, n), bo = (o + 15) / 16;
    const int pw = q->w + 2 * q->pad, plane = (q->h + 2 * q->pad) * pw;
    const size_t img = (size_t)q->c * q->h * q->w, pimg = (size_t)q->c * plane;
    float *win = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63), *xp = win + (size_t)chunk * hw * 16;
    int offs[16], b0, t, jj;
    __m512i vo;
    for (jj = 0; jj < 16; jj++) offs[jj] = (int)mmgan__win_off(q, MMGAN__MIN(jj, ckk - 1));   /* past ckk: unused */
    vo = _mm512_loadu_si512((const void *)offs);
    for (b0 = 0; b0 < n; b0 += chunk) {
        const int nb = MMGAN__MIN(chunk, n - b0);
        int b;
        mmgan__pad_images(ctx, q, x + (size_t)b0 * img, nb, xp);
        for (b = 0; b < nb; b++) {
            int oy, ox;
            float *d = win + (size_t)b * hw * 16;
            for (oy = 0; oy < q->ho; oy++)
                for (ox = 0; ox < q->wo; ox++, d += 16)
                    _mm512_store_ps(d, _mm512_i32gather_ps(vo, xp + b * pimg + (size_t)oy * q->stride * pw + (size_t)ox * q->stride, 4));
        }
        MMGAN__PAR_FOR(ctx->threads, (size_t)o * ckk * nb * hw >= MMGAN__PAR_MIN)
        for (t = 0; t < bo; t++) {
            const float *g = gy + (size_t)b0 * o * hw;
            if (t * 16 + 16 <= o) {
                mmgan__wdot_rows(q, nb, o, g, win, t * 16, 1, b0 == 0, dw);
            } else {
                mmgan__wdot_rows(q, nb, o, g, win, t * 16, 0, b0 == 0, dw);
                if (t * 16 + 8 < o) mmgan__wdot_rows(q, nb, o, g, win, t * 16 + 8, 0, b0 == 0, dw);
            }
        }
    }
}
#endif

/* Sparse columns.  The gradient of an L-inf norm is one value per sample
 * (at its largest entry) and zero for samples inside a hinge margin, so in
 * a penalty's double backward the critic's convolutions read images that
 * are almost all zeros: a one-hot image through a 4x4 stride-2 layer leaves
 * 4 of 196 nonzero pixels, whose windows touch 9 of the next layer's 49
 * output columns.  conv2d and its weight gradient then multiply only the
 * columns whose window holds a nonzero (and, for the weight gradient, whose
 * gy is nonzero), gathered in batches; the rest of y is its bias.  Looking
 * must cost next to nothing when it finds the input dense, as it will for
 * most activations (and for [0, 1] MNIST digits, whose first layer sees a
 * third of its columns touch a stroke): the first image alone decides
 * first, and the count over the batch stops at a quarter.  Windows of fewer
 * than 64 values (a 1-channel layer) stay dense: their products are cheaper
 * than the bookkeeping.  The scratch is the op's own, unused on this path,
 * so plans do not grow; a batch of columns must fit in it.  The results
 * equal the dense product's to rounding (a weight gradient sums fewer
 * terms), the same for every thread count. */
#define MMGAN__SPARSE_COLS 256   /* columns per gathered product, at most */
#define MMGAN__SPARSE_MIN_K 64   /* values per window, at least */
#ifdef MMGAN__TEST_HOOKS
static int mmgan__sparse_hits;   /* products that took the sparse path */
#endif

/* Whether a plane looks sparse enough to look further: a quarter nonzero at most. */
static int mmgan__sparse_try(const float *p, size_t n)
{
    size_t i, nz = 0;
    for (i = 0; i < n; i++) nz += p[i] != 0.0f;
    return nz * 4 <= n;
}

/* at[b][pixel] = 1 where any of the c planes of image b is nonzero there. */
static void mmgan__sparse_pixels(mmgan_ctx *ctx, const float *x, int n, int c, size_t plane, unsigned char *at)
{
    int b;
    (void)ctx;
    MMGAN__PAR_FOR(ctx->threads, (size_t)n * c * plane >= MMGAN__PAR_MIN)
    for (b = 0; b < n; b++) {
        unsigned char *a = at + (size_t)b * plane;
        int k;
        size_t i;
        memset(a, 0, plane);
        for (k = 0; k < c; k++) {
            const float *p = x + ((size_t)b * c + k) * plane;
            for (i = 0; i < plane; i++) a[i] |= p[i] != 0.0f;
        }
    }
}

/* Whether output column (b, oy, ox) has a nonzero pixel of x in its window. */
static int mmgan__sparse_window(const mmgan__convgeom *q, const unsigned char *xat, int b, int oy, int ox)
{
    int i, j;
    for (i = 0; i < q->kh; i++) {
        const int iy = oy * q->stride - q->pad + i;
        if (iy < 0 || iy >= q->h) continue;
        for (j = 0; j < q->kw; j++) {
            const int ix = ox * q->stride - q->pad + j;
            if (ix >= 0 && ix < q->w && xat[((size_t)b * q->h + iy) * q->w + ix]) return 1;
        }
    }
    return 0;
}

/* The window of output column col (image-major) of cols(x), as CKK values in d. */
static void mmgan__sparse_gather(const mmgan__convgeom *q, const float *x, size_t col, float *d)
{
    const size_t hw = (size_t)q->ho * q->wo;
    const int b = (int)(col / hw), oy = (int)(col % hw / q->wo), ox = (int)(col % q->wo);
    int c, i, j;
    const int x0 = ox * q->stride - q->pad, j0 = MMGAN__MAX(0, -x0), j1 = MMGAN__MIN(q->kw, q->w - x0);
    for (c = 0; c < q->c; c++) {
        const float *p = x + ((size_t)b * q->c + c) * q->h * q->w;
        for (i = 0; i < q->kh; i++, d += q->kw) {
            const int iy = oy * q->stride - q->pad + i;
            for (j = 0; j < q->kw; j++) d[j] = 0.0f;
            if (iy >= 0 && iy < q->h)
                for (j = j0; j < j1; j++) d[j] = p[(size_t)iy * q->w + (size_t)(x0 + j)];
        }
    }
}

/* Marks the columns of images [b0, b1) that multiply anything in act
 * (image-major) and returns how many, or stops past `most`. */
static size_t mmgan__sparse_mark(const mmgan__convgeom *q, const unsigned char *xat, const unsigned char *gat,
                                 int b0, int b1, unsigned char *act, size_t most)
{
    const size_t hw = (size_t)q->ho * q->wo;
    size_t cols = 0, col;
    for (col = (size_t)b0 * hw; col < (size_t)b1 * hw && cols <= most; col++) {
        const int b = (int)(col / hw), oy = (int)(col % hw / q->wo), ox = (int)(col % q->wo);
        act[col] = (unsigned char)((!gat || gat[col]) && (!xat || mmgan__sparse_window(q, xat, b, oy, ox)));
        cols += act[col];
    }
    return cols;
}

/* conv2d (wgrad = 0: y [N, O, Ho, Wo] from x, w, bias) or its weight
 * gradient (wgrad = 1: y = dw [O, CKK] from x and gy = w) over the sparse
 * columns, in sp (avail floats); 0 if x (and gy) are not sparse enough, or
 * sp too small, and nothing was written. */
static int mmgan__conv_sparse(mmgan_ctx *ctx, const mmgan__convgeom *q, int n, int o, int wgrad, const float *x,
                              const float *w, const float *bias, float *y, float *sp, size_t avail)
{
    const size_t hw = (size_t)q->ho * q->wo, plane = (size_t)q->h * q->w, ckk = (size_t)q->c * q->kh * q->kw;
    const size_t total = (size_t)n * hw, maps = ((size_t)n * (plane + 2 * hw) + 3) / 4;
    /* x's nonzero pixels [n h w], gy's [n ho wo], the active columns [n ho wo], bytes */
    unsigned char *xat = NULL, *gat = NULL, *act = (unsigned char *)sp + (size_t)n * (plane + hw);
    size_t cb, cols, col, t;
    int *idx;
    float *win, *oc;   /* the windows [cb, CKK]; conv2d's product [O, cb] or gy's columns [O, cb] */
    int first = 1, b;
    if (ckk < MMGAN__SPARSE_MIN_K || total > (size_t)INT_MAX || avail < maps + 16 + (ckk + o + 1) * 32) return 0;
    cb = MMGAN__MIN(MMGAN__MIN(total, (size_t)MMGAN__SPARSE_COLS), (avail - maps - 16) / (ckk + o + 1));
    idx = (int *)(sp + maps);
    win = sp + maps + cb;
    oc = win + ckk * cb;
    if (mmgan__sparse_try(x, plane)) xat = (unsigned char *)sp;
    if (wgrad && mmgan__sparse_try(w, hw)) gat = (unsigned char *)sp + (size_t)n * plane;   /* gy's columns */
    if (!xat && !gat) return 0;
    /* the first image decides whether the batch is worth a look */
    if (xat) mmgan__sparse_pixels(ctx, x, 1, q->c, plane, xat);
    if (gat) mmgan__sparse_pixels(ctx, w, 1, o, hw, gat);
    if (mmgan__sparse_mark(q, xat, gat, 0, 1, act, hw / 4) * 4 > hw) return 0;
    if (xat && n > 1) mmgan__sparse_pixels(ctx, x + (size_t)q->c * plane, n - 1, q->c, plane, xat + plane);
    if (gat && n > 1) mmgan__sparse_pixels(ctx, w + (size_t)o * hw, n - 1, o, hw, gat + hw);
    cols = mmgan__sparse_mark(q, xat, gat, 0, n, act, total / 4);
    if (cols * 4 > total) return 0;
    /* a skipped column multiplies zeros (x's window, or gy's column) by the
     * other operand (w or gy, or x): unless that is finite, compute them all */
    if (!wgrad ? !mmgan__all_finite(w, (size_t)o * ckk)
               : (xat && !mmgan__all_finite(w, (size_t)o * total)) || (gat && !mmgan__all_finite(x, (size_t)q->c * plane * n)))
        return 0;
    if (!wgrad) {
        int k;
        for (b = 0; b < n; b++)
            for (k = 0; k < o; k++) {
                float *d = y + ((size_t)b * o + k) * hw, v = bias ? bias[k] : 0.0f;
                size_t i;
                for (i = 0; i < hw; i++) d[i] = v;
            }
    } else if (!cols) {
        memset(y, 0, (size_t)o * ckk * sizeof(float));
    }
    for (col = 0; col < total;) {
        int s, nt;
        for (t = 0; col < total && t < cb; col++) if (act[col]) idx[t++] = (int)col;
        if (!t) break;
        nt = (int)t;
        MMGAN__PAR_FOR(ctx->threads, t * (ckk + (size_t)o) >= MMGAN__PAR_MIN)
        for (s = 0; s < nt; s++) {
            mmgan__sparse_gather(q, x, (size_t)idx[s], win + (size_t)s * ckk);
            if (wgrad) {
                const float *g = w + (size_t)idx[s] / hw * o * hw + (size_t)idx[s] % hw;
                int k;
                for (k = 0; k < o; k++) oc[(size_t)k * cb + s] = g[(size_t)k * hw];
            }
        }
        if (wgrad) {   /* dw [O, CKK] (+)= gy's columns [O, t] windows [t, CKK] */
            mmgan_gemm(ctx, 0, 0, o, (int)ckk, nt, 1.0f, oc, (int)cb, win, (int)ckk, first ? 0.0f : 1.0f, y, (int)ckk);
        } else {   /* [O, t] = w [O, CKK] windows^T, onto the bias */
            mmgan_gemm(ctx, 0, 1, o, nt, (int)ckk, 1.0f, w, (int)ckk, win, (int)ckk, 0.0f, oc, (int)cb);
            MMGAN__PAR_FOR(ctx->threads, t * (size_t)o >= MMGAN__PAR_MIN)
            for (s = 0; s < nt; s++) {
                float *d = y + (size_t)idx[s] / hw * o * hw + (size_t)idx[s] % hw;
                int k;
                for (k = 0; k < o; k++) d[(size_t)k * hw] += oc[(size_t)k * cb + s];
            }
        }
        first = 0;
    }
#ifdef MMGAN__TEST_HOOKS
    mmgan__sparse_hits++;
#endif
    return 1;
}

/* ===================================================================== */
/* 2.7 Elementwise vector kernels                                         */
/* ===================================================================== */
/* Written in the vector vocabulary of 2.1.  A tail shorter than MMGAN__VN
 * is computed as a zero-padded vector (masked loads and stores on AVX-512),
 * so every element gets the same arithmetic wherever it sits in the array. */
/* Apply expression F(v) to x[0..n) into y; one input. */
#define MMGAN__MAP1(n, x, y, F) do { \
    size_t i_ = 0; \
    for (; i_ + MMGAN__VN <= (n); i_ += MMGAN__VN) { \
        mmgan__v v = MMGAN__VLOAD((x) + i_); MMGAN__VSTORE((y) + i_, F); } \
    if (i_ < (n)) { MMGAN__TAIL1(n, x, y, F); } \
} while (0)

/* Apply expression F(u, w) to x[0..n), y[0..n) into z; two inputs. */
#define MMGAN__MAP2(n, x, y, z, F) do { \
    size_t i_ = 0; \
    for (; i_ + MMGAN__VN <= (n); i_ += MMGAN__VN) { \
        mmgan__v u = MMGAN__VLOAD((x) + i_), w = MMGAN__VLOAD((y) + i_); MMGAN__VSTORE((z) + i_, F); } \
    if (i_ < (n)) { MMGAN__TAIL2(n, x, y, z, F); } \
} while (0)

/* The tails from i_: AVX-512 loads them masked (the lanes past n read as
 * zero, as in the padded vector, and are not stored), one masked load and
 * store instead of two element-by-element copies through the stack (batch
 * norm's 49-float planes have a tail each; its speed-up, 10.8 -> 6.5 ms in
 * the DCGAN step, was measured with the block order below, not apart). */
#if defined(MMGAN__AVX512)
#define MMGAN__TAIL1(n, x, y, F) \
    const __mmask16 m_ = mmgan__mask16((int)((n) - i_)); \
    mmgan__v v = _mm512_maskz_loadu_ps(m_, (x) + i_); _mm512_mask_storeu_ps((y) + i_, m_, F)
#define MMGAN__TAIL2(n, x, y, z, F) \
    const __mmask16 m_ = mmgan__mask16((int)((n) - i_)); \
    mmgan__v u = _mm512_maskz_loadu_ps(m_, (x) + i_), w = _mm512_maskz_loadu_ps(m_, (y) + i_); \
    _mm512_mask_storeu_ps((z) + i_, m_, F)
#else
#define MMGAN__TAIL1(n, x, y, F) \
    float tx_[MMGAN__VN], ty_[MMGAN__VN]; mmgan__v v; size_t j_; \
    for (j_ = 0; j_ < MMGAN__VN; j_++) tx_[j_] = i_ + j_ < (n) ? (x)[i_ + j_] : 0.0f; \
    v = MMGAN__VLOAD(tx_); MMGAN__VSTORE(ty_, F); \
    for (j_ = 0; j_ < MMGAN__VN && i_ + j_ < (n); j_++) (y)[i_ + j_] = ty_[j_]   /* both bounds: gcc -O1 warned */
#define MMGAN__TAIL2(n, x, y, z, F) \
    float tx_[MMGAN__VN], ty_[MMGAN__VN], tz_[MMGAN__VN]; mmgan__v u, w; size_t j_; \
    for (j_ = 0; j_ < MMGAN__VN; j_++) { \
        tx_[j_] = i_ + j_ < (n) ? (x)[i_ + j_] : 0.0f; ty_[j_] = i_ + j_ < (n) ? (y)[i_ + j_] : 0.0f; } \
    u = MMGAN__VLOAD(tx_); w = MMGAN__VLOAD(ty_); MMGAN__VSTORE(tz_, F); \
    for (j_ = 0; j_ < MMGAN__VN && i_ + j_ < (n); j_++) (z)[i_ + j_] = tz_[j_]
#endif

/* Range reduction shared by exp and expm1: x = n ln2 + r, |r| <= ln2/2.
 * The magic constant 1.5 * 2^23 rounds x/ln2 to an integer held in the low
 * mantissa bits of t; ln2 is split so n * ln2_hi is exact. */
#define MMGAN__EXP_MAGIC 12582912.0f
#define MMGAN__LOG2E 1.44269504088896341f
#define MMGAN__LN2_HI 0.693359375f
#define MMGAN__LN2_LO -2.12194440e-4f
/* Taylor coefficients 1/k!: the degree-7 remainder on |r| <= 0.347 is 5e-9. */
#define MMGAN__EXP_POLY(r) \
    MMGAN__VFMA(MMGAN__VFMA(MMGAN__VFMA(MMGAN__VFMA(MMGAN__VFMA(MMGAN__VFMA( \
    MMGAN__VSET(1.0f / 5040.0f), (r), MMGAN__VSET(1.0f / 720.0f)), (r), MMGAN__VSET(1.0f / 120.0f)), \
    (r), MMGAN__VSET(1.0f / 24.0f)), (r), MMGAN__VSET(1.0f / 6.0f)), (r), MMGAN__VSET(0.5f)), (r), MMGAN__VSET(1.0f))
/* Returns e^r - 1 (without the leading 1, to keep expm1 exact near 0). */

MMGAN__INLINE mmgan__v mmgan__v_exp(mmgan__v x)
{
    /* Past -104 exp underflows to 0 and past 89 overflows to inf, so the clamp
     * changes no result; 2^n is applied as two factors 2^(n/2) so both stay
     * normal floats and the final product rounds denormals correctly. */
    mmgan__v magic = MMGAN__VSET(MMGAN__EXP_MAGIC);
    mmgan__v xc = MMGAN__VMIN(MMGAN__VSET(89.0f), MMGAN__VMAX(MMGAN__VSET(-104.0f), x));
    mmgan__v t = MMGAN__VFMA(xc, MMGAN__VSET(MMGAN__LOG2E), magic);
    mmgan__v nf = MMGAN__VSUB(t, magic);
    mmgan__v r = MMGAN__VFMA(nf, MMGAN__VSET(-MMGAN__LN2_HI), xc);
    mmgan__v p;
    r = MMGAN__VFMA(nf, MMGAN__VSET(-MMGAN__LN2_LO), r);
    p = MMGAN__VFMA(MMGAN__EXP_POLY(r), r, MMGAN__VSET(1.0f));
    p = MMGAN__VMUL(MMGAN__VMUL(p, MMGAN__VPOW2I(t, magic, MMGAN__VIHALF)), MMGAN__VPOW2I(t, magic, MMGAN__VIREST));
    return MMGAN__VNAN_SEL(x, p);
}

/* tanh|x| = expm1(2|x|) / (expm1(2|x|) + 2), sign restored; expm1 = 2^n (1 + q) - 1
 * = (2^n - 1) + 2^n q keeps full relative accuracy for small |x|.  Beyond
 * |x| = 9.1 tanh rounds to 1. */
MMGAN__INLINE mmgan__v mmgan__v_tanh(mmgan__v x)
{
    mmgan__v magic = MMGAN__VSET(MMGAN__EXP_MAGIC);
    mmgan__v y = MMGAN__VMUL(MMGAN__VSET(2.0f), MMGAN__VMIN(MMGAN__VSET(9.1f), MMGAN__VABS(x)));
    mmgan__v t = MMGAN__VFMA(y, MMGAN__VSET(MMGAN__LOG2E), magic);
    mmgan__v nf = MMGAN__VSUB(t, magic);
    mmgan__v r = MMGAN__VFMA(nf, MMGAN__VSET(-MMGAN__LN2_HI), y);
    mmgan__v q, s, em;
    r = MMGAN__VFMA(nf, MMGAN__VSET(-MMGAN__LN2_LO), r);
    q = MMGAN__VMUL(MMGAN__EXP_POLY(r), r);
    s = MMGAN__VMUL(MMGAN__VPOW2I(t, magic, MMGAN__VIHALF), MMGAN__VPOW2I(t, magic, MMGAN__VIREST));
    em = MMGAN__VFMA(s, q, MMGAN__VSUB(s, MMGAN__VSET(1.0f)));
    em = MMGAN__VDIV(em, MMGAN__VADD(em, MMGAN__VSET(2.0f)));
    return MMGAN__VNAN_SEL(x, MMGAN__VXOR(em, MMGAN__VSIGNOF(x)));
}

/* With e = exp(-|x|) <= 1 nothing overflows: 1/(1+e) for x > 0, e/(1+e) else,
 * which keeps the tiny (even denormal) values of very negative x. */
MMGAN__INLINE mmgan__v mmgan__v_sigmoid(mmgan__v x)
{
    mmgan__v one = MMGAN__VSET(1.0f);
    mmgan__v e = mmgan__v_exp(MMGAN__VXOR(MMGAN__VABS(x), MMGAN__VSET(-0.0f)));
    return MMGAN__VNAN_SEL(x, MMGAN__VDIV(MMGAN__VGT0_SEL(x, one, e), MMGAN__VADD(one, e)));
}

MMGAN_DEF void mmgan_vec_axpy(size_t n, float a, const float *x, float *y)
{
    mmgan__v va = MMGAN__VSET(a);
    MMGAN__MAP2(n, x, y, y, MMGAN__VFMA(va, u, w));
}

MMGAN_DEF void mmgan_vec_axpby(size_t n, float a, const float *x, float b, float *y)
{
    mmgan__v va = MMGAN__VSET(a), vb = MMGAN__VSET(b);
    MMGAN__MAP2(n, x, y, y, MMGAN__VFMA(va, u, MMGAN__VMUL(vb, w)));
}

MMGAN_DEF void mmgan_vec_scale(size_t n, float a, const float *x, float *y)
{
    mmgan__v va = MMGAN__VSET(a);
    MMGAN__MAP1(n, x, y, MMGAN__VMUL(va, v));
}

MMGAN_DEF void mmgan_vec_add(size_t n, const float *x, const float *y, float *z) { MMGAN__MAP2(n, x, y, z, MMGAN__VADD(u, w)); }
MMGAN_DEF void mmgan_vec_sub(size_t n, const float *x, const float *y, float *z) { MMGAN__MAP2(n, x, y, z, MMGAN__VSUB(u, w)); }
MMGAN_DEF void mmgan_vec_mul(size_t n, const float *x, const float *y, float *z) { MMGAN__MAP2(n, x, y, z, MMGAN__VMUL(u, w)); }

MMGAN_DEF void mmgan_vec_relu(size_t n, const float *x, float *y)
{
    mmgan__v zero = MMGAN__VSET(0.0f);
    MMGAN__MAP1(n, x, y, MMGAN__VGT0_SEL(v, v, zero));
}

MMGAN_DEF void mmgan_vec_leaky_relu(size_t n, float slope, const float *x, float *y)
{
    mmgan__v vs = MMGAN__VSET(slope);
    MMGAN__MAP1(n, x, y, MMGAN__VGT0_SEL(v, v, MMGAN__VMUL(vs, v)));
}

MMGAN_DEF void mmgan_vec_exp(size_t n, const float *x, float *y) { MMGAN__MAP1(n, x, y, mmgan__v_exp(v)); }
MMGAN_DEF void mmgan_vec_tanh(size_t n, const float *x, float *y) { MMGAN__MAP1(n, x, y, mmgan__v_tanh(v)); }
MMGAN_DEF void mmgan_vec_sigmoid(size_t n, const float *x, float *y) { MMGAN__MAP1(n, x, y, mmgan__v_sigmoid(v)); }

/* Float products are exact in double, so these sums are the same on every
 * platform, FMA or not: eight partial sums (value i goes to lane i mod 8,
 * which compilers keep in vector registers: 2x faster than four), then a
 * fixed tree. */
#define MMGAN__TREE8(s) (((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7])))

#if defined(MMGAN__AVX512)
/* MMGAN__TREE8 of a register's eight lanes, in its order. */
MMGAN__INLINE double mmgan__tree8_pd(__m512d s)
{
    /* halves, quarters, pair (adds commute exactly); masked shuffles and a
     * store, as g++ 12 warns of the undefined operand that the unmasked
     * shuffles, extracts and casts pass along */
    const __m512d h = _mm512_add_pd(s, _mm512_mask_shuffle_f64x2(s, 0xFF, s, s, 0x4E));
    const __m512d q = _mm512_add_pd(h, _mm512_mask_shuffle_f64x2(h, 0xFF, h, h, 0xB1));
    double r[8];
    _mm512_storeu_pd(r, _mm512_add_pd(q, _mm512_mask_permute_pd(q, 0xFF, q, 0x55)));
    return r[0];
}

/* The last n - i < 8 values in double, in lanes 0 on, and their mask (an
 * AVX masked load: a copy through memory stalled on store forwarding, 1.2x
 * slower on 49-float planes). */
MMGAN__INLINE __m512d mmgan__tail_pd(size_t n, size_t i, const float *x, __mmask8 *m)
{
    static const int ones[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    *m = (__mmask8)((1u << (n - i)) - 1u);
    return _mm512_maskz_cvtps_pd(*m, _mm256_maskload_ps(x + i, _mm256_loadu_si256((const __m256i *)(ones + 8 - (n - i)))));
}
#endif

MMGAN_DEF double mmgan_vec_sum(size_t n, const float *x)
{
#if defined(MMGAN__AVX512)
    /* the lanes below in one register, the tree in registers: the same bits
     * (NaN payloads aside, which neither form fixes) */
    __m512d s = _mm512_setzero_pd();
    size_t i = 0;
    __mmask8 m;
    for (; i + 8 <= n; i += 8) s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m512d u = mmgan__tail_pd(n, i, x, &m);
        s = _mm512_mask_add_pd(s, m, s, u);
    }
    return mmgan__tree8_pd(s);
#else
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    int j;
    for (; i + 8 <= n; i += 8)
        for (j = 0; j < 8; j++) s[j] += x[i + j];
    for (j = 0; i < n; i++, j++) s[j] += x[i];
    return MMGAN__TREE8(s);
#endif
}

MMGAN_DEF double mmgan_vec_dot(size_t n, const float *x, const float *y)
{
#if defined(MMGAN__AVX512)
    __m512d s = _mm512_setzero_pd();
    size_t i = 0;
    __mmask8 m;
    for (; i + 8 <= n; i += 8)
        s = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), _mm512_cvtps_pd(_mm256_loadu_ps(y + i)), s);
    if (i < n) {
        const __m512d u = mmgan__tail_pd(n, i, x, &m), v = mmgan__tail_pd(n, i, y, &m);
        s = _mm512_mask3_fmadd_pd(u, v, s, m);
    }
    return mmgan__tree8_pd(s);
#else
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    int j;
    for (; i + 8 <= n; i += 8)
        for (j = 0; j < 8; j++) s[j] += (double)x[i + j] * y[i + j];
    for (j = 0; i < n; i++, j++) s[j] += (double)x[i] * y[i];
    return MMGAN__TREE8(s);
#endif
}

/* ===================================================================== */
/* 2.8 Parameters and graph building                                      */
/* ===================================================================== */
/* Copies a name, cut to fit. */
static void mmgan__copy_name(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

struct mmgan_param {
    mmgan_ctx *ctx;
    mmgan_tensor *value;
    char name[64];
};

MMGAN_DEF mmgan_param *mmgan_param_new(mmgan_ctx *ctx, const char *name, int ndim, const int *shape)
{
    mmgan_param *p;
    if (!ctx) return NULL;
    p = (mmgan_param *)mmgan_alloc(ctx, sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    if (name) mmgan__copy_name(p->name, sizeof p->name, name);
    p->value = mmgan_tensor_new(ctx, ndim, shape);
    if (!p->value) {
        mmgan_free(ctx, p);
        return NULL;
    }
    mmgan_tensor_fill(p->value, 0.0f);
    return p;
}

MMGAN_DEF void mmgan_param_free(mmgan_param *p)
{
    if (!p) return;
    mmgan_tensor_free(p->ctx, p->value);
    mmgan_free(p->ctx, p);
}

MMGAN_DEF mmgan_tensor *mmgan_param_tensor(mmgan_param *p) { return p ? p->value : NULL; }
MMGAN_DEF const char *mmgan_param_name(const mmgan_param *p) { return p ? p->name : ""; }

/* The largest scale an initializer takes: its draws (a normal's reach
 * 8.2 std, a uniform's width 2 sqrt(3) a) stay finite in float. */
#define MMGAN__INIT_MAX 1e37

MMGAN_DEF mmgan_status mmgan_param_init(mmgan_param *p, mmgan_init kind, float a, mmgan_rng *rng)
{
    mmgan_tensor *t;
    double fan_in, fan_out, rf = 1.0, bound;
    int i;
    if (!p) return MMGAN_ERR_INVALID;
    t = p->value;
    if (kind != MMGAN_INIT_ZEROS && kind != MMGAN_INIT_CONST && !rng)
        return mmgan__fail(p->ctx, MMGAN_ERR_INVALID, "param_init: '%s' needs an rng", p->name);
    if (kind != MMGAN_INIT_ZEROS && !mmgan__finite(a))
        return mmgan__fail(p->ctx, MMGAN_ERR_INVALID, "param_init: '%s': parameter a=%g must be finite", p->name, (double)a);
    /* Fans as PyTorch computes them: dims 2.. are the receptive field. */
    for (i = 2; i < t->ndim; i++) rf *= t->shape[i];
    fan_in = t->ndim >= 2 ? t->shape[1] * rf : (t->ndim == 1 ? t->shape[0] : 1);
    fan_out = t->ndim >= 2 ? t->shape[0] * rf : (t->ndim == 1 ? t->shape[0] : 1);
    switch (kind) {
    case MMGAN_INIT_ZEROS: mmgan_tensor_fill(t, 0.0f); return MMGAN_OK;
    case MMGAN_INIT_CONST: mmgan_tensor_fill(t, a); return MMGAN_OK;
    case MMGAN_INIT_NORMAL:
        if (!(a >= 0.0f && a <= MMGAN__INIT_MAX)) break;
        mmgan_rng_fill_normal(rng, t->data, t->numel, 0.0f, a);
        return MMGAN_OK;
    case MMGAN_INIT_UNIFORM:
        if (!(a >= 0.0f && a <= MMGAN__INIT_MAX)) break;
        mmgan_rng_fill_uniform(rng, t->data, t->numel, -a, a);
        return MMGAN_OK;
    case MMGAN_INIT_HE_NORMAL:
    case MMGAN_INIT_HE_UNIFORM: {
        double std = sqrt(2.0 / (1.0 + (double)a * a) / fan_in);
        if (kind == MMGAN_INIT_HE_NORMAL) mmgan_rng_fill_normal(rng, t->data, t->numel, 0.0f, (float)std);
        else mmgan_rng_fill_uniform(rng, t->data, t->numel, (float)(-std * sqrt(3.0)), (float)(std * sqrt(3.0)));
        return MMGAN_OK;
    }
    case MMGAN_INIT_XAVIER_NORMAL:
    case MMGAN_INIT_XAVIER_UNIFORM:
        bound = a * sqrt(2.0 / (fan_in + fan_out));
        if (!(a > 0.0f && bound <= MMGAN__INIT_MAX)) break;
        if (kind == MMGAN_INIT_XAVIER_NORMAL) mmgan_rng_fill_normal(rng, t->data, t->numel, 0.0f, (float)bound);
        else mmgan_rng_fill_uniform(rng, t->data, t->numel, (float)(-bound * sqrt(3.0)), (float)(bound * sqrt(3.0)));
        return MMGAN_OK;
    default:
        return mmgan__fail(p->ctx, MMGAN_ERR_INVALID, "param_init: unknown initializer %d", (int)kind);
    }
    return mmgan__fail(p->ctx, MMGAN_ERR_INVALID, "param_init: '%s': parameter a=%g is out of range for this initializer",
                       p->name, (double)a);
}

enum {
    MMGAN__OP_INPUT, MMGAN__OP_PARAM, MMGAN__OP_CONST, MMGAN__OP_FILL,
    MMGAN__OP_ADD, MMGAN__OP_SUB, MMGAN__OP_MUL, MMGAN__OP_DIV, MMGAN__OP_AFFINE,
    MMGAN__OP_SUM_TO, MMGAN__OP_BROADCAST, MMGAN__OP_MATMUL,
    MMGAN__OP_CONV, MMGAN__OP_CONVT, MMGAN__OP_WGRAD,
    MMGAN__OP_RESHAPE, MMGAN__OP_CONCAT, MMGAN__OP_SLICE, MMGAN__OP_PAD_BATCH, MMGAN__OP_DETACH,
    MMGAN__OP_RELU, MMGAN__OP_LEAKY, MMGAN__OP_SIGMOID, MMGAN__OP_TANH, MMGAN__OP_SOFTPLUS,
    MMGAN__OP_LOGSIG, MMGAN__OP_EXP, MMGAN__OP_LOG, MMGAN__OP_SQRT, MMGAN__OP_ABS,
    MMGAN__OP_SQUARE, MMGAN__OP_MAXIMUM, MMGAN__OP_STEP_MUL, MMGAN__OP_SIGN,
    MMGAN__OP_MAXABS, MMGAN__OP_MAXABS_MASK, MMGAN__OP_SOFTMAX, MMGAN__OP_BN, MMGAN__OP_BN_DX, MMGAN__OP_BN_DGAMMA,
    MMGAN__OP_RANDOM, MMGAN__OP_SCALAR_REF,
    MMGAN__OP_COUNT
};

typedef struct mmgan__node {
    int op;
    int nin, in[3];
    int ndim, shape[4];
    size_t numel;
    int ip[6];            /* integer attributes (stride, pad, ...) */
    float fp[2];          /* float attributes (slope, scale, ...) */
    mmgan_param *par[2];  /* PARAM: the parameter; BN: running mean, var (or NULL) */
    float *cdata;         /* CONST: owned copy */
    const float *feed;    /* INPUT: caller memory bound by mmgan_graph_feed */
    void *ref;            /* RANDOM: the rng; SCALAR_REF: the float read at each run */
    char name[24];
} mmgan__node;

struct mmgan_graph {
    mmgan_ctx *ctx;
    mmgan__node *nodes;
    int n, cap;
    mmgan_status status;
};

/* Returned by a VJP for an input whose gradient is exactly zero. */
#define MMGAN__ZERO (-2)

static const char *mmgan__op_name(int op);

static mmgan_node mmgan__gfail(mmgan_graph *g, mmgan_status s, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static mmgan_node mmgan__gfail(mmgan_graph *g, mmgan_status s, const char *fmt, ...)
{
    va_list ap;
    /* The first error is the one worth reading: later ones are echoes. */
    if (g->status == MMGAN_OK) {
        g->status = s;
        va_start(ap, fmt);
        vsnprintf(g->ctx->err, sizeof g->ctx->err, fmt, ap);
        va_end(ap);
    }
    return MMGAN_NONE;
}

/* A builder's shape check (mmgan__check_shape, whose message goes to the
 * context): a graph that already failed keeps its first message (saved
 * only then: every node pushed passes here). */
static int mmgan__gshape_ok(mmgan_graph *g, const char *who, int ndim, const int *shape, size_t *numel)
{
    char first[sizeof g->ctx->err];
    mmgan_status s;
    if (g->status != MMGAN_OK) memcpy(first, g->ctx->err, sizeof first);
    s = mmgan__check_shape(g->ctx, who, ndim, shape, numel);
    if (s == MMGAN_OK) return 1;
    if (g->status == MMGAN_OK) g->status = s;
    else memcpy(g->ctx->err, first, sizeof first);
    return 0;
}

/* Validates node arguments; MMGAN_NONE inputs fail quietly (already reported). */
static int mmgan__args_ok(mmgan_graph *g, const char *who, int n, const mmgan_node *x)
{
    int i;
    if (!g) return 0;
    for (i = 0; i < n; i++) {
        if (x[i] == MMGAN_NONE) {
            if (g->status == MMGAN_OK) mmgan__gfail(g, MMGAN_ERR_INVALID, "%s: input %d is MMGAN_NONE", who, i);
            return 0;
        }
        if (x[i] < 0 || x[i] >= g->n) {
            mmgan__gfail(g, MMGAN_ERR_INVALID, "%s: node %d does not exist in this graph (%d nodes)", who, x[i], g->n);
            return 0;
        }
    }
    return 1;
}

static char *mmgan__nshape(const mmgan__node *nd, char *buf, size_t size)
{
    mmgan_tensor t;
    memset(&t, 0, sizeof t);
    t.ndim = nd->ndim;
    memcpy(t.shape, nd->shape, sizeof t.shape);
    return mmgan_shape_str(&t, buf, size);
}

/* Appends a node; attributes are set by the caller through the returned id. */
static mmgan_node mmgan__push(mmgan_graph *g, int op, int nin, const mmgan_node *in, int ndim, const int *shape)
{
    mmgan__node *nd;
    size_t numel = 0;
    int i;
    if (!mmgan__gshape_ok(g, mmgan__op_name(op), ndim, shape, &numel)) return MMGAN_NONE;
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 64;
        mmgan__node *nn = (mmgan__node *)MMGAN_REALLOC(g->ctx->alloc_user, g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return mmgan__gfail(g, MMGAN_ERR_NOMEM, "%s: out of memory growing the graph", mmgan__op_name(op));
        g->nodes = nn;
        g->cap = cap;
    }
    nd = &g->nodes[g->n];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->nin = nin;
    for (i = 0; i < nin; i++) nd->in[i] = in[i];
    nd->ndim = ndim;
    for (i = 0; i < 4; i++) nd->shape[i] = i < ndim ? shape[i] : 1;
    nd->numel = numel;
    return g->n++;
}

MMGAN_DEF mmgan_graph *mmgan_graph_new(mmgan_ctx *ctx)
{
    mmgan_graph *g;
    if (!ctx) return NULL;
    g = (mmgan_graph *)mmgan_alloc(ctx, sizeof *g);
    if (!g) return NULL;
    memset(g, 0, sizeof *g);
    g->ctx = ctx;
    return g;
}

MMGAN_DEF void mmgan_graph_free(mmgan_graph *g)
{
    int i;
    if (!g) return;
    for (i = 0; i < g->n; i++) mmgan__free_aligned(g->ctx->alloc_user, g->nodes[i].cdata);
    MMGAN_FREE(g->ctx->alloc_user, g->nodes);
    mmgan_free(g->ctx, g);
}

MMGAN_DEF mmgan_status mmgan_graph_status(const mmgan_graph *g) { return g ? g->status : MMGAN_ERR_INVALID; }
MMGAN_DEF int mmgan_graph_size(const mmgan_graph *g) { return g ? g->n : 0; }

MMGAN_DEF int mmgan_node_shape(const mmgan_graph *g, mmgan_node x, int *shape)
{
    int i;
    if (!g || x < 0 || x >= g->n) return 0;
    if (shape)
        for (i = 0; i < g->nodes[x].ndim; i++) shape[i] = g->nodes[x].shape[i];
    return g->nodes[x].ndim;
}

MMGAN_DEF size_t mmgan_node_numel(const mmgan_graph *g, mmgan_node x)
{
    return (!g || x < 0 || x >= g->n) ? 0 : g->nodes[x].numel;
}

MMGAN_DEF mmgan_node mmgan_input(mmgan_graph *g, const char *name, int ndim, const int *shape)
{
    mmgan_node id;
    if (!g) return MMGAN_NONE;
    id = mmgan__push(g, MMGAN__OP_INPUT, 0, NULL, ndim, shape);
    if (id >= 0 && name) mmgan__copy_name(g->nodes[id].name, sizeof g->nodes[id].name, name);
    return id;
}

MMGAN_DEF mmgan_status mmgan_graph_feed(mmgan_graph *g, mmgan_node input, const float *data)
{
    if (!g) return MMGAN_ERR_INVALID;
    if (input < 0 || input >= g->n || g->nodes[input].op != MMGAN__OP_INPUT)
        return mmgan__fail(g->ctx, MMGAN_ERR_INVALID, "graph_feed: node %d is not an input", input);
    if (!data) return mmgan__fail(g->ctx, MMGAN_ERR_INVALID, "graph_feed: data for input '%s' is NULL", g->nodes[input].name);
    g->nodes[input].feed = data;
    return MMGAN_OK;
}

MMGAN_DEF mmgan_node mmgan_parameter(mmgan_graph *g, mmgan_param *p)
{
    mmgan_node id;
    if (!g) return MMGAN_NONE;
    if (!p) return mmgan__gfail(g, MMGAN_ERR_INVALID, "parameter: NULL parameter");
    /* One node per parameter, so gradients from every use meet there. */
    for (id = 0; id < g->n; id++)
        if (g->nodes[id].op == MMGAN__OP_PARAM && g->nodes[id].par[0] == p) return id;
    id = mmgan__push(g, MMGAN__OP_PARAM, 0, NULL, p->value->ndim, p->value->shape);
    if (id >= 0) {
        g->nodes[id].par[0] = p;
        mmgan__copy_name(g->nodes[id].name, sizeof g->nodes[id].name, p->name);
    }
    return id;
}

MMGAN_DEF mmgan_node mmgan_constant(mmgan_graph *g, int ndim, const int *shape, const float *data)
{
    mmgan_node id;
    float *copy;
    if (!g) return MMGAN_NONE;
    if (!data) return mmgan__gfail(g, MMGAN_ERR_INVALID, "constant: data is NULL");
    id = mmgan__push(g, MMGAN__OP_CONST, 0, NULL, ndim, shape);
    if (id < 0) return id;
    copy = (float *)mmgan__alloc_aligned(g->ctx->alloc_user, g->nodes[id].numel * sizeof(float));
    if (!copy) {
        g->n--;
        return mmgan__gfail(g, MMGAN_ERR_NOMEM, "constant: out of memory");
    }
    memcpy(copy, data, g->nodes[id].numel * sizeof(float));
    g->nodes[id].cdata = copy;
    return id;
}

MMGAN_DEF mmgan_node mmgan_fill(mmgan_graph *g, int ndim, const int *shape, float v)
{
    mmgan_node id;
    if (!g) return MMGAN_NONE;
    if (!mmgan__finite(v)) return mmgan__gfail(g, MMGAN_ERR_INVALID, "fill: value %g is not finite", (double)v);
    id = mmgan__push(g, MMGAN__OP_FILL, 0, NULL, ndim, shape);
    if (id >= 0) g->nodes[id].fp[0] = v;
    return id;
}

/* Same shape as node x, any op. */
static mmgan_node mmgan__like(mmgan_graph *g, int op, int nin, const mmgan_node *in, mmgan_node x)
{
    int shape[4];
    memcpy(shape, g->nodes[x].shape, sizeof shape);
    return mmgan__push(g, op, nin, in, g->nodes[x].ndim, shape);
}

static mmgan_node mmgan__unary(mmgan_graph *g, int op, mmgan_node x, float f0, float f1)
{
    mmgan_node id;
    if (!mmgan__args_ok(g, mmgan__op_name(op), 1, &x)) return MMGAN_NONE;
    if (!mmgan__finite(f0) || !mmgan__finite(f1))   /* a slope, a scale, a temperature: NaN or Inf everywhere */
        return mmgan__gfail(g, MMGAN_ERR_INVALID, "%s: option %g is not finite", mmgan__op_name(op),
                            (double)(mmgan__finite(f0) ? f1 : f0));
    id = mmgan__like(g, op, 1, &x, x);
    if (id >= 0) {
        g->nodes[id].fp[0] = f0;
        g->nodes[id].fp[1] = f1;
    }
    return id;
}

/* Broadcast shape of a and b (NumPy rules) into out; 0 and a message if incompatible. */
static int mmgan__bcast_shape(mmgan_graph *g, const char *who, mmgan_node a, mmgan_node b, int *ndim, int *out)
{
    const mmgan__node *na = &g->nodes[a], *nb = &g->nodes[b];
    int nd = MMGAN__MAX(na->ndim, nb->ndim), i;
    for (i = 0; i < nd; i++) {
        int ia = na->ndim - nd + i, ib = nb->ndim - nd + i;
        int sa = ia >= 0 ? na->shape[ia] : 1, sb = ib >= 0 ? nb->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char s1[64], s2[64];
            mmgan__gfail(g, MMGAN_ERR_SHAPE, "%s: shapes %s and %s do not broadcast (axis %d: %d vs %d)",
                         who, mmgan__nshape(na, s1, sizeof s1), mmgan__nshape(nb, s2, sizeof s2), i, sa, sb);
            return 0;
        }
        out[i] = MMGAN__MAX(sa, sb);
    }
    *ndim = nd;
    return 1;
}

static mmgan_node mmgan__binary(mmgan_graph *g, int op, mmgan_node a, mmgan_node b)
{
    mmgan_node in[2];
    int nd, shape[4];
    in[0] = a; in[1] = b;
    if (!mmgan__args_ok(g, mmgan__op_name(op), 2, in)) return MMGAN_NONE;
    if (!mmgan__bcast_shape(g, mmgan__op_name(op), a, b, &nd, shape)) return MMGAN_NONE;
    return mmgan__push(g, op, 2, in, nd, shape);
}

MMGAN_DEF mmgan_node mmgan_add(mmgan_graph *g, mmgan_node a, mmgan_node b) { return mmgan__binary(g, MMGAN__OP_ADD, a, b); }
MMGAN_DEF mmgan_node mmgan_sub(mmgan_graph *g, mmgan_node a, mmgan_node b) { return mmgan__binary(g, MMGAN__OP_SUB, a, b); }
MMGAN_DEF mmgan_node mmgan_mul(mmgan_graph *g, mmgan_node a, mmgan_node b) { return mmgan__binary(g, MMGAN__OP_MUL, a, b); }
MMGAN_DEF mmgan_node mmgan_div(mmgan_graph *g, mmgan_node a, mmgan_node b) { return mmgan__binary(g, MMGAN__OP_DIV, a, b); }
MMGAN_DEF mmgan_node mmgan_affine(mmgan_graph *g, mmgan_node x, float s, float c) { return mmgan__unary(g, MMGAN__OP_AFFINE, x, s, c); }
MMGAN_DEF mmgan_node mmgan_scale(mmgan_graph *g, mmgan_node x, float s) { return mmgan__unary(g, MMGAN__OP_AFFINE, x, s, 0.0f); }

/* sum_to and broadcast_to share the rule: target axes (right-aligned) equal
 * to x's or 1 on one side. */
static mmgan_node mmgan__reshape_like(mmgan_graph *g, int op, mmgan_node x, int ndim, const int *shape)
{
    const char *who = mmgan__op_name(op);
    const mmgan__node *nx;
    int i;
    if (!mmgan__args_ok(g, who, 1, &x)) return MMGAN_NONE;
    nx = &g->nodes[x];
    if (ndim < 0 || ndim > MMGAN_MAX_DIMS || (ndim > 0 && !shape))   /* 0: a scalar's gradient */
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "%s: target must have 0 to %d dimensions%s", who, MMGAN_MAX_DIMS,
                            ndim > 0 && ndim <= MMGAN_MAX_DIMS ? " (shape is NULL)" : "");
    /* x's axes beyond the target's must be 1 (a target of fewer axes: a
     * gradient [1] back to a scalar parameter) */
    for (i = 1; i <= MMGAN__MAX(ndim, nx->ndim); i++) {
        int st = i <= ndim ? shape[ndim - i] : 1, sx = i <= nx->ndim ? nx->shape[nx->ndim - i] : 1;
        int ok = op == MMGAN__OP_SUM_TO ? (st == sx || st == 1) : (st == sx || sx == 1);
        if (!ok) {
            char s1[64];
            return mmgan__gfail(g, MMGAN_ERR_SHAPE, "%s: x %s cannot be %s to a shape with %d at axis -%d",
                                who, mmgan__nshape(nx, s1, sizeof s1),
                                op == MMGAN__OP_SUM_TO ? "summed" : "broadcast", st, i);
        }
    }
    return mmgan__push(g, op, 1, &x, ndim, shape);
}

MMGAN_DEF mmgan_node mmgan_sum_to(mmgan_graph *g, mmgan_node x, int ndim, const int *shape)
{
    return mmgan__reshape_like(g, MMGAN__OP_SUM_TO, x, ndim, shape);
}

MMGAN_DEF mmgan_node mmgan_broadcast_to(mmgan_graph *g, mmgan_node x, int ndim, const int *shape)
{
    return mmgan__reshape_like(g, MMGAN__OP_BROADCAST, x, ndim, shape);
}

MMGAN_DEF mmgan_node mmgan_matmul(mmgan_graph *g, mmgan_node a, mmgan_node b, int trans_a, int trans_b)
{
    mmgan_node in[2], id;
    const mmgan__node *na, *nb;
    int m, ka, kb, n, shape[2];
    in[0] = a; in[1] = b;
    if (!mmgan__args_ok(g, "matmul", 2, in)) return MMGAN_NONE;
    na = &g->nodes[a]; nb = &g->nodes[b];
    if (na->ndim != 2 || nb->ndim != 2) {
        char s1[64], s2[64];
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "matmul: operands must be 2-d, got %s and %s",
                            mmgan__nshape(na, s1, sizeof s1), mmgan__nshape(nb, s2, sizeof s2));
    }
    m = na->shape[trans_a ? 1 : 0]; ka = na->shape[trans_a ? 0 : 1];
    kb = nb->shape[trans_b ? 1 : 0]; n = nb->shape[trans_b ? 0 : 1];
    if (ka != kb) {
        char s1[64], s2[64];
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "matmul: inner sizes differ: %s%s has %d columns, %s%s has %d rows",
                            mmgan__nshape(na, s1, sizeof s1), trans_a ? "^T" : "", ka,
                            mmgan__nshape(nb, s2, sizeof s2), trans_b ? "^T" : "", kb);
    }
    shape[0] = m; shape[1] = n;
    id = mmgan__push(g, MMGAN__OP_MATMUL, 2, in, 2, shape);
    if (id >= 0) { g->nodes[id].ip[0] = !!trans_a; g->nodes[id].ip[1] = !!trans_b; }
    return id;
}

static mmgan_node mmgan__conv_bias(mmgan_graph *g, mmgan_node conv, mmgan_node b);

MMGAN_DEF mmgan_node mmgan_bias_add(mmgan_graph *g, mmgan_node x, mmgan_node b)
{
    mmgan_node in[2];
    const mmgan__node *nx, *nb;
    int shape[4] = {1, 1, 1, 1};
    in[0] = x; in[1] = b;
    if (!mmgan__args_ok(g, "bias_add", 2, in)) return MMGAN_NONE;
    nx = &g->nodes[x]; nb = &g->nodes[b];
    if (nx->ndim < 2 || nb->ndim != 1 || nb->shape[0] != nx->shape[1]) {
        char s1[64], s2[64];
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "bias_add: bias %s must be 1-d with one value per channel of x %s",
                            mmgan__nshape(nb, s2, sizeof s2), mmgan__nshape(nx, s1, sizeof s1));
    }
    shape[1] = nb->shape[0];
    b = mmgan_reshape(g, b, nx->ndim, shape);
    if (b >= 0 && (g->nodes[x].op == MMGAN__OP_CONV || g->nodes[x].op == MMGAN__OP_CONVT) && g->nodes[x].nin == 2)
        return mmgan__conv_bias(g, x, b);
    return mmgan_add(g, x, b);
}

MMGAN_DEF mmgan_node mmgan_linear(mmgan_graph *g, mmgan_node x, mmgan_node w, mmgan_node b)
{
    mmgan_node y, in[2];
    in[0] = x; in[1] = w;
    if (!mmgan__args_ok(g, "linear", 2, in)) return MMGAN_NONE;
    if (g->nodes[x].ndim != 2 || g->nodes[w].ndim != 2 || g->nodes[x].shape[1] != g->nodes[w].shape[1]) {
        char s1[64], s2[64];
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "linear: x %s must be [N, in] and w %s [out, in]",
                            mmgan__nshape(&g->nodes[x], s1, sizeof s1), mmgan__nshape(&g->nodes[w], s2, sizeof s2));
    }
    y = mmgan_matmul(g, x, w, 0, 1);
    return b == MMGAN_NONE ? y : mmgan_bias_add(g, y, b);
}

/* Conv attributes: ip = {stride, pad, kh, kw, out_pad_h, out_pad_w}. */
static mmgan_node mmgan__conv_node(mmgan_graph *g, int op, mmgan_node x, mmgan_node w, const int *shape,
                                   int stride, int pad, int kh, int kw, int oph, int opw)
{
    mmgan_node in[2], id;
    in[0] = x; in[1] = w;
    id = mmgan__push(g, op, 2, in, 4, shape);
    if (id >= 0) {
        int *ip = g->nodes[id].ip;
        ip[0] = stride; ip[1] = pad; ip[2] = kh; ip[3] = kw; ip[4] = oph; ip[5] = opw;
    }
    return id;
}

/* conv2d(x, w) + b or conv_transpose2d(x, w) + b as one op: the bias is
 * added as the output is written in NCHW order (conv2d's product rows, the
 * transpose's folded planes), not in a pass of its own (on the DCGAN critic
 * that pass was 1% of a step, 2% of MAGAN's).  The op without bias stays in
 * the graph and is computed only if something else reads it; b is already
 * shaped [1, C, 1, 1], so its gradient is the add's. */
static mmgan_node mmgan__conv_bias(mmgan_graph *g, mmgan_node conv, mmgan_node b)
{
    mmgan__node c = g->nodes[conv];   /* a copy: pushing may move the nodes */
    mmgan_node in[3], id;
    in[0] = c.in[0]; in[1] = c.in[1]; in[2] = b;
    id = mmgan__push(g, c.op, 3, in, 4, c.shape);
    if (id >= 0) memcpy(g->nodes[id].ip, c.ip, sizeof c.ip);
    return id;
}

static int mmgan__conv_args(mmgan_graph *g, const char *who, mmgan_node x, mmgan_node w, int wdim, int stride, int pad)
{
    mmgan_node in[2];
    in[0] = x; in[1] = w;
    if (!mmgan__args_ok(g, who, 2, in)) return 0;
    if (g->nodes[x].ndim != 4 || g->nodes[w].ndim != wdim) {
        char s1[64], s2[64];
        mmgan__gfail(g, MMGAN_ERR_SHAPE, "%s: x %s must be 4-d [N, C, H, W] and %s %s %d-d",
                     who, mmgan__nshape(&g->nodes[x], s1, sizeof s1), wdim == 4 ? "weight" : "gy",
                     mmgan__nshape(&g->nodes[w], s2, sizeof s2), wdim);
        return 0;
    }
    if (stride < 1 || pad < 0) {
        mmgan__gfail(g, MMGAN_ERR_INVALID, "%s: stride %d must be >= 1 and pad %d >= 0", who, stride, pad);
        return 0;
    }
    return 1;
}

/* The kernels index a zero-padded image [c][h + 2 pad][w + 2 pad] with ints:
 * it must hold at most INT_MAX floats. */
static int mmgan__conv_fits(mmgan_graph *g, const char *who, long long c, long long h, long long w, int pad)
{
    const long long ph = h + 2LL * pad, pw = w + 2LL * pad;
    if (ph <= INT_MAX && pw <= INT_MAX && ph * pw <= INT_MAX / c) return 1;
    mmgan__gfail(g, MMGAN_ERR_SHAPE, "%s: %lld channels of %lldx%lld padded by %d make more than %d floats an image",
                 who, c, h, w, pad, INT_MAX);
    return 0;
}

MMGAN_DEF mmgan_node mmgan_conv2d(mmgan_graph *g, mmgan_node x, mmgan_node w, int stride, int pad)
{
    const mmgan__node *nx, *nw;
    int shape[4];
    char s1[64], s2[64];
    if (!mmgan__conv_args(g, "conv2d", x, w, 4, stride, pad)) return MMGAN_NONE;
    nx = &g->nodes[x]; nw = &g->nodes[w];
    if (nx->shape[1] != nw->shape[1])
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "conv2d: input has %d channels, weight expects %d (input %s, weight %s)",
                            nx->shape[1], nw->shape[1], mmgan__nshape(nx, s1, sizeof s1), mmgan__nshape(nw, s2, sizeof s2));
    if (!mmgan__conv_fits(g, "conv2d", nx->shape[1], nx->shape[2], nx->shape[3], pad)) return MMGAN_NONE;
    if (nx->shape[2] + 2 * pad < nw->shape[2] || nx->shape[3] + 2 * pad < nw->shape[3])
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "conv2d: kernel %dx%d is larger than the padded input (input %s, pad %d)",
                            nw->shape[2], nw->shape[3], mmgan__nshape(nx, s1, sizeof s1), pad);
    shape[0] = nx->shape[0];
    shape[1] = nw->shape[0];
    shape[2] = (nx->shape[2] + 2 * pad - nw->shape[2]) / stride + 1;
    shape[3] = (nx->shape[3] + 2 * pad - nw->shape[3]) / stride + 1;
    return mmgan__conv_node(g, MMGAN__OP_CONV, x, w, shape, stride, pad, nw->shape[2], nw->shape[3], 0, 0);
}

static mmgan_node mmgan__conv_transpose(mmgan_graph *g, mmgan_node x, mmgan_node w, int stride, int pad, int oph, int opw)
{
    const mmgan__node *nx, *nw;
    long long ph, pw;
    int shape[4];
    char s1[64], s2[64];
    if (!mmgan__conv_args(g, "conv_transpose2d", x, w, 4, stride, pad)) return MMGAN_NONE;
    nx = &g->nodes[x]; nw = &g->nodes[w];
    if (nx->shape[1] != nw->shape[0])
        return mmgan__gfail(g, MMGAN_ERR_SHAPE,
                            "conv_transpose2d: input has %d channels, weight expects %d (input %s, weight %s = [in, out, kh, kw])",
                            nx->shape[1], nw->shape[0], mmgan__nshape(nx, s1, sizeof s1), mmgan__nshape(nw, s2, sizeof s2));
    if (oph < 0 || opw < 0 || oph >= stride || opw >= stride)
        return mmgan__gfail(g, MMGAN_ERR_INVALID, "conv_transpose2d: out_pad %d must be >= 0 and less than stride %d",
                            MMGAN__MAX(oph, opw), stride);
    /* the output's extent plus 2 pad, in 64 bits: stride and pad are the caller's */
    ph = (long long)(nx->shape[2] - 1) * stride + nw->shape[2] + oph;
    pw = (long long)(nx->shape[3] - 1) * stride + nw->shape[3] + opw;
    if (ph - 2LL * pad < 1 || pw - 2LL * pad < 1)
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "conv_transpose2d: pad %d leaves an empty output (input %s, weight %s)",
                            pad, mmgan__nshape(nx, s1, sizeof s1), mmgan__nshape(nw, s2, sizeof s2));
    if (!mmgan__conv_fits(g, "conv_transpose2d", nw->shape[1], ph - 2LL * pad, pw - 2LL * pad, pad)) return MMGAN_NONE;
    shape[0] = nx->shape[0];
    shape[1] = nw->shape[1];
    shape[2] = (int)(ph - 2LL * pad);
    shape[3] = (int)(pw - 2LL * pad);
    return mmgan__conv_node(g, MMGAN__OP_CONVT, x, w, shape, stride, pad, nw->shape[2], nw->shape[3], oph, opw);
}

MMGAN_DEF mmgan_node mmgan_conv_transpose2d(mmgan_graph *g, mmgan_node x, mmgan_node w, int stride, int pad, int out_pad)
{
    return mmgan__conv_transpose(g, x, w, stride, pad, out_pad, out_pad);
}

MMGAN_DEF mmgan_node mmgan_conv2d_wgrad(mmgan_graph *g, mmgan_node x, mmgan_node gy, int kh, int kw, int stride, int pad)
{
    const mmgan__node *nx, *ny;
    int shape[4];
    char s1[64], s2[64];
    if (!mmgan__conv_args(g, "conv2d_wgrad", x, gy, 4, stride, pad)) return MMGAN_NONE;
    nx = &g->nodes[x]; ny = &g->nodes[gy];
    if (!mmgan__conv_fits(g, "conv2d_wgrad", nx->shape[1], nx->shape[2], nx->shape[3], pad)) return MMGAN_NONE;
    if (kh < 1 || kw < 1 || nx->shape[2] + 2 * pad < kh || nx->shape[3] + 2 * pad < kw ||
        nx->shape[0] != ny->shape[0] ||
        ny->shape[2] != (nx->shape[2] + 2 * pad - kh) / stride + 1 ||
        ny->shape[3] != (nx->shape[3] + 2 * pad - kw) / stride + 1)
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "conv2d_wgrad: gy %s is not the output of a %dx%d conv (stride %d, pad %d) of x %s",
                            mmgan__nshape(ny, s2, sizeof s2), kh, kw, stride, pad, mmgan__nshape(nx, s1, sizeof s1));
    shape[0] = ny->shape[1]; shape[1] = nx->shape[1]; shape[2] = kh; shape[3] = kw;
    return mmgan__conv_node(g, MMGAN__OP_WGRAD, x, gy, shape, stride, pad, kh, kw, 0, 0);
}

MMGAN_DEF mmgan_node mmgan_reshape(mmgan_graph *g, mmgan_node x, int ndim, const int *shape)
{
    size_t numel = 0;
    if (!mmgan__args_ok(g, "reshape", 1, &x)) return MMGAN_NONE;
    if (!mmgan__gshape_ok(g, "reshape", ndim, shape, &numel)) return MMGAN_NONE;
    if (numel != g->nodes[x].numel) {
        char s1[64];
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "reshape: x %s has %lu elements, the new shape %lu",
                            mmgan__nshape(&g->nodes[x], s1, sizeof s1), (unsigned long)g->nodes[x].numel,
                            (unsigned long)numel);
    }
    return mmgan__push(g, MMGAN__OP_RESHAPE, 1, &x, ndim, shape);
}

MMGAN_DEF mmgan_node mmgan_flatten(mmgan_graph *g, mmgan_node x)
{
    int shape[2];
    if (!mmgan__args_ok(g, "flatten", 1, &x)) return MMGAN_NONE;
    shape[0] = g->nodes[x].shape[0];
    shape[1] = (int)(g->nodes[x].numel / (size_t)shape[0]);
    return mmgan_reshape(g, x, 2, shape);
}

/* Whether x (a valid node) has a batch axis: a scalar's one value has none,
 * and the batch ops' shape[0] would be dropped for it (pad_batch of a
 * scalar wrote past its one float). */
static int mmgan__batch_axis(mmgan_graph *g, const char *who, mmgan_node x)
{
    if (g->nodes[x].ndim > 0) return 1;
    mmgan__gfail(g, MMGAN_ERR_SHAPE, "%s: a scalar (0 dimensions) has no batch axis", who);
    return 0;
}

MMGAN_DEF mmgan_node mmgan_concat(mmgan_graph *g, mmgan_node a, mmgan_node b)
{
    mmgan_node in[2];
    const mmgan__node *na, *nb;
    int shape[4], i;
    in[0] = a; in[1] = b;
    if (!mmgan__args_ok(g, "concat", 2, in)) return MMGAN_NONE;
    if (!mmgan__batch_axis(g, "concat", a) || !mmgan__batch_axis(g, "concat", b)) return MMGAN_NONE;
    na = &g->nodes[a]; nb = &g->nodes[b];
    for (i = 1; i < 4; i++)
        if (na->ndim != nb->ndim || na->shape[i] != nb->shape[i]) {
            char s1[64], s2[64];
            return mmgan__gfail(g, MMGAN_ERR_SHAPE, "concat: %s and %s differ beyond the batch axis",
                                mmgan__nshape(na, s1, sizeof s1), mmgan__nshape(nb, s2, sizeof s2));
        }
    if (na->shape[0] > INT_MAX - nb->shape[0])
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "concat: %d and %d samples make more than %d", na->shape[0],
                            nb->shape[0], INT_MAX);
    memcpy(shape, na->shape, sizeof shape);
    shape[0] = na->shape[0] + nb->shape[0];
    return mmgan__push(g, MMGAN__OP_CONCAT, 2, in, na->ndim, shape);
}

MMGAN_DEF mmgan_node mmgan_slice(mmgan_graph *g, mmgan_node x, int start, int count)
{
    int shape[4];
    mmgan_node id;
    if (!mmgan__args_ok(g, "slice", 1, &x) || !mmgan__batch_axis(g, "slice", x)) return MMGAN_NONE;
    if (start < 0 || count < 1 || start > g->nodes[x].shape[0] - count)
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "slice: samples [%d, %d + %d) are not within the batch of %d",
                            start, start, count, g->nodes[x].shape[0]);
    memcpy(shape, g->nodes[x].shape, sizeof shape);
    shape[0] = count;
    id = mmgan__push(g, MMGAN__OP_SLICE, 1, &x, g->nodes[x].ndim, shape);
    if (id >= 0) g->nodes[id].ip[0] = start;
    return id;
}

MMGAN_DEF mmgan_node mmgan_pad_batch(mmgan_graph *g, mmgan_node x, int start, int total)
{
    int shape[4];
    mmgan_node id;
    if (!mmgan__args_ok(g, "pad_batch", 1, &x) || !mmgan__batch_axis(g, "pad_batch", x)) return MMGAN_NONE;
    if (start < 0 || total < g->nodes[x].shape[0] || start > total - g->nodes[x].shape[0])
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "pad_batch: %d samples at %d do not fit in a batch of %d",
                            g->nodes[x].shape[0], start, total);
    memcpy(shape, g->nodes[x].shape, sizeof shape);
    shape[0] = total;
    id = mmgan__push(g, MMGAN__OP_PAD_BATCH, 1, &x, g->nodes[x].ndim, shape);
    if (id >= 0) g->nodes[id].ip[0] = start;
    return id;
}

MMGAN_DEF mmgan_node mmgan_detach(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_DETACH, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_relu(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_RELU, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_leaky_relu(mmgan_graph *g, mmgan_node x, float slope) { return mmgan__unary(g, MMGAN__OP_LEAKY, x, slope, 0); }
MMGAN_DEF mmgan_node mmgan_sigmoid(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_SIGMOID, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_tanh(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_TANH, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_softplus(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_SOFTPLUS, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_log_sigmoid(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_LOGSIG, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_exp(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_EXP, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_log(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_LOG, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_sqrt(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_SQRT, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_abs(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_ABS, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_square(mmgan_graph *g, mmgan_node x) { return mmgan__unary(g, MMGAN__OP_SQUARE, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_maximum(mmgan_graph *g, mmgan_node x, float c) { return mmgan__unary(g, MMGAN__OP_MAXIMUM, x, c, 0); }

/* Shape [N, 1, ...] of per-sample results, or [1] for whole-tensor ones. */
static int mmgan__reduced_shape(const mmgan__node *nx, int per_sample, int *shape)
{
    int i;
    if (!per_sample) { shape[0] = 1; return 1; }
    shape[0] = nx->shape[0];
    for (i = 1; i < nx->ndim; i++) shape[i] = 1;
    return nx->ndim < 1 ? 1 : nx->ndim;
}

static mmgan_node mmgan__reduce(mmgan_graph *g, mmgan_node x, int per_sample, int mean)
{
    int shape[4], nd;
    mmgan_node s;
    if (!mmgan__args_ok(g, per_sample ? "sum_per_sample" : "sum", 1, &x)) return MMGAN_NONE;
    nd = mmgan__reduced_shape(&g->nodes[x], per_sample, shape);
    s = mmgan_sum_to(g, x, nd, shape);
    if (mean && s >= 0) s = mmgan_scale(g, s, (float)((double)mmgan_node_numel(g, s) / (double)g->nodes[x].numel));
    return s;
}

MMGAN_DEF mmgan_node mmgan_sum(mmgan_graph *g, mmgan_node x) { return mmgan__reduce(g, x, 0, 0); }
MMGAN_DEF mmgan_node mmgan_mean(mmgan_graph *g, mmgan_node x) { return mmgan__reduce(g, x, 0, 1); }
MMGAN_DEF mmgan_node mmgan_sum_per_sample(mmgan_graph *g, mmgan_node x) { return mmgan__reduce(g, x, 1, 0); }
MMGAN_DEF mmgan_node mmgan_mean_per_sample(mmgan_graph *g, mmgan_node x) { return mmgan__reduce(g, x, 1, 1); }

static mmgan_node mmgan__per_sample_op(mmgan_graph *g, int op, mmgan_node x, float f0)
{
    int shape[4], nd;
    mmgan_node id;
    if (!mmgan__args_ok(g, mmgan__op_name(op), 1, &x)) return MMGAN_NONE;
    nd = mmgan__reduced_shape(&g->nodes[x], 1, shape);
    id = mmgan__push(g, op, 1, &x, nd, shape);
    if (id >= 0) g->nodes[id].fp[0] = f0;
    return id;
}

MMGAN_DEF mmgan_node mmgan_max_abs_per_sample(mmgan_graph *g, mmgan_node x) { return mmgan__per_sample_op(g, MMGAN__OP_MAXABS, x, 0); }
/* fp[0] = 1 selects the signed maximum in the MAXABS kernels. */
MMGAN_DEF mmgan_node mmgan_max_per_sample(mmgan_graph *g, mmgan_node x) { return mmgan__per_sample_op(g, MMGAN__OP_MAXABS, x, 1); }

static mmgan_node mmgan__random(mmgan_graph *g, mmgan_rng *rng, int ndim, const int *shape, int normal, float a, float b)
{
    mmgan_node id;
    if (!g) return MMGAN_NONE;
    if (!rng) return mmgan__gfail(g, MMGAN_ERR_INVALID, "random: rng is NULL");
    if (!mmgan__finite(a) || !mmgan__finite(b) || !(normal ? b >= 0.0f : a <= b) || (!normal && !mmgan__finite(b - a)))
        return mmgan__gfail(g, MMGAN_ERR_INVALID, normal ? "random_normal: mean %g and std %g must be finite, std >= 0"
                                                         : "random_uniform: [%g, %g) must be finite, lo <= hi",
                            (double)a, (double)b);
    id = mmgan__push(g, MMGAN__OP_RANDOM, 0, NULL, ndim, shape);
    if (id >= 0) {
        g->nodes[id].ref = rng;
        g->nodes[id].ip[0] = normal;
        g->nodes[id].fp[0] = a;
        g->nodes[id].fp[1] = b;
    }
    return id;
}

MMGAN_DEF mmgan_node mmgan_random_uniform(mmgan_graph *g, mmgan_rng *rng, int ndim, const int *shape, float lo, float hi)
{
    return mmgan__random(g, rng, ndim, shape, 0, lo, hi);
}

MMGAN_DEF mmgan_node mmgan_random_normal(mmgan_graph *g, mmgan_rng *rng, int ndim, const int *shape, float mean, float std)
{
    return mmgan__random(g, rng, ndim, shape, 1, mean, std);
}

MMGAN_DEF mmgan_node mmgan_scalar_ref(mmgan_graph *g, const float *value)
{
    int one = 1;
    mmgan_node id;
    if (!g) return MMGAN_NONE;
    if (!value) return mmgan__gfail(g, MMGAN_ERR_INVALID, "scalar_ref: value is NULL");
    id = mmgan__push(g, MMGAN__OP_SCALAR_REF, 0, NULL, 1, &one);
    /* Only read, never written: the cast keeps one pointer field for both uses. */
    if (id >= 0) g->nodes[id].ref = (void *)(uintptr_t)value;
    return id;
}
MMGAN_DEF mmgan_node mmgan_softmax_per_sample(mmgan_graph *g, mmgan_node x, float s) { return mmgan__unary(g, MMGAN__OP_SOFTMAX, x, s, 0); }

MMGAN_DEF mmgan_node mmgan_smooth_max_per_sample(mmgan_graph *g, mmgan_node x, float s)
{
    return mmgan_sum_per_sample(g, mmgan_mul(g, x, mmgan_softmax_per_sample(g, x, s)));
}

/* Checks an optional per-channel (or per-feature) vector against want. */
static int mmgan__affine_arg_ok(mmgan_graph *g, const char *who, const char *what, mmgan_node v, int ndim, const int *want)
{
    int i;
    if (v == MMGAN_NONE) return 1;
    if (!mmgan__args_ok(g, who, 1, &v)) return 0;
    for (i = 0; i < ndim; i++)
        if (g->nodes[v].ndim != ndim || g->nodes[v].shape[i] != want[i]) {
            char s1[64];
            mmgan__gfail(g, MMGAN_ERR_SHAPE, "%s: %s has shape %s, expected %d values along %d axes",
                         who, what, mmgan__nshape(&g->nodes[v], s1, sizeof s1), want[0], ndim);
            return 0;
        }
    return 1;
}

/* Normalization as a composite of differentiable ops, so its derivatives
 * of every order come for free: xhat = (x - mu) / sqrt(var + eps). */
static mmgan_node mmgan__normalize(mmgan_graph *g, mmgan_node x, int sdim, const int *sshape, float eps)
{
    double cnt = (double)g->nodes[x].numel;
    mmgan_node mu, xc, var;
    int i;
    for (i = 0; i < sdim; i++) cnt /= sshape[i];
    mu = mmgan_scale(g, mmgan_sum_to(g, x, sdim, sshape), (float)(1.0 / cnt));
    xc = mmgan_sub(g, x, mu);
    var = mmgan_scale(g, mmgan_sum_to(g, mmgan_square(g, xc), sdim, sshape), (float)(1.0 / cnt));
    return mmgan_div(g, xc, mmgan_sqrt(g, mmgan_affine(g, var, 1.0f, eps)));
}

/* Training batch norm without beta, as that composite: what the fused ops'
 * higher derivatives are taken from (2.9). */
static mmgan_node mmgan__bn_composite(mmgan_graph *g, mmgan_node x, mmgan_node gamma, float eps)
{
    int sshape[4] = {1, 1, 1, 1}, nd = g->nodes[x].ndim;
    sshape[1] = g->nodes[x].shape[1];
    return mmgan_mul(g, mmgan__normalize(g, x, nd, sshape, eps), mmgan_reshape(g, gamma, nd, sshape));
}

MMGAN_DEF mmgan_node mmgan_batch_norm(mmgan_graph *g, mmgan_node x, mmgan_node gamma, mmgan_node beta,
                                      mmgan_param *running_mean, mmgan_param *running_var,
                                      float momentum, float eps, int training)
{
    int sshape[4] = {1, 1, 1, 1}, c, nd;
    mmgan_node y;
    if (!mmgan__args_ok(g, "batch_norm", 1, &x)) return MMGAN_NONE;
    nd = g->nodes[x].ndim;
    if (nd != 2 && nd != 4) {
        char s1[64];
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "batch_norm: x %s must be [N, F] or [N, C, H, W]",
                            mmgan__nshape(&g->nodes[x], s1, sizeof s1));
    }
    c = g->nodes[x].shape[1];
    if (!mmgan__affine_arg_ok(g, "batch_norm", "gamma", gamma, 1, &c) ||
        !mmgan__affine_arg_ok(g, "batch_norm", "beta", beta, 1, &c))
        return MMGAN_NONE;
    if (!(eps > 0.0f) || !mmgan__finite(eps) || !(momentum >= 0.0f && momentum <= 1.0f))
        return mmgan__gfail(g, MMGAN_ERR_INVALID, "batch_norm: eps %g must be finite and > 0, momentum %g in [0, 1]",
                            (double)eps, (double)momentum);
    if ((running_mean == NULL) != (running_var == NULL) || (!training && !running_mean))
        return mmgan__gfail(g, MMGAN_ERR_INVALID, "batch_norm: running_mean and running_var must both be given%s",
                            training ? " or both be NULL" : " in evaluation mode");
    if (running_mean && (running_mean->value->numel != (size_t)c || running_var->value->numel != (size_t)c))
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "batch_norm: running statistics must have %d values (one per channel)", c);
    sshape[1] = c;
    if (training) {
        /* One fused op (2.9): two passes over the batch forward, two back,
         * where the composite took a dozen. */
        mmgan_node in[3];
        if (g->nodes[x].numel == (size_t)c)
            return mmgan__gfail(g, MMGAN_ERR_SHAPE, "batch_norm: training needs more than one value per channel");
        in[0] = x;
        in[1] = gamma != MMGAN_NONE ? gamma : mmgan_fill(g, 1, &c, 1.0f);
        in[2] = beta != MMGAN_NONE ? beta : mmgan_fill(g, 1, &c, 0.0f);
        if (in[1] < 0 || in[2] < 0) return MMGAN_NONE;
        y = mmgan__like(g, MMGAN__OP_BN, 3, in, x);
        if (y >= 0) {
            g->nodes[y].par[0] = running_mean;
            g->nodes[y].par[1] = running_var;
            g->nodes[y].fp[0] = eps;
            g->nodes[y].fp[1] = momentum;
        }
        return y;
    } else {
        mmgan_node m = mmgan_reshape(g, mmgan_parameter(g, running_mean), nd, sshape);
        mmgan_node v = mmgan_reshape(g, mmgan_parameter(g, running_var), nd, sshape);
        y = mmgan_div(g, mmgan_sub(g, x, m), mmgan_sqrt(g, mmgan_affine(g, v, 1.0f, eps)));
    }
    if (gamma != MMGAN_NONE) y = mmgan_mul(g, y, mmgan_reshape(g, gamma, nd, sshape));
    if (beta != MMGAN_NONE) y = mmgan_add(g, y, mmgan_reshape(g, beta, nd, sshape));
    return y;
}

MMGAN_DEF mmgan_node mmgan_layer_norm(mmgan_graph *g, mmgan_node x, mmgan_node gamma, mmgan_node beta, float eps)
{
    int sshape[4], nd;
    mmgan_node y;
    if (!mmgan__args_ok(g, "layer_norm", 1, &x)) return MMGAN_NONE;
    nd = mmgan__reduced_shape(&g->nodes[x], 1, sshape);
    if (nd < 2 || g->nodes[x].numel == (size_t)sshape[0])
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "layer_norm: x needs more than one value per sample");
    if (!mmgan__affine_arg_ok(g, "layer_norm", "gamma", gamma, nd - 1, g->nodes[x].shape + 1) ||
        !mmgan__affine_arg_ok(g, "layer_norm", "beta", beta, nd - 1, g->nodes[x].shape + 1))
        return MMGAN_NONE;
    if (!(eps > 0.0f) || !mmgan__finite(eps))
        return mmgan__gfail(g, MMGAN_ERR_INVALID, "layer_norm: eps %g must be finite and > 0", (double)eps);
    y = mmgan__normalize(g, x, nd, sshape, eps);
    if (gamma != MMGAN_NONE) y = mmgan_mul(g, y, gamma);
    if (beta != MMGAN_NONE) y = mmgan_add(g, y, beta);
    return y;
}

/* ===================================================================== */
/* 2.9 The op table: forward kernels and vector-Jacobian products         */
/* ===================================================================== */
/* Each op has a forward kernel and a VJP.  A VJP builds, with the public
 * builders, the gradient with respect to input i from the gradient gy of the
 * op's output, so it is itself differentiable: this closure is what makes
 * mmgan_grad work to any order.  VJPs read the node by value, because
 * building new nodes may move the node array. */
typedef struct mmgan__bn_stats mmgan__bn_stats;

typedef struct mmgan__run {
    mmgan_ctx *ctx;
    const mmgan_graph *g;
    float *scratch;
    size_t scratch_floats;   /* its size: the op's need when the plan was made */
    mmgan__bn_stats *bn;   /* batch-norm gradient statistics shared with a sibling op, or NULL */
    int bn_fill;           /* 1: this op computes them into bn; 0: it reads them */
} mmgan__run;

typedef void (*mmgan__fwd_fn)(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x);
typedef mmgan_node (*mmgan__vjp_fn)(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy);

#define MMGAN__F_LEAF 1    /* input, parameter or constant: nothing to compute */
#define MMGAN__F_NOGRAD 2  /* no gradient flows to the inputs: detach, or an
                              output that is piecewise constant (derivative 0) */
#define MMGAN__F_VIEW 4    /* the output is the input's values unchanged: a plan
                              lets it share the input's buffer */
#define MMGAN__F_INPLACE 8 /* elementwise, each value read before its own is
                              written: a plan may write the output over an
                              input of its size that nothing reads later */

typedef struct mmgan__opdef {
    int op;
    const char *name;
    mmgan__fwd_fn fwd;
    mmgan__vjp_fn vjp;   /* NULL: no derivative; mmgan_grad refuses the op */
    int flags;
} mmgan__opdef;

#define MMGAN__IN(g, id, i) ((g)->nodes[(g)->nodes[id].in[i]])

/* Gradient of a broadcast operand: sum gy back to the operand's shape. */
static mmgan_node mmgan__unbroadcast(mmgan_graph *g, mmgan_node gy, mmgan_node target)
{
    int shape[4];
    if (gy < 0) return gy;   /* a builder failed (out of memory growing the graph): nothing to index */
    if (g->nodes[gy].numel == g->nodes[target].numel) return gy;
    memcpy(shape, g->nodes[target].shape, sizeof shape);
    return mmgan_sum_to(g, gy, g->nodes[target].ndim, shape);
}

/* Right-aligned 4-d shape of a node. */
static void mmgan__shape4(const mmgan__node *nd, int *s)
{
    int i;
    for (i = 0; i < 4; i++) s[i] = 1;
    for (i = 0; i < nd->ndim; i++) s[4 - nd->ndim + i] = nd->shape[i];
}

/* Strides of x walked along the 4-d shape o: 0 on the axes x is broadcast. */
static void mmgan__bstrides(const mmgan__node *x, const int *o, size_t *st)
{
    int s[4], d;
    size_t acc = 1;
    mmgan__shape4(x, s);
    for (d = 3; d >= 0; d--) {
        st[d] = (s[d] == 1 && o[d] != 1) ? 0 : acc;
        acc *= (size_t)s[d];
    }
}

/* --- leaves and fill ------------------------------------------------- */
static void mmgan__fw_fill(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    size_t i;
    (void)r; (void)x;
    for (i = 0; i < nd->numel; i++) y[i] = nd->fp[0];
}

/* --- add, sub, mul, div with broadcasting ----------------------------- */
/* Elementwise work is cut into blocks of this many elements (a multiple of
 * every vector width), shared out among threads: each element is computed
 * the same way whatever the thread count. */
#define MMGAN__EW_BLOCK 16384

/* One run of a binary op: y[i] = a[i sa] op b[i sb], with sa, sb in {0, 1}
 * vectorized (division stays scalar: ARMv7 has no exact vector divide). */
static void mmgan__binary_run(int op, size_t n, const float *a, size_t sa, const float *b, size_t sb, float *y)
{
    size_t i;
    if (op != MMGAN__OP_DIV && sa == 1 && sb == 1) {
        if (op == MMGAN__OP_ADD) mmgan_vec_add(n, a, b, y);
        else if (op == MMGAN__OP_SUB) mmgan_vec_sub(n, a, b, y);
        else mmgan_vec_mul(n, a, b, y);
    } else if (op == MMGAN__OP_MUL && sa + sb == 1) {
        if (sa) mmgan_vec_scale(n, b[0], a, y);
        else mmgan_vec_scale(n, a[0], b, y);
    } else if (op != MMGAN__OP_DIV && sa == 1 && sb == 0) {
        const mmgan__v c = MMGAN__VSET(b[0]);
        if (op == MMGAN__OP_ADD) MMGAN__MAP1(n, a, y, MMGAN__VADD(v, c));
        else MMGAN__MAP1(n, a, y, MMGAN__VSUB(v, c));
    } else if (op != MMGAN__OP_DIV && sa == 0 && sb == 1) {
        const mmgan__v c = MMGAN__VSET(a[0]);
        if (op == MMGAN__OP_ADD) MMGAN__MAP1(n, b, y, MMGAN__VADD(c, v));
        else MMGAN__MAP1(n, b, y, MMGAN__VSUB(c, v));
    } else {
        switch (op) {
        case MMGAN__OP_ADD: for (i = 0; i < n; i++) y[i] = a[i * sa] + b[i * sb]; break;
        case MMGAN__OP_SUB: for (i = 0; i < n; i++) y[i] = a[i * sa] - b[i * sb]; break;
        case MMGAN__OP_MUL: for (i = 0; i < n; i++) y[i] = a[i * sa] * b[i * sb]; break;
        default: for (i = 0; i < n; i++) y[i] = a[i * sa] / b[i * sb]; break;
        }
    }
}

/* Broadcasting over the output [o0, o1, o2, o3]: axes that both operands
 * walk contiguously (or both repeat) are merged first, so that the runs are
 * long: [64, C, 14, 14] * [1, C, 1, 1] becomes 64 C runs of 196 against one
 * value, and equal shapes one run. */
static void mmgan__fw_binary(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    const mmgan__node *na = &r->g->nodes[nd->in[0]], *nb = &r->g->nodes[nd->in[1]];
    const float *a = x[0], *b = x[1];
    size_t sa[4], sb[4], len, rows;
    int o[4], d, m = 3, nblk, it, nit;
    mmgan__shape4(nd, o);
    mmgan__bstrides(na, o, sa);
    mmgan__bstrides(nb, o, sb);
    for (d = 2; d >= 0; d--) {   /* merge axis d into the run below it, axis m */
        if (sa[d] == sa[m] * (size_t)o[m] && sb[d] == sb[m] * (size_t)o[m]) {
            o[m] *= o[d];
        } else {
            m--;
            o[m] = o[d]; sa[m] = sa[d]; sb[m] = sb[d];
        }
    }
    for (d = 0; d < m; d++) { o[d] = 1; sa[d] = sb[d] = 0; }
    len = (size_t)o[3];
    rows = (size_t)o[0] * o[1] * o[2];
    nblk = (int)((len + MMGAN__EW_BLOCK - 1) / MMGAN__EW_BLOCK);
    nit = (int)rows * nblk;
    MMGAN__PAR_FOR(r->ctx->threads, nd->numel >= MMGAN__PAR_MIN)
    for (it = 0; it < nit; it++) {
        size_t row = (size_t)(it / nblk), lo = (size_t)(it % nblk) * MMGAN__EW_BLOCK, n = len - lo;
        size_t i2 = row % (size_t)o[2], i1 = row / (size_t)o[2] % (size_t)o[1], i0 = row / ((size_t)o[2] * o[1]);
        size_t oa = i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + lo * sa[3], ob = i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + lo * sb[3];
        if (n > MMGAN__EW_BLOCK) n = MMGAN__EW_BLOCK;
        mmgan__binary_run(nd->op, n, a + oa, sa[3], b + ob, sb[3], y + row * len + lo);
    }
}

static mmgan_node mmgan__vjp_add(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    return mmgan__unbroadcast(g, gy, g->nodes[id].in[i]);
}

static mmgan_node mmgan__vjp_sub(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    return mmgan__unbroadcast(g, i == 0 ? gy : mmgan_scale(g, gy, -1.0f), g->nodes[id].in[i]);
}

static mmgan_node mmgan__vjp_mul(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    mmgan__node nd = g->nodes[id];
    return mmgan__unbroadcast(g, mmgan_mul(g, gy, nd.in[1 - i]), nd.in[i]);
}

/* d(a/b)/db = -(a/b)/b: reuses the output y. */
static mmgan_node mmgan__vjp_div(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    mmgan__node nd = g->nodes[id];
    if (i == 0) return mmgan__unbroadcast(g, mmgan_div(g, gy, nd.in[1]), nd.in[0]);
    return mmgan__unbroadcast(g, mmgan_scale(g, mmgan_div(g, mmgan_mul(g, gy, id), nd.in[1]), -1.0f), nd.in[1]);
}

/* --- sum_to and broadcast_to: each is the other's adjoint -------------- */
/* Channels per block for the per-channel passes over [N, C, ...] (sums,
 * batch norm), which read a block image by image, in memory order: about
 * 1 MB of each input (per: floats of a channel over the batch), so that a
 * pass after the sums finds the block in L2 (2 MB on the Xeon, with batch
 * norm's gradient reading x and gy), at least one block per thread, at most
 * cap channels.  Any blocking gives the same results. */
static int mmgan__chan_blk(int c, size_t per, int threads, int cap)
{
    size_t blk = ((size_t)1 << 18) / (per ? per : 1), even = ((size_t)c + threads - 1) / threads;
    if (blk > even) blk = even;
    if (blk > (size_t)cap) blk = (size_t)cap;
    return blk < 1 ? 1 : (int)blk;
}

static void mmgan__fw_sum_to(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    const mmgan__node *nx = &r->g->nodes[nd->in[0]];
    double *acc = (double *)r->scratch;   /* double sums: long reductions stay accurate */
    int xs[4], ys[4], d;
    size_t so[4], step = 1, i0, i1, i2, i3, k = 0, i;
    const float *a = x[0];
    mmgan__shape4(nx, xs);
    mmgan__shape4(nd, ys);
    for (d = 3; d >= 0; d--) {
        so[d] = ys[d] == 1 ? 0 : step;
        step *= (size_t)ys[d];
    }
    for (i = 0; i < nd->numel; i++) acc[i] = 0.0;
    if (so[1] && xs[1] > 1) {
        /* Per channel (bias gradients): threads own blocks of channels,
         * read image by image in memory order as batch norm's sums are (the
         * DCGAN step's bias gradients 1.3x faster), and each sum takes its
         * terms in an order fixed by the shapes alone, whatever the thread
         * count or the blocks. */
        const size_t plane = (size_t)xs[2] * xs[3], per = (size_t)xs[0] * plane;
        const int blk = mmgan__chan_blk(xs[1], per, r->ctx->threads, xs[1]);
        int kb;
        MMGAN__PAR_FOR(r->ctx->threads, nx->numel >= MMGAN__PAR_MIN)
        for (kb = 0; kb < (xs[1] + blk - 1) / blk; kb++) {
            const int c0 = kb * blk, c1 = MMGAN__MIN(xs[1], c0 + blk);
            size_t j0, j2, j3;
            int c;
            for (j0 = 0; j0 < (size_t)xs[0]; j0++)
                for (c = c0; c < c1; c++) {
                    const float *pin = a + (j0 * xs[1] + (size_t)c) * plane;
                    if (!so[2] && !so[3]) {   /* a whole plane into one sum: vec_sum's partial sums, no serial chain */
                        acc[j0 * so[0] + (size_t)c * so[1]] += mmgan_vec_sum(plane, pin);
                        continue;
                    }
                    for (j2 = 0; j2 < (size_t)xs[2]; j2++) {
                        double *pa = acc + j0 * so[0] + (size_t)c * so[1] + j2 * so[2];
                        if (so[3]) for (j3 = 0; j3 < (size_t)xs[3]; j3++) pa[j3] += pin[j2 * xs[3] + j3];
                        else for (j3 = 0; j3 < (size_t)xs[3]; j3++) pa[0] += pin[j2 * xs[3] + j3];
                    }
                }
        }
    } else {
        for (i0 = 0; i0 < (size_t)xs[0]; i0++) for (i1 = 0; i1 < (size_t)xs[1]; i1++)
        for (i2 = 0; i2 < (size_t)xs[2]; i2++) {
            double *pa = acc + i0 * so[0] + i1 * so[1] + i2 * so[2];
            if (so[3]) for (i3 = 0; i3 < (size_t)xs[3]; i3++) pa[i3] += a[k++];
            else for (i3 = 0; i3 < (size_t)xs[3]; i3++) pa[0] += a[k++];
        }
    }
    for (i = 0; i < nd->numel; i++) y[i] = (float)acc[i];
}

static mmgan_node mmgan__vjp_sum_to(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    mmgan__node nx = MMGAN__IN(g, id, 0);
    (void)i;
    return mmgan_broadcast_to(g, gy, nx.ndim, nx.shape);
}

static void mmgan__fw_broadcast(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    const mmgan__node *nx = &r->g->nodes[nd->in[0]];
    int o[4];
    size_t sx[4], i0, i1, i2, i3, k = 0;
    const float *a = x[0];
    mmgan__shape4(nd, o);
    mmgan__bstrides(nx, o, sx);
    for (i0 = 0; i0 < (size_t)o[0]; i0++) for (i1 = 0; i1 < (size_t)o[1]; i1++)
    for (i2 = 0; i2 < (size_t)o[2]; i2++) {
        const float *pa = a + i0 * sx[0] + i1 * sx[1] + i2 * sx[2];
        for (i3 = 0; i3 < (size_t)o[3]; i3++) y[k++] = pa[i3 * sx[3]];
    }
}

static mmgan_node mmgan__vjp_broadcast(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    (void)i;
    return mmgan__unbroadcast(g, gy, g->nodes[id].in[0]);
}

/* --- matmul ------------------------------------------------------------ */
static void mmgan__fw_matmul(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    const mmgan__node *na = &r->g->nodes[nd->in[0]], *nb = &r->g->nodes[nd->in[1]];
    int ta = nd->ip[0], tb = nd->ip[1];
    mmgan_gemm(r->ctx, ta, tb, nd->shape[0], nd->shape[1], na->shape[ta ? 0 : 1], 1.0f,
               x[0], na->shape[1], x[1], nb->shape[1], 0.0f, y, nd->shape[1]);
}

/* C = op(A) op(B): dA = gy op(B)^T (or its transpose), dB = op(A)^T gy. */
static mmgan_node mmgan__vjp_matmul(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    mmgan__node nd = g->nodes[id];
    int ta = nd.ip[0], tb = nd.ip[1];
    mmgan_node a = nd.in[0], b = nd.in[1];
    if (i == 0) return ta ? mmgan_matmul(g, b, gy, tb, 1) : mmgan_matmul(g, gy, b, 0, !tb);
    return tb ? mmgan_matmul(g, gy, a, 1, ta) : mmgan_matmul(g, a, gy, !ta, 0);
}

/* --- convolutions: conv2d, conv_transpose2d, conv2d_wgrad -------------- */
/* The geometry of the forward conv each op is built on (see 2.6). */
static void mmgan__conv_geom(const mmgan_graph *g, const mmgan__node *nd, mmgan__convgeom *q)
{
    const mmgan__node *nx = &g->nodes[nd->in[0]], *nw = &g->nodes[nd->in[1]];
    const mmgan__node *big = nd->op == MMGAN__OP_CONVT ? nd : nx;
    const mmgan__node *small = nd->op == MMGAN__OP_CONV ? nd : nd->op == MMGAN__OP_CONVT ? nx : nw;
    q->c = big->shape[1]; q->h = big->shape[2]; q->w = big->shape[3];
    q->kh = nd->ip[2]; q->kw = nd->ip[3]; q->stride = nd->ip[0]; q->pad = nd->ip[1];
    q->ho = small->shape[2]; q->wo = small->shape[3];
}

/* The window is the whole image (a generator's first layer): the column
 * matrix is the batch itself, and each op one plain product.  Through
 * im2col the transpose made one-column products and a per-value col2im,
 * 6x slower on the DCGAN's 1x1 -> 7x7 layer. */
static int mmgan__conv_dense(const mmgan__convgeom *q)
{
    return q->ho == 1 && q->wo == 1 && q->pad == 0 && q->kh == q->h && q->kw == q->w;
}

/* conv2d and the weight gradient (but not its one-vector-per-pixel form,
 * for windows of at most 16 values) may take sparse columns (2.6). */
static int mmgan__conv_may_sparse(const mmgan__node *nd, const mmgan__convgeom *q)
{
    return nd->op == MMGAN__OP_CONV || (nd->op == MMGAN__OP_WGRAD && !mmgan__wgrad_dot(q));
}

static size_t mmgan__conv_scratch(const mmgan_graph *g, const mmgan__node *nd)
{
    size_t plain;
    mmgan__convgeom q;
#if defined(MMGAN__AVX512)
    mmgan__runs L;
#endif
    const mmgan__node *nx = &g->nodes[nd->in[0]];
    mmgan__conv_geom(g, nd, &q);
    if (mmgan__conv_dense(&q)) return 0;
    /* channels on the small side: y's for conv2d, x's for the transpose, gy's for wgrad */
#if MMGAN__WINO
    if (nd->op == MMGAN__OP_CONV && mmgan__wino_fit(&q, nx->shape[0], nd->shape[1]))
        return MMGAN__MAX(mmgan__conv_ws(&q, nx->shape[0], nd->shape[1], MMGAN__WS_COLS),
                          mmgan__wino_ws(&q, 0, nx->shape[0], q.c, nd->shape[1], g->ctx->threads, NULL, NULL));
#endif
    if (nd->op == MMGAN__OP_CONV) return mmgan__conv_ws(&q, nx->shape[0], nd->shape[1], MMGAN__WS_COLS);
#if MMGAN__WINO
    if (nd->op == MMGAN__OP_CONVT && mmgan__wino_fit(&q, nx->shape[0], nx->shape[1]))
        return MMGAN__MAX(mmgan__conv_ws(&q, nx->shape[0], nx->shape[1], MMGAN__WS_FOLD),
                          mmgan__wino_ws(&q, 1, nx->shape[0], nx->shape[1], q.c, g->ctx->threads, NULL, NULL));
#endif
    if (nd->op == MMGAN__OP_CONVT) return mmgan__conv_ws(&q, nx->shape[0], nx->shape[1], MMGAN__WS_FOLD);
#if defined(MMGAN__AVX512)
    if (mmgan__wgrad_runs(&q, nd->shape[0], &L))
        plain = mmgan__conv_ws(&q, nx->shape[0], nd->shape[0], MMGAN__WS_WRUNS);
    else
#endif
        plain = mmgan__conv_ws(&q, nx->shape[0], nd->shape[0],
                               mmgan__wgrad_dot(&q) ? MMGAN__WS_WDOT
                               : mmgan__wgrad_transposed(&q, nd->shape[0]) ? MMGAN__WS_COLS_T : MMGAN__WS_GATHER);
#if MMGAN__WINO   /* the direct product redoes what is not finite */
    if (mmgan__wino_fit(&q, nx->shape[0], nd->shape[0]))
        return MMGAN__MAX(plain, mmgan__wino_w_ws(&q, nx->shape[0], nd->shape[0], NULL));
#endif
    return plain;
}

static void mmgan__fw_conv(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    mmgan__convgeom q;
#if defined(MMGAN__AVX512)
    mmgan__runs L;
#endif
    const mmgan__node *nx = &r->g->nodes[nd->in[0]];
    mmgan__conv_geom(r->g, nd, &q);
    if (mmgan__conv_dense(&q)) {
        int n = nx->shape[0], ckk = q.c * q.kh * q.kw, o;
        if (nd->op == MMGAN__OP_CONV) {
            o = nd->shape[1];   /* y [N, O] = x [N, CKK] w [O, CKK]^T (+ bias) */
            mmgan_gemm(r->ctx, 0, 1, n, o, ckk, 1.0f, x[0], ckk, x[1], ckk, 0.0f, y, o);
            if (nd->nin > 2) {
                int i, j;
                for (i = 0; i < n; i++)
                    for (j = 0; j < o; j++) y[(size_t)i * o + j] += x[2][j];
            }
        } else if (nd->op == MMGAN__OP_CONVT) {
            o = nx->shape[1];   /* y [N, CKK] = x [N, O] w [O, CKK] (+ bias per C) */
            mmgan_gemm(r->ctx, 0, 0, n, ckk, o, 1.0f, x[0], o, x[1], ckk, 0.0f, y, ckk);
            if (nd->nin > 2) {
                const size_t kk = (size_t)q.kh * q.kw;
                int i, c;
                for (i = 0; i < n; i++)
                    for (c = 0; c < q.c; c++) {
                        float *d = y + (size_t)i * ckk + (size_t)c * kk;
                        mmgan__add_bias(kk, d, x[2][c], d);
                    }
            }
        } else {
            o = nd->shape[0];   /* dw [O, CKK] = gy [N, O]^T x [N, CKK] */
            mmgan_gemm(r->ctx, 1, 0, o, ckk, n, 1.0f, x[1], o, x[0], ckk, 0.0f, y, ckk);
        }
        return;
    }
    if (mmgan__conv_may_sparse(nd, &q) &&
        mmgan__conv_sparse(r->ctx, &q, nx->shape[0], nd->op == MMGAN__OP_CONV ? nd->shape[1] : nd->shape[0],
                           nd->op == MMGAN__OP_WGRAD, x[0], x[1], nd->nin > 2 ? x[2] : NULL, y, r->scratch,
                           r->scratch_floats))
        return;
    /* Which product each op uses was measured: see 2.6. */
    if (nd->op == MMGAN__OP_CONV)
        mmgan__conv2d_fwd(r->ctx, &q, nx->shape[0], nd->shape[1], x[0], x[1], nd->nin > 2 ? x[2] : NULL, y, r->scratch,
                          r->scratch_floats);
    else if (nd->op == MMGAN__OP_CONVT)
        mmgan__conv2d_bwd_data(r->ctx, &q, nx->shape[0], nx->shape[1], x[0], x[1], nd->nin > 2 ? x[2] : NULL, y,
                               r->scratch, r->scratch_floats);
#if MMGAN__WINO
    else if (mmgan__wino_fit(&q, nx->shape[0], nd->shape[0]) &&
             mmgan__conv2d_bwd_weight_wino(r->ctx, &q, nx->shape[0], nd->shape[0], x[0], x[1], y, r->scratch,
                                           r->scratch_floats))
        return;
#endif
#if defined(MMGAN__AVX512)
    else if (mmgan__wgrad_dot(&q))
        mmgan__conv2d_bwd_weight_dot(r->ctx, &q, nx->shape[0], nd->shape[0], x[0], x[1], y, r->scratch);
    else if (mmgan__wgrad_runs(&q, nd->shape[0], &L))
        mmgan__conv2d_bwd_weight_runs(r->ctx, &q, &L, nx->shape[0], nd->shape[0], x[0], x[1], y, r->scratch);
#endif
    else if (mmgan__wgrad_transposed(&q, nd->shape[0]))
        mmgan__conv2d_bwd_weight_t(r->ctx, &q, nx->shape[0], nd->shape[0], x[0], x[1], y, r->scratch);
    else
        mmgan__conv2d_bwd_weight_implicit(r->ctx, &q, nx->shape[0], nd->shape[0], x[0], x[1], y, r->scratch);
}

/* The transposed conv whose output has exactly the size of `like`. */
static mmgan_node mmgan__convt_to(mmgan_graph *g, mmgan_node x, mmgan_node w, const mmgan__node *nd, mmgan_node like)
{
    int s = nd->ip[0], p = nd->ip[1], kh = nd->ip[2], kw = nd->ip[3];
    int oph = g->nodes[like].shape[2] - ((g->nodes[x].shape[2] - 1) * s - 2 * p + kh);
    int opw = g->nodes[like].shape[3] - ((g->nodes[x].shape[3] - 1) * s - 2 * p + kw);
    return mmgan__conv_transpose(g, x, w, s, p, oph, opw);
}

/* conv2d:    dx = conv_transpose2d(gy, w),   dw = wgrad(x, gy)
 * convT:     dx = conv2d(gy, w),             dw = wgrad(gy, x)
 * wgrad:     dx = conv_transpose2d(gy_in, G), dgy_in = conv2d(x, G)
 * so each derivative is again one of the three ops. */
static mmgan_node mmgan__vjp_conv(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    mmgan__node nd = g->nodes[id];
    int s = nd.ip[0], p = nd.ip[1], kh = nd.ip[2], kw = nd.ip[3];
    mmgan_node x = nd.in[0], w = nd.in[1];
    switch (nd.op) {
    case MMGAN__OP_CONV:   /* with a bias, input 2 */
        if (i == 2) return mmgan__unbroadcast(g, gy, nd.in[2]);
        return i == 0 ? mmgan__convt_to(g, gy, w, &nd, x) : mmgan_conv2d_wgrad(g, x, gy, kh, kw, s, p);
    case MMGAN__OP_CONVT:   /* with a bias, input 2 */
        if (i == 2) return mmgan__unbroadcast(g, gy, nd.in[2]);
        return i == 0 ? mmgan_conv2d(g, gy, w, s, p) : mmgan_conv2d_wgrad(g, gy, x, kh, kw, s, p);
    default:
        return i == 0 ? mmgan__convt_to(g, w, gy, &nd, x) : mmgan_conv2d(g, x, gy, s, p);
    }
}

/* --- shape and batch ops ----------------------------------------------- */
static void mmgan__fw_copy(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    (void)r;
    memcpy(y, x[0], nd->numel * sizeof(float));
}

static mmgan_node mmgan__vjp_reshape(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    mmgan__node nx = MMGAN__IN(g, id, 0);
    (void)i;
    return mmgan_reshape(g, gy, nx.ndim, nx.shape);
}

static void mmgan__fw_concat(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    size_t na = r->g->nodes[nd->in[0]].numel;
    memcpy(y, x[0], na * sizeof(float));
    memcpy(y + na, x[1], (nd->numel - na) * sizeof(float));
}

static mmgan_node mmgan__vjp_concat(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    int na = MMGAN__IN(g, id, 0).shape[0], nb = MMGAN__IN(g, id, 1).shape[0];
    return i == 0 ? mmgan_slice(g, gy, 0, na) : mmgan_slice(g, gy, na, nb);
}

static void mmgan__fw_slice(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    size_t per = nd->numel / (size_t)nd->shape[0];
    (void)r;
    memcpy(y, x[0] + (size_t)nd->ip[0] * per, nd->numel * sizeof(float));
}

static mmgan_node mmgan__vjp_slice(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    (void)i;
    return mmgan_pad_batch(g, gy, g->nodes[id].ip[0], MMGAN__IN(g, id, 0).shape[0]);
}

static void mmgan__fw_pad_batch(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    size_t per = nd->numel / (size_t)nd->shape[0], nin = r->g->nodes[nd->in[0]].numel;
    size_t before = (size_t)nd->ip[0] * per;
    memset(y, 0, before * sizeof(float));
    memcpy(y + before, x[0], nin * sizeof(float));
    memset(y + before + nin, 0, (nd->numel - before - nin) * sizeof(float));
}

static mmgan_node mmgan__vjp_pad_batch(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    (void)i;
    return mmgan_slice(g, gy, g->nodes[id].ip[0], MMGAN__IN(g, id, 0).shape[0]);
}

/* --- elementwise functions: one forward kernel, a VJP each ------------- */
static void mmgan__unary_run(const mmgan__node *nd, size_t n, const float *a, float *y)
{
    const float f0 = nd->fp[0], f1 = nd->fp[1];
    size_t i;
    switch (nd->op) {
    case MMGAN__OP_AFFINE:
        if (f1 == 0.0f) mmgan_vec_scale(n, f0, a, y);
        else for (i = 0; i < n; i++) y[i] = f0 * a[i] + f1;
        break;
    case MMGAN__OP_RELU: mmgan_vec_relu(n, a, y); break;
    case MMGAN__OP_LEAKY: mmgan_vec_leaky_relu(n, f0, a, y); break;
    case MMGAN__OP_SIGMOID: mmgan_vec_sigmoid(n, a, y); break;
    case MMGAN__OP_TANH: mmgan_vec_tanh(n, a, y); break;
    case MMGAN__OP_EXP: mmgan_vec_exp(n, a, y); break;
    /* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large |x|. */
    case MMGAN__OP_SOFTPLUS: for (i = 0; i < n; i++) y[i] = (a[i] > 0.0f ? a[i] : 0.0f) + log1pf(expf(-fabsf(a[i]))); break;
    case MMGAN__OP_LOGSIG: for (i = 0; i < n; i++) y[i] = (a[i] < 0.0f ? a[i] : 0.0f) - log1pf(expf(-fabsf(a[i]))); break;
    case MMGAN__OP_LOG: for (i = 0; i < n; i++) y[i] = logf(a[i]); break;
    case MMGAN__OP_SQRT: for (i = 0; i < n; i++) y[i] = sqrtf(a[i]); break;
    case MMGAN__OP_ABS: for (i = 0; i < n; i++) y[i] = fabsf(a[i]); break;
    case MMGAN__OP_SQUARE: mmgan_vec_mul(n, a, a, y); break;
    case MMGAN__OP_MAXIMUM: for (i = 0; i < n; i++) y[i] = (a[i] > f0 || a[i] != a[i]) ? a[i] : f0; break;
    case MMGAN__OP_SIGN: for (i = 0; i < n; i++) y[i] = a[i] > 0.0f ? 1.0f : a[i] < 0.0f ? -1.0f : 0.0f; break;
    default: memcpy(y, a, n * sizeof(float)); break;   /* detach */
    }
}

static void mmgan__fw_unary(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    int k, nblk = (int)((nd->numel + MMGAN__EW_BLOCK - 1) / MMGAN__EW_BLOCK);
    (void)r;
    MMGAN__PAR_FOR(r->ctx->threads, nd->numel >= MMGAN__PAR_MIN)
    for (k = 0; k < nblk; k++) {
        size_t lo = (size_t)k * MMGAN__EW_BLOCK, n = nd->numel - lo;
        mmgan__unary_run(nd, n < MMGAN__EW_BLOCK ? n : MMGAN__EW_BLOCK, x[0] + lo, y + lo);
    }
}

/* --- gy (x > t ? 1 : b): the derivative of relu, leaky relu and maximum,
 * in one pass rather than a step and a product.  Linear in gy, piecewise
 * constant in x, so its own derivative is itself in gy and 0 in x. */
static mmgan_node mmgan__step_mul(mmgan_graph *g, mmgan_node x, mmgan_node gy, float t, float b)
{
    mmgan_node in[2], id;
    in[0] = x; in[1] = gy;
    id = mmgan__like(g, MMGAN__OP_STEP_MUL, 2, in, gy);
    if (id >= 0) { g->nodes[id].fp[0] = t; g->nodes[id].fp[1] = b; }
    return id;
}

static void mmgan__fw_step_mul(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    const float t = nd->fp[0], b = nd->fp[1];
    int k, nblk = (int)((nd->numel + MMGAN__EW_BLOCK - 1) / MMGAN__EW_BLOCK);
    (void)r;
    MMGAN__PAR_FOR(r->ctx->threads, nd->numel >= MMGAN__PAR_MIN)
    for (k = 0; k < nblk; k++) {
        size_t lo = (size_t)k * MMGAN__EW_BLOCK, n = nd->numel - lo, i;
        const float *xa = x[0] + lo, *ga = x[1] + lo;
        float *yb = y + lo;
        if (n > MMGAN__EW_BLOCK) n = MMGAN__EW_BLOCK;
        if (t == 0.0f) {   /* relu and leaky relu: a vector select */
            const mmgan__v one = MMGAN__VSET(1.0f), vb = MMGAN__VSET(b);
            MMGAN__MAP2(n, xa, ga, yb, MMGAN__VMUL(w, MMGAN__VGT0_SEL(u, one, vb)));
        } else {
            for (i = 0; i < n; i++) yb[i] = ga[i] * (xa[i] > t ? 1.0f : b);
        }
    }
}

static mmgan_node mmgan__vjp_step_mul(mmgan_graph *g, mmgan_node id, int i, mmgan_node gg)
{
    mmgan__node nd = g->nodes[id];
    return i == 0 ? MMGAN__ZERO : mmgan__step_mul(g, nd.in[0], gg, nd.fp[0], nd.fp[1]);
}

static mmgan_node mmgan__vjp_unary(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    mmgan__node nd = g->nodes[id];
    mmgan_node x = nd.in[0];
    (void)i;
    switch (nd.op) {
    case MMGAN__OP_AFFINE: return mmgan_scale(g, gy, nd.fp[0]);
    /* The mask from the output (y > 0 exactly where x > 0 for slopes >= 0):
     * the input, often a pre-activation nothing else reads, can then die
     * right after the forward pass instead of living until the backward. */
    case MMGAN__OP_RELU: return mmgan__step_mul(g, id, gy, 0.0f, 0.0f);
    case MMGAN__OP_LEAKY: return mmgan__step_mul(g, nd.fp[0] >= 0.0f ? id : x, gy, 0.0f, nd.fp[0]);
    case MMGAN__OP_MAXIMUM: return mmgan__step_mul(g, x, gy, nd.fp[0], 0.0f);
    case MMGAN__OP_SIGMOID: return mmgan_mul(g, gy, mmgan_mul(g, id, mmgan_affine(g, id, -1.0f, 1.0f)));
    case MMGAN__OP_TANH: return mmgan_mul(g, gy, mmgan_affine(g, mmgan_square(g, id), -1.0f, 1.0f));
    case MMGAN__OP_EXP: return mmgan_mul(g, gy, id);
    case MMGAN__OP_SOFTPLUS: return mmgan_mul(g, gy, mmgan_sigmoid(g, x));
    case MMGAN__OP_LOGSIG: return mmgan_mul(g, gy, mmgan_sigmoid(g, mmgan_scale(g, x, -1.0f)));
    case MMGAN__OP_LOG: return mmgan_div(g, gy, x);
    case MMGAN__OP_SQRT: return mmgan_div(g, gy, mmgan_scale(g, id, 2.0f));
    case MMGAN__OP_ABS: return mmgan_mul(g, gy, mmgan__unary(g, MMGAN__OP_SIGN, x, 0, 0));
    case MMGAN__OP_SQUARE: return mmgan_mul(g, gy, mmgan_scale(g, x, 2.0f));
    default: return MMGAN_NONE;
    }
}

/* --- per-sample max |x| (L-infinity norm) and its subgradient mask ----- */
/* The largest of m0 and a[0..n) (of |a[i]| unless sign), NaNs skipped as
 * "v > m" skips them.  A maximum does not depend on the order it is taken
 * in, so eight independent running maxima replace one chain of dependent
 * compares. */
static float mmgan__max_run(const float *a, size_t n, int sign, float m0)
{
    float m[8];
    size_t i, j;
    for (j = 0; j < 8; j++) m[j] = m0;
#define MMGAN__MAX_RUN(V)                                                      \
    for (i = 0; i + 8 <= n; i += 8)                                            \
        for (j = 0; j < 8; j++) m[j] = V(a[i + j]) > m[j] ? V(a[i + j]) : m[j]; \
    for (; i < n; i++) m[0] = V(a[i]) > m[0] ? V(a[i]) : m[0];
#define MMGAN__AS_IS(v) (v)
    if (sign) { MMGAN__MAX_RUN(MMGAN__AS_IS) } else { MMGAN__MAX_RUN(fabsf) }
#undef MMGAN__AS_IS
#undef MMGAN__MAX_RUN
    for (j = 1; j < 8; j++) m[0] = m[j] > m[0] ? m[j] : m[0];
    return m[0];
}

static void mmgan__fw_maxabs(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    const mmgan__node *nx = &r->g->nodes[nd->in[0]];
    const int sign = nd->fp[0] != 0.0f;
    size_t per = nx->numel / (size_t)nx->shape[0];
    int b;
    for (b = 0; b < nx->shape[0]; b++) {
        const float *a = x[0] + (size_t)b * per;
        y[b] = sign ? mmgan__max_run(a + 1, per - 1, 1, a[0]) : mmgan__max_run(a, per, 0, 0.0f);
    }
}

static mmgan_node mmgan__vjp_maxabs(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    mmgan__node nx = MMGAN__IN(g, id, 0);
    mmgan_node x = g->nodes[id].in[0];
    (void)i;
    return mmgan_mul(g, mmgan_broadcast_to(g, gy, nx.ndim, nx.shape),
                     mmgan__unary(g, MMGAN__OP_MAXABS_MASK, x, g->nodes[id].fp[0], 0));
}

/* sign(x_k) at the first k reaching max |x| of its sample, 0 elsewhere (for
 * the signed maximum, 1 at the first k reaching max x): the k that a scan
 * keeping the first strictly larger value from k = 0 ends on, NaNs skipped
 * (k = 0 when x_0 is NaN).  Found as the maximum, then the first k holding
 * it: the scan itself, each compare waiting on the load of x_k, took 0.27
 * ms for the DCGAN critic's 64x784 input gradient, 5-10x this. */
static void mmgan__fw_maxabs_mask(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    size_t per = nd->numel / (size_t)nd->shape[0], k;
    int b, sign = nd->fp[0] != 0.0f;
    (void)r;
    memset(y, 0, nd->numel * sizeof(float));
    for (b = 0; b < nd->shape[0]; b++) {
        const float *a = x[0] + (size_t)b * per;
        const float first = sign ? a[0] : fabsf(a[0]), m = mmgan__max_run(a + 1, per - 1, sign, first);
        k = 0;
        if (m == m)
            while ((sign ? a[k] : fabsf(a[k])) != m) k++;
        y[(size_t)b * per + k] = sign ? 1.0f : a[k] > 0.0f ? 1.0f : a[k] < 0.0f ? -1.0f : 0.0f;
    }
}

/* --- values from outside: random draws and a referenced scalar --------- */
static void mmgan__fw_random(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    mmgan_rng *rng = (mmgan_rng *)nd->ref;
    (void)r; (void)x;
    if (nd->ip[0]) mmgan_rng_fill_normal(rng, y, nd->numel, nd->fp[0], nd->fp[1]);
    else mmgan_rng_fill_uniform(rng, y, nd->numel, nd->fp[0], nd->fp[1]);
}

static void mmgan__fw_scalar_ref(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    (void)r; (void)x;
    y[0] = *(const float *)nd->ref;
}

/* --- per-sample softmax with temperature s ----------------------------- */
static void mmgan__fw_softmax(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    size_t per = nd->numel / (size_t)nd->shape[0], i;
    float s = nd->fp[0];
    int b;
    (void)r;
    for (b = 0; b < nd->shape[0]; b++) {
        const float *a = x[0] + (size_t)b * per;
        float *o = y + (size_t)b * per, m = s * a[0];
        double sum = 0.0;
        for (i = 1; i < per; i++) m = s * a[i] > m ? s * a[i] : m;
        for (i = 0; i < per; i++) { o[i] = expf(s * a[i] - m); sum += o[i]; }
        for (i = 0; i < per; i++) o[i] = (float)(o[i] / sum);
    }
}

/* dx = s * y * (gy - sum_per_sample(gy * y)) */
static mmgan_node mmgan__vjp_softmax(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    float s = g->nodes[id].fp[0];
    mmgan_node dot = mmgan_sum_per_sample(g, mmgan_mul(g, gy, id));
    (void)i;
    return mmgan_scale(g, mmgan_mul(g, id, mmgan_sub(g, gy, dot)), s);
}

/* --- training batch norm, fused ----------------------------------------
 * batch_norm (x, gamma, beta):     y = gamma xhat + beta, xhat = (x - mean) / sqrt(var + eps)
 * batch_norm_dx (x, gamma, gy):    dx = gamma / sqrt(var + eps) (gy - mean(gy) - xhat mean(gy xhat))
 * batch_norm_dgamma (x, gamma, gy): dgamma = sum(gy xhat)
 * per channel over the batch and the pixels (biased variance).  Each pass
 * recomputes the statistics rather than store them: a block of channels
 * (about 1 MB of each input) is read again from L2.  The higher derivatives
 * go through the composite of mmgan__bn_composite: few graphs need them,
 * and there they are exact to any order. */
static mmgan_status mmgan__grad_ex(mmgan_graph *g, mmgan_node y, mmgan_node seed, int floor,
                                   int n, const mmgan_node *wrt, mmgan_node *out);

struct mmgan__bn_stats { double cnt, mean, var, invstd, sg, sgx; };

/* One plane's sum(x), sum(x x) and, with g, sum(g), sum(g x): the same
 * values as mmgan_vec_sum and mmgan_vec_dot, in one pass whose independent
 * sums overlap (one after another, each waited on its own chain of
 * additions: 2x slower without g, 3x with). */
#if defined(MMGAN__AVX512)
/* The lanes of the loops below (value i in lane i mod 8), one register
 * each, and the trees in registers: the same bits, NaN payloads aside (a
 * float's square, or its product with a float, is exact in double, so a
 * fused multiply-add rounds as the add did), in 6 vector instructions per 8
 * values where gcc 12 -O2 made 16 of half the width; batch norm alone
 * 1.02-1.10x faster. */
static void mmgan__bn_plane(size_t n, const float *x, const float *g, double out[4])
{
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    __mmask8 m;
    if (g) {
        for (; i + 8 <= n; i += 8) {
            const __m512d u = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), v = _mm512_cvtps_pd(_mm256_loadu_ps(g + i));
            s0 = _mm512_add_pd(s0, u); s1 = _mm512_fmadd_pd(u, u, s1);
            s2 = _mm512_add_pd(s2, v); s3 = _mm512_fmadd_pd(v, u, s3);
        }
        if (i < n) {
            const __m512d u = mmgan__tail_pd(n, i, x, &m), v = mmgan__tail_pd(n, i, g, &m);
            s0 = _mm512_mask_add_pd(s0, m, s0, u); s1 = _mm512_mask3_fmadd_pd(u, u, s1, m);
            s2 = _mm512_mask_add_pd(s2, m, s2, v); s3 = _mm512_mask3_fmadd_pd(v, u, s3, m);
        }
    } else {
        for (; i + 8 <= n; i += 8) {
            const __m512d u = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
            s0 = _mm512_add_pd(s0, u); s1 = _mm512_fmadd_pd(u, u, s1);
        }
        if (i < n) {
            const __m512d u = mmgan__tail_pd(n, i, x, &m);
            s0 = _mm512_mask_add_pd(s0, m, s0, u); s1 = _mm512_mask3_fmadd_pd(u, u, s1, m);
        }
    }
    out[0] = mmgan__tree8_pd(s0);
    out[1] = mmgan__tree8_pd(s1);
    out[2] = mmgan__tree8_pd(s2);
    out[3] = mmgan__tree8_pd(s3);
}
#else
static void mmgan__bn_plane(size_t n, const float *x, const float *g, double out[4])
{
    double s0[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s1[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    double s2[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s3[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    int j;
    if (g) {
        for (; i + 8 <= n; i += 8)
            for (j = 0; j < 8; j++) {
                double u = x[i + j], v = g[i + j];
                s0[j] += u; s1[j] += u * u; s2[j] += v; s3[j] += v * u;
            }
        for (j = 0; i < n; i++, j++) {
            double u = x[i], v = g[i];
            s0[j] += u; s1[j] += u * u; s2[j] += v; s3[j] += v * u;
        }
    } else {
        for (; i + 8 <= n; i += 8)
            for (j = 0; j < 8; j++) {
                double u = x[i + j];
                s0[j] += u; s1[j] += u * u;
            }
        for (j = 0; i < n; i++, j++) {
            double u = x[i];
            s0[j] += u; s1[j] += u * u;
        }
    }
    out[0] = MMGAN__TREE8(s0);
    out[1] = MMGAN__TREE8(s1);
    out[2] = MMGAN__TREE8(s2);
    out[3] = MMGAN__TREE8(s3);
}
#endif

/* Channels [c0, c1) of x [N, C, HW]: mean, variance and, with gy, sum(gy)
 * and sum(gy (x - mean)), all in double in a fixed order.  The channels of
 * a block are read image by image, in memory order: taken one at a time,
 * their planes lay a whole image apart, too far for the hardware prefetcher
 * (batch norm on the DCGAN's layers ran 1.25-2.2x slower that way, with the
 * planes prefetched by hand).  Each channel still adds its planes in image
 * order. */
#define MMGAN__BN_BLOCK 64
static void mmgan__bn_block(const mmgan__node *nx, const float *x, const float *gy, int c0, int c1, float eps,
                            mmgan__bn_stats *s)
{
    int n = nx->shape[0], c = nx->shape[1], b, ch;
    size_t hw = nx->numel / ((size_t)n * c);
    double acc[MMGAN__BN_BLOCK][4];
    memset(acc, 0, sizeof acc);
    for (b = 0; b < n; b++)
        for (ch = c0; ch < c1; ch++) {
            size_t o = ((size_t)b * c + ch) * hw;
            double t[4], *a = acc[ch - c0];
            mmgan__bn_plane(hw, x + o, gy ? gy + o : NULL, t);
            a[0] += t[0];
            a[1] += t[1];
            a[2] += t[2];
            a[3] += t[3];
        }
    for (ch = c0; ch < c1; ch++) {
        const double *a = acc[ch - c0];
        mmgan__bn_stats *t = &s[ch - c0];
        t->cnt = (double)n * hw;
        t->mean = a[0] / t->cnt;
        t->var = a[1] / t->cnt - t->mean * t->mean;   /* float data in double: no cancellation worth a second pass */
        if (t->var < 0) t->var = 0;
        t->invstd = 1.0 / sqrt(t->var + eps);
        t->sg = a[2];
        t->sgx = a[3] - t->mean * a[2];
    }
}

static int mmgan__bn_blk(const mmgan__node *nx, int threads)
{
    return mmgan__chan_blk(nx->shape[1], nx->numel / (size_t)nx->shape[1], threads, MMGAN__BN_BLOCK);
}

/* batch_norm_dx and _dgamma of one batch norm read the same x, gamma and gy
 * and need the same sums: a plan pairs them (2.10), and the first to
 * run keeps each channel's for the second, which then skips its pass over
 * x and gy (a third of batch norm's backward time). */
static void mmgan__bn_grad_stats(const mmgan__run *r, const mmgan__node *nx, const float *x, const float *gy,
                                 int c0, int c1, float eps, mmgan__bn_stats *s)
{
    if (r->bn && !r->bn_fill) {
        memcpy(s, r->bn + c0, (size_t)(c1 - c0) * sizeof *s);
        return;
    }
    mmgan__bn_block(nx, x, gy, c0, c1, eps, s);
    if (r->bn) memcpy(r->bn + c0, s, (size_t)(c1 - c0) * sizeof *s);
}

static void mmgan__fw_bn(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    int n = nd->shape[0], c = nd->shape[1], blk = mmgan__bn_blk(nd, r->ctx->threads), kb;
    size_t hw = nd->numel / ((size_t)n * c);
    MMGAN__PAR_FOR(r->ctx->threads, nd->numel >= MMGAN__PAR_MIN)
    for (kb = 0; kb < (c + blk - 1) / blk; kb++) {
        mmgan__bn_stats s[MMGAN__BN_BLOCK];
        const int c0 = kb * blk, c1 = MMGAN__MIN(c, c0 + blk);
        int b, ch;
        mmgan__bn_block(nd, x[0], NULL, c0, c1, nd->fp[0], s);
        for (b = 0; b < n; b++)
            for (ch = c0; ch < c1; ch++) {
                const size_t o = ((size_t)b * c + ch) * hw;
                const mmgan__v va = MMGAN__VSET((float)(x[1][ch] * s[ch - c0].invstd));
                const mmgan__v vm = MMGAN__VSET((float)s[ch - c0].mean), vb = MMGAN__VSET(x[2][ch]);
                MMGAN__MAP1(hw, x[0] + o, y + o, MMGAN__VFMA(MMGAN__VSUB(v, vm), va, vb));
            }
        if (nd->par[0])   /* running statistics, with the unbiased variance */
            for (ch = c0; ch < c1; ch++) {
                float m = nd->fp[1], *rm = nd->par[0]->value->data, *rv = nd->par[1]->value->data;
                const mmgan__bn_stats *t = &s[ch - c0];
                rm[ch] = (1.0f - m) * rm[ch] + m * (float)t->mean;
                rv[ch] = (1.0f - m) * rv[ch] + m * (float)(t->var * t->cnt / (t->cnt - 1));
            }
    }
}

static mmgan_node mmgan__vjp_bn(mmgan_graph *g, mmgan_node id, int i, mmgan_node gy)
{
    mmgan__node nd = g->nodes[id];
    mmgan_node in[3], r;
    int c = nd.shape[1];
    if (i == 2) {
        int sshape[4] = {1, 1, 1, 1};
        sshape[1] = c;
        return mmgan_reshape(g, mmgan_sum_to(g, gy, nd.ndim, sshape), 1, &c);
    }
    in[0] = nd.in[0]; in[1] = nd.in[1]; in[2] = gy;
    r = i == 0 ? mmgan__like(g, MMGAN__OP_BN_DX, 3, in, nd.in[0]) : mmgan__push(g, MMGAN__OP_BN_DGAMMA, 3, in, 1, &c);
    if (r >= 0) g->nodes[r].fp[0] = nd.fp[0];
    return r;
}

static void mmgan__fw_bn_dx(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    int n = nd->shape[0], c = nd->shape[1], blk = mmgan__bn_blk(nd, r->ctx->threads), kb;
    size_t hw = nd->numel / ((size_t)n * c);
    MMGAN__PAR_FOR(r->ctx->threads, nd->numel >= MMGAN__PAR_MIN)
    for (kb = 0; kb < (c + blk - 1) / blk; kb++) {
        /* dx = a gy + b (x - mean) + d */
        mmgan__bn_stats s[MMGAN__BN_BLOCK];
        float k[MMGAN__BN_BLOCK][4];
        const int c0 = kb * blk, c1 = MMGAN__MIN(c, c0 + blk);
        int b, ch;
        mmgan__bn_grad_stats(r, nd, x[0], x[2], c0, c1, nd->fp[0], s);
        for (ch = c0; ch < c1; ch++) {
            const mmgan__bn_stats *t = &s[ch - c0];
            double a = x[1][ch] * t->invstd;
            k[ch - c0][0] = (float)a;
            k[ch - c0][1] = (float)(-a * t->invstd * t->invstd * t->sgx / t->cnt);
            k[ch - c0][2] = (float)(-a * t->sg / t->cnt);
            k[ch - c0][3] = (float)t->mean;
        }
        for (b = 0; b < n; b++)
            for (ch = c0; ch < c1; ch++) {
                const size_t o = ((size_t)b * c + ch) * hw;
                const mmgan__v va = MMGAN__VSET(k[ch - c0][0]), vb = MMGAN__VSET(k[ch - c0][1]);
                const mmgan__v vd = MMGAN__VSET(k[ch - c0][2]), vm = MMGAN__VSET(k[ch - c0][3]);
                MMGAN__MAP2(hw, x[0] + o, x[2] + o, y + o, MMGAN__VFMA(w, va, MMGAN__VFMA(MMGAN__VSUB(u, vm), vb, vd)));
            }
    }
}

static void mmgan__fw_bn_dgamma(const mmgan__run *r, const mmgan__node *nd, float *y, const float *const *x)
{
    const mmgan__node *nx = &r->g->nodes[nd->in[0]];
    int c = nd->shape[0], blk = mmgan__bn_blk(nx, r->ctx->threads), kb;
    MMGAN__PAR_FOR(r->ctx->threads, nx->numel >= MMGAN__PAR_MIN)
    for (kb = 0; kb < (c + blk - 1) / blk; kb++) {
        mmgan__bn_stats s[MMGAN__BN_BLOCK];
        const int c0 = kb * blk, c1 = MMGAN__MIN(c, c0 + blk);
        int ch;
        mmgan__bn_grad_stats(r, nx, x[0], x[2], c0, c1, nd->fp[0], s);
        for (ch = c0; ch < c1; ch++) y[ch] = (float)(s[ch - c0].sgx * s[ch - c0].invstd);
    }
}

/* batch_norm_dx and _dgamma are the first derivatives of the composite,
 * d<y(x, gamma), gy>; their own derivatives are those of the composite's
 * derivative graph, built from x, gamma and gy alone (nodes below the floor
 * are taken as given, so no path through gy is counted twice). */
static mmgan_node mmgan__vjp_bn_grad(mmgan_graph *g, mmgan_node id, int i, mmgan_node gg)
{
    mmgan__node nd = g->nodes[id];
    int floor = g->n;
    mmgan_node wrt = nd.op == MMGAN__OP_BN_DX ? nd.in[0] : nd.in[1], d1, r;
    mmgan_node y = mmgan__bn_composite(g, nd.in[0], nd.in[1], nd.fp[0]);
    if (y < 0 || mmgan__grad_ex(g, y, nd.in[2], floor, 1, &wrt, &d1) != MMGAN_OK) return MMGAN_NONE;
    if (d1 == MMGAN__ZERO) return MMGAN__ZERO;
    if (mmgan__grad_ex(g, d1, gg, floor, 1, &nd.in[i], &r) != MMGAN_OK) return MMGAN_NONE;
    return r;
}

#ifdef MMGAN__TEST_HOOKS
#  define MMGAN__OPTABLE_CONST   /* the tests break a VJP on purpose */
#else
#  define MMGAN__OPTABLE_CONST const
#endif

static MMGAN__OPTABLE_CONST mmgan__opdef mmgan__ops[MMGAN__OP_COUNT] = {
    {MMGAN__OP_INPUT, "input", NULL, NULL, MMGAN__F_LEAF},
    {MMGAN__OP_PARAM, "parameter", NULL, NULL, MMGAN__F_LEAF},
    {MMGAN__OP_CONST, "constant", NULL, NULL, MMGAN__F_LEAF},
    {MMGAN__OP_FILL, "fill", mmgan__fw_fill, NULL, 0},
    {MMGAN__OP_ADD, "add", mmgan__fw_binary, mmgan__vjp_add, 0},
    {MMGAN__OP_SUB, "sub", mmgan__fw_binary, mmgan__vjp_sub, 0},
    {MMGAN__OP_MUL, "mul", mmgan__fw_binary, mmgan__vjp_mul, 0},
    {MMGAN__OP_DIV, "div", mmgan__fw_binary, mmgan__vjp_div, 0},
    {MMGAN__OP_AFFINE, "affine", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_SUM_TO, "sum_to", mmgan__fw_sum_to, mmgan__vjp_sum_to, 0},
    {MMGAN__OP_BROADCAST, "broadcast_to", mmgan__fw_broadcast, mmgan__vjp_broadcast, 0},
    {MMGAN__OP_MATMUL, "matmul", mmgan__fw_matmul, mmgan__vjp_matmul, 0},
    {MMGAN__OP_CONV, "conv2d", mmgan__fw_conv, mmgan__vjp_conv, 0},
    {MMGAN__OP_CONVT, "conv_transpose2d", mmgan__fw_conv, mmgan__vjp_conv, 0},
    {MMGAN__OP_WGRAD, "conv2d_wgrad", mmgan__fw_conv, mmgan__vjp_conv, 0},
    {MMGAN__OP_RESHAPE, "reshape", mmgan__fw_copy, mmgan__vjp_reshape, MMGAN__F_VIEW},
    {MMGAN__OP_CONCAT, "concat", mmgan__fw_concat, mmgan__vjp_concat, 0},
    {MMGAN__OP_SLICE, "slice", mmgan__fw_slice, mmgan__vjp_slice, 0},
    {MMGAN__OP_PAD_BATCH, "pad_batch", mmgan__fw_pad_batch, mmgan__vjp_pad_batch, 0},
    {MMGAN__OP_DETACH, "detach", mmgan__fw_unary, NULL, MMGAN__F_NOGRAD | MMGAN__F_VIEW},
    {MMGAN__OP_RELU, "relu", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_LEAKY, "leaky_relu", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_SIGMOID, "sigmoid", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_TANH, "tanh", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_SOFTPLUS, "softplus", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_LOGSIG, "log_sigmoid", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_EXP, "exp", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_LOG, "log", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_SQRT, "sqrt", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_ABS, "abs", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_SQUARE, "square", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_MAXIMUM, "maximum", mmgan__fw_unary, mmgan__vjp_unary, MMGAN__F_INPLACE},
    {MMGAN__OP_STEP_MUL, "step_mul", mmgan__fw_step_mul, mmgan__vjp_step_mul, MMGAN__F_INPLACE},
    {MMGAN__OP_SIGN, "sign", mmgan__fw_unary, NULL, MMGAN__F_NOGRAD | MMGAN__F_INPLACE},
    {MMGAN__OP_MAXABS, "max_abs_per_sample", mmgan__fw_maxabs, mmgan__vjp_maxabs, 0},
    {MMGAN__OP_MAXABS_MASK, "max_abs_mask", mmgan__fw_maxabs_mask, NULL, MMGAN__F_NOGRAD},
    {MMGAN__OP_SOFTMAX, "softmax_per_sample", mmgan__fw_softmax, mmgan__vjp_softmax, 0},
    {MMGAN__OP_BN, "batch_norm", mmgan__fw_bn, mmgan__vjp_bn, 0},
    {MMGAN__OP_BN_DX, "batch_norm_dx", mmgan__fw_bn_dx, mmgan__vjp_bn_grad, 0},
    {MMGAN__OP_BN_DGAMMA, "batch_norm_dgamma", mmgan__fw_bn_dgamma, mmgan__vjp_bn_grad, 0},
    {MMGAN__OP_RANDOM, "random", mmgan__fw_random, NULL, 0},
    {MMGAN__OP_SCALAR_REF, "scalar_ref", mmgan__fw_scalar_ref, NULL, 0},
};

static const char *mmgan__op_name(int op)
{
    return op >= 0 && op < MMGAN__OP_COUNT ? mmgan__ops[op].name : "?";
}

/* Scratch floats an op needs while it runs. */
static size_t mmgan__scratch_floats(const mmgan_graph *g, const mmgan__node *nd)
{
    switch (nd->op) {
    case MMGAN__OP_CONV: case MMGAN__OP_CONVT: case MMGAN__OP_WGRAD: return mmgan__conv_scratch(g, nd);
    case MMGAN__OP_SUM_TO: return 2 * nd->numel;   /* double accumulators */
    default: return 0;
    }
}

/* ===================================================================== */
/* 2.10 Execution plans                                                   */
/* ===================================================================== */
struct mmgan_plan {
    mmgan_graph *g;
    int nn;               /* graph size when planned */
    int n, *order;        /* nodes to compute: by stage, then in topological order */
    int nstages, *begin;  /* stage s computes order[begin[s] .. begin[s + 1]) */
    int next;             /* the stage that may run next after stage 0 */
    size_t *off;          /* arena offset per graph node, or (size_t)-1 */
    size_t *soff, *ssz;   /* per node: its op's scratch in the arena (offset, floats), or (size_t)-1 and 0 */
    unsigned char *view;  /* 1: shares its input's buffer, nothing to compute */
    unsigned char *keep;  /* targets: readable after a run */
    unsigned char *zero;  /* per node: 1 if its value is all zeros as last computed, 2 if so but not written */
    unsigned char *done;  /* per node: 1 once a run of its stage has computed it */
    int zero_skip;        /* 1 (the default): ops with zero operands are not run (tests set 0) */
    int zeroed;           /* ops the last stage run took as zeros instead of running */
    float *arena;
    size_t arena_floats;
    int *bnat;                /* per node: its channels' first entry in bnstats, or -1 */
    unsigned char *bnfill;    /* 1: the pair's first op (computes), 0: the second (reads) */
    mmgan__bn_stats *bnstats;
};

#define MMGAN__NOBUF ((size_t)-1)
#if defined(MMGAN__TEST_HOOKS)
/* Tests' builds leave a guard of 16 floats right after each op's scratch
 * and count the runs that wrote into it: a scratch shares the arena with
 * values, so a kernel overrunning its planned size would overwrite one
 * silently rather than leave its buffer. */
#define MMGAN__SGUARD 16
static int mmgan__scratch_overruns;
#else
#define MMGAN__SGUARD 0
#endif

static const float *mmgan__value(const mmgan_plan *p, int id)
{
    const mmgan__node *nd = &p->g->nodes[id];
    switch (nd->op) {
    case MMGAN__OP_INPUT: return nd->feed;
    case MMGAN__OP_PARAM: return nd->par[0]->value->data;
    case MMGAN__OP_CONST: return nd->cdata;
    default: return p->off[id] == MMGAN__NOBUF ? NULL : p->arena + p->off[id];
    }
}

/* Pairs each batch_norm_dx with the batch_norm_dgamma of the same x, gamma,
 * gy and eps computed in the same stage (between stages gamma may have been
 * updated), for mmgan__bn_grad_stats.  0: out of memory. */
static int mmgan__plan_pair_bn(mmgan_plan *p)
{
    const mmgan_graph *g = p->g;
    int s, k, k2, used = 0;
    p->bnat = (int *)mmgan_alloc(g->ctx, (size_t)g->n * sizeof(int));
    p->bnfill = (unsigned char *)mmgan_alloc(g->ctx, (size_t)g->n);
    if (!p->bnat || !p->bnfill) return 0;
    for (k = 0; k < g->n; k++) { p->bnat[k] = -1; p->bnfill[k] = 0; }
    for (s = 0; s < p->nstages; s++)
        for (k = p->begin[s]; k < p->begin[s + 1]; k++) {
            const mmgan__node *a = &g->nodes[p->order[k]];
            if ((a->op != MMGAN__OP_BN_DX && a->op != MMGAN__OP_BN_DGAMMA) || p->bnat[p->order[k]] >= 0) continue;
            for (k2 = k + 1; k2 < p->begin[s + 1]; k2++) {
                const mmgan__node *b = &g->nodes[p->order[k2]];
                if ((b->op == MMGAN__OP_BN_DX || b->op == MMGAN__OP_BN_DGAMMA) && b->op != a->op &&
                    p->bnat[p->order[k2]] < 0 && b->in[0] == a->in[0] && b->in[1] == a->in[1] &&
                    b->in[2] == a->in[2] && b->fp[0] == a->fp[0]) {
                    p->bnat[p->order[k]] = p->bnat[p->order[k2]] = used;
                    p->bnfill[p->order[k]] = 1;
                    used += g->nodes[a->in[0]].shape[1];
                    break;
                }
            }
        }
    if (used == 0) return 1;
    p->bnstats = (mmgan__bn_stats *)mmgan_alloc(g->ctx, (size_t)used * sizeof(mmgan__bn_stats));
    return p->bnstats != NULL;
}

/* Ops whose order among themselves shows in the results: random draws
 * (sharing an rng) and batch norm's running statistics. */
static int mmgan__sequenced(const mmgan__node *nd)
{
    return nd->op == MMGAN__OP_RANDOM || (nd->op == MMGAN__OP_BN && nd->par[0]);
}

/* Whether input k of nd is the first of its inputs in its buffer (root). */
static int mmgan__first_read(const mmgan__node *nd, int k, const int *root)
{
    int i;
    for (i = 0; i < k; i++)
        if (root[nd->in[i]] == root[nd->in[k]]) return 0;
    return 1;
}

/* Each stage's nodes in order (into order, from begin[s]): a topological
 * order that keeps memory low, chosen greedily.  Of the nodes whose inputs
 * are all computed, the next is the one that adds the least to the live
 * values: its output less the buffers whose last reader it is (neither a
 * target nor read by a later stage), the first in id order on a tie.  A
 * graph lists its forward before its gradients, so in id order a critic's
 * activations on the real batch stayed live through the backward of the
 * fake one: run so, the DCGAN step's plan peaked at 36.3 MiB.  The random
 * draws and the batch norms with running statistics keep their id order.
 * 0: out of memory. */
static int mmgan__plan_schedule(const mmgan_graph *g, const int *stage, int nstages, const unsigned char *keep,
                                int *order, int *begin)
{
    mmgan_ctx *ctx = g->ctx;
    const int n = g->n;
    /* per node: its consumers' start in cons, unscheduled inputs, pending
     * readers of its buffer, that buffer, the last stage reading it, a slot
     * of the ready list, the next sequenced node */
    int *cs = (int *)mmgan_alloc(ctx, (7 * (size_t)n + 1) * sizeof(int)), *cons = NULL;
    int *indeg = cs + n + 1, *pend = indeg + n, *vroot = pend + n, *lastst = vroot + n, *ready = lastst + n;
    int *nextseq = ready + n;
    int i, j, k, s, pos = 0, nready, ok = 0;
    if (!cs) goto done;
    /* consumers of each node, in id order (CSR) */
    memset(cs, 0, (size_t)(n + 1) * sizeof(int));
    for (j = 0; j < n; j++)
        if (stage[j] >= 0)
            for (k = 0; k < g->nodes[j].nin; k++) cs[g->nodes[j].in[k] + 1]++;
    for (i = 0; i < n; i++) cs[i + 1] += cs[i];
    cons = (int *)mmgan_alloc(ctx, (size_t)MMGAN__MAX(1, cs[n]) * sizeof(int));
    if (!cons) goto done;
    for (i = 0; i < n; i++) indeg[i] = cs[i];   /* fill cursors */
    for (j = 0; j < n; j++)
        if (stage[j] >= 0)
            for (k = 0; k < g->nodes[j].nin; k++) cons[indeg[g->nodes[j].in[k]]++] = j;
    /* buffers: a view's is its input's (as placed: a view of a leaf is a
     * copy); the last stage that reads each */
    for (i = 0; i < n; i++) {
        const mmgan__node *nd = &g->nodes[i];
        vroot[i] = i;
        if ((mmgan__ops[nd->op].flags & MMGAN__F_VIEW) && !(mmgan__ops[g->nodes[nd->in[0]].op].flags & MMGAN__F_LEAF))
            vroot[i] = vroot[nd->in[0]];
        lastst[i] = -1;
    }
    for (i = 0; i < n; i++) if (keep[i]) lastst[vroot[i]] = nstages;
    for (j = 0; j < n; j++)
        if (stage[j] >= 0 && vroot[j] == j)
            for (k = 0; k < g->nodes[j].nin; k++) {
                const int r = vroot[g->nodes[j].in[k]];
                if (stage[j] > lastst[r]) lastst[r] = stage[j];
            }
    for (s = 0; s < nstages; s++) {
        int prevseq = -1;
        begin[s] = pos;
        nready = 0;
        for (j = 0; j < n; j++) {
            const mmgan__node *nd = &g->nodes[j];
            if (stage[j] != s) continue;
            indeg[j] = 0;
            nextseq[j] = -1;
            for (k = 0; k < nd->nin; k++) indeg[j] += stage[nd->in[k]] == s;
            if (mmgan__sequenced(nd)) {
                if (prevseq >= 0) { nextseq[prevseq] = j; indeg[j]++; }
                prevseq = j;
            }
        }
        for (i = 0; i < n; i++) pend[i] = 0;
        for (j = 0; j < n; j++) {
            const mmgan__node *nd = &g->nodes[j];
            if (stage[j] != s || vroot[j] != j) continue;
            for (k = 0; k < nd->nin; k++)   /* each buffer once per reader */
                if (mmgan__first_read(nd, k, vroot)) pend[vroot[nd->in[k]]]++;
        }
        for (j = 0; j < n; j++) if (stage[j] == s && indeg[j] == 0) ready[nready++] = j;
        while (nready > 0) {
            int best = 0, bj;
            double bcost = 0;
            for (i = 0; i < nready; i++) {
                const mmgan__node *nd = &g->nodes[ready[i]];
                const int view = vroot[ready[i]] != ready[i];
                double cost = view || (mmgan__ops[nd->op].flags & MMGAN__F_LEAF) ? 0.0 : (double)nd->numel;
                if (!view)
                    for (k = 0; k < nd->nin; k++) {
                        const int r = vroot[nd->in[k]];
                        if (mmgan__first_read(nd, k, vroot) && pend[r] == 1 && lastst[r] <= s &&
                            !(mmgan__ops[g->nodes[r].op].flags & MMGAN__F_LEAF))
                            cost -= (double)g->nodes[r].numel;
                    }
                if (i == 0 || cost < bcost || (cost == bcost && ready[i] < ready[best])) { best = i; bcost = cost; }
            }
            bj = ready[best];
            ready[best] = ready[--nready];
            order[pos++] = bj;
            if (vroot[bj] == bj)
                for (k = 0; k < g->nodes[bj].nin; k++)
                    if (mmgan__first_read(&g->nodes[bj], k, vroot)) pend[vroot[g->nodes[bj].in[k]]]--;
            for (i = cs[bj]; i < cs[bj + 1]; i++)
                if (stage[cons[i]] == s && --indeg[cons[i]] == 0) ready[nready++] = cons[i];
            if (nextseq[bj] >= 0 && --indeg[nextseq[bj]] == 0) ready[nready++] = nextseq[bj];
        }
    }
    begin[nstages] = pos;
    ok = 1;
done:
    mmgan_free(ctx, cs);
    mmgan_free(ctx, cons);
    return ok;
}

/* The buffers of the plan's values and scratch, for its order (p->order,
 * p->n): p->off, p->soff, p->ssz and p->view; returns the arena's floats.
 * The work arrays hold 2 g->n entries each (last and root g->n). */
static size_t mmgan__plan_place(mmgan_plan *p, int *last, int *root, int *first, int *end, int *placed,
                                size_t *sz, size_t *at, int *byorder)
{
    const mmgan_graph *g = p->g;
    size_t top = 0;
    int i, k, t, sp, nplaced;
    memset(p->view, 0, (size_t)g->n);
    for (i = 0; i < g->n; i++) {
        p->off[i] = p->soff[i] = MMGAN__NOBUF;
        p->ssz[i] = 0;
        last[i] = root[i] = -1;
        sz[i] = (g->nodes[i].numel + 15) & ~(size_t)15;
    }
    for (k = 0; k < p->n; k++) {
        const mmgan__node *nd = &g->nodes[p->order[k]];
        for (i = 0; i < nd->nin; i++) last[nd->in[i]] = k;
    }
    /* Buffers by lifetime.  A view (reshape, detach) of a computed value
     * shares its buffer, which then lives as long as its last view.  A value
     * lives from its position to its last reader (targets: to the end), and
     * the values are placed largest first, each at the lowest offset free
     * over its whole lifetime (greedy by size: near the peak of the live
     * sizes, where first-fit on a free list fragments badly).  end: the last
     * position that reads a value or a later view of it (views first, from
     * the last back, so that whether an op may write over an input is
     * known when the op is reached); for a buffer, at its root.  An op's
     * scratch is a buffer too, living at the op's position only: the
     * convolutions' scratch (megabytes for F(4x4, 2x2)'s transformed
     * weights) then shares the arena with values dead at that point, where
     * one scratch for all ops, beside the arena, added the largest to the
     * peak (MAGAN's plan 14.5 MiB, the DCGAN's 55.6). */
    for (k = 0; k < p->n; k++) {
        int id = p->order[k];
        end[id] = p->keep[id] ? p->n : last[id] > k ? last[id] : k;
    }
    for (k = p->n - 1; k >= 0; k--) {
        const mmgan__node *nd = &g->nodes[p->order[k]];
        if ((mmgan__ops[nd->op].flags & MMGAN__F_VIEW) && end[p->order[k]] > end[nd->in[0]])
            end[nd->in[0]] = end[p->order[k]];
    }
    for (k = 0; k < p->n; k++) {
        int id = p->order[k];
        const mmgan__node *nd = &g->nodes[id];
        if (mmgan__ops[nd->op].flags & MMGAN__F_LEAF) continue;
        p->ssz[id] = mmgan__scratch_floats(g, nd);
        root[id] = id;
        if ((mmgan__ops[nd->op].flags & MMGAN__F_VIEW) && root[nd->in[0]] >= 0) {
            root[id] = root[nd->in[0]];
            p->view[id] = 1;
        } else if (mmgan__ops[nd->op].flags & MMGAN__F_INPLACE) {
            /* an input's buffer of the output's size dies here: the output
             * takes it over (the critic's leaky relu and the generator's
             * relu on batch norm's output, their gradients over the
             * incoming gradient: less memory, and no fresh lines to write) */
            for (i = 0; i < nd->nin; i++) {
                const int in = nd->in[i];
                if (root[in] >= 0 && end[root[in]] == k && g->nodes[in].numel == nd->numel) {
                    root[id] = root[in];
                    end[root[id]] = end[id];
                    break;
                }
            }
        }
        if (root[id] == id) first[id] = k;
    }
    for (k = 0, t = 0; k < p->n; k++) {
        const int id = p->order[k];
        if (root[id] == id) byorder[t++] = id;
        if (p->ssz[id] > 0) {
            byorder[t++] = g->n + id;
            first[g->n + id] = end[g->n + id] = k;
            sz[g->n + id] = ((p->ssz[id] + 15) & ~(size_t)15) + MMGAN__SGUARD;
        }
    }
    sp = t;
    /* largest first; ties in plan order (an insertion sort would be n^2 too, as the placement is) */
    for (i = 1; i < sp; i++) {
        int v = byorder[i], j = i - 1;
        while (j >= 0 && sz[byorder[j]] < sz[v]) { byorder[j + 1] = byorder[j]; j--; }
        byorder[j + 1] = v;
    }
    for (i = 0, nplaced = 0; i < sp; i++) {
        int v = byorder[i], j, a;
        size_t o = 0;
        for (j = 0; j < nplaced; j++) {   /* placed: in offset order */
            int u = placed[j];
            if (first[u] > end[v] || first[v] > end[u]) continue;   /* lifetimes apart */
            if (o + sz[v] <= at[u]) break;
            if (at[u] + sz[u] > o) o = at[u] + sz[u];
        }
        at[v] = o;
        if (o + sz[v] > top) top = o + sz[v];
        for (a = nplaced; a > 0 && at[placed[a - 1]] > o; a--) placed[a] = placed[a - 1];
        placed[a] = v;
        nplaced++;
    }
    for (k = 0; k < p->n; k++) {   /* a root comes before what shares its buffer */
        int id = p->order[k];
        if (root[id] == id) p->off[id] = at[id];
        else if (root[id] >= 0) p->off[id] = p->off[root[id]];   /* views, outputs written in place */
        if (p->ssz[id] > 0) p->soff[id] = at[g->n + id];
    }
    return top;
}

MMGAN_DEF mmgan_plan *mmgan_plan_new(mmgan_graph *g, int n, const mmgan_node *targets)
{
    return mmgan_plan_new_stages(g, 1, &n, targets);
}

MMGAN_DEF mmgan_plan *mmgan_plan_new_stages(mmgan_graph *g, int nstages, const int *counts,
                                            const mmgan_node *targets)
{
    mmgan_ctx *ctx;
    mmgan_plan *p;
    int *stack = NULL, *last = NULL, *stage = NULL, *root = NULL, *first = NULL, *end = NULL, *placed = NULL;
    int *alt = NULL, sp = 0, i, k, s, t, n = 0;
    size_t top, top2, *sz = NULL, *at = NULL;
    if (!g) return NULL;
    ctx = g->ctx;
    if (g->status != MMGAN_OK) {
        mmgan__fail(ctx, g->status, "plan_new: the graph has a build error (status %s); fix it first",
                    mmgan_status_name(g->status));
        return NULL;
    }
    if (nstages < 1 || !counts || !targets) {
        mmgan__fail(ctx, MMGAN_ERR_INVALID, "plan_new: no targets");
        return NULL;
    }
    for (s = 0; s < nstages; s++) {
        if (counts[s] < 1 || counts[s] > INT_MAX - n) {
            mmgan__fail(ctx, MMGAN_ERR_INVALID, "plan_new: stage %d has %d targets; each stage needs at least one",
                        s, counts[s]);
            return NULL;
        }
        n += counts[s];
    }
    for (i = 0; i < n; i++)
        if (targets[i] < 0 || targets[i] >= g->n) {
            mmgan__fail(ctx, MMGAN_ERR_INVALID, "plan_new: target %d is not a node of this graph", targets[i]);
            return NULL;
        }
    p = (mmgan_plan *)mmgan_alloc(ctx, sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->g = g;
    p->nn = g->n;
    p->nstages = nstages;
    p->order = (int *)mmgan_alloc(ctx, (size_t)g->n * sizeof(int));
    p->begin = (int *)mmgan_alloc(ctx, (size_t)(nstages + 1) * sizeof(int));
    p->off = (size_t *)mmgan_alloc(ctx, (size_t)g->n * sizeof(size_t));
    p->soff = (size_t *)mmgan_alloc(ctx, (size_t)g->n * sizeof(size_t));
    p->ssz = (size_t *)mmgan_alloc(ctx, (size_t)g->n * sizeof(size_t));
    p->keep = (unsigned char *)mmgan_alloc(ctx, (size_t)g->n);
    stage = (int *)mmgan_alloc(ctx, (size_t)g->n * sizeof(int));
    /* the placement's items: node i's value is item i, its op's scratch item g->n + i */
    stack = (int *)mmgan_alloc(ctx, 2 * (size_t)g->n * sizeof(int));
    last = (int *)mmgan_alloc(ctx, (size_t)g->n * sizeof(int));
    p->view = (unsigned char *)mmgan_alloc(ctx, (size_t)g->n);
    p->zero = (unsigned char *)mmgan_alloc(ctx, (size_t)g->n);
    p->done = (unsigned char *)mmgan_alloc(ctx, (size_t)g->n);
    root = (int *)mmgan_alloc(ctx, (size_t)g->n * sizeof(int));
    first = (int *)mmgan_alloc(ctx, 2 * (size_t)g->n * sizeof(int));
    end = (int *)mmgan_alloc(ctx, 2 * (size_t)g->n * sizeof(int));
    placed = (int *)mmgan_alloc(ctx, 2 * (size_t)g->n * sizeof(int));
    sz = (size_t *)mmgan_alloc(ctx, 2 * (size_t)g->n * sizeof(size_t));
    at = (size_t *)mmgan_alloc(ctx, 2 * (size_t)g->n * sizeof(size_t));
    alt = (int *)mmgan_alloc(ctx, ((size_t)g->n + (size_t)nstages + 1) * sizeof(int));
    if (!p->order || !p->begin || !p->off || !p->soff || !p->ssz || !p->keep || !p->view || !p->zero || !p->done ||
        !stage || !stack || !last || !root || !first || !end || !placed || !sz || !at || !alt) goto fail;
    memset(p->keep, 0, (size_t)g->n);
    memset(p->view, 0, (size_t)g->n);
    memset(p->zero, 0, (size_t)g->n);
    memset(p->done, 0, (size_t)g->n);
    p->zero_skip = 1;
    /* Prune: each node belongs to the first stage whose targets reach it
     * (found with an explicit stack); a later stage reuses it. */
    for (i = 0; i < g->n; i++) stage[i] = -1;
    for (s = 0, t = 0; s < nstages; s++)
        for (k = 0; k < counts[s]; k++, t++) {
            p->keep[targets[t]] = 1;
            if (stage[targets[t]] < 0) { stage[targets[t]] = s; stack[sp++] = targets[t]; }
            while (sp > 0) {
                const mmgan__node *nd = &g->nodes[stack[--sp]];
                for (i = 0; i < nd->nin; i++)
                    if (stage[nd->in[i]] < 0) { stage[nd->in[i]] = s; stack[sp++] = nd->in[i]; }
            }
        }
    /* The greedy order, or the graph's own where that places in no more. */
    if (!mmgan__plan_schedule(g, stage, nstages, p->keep, p->order, p->begin)) goto fail;
    p->n = p->begin[nstages];
    top = mmgan__plan_place(p, last, root, first, end, placed, sz, at, stack);
    memcpy(alt, p->order, (size_t)p->n * sizeof(int));
    memcpy(alt + g->n, p->begin, (size_t)(nstages + 1) * sizeof(int));
    for (s = 0, k = 0; s < nstages; s++) {
        p->begin[s] = k;
        for (i = 0; i < g->n; i++)
            if (stage[i] == s) p->order[k++] = i;
    }
    top2 = mmgan__plan_place(p, last, root, first, end, placed, sz, at, stack);
    if (top2 > top) {
        memcpy(p->order, alt, (size_t)p->n * sizeof(int));
        memcpy(p->begin, alt + g->n, (size_t)(nstages + 1) * sizeof(int));
        mmgan__plan_place(p, last, root, first, end, placed, sz, at, stack);
    } else {
        top = top2;
    }
    p->arena_floats = top;
    p->arena = (float *)mmgan_alloc(ctx, (p->arena_floats + 16) * sizeof(float));
    if (!p->arena || !mmgan__plan_pair_bn(p)) goto fail;
    mmgan_free(ctx, stage); mmgan_free(ctx, stack); mmgan_free(ctx, last); mmgan_free(ctx, root);
    mmgan_free(ctx, first); mmgan_free(ctx, end); mmgan_free(ctx, placed); mmgan_free(ctx, sz); mmgan_free(ctx, at);
    mmgan_free(ctx, alt);
    return p;
fail:
    mmgan_free(ctx, stage); mmgan_free(ctx, stack); mmgan_free(ctx, last); mmgan_free(ctx, root);
    mmgan_free(ctx, first); mmgan_free(ctx, end); mmgan_free(ctx, placed); mmgan_free(ctx, sz); mmgan_free(ctx, at);
    mmgan_free(ctx, alt);
    mmgan_plan_free(p);
    mmgan__fail(ctx, MMGAN_ERR_NOMEM, "plan_new: out of memory");
    return NULL;
}

MMGAN_DEF void mmgan_plan_free(mmgan_plan *p)
{
    mmgan_ctx *ctx;
    if (!p) return;
    ctx = p->g->ctx;
    mmgan_free(ctx, p->order);
    mmgan_free(ctx, p->begin);
    mmgan_free(ctx, p->off);
    mmgan_free(ctx, p->soff);
    mmgan_free(ctx, p->ssz);
    mmgan_free(ctx, p->keep);
    mmgan_free(ctx, p->view);
    mmgan_free(ctx, p->zero);
    mmgan_free(ctx, p->done);
    mmgan_free(ctx, p->arena);
    mmgan_free(ctx, p->bnat);
    mmgan_free(ctx, p->bnfill);
    mmgan_free(ctx, p->bnstats);
    mmgan_free(ctx, p);
}

/* Zeros that flow through a graph are not multiplied out.  The gradient
 * of a hinge penalty (or loss) is zero for every sample inside its margin,
 * so when no sample crosses it the whole double backward of the penalty
 * multiplies zeros: the critic's largest convolutions among them.  Small
 * outputs are checked for all zeros after they are computed (a scan far
 * cheaper than the op), and an op whose output must then be zero is filled
 * with zeros instead of run: one linear in a zero operand whose other
 * operand is finite (a product with an Inf or NaN makes NaNs, which must
 * still appear), or a sum or f(0) = 0 function of zeros only.  The values
 * are those the op would give, up to the sign of a zero.  The zeros are
 * written only where something reads them (mmgan__zero_write): an op that
 * runs, or the caller reading a target.  Most are read by ops skipped in
 * turn: writing them all took 1.2 ms of the DCGAN penalty step (2.6 M
 * floats, 0.76 ms of it the 64x64x14x14 gradient), 14% of what the penalty
 * adds to the step on two threads. */
#define MMGAN__ZERO_SCAN 4096

static void mmgan__zero_write(mmgan_plan *p, int id)
{
    if (p->zero[id] != 2) return;
    memset(p->arena + p->off[id], 0, p->g->nodes[id].numel * sizeof(float));
    p->zero[id] = 1;
}

static int mmgan__all_zero(const float *y, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) if (y[i] != 0.0f) return 0;
    return 1;
}

/* 1 if input i is all zeros and input j finite: their product is zero. */
static int mmgan__zero_times(const mmgan_plan *p, const mmgan__node *nd, int i, int j)
{
    return p->zero[nd->in[i]] &&
           (p->zero[nd->in[j]] || mmgan__all_finite(mmgan__value(p, nd->in[j]), p->g->nodes[nd->in[j]].numel));
}

static int mmgan__zero_from_inputs(const mmgan_plan *p, const mmgan__node *nd)
{
    const unsigned char *z = p->zero;
    int i;
    switch (nd->op) {
    case MMGAN__OP_FILL: return nd->fp[0] == 0.0f;
    case MMGAN__OP_MUL: case MMGAN__OP_MATMUL: return mmgan__zero_times(p, nd, 0, 1) || mmgan__zero_times(p, nd, 1, 0);
    /* products of data and weights, plus a bias if any */
    case MMGAN__OP_CONV: case MMGAN__OP_CONVT: case MMGAN__OP_WGRAD:
        return (nd->nin < 3 || z[nd->in[2]]) && (mmgan__zero_times(p, nd, 0, 1) || mmgan__zero_times(p, nd, 1, 0));
    /* gy (x > t ? 1 : b): zero for gy = 0, and for x = 0 where t >= 0 and
     * b = 0 (a relu's gradient) */
    case MMGAN__OP_STEP_MUL:
        return z[nd->in[1]] || (nd->fp[0] >= 0.0f && nd->fp[1] == 0.0f && mmgan__zero_times(p, nd, 0, 1));
    case MMGAN__OP_AFFINE: return nd->fp[1] == 0.0f && z[nd->in[0]];
    /* sums, moves, and functions with f(0) = 0, of zeros only */
    case MMGAN__OP_ADD: case MMGAN__OP_SUB: case MMGAN__OP_SUM_TO: case MMGAN__OP_BROADCAST:
    case MMGAN__OP_CONCAT: case MMGAN__OP_SLICE: case MMGAN__OP_PAD_BATCH: case MMGAN__OP_RELU:
    case MMGAN__OP_LEAKY: case MMGAN__OP_TANH: case MMGAN__OP_SQRT: case MMGAN__OP_ABS:
    case MMGAN__OP_SQUARE: case MMGAN__OP_SIGN: case MMGAN__OP_MAXABS:
        for (i = 0; i < nd->nin; i++) if (!z[nd->in[i]]) return 0;
        return 1;
    default: return 0;
    }
}

MMGAN_DEF mmgan_status mmgan_plan_run_stage(mmgan_plan *p, int s)
{
    mmgan__run r;
    int k, i;
    if (!p) return MMGAN_ERR_INVALID;
    r.ctx = p->g->ctx;
    if (s < 0 || s >= p->nstages)
        return mmgan__fail(r.ctx, MMGAN_ERR_INVALID, "plan_run_stage: stage %d of a plan with %d stage%s",
                           s, p->nstages, p->nstages == 1 ? "" : "s");
    if (s > 0 && p->next != s)
        return mmgan__fail(r.ctx, MMGAN_ERR_INVALID,
                           "plan_run_stage: stage %d reuses the values of stage %d, which has not just run", s, s - 1);
    r.g = p->g;
    r.bn = NULL;
    r.bn_fill = 0;
    for (k = p->begin[s]; k < p->begin[s + 1]; k++) {
        const mmgan__node *nd = &p->g->nodes[p->order[k]];
        if (nd->op == MMGAN__OP_INPUT && !nd->feed)
            return mmgan__fail(r.ctx, MMGAN_ERR_INVALID, "plan_run: input '%s' (node %d) was not fed",
                               nd->name, p->order[k]);
    }
    p->zeroed = 0;
    for (k = p->begin[s]; k < p->begin[s + 1]; k++) {
        int id = p->order[k];
        const mmgan__node *nd = &p->g->nodes[id];
        const float *x[3];
        float *y;
        if (mmgan__ops[nd->op].flags & MMGAN__F_LEAF) continue;
        if (p->view[id]) { p->zero[id] = p->zero[nd->in[0]]; continue; }
        y = p->arena + p->off[id];
        if (p->zero_skip && mmgan__zero_from_inputs(p, nd)) {
            p->zero[id] = 2;
            p->zeroed++;
            continue;
        }
        for (i = 0; i < nd->nin; i++) {
            mmgan__zero_write(p, nd->in[i]);
            x[i] = mmgan__value(p, nd->in[i]);
        }
        r.bn = p->bnat[id] >= 0 ? p->bnstats + p->bnat[id] : NULL;
        r.bn_fill = p->bnfill[id];
        r.scratch = p->ssz[id] > 0 ? p->arena + p->soff[id] : NULL;
        r.scratch_floats = p->ssz[id];
#if defined(MMGAN__TEST_HOOKS)
        if (r.scratch) for (i = 0; i < MMGAN__SGUARD; i++) r.scratch[p->ssz[id] + i] = -1234.5f;
#endif
        mmgan__ops[nd->op].fwd(&r, nd, y, x);
#if defined(MMGAN__TEST_HOOKS)
        if (r.scratch)
            for (i = 0; i < MMGAN__SGUARD; i++)
                if (r.scratch[p->ssz[id] + i] != -1234.5f) { mmgan__scratch_overruns++; break; }
#endif
        p->zero[id] = nd->numel <= MMGAN__ZERO_SCAN && mmgan__all_zero(y, nd->numel);
    }
    for (k = p->begin[s]; k < p->begin[s + 1]; k++) {
        if (p->keep[p->order[k]]) mmgan__zero_write(p, p->order[k]);
        p->done[p->order[k]] = 1;
    }
    p->next = s + 1 < p->nstages ? s + 1 : 0;
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_plan_run(mmgan_plan *p)
{
    int s;
    mmgan_status st = p ? MMGAN_OK : MMGAN_ERR_INVALID;
    for (s = 0; p && s < p->nstages && st == MMGAN_OK; s++) st = mmgan_plan_run_stage(p, s);
    return st;
}

MMGAN_DEF int mmgan_plan_stages(const mmgan_plan *p)
{
    return p ? p->nstages : 0;
}

MMGAN_DEF const float *mmgan_plan_value(const mmgan_plan *p, mmgan_node x)
{
    if (!p || x < 0 || x >= p->nn) return NULL;
    if (mmgan__ops[p->g->nodes[x].op].flags & MMGAN__F_LEAF) return mmgan__value(p, x);
    return p->keep[x] && p->done[x] ? mmgan__value(p, x) : NULL;
}

MMGAN_DEF size_t mmgan_plan_bytes(const mmgan_plan *p)
{
    return p ? p->arena_floats * sizeof(float) : 0;
}

/* ===================================================================== */
/* 2.11 Automatic differentiation                                         */
/* ===================================================================== */
/* Reverse sweep over node ids (a topological order) from y down, touching
 * only nodes that both depend on a wrt node and feed y.  Gradients reaching
 * a node from several consumers are summed with add nodes.  Two extras serve
 * the ops' own VJPs: the gradient of y may be seeded with a node (else
 * ones), and nodes below floor are leaves, their inputs not followed; then
 * an unreached wrt gets MMGAN__ZERO, not zeros. */
static mmgan_status mmgan__grad_ex(mmgan_graph *g, mmgan_node y, mmgan_node seed, int floor,
                                   int n, const mmgan_node *wrt_in, mmgan_node *out)
{
    mmgan_ctx *ctx;
    unsigned char *dep = NULL, *feeds = NULL;
    mmgan_node *acc = NULL, *wrt = NULL;
    int lo, id, i, ny, inner;
    mmgan_status st = MMGAN_OK;
    if (!g) return MMGAN_ERR_INVALID;
    ctx = g->ctx;
    if (n < 1 || !wrt_in || !out) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "grad: no wrt nodes");
    /* wrt checked and copied before out is cleared: out may be the same array */
    if (g->status == MMGAN_OK && mmgan__args_ok(g, "grad", 1, &y) && mmgan__args_ok(g, "grad (wrt)", n, wrt_in)) {
        wrt = (mmgan_node *)mmgan_alloc(ctx, (size_t)n * sizeof(mmgan_node));
        if (wrt) memcpy(wrt, wrt_in, (size_t)n * sizeof(mmgan_node));
    }
    for (i = 0; i < n; i++) out[i] = MMGAN_NONE;
    if (g->status != MMGAN_OK) return g->status;
    ny = g->n;
    dep = (unsigned char *)mmgan_alloc(ctx, (size_t)ny);
    feeds = (unsigned char *)mmgan_alloc(ctx, (size_t)ny);
    acc = (mmgan_node *)mmgan_alloc(ctx, (size_t)ny * sizeof(mmgan_node));
    if (!dep || !feeds || !acc || !wrt) { st = MMGAN_ERR_NOMEM; goto done; }
    memset(dep, 0, (size_t)ny);
    memset(feeds, 0, (size_t)ny);
    for (id = 0; id < ny; id++) acc[id] = MMGAN_NONE;
    lo = y;
    for (i = 0; i < n; i++) { dep[wrt[i]] = 1; if (wrt[i] < lo) lo = wrt[i]; }
    inner = floor > 0;
    if (floor < lo) floor = lo;
    for (id = floor; id <= y; id++) {
        const mmgan__node *nd = &g->nodes[id];
        if (mmgan__ops[nd->op].flags & MMGAN__F_NOGRAD) continue;
        for (i = 0; i < nd->nin; i++) dep[id] |= dep[nd->in[i]];
    }
    feeds[y] = 1;
    for (id = y; id >= floor; id--) {
        const mmgan__node *nd = &g->nodes[id];
        if (!feeds[id] || (mmgan__ops[nd->op].flags & MMGAN__F_NOGRAD)) continue;
        for (i = 0; i < nd->nin; i++) feeds[nd->in[i]] = 1;
    }
    if (!dep[y]) acc[y] = MMGAN_NONE;
    else if (seed != MMGAN_NONE) acc[y] = seed;
    else {
        int shape[4];
        memcpy(shape, g->nodes[y].shape, sizeof shape);
        acc[y] = mmgan_fill(g, g->nodes[y].ndim, shape, 1.0f);
    }
    for (id = y; id >= floor && g->status == MMGAN_OK; id--) {
        int op = g->nodes[id].op, nin = g->nodes[id].nin;
        if (!dep[id] || !feeds[id] || acc[id] == MMGAN_NONE) continue;
        for (i = 0; i < nin; i++) {
            mmgan_node in = g->nodes[id].in[i], c;
            if (!dep[in]) continue;
            if (!mmgan__ops[op].vjp) {
                mmgan__gfail(g, MMGAN_ERR_UNSUPPORTED, "grad: op '%s' (node %d) has no derivative",
                             mmgan__op_name(op), id);
                break;
            }
            c = mmgan__ops[op].vjp(g, id, i, acc[id]);
            if (c == MMGAN__ZERO) continue;
            acc[in] = acc[in] == MMGAN_NONE ? c : mmgan_add(g, acc[in], c);
        }
    }
    if (g->status != MMGAN_OK) { st = g->status; goto done; }
    for (i = 0; i < n; i++) {
        int shape[4];
        memcpy(shape, g->nodes[wrt[i]].shape, sizeof shape);
        out[i] = acc[wrt[i]] != MMGAN_NONE ? acc[wrt[i]] :
                 inner ? MMGAN__ZERO : mmgan_fill(g, g->nodes[wrt[i]].ndim, shape, 0.0f);
    }
    st = g->status;
done:
    if (st == MMGAN_ERR_NOMEM && g->status == MMGAN_OK) mmgan__gfail(g, st, "grad: out of memory");
    if (st != MMGAN_OK)
        for (i = 0; i < n; i++) out[i] = MMGAN_NONE;
    mmgan_free(ctx, dep);
    mmgan_free(ctx, feeds);
    mmgan_free(ctx, acc);
    mmgan_free(ctx, wrt);
    return st;
}

MMGAN_DEF mmgan_status mmgan_grad(mmgan_graph *g, mmgan_node y, int n, const mmgan_node *wrt, mmgan_node *out)
{
    return mmgan__grad_ex(g, y, MMGAN_NONE, 0, n, wrt, out);
}

/* ===================================================================== */
/* 2.12 GAN losses, gradient penalties, energy-based controllers          */
/* ===================================================================== */
/* Everything here is a composition of graph ops, so it differentiates (to
 * any order) like the rest of the graph. */
static const int mmgan__one[1] = {1};   /* the shape [1] of scalars */
MMGAN_DEF mmgan_loss_spec mmgan_loss_default(mmgan_loss_kind kind, mmgan_relativistic rel)
{
    mmgan_loss_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.rel = rel;
    s.a = 0.0f; s.b = 1.0f; s.c = 1.0f;
    return s;
}

/* phi_r(t), the D-side term of a real score t: softplus(-t), (t - 1)^2,
 * relu(1 - t), -t.  The fake term is phi_r(-t). */
static mmgan_node mmgan__phi_real(mmgan_graph *g, mmgan_loss_kind kind, mmgan_node t)
{
    switch (kind) {
    case MMGAN_LOSS_SGAN: return mmgan_softplus(g, mmgan_scale(g, t, -1.0f));
    case MMGAN_LOSS_LSGAN: return mmgan_square(g, mmgan_affine(g, t, 1.0f, -1.0f));
    case MMGAN_LOSS_HINGE: return mmgan_relu(g, mmgan_affine(g, t, -1.0f, 1.0f));
    default: return mmgan_scale(g, t, -1.0f);
    }
}

static mmgan_node mmgan__phi_fake(mmgan_graph *g, mmgan_loss_kind kind, mmgan_node t)
{
    return mmgan__phi_real(g, kind, mmgan_scale(g, t, -1.0f));
}

/* Critic outputs as [B, 1]: one score per sample, whatever the trailing 1s. */
static mmgan_node mmgan__scores(mmgan_graph *g, const char *who, mmgan_node d)
{
    int shape[2];
    if (!mmgan__args_ok(g, who, 1, &d)) return MMGAN_NONE;
    shape[0] = g->nodes[d].shape[0];
    shape[1] = 1;
    if (g->nodes[d].numel != (size_t)shape[0]) {
        char s1[64];
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "%s: critic output %s must hold one score per sample",
                            who, mmgan__nshape(&g->nodes[d], s1, sizeof s1));
    }
    return mmgan_reshape(g, d, 2, shape);
}

static mmgan_status mmgan__loss(mmgan_graph *g, const mmgan_loss_spec *sp, mmgan_node d_real,
                                mmgan_node d_fake, int gside, mmgan_loss *out)
{
    const char *who = gside ? "loss_g" : "loss_d";
    mmgan_node r, f, real = MMGAN_NONE, fake = MMGAN_NONE;
    mmgan_loss_kind k;
    if (!g) return MMGAN_ERR_INVALID;
    if (!out || !sp) return mmgan__gfail(g, MMGAN_ERR_INVALID, "%s: spec or out is NULL", who), MMGAN_ERR_INVALID;
    out->total = out->real = out->fake = MMGAN_NONE;
    k = sp->kind;
    if ((int)k < MMGAN_LOSS_SGAN || (int)k > MMGAN_LOSS_WGAN || (int)sp->rel < MMGAN_REL_NONE ||
        (int)sp->rel > MMGAN_REL_ALL_PAIRS) {
        mmgan__gfail(g, MMGAN_ERR_INVALID, "%s: unknown loss kind %d or relativistic form %d", who, (int)k, (int)sp->rel);
        return g->status;
    }
    if (k == MMGAN_LOSS_LSGAN && (!mmgan__finite(sp->a) || !mmgan__finite(sp->b) || !mmgan__finite(sp->c))) {
        mmgan__gfail(g, MMGAN_ERR_INVALID, "%s: LSGAN targets (%g, %g, %g) must be finite", who, (double)sp->a,
                     (double)sp->b, (double)sp->c);
        return g->status;
    }
    /* The non-relativistic G side never reads the real scores. */
    r = (gside && sp->rel == MMGAN_REL_NONE) ? MMGAN_NONE : mmgan__scores(g, who, d_real);
    f = mmgan__scores(g, who, d_fake);
    if (g->status != MMGAN_OK) return g->status;
    if (sp->rel != MMGAN_REL_NONE && g->nodes[r].shape[0] != g->nodes[f].shape[0] && sp->rel == MMGAN_REL_PAIRED) {
        mmgan__gfail(g, MMGAN_ERR_SHAPE, "%s: paired loss needs equal real and fake batches (%d and %d)",
                     who, g->nodes[r].shape[0], g->nodes[f].shape[0]);
        return g->status;
    }
    switch (sp->rel) {
    case MMGAN_REL_NONE:
        if (!gside) {
            switch (k) {
            case MMGAN_LOSS_SGAN:
            case MMGAN_LOSS_HINGE:
            case MMGAN_LOSS_WGAN:
                real = mmgan_mean(g, mmgan__phi_real(g, k, r));
                fake = mmgan_mean(g, mmgan__phi_fake(g, k, f));
                break;
            case MMGAN_LOSS_LSGAN:
                real = mmgan_mean(g, mmgan_square(g, mmgan_affine(g, r, 1.0f, -sp->b)));
                fake = mmgan_mean(g, mmgan_square(g, mmgan_affine(g, f, 1.0f, -sp->a)));
                break;
            }
        } else {
            switch (k) {
            case MMGAN_LOSS_SGAN:
                fake = sp->saturating ? mmgan_scale(g, mmgan_mean(g, mmgan_softplus(g, f)), -1.0f)
                                      : mmgan_mean(g, mmgan_softplus(g, mmgan_scale(g, f, -1.0f)));
                break;
            case MMGAN_LOSS_LSGAN: fake = mmgan_mean(g, mmgan_square(g, mmgan_affine(g, f, 1.0f, -sp->c))); break;
            default: fake = mmgan_scale(g, mmgan_mean(g, f), -1.0f); break;   /* hinge, WGAN */
            }
        }
        break;
    case MMGAN_REL_AVERAGE:
    case MMGAN_REL_CENTRED: {
        /* Centre of the real scores' comparison and of the fake scores'. */
        mmgan_node cr = mmgan_mean(g, f), cf = mmgan_mean(g, r), dr, df;
        if (sp->rel == MMGAN_REL_CENTRED) cr = cf = mmgan_scale(g, mmgan_add(g, cr, cf), 0.5f);
        dr = mmgan_sub(g, r, cr);
        df = mmgan_sub(g, f, cf);
        real = mmgan_mean(g, gside ? mmgan__phi_fake(g, k, dr) : mmgan__phi_real(g, k, dr));
        fake = mmgan_mean(g, gside ? mmgan__phi_real(g, k, df) : mmgan__phi_fake(g, k, df));
        break;
    }
    case MMGAN_REL_PAIRED:
    case MMGAN_REL_ALL_PAIRS: {
        /* d_ij = d_r,i - d_f,j: pairs by index, or every pair through [B, 1] - [1, B]. */
        mmgan_node d;
        if (sp->rel == MMGAN_REL_PAIRED) d = mmgan_sub(g, r, f);
        else {
            int shape[2];
            shape[0] = 1; shape[1] = g->nodes[f].shape[0];
            d = mmgan_sub(g, r, mmgan_reshape(g, f, 2, shape));
        }
        real = mmgan_mean(g, mmgan__phi_real(g, k, gside ? mmgan_scale(g, d, -1.0f) : d));
        fake = mmgan_fill(g, 1, mmgan__one, 0.0f);
        break;
    }
    }
    if (real == MMGAN_NONE) real = mmgan_fill(g, 1, mmgan__one, 0.0f);
    out->total = mmgan_add(g, real, fake);
    out->real = real;
    out->fake = fake;
    if (g->status != MMGAN_OK) out->total = out->real = out->fake = MMGAN_NONE;
    return g->status;
}

MMGAN_DEF mmgan_status mmgan_loss_d(mmgan_graph *g, const mmgan_loss_spec *spec, mmgan_node d_real,
                                    mmgan_node d_fake, mmgan_loss *out)
{
    return mmgan__loss(g, spec, d_real, d_fake, 0, out);
}

MMGAN_DEF mmgan_status mmgan_loss_g(mmgan_graph *g, const mmgan_loss_spec *spec, mmgan_node d_real,
                                    mmgan_node d_fake, mmgan_loss *out)
{
    return mmgan__loss(g, spec, d_real, d_fake, 1, out);
}

MMGAN_DEF mmgan_status mmgan_param_clip(mmgan_param *p, float c)
{
    size_t i;
    float *w;
    if (!p) return MMGAN_ERR_INVALID;
    if (!(c >= 0.0f) || !mmgan__finite(c))
        return mmgan__fail(p->ctx, MMGAN_ERR_INVALID, "param_clip: bound %g for '%s', must be finite and >= 0",
                           (double)c, p->name);
    w = p->value->data;
    for (i = 0; i < p->value->numel; i++) w[i] = w[i] > c ? c : w[i] < -c ? -c : w[i];
    return MMGAN_OK;
}

MMGAN_DEF mmgan_gp_spec mmgan_gp_default(void)
{
    mmgan_gp_spec s;
    memset(&s, 0, sizeof s);
    s.points = MMGAN_GP_INTERPOLATE;
    s.norm = MMGAN_NORM_L2;
    s.shape = MMGAN_GP_SQUARED;
    s.center = 1.0f;
    s.lambda = 10.0f;
    s.smooth_s = 1.0f;
    s.dragan_c = 0.5f;
    return s;
}

MMGAN_DEF mmgan_status mmgan_gradient_penalty(mmgan_graph *g, const mmgan_gp_spec *sp,
                                              mmgan_node x_real, mmgan_node x_fake,
                                              mmgan_critic_fn critic, void *user,
                                              mmgan_rng *rng, mmgan_gp *out)
{
    mmgan_node xr = MMGAN_NONE, xf = MMGAN_NONE, xh = MMGAN_NONE, gx, n, t;
    int ushape[4], nd;
    if (!g) return MMGAN_ERR_INVALID;
    if (!sp || !out || !critic) {
        mmgan__gfail(g, MMGAN_ERR_INVALID, "gradient_penalty: spec, out or critic is NULL");
        return g->status;
    }
    out->penalty = out->norm = out->points = out->u = MMGAN_NONE;
    if ((int)sp->points < MMGAN_GP_INTERPOLATE || (int)sp->points > MMGAN_GP_DRAGAN ||
        (int)sp->norm < MMGAN_NORM_L2 || (int)sp->norm > MMGAN_NORM_SIGNED_MAX ||
        (int)sp->shape < MMGAN_GP_SQUARED || (int)sp->shape > MMGAN_GP_ABS) {
        mmgan__gfail(g, MMGAN_ERR_INVALID, "gradient_penalty: unknown points %d, norm %d or shape %d",
                     (int)sp->points, (int)sp->norm, (int)sp->shape);
        return g->status;
    }
    if (!mmgan__finite(sp->center) || !mmgan__finite(sp->lambda) || !mmgan__finite(sp->smooth_s) ||
        !mmgan__finite(sp->dragan_c) || !(sp->lambda >= 0.0f) || !(sp->dragan_c >= 0.0f)) {
        mmgan__gfail(g, MMGAN_ERR_INVALID, "gradient_penalty: center %g, lambda %g, smooth_s %g and dragan_c %g must be finite, "
                     "lambda and dragan_c >= 0",
                     (double)sp->center, (double)sp->lambda, (double)sp->smooth_s, (double)sp->dragan_c);
        return g->status;
    }
    if ((sp->points == MMGAN_GP_INTERPOLATE || sp->points == MMGAN_GP_DRAGAN) && !rng) {
        mmgan__gfail(g, MMGAN_ERR_INVALID, "gradient_penalty: interpolates and DRAGAN points need an rng");
        return g->status;
    }
    if (sp->points != MMGAN_GP_FAKE) xr = mmgan_detach(g, x_real);
    if (sp->points == MMGAN_GP_INTERPOLATE || sp->points == MMGAN_GP_FAKE) xf = mmgan_detach(g, x_fake);
    if (g->status != MMGAN_OK) return g->status;
    if (sp->points == MMGAN_GP_INTERPOLATE &&
        (g->nodes[xr].ndim != g->nodes[xf].ndim || memcmp(g->nodes[xr].shape, g->nodes[xf].shape, sizeof ushape))) {
        char s1[64], s2[64];
        mmgan__gfail(g, MMGAN_ERR_SHAPE, "gradient_penalty: real %s and fake %s batches differ in shape",
                     mmgan__nshape(&g->nodes[xr], s1, sizeof s1), mmgan__nshape(&g->nodes[xf], s2, sizeof s2));
        return g->status;
    }
    {
        mmgan_node base = xr != MMGAN_NONE ? xr : xf;
        nd = mmgan__reduced_shape(&g->nodes[base], 1, ushape);
    }
    switch (sp->points) {
    case MMGAN_GP_INTERPOLATE: {
        /* One mixing weight per sample: x^ = x_f + u (x_r - x_f). */
        mmgan_node u = mmgan_random_uniform(g, rng, nd, ushape, 0.0f, 1.0f);
        out->u = u;
        xh = mmgan_add(g, xf, mmgan_mul(g, u, mmgan_sub(g, xr, xf)));
        break;
    }
    case MMGAN_GP_REAL: xh = xr; break;
    case MMGAN_GP_FAKE: xh = xf; break;
    case MMGAN_GP_DRAGAN: {
        /* x^ = x + u * c * std(x) * U[0, 1): a point on the segment from x to
         * the DRAGAN perturbation, std over the whole batch. */
        int shape[4];
        mmgan_node u = mmgan_random_uniform(g, rng, nd, ushape, 0.0f, 1.0f), noise, sd;
        out->u = u;
        memcpy(shape, g->nodes[xr].shape, sizeof shape);
        noise = mmgan_random_uniform(g, rng, g->nodes[xr].ndim, shape, 0.0f, 1.0f);
        sd = mmgan_sqrt(g, mmgan_mean(g, mmgan_square(g, mmgan_sub(g, xr, mmgan_mean(g, xr)))));
        xh = mmgan_add(g, xr, mmgan_mul(g, mmgan_mul(g, u, noise), mmgan_scale(g, sd, sp->dragan_c)));
        break;
    }
    }
    if (g->status != MMGAN_OK) return g->status;
    /* The points are a leaf for the inner gradient: a detached copy, so the
     * penalty differentiates the critic only. */
    xh = mmgan_detach(g, xh);
    if (mmgan_grad(g, critic(g, xh, user), 1, &xh, &gx) != MMGAN_OK) return g->status;
    switch (sp->norm) {
    case MMGAN_NORM_L2: n = mmgan_sqrt(g, mmgan_affine(g, mmgan_sum_per_sample(g, mmgan_square(g, gx)), 1.0f, 1e-12f)); break;
    case MMGAN_NORM_L1: n = mmgan_sum_per_sample(g, mmgan_abs(g, gx)); break;
    case MMGAN_NORM_LINF: n = mmgan_max_abs_per_sample(g, gx); break;
    case MMGAN_NORM_SMOOTH_MAX: n = mmgan_smooth_max_per_sample(g, mmgan_abs(g, gx), sp->smooth_s); break;
    default: n = mmgan_max_per_sample(g, gx); break;
    }
    t = mmgan_affine(g, n, 1.0f, -sp->center);
    switch (sp->shape) {
    case MMGAN_GP_SQUARED: t = mmgan_square(g, t); break;
    case MMGAN_GP_HINGE: t = mmgan_relu(g, t); break;
    case MMGAN_GP_ONE_SIDED: t = mmgan_square(g, mmgan_relu(g, t)); break;
    default: t = mmgan_abs(g, t); break;
    }
    out->penalty = mmgan_scale(g, mmgan_mean(g, t), sp->lambda);
    out->norm = n;
    out->points = xh;
    if (g->status != MMGAN_OK) out->penalty = out->norm = out->points = out->u = MMGAN_NONE;
    return g->status;
}

MMGAN_DEF mmgan_node mmgan_energy(mmgan_graph *g, mmgan_node x, mmgan_node recon, mmgan_energy_kind kind)
{
    mmgan_node in[2], e;
    in[0] = x; in[1] = recon;
    if (!mmgan__args_ok(g, "energy", 2, in)) return MMGAN_NONE;
    if (g->nodes[x].ndim != g->nodes[recon].ndim || memcmp(g->nodes[x].shape, g->nodes[recon].shape, sizeof g->nodes[x].shape)) {
        char s1[64], s2[64];
        return mmgan__gfail(g, MMGAN_ERR_SHAPE, "energy: x %s and its reconstruction %s differ in shape",
                            mmgan__nshape(&g->nodes[x], s1, sizeof s1), mmgan__nshape(&g->nodes[recon], s2, sizeof s2));
    }
    e = mmgan_square(g, mmgan_sub(g, recon, x));
    switch (kind) {
    case MMGAN_ENERGY_SSE: return mmgan_sum_per_sample(g, e);
    case MMGAN_ENERGY_NORM: return mmgan_sqrt(g, mmgan_affine(g, mmgan_sum_per_sample(g, e), 1.0f, 1e-12f));
    case MMGAN_ENERGY_MSE: return mmgan_mean_per_sample(g, e);
    }
    return mmgan__gfail(g, MMGAN_ERR_INVALID, "energy: unknown kind %d", (int)kind);
}

MMGAN_DEF mmgan_status mmgan_ebgan_loss_d(mmgan_graph *g, mmgan_node e_real, mmgan_node e_fake,
                                          mmgan_node margin, mmgan_loss *out)
{
    mmgan_node in[3];
    if (!g) return MMGAN_ERR_INVALID;
    if (!out) { mmgan__gfail(g, MMGAN_ERR_INVALID, "ebgan_loss_d: out is NULL"); return g->status; }
    out->total = out->real = out->fake = MMGAN_NONE;
    in[0] = e_real; in[1] = e_fake; in[2] = margin;
    if (!mmgan__args_ok(g, "ebgan_loss_d", 3, in)) return g->status;
    if (g->nodes[margin].numel != 1) {
        mmgan__gfail(g, MMGAN_ERR_SHAPE, "ebgan_loss_d: the margin must be a single value");
        return g->status;
    }
    out->real = mmgan_mean(g, e_real);
    /* max(0, m - E(x_fake)), the margin broadcast over the batch */
    out->fake = mmgan_mean(g, mmgan_relu(g, mmgan_sub(g, mmgan_reshape(g, margin, 1, mmgan__one), e_fake)));
    out->total = mmgan_add(g, out->real, out->fake);
    return g->status;
}

MMGAN_DEF mmgan_node mmgan_pulling_away(mmgan_graph *g, mmgan_node embed)
{
    mmgan_node s, gram, diag;
    int b;
    if (!mmgan__args_ok(g, "pulling_away", 1, &embed)) return MMGAN_NONE;
    b = g->nodes[embed].shape[0];
    if (b < 2) return mmgan__gfail(g, MMGAN_ERR_SHAPE, "pulling_away: needs at least 2 samples, got %d", b);
    /* Unit rows (a tiny floor keeps a zero embedding finite), all cosines as
     * one Gram matrix, minus its diagonal. */
    s = mmgan_flatten(g, embed);
    s = mmgan_div(g, s, mmgan_sqrt(g, mmgan_affine(g, mmgan_sum_per_sample(g, mmgan_square(g, s)), 1.0f, 1e-12f)));
    gram = mmgan_matmul(g, s, s, 0, 1);
    diag = mmgan_square(g, mmgan_sum_per_sample(g, mmgan_square(g, s)));
    return mmgan_scale(g, mmgan_sub(g, mmgan_sum(g, mmgan_square(g, gram)), mmgan_sum(g, diag)),
                       (float)(1.0 / ((double)b * (b - 1))));
}

MMGAN_DEF mmgan_status mmgan_ebgan_loss_g(mmgan_graph *g, mmgan_node e_fake, mmgan_node embed,
                                          float pt_weight, mmgan_loss *out)
{
    if (!g) return MMGAN_ERR_INVALID;
    if (!out) { mmgan__gfail(g, MMGAN_ERR_INVALID, "ebgan_loss_g: out is NULL"); return g->status; }
    out->total = out->real = out->fake = MMGAN_NONE;
    if (!mmgan__finite(pt_weight)) {
        mmgan__gfail(g, MMGAN_ERR_INVALID, "ebgan_loss_g: pt_weight %g must be finite", (double)pt_weight);
        return g->status;
    }
    out->fake = mmgan_mean(g, e_fake);
    out->real = embed == MMGAN_NONE ? mmgan_fill(g, 1, mmgan__one, 0.0f)
                                    : mmgan_scale(g, mmgan_pulling_away(g, embed), pt_weight);
    out->total = mmgan_add(g, out->fake, out->real);
    if (g->status != MMGAN_OK) out->total = out->real = out->fake = MMGAN_NONE;
    return g->status;
}

MMGAN_DEF void mmgan_began_init(mmgan_began *b, float gamma, float lambda_k)
{
    if (!b) return;
    b->k = 0.0f;
    b->gamma = gamma;
    b->lambda_k = lambda_k;
    b->convergence = 0.0f;
}

MMGAN_DEF mmgan_status mmgan_began_loss_d(mmgan_graph *g, mmgan_began *b, mmgan_node e_real,
                                          mmgan_node e_fake, mmgan_loss *out)
{
    if (!g) return MMGAN_ERR_INVALID;
    if (!out || !b) { mmgan__gfail(g, MMGAN_ERR_INVALID, "began_loss_d: controller or out is NULL"); return g->status; }
    out->total = out->real = out->fake = MMGAN_NONE;
    if (!mmgan__finite(b->gamma) || !mmgan__finite(b->lambda_k) || !(b->k >= 0.0f && b->k <= 1.0f)) {
        mmgan__gfail(g, MMGAN_ERR_INVALID, "began_loss_d: gamma %g and lambda_k %g must be finite and k %g in [0, 1]",
                     (double)b->gamma, (double)b->lambda_k, (double)b->k);
        return g->status;
    }
    out->real = mmgan_mean(g, e_real);
    out->fake = mmgan_scale(g, mmgan_mul(g, mmgan_scalar_ref(g, &b->k), mmgan_mean(g, e_fake)), -1.0f);
    out->total = mmgan_add(g, out->real, out->fake);
    if (g->status != MMGAN_OK) out->total = out->real = out->fake = MMGAN_NONE;
    return g->status;
}

MMGAN_DEF float mmgan_began_update(mmgan_began *b, float e_real, float e_fake)
{
    float bal, k;
    if (!b) return 0.0f;
    bal = b->gamma * e_real - e_fake;
    k = b->k + b->lambda_k * bal;
    if (k == k) b->k = k < 0.0f ? 0.0f : k > 1.0f ? 1.0f : k;   /* a NaN energy leaves k as it was */
    b->convergence = e_real + fabsf(bal);
    return b->convergence;
}

MMGAN_DEF void mmgan_magan_init(mmgan_magan *m, int strict)
{
    if (!m) return;
    memset(m, 0, sizeof *m);
    m->strict = strict;
    m->prev_g = HUGE_VAL;     /* E_G^0 = infinity */
}

MMGAN_DEF mmgan_node mmgan_magan_margin(mmgan_graph *g, mmgan_magan *m)
{
    if (!m) return g ? mmgan__gfail(g, MMGAN_ERR_INVALID, "magan_margin: controller is NULL") : MMGAN_NONE;
    return mmgan_scalar_ref(g, &m->margin);
}

MMGAN_DEF void mmgan_magan_observe_real(mmgan_magan *m, double energy_sum, long n)
{
    if (!m || n <= 0) return;
    m->sum_data += energy_sum;
    m->n_data += n;
}

MMGAN_DEF void mmgan_magan_observe_fake(mmgan_magan *m, double energy_sum, long n)
{
    if (!m || n <= 0) return;
    m->sum_g += energy_sum;
    m->n_g += n;
}

MMGAN_DEF mmgan_status mmgan_magan_start(mmgan_magan *m)
{
    if (!m) return MMGAN_ERR_INVALID;
    if (m->n_data <= 0) return MMGAN_ERR_INVALID;   /* no estimation pass observed */
    m->margin = (float)(m->sum_data / m->n_data);
    m->sum_data = m->sum_g = 0.0;
    m->n_data = m->n_g = 0;
    m->prev_g = HUGE_VAL;
    m->epoch = 0;
    return MMGAN_OK;
}

MMGAN_DEF int mmgan_magan_end_epoch(mmgan_magan *m)
{
    double e_data, e_g;
    int rising, update;
    if (!m || m->n_data <= 0 || m->n_g <= 0) return 0;
    e_data = m->sum_data / m->n_data;
    e_g = m->sum_g / m->n_g;
    rising = m->strict ? m->prev_g < e_g : m->prev_g <= e_g;
    update = e_data < m->margin && e_data < e_g && rising;
    if (update) m->margin = (float)e_data;
    m->prev_g = e_g;
    m->sum_data = m->sum_g = 0.0;
    m->n_data = m->n_g = 0;
    m->epoch++;
    return update;
}

/* ===================================================================== */
/* 2.13 Optimizers                                                        */
/* ===================================================================== */
struct mmgan_optimizer {
    mmgan_ctx *ctx;
    mmgan_opt_spec spec;
    int n;
    long t;
    mmgan_param **params;
    float **m, **v;        /* first moment or momentum buffer; second moment or max */
    const float **grads;   /* gradient pointers of a plan step, kept to avoid allocating */
};

MMGAN_DEF mmgan_opt_spec mmgan_opt_default(mmgan_opt_kind kind)
{
    mmgan_opt_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.lr = kind == MMGAN_OPT_ADAMAX ? 2e-3f : kind == MMGAN_OPT_RMSPROP ? 1e-2f : 1e-3f;
    s.beta1 = 0.9f;
    s.beta2 = kind == MMGAN_OPT_RMSPROP ? 0.99f : 0.999f;
    s.eps = 1e-8f;
    s.bias_correction = 1;
    return s;
}

MMGAN_DEF void mmgan_opt_free(mmgan_optimizer *o)
{
    int i;
    if (!o) return;
    for (i = 0; i < o->n; i++) {
        if (o->m) mmgan_free(o->ctx, o->m[i]);
        if (o->v) mmgan_free(o->ctx, o->v[i]);
    }
    mmgan_free(o->ctx, o->m);
    mmgan_free(o->ctx, o->v);
    mmgan_free(o->ctx, (void *)o->grads);
    mmgan_free(o->ctx, o->params);
    mmgan_free(o->ctx, o);
}

MMGAN_DEF mmgan_optimizer *mmgan_opt_new(mmgan_ctx *ctx, const mmgan_opt_spec *spec, int n, mmgan_param *const *params)
{
    mmgan_optimizer *o;
    int i;
    if (!ctx) return NULL;
    if (!spec || n < 1 || !params) {
        mmgan__fail(ctx, MMGAN_ERR_INVALID, "opt_new: no spec or no parameters");
        return NULL;
    }
    if ((int)spec->kind < MMGAN_OPT_SGD || (int)spec->kind > MMGAN_OPT_RMSPROP || !(spec->lr >= 0.0f) ||
        !(spec->beta1 >= 0.0f && spec->beta1 < 1.0f) || !(spec->beta2 >= 0.0f && spec->beta2 < 1.0f) ||
        !(spec->eps >= 0.0f) || !(spec->momentum >= 0.0f) || !(spec->weight_decay >= 0.0f) ||
        (spec->kind != MMGAN_OPT_SGD && !(spec->eps > 0.0f)) ||   /* 0: a zero gradient makes 0 / 0 */
        !mmgan__finite(spec->lr) || !mmgan__finite(spec->eps) || !mmgan__finite(spec->momentum) ||
        !mmgan__finite(spec->weight_decay)) {
        mmgan__fail(ctx, MMGAN_ERR_INVALID,
                    "opt_new: kind %d, lr %g, betas (%g, %g), eps %g, momentum %g, weight decay %g: out of range "
                    "(finite, >= 0, betas below 1, eps > 0 but for SGD)",
                    (int)spec->kind, (double)spec->lr, (double)spec->beta1, (double)spec->beta2, (double)spec->eps,
                    (double)spec->momentum, (double)spec->weight_decay);
        return NULL;
    }
    for (i = 0; i < n; i++)
        if (!params[i]) {
            mmgan__fail(ctx, MMGAN_ERR_INVALID, "opt_new: parameter %d is NULL", i);
            return NULL;
        }
    o = (mmgan_optimizer *)mmgan_alloc(ctx, sizeof *o);
    if (!o) return NULL;
    memset(o, 0, sizeof *o);
    o->ctx = ctx;
    o->spec = *spec;
    o->params = (mmgan_param **)mmgan_alloc(ctx, (size_t)n * sizeof *o->params);
    o->m = (float **)mmgan_alloc(ctx, (size_t)n * sizeof(float *));
    o->v = (float **)mmgan_alloc(ctx, (size_t)n * sizeof(float *));
    o->grads = (const float **)mmgan_alloc(ctx, (size_t)n * sizeof(float *));
    if (!o->params || !o->m || !o->v || !o->grads) { mmgan_opt_free(o); return NULL; }
    memset(o->m, 0, (size_t)n * sizeof(float *));
    memset(o->v, 0, (size_t)n * sizeof(float *));
    o->n = n;
    for (i = 0; i < n; i++) {
        size_t bytes = params[i]->value->numel * sizeof(float);
        o->params[i] = params[i];
        o->m[i] = (float *)mmgan_alloc(ctx, bytes);
        o->v[i] = (float *)mmgan_alloc(ctx, bytes);
        if (!o->m[i] || !o->v[i]) { mmgan_opt_free(o); return NULL; }
        memset(o->m[i], 0, bytes);
        memset(o->v[i], 0, bytes);
    }
    return o;
}

MMGAN_DEF long mmgan_opt_steps(const mmgan_optimizer *o) { return o ? o->t : 0; }
MMGAN_DEF mmgan_status mmgan_opt_set_lr(mmgan_optimizer *o, float lr)
{
    if (!o) return MMGAN_ERR_INVALID;
    if (!(lr >= 0.0f) || !mmgan__finite(lr))
        return mmgan__fail(o->ctx, MMGAN_ERR_INVALID, "opt_set_lr: %g, must be finite and >= 0 (unchanged: %g)",
                           (double)lr, (double)o->spec.lr);
    o->spec.lr = lr;
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_opt_step(mmgan_optimizer *o, const float *const *grads)
{
    const mmgan_opt_spec *s;
    double c1, c2;
    int i;
    if (!o) return MMGAN_ERR_INVALID;
    if (!grads) return mmgan__fail(o->ctx, MMGAN_ERR_INVALID, "opt_step: grads is NULL");
    for (i = 0; i < o->n; i++)
        if (!grads[i]) return mmgan__fail(o->ctx, MMGAN_ERR_INVALID, "opt_step: gradient %d ('%s') is NULL", i, o->params[i]->name);
    s = &o->spec;
    if (o->t < LONG_MAX) o->t++;   /* a loaded count may be anything up to LONG_MAX */
    /* Bias corrections in double: b^t underflows nothing for any t we meet. */
    c1 = 1.0 - pow((double)s->beta1, (double)o->t);
    c2 = 1.0 - pow((double)s->beta2, (double)o->t);
    /* One loop per rule, its constants in locals; blocks of elements shared
     * out among threads (each element's update is independent). */
    for (i = 0; i < o->n; i++) {
        float *w = o->params[i]->value->data, *m = o->m[i], *v = o->v[i];
        const float *gr = grads[i];
        const float wd = s->weight_decay, b1 = s->beta1, b2 = s->beta2, eps = s->eps, lr = s->lr, mom = s->momentum;
        const double lrc = s->lr / c1;
        const size_t n = o->params[i]->value->numel;
        const int kind = (int)s->kind, first = o->t == 1, bc = s->bias_correction;
        int bk, nblk = (int)((n + MMGAN__EW_BLOCK - 1) / MMGAN__EW_BLOCK);
        MMGAN__PAR_FOR(o->ctx->threads, n >= MMGAN__PAR_MIN)
        for (bk = 0; bk < nblk; bk++) {
            const size_t lo = (size_t)bk * MMGAN__EW_BLOCK, hi = n - lo > MMGAN__EW_BLOCK ? lo + MMGAN__EW_BLOCK : n;
            size_t k;
            switch (kind) {
            case MMGAN_OPT_SGD:
                for (k = lo; k < hi; k++) {
                    float g = gr[k] + wd * w[k];
                    if (mom > 0.0f) {
                        m[k] = first ? g : mom * m[k] + g;
                        g = m[k];
                    }
                    w[k] -= lr * g;
                }
                break;
            case MMGAN_OPT_ADAM: {
                /* PyTorch's float arithmetic: w -= (lr / c1) m / (sqrt(v) / sqrt(c2) + eps) */
                const float step = (float)lrc, sc2 = (float)sqrt(c2);
                const mmgan__v vb1 = MMGAN__VSET(b1), vb1c = MMGAN__VSET(1.0f - b1), vb2 = MMGAN__VSET(b2),
                               vb2c = MMGAN__VSET(1.0f - b2), vwd = MMGAN__VSET(wd), veps = MMGAN__VSET(eps),
                               vstep = MMGAN__VSET(step), vsc2 = MMGAN__VSET(sc2);
                for (k = lo; k + MMGAN__VN <= hi; k += MMGAN__VN) {
                    mmgan__v vw = MMGAN__VLOAD(w + k), g = MMGAN__VFMA(vwd, vw, MMGAN__VLOAD(gr + k)), vm, vv;
                    vm = MMGAN__VFMA(vb1, MMGAN__VLOAD(m + k), MMGAN__VMUL(vb1c, g));
                    vv = MMGAN__VFMA(vb2, MMGAN__VLOAD(v + k), MMGAN__VMUL(vb2c, MMGAN__VMUL(g, g)));
                    MMGAN__VSTORE(m + k, vm);
                    MMGAN__VSTORE(v + k, vv);
                    vv = MMGAN__VADD(MMGAN__VDIV(MMGAN__VSQRT(vv), vsc2), veps);
                    MMGAN__VSTORE(w + k, MMGAN__VSUB(vw, MMGAN__VMUL(vstep, MMGAN__VDIV(vm, vv))));
                }
                for (; k < hi; k++) {   /* the tensor's last few values */
                    float g = gr[k] + wd * w[k];
                    m[k] = b1 * m[k] + (1.0f - b1) * g;
                    v[k] = b2 * v[k] + (1.0f - b2) * g * g;
                    w[k] -= step * (m[k] / (sqrtf(v[k]) / sc2 + eps));
                }
                break;
            }
            case MMGAN_OPT_ADAMAX: {
                /* with bias correction: v = max(b2 v, |g| + eps), w -= (lr / c1) m / v;
                 * without (MAGAN's):    v = max(b2 v + eps, |g|), w -= lr m / v */
                const float step = bc ? (float)lrc : lr, e1 = bc ? 0.0f : eps, e2 = bc ? eps : 0.0f;
                const mmgan__v vb1 = MMGAN__VSET(b1), vb1c = MMGAN__VSET(1.0f - b1), vb2 = MMGAN__VSET(b2),
                               vwd = MMGAN__VSET(wd), ve1 = MMGAN__VSET(e1), ve2 = MMGAN__VSET(e2),
                               vstep = MMGAN__VSET(step);
                for (k = lo; k + MMGAN__VN <= hi; k += MMGAN__VN) {
                    mmgan__v vw = MMGAN__VLOAD(w + k), g = MMGAN__VFMA(vwd, vw, MMGAN__VLOAD(gr + k)), vm, vv;
                    vm = MMGAN__VFMA(vb1, MMGAN__VLOAD(m + k), MMGAN__VMUL(vb1c, g));
                    vv = MMGAN__VMAX(MMGAN__VFMA(vb2, MMGAN__VLOAD(v + k), ve1), MMGAN__VADD(MMGAN__VABS(g), ve2));
                    MMGAN__VSTORE(m + k, vm);
                    MMGAN__VSTORE(v + k, vv);
                    MMGAN__VSTORE(w + k, MMGAN__VSUB(vw, MMGAN__VMUL(vstep, MMGAN__VDIV(vm, vv))));
                }
                for (; k < hi; k++) {
                    float g = gr[k] + wd * w[k], a, b;
                    m[k] = b1 * m[k] + (1.0f - b1) * g;
                    a = b2 * v[k] + e1;
                    b = fabsf(g) + e2;
                    v[k] = a > b ? a : b;
                    w[k] -= step * (m[k] / v[k]);
                }
                break;
            }
            case MMGAN_OPT_RMSPROP:
                for (k = lo; k < hi; k++) {
                    float g = gr[k] + wd * w[k], d;
                    v[k] = b2 * v[k] + (1.0f - b2) * g * g;
                    d = g / (sqrtf(v[k]) + eps);
                    if (mom > 0.0f) {
                        m[k] = mom * m[k] + d;
                        d = m[k];
                    }
                    w[k] -= lr * d;
                }
                break;
            }
        }
    }
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_opt_step_plan(mmgan_optimizer *o, const mmgan_plan *p, const mmgan_node *grad)
{
    int i;
    if (!o) return MMGAN_ERR_INVALID;
    if (!p || !grad) return mmgan__fail(o->ctx, MMGAN_ERR_INVALID, "opt_step_plan: plan or gradient nodes NULL");
    for (i = 0; i < o->n; i++) {
        o->grads[i] = mmgan_plan_value(p, grad[i]);
        if (!o->grads[i] || mmgan_node_numel(p->g, grad[i]) != o->params[i]->value->numel)
            return mmgan__fail(o->ctx, MMGAN_ERR_INVALID,
                               "opt_step_plan: node %d is not a planned target the size of parameter '%s'",
                               grad[i], o->params[i]->name);
    }
    return mmgan_opt_step(o, o->grads);
}

struct mmgan_ema {
    mmgan_ctx *ctx;
    float decay;
    int n;
    mmgan_param **params;
    float **shadow;
};

MMGAN_DEF void mmgan_ema_free(mmgan_ema *e)
{
    int i;
    if (!e) return;
    for (i = 0; e->shadow && i < e->n; i++) mmgan_free(e->ctx, e->shadow[i]);
    mmgan_free(e->ctx, e->shadow);
    mmgan_free(e->ctx, e->params);
    mmgan_free(e->ctx, e);
}

MMGAN_DEF mmgan_ema *mmgan_ema_new(mmgan_ctx *ctx, float decay, int n, mmgan_param *const *params)
{
    mmgan_ema *e;
    int i;
    if (!ctx) return NULL;
    if (!(decay >= 0.0f && decay <= 1.0f) || n < 1 || !params) {
        mmgan__fail(ctx, MMGAN_ERR_INVALID, "ema_new: decay %g must be in [0, 1], with parameters", (double)decay);
        return NULL;
    }
    e = (mmgan_ema *)mmgan_alloc(ctx, sizeof *e);
    if (!e) return NULL;
    memset(e, 0, sizeof *e);
    e->ctx = ctx;
    e->decay = decay;
    e->params = (mmgan_param **)mmgan_alloc(ctx, (size_t)n * sizeof *e->params);
    e->shadow = (float **)mmgan_alloc(ctx, (size_t)n * sizeof(float *));
    if (!e->params || !e->shadow) { mmgan_ema_free(e); return NULL; }
    memset(e->shadow, 0, (size_t)n * sizeof(float *));
    e->n = n;
    for (i = 0; i < n; i++) {
        size_t bytes;
        if (!params[i]) { mmgan__fail(ctx, MMGAN_ERR_INVALID, "ema_new: parameter %d is NULL", i); mmgan_ema_free(e); return NULL; }
        bytes = params[i]->value->numel * sizeof(float);
        e->params[i] = params[i];
        e->shadow[i] = (float *)mmgan_alloc(ctx, bytes);
        if (!e->shadow[i]) { mmgan_ema_free(e); return NULL; }
        memcpy(e->shadow[i], params[i]->value->data, bytes);
    }
    return e;
}

MMGAN_DEF void mmgan_ema_update(mmgan_ema *e)
{
    int i;
    if (!e) return;
    for (i = 0; i < e->n; i++)
        mmgan_vec_axpby(e->params[i]->value->numel, 1.0f - e->decay, e->params[i]->value->data, e->decay, e->shadow[i]);
}

MMGAN_DEF void mmgan_ema_swap(mmgan_ema *e)
{
    int i;
    if (!e) return;
    for (i = 0; i < e->n; i++) {
        float *w = e->params[i]->value->data, *s = e->shadow[i];
        size_t k, n = e->params[i]->value->numel;
        for (k = 0; k < n; k++) { float t = w[k]; w[k] = s[k]; s[k] = t; }
    }
}

/* ===================================================================== */
/* 2.14 I/O: inflate, gzip, IDX, datasets, PNG, files                     */
/* ===================================================================== */
MMGAN_DEF uint32_t mmgan_crc32(uint32_t crc, const unsigned char *p, size_t n)
{
    size_t i;
    int k;
    /* Bitwise: a table would be faster, but this runs once per file. */
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* --- inflate (RFC 1951) ----------------------------------------------- */
typedef struct mmgan__inf {
    const unsigned char *in;
    size_t n, pos;
    uint32_t bits;
    int nbits;
    unsigned char *out;
    size_t len, cap;
    size_t limit;   /* output bytes at most (a gzip bomb's 3 MB made 6 GB) */
    int over;       /* the stream had more than limit */
    mmgan_ctx *ctx;
    void *user;
} mmgan__inf;

/* A canonical Huffman code: how many codes of each length, and the symbols
 * in code order. */
typedef struct mmgan__huff {
    short count[16];
    short sym[288];
} mmgan__huff;

#define MMGAN__INF_EOF (-1)
#define MMGAN__INF_BAD (-2)

static int mmgan__inf_bits(mmgan__inf *s, int need)
{
    uint32_t v;
    while (s->nbits < need) {
        if (s->pos >= s->n) return MMGAN__INF_EOF;
        s->bits |= (uint32_t)s->in[s->pos++] << s->nbits;
        s->nbits += 8;
    }
    v = s->bits & ((1u << need) - 1u);
    s->bits >>= need;
    s->nbits -= need;
    return (int)v;
}

/* Builds a code from lengths; 0 if over-subscribed, or incomplete where
 * that is not allowed (a single distance code may be incomplete). */
static int mmgan__huff_build(mmgan__huff *h, const unsigned char *len, int n, int allow_incomplete)
{
    short offs[16];
    int i, left = 1;
    for (i = 0; i < 16; i++) h->count[i] = 0;
    for (i = 0; i < n; i++) h->count[len[i]]++;
    if (h->count[0] == n) return allow_incomplete;
    for (i = 1; i < 16; i++) {
        left = left * 2 - h->count[i];
        if (left < 0) return 0;
    }
    offs[1] = 0;
    for (i = 1; i < 15; i++) offs[i + 1] = (short)(offs[i] + h->count[i]);
    for (i = 0; i < n; i++)
        if (len[i]) h->sym[offs[len[i]]++] = (short)i;
    /* Incomplete only as one code of one bit (RFC 1951 3.2.7: a single
     * distance code); other incomplete sets zlib refuses too. */
    return left == 0 || (allow_incomplete && h->count[1] == 1 && n - h->count[0] == 1);
}

/* One symbol, reading the code bit by bit (codes are stored MSB first). */
static int mmgan__huff_decode(mmgan__inf *s, const mmgan__huff *h)
{
    int code = 0, first = 0, index = 0, len;
    for (len = 1; len < 16; len++) {
        int b = mmgan__inf_bits(s, 1), count;
        if (b < 0) return b;
        code |= b;
        count = h->count[len];
        if (code - first < count) return h->sym[index + code - first];
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return MMGAN__INF_BAD;
}

static int mmgan__inf_put(mmgan__inf *s, unsigned char c)
{
    if (s->len == s->cap) {   /* the buffer grows to limit at most, so a full one at limit is the end */
        size_t cap = s->cap ? s->cap * 2 : 1 << 16;
        unsigned char *o;
        if (s->len >= s->limit) { s->over = 1; return 0; }
        if (cap > s->limit) cap = s->limit;
        o = (unsigned char *)MMGAN_REALLOC(s->user, s->out, cap);
        if (!o) return 0;
        s->out = o;
        s->cap = cap;
    }
    s->out[s->len++] = c;
    return 1;
}

static const short mmgan__len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                          35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short mmgan__len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                           3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned short mmgan__dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                                    257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
                                                    8193, 12289, 16385, 24577};
static const short mmgan__dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
                                            7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Returns NULL on success, else what is wrong. */
static const char *mmgan__inf_codes(mmgan__inf *s, const mmgan__huff *lit, const mmgan__huff *dist)
{
    for (;;) {
        int sym = mmgan__huff_decode(s, lit);
        if (sym == MMGAN__INF_EOF) return "truncated data";
        if (sym < 0) return "invalid literal/length code";
        if (sym < 256) {
            if (!mmgan__inf_put(s, (unsigned char)sym)) return "out of memory";
        } else if (sym == 256) {
            return NULL;
        } else {
            int e, len, d;
            size_t back, k;
            sym -= 257;
            if (sym >= 29) return "invalid length symbol";
            e = mmgan__inf_bits(s, mmgan__len_extra[sym]);
            if (e < 0) return "truncated data";
            len = mmgan__len_base[sym] + e;
            d = mmgan__huff_decode(s, dist);
            if (d == MMGAN__INF_EOF) return "truncated data";
            if (d < 0 || d >= 30) return "invalid distance code";
            e = mmgan__inf_bits(s, mmgan__dist_extra[d]);
            if (e < 0) return "truncated data";
            back = (size_t)mmgan__dist_base[d] + (size_t)e;
            if (back > s->len) return "distance reaches before the start of the output";
            for (k = 0; k < (size_t)len; k++)
                if (!mmgan__inf_put(s, s->out[s->len - back])) return "out of memory";
        }
    }
}

static const char *mmgan__inf_run(mmgan__inf *s)
{
    static const unsigned char order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    mmgan__huff lit, dist;
    unsigned char len[320];
    int last, type, i;
    do {
        last = mmgan__inf_bits(s, 1);
        type = mmgan__inf_bits(s, 2);
        if (last < 0 || type < 0) return "truncated data";
        if (type == 0) {
            unsigned l, nl;
            /* Stored: byte-aligned LEN, its complement, the bytes. */
            s->bits = 0;
            s->nbits = 0;
            if (s->n - s->pos < 4) return "truncated stored block";
            l = s->in[s->pos] | (unsigned)s->in[s->pos + 1] << 8;
            nl = s->in[s->pos + 2] | (unsigned)s->in[s->pos + 3] << 8;
            s->pos += 4;
            if (l != (~nl & 0xffffu)) return "stored block length check fails";
            if (s->n - s->pos < l) return "truncated stored block";
            for (i = 0; i < (int)l; i++)
                if (!mmgan__inf_put(s, s->in[s->pos + i])) return "out of memory";
            s->pos += l;
        } else if (type == 1) {
            for (i = 0; i < 288; i++) len[i] = (unsigned char)(i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8);
            mmgan__huff_build(&lit, len, 288, 0);
            for (i = 0; i < 30; i++) len[i] = 5;
            mmgan__huff_build(&dist, len, 30, 1);
            {
                const char *err = mmgan__inf_codes(s, &lit, &dist);
                if (err) return err;
            }
        } else if (type == 2) {
            int nlen = mmgan__inf_bits(s, 5), ndist = mmgan__inf_bits(s, 5), ncode = mmgan__inf_bits(s, 4);
            mmgan__huff lencode;
            const char *err;
            if (nlen < 0 || ndist < 0 || ncode < 0) return "truncated data";
            nlen += 257; ndist += 1; ncode += 4;
            if (nlen > 286 || ndist > 30) return "too many length or distance codes";
            for (i = 0; i < 19; i++) {
                int v = i < ncode ? mmgan__inf_bits(s, 3) : 0;
                if (v < 0) return "truncated data";
                len[order[i]] = (unsigned char)v;
            }
            if (!mmgan__huff_build(&lencode, len, 19, 0)) return "invalid code-length code";
            for (i = 0; i < nlen + ndist;) {
                int sym = mmgan__huff_decode(s, &lencode), rep, v = 0;
                if (sym == MMGAN__INF_EOF) return "truncated data";
                if (sym < 0) return "invalid code-length symbol";
                if (sym < 16) { len[i++] = (unsigned char)sym; continue; }
                if (sym == 16) {
                    if (i == 0) return "repeat with no previous length";
                    v = len[i - 1];
                    rep = mmgan__inf_bits(s, 2); if (rep < 0) return "truncated data"; rep += 3;
                } else if (sym == 17) {
                    rep = mmgan__inf_bits(s, 3); if (rep < 0) return "truncated data"; rep += 3;
                } else {
                    rep = mmgan__inf_bits(s, 7); if (rep < 0) return "truncated data"; rep += 11;
                }
                if (i + rep > nlen + ndist) return "code lengths overflow";
                while (rep--) len[i++] = (unsigned char)v;
            }
            if (len[256] == 0) return "no end-of-block code";
            if (!mmgan__huff_build(&lit, len, nlen, 0)) return "invalid literal/length code lengths";
            if (!mmgan__huff_build(&dist, len + nlen, ndist, 1)) return "invalid distance code lengths";
            err = mmgan__inf_codes(s, &lit, &dist);
            if (err) return err;
        } else {
            return "invalid block type 3";
        }
    } while (!last);
    return NULL;
}

/* limit: the output's bytes at most; prefix: its first limit bytes are all
 * that is wanted (the stream is read no further, nor checked). */
static mmgan_status mmgan__inflate(mmgan_ctx *ctx, const char *who, const unsigned char *in, size_t n,
                                   size_t hint, size_t limit, int prefix, unsigned char **out, size_t *out_size,
                                   size_t *used)
{
    mmgan__inf s;
    const char *err;
    memset(&s, 0, sizeof s);
    s.in = in; s.n = n; s.ctx = ctx; s.user = ctx->alloc_user;
    s.limit = limit;
    if (hint > limit) hint = limit;
    if (hint) {
        s.out = (unsigned char *)MMGAN_MALLOC(s.user, hint);
        if (s.out) s.cap = hint;
    }
    err = mmgan__inf_run(&s);
    if (err && s.over && prefix) err = NULL;
    if (err && s.over) {
        MMGAN_FREE(s.user, s.out);
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "%s: the data is longer than the %lu bytes it can be", who,
                           (unsigned long)limit);
    }
    if (err) {
        MMGAN_FREE(s.user, s.out);
        return mmgan__fail(ctx, strcmp(err, "out of memory") ? MMGAN_ERR_FORMAT : MMGAN_ERR_NOMEM,
                           "%s: %s (at byte %lu of %lu)", who, err, (unsigned long)s.pos, (unsigned long)n);
    }
    /* Hand back memory from mmgan_alloc's family so callers free it one way. */
    *out = (unsigned char *)mmgan_alloc(ctx, s.len ? s.len : 1);
    if (!*out) { MMGAN_FREE(s.user, s.out); return MMGAN_ERR_NOMEM; }
    if (s.len) memcpy(*out, s.out, s.len);
    MMGAN_FREE(s.user, s.out);
    *out_size = s.len;
    if (used) *used = s.pos;
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_inflate(mmgan_ctx *ctx, const unsigned char *in, size_t n,
                                     unsigned char **out, size_t *out_size)
{
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!in || !out || !out_size) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "inflate: NULL argument");
    return mmgan__inflate(ctx, "inflate", in, n, 0, (size_t)-1, 0, out, out_size, NULL);
}

/* The little-endian 32-bit number at p (gzip trailers, safetensors data). */
static uint32_t mmgan__le32(const unsigned char *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One gzip member at in[0, n): its data into *out (mmgan_alloc), the bytes it
 * took in *used.  hint: the expected size, or 0; limit, prefix: as for
 * mmgan__inflate (a prefix is not checked against the trailer). */
static mmgan_status mmgan__gunzip_member(mmgan_ctx *ctx, const unsigned char *in, size_t n, size_t hint,
                                         size_t limit, int prefix, unsigned char **out, size_t *out_size,
                                         size_t *used)
{
    size_t pos = 10, took = 0;
    unsigned flg;
    uint32_t crc, isize;
    mmgan_status st;
    if (n < 2 || in[0] != 0x1f || in[1] != 0x8b)
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: not a gzip file (%lu bytes, no 1f 8b magic)", (unsigned long)n);
    if (n < 18)
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: truncated member (%lu bytes, at least 18 needed)", (unsigned long)n);
    if (in[2] != 8) return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: compression method %d, only 8 (deflate) exists", in[2]);
    flg = in[3];
    if (flg & 0xe0) return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: reserved header flags set (0x%02x)", flg);
    if (flg & 4) {   /* FEXTRA */
        size_t xlen;
        if (n - pos < 2) return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: truncated header");
        xlen = in[pos] | (size_t)in[pos + 1] << 8;
        pos += 2;
        if (n - pos < xlen) return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: truncated header");
        pos += xlen;
    }
    if (flg & 8) { while (pos < n && in[pos]) pos++; pos++; }   /* FNAME */
    if (flg & 16) { while (pos < n && in[pos]) pos++; pos++; }  /* FCOMMENT */
    if ((flg & 2) && pos + 2 <= n) {                            /* FHCRC: the low half of the header's CRC-32 */
        if ((mmgan_crc32(0, in, pos) & 0xffffu) != (in[pos] | (uint32_t)in[pos + 1] << 8))
            return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: header CRC check fails: the header is corrupted");
        pos += 2;
    }
    if (pos + 8 > n) return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: truncated header");
    /* Deflate expands at most 1032:1, so a larger size hint is damage (or a
     * later member's) and must not size an allocation; nor may a huge one
     * (the buffer grows as needed). */
    if (hint / 1032 > n - pos || hint > ((size_t)1 << 26)) hint = 0;
    st = mmgan__inflate(ctx, "gunzip", in + pos, n - pos - 8, hint, limit, prefix, out, out_size, &took);
    if (st != MMGAN_OK || prefix) return st;
    pos += took;
    if (n - pos < 8) {
        mmgan_free(ctx, *out); *out = NULL;
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: truncated trailer");
    }
    crc = mmgan__le32(in + pos);
    isize = mmgan__le32(in + pos + 4);
    if (crc != mmgan_crc32(0, *out, *out_size) || isize != (uint32_t)*out_size) {
        mmgan_free(ctx, *out); *out = NULL;
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: %s check fails: the data is corrupted",
                           isize != (uint32_t)*out_size ? "length" : "CRC-32");
    }
    *used = pos + 8;
    return MMGAN_OK;
}

/* mmgan_gunzip with its output's bytes at most limit; prefix: the first
 * member's first limit bytes only. */
static mmgan_status mmgan__gunzip(mmgan_ctx *ctx, const unsigned char *in, size_t n, size_t limit, int prefix,
                                  unsigned char **out, size_t *out_size)
{
    size_t pos, used = 0, len = 0, cap;
    unsigned char *part = NULL;
    mmgan_status st;
    *out = NULL;
    /* ISIZE, the file's last 4 bytes, is the (last member's) size mod 2^32:
     * only a hint; each member's trailer is checked. */
    st = mmgan__gunzip_member(ctx, in, n, n >= 4 ? mmgan__le32(in + n - 4) : 0, limit, prefix, out, out_size, &used);
    if (prefix) return st;
    /* A gzip file is a series of members (gzip -c a b, or appended ones):
     * their data is concatenated.  Anything else after a member is refused
     * rather than silently dropped. */
    cap = *out_size;
    for (pos = used; st == MMGAN_OK && pos < n; pos += used) {
        unsigned char *both;
        if (n - pos < 2 || in[pos] != 0x1f || in[pos + 1] != 0x8b) {
            mmgan_free(ctx, *out); *out = NULL;
            return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "gunzip: %lu bytes after the gzip data are no gzip member",
                               (unsigned long)(n - pos));
        }
        st = mmgan__gunzip_member(ctx, in + pos, n - pos, 0, limit - *out_size, 0, &part, &len, &used);
        if (st != MMGAN_OK) break;
        if (*out_size + len > cap) {   /* grown by doubling: many tiny members stay linear */
            cap = MMGAN__MAX(2 * cap, *out_size + len);
            both = (unsigned char *)mmgan_alloc(ctx, cap);
            if (!both) { mmgan_free(ctx, part); st = MMGAN_ERR_NOMEM; break; }
            memcpy(both, *out, *out_size);
            mmgan_free(ctx, *out);
            *out = both;
        }
        if (len) memcpy(*out + *out_size, part, len);
        *out_size += len;
        mmgan_free(ctx, part);
    }
    if (st != MMGAN_OK) { mmgan_free(ctx, *out); *out = NULL; }
    return st;
}

MMGAN_DEF mmgan_status mmgan_gunzip(mmgan_ctx *ctx, const unsigned char *in, size_t n,
                                    unsigned char **out, size_t *out_size)
{
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!in || !out || !out_size) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gunzip: NULL argument");
    return mmgan__gunzip(ctx, in, n, (size_t)-1, 0, out, out_size);
}

/* --- IDX -------------------------------------------------------------- */
MMGAN_DEF void mmgan_idx_free(mmgan_ctx *ctx, mmgan_idx *idx)
{
    if (!idx) return;
    mmgan_free(ctx, idx->data);
    idx->data = NULL;
}

/* The IDX header at buf[0, n) into out's ndim and dims, and its elements'
 * count. */
static mmgan_status mmgan__idx_header(mmgan_ctx *ctx, const unsigned char *buf, size_t n, mmgan_idx *out,
                                      size_t *count)
{
    int d;
    *count = 1;
    if (n < 4 || buf[0] != 0 || buf[1] != 0)
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "idx: bad magic (an IDX file starts with two zero bytes)");
    if (buf[2] != 0x08)
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "idx: element type 0x%02x, only 0x08 (unsigned byte) is supported",
                           buf[2]);
    out->ndim = buf[3];
    if (out->ndim < 1 || out->ndim > 4)
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "idx: %d dimensions, expected 1 to 4", out->ndim);
    if (n < 4 + 4 * (size_t)out->ndim)
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "idx: truncated header (%lu bytes)", (unsigned long)n);
    for (d = 0; d < out->ndim; d++) {
        const unsigned char *p = buf + 4 + 4 * d;
        uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (v == 0 || v > (uint32_t)INT_MAX || *count > ((size_t)INT_MAX) / v)
            return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "idx: dimension %d is %lu: empty or too large", d, (unsigned long)v);
        out->dims[d] = (int)v;
        *count *= v;
    }
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_idx_parse(mmgan_ctx *ctx, const unsigned char *buf, size_t n, mmgan_idx *out)
{
    unsigned char *raw = NULL;
    size_t count = 1, i;
    mmgan_status st;
    if (out) memset(out, 0, sizeof *out);   /* so that freeing it after any error is safe */
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!buf || !out) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "idx: NULL argument");
    if (n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        /* The header first (its 20 bytes at most): then the data may not
         * outgrow what it declares (a gzip of 3 GB of zeros, 3 MB, had
         * been inflated whole, into 6 GB, before its header was read). */
        size_t rn, most = 20 + (size_t)INT_MAX;   /* the largest IDX file */
        st = mmgan__gunzip(ctx, buf, n, 20, 1, &raw, &rn);
        /* (a first gzip member shorter than the header: the whole file is read, up to the largest) */
        if (st == MMGAN_OK && rn == 20) st = mmgan__idx_header(ctx, raw, rn, out, &count);
        if (st == MMGAN_OK && rn == 20) most = 4 + 4 * (size_t)out->ndim + count;
        mmgan_free(ctx, raw);
        raw = NULL;
        if (st == MMGAN_OK) st = mmgan__gunzip(ctx, buf, n, most, 0, &raw, &rn);
        if (st != MMGAN_OK) { memset(out, 0, sizeof *out); return st; }
        buf = raw;
        n = rn;
    }
    st = mmgan__idx_header(ctx, buf, n, out, &count);
    if (st != MMGAN_OK) { mmgan_free(ctx, raw); return st; }
    if (n - 4 - 4 * (size_t)out->ndim != count) {
        mmgan_free(ctx, raw);
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "idx: the header promises %lu bytes of data, the file has %lu",
                           (unsigned long)count, (unsigned long)(n - 4 - 4 * (size_t)out->ndim));
    }
    out->count = count;
    out->data = (unsigned char *)mmgan_alloc(ctx, count);
    if (!out->data) { mmgan_free(ctx, raw); return MMGAN_ERR_NOMEM; }
    for (i = 0; i < count; i++) out->data[i] = buf[4 + 4 * out->ndim + i];
    mmgan_free(ctx, raw);
    return MMGAN_OK;
}

/* --- datasets and batches --------------------------------------------- */
MMGAN_DEF void mmgan_dataset_free(mmgan_ctx *ctx, mmgan_dataset *ds)
{
    if (!ds) return;
    mmgan_free(ctx, ds->images);
    mmgan_free(ctx, ds->labels);
    ds->images = NULL;
    ds->labels = NULL;
}

MMGAN_DEF mmgan_status mmgan_dataset_from_idx(mmgan_ctx *ctx, const mmgan_idx *images, const mmgan_idx *labels,
                                              float lo, float hi, mmgan_dataset *out)
{
    size_t i;
    if (out) memset(out, 0, sizeof *out);   /* so that freeing it after any error is safe */
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!images || !out) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "dataset: NULL argument");
    if (images->ndim != 3)
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "dataset: images have %d dimensions, expected 3 (count, rows, columns)",
                           images->ndim);
    if (labels && (labels->ndim != 1 || labels->dims[0] != images->dims[0]))
        return mmgan__fail(ctx, MMGAN_ERR_FORMAT, "dataset: %d labels (%d-d) for %d images",
                           labels->dims[0], labels->ndim, images->dims[0]);
    out->n = images->dims[0]; out->c = 1; out->h = images->dims[1]; out->w = images->dims[2];
    out->images = (float *)mmgan_alloc(ctx, images->count * sizeof(float));
    if (!out->images) return MMGAN_ERR_NOMEM;
    for (i = 0; i < images->count; i++) out->images[i] = lo + (hi - lo) * (float)images->data[i] / 255.0f;
    if (labels) {
        out->labels = (unsigned char *)mmgan_alloc(ctx, labels->count);
        if (!out->labels) { mmgan_dataset_free(ctx, out); return MMGAN_ERR_NOMEM; }
        memcpy(out->labels, labels->data, labels->count);
    }
    return MMGAN_OK;
}

static void mmgan__batcher_shuffle(mmgan_batcher *b)
{
    int i;
    if (b->rng) mmgan_rng_permutation(b->rng, b->order, b->ds->n);
    else for (i = 0; i < b->ds->n; i++) b->order[i] = i;
}

MMGAN_DEF mmgan_status mmgan_batcher_init(mmgan_ctx *ctx, mmgan_batcher *b, const mmgan_dataset *ds, int batch,
                                          mmgan_rng *rng)
{
    if (b) memset(b, 0, sizeof *b);   /* so that next (-1) and free are safe after any error */
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!b || !ds || !ds->images) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "batcher: NULL argument");
    if (batch < 1 || batch > ds->n)
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "batcher: batch %d must be 1 to the %d samples", batch, ds->n);
    b->order = (int *)mmgan_alloc(ctx, (size_t)ds->n * sizeof(int));
    if (!b->order) return MMGAN_ERR_NOMEM;
    b->ds = ds; b->rng = rng; b->batch = batch;
    mmgan__batcher_shuffle(b);
    return MMGAN_OK;
}

MMGAN_DEF int mmgan_batcher_next(mmgan_batcher *b, float *images, unsigned char *labels)
{
    size_t per;
    int i, fresh;
    if (!b || !b->ds || !b->order || b->batch < 1 || b->batch > b->ds->n) return -1;
    fresh = b->pos == 0;
    if (b->pos + b->batch > b->ds->n) {   /* the remainder waits for the next epoch */
        if (b->epoch < LONG_MAX) b->epoch++;   /* a loaded epoch may be anything up to LONG_MAX */
        b->pos = 0;
        fresh = 1;
        mmgan__batcher_shuffle(b);
    }
    per = (size_t)b->ds->c * b->ds->h * b->ds->w;
    for (i = 0; i < b->batch; i++) {
        int k = b->order[b->pos + i];
        if (images) memcpy(images + (size_t)i * per, b->ds->images + (size_t)k * per, per * sizeof(float));
        if (labels && b->ds->labels) labels[i] = b->ds->labels[k];
    }
    b->pos += b->batch;
    return fresh;
}

MMGAN_DEF void mmgan_batcher_free(mmgan_ctx *ctx, mmgan_batcher *b)
{
    if (!b) return;
    mmgan_free(ctx, b->order);
    b->order = NULL;
}

/* --- PNG --------------------------------------------------------------- */
static void mmgan__be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

MMGAN_DEF mmgan_status mmgan_png_encode(mmgan_ctx *ctx, const unsigned char *pixels, int w, int h, int channels,
                                        unsigned char **out, size_t *out_size)
{
    /* Zlib with stored (uncompressed) blocks: no compressor, still a valid
     * PNG that every decoder reads; sample grids are small. */
    size_t row, raw, nblocks, zlen, total, i, o = 0;
    unsigned char *p;
    uint32_t a = 1, b = 0;
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!pixels || !out || !out_size) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "png: NULL argument");
    if (w < 1 || h < 1 || (channels != 1 && channels != 3) || w > (1 << 20) || h > (1 << 20))
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "png: %dx%d with %d channels (1 or 3, at most 2^20 a side)", w, h, channels);
    row = (size_t)w * channels + 1;
    raw = row * h;
    nblocks = (raw + 65534) / 65535;
    zlen = 2 + raw + 5 * nblocks + 4;
    total = 8 + (12 + 13) + (12 + zlen) + 12;
    p = (unsigned char *)mmgan_alloc(ctx, total);
    if (!p) return MMGAN_ERR_NOMEM;
    memcpy(p, "\211PNG\r\n\032\n", 8); o = 8;
    mmgan__be32(p + o, 13); memcpy(p + o + 4, "IHDR", 4);
    mmgan__be32(p + o + 8, (uint32_t)w); mmgan__be32(p + o + 12, (uint32_t)h);
    p[o + 16] = 8; p[o + 17] = (unsigned char)(channels == 1 ? 0 : 2); p[o + 18] = 0; p[o + 19] = 0; p[o + 20] = 0;
    mmgan__be32(p + o + 21, mmgan_crc32(0, p + o + 4, 17));
    o += 25;
    mmgan__be32(p + o, (uint32_t)zlen); memcpy(p + o + 4, "IDAT", 4);
    {
        size_t start = o + 4, q = o + 8, done = 0;
        p[q++] = 0x78; p[q++] = 0x01;
        while (done < raw) {
            size_t len = raw - done < 65535 ? raw - done : 65535;
            p[q++] = (unsigned char)(done + len == raw);
            p[q++] = (unsigned char)len; p[q++] = (unsigned char)(len >> 8);
            p[q++] = (unsigned char)~len; p[q++] = (unsigned char)(~len >> 8);
            for (i = 0; i < len; i++, done++) {
                size_t r = done / row, c = done % row;
                unsigned char v = c == 0 ? 0 : pixels[r * (row - 1) + c - 1];   /* filter byte 0: none */
                p[q++] = v;
                a = (a + v) % 65521u;
                b = (b + a) % 65521u;
            }
        }
        mmgan__be32(p + q, b << 16 | a); q += 4;
        mmgan__be32(p + q, mmgan_crc32(0, p + start, q - start)); q += 4;
        o = q;
    }
    mmgan__be32(p + o, 0); memcpy(p + o + 4, "IEND", 4);
    mmgan__be32(p + o + 8, mmgan_crc32(0, p + o + 4, 4));
    o += 12;
    MMGAN_ASSERT(o == total);
    *out = p;
    *out_size = total;
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_image_grid(mmgan_ctx *ctx, const float *images, int n, int c, int h, int w, int cols,
                                        float lo, float hi, unsigned char *pixels, int *gw, int *gh)
{
    int rows, i, y, x, k;
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!images || !gw || !gh || n < 1 || (c != 1 && c != 3) || h < 1 || w < 1 || cols < 1 || !(hi > lo))
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "image_grid: %d images of %dx%dx%d in %d columns, range [%g, %g]",
                           n, c, h, w, cols, (double)lo, (double)hi);
    if (cols > n) cols = n;
    rows = (n - 1) / cols + 1;
    if ((long long)cols * (w + 1LL) + 1 > INT_MAX || (long long)rows * (h + 1LL) + 1 > INT_MAX ||
        (double)(cols * (w + 1LL) + 1) * (double)(rows * (h + 1LL) + 1) * c > (double)SIZE_MAX)
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "image_grid: %d images of %dx%d in %d columns make too large a grid",
                           n, h, w, cols);
    *gw = cols * (w + 1) + 1;
    *gh = rows * (h + 1) + 1;
    if (!pixels) return MMGAN_OK;
    memset(pixels, 0, (size_t)*gw * *gh * c);
    for (i = 0; i < n; i++) {
        int ox = 1 + (i % cols) * (w + 1), oy = 1 + (i / cols) * (h + 1);
        for (k = 0; k < c; k++)
            for (y = 0; y < h; y++)
                for (x = 0; x < w; x++) {
                    float v = (images[(((size_t)i * c + k) * h + y) * w + x] - lo) / (hi - lo);
                    v = v != v ? 0.0f : v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;   /* NaN shows as black */
                    pixels[((size_t)(oy + y) * *gw + ox + x) * c + k] = (unsigned char)(v * 255.0f + 0.5f);
                }
    }
    return MMGAN_OK;
}

#ifndef MMGAN_NO_STDIO
MMGAN_DEF mmgan_status mmgan_read_file(mmgan_ctx *ctx, const char *path, unsigned char **data, size_t *size)
{
    FILE *f;
    long len;
    size_t cap = 4096, n = 0;
    unsigned char *buf;
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!path || !data || !size) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "read_file: NULL argument");
    *data = NULL;
    f = fopen(path, "rb");
    if (!f) return mmgan__fail(ctx, MMGAN_ERR_IO, "cannot open '%s' for reading", path);
    /* The size a seek tells is only the first guess of how much to read:
     * files in /proc tell 0, a pipe tells none, and a directory opens
     * (glibc) and tells LONG_MAX, then does not read. */
    if (fseek(f, 0, SEEK_END) == 0) {
        len = ftell(f);
        if (fseek(f, 0, SEEK_SET) != 0) {
            fclose(f);
            return mmgan__fail(ctx, MMGAN_ERR_IO, "cannot seek back to the start of '%s'", path);
        }
        if (len > 0 && (unsigned long)len < (1ul << 30)) cap = (size_t)len + 1;
    }
    clearerr(f);
    if (cap > (size_t)MMGAN_READ_MAX + 1) cap = (size_t)MMGAN_READ_MAX + 1;
    buf = (unsigned char *)mmgan_alloc(ctx, cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;   /* the end, or an error */
        if (n > (size_t)MMGAN_READ_MAX) {   /* /dev/zero read until memory ran out */
            fclose(f);
            mmgan_free(ctx, buf);
            return mmgan__fail(ctx, MMGAN_ERR_IO, "'%s' is larger than %lu bytes (MMGAN_READ_MAX)", path,
                               (unsigned long)MMGAN_READ_MAX);
        }
        {   /* more than guessed: twice the room, up to one byte past the limit */
            const size_t want = cap <= ((size_t)MMGAN_READ_MAX + 1) / 2 ? 2 * cap : (size_t)MMGAN_READ_MAX + 1;
            unsigned char *more = (unsigned char *)mmgan_alloc(ctx, want);
            if (more) memcpy(more, buf, n);
            mmgan_free(ctx, buf);
            buf = more;
            cap = want;
        }
    }
    if (!buf) {
        fclose(f);
        return mmgan__fail(ctx, MMGAN_ERR_NOMEM, "out of memory reading '%s' (%lu bytes so far)", path, (unsigned long)n);
    }
    if (ferror(f)) {
        fclose(f);
        mmgan_free(ctx, buf);
        return mmgan__fail(ctx, MMGAN_ERR_IO, "error reading '%s' (a directory, or not a readable file?)", path);
    }
    fclose(f);
    *data = buf;
    *size = n;
    return MMGAN_OK;
}

/* Writes data to path, flushed and closed: 0, or the errno of what failed
 * (*opened: whether path could be opened at all). */
static int mmgan__put_file(const char *path, const void *data, size_t size, int *opened)
{
    FILE *f;
    int ok, e;
    errno = 0;
    f = fopen(path, "wb");
    *opened = f != NULL;
    if (!f) return errno ? errno : EIO;
    errno = 0;
    ok = fwrite(data, 1, size, f) == size && fflush(f) == 0;
    e = errno;
    if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
    return ok ? 0 : e ? e : EIO;
}

MMGAN_DEF mmgan_status mmgan_write_file(mmgan_ctx *ctx, const char *path, const void *data, size_t size)
{
    char tmp[1024];
    int e, opened;
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!path || (!data && size)) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "write_file: NULL argument");
    if (strlen(path) + 5 > sizeof tmp) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "write_file: path too long");
#ifdef MMGAN__HAVE_STAT
    {   /* A rename over a device node replaced it with a file (run as root,
         * /dev/null became one), and over /dev/stdout, a link, it replaced the
         * link even where stdout is a file; strict C99 has no lstat to tell
         * links apart elsewhere. */
        struct stat sb;
        if (!strncmp(path, "/dev/", 5) ||
            (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode))) {
            e = mmgan__put_file(path, data, size, &opened);
            if (e && !opened) return mmgan__fail(ctx, MMGAN_ERR_IO, "cannot open '%s' for writing: %s", path, strerror(e));
            if (e) return mmgan__fail(ctx, MMGAN_ERR_IO, "error writing '%s': %s", path, strerror(e));
            return MMGAN_OK;
        }
    }
#endif
    /* The old file stays whole until the new one is complete: rename
     * replaces it in one step. */
    sprintf(tmp, "%s.tmp", path);
    e = mmgan__put_file(tmp, data, size, &opened);
    if (e && !opened) return mmgan__fail(ctx, MMGAN_ERR_IO, "cannot open '%s' for writing: %s", tmp, strerror(e));
    if (e) {
        remove(tmp);
        return mmgan__fail(ctx, MMGAN_ERR_IO, "error writing '%s' (%s); '%s' is unchanged", tmp, strerror(e), path);
    }
    if (rename(tmp, path) != 0) {
        e = errno ? errno : EIO;
        remove(tmp);
        return mmgan__fail(ctx, MMGAN_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
    }
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_idx_load(mmgan_ctx *ctx, const char *path, mmgan_idx *out)
{
    unsigned char *buf;
    size_t n;
    mmgan_status st;
    if (out) memset(out, 0, sizeof *out);   /* so that freeing it after any error is safe */
    st = mmgan_read_file(ctx, path, &buf, &n);
    if (st != MMGAN_OK) return st;
    st = mmgan_idx_parse(ctx, buf, n, out);
    mmgan_free(ctx, buf);
    return mmgan__fail_in(ctx, st, path);
}

MMGAN_DEF mmgan_status mmgan_mnist_load(mmgan_ctx *ctx, const char *images_path, const char *labels_path,
                                        float lo, float hi, mmgan_dataset *out)
{
    mmgan_idx im, lb;
    mmgan_status st;
    memset(&lb, 0, sizeof lb);
    if (out) memset(out, 0, sizeof *out);   /* so that freeing it after any error is safe */
    st = mmgan_idx_load(ctx, images_path, &im);
    if (st != MMGAN_OK) return st;
    if (labels_path && (st = mmgan_idx_load(ctx, labels_path, &lb)) != MMGAN_OK) {
        mmgan_idx_free(ctx, &im);
        return st;
    }
    st = mmgan_dataset_from_idx(ctx, &im, labels_path ? &lb : NULL, lo, hi, out);
    mmgan_idx_free(ctx, &im);
    mmgan_idx_free(ctx, &lb);
    return mmgan__fail_in(ctx, st, images_path);   /* name the file, as the readers do */
}

/* XML text: the characters that would end an element or attribute. */
static void mmgan__svg_text(mmgan__sbuf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '<') mmgan__sb_printf(b, "&lt;");
        else if (*s == '>') mmgan__sb_printf(b, "&gt;");
        else if (*s == '&') mmgan__sb_printf(b, "&amp;");
        else if (*s == '"') mmgan__sb_printf(b, "&quot;");
        else mmgan__sb_printf(b, "%c", *s);
    }
}

MMGAN_DEF mmgan_status mmgan_svg_curves(mmgan_ctx *ctx, const char *path, const char *title, const char *xlabel,
                                        int ncurves, const char *const *labels, const double *const *ys, int n)
{
    static const char *color[8] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
    double lo = 0.0, hi = 0.0;
    mmgan__sbuf f;
    mmgan_status st;
    int k, i;
    if (!ctx) return MMGAN_ERR_INVALID;
    if (!path || ncurves < 1 || ncurves > 8 || !ys || n < 1)
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "svg_curves: 1 to 8 curves of at least one point");
    for (k = 0; k < ncurves; k++) {
        if (!ys[k]) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "svg_curves: curve %d is NULL", k);
        for (i = 0; i < n; i++)
            if (ys[k][i] == ys[k][i] && fabs(ys[k][i]) < 1e300) {   /* NaN and infinities are not drawn */
                if (ys[k][i] < lo) lo = ys[k][i];
                if (ys[k][i] > hi) hi = ys[k][i];
            }
    }
    if (hi <= lo) hi = lo + 1.0;
    /* Built in memory, then written by mmgan_write_file: atomic like every save. */
    memset(&f, 0, sizeof f);
    f.user = ctx->alloc_user;
    mmgan__sb_printf(&f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"400\" font-family=\"sans-serif\" "
                         "font-size=\"12\">\n<rect width=\"640\" height=\"400\" fill=\"white\"/>\n"
                         "<text x=\"340\" y=\"16\" text-anchor=\"middle\">");
    mmgan__svg_text(&f, title);
    mmgan__sb_printf(&f, "</text>\n<line x1=\"70\" y1=\"350\" x2=\"620\" y2=\"350\" stroke=\"black\"/>"
                         "<line x1=\"70\" y1=\"30\" x2=\"70\" y2=\"350\" stroke=\"black\"/>\n"
                         "<text x=\"345\" y=\"385\" text-anchor=\"middle\">");
    mmgan__svg_text(&f, xlabel);
    mmgan__sb_printf(&f, " (1 to %d)</text>\n<text x=\"65\" y=\"35\" text-anchor=\"end\">%.4g</text>"
                         "<text x=\"65\" y=\"350\" text-anchor=\"end\">%.4g</text>\n", n, hi, lo);
    for (k = 0; k < ncurves; k++) {
        mmgan__sb_printf(&f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color[k]);
        for (i = 0; i < n; i++)
            if (ys[k][i] == ys[k][i] && fabs(ys[k][i]) < 1e300)
                mmgan__sb_printf(&f, "%.1f,%.1f ", 70 + 550.0 * (n > 1 ? (double)i / (n - 1) : 0.5),
                                 350 - 320.0 * (ys[k][i] - lo) / (hi - lo));
        mmgan__sb_printf(&f, "\"/>\n<text x=\"600\" y=\"%d\" text-anchor=\"end\" fill=\"%s\">", 44 + 16 * k, color[k]);
        mmgan__svg_text(&f, labels ? labels[k] : "");
        mmgan__sb_printf(&f, "</text>\n");
    }
    mmgan__sb_printf(&f, "</svg>\n");
    st = f.bad ? mmgan__fail(ctx, MMGAN_ERR_NOMEM, "svg_curves: out of memory") : mmgan_write_file(ctx, path, f.p, f.len);
    MMGAN_FREE(f.user, f.p);
    return st;
}

MMGAN_DEF mmgan_status mmgan_save_grid_png(mmgan_ctx *ctx, const char *path, const float *images, int n, int c,
                                           int h, int w, int cols, float lo, float hi)
{
    int gw = 0, gh = 0;
    unsigned char *pix, *png;
    size_t size;
    mmgan_status st = mmgan_image_grid(ctx, images, n, c, h, w, cols, lo, hi, NULL, &gw, &gh);
    if (st != MMGAN_OK) return st;
    pix = (unsigned char *)mmgan_alloc(ctx, (size_t)gw * gh * c);
    if (!pix) return MMGAN_ERR_NOMEM;
    mmgan_image_grid(ctx, images, n, c, h, w, cols, lo, hi, pix, &gw, &gh);
    st = mmgan_png_encode(ctx, pix, gw, gh, c, &png, &size);
    mmgan_free(ctx, pix);
    if (st != MMGAN_OK) return st;
    st = mmgan_write_file(ctx, path, png, size);
    mmgan_free(ctx, png);
    return st;
}
#endif /* MMGAN_NO_STDIO */

/* ===================================================================== */
/* 2.15 Checkpoints (safetensors)                                         */
/* ===================================================================== */
typedef struct mmgan__ckarr {
    char name[128];
    int ndim, shape[4];
    size_t numel;
    float *data;
    uint64_t off;      /* decoded: where its bytes began in the file's data section */
} mmgan__ckarr;

typedef struct mmgan__ckmeta {
    char key[128], value[256];
} mmgan__ckmeta;

/* The metadata key of the data section's CRC-32, which every save writes. */
#define MMGAN__CK_CRC "mmgan.data_crc32"

struct mmgan_ckpt {
    mmgan_ctx *ctx;
    mmgan__ckarr *arr;
    int n, cap;
    mmgan__ckmeta *meta;
    int nmeta, capmeta;
};

MMGAN_DEF mmgan_ckpt *mmgan_ckpt_new(mmgan_ctx *ctx)
{
    mmgan_ckpt *ck;
    if (!ctx) return NULL;
    ck = (mmgan_ckpt *)mmgan_alloc(ctx, sizeof *ck);
    if (!ck) return NULL;
    memset(ck, 0, sizeof *ck);
    ck->ctx = ctx;
    return ck;
}

MMGAN_DEF void mmgan_ckpt_free(mmgan_ckpt *ck)
{
    int i;
    if (!ck) return;
    for (i = 0; i < ck->n; i++) mmgan_free(ck->ctx, ck->arr[i].data);
    MMGAN_FREE(ck->ctx->alloc_user, ck->arr);
    MMGAN_FREE(ck->ctx->alloc_user, ck->meta);
    mmgan_free(ck->ctx, ck);
}

/* Names go into JSON strings unescaped, so only safe characters are allowed. */
static int mmgan__ck_name_ok(const char *s, size_t max)
{
    size_t i;
    if (!s || !*s) return 0;
    for (i = 0; s[i]; i++)
        if (i >= max || (unsigned char)s[i] < 32 || (unsigned char)s[i] > 126 || s[i] == '"' || s[i] == '\\') return 0;
    return 1;
}

static int mmgan__ck_find(const mmgan_ckpt *ck, const char *name)
{
    int i;
    for (i = 0; i < ck->n; i++)
        if (!strcmp(ck->arr[i].name, name)) return i;
    return -1;
}

static mmgan_status mmgan__ck_add(mmgan_ckpt *ck, const char *name, int ndim, const int *shape, size_t numel,
                                  const float *data);

MMGAN_DEF mmgan_status mmgan_ckpt_put(mmgan_ckpt *ck, const char *name, int ndim, const int *shape, const float *data)
{
    size_t numel;
    if (!ck) return MMGAN_ERR_INVALID;
    if (!mmgan__ck_name_ok(name, 127))
        return mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_put: name '%s' is empty, too long or has quotes, "
                           "backslashes or control characters", name ? name : "(null)");
    if (mmgan__ck_find(ck, name) >= 0 || !strcmp(name, "__metadata__"))
        return mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_put: '%s' is already in the checkpoint", name);
    if (mmgan__check_shape(ck->ctx, "ckpt_put", ndim, shape, &numel) != MMGAN_OK) return MMGAN_ERR_SHAPE;
    if (!data) return mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_put: no data for '%s'", name);
    return mmgan__ck_add(ck, name, ndim, shape, numel, data);
}

/* Appends a checked array (mmgan_ckpt_put, or the decoder, which finds
 * duplicate names once at the end rather than by a search per array). */
static mmgan_status mmgan__ck_add(mmgan_ckpt *ck, const char *name, int ndim, const int *shape, size_t numel,
                                  const float *data)
{
    mmgan__ckarr *a;
    if (ck->n == ck->cap) {
        int cap = ck->cap ? 2 * ck->cap : 16;
        mmgan__ckarr *na = (mmgan__ckarr *)MMGAN_REALLOC(ck->ctx->alloc_user, ck->arr, (size_t)cap * sizeof *na);
        if (!na) return mmgan__fail(ck->ctx, MMGAN_ERR_NOMEM, "ckpt_put: out of memory");
        ck->arr = na;
        ck->cap = cap;
    }
    a = &ck->arr[ck->n];
    memset(a, 0, sizeof *a);
    mmgan__copy_name(a->name, sizeof a->name, name);
    a->ndim = ndim;
    if (ndim) memcpy(a->shape, shape, (size_t)ndim * sizeof(int));   /* a scalar may come with no shape */
    a->numel = numel;
    a->data = (float *)mmgan_alloc(ck->ctx, numel * sizeof(float) + 1);
    if (!a->data) return MMGAN_ERR_NOMEM;
    memcpy(a->data, data, numel * sizeof(float));
    ck->n++;
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_ckpt_put_param(mmgan_ckpt *ck, const mmgan_param *p)
{
    if (!ck) return MMGAN_ERR_INVALID;
    if (!p) return mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_put_param: NULL parameter");
    return mmgan_ckpt_put(ck, p->name, p->value->ndim, p->value->shape, p->value->data);
}

/* put_meta; a new key is appended without a search when append is set (a
 * file's keys, checked for duplicates once all are read: mmgan__ck_check_all). */
static mmgan_status mmgan__ck_put_meta(mmgan_ckpt *ck, const char *key, const char *value, int append)
{
    int i = ck->nmeta;
    if (!mmgan__ck_name_ok(key, 127) || !value || (*value && !mmgan__ck_name_ok(value, 255)))
        return mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_put_meta: key '%s' or its value is not a plain string",
                           key ? key : "(null)");
    if (!append)
        for (i = 0; i < ck->nmeta; i++)
            if (!strcmp(ck->meta[i].key, key)) break;
    if (i == ck->nmeta) {
        if (ck->nmeta == ck->capmeta) {
            int cap = ck->capmeta ? 2 * ck->capmeta : 8;
            mmgan__ckmeta *nm = (mmgan__ckmeta *)MMGAN_REALLOC(ck->ctx->alloc_user, ck->meta, (size_t)cap * sizeof *nm);
            if (!nm) return mmgan__fail(ck->ctx, MMGAN_ERR_NOMEM, "ckpt_put_meta: out of memory");
            ck->meta = nm;
            ck->capmeta = cap;
        }
        ck->nmeta++;
    }
    mmgan__copy_name(ck->meta[i].key, sizeof ck->meta[i].key, key);
    mmgan__copy_name(ck->meta[i].value, sizeof ck->meta[i].value, value);
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_ckpt_put_meta(mmgan_ckpt *ck, const char *key, const char *value)
{
    return ck ? mmgan__ck_put_meta(ck, key, value, 0) : MMGAN_ERR_INVALID;
}

MMGAN_DEF mmgan_status mmgan_ckpt_encode(mmgan_ckpt *ck, unsigned char **out, size_t *out_size)
{
    mmgan__sbuf h;
    size_t off = 0, hlen, total, i, k, crc_at = 0;
    unsigned char *p;
    int a, d;
    if (!ck) return MMGAN_ERR_INVALID;
    if (!out || !out_size) return mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_encode: NULL argument");
    memset(&h, 0, sizeof h);
    h.user = ck->ctx->alloc_user;
    mmgan__sb_printf(&h, "{");
    if (ck->nmeta || ck->n) {
        /* the data's CRC-32 (8 hex digits, filled in below), last: safetensors
         * has no checksum, and a flipped bit in a weight would load */
        mmgan__sb_printf(&h, "\"__metadata__\":{");
        for (a = 0; a < ck->nmeta; a++)
            if (strcmp(ck->meta[a].key, MMGAN__CK_CRC))
                mmgan__sb_printf(&h, "\"%s\":\"%s\",", ck->meta[a].key, ck->meta[a].value);
        mmgan__sb_printf(&h, "\"%s\":\"", MMGAN__CK_CRC);
        crc_at = h.len;
        mmgan__sb_printf(&h, "00000000\"}%s", ck->n ? "," : "");
    }
    for (a = 0; a < ck->n; a++) {
        const mmgan__ckarr *r = &ck->arr[a];
        mmgan__sb_printf(&h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", a ? "," : "", r->name);
        for (d = 0; d < r->ndim; d++) mmgan__sb_printf(&h, "%s%d", d ? "," : "", r->shape[d]);
        mmgan__sb_printf(&h, "],\"data_offsets\":[%lu,%lu]}", (unsigned long)off, (unsigned long)(off + r->numel * 4));
        off += r->numel * 4;
    }
    mmgan__sb_printf(&h, "}");
    /* Spaces pad the header so the data starts 8-byte aligned. */
    while (!h.bad && (h.len + 8) % 8) mmgan__sb_printf(&h, " ");
    if (h.bad) { MMGAN_FREE(h.user, h.p); return mmgan__fail(ck->ctx, MMGAN_ERR_NOMEM, "ckpt_encode: out of memory"); }
    hlen = h.len;
    total = 8 + hlen + off;
    p = (unsigned char *)mmgan_alloc(ck->ctx, total);
    if (!p) { MMGAN_FREE(h.user, h.p); return MMGAN_ERR_NOMEM; }
    for (i = 0; i < 8; i++) p[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(p + 8, h.p, hlen);
    MMGAN_FREE(h.user, h.p);
    off = 8 + hlen;
    for (a = 0; a < ck->n; a++)
        for (k = 0; k < ck->arr[a].numel; k++) {
            uint32_t u;
            memcpy(&u, &ck->arr[a].data[k], 4);
            p[off++] = (unsigned char)u; p[off++] = (unsigned char)(u >> 8);
            p[off++] = (unsigned char)(u >> 16); p[off++] = (unsigned char)(u >> 24);
        }
    if (crc_at) {
        char hex[9];
        sprintf(hex, "%08lx", (unsigned long)mmgan_crc32(0, p + 8 + hlen, total - 8 - hlen));
        memcpy(p + 8 + crc_at, hex, 8);
    }
    *out = p;
    *out_size = total;
    return MMGAN_OK;
}

/* --- a strict reader for the safetensors JSON header ------------------- */
typedef struct mmgan__js { const char *s, *end; const char *err; } mmgan__js;

static void mmgan__js_ws(mmgan__js *j) { while (j->s < j->end && (*j->s == ' ' || *j->s == '\n' || *j->s == '\r' || *j->s == '\t')) j->s++; }

static int mmgan__js_lit(mmgan__js *j, char c)
{
    mmgan__js_ws(j);
    if (j->s < j->end && *j->s == c) { j->s++; return 1; }
    return 0;
}

/* A string without escapes (what mmgan writes and names need) into buf. */
static int mmgan__js_str(mmgan__js *j, char *buf, size_t size)
{
    size_t n = 0;
    if (!mmgan__js_lit(j, '"')) { j->err = "expected a string"; return 0; }
    while (j->s < j->end && *j->s != '"') {
        if (*j->s == '\\' || (unsigned char)*j->s < 32) { j->err = "escape or control character in a string"; return 0; }
        if (n + 1 >= size) { j->err = "string too long"; return 0; }
        buf[n++] = *j->s++;
    }
    if (j->s >= j->end) { j->err = "unterminated string"; return 0; }
    j->s++;
    buf[n] = '\0';
    return 1;
}

static int mmgan__js_uint(mmgan__js *j, uint64_t *v)
{
    uint64_t x = 0;
    int digits = 0;
    mmgan__js_ws(j);
    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') {
        if (x > (UINT64_MAX - 9) / 10) { j->err = "number too large"; return 0; }
        x = x * 10 + (uint64_t)(*j->s++ - '0');
        digits++;
    }
    if (!digits) { j->err = "expected a non-negative integer"; return 0; }
    *v = x;
    return 1;
}

/* [u, u, ...] with at most max entries. */
static int mmgan__js_uints(mmgan__js *j, uint64_t *v, int max, int *count)
{
    *count = 0;
    if (!mmgan__js_lit(j, '[')) { j->err = "expected '['"; return 0; }
    if (mmgan__js_lit(j, ']')) return 1;
    do {
        if (*count >= max) { j->err = "too many entries in a list"; return 0; }
        if (!mmgan__js_uint(j, &v[(*count)++])) return 0;
    } while (mmgan__js_lit(j, ','));
    if (!mmgan__js_lit(j, ']')) { j->err = "expected ']'"; return 0; }
    return 1;
}

static mmgan_ckpt *mmgan__ck_bad(mmgan_ckpt *ck, const char *what, const char *detail)
{
    mmgan_ctx *ctx = ck->ctx;
    mmgan_ckpt_free(ck);
    mmgan__fail(ctx, MMGAN_ERR_FORMAT, "checkpoint: %s%s%s", what, detail ? ": " : "", detail ? detail : "");
    return NULL;
}

static int mmgan__cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int mmgan__cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name two of names[0, n) share (sorted in place), or NULL:
 * one sort, not a search per name (a header of 120,000 metadata keys had
 * taken 50 s). */
static const char *mmgan__ck_first_dup(const char **names, size_t n)
{
    size_t i;
    qsort(names, n, sizeof *names, mmgan__cmp_str);
    for (i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i])) return names[i];
    return NULL;
}

/* What can only be checked with every array and key read: no two names or
 * metadata keys alike, and the arrays' bytes tiling the data section (no
 * overlap, no gap).  Sorted, not searched pair by pair: a file may hold
 * many thousands of arrays.  Returns ck, or frees it and returns NULL. */
static mmgan_ckpt *mmgan__ck_check_all(mmgan_ckpt *ck, size_t dsize)
{
    const size_t n = (size_t)ck->n, nm = (size_t)ck->nmeta;
    uint64_t *sp, end = 0;
    const char **names;
    const char *why = NULL, *which;
    char detail[128];
    size_t i;
    sp = (uint64_t *)mmgan_alloc(ck->ctx, (n ? n : 1) * 2 * sizeof *sp);
    names = (const char **)mmgan_alloc(ck->ctx, MMGAN__MAX(MMGAN__MAX(n, nm), 1) * sizeof *names);
    if (!sp || !names) {
        mmgan__fail(ck->ctx, MMGAN_ERR_NOMEM, "checkpoint: out of memory checking %lu tensors",
                    (unsigned long)n);
        mmgan_free(ck->ctx, sp); mmgan_free(ck->ctx, names); mmgan_ckpt_free(ck);
        return NULL;
    }
    for (i = 0; i < nm; i++) names[i] = ck->meta[i].key;
    which = mmgan__ck_first_dup(names, nm);
    if (which) why = "duplicate metadata key";
    if (!why && !n && dsize) why = "data after a header that names no tensor";
    for (i = 0; i < n && !why; i++) {
        sp[2 * i] = ck->arr[i].off;
        sp[2 * i + 1] = ck->arr[i].off + (uint64_t)ck->arr[i].numel * 4;
        names[i] = ck->arr[i].name;
    }
    if (n && !why) {
        qsort(sp, n, 2 * sizeof *sp, mmgan__cmp_u64);   /* pairs, by their start */
        for (i = 0; i < n && !why; i++) {
            if (sp[2 * i] != end) why = sp[2 * i] < end ? "two tensors overlap in the data section"
                                                        : "a gap no tensor covers in the data section";
            end = sp[2 * i + 1];
        }
        if (!why && end != dsize) why = "tensors do not cover the data section exactly";
        which = why ? NULL : mmgan__ck_first_dup(names, n);
        if (which) why = "duplicate tensor";
    }
    if (which) mmgan__copy_name(detail, sizeof detail, which);   /* the name dies with ck */
    mmgan_free(ck->ctx, sp);
    mmgan_free(ck->ctx, names);
    return why ? mmgan__ck_bad(ck, why, which ? detail : NULL) : ck;
}

MMGAN_DEF mmgan_ckpt *mmgan_ckpt_decode(mmgan_ctx *ctx, const unsigned char *buf, size_t n)
{
    mmgan_ckpt *ck;
    mmgan__js j;
    uint64_t hlen = 0;
    size_t dsize;
    const unsigned char *data;
    int i, first, have_meta = 0;
    if (!ctx) return NULL;
    if (!buf) { mmgan__fail(ctx, MMGAN_ERR_INVALID, "checkpoint: NULL buffer"); return NULL; }
    ck = mmgan_ckpt_new(ctx);
    if (!ck) return NULL;
    if (n < 8) return mmgan__ck_bad(ck, "file too short for a safetensors header", NULL);
    for (i = 0; i < 8; i++) hlen |= (uint64_t)buf[i] << (8 * i);
    if (hlen < 2 || hlen > n - 8) return mmgan__ck_bad(ck, "header length does not fit in the file", NULL);
    j.s = (const char *)buf + 8;
    j.end = j.s + hlen;
    j.err = NULL;
    data = buf + 8 + hlen;
    dsize = n - 8 - (size_t)hlen;
    if (!mmgan__js_lit(&j, '{')) return mmgan__ck_bad(ck, "header is not a JSON object", NULL);
    for (first = 1; !mmgan__js_lit(&j, '}'); first = 0) {
        char name[128], key[32], dtype[16];
        uint64_t shape[8], offs[2] = {0, 0};
        int nshape = -1, noffs = -1, have_dtype = 0, efirst;
        if (!first && !mmgan__js_lit(&j, ','))
            return mmgan__ck_bad(ck, j.s < j.end ? "expected ',' or '}' after an entry" : "header does not end with '}'", NULL);
        if (!mmgan__js_str(&j, name, sizeof name)) return mmgan__ck_bad(ck, "bad tensor name", j.err);
        if (!mmgan__js_lit(&j, ':') || !mmgan__js_lit(&j, '{')) return mmgan__ck_bad(ck, "expected an object for", name);
        if (!strcmp(name, "__metadata__")) {
            int mfirst;
            if (have_meta++) return mmgan__ck_bad(ck, "two __metadata__ objects", NULL);
            for (mfirst = 1; !mmgan__js_lit(&j, '}'); mfirst = 0) {
                char k[128], v[256];
                if ((!mfirst && !mmgan__js_lit(&j, ',')) || !mmgan__js_str(&j, k, sizeof k) || !mmgan__js_lit(&j, ':') ||
                    !mmgan__js_str(&j, v, sizeof v))
                    return mmgan__ck_bad(ck, "bad metadata entry", j.err ? j.err : "expected ',', ':' or '}'");
                if (mmgan__ck_put_meta(ck, k, v, 1) != MMGAN_OK)
                    return mmgan__ck_bad(ck, "metadata entry not printable ASCII or too long (127 and 255 characters)", k);
            }
            continue;
        }
        for (efirst = 1; !mmgan__js_lit(&j, '}'); efirst = 0) {
            if ((!efirst && !mmgan__js_lit(&j, ',')) || !mmgan__js_str(&j, key, sizeof key) || !mmgan__js_lit(&j, ':'))
                return mmgan__ck_bad(ck, "bad field in", name);
            if ((!strcmp(key, "dtype") && have_dtype) || (!strcmp(key, "shape") && nshape >= 0) ||
                (!strcmp(key, "data_offsets") && noffs >= 0))
                return mmgan__ck_bad(ck, "a field given twice in", name);
            if (!strcmp(key, "dtype")) {
                if (!mmgan__js_str(&j, dtype, sizeof dtype)) return mmgan__ck_bad(ck, "bad dtype in", name);
                have_dtype = 1;
            } else if (!strcmp(key, "shape")) {
                if (!mmgan__js_uints(&j, shape, 8, &nshape)) return mmgan__ck_bad(ck, "bad shape in", name);
            } else if (!strcmp(key, "data_offsets")) {
                if (!mmgan__js_uints(&j, offs, 2, &noffs) || noffs != 2) return mmgan__ck_bad(ck, "bad data_offsets in", name);
            } else {
                return mmgan__ck_bad(ck, "unknown field in a tensor entry", key);
            }
        }
        if (!have_dtype || nshape < 0 || noffs != 2) return mmgan__ck_bad(ck, "entry lacks dtype, shape or data_offsets", name);
        if (strcmp(dtype, "F32")) {
            char msg[200];
            snprintf(msg, sizeof msg, "'%s' has dtype %s; mmgan reads F32 only", name, dtype);
            return mmgan__ck_bad(ck, "unsupported dtype", msg);
        }
        {
            int shp[4], d;
            uint64_t numel = 1;
            if (nshape > 4) return mmgan__ck_bad(ck, "more than 4 dimensions in", name);
            for (d = 0; d < nshape; d++) {
                if (shape[d] < 1 || shape[d] > (uint64_t)INT_MAX) return mmgan__ck_bad(ck, "empty or huge dimension in", name);
                shp[d] = (int)shape[d];
                numel *= shape[d];
                if (numel > (uint64_t)INT_MAX) return mmgan__ck_bad(ck, "too many elements in", name);
            }
            if (offs[0] > offs[1] || offs[1] > dsize || offs[1] - offs[0] != numel * 4)
                return mmgan__ck_bad(ck, "data_offsets disagree with the shape or the file size for", name);
            if (!mmgan__ck_name_ok(name, 127))
                return mmgan__ck_bad(ck, "tensor name with characters other than printable ASCII", NULL);
            {
                /* Decoded in place of the put: little-endian bytes to floats. */
                float *tmp = (float *)mmgan_alloc(ctx, (size_t)numel * sizeof(float) + 1);
                size_t k;
                mmgan_status st;
                if (!tmp) { mmgan_ckpt_free(ck); return NULL; }
                for (k = 0; k < numel; k++) {
                    uint32_t u = mmgan__le32(data + offs[0] + 4 * k);
                    memcpy(&tmp[k], &u, 4);
                }
                st = mmgan__ck_add(ck, name, nshape, shp, (size_t)numel, tmp);
                mmgan_free(ctx, tmp);
                if (st != MMGAN_OK) { mmgan_ckpt_free(ck); return NULL; }
                ck->arr[ck->n - 1].off = offs[0];
            }
        }
    }
    mmgan__js_ws(&j);
    if (j.s != j.end) return mmgan__ck_bad(ck, "trailing bytes after the header", NULL);
    {   /* files mmgan wrote carry their data's CRC-32; others (PyTorch's) do not */
        const char *crc = mmgan_ckpt_get_meta(ck, MMGAN__CK_CRC);
        if (crc && (strlen(crc) != 8 || strspn(crc, "0123456789abcdefABCDEF") != 8)) {
            char detail[16];
            mmgan__copy_name(detail, sizeof detail, crc);   /* the value dies with ck */
            return mmgan__ck_bad(ck, "metadata " MMGAN__CK_CRC " is not 8 hex digits", detail);
        }
        if (crc && (uint32_t)strtoul(crc, NULL, 16) != mmgan_crc32(0, data, dsize))
            return mmgan__ck_bad(ck, "the data's CRC-32 does not match the header's (" MMGAN__CK_CRC
                                     "): the file is corrupted", NULL);
    }
    return mmgan__ck_check_all(ck, dsize);
}

MMGAN_DEF const float *mmgan_ckpt_get(mmgan_ckpt *ck, const char *name, int ndim, const int *shape)
{
    int i, d;
    char want[64], have[64];
    mmgan_tensor tw, th;
    if (!ck) return NULL;
    if (ndim < 0 || ndim > MMGAN_MAX_DIMS || (ndim > 0 && !shape)) {
        mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_get: '%s' asked for with %d dimensions%s (0 to %d, a shape for any)",
                    name ? name : "(null)", ndim, shape ? "" : " and no shape", MMGAN_MAX_DIMS);
        return NULL;
    }
    i = name ? mmgan__ck_find(ck, name) : -1;
    if (i < 0) { mmgan__fail(ck->ctx, MMGAN_ERR_FORMAT, "checkpoint: no tensor '%s'", name ? name : "(null)"); return NULL; }
    for (d = 0; d < ndim && ndim == ck->arr[i].ndim; d++)
        if (shape[d] != ck->arr[i].shape[d]) break;
    if (ndim != ck->arr[i].ndim || d != ndim) {
        memset(&tw, 0, sizeof tw); memset(&th, 0, sizeof th);
        tw.ndim = ndim; th.ndim = ck->arr[i].ndim;
        for (d = 0; d < ndim && d < 4; d++) tw.shape[d] = shape[d];
        for (d = 0; d < th.ndim; d++) th.shape[d] = ck->arr[i].shape[d];
        mmgan__fail(ck->ctx, MMGAN_ERR_SHAPE, "checkpoint: '%s' has shape %s, the model expects %s", name,
                    mmgan_shape_str(&th, have, sizeof have), mmgan_shape_str(&tw, want, sizeof want));
        return NULL;
    }
    return ck->arr[i].data;
}

MMGAN_DEF mmgan_status mmgan_ckpt_get_param(mmgan_ckpt *ck, mmgan_param *p)
{
    const float *v;
    if (!ck) return MMGAN_ERR_INVALID;
    if (!p) return mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_get_param: NULL parameter");
    v = mmgan_ckpt_get(ck, p->name, p->value->ndim, p->value->shape);
    if (!v) return mmgan__ck_find(ck, p->name) >= 0 ? MMGAN_ERR_SHAPE : MMGAN_ERR_FORMAT;
    memcpy(p->value->data, v, p->value->numel * sizeof(float));
    return MMGAN_OK;
}

MMGAN_DEF const char *mmgan_ckpt_get_meta(const mmgan_ckpt *ck, const char *key)
{
    int i;
    if (!ck || !key) return NULL;
    for (i = 0; i < ck->nmeta; i++)
        if (!strcmp(ck->meta[i].key, key)) return ck->meta[i].value;
    return NULL;
}

MMGAN_DEF int mmgan_ckpt_count(const mmgan_ckpt *ck) { return ck ? ck->n : 0; }
MMGAN_DEF const char *mmgan_ckpt_name(const mmgan_ckpt *ck, int i) { return ck && i >= 0 && i < ck->n ? ck->arr[i].name : NULL; }
MMGAN_DEF int mmgan_ckpt_find(const mmgan_ckpt *ck, const char *name) { return ck && name ? mmgan__ck_find(ck, name) : -1; }

MMGAN_DEF mmgan_status mmgan_ckpt_shape(const mmgan_ckpt *ck, int i, int *ndim, int shape[MMGAN_MAX_DIMS])
{
    int d;
    if (!ck) return MMGAN_ERR_INVALID;
    if (i < 0 || i >= ck->n)
        return mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_shape: no array %d (the checkpoint has %d)", i, ck->n);
    if (!ndim || !shape) return mmgan__fail(ck->ctx, MMGAN_ERR_INVALID, "ckpt_shape: NULL ndim or shape");
    *ndim = ck->arr[i].ndim;
    for (d = 0; d < MMGAN_MAX_DIMS; d++) shape[d] = d < *ndim ? ck->arr[i].shape[d] : 1;
    return MMGAN_OK;
}

static const char *const mmgan__opt_names[4] = {"sgd", "adam", "adamax", "rmsprop"};

/* The state strings are written with %ld, %d and %08lx; a file that holds
 * anything else (signs, spaces, 0x, values past the type) is damaged, and
 * sscanf or strtol would take some of it, overflow on some, or clamp. */
/* Decimal digits at s, at most max: returns what follows them, or NULL. */
static const char *mmgan__dec(const char *s, long max, long *out)
{
    long v = 0;
    if (*s < '0' || *s > '9') return NULL;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (max - (*s - '0')) / 10) return NULL;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return s;
}

/* Exactly n hex digits at s (n <= 16): returns what follows them, or NULL. */
static const char *mmgan__hex(const char *s, int n, uint64_t *out)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < n; i++, s++) {
        int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
              : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10 : -1;
        if (d < 0) return NULL;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return s;
}

MMGAN_DEF mmgan_status mmgan_opt_save(const mmgan_optimizer *o, mmgan_ckpt *ck, const char *prefix)
{
    char name[160], val[32];
    int i;
    mmgan_status st = MMGAN_OK;
    if (!o || !ck || !prefix) return MMGAN_ERR_INVALID;
    for (i = 0; i < o->n && st == MMGAN_OK; i++) {
        const mmgan_tensor *t = o->params[i]->value;
        snprintf(name, sizeof name, "%s.%s.m", prefix, o->params[i]->name);
        st = mmgan_ckpt_put(ck, name, t->ndim, t->shape, o->m[i]);
        snprintf(name, sizeof name, "%s.%s.v", prefix, o->params[i]->name);
        if (st == MMGAN_OK) st = mmgan_ckpt_put(ck, name, t->ndim, t->shape, o->v[i]);
    }
    snprintf(name, sizeof name, "%s.step", prefix);
    snprintf(val, sizeof val, "%ld", o->t);
    if (st == MMGAN_OK) st = mmgan_ckpt_put_meta(ck, name, val);
    snprintf(name, sizeof name, "%s.kind", prefix);
    if (st == MMGAN_OK) st = mmgan_ckpt_put_meta(ck, name, mmgan__opt_names[o->spec.kind]);
    return st;
}

MMGAN_DEF mmgan_status mmgan_opt_load(mmgan_optimizer *o, mmgan_ckpt *ck, const char *prefix)
{
    char name[160];
    const char *step, *end;
    int i, pass;
    long t;
    if (!o || !ck || !prefix) return MMGAN_ERR_INVALID;
    snprintf(name, sizeof name, "%s.step", prefix);
    step = mmgan_ckpt_get_meta(ck, name);
    if (!step || !(end = mmgan__dec(step, LONG_MAX, &t)) || *end)
        return mmgan__fail(o->ctx, MMGAN_ERR_FORMAT, "checkpoint: no valid optimizer step count '%s'", name);
    snprintf(name, sizeof name, "%s.kind", prefix);
    step = mmgan_ckpt_get_meta(ck, name);
    if (!step || strcmp(step, mmgan__opt_names[o->spec.kind]))
        return mmgan__fail(o->ctx, MMGAN_ERR_FORMAT, "checkpoint: optimizer '%s' is %s, this one is %s", prefix,
                           step ? step : "of unknown kind", mmgan__opt_names[o->spec.kind]);
    /* Every moment is found and checked before any is copied: a failed
     * load leaves the optimizer as it was. */
    for (pass = 0; pass < 2; pass++)
        for (i = 0; i < o->n; i++) {
            const mmgan_tensor *tt = o->params[i]->value;
            const float *m, *v;
            snprintf(name, sizeof name, "%s.%s.m", prefix, o->params[i]->name);
            m = mmgan_ckpt_get(ck, name, tt->ndim, tt->shape);
            snprintf(name, sizeof name, "%s.%s.v", prefix, o->params[i]->name);
            v = m ? mmgan_ckpt_get(ck, name, tt->ndim, tt->shape) : NULL;
            if (!m || !v) return MMGAN_ERR_FORMAT;
            if (pass) {
                memcpy(o->m[i], m, tt->numel * sizeof(float));
                memcpy(o->v[i], v, tt->numel * sizeof(float));
            }
        }
    o->t = t;
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_batcher_save(const mmgan_batcher *b, mmgan_ckpt *ck, const char *prefix)
{
    char name[160], v[64];
    float *order;
    int i, n;
    mmgan_status st;
    if (!b || !ck || !prefix || !b->ds) return MMGAN_ERR_INVALID;
    n = b->ds->n;
    order = (float *)mmgan_alloc(ck->ctx, (size_t)n * sizeof(float));
    if (!order) return MMGAN_ERR_NOMEM;
    for (i = 0; i < n; i++) order[i] = (float)b->order[i];   /* exact: n < 2^24 for any IDX set we meet */
    snprintf(name, sizeof name, "%s.order", prefix);
    st = mmgan_ckpt_put(ck, name, 1, &n, order);
    mmgan_free(ck->ctx, order);
    snprintf(name, sizeof name, "%s.pos_epoch", prefix);
    snprintf(v, sizeof v, "%d %ld", b->pos, b->epoch);
    if (st == MMGAN_OK) st = mmgan_ckpt_put_meta(ck, name, v);
    return st;
}

MMGAN_DEF mmgan_status mmgan_batcher_load(mmgan_batcher *b, mmgan_ckpt *ck, const char *prefix)
{
    char name[160];
    const float *order;
    const char *m;
    unsigned char *seen;
    int i, n, pos;
    long epoch, lpos;
    if (!b || !ck || !prefix || !b->ds) return MMGAN_ERR_INVALID;
    n = b->ds->n;
    snprintf(name, sizeof name, "%s.order", prefix);
    order = mmgan_ckpt_get(ck, name, 1, &n);
    if (!order) return mmgan__fail(ck->ctx, MMGAN_ERR_FORMAT, "checkpoint: no batch order '%s' for %d samples "
                                   "(was it saved for another data set?)", name, n);
    snprintf(name, sizeof name, "%s.pos_epoch", prefix);
    m = mmgan_ckpt_get_meta(ck, name);
    if (!m || !(m = mmgan__dec(m, n, &lpos)) || *m++ != ' ' || !(m = mmgan__dec(m, LONG_MAX, &epoch)) || *m)
        return mmgan__fail(ck->ctx, MMGAN_ERR_FORMAT, "checkpoint: no valid batch position '%s'", name);
    pos = (int)lpos;
    seen = (unsigned char *)mmgan_alloc(ck->ctx, (size_t)n);
    if (!seen) return MMGAN_ERR_NOMEM;
    memset(seen, 0, (size_t)n);
    for (i = 0; i < n; i++) {
        float f = order[i];
        if (!(f >= 0.0f && f < (float)n) || f != (float)(int)f || seen[(int)f]) {
            mmgan_free(ck->ctx, seen);
            return mmgan__fail(ck->ctx, MMGAN_ERR_FORMAT, "checkpoint: the batch order is not a permutation of %d samples", n);
        }
        seen[(int)f] = 1;
    }
    mmgan_free(ck->ctx, seen);
    for (i = 0; i < n; i++) b->order[i] = (int)order[i];
    b->pos = pos;
    b->epoch = epoch;
    return MMGAN_OK;
}

MMGAN_DEF mmgan_status mmgan_rng_save(const mmgan_rng *rng, mmgan_ckpt *ck, const char *key)
{
    char v[96];
    uint32_t spare;
    if (!rng || !ck || !key) return MMGAN_ERR_INVALID;
    memcpy(&spare, &rng->spare, 4);
    /* Hex of every field: the exact bits, whatever the platform. */
    snprintf(v, sizeof v, "%08lx%08lx:%08lx%08lx:%08lx:%d",
             (unsigned long)(rng->state >> 32), (unsigned long)(rng->state & 0xffffffffu),
             (unsigned long)(rng->inc >> 32), (unsigned long)(rng->inc & 0xffffffffu), (unsigned long)spare,
             rng->has_spare ? 1 : 0);
    return mmgan_ckpt_put_meta(ck, key, v);
}

MMGAN_DEF mmgan_status mmgan_rng_load(mmgan_rng *rng, mmgan_ckpt *ck, const char *key)
{
    const char *v;
    uint64_t state, inc, e, hs;
    uint32_t spare;
    if (!rng || !ck || !key) return MMGAN_ERR_INVALID;
    v = mmgan_ckpt_get_meta(ck, key);
    /* An even increment is no PCG stream: an all-zero state would give
     * zeros for ever, and rejection sampling would never end. */
    if (!v || !(v = mmgan__hex(v, 16, &state)) || *v++ != ':' || !(v = mmgan__hex(v, 16, &inc)) || *v++ != ':' ||
        !(v = mmgan__hex(v, 8, &e)) || *v++ != ':' || !(v = mmgan__hex(v, 1, &hs)) || *v || hs > 1)
        return mmgan__fail(ck->ctx, MMGAN_ERR_FORMAT, "checkpoint: no valid random generator state '%s'", key);
    if (!(inc & 1))
        return mmgan__fail(ck->ctx, MMGAN_ERR_FORMAT, "checkpoint: random generator state '%s' has an even stream "
                           "increment (always odd when saved): the file is damaged", key);
    rng->state = state;
    rng->inc = inc;
    spare = (uint32_t)e;
    memcpy(&rng->spare, &spare, 4);
    rng->has_spare = (int)hs;
    return MMGAN_OK;
}

#ifndef MMGAN_NO_STDIO
MMGAN_DEF mmgan_status mmgan_ckpt_save(mmgan_ckpt *ck, const char *path)
{
    unsigned char *buf;
    size_t n;
    mmgan_status st;
    if (!ck) return MMGAN_ERR_INVALID;
    st = mmgan_ckpt_encode(ck, &buf, &n);
    if (st != MMGAN_OK) return st;
    st = mmgan_write_file(ck->ctx, path, buf, n);
    mmgan_free(ck->ctx, buf);
    return st;
}

MMGAN_DEF mmgan_ckpt *mmgan_ckpt_load(mmgan_ctx *ctx, const char *path)
{
    unsigned char *buf;
    size_t n;
    mmgan_ckpt *ck;
    if (mmgan_read_file(ctx, path, &buf, &n) != MMGAN_OK) return NULL;
    ck = mmgan_ckpt_decode(ctx, buf, n);
    mmgan_free(ctx, buf);
    if (!ck && ctx) mmgan__fail_in(ctx, MMGAN_ERR_FORMAT, path);
    return ck;
}
#endif

#ifdef MMGAN__GXX_QUIET
#  pragma GCC diagnostic pop
#endif
#endif /* MMGAN__IMPLEMENTED */
#endif /* MMGAN_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 The mmgan.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication for the benefit of the public at large and to
the detriment of our heirs and successors. We intend this dedication to be an
overt act of relinquishment in perpetuity of all present and future rights to
this software under copyright law.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
