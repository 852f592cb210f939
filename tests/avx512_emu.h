/* Test builds only: runs mmgan.h's AVX-512 kernels on an x86 CPU without
 * AVX-512, through SIMDe's portable versions of the intrinsics (Debian's
 * libsimde-dev).  Include before mmgan.h and build with gcc -mavx2 -mfma
 * (make test-avx512).  Numerics are the same as on the hardware: the
 * emulated operations are elementwise IEEE float and double arithmetic, and
 * fmadd is fused (fma()).  Speed is not representative.
 *
 * SIMDe 0.7.4 lacks a few of the intrinsics the header uses; they are
 * written out below from Intel's definitions, one lane at a time. */
#ifndef MMGAN_AVX512_EMU_H
#define MMGAN_AVX512_EMU_H

#if !defined(__GNUC__) || defined(__clang__) || defined(__AVX512F__)
#  error "avx512_emu.h: for gcc on an x86 CPU without -mavx512f"
#endif

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <math.h>

/* The lanes of a vector, copied out and back. */
typedef union { simde__m512 v; float f[16]; } mmgan_emu_ps;
typedef union { simde__m512d v; double d[8]; } mmgan_emu_pd;
typedef union { simde__m512i v; int i[16]; } mmgan_emu_epi32;
typedef union { simde__m256 v; float f[8]; } mmgan_emu_ps8;

static inline simde__m512 mmgan_emu_maskz_loadu_ps(simde__mmask16 k, const void *p)
{
    mmgan_emu_ps r;
    int i;
    for (i = 0; i < 16; i++) r.f[i] = (k >> i & 1) ? ((const float *)p)[i] : 0.0f;   /* masked lanes not read */
    return r.v;
}
static inline void mmgan_emu_mask_storeu_ps(void *p, simde__mmask16 k, simde__m512 a)
{
    mmgan_emu_ps x;
    int i;
    x.v = a;
    for (i = 0; i < 16; i++)
        if (k >> i & 1) ((float *)p)[i] = x.f[i];
}
static inline simde__m512d mmgan_emu_maskz_cvtps_pd(simde__mmask8 k, simde__m256 a)
{
    mmgan_emu_ps8 x;
    mmgan_emu_pd r;
    int i;
    x.v = a;
    for (i = 0; i < 8; i++) r.d[i] = (k >> i & 1) ? (double)x.f[i] : 0.0;
    return r.v;
}
static inline simde__m512d mmgan_emu_cvtps_pd(simde__m256 a) { return mmgan_emu_maskz_cvtps_pd(0xFF, a); }
static inline simde__m512d mmgan_emu_mask3_fmadd_pd(simde__m512d a, simde__m512d b, simde__m512d c, simde__mmask8 k)
{
    mmgan_emu_pd x, y, z;
    int i;
    x.v = a; y.v = b; z.v = c;
    for (i = 0; i < 8; i++)
        if (k >> i & 1) z.d[i] = fma(x.d[i], y.d[i], z.d[i]);
    return z.v;
}
static inline simde__m512i mmgan_emu_srai_epi32(simde__m512i a, int n)
{
    mmgan_emu_epi32 x;
    int i;
    x.v = a;
    /* an arithmetic shift: gcc shifts signed ints arithmetically */
    for (i = 0; i < 16; i++) x.i[i] = n > 31 ? (x.i[i] < 0 ? -1 : 0) : x.i[i] >> n;
    return x.v;
}
static inline simde__m512d mmgan_emu_mask_permute_pd(simde__m512d src, simde__mmask8 k, simde__m512d a, int imm)
{
    mmgan_emu_pd s, x;
    int i;
    s.v = src; x.v = a;
    for (i = 0; i < 8; i++)
        if (k >> i & 1) s.d[i] = x.d[(i & ~1) + (imm >> i & 1)];
    return s.v;
}
static inline simde__m512 mmgan_emu_i32gather_ps(simde__m512i idx, const void *base, int scale)
{
    mmgan_emu_epi32 x;
    mmgan_emu_ps r;
    int i;
    x.v = idx;
    for (i = 0; i < 16; i++) r.f[i] = *(const float *)((const char *)base + (ptrdiff_t)x.i[i] * scale);
    return r.v;
}

/* (a later SIMDe's aliases, or gcc's macro forms of the immediate ones at
 * -O0, give way to these) */
#undef _mm512_maskz_loadu_ps
#undef _mm512_mask_storeu_ps
#undef _mm512_cvtps_pd
#undef _mm512_maskz_cvtps_pd
#undef _mm512_mask3_fmadd_pd
#undef _mm512_srai_epi32
#undef _mm512_mask_shuffle_f64x2
#undef _mm512_mask_permute_pd
#undef _mm512_i32gather_ps
#define _mm512_maskz_loadu_ps(k, p) mmgan_emu_maskz_loadu_ps((k), (p))
#define _mm512_mask_storeu_ps(p, k, a) mmgan_emu_mask_storeu_ps((p), (k), (a))
#define _mm512_cvtps_pd(a) mmgan_emu_cvtps_pd(a)
#define _mm512_maskz_cvtps_pd(k, a) mmgan_emu_maskz_cvtps_pd((k), (a))
#define _mm512_mask3_fmadd_pd(a, b, c, k) mmgan_emu_mask3_fmadd_pd((a), (b), (c), (k))
#define _mm512_srai_epi32(a, n) mmgan_emu_srai_epi32((a), (n))
#define _mm512_mask_shuffle_f64x2(s, k, a, b, imm) simde_mm512_mask_shuffle_f64x2((s), (k), (a), (b), (imm))
#define _mm512_mask_permute_pd(s, k, a, imm) mmgan_emu_mask_permute_pd((s), (k), (a), (imm))
#define _mm512_i32gather_ps(idx, base, scale) mmgan_emu_i32gather_ps((idx), (base), (scale))

/* mmgan.h picks its kernel set from the compiler's target macros. */
#define __AVX512F__ 1

#endif
