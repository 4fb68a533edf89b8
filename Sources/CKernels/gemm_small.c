// mpo_gemm_small: C = alpha·A·B + beta·C for products that live in cache (attention tiles, MPO
// cores at small row counts), where a BLAS call costs more in setup and packing than the work.
//
// A (M×K) is read through two strides, A(i, k) = A[i·rsA + k·csA], so Aᵀ needs no copy; B (K×N)
// is row-major. The AVX2 path computes register blocks of 4 rows × 16 columns (8 accumulators,
// one broadcast of A and two loads of B per k), with masked loads/stores on the column edge and
// blocks of 3, 2 or 1 rows on the row edge; every C element is one FMA chain over k in order.
#include "internal.h"

// MARK: - Portable

static void gemm_portable(int M, int N, int K, float alpha, const float *A, int rsA, int csA,
                          const float *B, int ldb, float beta, float *C, int ldc) {
    enum { JB = 64 };
    float acc[JB];
    for (int i = 0; i < M; i++) {
        for (int j0 = 0; j0 < N; j0 += JB) {
            const int nj = N - j0 < JB ? N - j0 : JB;
            for (int j = 0; j < nj; j++) acc[j] = 0.0f;
            for (int k = 0; k < K; k++) {
                const float a = A[(long)i * rsA + (long)k * csA];
                const float *b = B + (long)k * ldb + j0;
                for (int j = 0; j < nj; j++) acc[j] += a * b[j];
            }
            float *c = C + (long)i * ldc + j0;
            for (int j = 0; j < nj; j++) c[j] = beta == 0.0f ? alpha * acc[j] : alpha * acc[j] + beta * c[j];
        }
    }
}

// MARK: - AVX2

#if MPO_HAVE_AVX2
/// One block of `mr` (1…4) rows × 16 columns (the first `nr` of them, 1…16) of C.
MPO_AVX2 __attribute__((always_inline)) static inline void
block16(const int mr, int nr, int K, float alpha, const float *A, int rsA, int csA,
        const float *B, int ldb, float beta, float *C, int ldc) {
    __m256 c0[4], c1[4];
    for (int r = 0; r < 4; r++) { c0[r] = _mm256_setzero_ps(); c1[r] = _mm256_setzero_ps(); }
    const __m256i m0 = mpo_mask8(nr < 8 ? nr : 8), m1 = mpo_mask8(nr > 8 ? nr - 8 : 0);
    const int full = nr == 16;
    for (int k = 0; k < K; k++) {
        const float *b = B + (long)k * ldb;
        __m256 b0, b1;
        if (full) {
            b0 = _mm256_loadu_ps(b);
            b1 = _mm256_loadu_ps(b + 8);
        } else {
            b0 = _mm256_maskload_ps(b, m0);
            b1 = _mm256_maskload_ps(b + 8, m1);
        }
        const float *a = A + (long)k * csA;
        for (int r = 0; r < mr; r++) {
            const __m256 x = _mm256_broadcast_ss(a + (long)r * rsA);
            c0[r] = _mm256_fmadd_ps(x, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(x, b1, c1[r]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int r = 0; r < mr; r++) {
        float *c = C + (long)r * ldc;
        __m256 v0 = _mm256_mul_ps(va, c0[r]), v1 = _mm256_mul_ps(va, c1[r]);
        if (full) {
            if (beta != 0.0f) {
                v0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), v0);
                v1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), v1);
            }
            _mm256_storeu_ps(c, v0);
            _mm256_storeu_ps(c + 8, v1);
        } else {
            if (beta != 0.0f) {
                v0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c, m0), v0);
                v1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + 8, m1), v1);
            }
            _mm256_maskstore_ps(c, m0, v0);
            _mm256_maskstore_ps(c + 8, m1, v1);
        }
    }
}

MPO_AVX2 static void gemm_avx2(int M, int N, int K, float alpha, const float *A, int rsA, int csA,
                               const float *B, int ldb, float beta, float *C, int ldc) {
    for (int j0 = 0; j0 < N; j0 += 16) {
        const int nr = N - j0 < 16 ? N - j0 : 16;
        int i0 = 0;
        for (; i0 + 4 <= M; i0 += 4)
            block16(4, nr, K, alpha, A + (long)i0 * rsA, rsA, csA, B + j0, ldb, beta, C + (long)i0 * ldc + j0, ldc);
        const float *a = A + (long)i0 * rsA;
        float *c = C + (long)i0 * ldc + j0;
        switch (M - i0) {
        case 3: block16(3, nr, K, alpha, a, rsA, csA, B + j0, ldb, beta, c, ldc); break;
        case 2: block16(2, nr, K, alpha, a, rsA, csA, B + j0, ldb, beta, c, ldc); break;
        case 1: block16(1, nr, K, alpha, a, rsA, csA, B + j0, ldb, beta, c, ldc); break;
        default: break;
        }
    }
}
#endif

void mpo_gemm_small(int M, int N, int K, float alpha, const float *A, int rsA, int csA,
                    const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) { gemm_avx2(M, N, K, alpha, A, rsA, csA, B, ldb, beta, C, ldc); return; }
#endif
    gemm_portable(M, N, K, alpha, A, rsA, csA, B, ldb, beta, C, ldc);
}

// MARK: - Dot products against rows

static void dot_rows_portable(const float *x, const float *rows, int ld, int n, int len, float alpha, float *out) {
    for (int j = 0; j < n; j++) {
        const float *r = rows + (long)j * ld;
        float s = 0.0f;
        for (int d = 0; d < len; d++) s += x[d] * r[d];
        out[j] = alpha * s;
    }
}

#if MPO_HAVE_AVX2
MPO_AVX2 static void dot_rows_avx2(const float *x, const float *rows, int ld, int n, int len, float alpha, float *out) {
    const int L8 = len & ~7;
    int j = 0;
    for (; j + 4 <= n; j += 4) {   // four rows at a time: independent FMA chains
        const float *r0 = rows + (long)j * ld, *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int d = 0; d < L8; d += 8) {
            const __m256 xv = _mm256_loadu_ps(x + d);
            a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r0 + d), a0);
            a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r1 + d), a1);
            a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r2 + d), a2);
            a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r3 + d), a3);
        }
        float s[4] = { mpo_hsum8(a0), mpo_hsum8(a1), mpo_hsum8(a2), mpo_hsum8(a3) };
        for (int d = L8; d < len; d++) {
            s[0] += x[d] * r0[d]; s[1] += x[d] * r1[d]; s[2] += x[d] * r2[d]; s[3] += x[d] * r3[d];
        }
        for (int i = 0; i < 4; i++) out[j + i] = alpha * s[i];
    }
    for (; j < n; j++) {
        const float *r = rows + (long)j * ld;
        __m256 a = _mm256_setzero_ps();
        for (int d = 0; d < L8; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + d), _mm256_loadu_ps(r + d), a);
        float s = mpo_hsum8(a);
        for (int d = L8; d < len; d++) s += x[d] * r[d];
        out[j] = alpha * s;
    }
}
#endif

void mpo_dot_rows(const float *x, const float *rows, int ld, int n, int len, float alpha, float *out) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) { dot_rows_avx2(x, rows, ld, n, len, alpha, out); return; }
#endif
    dot_rows_portable(x, rows, ld, n, len, alpha, out);
}

// MARK: - MPO site step

// Item p: out_p (mo × o) = Mᵀ (mo × k) · in_p (k × o), M stored k × mo. An item narrower than a
// vector block (o < 16) and taller than wide runs transposed, out_pᵀ = in_pᵀ · M, vectorised
// along mo into a stack tile that is then written in place: the same FMA chain per element (a
// product is commutative and fma rounds once), so the same bits, at up to 16/o the vector use.
void mpo_site_step(int p0, int p1, int k, int mo, int o, const float *M, const float *in, float *out, float beta) {
    enum { TILE = 4096 };
    if (p1 <= p0) return;
    if (o == 1) {
        mpo_gemm_small(p1 - p0, mo, k, 1.0f, in + (long)p0 * k, k, 1, M, mo, beta, out + (long)p0 * mo, mo);
        return;
    }
    if (o < 16 && mo > o && mo * o <= TILE) {
        float t[TILE];
        for (int p = p0; p < p1; p++) {
            mpo_gemm_small(o, mo, k, 1.0f, in + (long)p * k * o, 1, o, M, mo, 0.0f, t, mo);
            float *c = out + (long)p * mo * o;
            for (int i = 0; i < mo; i++)
                for (int j = 0; j < o; j++)
                    c[i * o + j] = beta == 0.0f ? t[j * mo + i] : fmaf(beta, c[i * o + j], t[j * mo + i]);
        }
        return;
    }
    for (int p = p0; p < p1; p++)
        mpo_gemm_small(mo, o, k, 1.0f, M, 1, mo, in + (long)p * k * o, o, beta, out + (long)p * mo * o, o);
}
