// Elementwise and per-row kernels: exp with a sum, max, bias (+ ReLU), ReLU backward fused with
// the bias gradient's column sums, column sums, add/accumulate/scale, AdamW. Memory-bound loops
// over contiguous floats; the AVX2 paths exist where the portable loop would not vectorise (exp,
// max with NaN, Double accumulation) or where fusing saves a pass over the tensor.
#include "internal.h"

// MARK: - exp and max

static float exp_sum_portable(float *p, int n, float shift) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) { p[i] = mpo_expf(p[i] - shift); s += p[i]; }
    return s;
}

static float max_portable(const float *p, int n) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (p[i] != p[i]) return p[i];
        if (p[i] > m) m = p[i];
    }
    return m;
}

#if MPO_HAVE_AVX2
MPO_AVX2 static float exp_sum_avx2(float *p, int n, float shift) {
    // Four independent vectors per iteration: the polynomial is a long dependency chain, so
    // one vector at a time leaves the FMA units idle waiting on latency.
    const __m256 s = _mm256_set1_ps(shift);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256 e0 = mpo_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), s));
        const __m256 e1 = mpo_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i + 8), s));
        const __m256 e2 = mpo_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i + 16), s));
        const __m256 e3 = mpo_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i + 24), s));
        _mm256_storeu_ps(p + i, e0);
        _mm256_storeu_ps(p + i + 8, e1);
        _mm256_storeu_ps(p + i + 16, e2);
        _mm256_storeu_ps(p + i + 24, e3);
        a0 = _mm256_add_ps(a0, e0);
        a1 = _mm256_add_ps(a1, e1);
        a2 = _mm256_add_ps(a2, e2);
        a3 = _mm256_add_ps(a3, e3);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 e = mpo_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), s));
        _mm256_storeu_ps(p + i, e);
        a0 = _mm256_add_ps(a0, e);
    }
    if (i < n) {
        const __m256i m = mpo_mask8(n - i);
        const __m256 e = _mm256_and_ps(mpo_exp8(_mm256_sub_ps(_mm256_maskload_ps(p + i, m), s)), _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(p + i, m, e);
        a1 = _mm256_add_ps(a1, e);
    }
    return mpo_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

MPO_AVX2 static float max_avx2(const float *p, int n) {
    __m256 m = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(p + i);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        m = _mm256_max_ps(m, x);
    }
    float r = -INFINITY;
    float lanes[8];
    _mm256_storeu_ps(lanes, m);
    for (int j = 0; j < 8; j++) if (lanes[j] > r) r = lanes[j];
    if (_mm256_movemask_ps(nan)) return NAN;
    for (; i < n; i++) {
        if (p[i] != p[i]) return p[i];
        if (p[i] > r) r = p[i];
    }
    return r;
}
#endif

float mpo_exp_sum(float *p, int n, float shift) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) return exp_sum_avx2(p, n, shift);
#endif
    return exp_sum_portable(p, n, shift);
}

float mpo_max(const float *p, int n) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) return max_avx2(p, n);
#endif
    return max_portable(p, n);
}

// MARK: - Bias, ReLU, column sums

// relu(x) = x < 0 ? 0 : x keeps NaN (PyTorch's relu(NaN) = NaN).
static inline float relu1(float x) { return x < 0.0f ? 0.0f : x; }

void mpo_bias_rows(const float *x, const float *bias, float *out, int rows, int C, int relu) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * C;
        float *o = out + (long)r * C;
        if (relu) for (int c = 0; c < C; c++) o[c] = relu1(xr[c] + bias[c]);
        else for (int c = 0; c < C; c++) o[c] = xr[c] + bias[c];
    }
}

void mpo_relu(const float *x, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = relu1(x[i]);
}

static void relu_backward_portable(const float *dout, const float *out, float *dx, int rows, int C, double *colsum) {
    for (int r = 0; r < rows; r++) {
        const float *d = dout + (long)r * C, *o = out + (long)r * C;
        float *g = dx + (long)r * C;
        for (int c = 0; c < C; c++) {
            const float v = o[c] <= 0.0f ? 0.0f : d[c];
            g[c] = v;
            if (colsum) colsum[c] += (double)v;
        }
    }
}

static void colsum_portable(const float *x, int rows, int C, double *colsum) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * C;
        for (int c = 0; c < C; c++) colsum[c] += (double)xr[c];
    }
}

#if MPO_HAVE_AVX2
/// colsum[c..c+8) += v in Double.
MPO_AVX2 static inline void add8d(double *colsum, __m256 v) {
    _mm256_storeu_pd(colsum, _mm256_add_pd(_mm256_loadu_pd(colsum), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    _mm256_storeu_pd(colsum + 4, _mm256_add_pd(_mm256_loadu_pd(colsum + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
}

MPO_AVX2 static void relu_backward_avx2(const float *dout, const float *out, float *dx, int rows, int C, double *colsum) {
    const __m256 zero = _mm256_setzero_ps();
    for (int r = 0; r < rows; r++) {
        const float *d = dout + (long)r * C, *o = out + (long)r * C;
        float *g = dx + (long)r * C;
        int c = 0;
        for (; c + 8 <= C; c += 8) {
            const __m256 keep = _mm256_cmp_ps(_mm256_loadu_ps(o + c), zero, _CMP_NLE_UQ);   // !(out <= 0): NaN keeps
            const __m256 v = _mm256_and_ps(_mm256_loadu_ps(d + c), keep);
            _mm256_storeu_ps(g + c, v);
            if (colsum) add8d(colsum + c, v);
        }
        for (; c < C; c++) {
            const float v = o[c] <= 0.0f ? 0.0f : d[c];
            g[c] = v;
            if (colsum) colsum[c] += (double)v;
        }
    }
}

MPO_AVX2 static void colsum_avx2(const float *x, int rows, int C, double *colsum) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * C;
        int c = 0;
        for (; c + 8 <= C; c += 8) add8d(colsum + c, _mm256_loadu_ps(xr + c));
        for (; c < C; c++) colsum[c] += (double)xr[c];
    }
}
#endif

void mpo_relu_backward_rows(const float *dout, const float *out, float *dx, int rows, int C, double *colsum) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) { relu_backward_avx2(dout, out, dx, rows, C, colsum); return; }
#endif
    relu_backward_portable(dout, out, dx, rows, C, colsum);
}

void mpo_colsum_rows(const float *x, int rows, int C, double *colsum) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) { colsum_avx2(x, rows, C, colsum); return; }
#endif
    colsum_portable(x, rows, C, colsum);
}

// MARK: - Add, accumulate, scale

void mpo_add(const float *a, const float *b, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void mpo_accumulate(const float *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

void mpo_scale(float *p, size_t n, float s) {
    for (size_t i = 0; i < n; i++) p[i] *= s;
}

// MARK: - AdamW

void mpo_adamw(float *p, const float *g, float *m, float *v, size_t n, float beta1, float beta2,
               float eps, float decay, float stepSize, float bc2Sqrt, float gradScale) {
    const float a1 = 1.0f - beta1, a2 = 1.0f - beta2;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] * gradScale;
        const float mi = beta1 * m[i] + a1 * gi;
        const float vi = beta2 * v[i] + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - stepSize * mi / (sqrtf(vi) / bc2Sqrt + eps);
    }
}
