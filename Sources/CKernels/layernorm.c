// LayerNorm over the last axis (biased variance) and RMSNorm, forward and backward, per row.
// Statistics (mean, variance, and backward's two row means) accumulate in Double, two passes
// like the OpenCL kernels (layernorm.cl); the outputs are computed in Float with the same
// operation order: out = ((x − m)·rs)·w + b and dx += rs·((w·dy − a) − n̂·b). The column sums of
// dWeight and dBias go to the caller's Double partials (fixed row chunks, see CPUDevice+Ops).
#include "internal.h"

// MARK: - Portable

static void forward_portable(const float *x, const float *w, const float *b, float *out,
                             float *mean, float *rstd, int rows, int C, double eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += (double)xr[c];
        const double mu = s / C;
        double v = 0.0;
        for (int c = 0; c < C; c++) { const double d = (double)xr[c] - mu; v += d * d; }
        const float m = (float)mu, rs = (float)(1.0 / sqrt(v / C + eps));
        float *o = out + (long)r * C;
        for (int c = 0; c < C; c++) o[c] = (xr[c] - m) * rs * w[c] + b[c];
        mean[r] = m;
        rstd[r] = rs;
    }
}

static void backward_portable(const float *dy, const float *x, const float *w, const float *mean,
                              const float *rstd, float *dx, double *dw, double *db, int rows, int C) {
    for (int r = 0; r < rows; r++) {
        const float *dr = dy + (long)r * C, *xr = x + (long)r * C;
        const float m = mean[r], rs = rstd[r];
        double sd = 0.0, sdn = 0.0;
        for (int c = 0; c < C; c++) {
            const float nrm = (xr[c] - m) * rs;
            const double dn = (double)(w[c] * dr[c]);
            sd += dn;
            sdn += dn * (double)nrm;
            dw[c] += (double)(nrm * dr[c]);
            db[c] += (double)dr[c];
        }
        const float a = (float)(sd / C), bb = (float)(sdn / C);
        float *g = dx + (long)r * C;
        for (int c = 0; c < C; c++) {
            const float nrm = (xr[c] - m) * rs;
            g[c] += rs * (w[c] * dr[c] - a - nrm * bb);
        }
    }
}

// MARK: - AVX2

#if MPO_HAVE_AVX2
/// The two Double halves of 8 floats.
#define LO4(v) _mm256_cvtps_pd(_mm256_castps256_ps128(v))
#define HI4(v) _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))

MPO_AVX2 static void forward_avx2(const float *x, const float *w, const float *b, float *out,
                                  float *mean, float *rstd, int rows, int C, double eps) {
    const int C8 = C & ~7;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * C;
        __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
        for (int c = 0; c < C8; c += 8) {
            const __m256 v = _mm256_loadu_ps(xr + c);
            s0 = _mm256_add_pd(s0, LO4(v));
            s1 = _mm256_add_pd(s1, HI4(v));
        }
        double s = mpo_hsum4d(_mm256_add_pd(s0, s1));
        for (int c = C8; c < C; c++) s += (double)xr[c];
        const double mu = s / C;
        const __m256d vmu = _mm256_set1_pd(mu);
        __m256d q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd();
        for (int c = 0; c < C8; c += 8) {
            const __m256 v = _mm256_loadu_ps(xr + c);
            const __m256d d0 = _mm256_sub_pd(LO4(v), vmu), d1 = _mm256_sub_pd(HI4(v), vmu);
            q0 = _mm256_fmadd_pd(d0, d0, q0);
            q1 = _mm256_fmadd_pd(d1, d1, q1);
        }
        double var = mpo_hsum4d(_mm256_add_pd(q0, q1));
        for (int c = C8; c < C; c++) { const double d = (double)xr[c] - mu; var += d * d; }
        const float m = (float)mu, rs = (float)(1.0 / sqrt(var / C + eps));
        const __m256 vm = _mm256_set1_ps(m), vrs = _mm256_set1_ps(rs);
        float *o = out + (long)r * C;
        for (int c = 0; c < C8; c += 8) {
            const __m256 n = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vm), vrs);
            _mm256_storeu_ps(o + c, _mm256_add_ps(_mm256_mul_ps(n, _mm256_loadu_ps(w + c)), _mm256_loadu_ps(b + c)));
        }
        for (int c = C8; c < C; c++) o[c] = (xr[c] - m) * rs * w[c] + b[c];
        mean[r] = m;
        rstd[r] = rs;
    }
}

MPO_AVX2 static void backward_avx2(const float *dy, const float *x, const float *w, const float *mean,
                                   const float *rstd, float *dx, double *dw, double *db, int rows, int C) {
    const int C8 = C & ~7;
    for (int r = 0; r < rows; r++) {
        const float *dr = dy + (long)r * C, *xr = x + (long)r * C;
        const float m = mean[r], rs = rstd[r];
        const __m256 vm = _mm256_set1_ps(m), vrs = _mm256_set1_ps(rs);
        __m256d sd0 = _mm256_setzero_pd(), sd1 = _mm256_setzero_pd(), sn0 = _mm256_setzero_pd(), sn1 = _mm256_setzero_pd();
        for (int c = 0; c < C8; c += 8) {
            const __m256 d = _mm256_loadu_ps(dr + c);
            const __m256 nrm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vm), vrs);
            const __m256 dn = _mm256_mul_ps(_mm256_loadu_ps(w + c), d);
            const __m256d dn0 = LO4(dn), dn1 = HI4(dn);
            sd0 = _mm256_add_pd(sd0, dn0);
            sd1 = _mm256_add_pd(sd1, dn1);
            sn0 = _mm256_fmadd_pd(dn0, LO4(nrm), sn0);
            sn1 = _mm256_fmadd_pd(dn1, HI4(nrm), sn1);
            const __m256 pw = _mm256_mul_ps(nrm, d);
            _mm256_storeu_pd(dw + c, _mm256_add_pd(_mm256_loadu_pd(dw + c), LO4(pw)));
            _mm256_storeu_pd(dw + c + 4, _mm256_add_pd(_mm256_loadu_pd(dw + c + 4), HI4(pw)));
            _mm256_storeu_pd(db + c, _mm256_add_pd(_mm256_loadu_pd(db + c), LO4(d)));
            _mm256_storeu_pd(db + c + 4, _mm256_add_pd(_mm256_loadu_pd(db + c + 4), HI4(d)));
        }
        double sd = mpo_hsum4d(_mm256_add_pd(sd0, sd1)), sdn = mpo_hsum4d(_mm256_add_pd(sn0, sn1));
        for (int c = C8; c < C; c++) {
            const float nrm = (xr[c] - m) * rs;
            const double dn = (double)(w[c] * dr[c]);
            sd += dn;
            sdn += dn * (double)nrm;
            dw[c] += (double)(nrm * dr[c]);
            db[c] += (double)dr[c];
        }
        const float a = (float)(sd / C), bb = (float)(sdn / C);
        const __m256 va = _mm256_set1_ps(a), vbb = _mm256_set1_ps(bb);
        float *g = dx + (long)r * C;
        for (int c = 0; c < C8; c += 8) {
            const __m256 nrm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vm), vrs);
            const __m256 t = _mm256_sub_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(w + c), _mm256_loadu_ps(dr + c)), va),
                                           _mm256_mul_ps(nrm, vbb));
            _mm256_storeu_ps(g + c, _mm256_add_ps(_mm256_loadu_ps(g + c), _mm256_mul_ps(vrs, t)));
        }
        for (int c = C8; c < C; c++) {
            const float nrm = (xr[c] - m) * rs;
            g[c] += rs * (w[c] * dr[c] - a - nrm * bb);
        }
    }
}
#endif

void mpo_layernorm_forward(const float *x, const float *w, const float *b, float *out,
                           float *mean, float *rstd, int rows, int C, double eps) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) { forward_avx2(x, w, b, out, mean, rstd, rows, C, eps); return; }
#endif
    forward_portable(x, w, b, out, mean, rstd, rows, C, eps);
}

void mpo_layernorm_backward(const float *dy, const float *x, const float *w, const float *mean,
                            const float *rstd, float *dx, double *dw, double *db, int rows, int C) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) { backward_avx2(dy, x, w, mean, rstd, dx, dw, db, rows, C); return; }
#endif
    backward_portable(dy, x, w, mean, rstd, dx, dw, db, rows, C);
}

// MARK: - RMSNorm (one path: the loops vectorise as written, the sums stay in Double)

void mpo_rmsnorm_forward(const float *x, const float *w, float *out, float *rstd, int rows, int C, double eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xr[c] * (double)xr[c];
        const float rs = (float)(1.0 / sqrt(ss / C + eps));
        float *o = out + (long)r * C;
        for (int c = 0; c < C; c++) o[c] = (xr[c] * rs) * w[c];
        rstd[r] = rs;
    }
}

void mpo_rmsnorm_backward(const float *dy, const float *x, const float *w, const float *rstd, float *dx,
                          double *dw, int rows, int C) {
    for (int r = 0; r < rows; r++) {
        const float *dr = dy + (long)r * C, *xr = x + (long)r * C;
        const float rs = rstd[r];
        double sgn = 0.0;
        for (int c = 0; c < C; c++) {
            const float nrm = xr[c] * rs;
            sgn += (double)(w[c] * dr[c]) * (double)nrm;
            dw[c] += (double)(nrm * dr[c]);
        }
        const float a = (float)(sgn / C);
        float *g = dx + (long)r * C;
        for (int c = 0; c < C; c++) g[c] += rs * (w[c] * dr[c] - (xr[c] * rs) * a);
    }
}
