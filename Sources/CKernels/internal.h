// Internal to CKernels: the target attribute of the AVX2 paths, the dispatch macro, and the
// exp polynomial shared by every path.
#ifndef MPO_CKERNELS_INTERNAL_H
#define MPO_CKERNELS_INTERNAL_H

#include "ckernels.h"
#include <math.h>

// Scalar code rounds every operation (no silent a·b + c fusion, like the OpenCL kernels'
// FP_CONTRACT OFF): exact cancellations stay exact, e.g. LayerNorm's w·dy − mean(w·dy) at C = 1.
// The AVX2 paths fuse only where they call an FMA intrinsic.
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) || defined(__i386__)
#define MPO_HAVE_AVX2 1
#include <immintrin.h>
/// Functions compiled for AVX2 + FMA (called only when the CPU has them).
#define MPO_AVX2 __attribute__((target("avx2,fma")))
#else
#define MPO_HAVE_AVX2 0
#endif

/// True when the AVX2 path should run.
static inline int mpo_use_avx2(void) {
#if MPO_HAVE_AVX2
    return mpo_simd_active() == MPO_SIMD_AVX2;
#else
    return 0;
#endif
}

// Cephes expf: range reduction by ln 2 (n = round(x·log2 e) by the 1.5·2^23 trick), a
// degree-6 polynomial on r ∈ [−ln2/2, ln2/2], 2^n through the exponent bits. ≤ 1 ulp on
// [−87, 88]; below −87.34 the result is 0, above 88.72 +inf, NaN stays NaN.
#define MPO_EXP_LO (-87.33654f)
#define MPO_EXP_HI (88.72283f)
#define MPO_EXP_MAGIC 12582912.0f
#define MPO_EXP_C1 0.693359375f
#define MPO_EXP_C2 (-2.12194440e-4f)
#define MPO_EXP_P0 1.9875691500e-4f
#define MPO_EXP_P1 1.3981999507e-3f
#define MPO_EXP_P2 8.3334519073e-3f
#define MPO_EXP_P3 4.1665795894e-2f
#define MPO_EXP_P4 1.6666665459e-1f
#define MPO_EXP_P5 5.0000001201e-1f

/// The scalar form of the polynomial (the portable path's exp).
static inline float mpo_expf(float x) {
    if (x != x) return x;
    if (x < MPO_EXP_LO) return 0.0f;
    if (x > MPO_EXP_HI) return INFINITY;
    float t = x * 1.44269504088896341f + MPO_EXP_MAGIC;
    float n = t - MPO_EXP_MAGIC;
    float r = x - n * MPO_EXP_C1;
    r = r - n * MPO_EXP_C2;
    float r2 = r * r;
    float p = MPO_EXP_P0;
    p = p * r + MPO_EXP_P1;
    p = p * r + MPO_EXP_P2;
    p = p * r + MPO_EXP_P3;
    p = p * r + MPO_EXP_P4;
    p = p * r + MPO_EXP_P5;
    float y = p * r2 + r + 1.0f;
    union { float f; int32_t i; } tb = { t }, sc;
    sc.i = (tb.i - 0x4B400000 + 127) << 23;
    return y * sc.f;
}

#if MPO_HAVE_AVX2
/// exp of 8 floats: the same reduction and polynomial, evaluated by Estrin's scheme (a shorter
/// dependency chain than Horner's, which left the FMA units waiting on latency). No clamp is
/// needed: lanes out of range are replaced at the end (0 below, +inf above), and a NaN input
/// stays NaN through the arithmetic.
MPO_AVX2 static inline __m256 mpo_exp8(__m256 x) {
    const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(MPO_EXP_LO), _CMP_LT_OQ);
    const __m256 over = _mm256_cmp_ps(x, _mm256_set1_ps(MPO_EXP_HI), _CMP_GT_OQ);
    const __m256 magic = _mm256_set1_ps(MPO_EXP_MAGIC);
    const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(MPO_EXP_C1), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(MPO_EXP_C2), r);
    const __m256 r2 = _mm256_mul_ps(r, r), r4 = _mm256_mul_ps(r2, r2);
    // P(r) = P0·r⁵ + P1·r⁴ + … + P5 = (P4·r + P5) + r²·(P2·r + P3) + r⁴·(P0·r + P1)
    const __m256 q01 = _mm256_fmadd_ps(_mm256_set1_ps(MPO_EXP_P0), r, _mm256_set1_ps(MPO_EXP_P1));
    const __m256 q23 = _mm256_fmadd_ps(_mm256_set1_ps(MPO_EXP_P2), r, _mm256_set1_ps(MPO_EXP_P3));
    const __m256 q45 = _mm256_fmadd_ps(_mm256_set1_ps(MPO_EXP_P4), r, _mm256_set1_ps(MPO_EXP_P5));
    const __m256 p = _mm256_fmadd_ps(r4, q01, _mm256_fmadd_ps(r2, q23, q45));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000 - 127)), 23);
    __m256 e = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
    e = _mm256_andnot_ps(under, e);
    return _mm256_blendv_ps(e, _mm256_set1_ps(INFINITY), over);
}

/// Lanes [0, n) set, n in 0…8.
MPO_AVX2 static inline __m256i mpo_mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Horizontal sum of 8 floats in a fixed order.
MPO_AVX2 static inline float mpo_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Horizontal sum of 4 doubles in a fixed order.
MPO_AVX2 static inline double mpo_hsum4d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
#endif

#endif
