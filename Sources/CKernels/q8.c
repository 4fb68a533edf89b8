// 8-bit weights for inference (--core-dtype q8): a row is cut into blocks of 32 values, each
// stored as 32 int8 and one f32 scale (scale = max|w|/127, q = round-to-even(w·127/max|w|); the
// scheme of llama.cpp's Q8_0). At a product the activations are rounded the same way, block by
// block, and each block's dot product is exact in int32 (AVX2: 32 weights per maddubs/madd pair);
// only the per-block sums are scaled and added in f32. So a decoder reads 1.125 bytes per weight
// and does integer work per weight instead of a conversion — on a Zen 2, 1.8× the f16 GEMV.
//
// Every output is summed in the same order at any batch size and thread count: eight lanes, lane u
// holding elements 4u…4u+3 of each block, then mpo_hsum8's order. The portable path emulates the
// lanes, so it gives the AVX2 path's results bit for bit.
#include "internal.h"
#include <string.h>

/// One block of q8: `n` ≤ 32 values (the rest of the 32 quants 0); returns the scale.
static float quantize_block(const float *x, int n, int8_t *q) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) { const float a = fabsf(x[i]); amax = a > amax || a != a ? a : amax; }
    const float inv = amax > 0.0f && amax <= 3.4e38f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < MPO_Q8_BLOCK; i++) {
        float v = i < n ? rintf(x[i] * inv) : 0.0f;
        v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
        q[i] = (int8_t)(v == v ? v : 0.0f);
    }
    return amax / 127.0f;   // inf or NaN when the block holds one: so will its products
}

#if MPO_HAVE_AVX2
/// quantize_block for a whole block of 32, the same bits: max|x| (NaN-sticky, as the scalar loop),
/// x·inv rounded to nearest even, clamped, packed to int8 in order.
MPO_AVX2 static float quantize_block_avx2(const float *x, int8_t *q) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], m = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        const __m256 a = _mm256_andnot_ps(sign, v[j]);
        m = _mm256_max_ps(m, a);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    if (_mm256_movemask_ps(nan) || !(amax <= 3.4e38f)) return quantize_block(x, MPO_Q8_BLOCK, q);   // NaN or inf: the scalar rule
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    const __m256 vi = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    __m256i n[4];
    for (int j = 0; j < 4; j++) {
        const __m256 r = _mm256_round_ps(_mm256_mul_ps(v[j], vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        n[j] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
    }
    // packs work per 128-bit lane: (0-3 8-11 4-7 12-15) … then a permute restores the order.
    const __m256i p16a = _mm256_packs_epi32(n[0], n[1]), p16b = _mm256_packs_epi32(n[2], n[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    _mm256_storeu_si256((__m256i *)q, _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    return amax / 127.0f;
}
#endif

void mpo_quantize_q8_rows(const float *src, int rows, int cols, int lds, int8_t *q, float *scales) {
    const int kp = mpo_q8_padded(cols), nb = kp / MPO_Q8_BLOCK;
#if MPO_HAVE_AVX2
    const int vec = mpo_use_avx2();
#else
    const int vec = 0;
#endif
    for (int r = 0; r < rows; r++) {
        const float *x = src + (long)r * lds;
        int8_t *qr = q + (long)r * kp;
        for (int b = 0; b < nb; b++) {
            const int lo = b * MPO_Q8_BLOCK, n = cols - lo < MPO_Q8_BLOCK ? cols - lo : MPO_Q8_BLOCK;
#if MPO_HAVE_AVX2
            if (vec && n == MPO_Q8_BLOCK) { scales[(long)r * nb + b] = quantize_block_avx2(x + lo, qr + lo); continue; }
#endif
            scales[(long)r * nb + b] = quantize_block(x + lo, n, qr + lo);
        }
    }
    (void)vec;
}

void mpo_dequantize_q8_rows(const int8_t *q, const float *scales, int rows, int cols, float *dst, int ldd) {
    const int kp = mpo_q8_padded(cols), nb = kp / MPO_Q8_BLOCK;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < cols; i++) dst[(long)r * ldd + i] = (float)q[(long)r * kp + i] * scales[(long)r * nb + i / MPO_Q8_BLOCK];
}

/// The lane sums of one block: lane u = Σ_{t<4} w[4u+t]·a[4u+t] (exact), as the AVX2 path has them.
static void block_lanes(const int8_t *w, const int8_t *a, float lanes[8]) {
    for (int u = 0; u < 8; u++) {
        int s = 0;
        for (int t = 0; t < 4; t++) s += (int)w[4 * u + t] * (int)a[4 * u + t];
        lanes[u] = (float)s;
    }
}

static float hsum8_order(const float l[8]) {   // mpo_hsum8's order
    const float s0 = l[0] + l[4], s1 = l[1] + l[5], s2 = l[2] + l[6], s3 = l[3] + l[7];
    return (s0 + s2) + (s1 + s3);
}

static void gemv_q8_portable(int n, int nb, const int8_t *W, const float *Ws, const int8_t *a, const float *as,
                             float alpha, float beta, float *y) {
    const int kp = nb * MPO_Q8_BLOCK;
    for (int j = 0; j < n; j++) {
        float acc[8] = {0}, lanes[8];
        for (int b = 0; b < nb; b++) {
            block_lanes(W + (long)j * kp + b * MPO_Q8_BLOCK, a + b * MPO_Q8_BLOCK, lanes);
            const float s = Ws[(long)j * nb + b] * as[b];
            for (int u = 0; u < 8; u++) acc[u] = fmaf(lanes[u], s, acc[u]);
        }
        const float v = hsum8_order(acc);
        y[j] = beta == 0.0f ? alpha * v : alpha * v + beta * y[j];
    }
}

#if MPO_HAVE_AVX2
/// One block's eight exact lane sums as floats: |a| (unsigned) times w·sign(a), pairs to int16
/// (≤ 2·127² < 2^15: no saturation), pairs again to int32.
MPO_AVX2 static inline __m256 block_dot(__m256i w, __m256i a, __m256i absA) {
    const __m256i p = _mm256_maddubs_epi16(absA, _mm256_sign_epi8(w, a));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

// Four rows at a time share the activation block; a prefetch 1 KB ahead on each row.
MPO_AVX2 static void gemv_q8_avx2(int n, int nb, const int8_t *W, const float *Ws, const int8_t *a, const float *as,
                                  float alpha, float beta, float *y) {
    const int kp = nb * MPO_Q8_BLOCK;
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const int8_t *w0 = W + (long)j * kp, *w1 = w0 + kp, *w2 = w1 + kp, *w3 = w2 + kp;
        const float *s0 = Ws + (long)j * nb, *s1 = s0 + nb, *s2 = s1 + nb, *s3 = s2 + nb;
        __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
        for (int b = 0; b < nb; b++) {
            const int i = b * MPO_Q8_BLOCK;
            _mm_prefetch((const char *)(w0 + i + 1024), _MM_HINT_T0); _mm_prefetch((const char *)(w1 + i + 1024), _MM_HINT_T0);
            _mm_prefetch((const char *)(w2 + i + 1024), _MM_HINT_T0); _mm_prefetch((const char *)(w3 + i + 1024), _MM_HINT_T0);
            const __m256i av = _mm256_loadu_si256((const __m256i *)(a + i)), abs = _mm256_sign_epi8(av, av);
            const float sa = as[b];
            c0 = _mm256_fmadd_ps(block_dot(_mm256_loadu_si256((const __m256i *)(w0 + i)), av, abs), _mm256_set1_ps(s0[b] * sa), c0);
            c1 = _mm256_fmadd_ps(block_dot(_mm256_loadu_si256((const __m256i *)(w1 + i)), av, abs), _mm256_set1_ps(s1[b] * sa), c1);
            c2 = _mm256_fmadd_ps(block_dot(_mm256_loadu_si256((const __m256i *)(w2 + i)), av, abs), _mm256_set1_ps(s2[b] * sa), c2);
            c3 = _mm256_fmadd_ps(block_dot(_mm256_loadu_si256((const __m256i *)(w3 + i)), av, abs), _mm256_set1_ps(s3[b] * sa), c3);
        }
        const float v[4] = {mpo_hsum8(c0), mpo_hsum8(c1), mpo_hsum8(c2), mpo_hsum8(c3)};
        for (int r = 0; r < 4; r++) y[j + r] = beta == 0.0f ? alpha * v[r] : alpha * v[r] + beta * y[j + r];
    }
    for (; j < n; j++) {
        const int8_t *w = W + (long)j * kp;
        __m256 c = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const int i = b * MPO_Q8_BLOCK;
            const __m256i av = _mm256_loadu_si256((const __m256i *)(a + i));
            c = _mm256_fmadd_ps(block_dot(_mm256_loadu_si256((const __m256i *)(w + i)), av, _mm256_sign_epi8(av, av)),
                                _mm256_set1_ps(Ws[(long)j * nb + b] * as[b]), c);
        }
        const float v = mpo_hsum8(c);
        y[j] = beta == 0.0f ? alpha * v : alpha * v + beta * y[j];
    }
}
#endif

/// Rows [0, n) of W against one quantised activation row.
static void gemv_q8(int n, int nb, const int8_t *W, const float *Ws, const int8_t *a, const float *as,
                    float alpha, float beta, float *y) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) { gemv_q8_avx2(n, nb, W, Ws, a, as, alpha, beta, y); return; }
#endif
    gemv_q8_portable(n, nb, W, Ws, a, as, alpha, beta, y);
}

void mpo_gemm_q8_rows(int m, int n, int cols, const int8_t *Wq, const float *Ws, const int8_t *Aq, const float *As,
                      float alpha, float beta, float *C, int ldc) {
    const int kp = mpo_q8_padded(cols), nb = kp / MPO_Q8_BLOCK;
    // W in blocks of 64 rows (≤ 100 KB at k = 1,536: they stay in L2 while every row of A passes).
    for (int lo = 0; lo < n; lo += 64) {
        const int rows = n - lo < 64 ? n - lo : 64;
        for (int i = 0; i < m; i++)
            gemv_q8(rows, nb, Wq + (long)lo * kp, Ws + (long)lo * nb, Aq + (long)i * kp, As + (long)i * nb,
                    alpha, beta, C + (long)i * ldc + lo);
    }
}
