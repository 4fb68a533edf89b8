// 16-bit weights for inference (--core-dtype f16|bf16): conversions and the batch-1 product of a
// linear layer whose W is stored in half precision and computed in f32. A decoder reads every
// weight once per token, so halving the bytes is what makes it faster; the arithmetic stays f32.
// f16 is IEEE binary16 (round to nearest even, subnormals kept, overflow to ±inf); bf16 is the
// top half of an f32 (round to nearest even, NaN kept NaN). The AVX2 path converts f16 with F16C
// (every AVX2 CPU has it; checked at run time) and bf16 with a shift, 8 weights at a time.
#include "internal.h"
#include <string.h>
#if MPO_HAVE_AVX2
#include <cpuid.h>
#endif

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static uint16_t f32_to_f16(float f) {
    const uint32_t x = f32_bits(f), sign = (x >> 16) & 0x8000u;
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          // rounds to ≥ 65520: inf
    if (ax < 0x38800000u) {                                            // below 2^-14: subnormal or zero
        if (ax < 0x33000000u) return (uint16_t)sign;                   // below 2^-25: rounds to 0
        const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        const int shift = 126 - (int)e;                                // 14..24
        uint32_t h = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((ax - 0x38000000u) >> 13);                           // rebias 127 → 15
    const uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;            // may carry into the exponent: right
    return (uint16_t)(sign | h);
}

static float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        if (m == 0) return bits_f32(sign);
        return (sign ? -1.0f : 1.0f) * (float)m * 5.9604644775390625e-8f;   // m · 2^-24, exact
    }
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

static uint16_t f32_to_bf16(float f) {
    const uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);   // quiet NaN
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static inline float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

void mpo_f32_to_half(const float *src, uint16_t *dst, size_t n, int bf16) {
    if (bf16) { for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]); }
    else { for (size_t i = 0; i < n; i++) dst[i] = f32_to_f16(src[i]); }
}

void mpo_half_to_f32(const uint16_t *src, float *dst, size_t n, int bf16) {
    if (bf16) { for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]); }
    else { for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(src[i]); }
}

static void gemv_half_portable(int n, int k, const uint16_t *W, int ldw, const float *x, float alpha, float beta,
                               float *y, int bf16) {
    for (int j = 0; j < n; j++) {
        const uint16_t *w = W + (long)j * ldw;
        float s = 0.0f;
        for (int i = 0; i < k; i++) s += (bf16 ? bf16_to_f32(w[i]) : f16_to_f32(w[i])) * x[i];
        y[j] = beta == 0.0f ? alpha * s : alpha * s + beta * y[j];
    }
}

#if MPO_HAVE_AVX2
static int have_f16c(void) {
    static int known = -1;
    if (known < 0) { unsigned a, b, c, d; known = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) ? 1 : 0; }
    return known;
}

#define MPO_AVX2_F16C __attribute__((target("avx2,fma,f16c")))

MPO_AVX2_F16C static inline __m256 load8(const uint16_t *p, int bf16) {
    const __m128i v = _mm_loadu_si128((const __m128i *)p);
    return bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16)) : _mm256_cvtph_ps(v);
}

MPO_AVX2_F16C static float dot_half_tail(const uint16_t *w, const float *x, int from, int k, int bf16) {
    float s = 0.0f;
    for (int i = from; i < k; i++) s += (bf16 ? bf16_to_f32(w[i]) : f16_to_f32(w[i])) * x[i];
    return s;
}

// As gemv_avx2 (gemv.c): four rows at a time, two accumulators each, and a software prefetch
// 2 KB ahead (1 KB, as for f32, streamed the 49,152 × 576 head at 13 GB/s on a Zen 2; 2 KB at 18).
MPO_AVX2_F16C static void gemv_half_avx2(int n, int k, const uint16_t *W, int ldw, const float *x, float alpha, float beta,
                                         float *y, int bf16) {
    const int k16 = k & ~15;
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const uint16_t *w0 = W + (long)j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
        for (int i = 0; i < k16; i += 16) {
            _mm_prefetch((const char *)(w0 + i + 1024), _MM_HINT_T0); _mm_prefetch((const char *)(w1 + i + 1024), _MM_HINT_T0);
            _mm_prefetch((const char *)(w2 + i + 1024), _MM_HINT_T0); _mm_prefetch((const char *)(w3 + i + 1024), _MM_HINT_T0);
            const __m256 xa = _mm256_loadu_ps(x + i), xb = _mm256_loadu_ps(x + i + 8);
            a0 = _mm256_fmadd_ps(load8(w0 + i, bf16), xa, a0); b0 = _mm256_fmadd_ps(load8(w0 + i + 8, bf16), xb, b0);
            a1 = _mm256_fmadd_ps(load8(w1 + i, bf16), xa, a1); b1 = _mm256_fmadd_ps(load8(w1 + i + 8, bf16), xb, b1);
            a2 = _mm256_fmadd_ps(load8(w2 + i, bf16), xa, a2); b2 = _mm256_fmadd_ps(load8(w2 + i + 8, bf16), xb, b2);
            a3 = _mm256_fmadd_ps(load8(w3 + i, bf16), xa, a3); b3 = _mm256_fmadd_ps(load8(w3 + i + 8, bf16), xb, b3);
        }
        float s[4] = {mpo_hsum8(_mm256_add_ps(a0, b0)) + dot_half_tail(w0, x, k16, k, bf16),
                      mpo_hsum8(_mm256_add_ps(a1, b1)) + dot_half_tail(w1, x, k16, k, bf16),
                      mpo_hsum8(_mm256_add_ps(a2, b2)) + dot_half_tail(w2, x, k16, k, bf16),
                      mpo_hsum8(_mm256_add_ps(a3, b3)) + dot_half_tail(w3, x, k16, k, bf16)};
        for (int r = 0; r < 4; r++) y[j + r] = beta == 0.0f ? alpha * s[r] : alpha * s[r] + beta * y[j + r];
    }
    for (; j < n; j++) {
        const uint16_t *w = W + (long)j * ldw;
        __m256 a = _mm256_setzero_ps(), b = a;
        for (int i = 0; i < k16; i += 16) {
            a = _mm256_fmadd_ps(load8(w + i, bf16), _mm256_loadu_ps(x + i), a);
            b = _mm256_fmadd_ps(load8(w + i + 8, bf16), _mm256_loadu_ps(x + i + 8), b);
        }
        const float s = mpo_hsum8(_mm256_add_ps(a, b)) + dot_half_tail(w, x, k16, k, bf16);
        y[j] = beta == 0.0f ? alpha * s : alpha * s + beta * y[j];
    }
}

MPO_AVX2_F16C static void half_to_f32_avx2(const uint16_t *src, float *dst, size_t n, int bf16) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src + i, bf16));
    for (; i < n; i++) dst[i] = bf16 ? bf16_to_f32(src[i]) : f16_to_f32(src[i]);
}
#endif

void mpo_gemv_half_rows(int n, int k, const uint16_t *W, int ldw, const float *x, float alpha, float beta, float *y, int bf16) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2() && have_f16c()) { gemv_half_avx2(n, k, W, ldw, x, alpha, beta, y, bf16); return; }
#endif
    gemv_half_portable(n, k, W, ldw, x, alpha, beta, y, bf16);
}

void mpo_half_rows_to_f32(const uint16_t *src, int rows, int cols, int lds, float *dst, int ldd, int bf16) {
    for (int r = 0; r < rows; r++) {
#if MPO_HAVE_AVX2
        if (mpo_use_avx2() && have_f16c()) { half_to_f32_avx2(src + (long)r * lds, dst + (long)r * ldd, (size_t)cols, bf16); continue; }
#endif
        mpo_half_to_f32(src + (long)r * lds, dst + (long)r * ldd, (size_t)cols, bf16);
    }
}
