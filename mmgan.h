/* mmgan.h - GAN training in one portable C header.               v0.1.0
 *
 * WHAT IT IS
 *   A float32 tensor library with cache-blocked SIMD kernels (AVX-512, AVX2+FMA,
 *   SSE2, NEON on aarch64 and ARMv7, portable C), written to train generative
 *   adversarial networks in plain C99 with no dependency beyond libc and libm.
 *   OpenMP is optional; results are bit-identical whatever the thread count.
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
 *   MMGAN_GEMM_MT_MIN      multiply-adds below which a GEMM stays on one thread
 *                          (default 2^22, measured on a 2-core Zen 5).
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
 *     1.1 Version and packaging        1.4 Tensors
 *     1.2 Status codes and errors      1.5 Random numbers
 *     1.3 Contexts and memory          1.6 GEMM and vector kernels
 *   Part 2, the implementation (under MMGAN_IMPLEMENTATION):
 *     2.1 Platform and SIMD layer      2.4 Tensors and random numbers
 *     2.2 Memory                       2.5 GEMM
 *     2.3 Errors and contexts          2.6 Elementwise vector kernels
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
/* Free a context (NULL is ignored).  Tensors made from it must be freed first. */
MMGAN_DEF void mmgan_ctx_free(mmgan_ctx *ctx);
/* Ask for n >= 1 threads; capped at what the build offers (1 without OpenMP). */
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

/* Seed a generator; different streams with one seed are independent sequences. */
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
/* Random permutation of 0..n-1 into idx (Fisher-Yates). */
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
#else
#  define MMGAN__OMP_BARRIER() ((void)0)
#endif

#ifdef __cplusplus
#  define MMGAN__RESTRICT
#else
#  define MMGAN__RESTRICT restrict
#endif
#define MMGAN__INLINE static inline

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
    ctx->threads = n;
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
    size_t numel;
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
    size_t numel;
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
    uint64_t old = rng->state;
    uint32_t xs, rot;
    rng->state = old * 6364136223846793005ULL + rng->inc;
    xs = (uint32_t)(((old >> 18) ^ old) >> 27);
    rot = (uint32_t)(old >> 59);
    return (xs >> rot) | (xs << ((32u - rot) & 31u));
}

MMGAN_DEF void mmgan_rng_seed(mmgan_rng *rng, uint64_t seed, uint64_t stream)
{
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
    if (n <= 1) return 0;
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
    for (i = 0; i < n; i++) x[i] = lo + mmgan__fmul(w, mmgan_rng_uniform(rng));
}

MMGAN_DEF void mmgan_rng_fill_normal(mmgan_rng *rng, float *x, size_t n, float mean, float std)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = mean + mmgan__fmul(std, mmgan_rng_normal(rng));
}

MMGAN_DEF void mmgan_rng_permutation(mmgan_rng *rng, int *idx, int n)
{
    int i;
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
 * always works on a full tile; partial tiles go through a stack tile.
 *
 * Micro-kernel contract: c[i*ldc + j] = alpha * sum_p a[p*MR + i] * b[p*bs + j]
 *                                       + beta * c[i*ldc + j]   (i < MR, j < NR)
 * and with beta == 0 the old C is not read.  bs is NR for a packed B panel;
 * small-m products pass B itself (bs = ldb) and skip packing it. */
typedef void (*mmgan__ukr_fn)(int k, const float *a, const float *b, ptrdiff_t bs,
                              float *c, ptrdiff_t ldc, float alpha, float beta);

typedef struct mmgan__gemm_kernel {
    const char *name;
    int mr, nr;        /* register tile */
    int kc, mc, nc;    /* cache blocks: kc*nr floats in L1, mc*kc in L2, kc*nc in L3 */
    mmgan__ukr_fn ukr;
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
 * FMA and m = 64 in whole tiles made it 3-50% faster on the GAN shapes. */
static void mmgan__ukr_avx512(int k, const float *a, const float *b, ptrdiff_t bs, float *c,
                              ptrdiff_t ldc, float alpha, float beta)
{
    int p;
    __m512 va, vb;
#define MMGAN__D(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(), c##i##2 = _mm512_setzero_ps(); \
    _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0); _mm_prefetch((const char *)(c + i * ldc + 47), _MM_HINT_T0);
    MMGAN__ROWS8(MMGAN__D)
#undef MMGAN__D
    for (p = 0; p < k; p++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32);
#define MMGAN__F(i) { __m512 ai = _mm512_set1_ps(a[i]); \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2); }
        MMGAN__ROWS8(MMGAN__F)
#undef MMGAN__F
        a += 8;
        b += bs;
    }
    va = _mm512_set1_ps(alpha);
    vb = _mm512_set1_ps(beta);
    if (beta == 0.0f) {
#define MMGAN__S(i) _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, c##i##0)); \
        _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, c##i##1)); _mm512_storeu_ps(c + i * ldc + 32, _mm512_mul_ps(va, c##i##2));
        MMGAN__ROWS8(MMGAN__S)
#undef MMGAN__S
    } else {
#define MMGAN__S(i) \
        _mm512_storeu_ps(c + i * ldc, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc), _mm512_mul_ps(va, c##i##0))); \
        _mm512_storeu_ps(c + i * ldc + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc + 16), _mm512_mul_ps(va, c##i##1))); \
        _mm512_storeu_ps(c + i * ldc + 32, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc + 32), _mm512_mul_ps(va, c##i##2)));
        MMGAN__ROWS8(MMGAN__S)
#undef MMGAN__S
    }
}
#endif

#if defined(MMGAN__AVX2)
/* 6 x 16: 12 accumulators, 2 B vectors, 1 broadcast of the 16 ymm registers. */
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
 * is always last (tests run both).  Blocks: kc*nr*4 bytes within L1, mc*kc*4
 * within half of L2, kc*nc*4 within a share of L3. */
static const mmgan__gemm_kernel mmgan__gemm_kernels[] = {
#if defined(MMGAN__AVX512)
    {"avx512", 8, 48, 256, 8 * 32, 48 * 85, mmgan__ukr_avx512},
#elif defined(MMGAN__AVX2)
    {"avx2", 6, 16, 256, 6 * 24, 4096, mmgan__ukr_avx2},
#elif defined(MMGAN__SSE2)
    {"sse2", 6, 8, 256, 6 * 24, 4096, mmgan__ukr_sse2},
#elif defined(MMGAN__NEON64)
    {"neon64", 8, 12, 256, 8 * 16, 12 * 128, mmgan__ukr_neon64},
#elif defined(MMGAN__NEON32)
    {"neon32", 4, 8, 128, 4 * 32, 8 * 128, mmgan__ukr_neon32},
#endif
    {"scalar", 4, 4, 256, 4 * 32, 4 * 256, mmgan__ukr_ref}
};
#define MMGAN__NKERNELS ((int)(sizeof mmgan__gemm_kernels / sizeof mmgan__gemm_kernels[0]))

static size_t mmgan__gemm_ws_floats(void)
{
    size_t most = 0;
    int i;
    for (i = 0; i < MMGAN__NKERNELS; i++) {
        const mmgan__gemm_kernel *kr = &mmgan__gemm_kernels[i];
        size_t need = (size_t)kr->mc * kr->kc + (size_t)kr->kc * kr->nc + 2 * MMGAN__ALIGN;
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

typedef struct mmgan__gemm_args {
    const mmgan__gemm_kernel *kr;
    int ta, tb, m, n, k;
    float alpha, beta;
    const float *a, *b;
    int lda, ldb, ldc;
    int direct_b;     /* micro-kernels read full-width B panels in place */
    float *c, *ap, *bp;
} mmgan__gemm_args;

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
             * stores would cost a cache line each. */
            const float *src = g->a + (size_t)(i0 + r0) * g->lda + p0;
            const size_t lda = (size_t)g->lda;
            if (rows == mr) {
                for (p = 0; p < kc; p++, dst += mr)
                    for (i = 0; i < mr; i++) dst[i] = src[i * lda + p];
            } else {
                for (p = 0; p < kc; p++, dst += mr) {
                    for (i = 0; i < rows; i++) dst[i] = src[i * lda + p];
                    for (; i < mr; i++) dst[i] = 0.0f;
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

/* Panels [q0, q1) of the NR-wide packing of op(B)[p0:p0+kc, j0:j0+nc]. */
static void mmgan__pack_b(const mmgan__gemm_args *g, int p0, int kc, int j0, int nc, int q0, int q1)
{
    const int nr = g->kr->nr;
    int q, j, p;
    for (q = q0; q < q1; q++) {
        float *dst = g->bp + (size_t)q * nr * kc;
        int c0 = q * nr, cols = MMGAN__MIN(nr, nc - c0);
        if (!g->tb) {
            /* Vector copies: a memcpy call per short row costs more than the
             * copy, and small-m products repack B often. */
            const float *src = g->b + (size_t)p0 * g->ldb + j0 + c0;
            if (cols == nr && nr % MMGAN__VN == 0) {
                for (p = 0; p < kc; p++, src += g->ldb, dst += nr)
                    for (j = 0; j < nr; j += MMGAN__VN) MMGAN__VSTORE(dst + j, MMGAN__VLOAD(src + j));
            } else {
                for (p = 0; p < kc; p++, src += g->ldb, dst += nr) {
                    for (j = 0; j < cols; j++) dst[j] = src[j];
                    for (; j < nr; j++) dst[j] = 0.0f;
                }
            }
        } else {
            for (j = 0; j < cols; j++) {
                const float *src = g->b + (size_t)(j0 + c0 + j) * g->ldb + p0;
                for (p = 0; p < kc; p++) dst[p * nr + j] = src[p];
            }
            for (; j < nr; j++)
                for (p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
        }
    }
}

/* One thread's share of the whole product.  Every tile of C is computed by
 * one micro-kernel call per KC slice, in slice order, whichever thread makes
 * the call: that is why results do not depend on the thread count. */
static void mmgan__gemm_thread(const mmgan__gemm_args *g, int tid, int nt)
{
    const mmgan__gemm_kernel *kr = g->kr;
    const int mr = kr->mr, nr = kr->nr;
    int jc, pc, ic, q0, q1, t;
    float tile[MMGAN__MAX_TILE];
    for (jc = 0; jc < g->n; jc += kr->nc) {
        int nc = MMGAN__MIN(kr->nc, g->n - jc), npn = (nc + nr - 1) / nr;
        for (pc = 0; pc < g->k; pc += kr->kc) {
            int kc = MMGAN__MIN(kr->kc, g->k - pc);
            float beta = pc == 0 ? g->beta : 1.0f;
            if (g->direct_b) { /* only a partial last panel needs packing */
                if (nc % nr && tid == 0) mmgan__pack_b(g, pc, kc, jc, nc, npn - 1, npn);
            } else {
                mmgan__range(npn, tid, nt, &q0, &q1);
                mmgan__pack_b(g, pc, kc, jc, nc, q0, q1);
            }
            for (ic = 0; ic < g->m; ic += kr->mc) {
                int mc = MMGAN__MIN(kr->mc, g->m - ic), npm = (mc + mr - 1) / mr;
                mmgan__range(npm, tid, nt, &q0, &q1);
                mmgan__pack_a(g, ic, mc, pc, kc, q0, q1);
                MMGAN__OMP_BARRIER();
                /* Tiles in column-panel-major order: consecutive tiles of a
                 * thread share the B panel that sits in L1. */
                mmgan__range(npm * npn, tid, nt, &q0, &q1);
                for (t = q0; t < q1; t++) {
                    int jr = t / npm, ir = t % npm;
                    int rows = MMGAN__MIN(mr, mc - ir * mr), cols = MMGAN__MIN(nr, nc - jr * nr);
                    const float *ap = g->ap + (size_t)ir * mr * kc, *bp = g->bp + (size_t)jr * nr * kc;
                    float *cp = g->c + (size_t)(ic + ir * mr) * g->ldc + jc + jr * nr;
                    ptrdiff_t bs = nr;
                    if (g->direct_b && cols == nr) {
                        bp = g->b + (size_t)pc * g->ldb + jc + jr * nr;
                        bs = g->ldb;
                    }
                    if (rows == mr && cols == nr) {
                        kr->ukr(kc, ap, bp, bs, cp, g->ldc, g->alpha, beta);
                    } else {
                        int i, j;
                        kr->ukr(kc, ap, bp, bs, tile, nr, g->alpha, 0.0f);
                        for (i = 0; i < rows; i++)
                            for (j = 0; j < cols; j++)
                                cp[(size_t)i * g->ldc + j] = beta == 0.0f ? tile[i * nr + j]
                                                             : tile[i * nr + j] + beta * cp[(size_t)i * g->ldc + j];
                    }
                }
                MMGAN__OMP_BARRIER();
            }
        }
    }
}

/* Up to this many rows of C, B is read in place rather than packed. */
#define MMGAN__GEMM_DIRECT_B_M 128

/* Below this many multiply-adds a second thread costs more than it saves. */
#ifndef MMGAN_GEMM_MT_MIN
#define MMGAN_GEMM_MT_MIN (1 << 22)
#endif

static mmgan_status mmgan__gemm_run(mmgan_ctx *ctx, const mmgan__gemm_kernel *kr, int ta, int tb,
                                    int m, int n, int k, float alpha, const float *a, int lda,
                                    const float *b, int ldb, float beta, float *c, int ldc)
{
    mmgan__gemm_args g;
    int nt;
    if (!ctx) return MMGAN_ERR_INVALID;
    if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1))
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: trans_a=%d trans_b=%d, each must be 0 or 1", ta, tb);
    if (m < 0 || n < 0 || k < 0)
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: negative size m=%d n=%d k=%d", m, n, k);
    if (ldc < MMGAN__MAX(1, n))
        return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: ldc=%d is less than n=%d", ldc, n);
    if (lda < MMGAN__MAX(1, ta ? m : k))
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
    if (!a || !b) return mmgan__fail(ctx, MMGAN_ERR_INVALID, "gemm: %s is NULL", a ? "B" : "A");

    g.kr = kr;
    g.ta = ta; g.tb = tb; g.m = m; g.n = n; g.k = k;
    g.alpha = alpha; g.beta = beta;
    g.a = a; g.b = b; g.c = c;
    g.lda = lda; g.ldb = ldb; g.ldc = ldc;
    /* Packing B costs a copy of B per call, paid back by reuse over the rows
     * of A; with few rows it is not, and untransposed rows of B are already
     * contiguous.  A power-of-two stride would alias in the L1 sets; with
     * k < 64 the copy is cheap and packing measured faster (thresholds measured
     * with the earlier 14x32 AVX-512 kernel). */
    g.direct_b = !tb && m <= MMGAN__GEMM_DIRECT_B_M && k >= 64 && (ldb & (ldb - 1)) != 0;
    g.ap = ctx->gemm_ws;
    g.bp = ctx->gemm_ws + (((size_t)kr->mc * kr->kc + 15) & ~(size_t)15);
    MMGAN_ASSERT((size_t)(g.bp - g.ap) + (size_t)kr->kc * kr->nc <= ctx->gemm_ws_floats);

    nt = ctx->threads;
    if ((double)m * n * k < (double)MMGAN_GEMM_MT_MIN) nt = 1;
#ifdef MMGAN__OMP
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

MMGAN_DEF mmgan_status mmgan_gemm(mmgan_ctx *ctx, int trans_a, int trans_b, int m, int n, int k,
                                  float alpha, const float *a, int lda, const float *b, int ldb,
                                  float beta, float *c, int ldc)
{
    return mmgan__gemm_run(ctx, &mmgan__gemm_kernels[0], trans_a, trans_b, m, n, k,
                           alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ===================================================================== */
/* 2.6 Elementwise vector kernels                                         */
/* ===================================================================== */
/* Written in the vector vocabulary of 2.1.  A tail shorter than MMGAN__VN
 * goes through a zero-padded vector, so every element gets the same
 * arithmetic wherever it sits in the array. */
/* Apply expression F(v) to x[0..n) into y; one input. */
#define MMGAN__MAP1(n, x, y, F) do { \
    size_t i_ = 0, j_; \
    for (; i_ + MMGAN__VN <= (n); i_ += MMGAN__VN) { \
        mmgan__v v = MMGAN__VLOAD((x) + i_); MMGAN__VSTORE((y) + i_, F); } \
    if (i_ < (n)) { \
        float tx_[MMGAN__VN], ty_[MMGAN__VN]; mmgan__v v; \
        for (j_ = 0; j_ < MMGAN__VN; j_++) tx_[j_] = i_ + j_ < (n) ? (x)[i_ + j_] : 0.0f; \
        v = MMGAN__VLOAD(tx_); MMGAN__VSTORE(ty_, F); \
        for (j_ = 0; i_ + j_ < (n); j_++) (y)[i_ + j_] = ty_[j_]; } \
} while (0)

/* Apply expression F(u, w) to x[0..n), y[0..n) into z; two inputs. */
#define MMGAN__MAP2(n, x, y, z, F) do { \
    size_t i_ = 0, j_; \
    for (; i_ + MMGAN__VN <= (n); i_ += MMGAN__VN) { \
        mmgan__v u = MMGAN__VLOAD((x) + i_), w = MMGAN__VLOAD((y) + i_); MMGAN__VSTORE((z) + i_, F); } \
    if (i_ < (n)) { \
        float tx_[MMGAN__VN], ty_[MMGAN__VN], tz_[MMGAN__VN]; mmgan__v u, w; \
        for (j_ = 0; j_ < MMGAN__VN; j_++) { \
            tx_[j_] = i_ + j_ < (n) ? (x)[i_ + j_] : 0.0f; ty_[j_] = i_ + j_ < (n) ? (y)[i_ + j_] : 0.0f; } \
        u = MMGAN__VLOAD(tx_); w = MMGAN__VLOAD(ty_); MMGAN__VSTORE(tz_, F); \
        for (j_ = 0; i_ + j_ < (n); j_++) (z)[i_ + j_] = tz_[j_]; } \
} while (0)

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
 * platform, FMA or not. */
MMGAN_DEF double mmgan_vec_sum(size_t n, const float *x)
{
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) { s[0] += x[i]; s[1] += x[i + 1]; s[2] += x[i + 2]; s[3] += x[i + 3]; }
    for (; i < n; i++) s[0] += x[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

MMGAN_DEF double mmgan_vec_dot(size_t n, const float *x, const float *y)
{
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s[0] += (double)x[i] * y[i]; s[1] += (double)x[i + 1] * y[i + 1];
        s[2] += (double)x[i + 2] * y[i + 2]; s[3] += (double)x[i + 3] * y[i + 3];
    }
    for (; i < n; i++) s[0] += (double)x[i] * y[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

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
