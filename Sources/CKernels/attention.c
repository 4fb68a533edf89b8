// Causal attention for one (batch, head) pair, forward and backward (docs/DESIGN.md §3), on the CPU.
//
// Tiles of BQ = 32 queries: the scores of a tile against every key it may see (32 × TK floats)
// and the packed Kᵀ (and Vᵀ) stay in L1/L2, so no (T, T) matrix is ever stored. Each product
// runs in sub-tiles of SUB = 8 rows cut at their causal limit, so only 8×8 triangles above the
// diagonal are computed and thrown away (a whole tile would waste 12 % of the work at T = 256). The softmax of a
// tile row is exact (two passes over a row held in cache — T is small enough that the online
// rescaling of flash attention buys nothing here); the backward recomputes P from the saved
// log-sum-exp. Every product is mpo_gemm_small (AVX2 register blocks, or the portable loops),
// every exp mpo_exp_sum, so this file has one path and the SIMD level is chosen below it.
//
// Scratch (mpo_attention_scratch floats): Kᵀ (hd × TKp), Vᵀ (hd × TKp), S/P (BQ × TKp) and
// dP/dS (BQ × TKp), TKp = TK rounded up to 8.
#include "internal.h"
#include <string.h>

enum { BQ = 32, SUB = 8, FEW = 4 };

static inline int round8(int n) { return (n + 7) & ~7; }

size_t mpo_attention_scratch(int T, int TK, int hd) {
    (void)T;
    const size_t tkp = (size_t)round8(TK > 0 ? TK : 1);
    return 2 * (size_t)hd * tkp + 2 * (size_t)BQ * tkp;
}

/// dst (hd × ldd) = transpose of src rows 0..<n (hd columns, row stride ld); padding columns 0.
static void pack_transposed(const float *src, int n, int hd, int ld, float *dst, int ldd) {
    for (int d = 0; d < hd; d++) {
        float *row = dst + (long)d * ldd;
        for (int j = 0; j < n; j++) row[j] = src[(long)j * ld + d];
        for (int j = n; j < ldd; j++) row[j] = 0.0f;
    }
}

/// S[r, j] (r < rows, row stride ldS) = alpha · A[r] · Bt[:, j] for the keys row r's sub-tile
/// may see: sub-tiles of SUB rows, sub-tile i up to key `first + i + SUB` (the causal limit of its
/// last row), so only SUB×SUB triangles on the diagonal are computed in vain.
static void causal_scores(int rows, int first, int hd, float alpha, const float *A, int ld, const float *Bt, int ldb,
                          float *S, int ldS) {
    for (int i = 0; i < rows; i += SUB) {
        const int n = rows - i < SUB ? rows - i : SUB;
        mpo_gemm_small(n, first + i + n, hd, alpha, A + (long)i * ld, ld, 1, Bt, ldb, 0.0f, S + (long)i * ldS, ldS);
    }
}

/// O[r] (hd columns, row stride ldo) = alpha · Σ_j P[r, j] · X[j] (row stride ldx) over the keys
/// row r sees (P is zero beyond them), sub-tile by sub-tile.
static void causal_apply(int rows, int first, int hd, float alpha, const float *P, int ldP, const float *X, int ldx,
                         float *O, int ldo) {
    for (int i = 0; i < rows; i += SUB) {
        const int n = rows - i < SUB ? rows - i : SUB;
        mpo_gemm_small(n, hd, first + i + n, alpha, P + (long)i * ldP, ldP, 1, X, ldx, 0.0f, O + (long)i * ldo, ldo);
    }
}

/// D[j] (hd columns, row stride ldd) += alpha · Σ_r P[r, j] · X[r] (row stride ldx) for keys
/// j < first + rows, where query r (absolute first + r) sees key j only if j ≤ first + r: keys
/// below `first` take every row; the diagonal keys, in sub-tiles of SUB, only the rows at or after them.
static void causal_apply_transposed(int rows, int first, int hd, float alpha, const float *P, int ldP,
                                    const float *X, int ldx, float *D, int ldd) {
    if (first > 0) mpo_gemm_small(first, hd, rows, alpha, P, 1, ldP, X, ldx, 1.0f, D, ldd);
    for (int i = 0; i < rows; i += SUB) {
        const int n = rows - i < SUB ? rows - i : SUB;
        mpo_gemm_small(n, hd, rows - i, alpha, P + (long)i * ldP + first + i, 1, ldP, X + (long)i * ldx, ldx, 1.0f,
                       D + (long)(first + i) * ldd, ldd);
    }
}

/// Decoding (a few queries against a long cache): scores as dot products straight from the key
/// rows — packing Kᵀ would cost more than the products.
static void forward_few(const float *q, const float *k, const float *v, float *out, float *lse,
                        int T, int TK, int off, int hd, int ld, int ldk, float scale, float *S) {
    for (int t = 0; t < T; t++) {
        const int seen = off + t + 1;
        mpo_dot_rows(q + (long)t * ld, k, ldk, seen, hd, scale, S);
        const float mx = mpo_max(S, seen);
        const float sum = mpo_exp_sum(S, seen, mx);
        float *o = out + (long)t * ld;
        mpo_gemm_small(1, hd, seen, 1.0f / sum, S, seen, 1, v, ldk, 0.0f, o, ld);
        lse[t] = mx + logf(sum);
    }
    (void)TK;
}

void mpo_attention_forward(const float *q, const float *k, const float *v, float *out, float *lse,
                           int T, int TK, int off, int hd, int ld, int ldk, float scale, float *scratch) {
    if (T <= 0) return;
    if (T <= FEW) { forward_few(q, k, v, out, lse, T, TK, off, hd, ld, ldk, scale, scratch); return; }
    const int tkp = round8(TK);
    float *Kt = scratch, *S = Kt + 2 * (size_t)hd * tkp;
    pack_transposed(k, TK, hd, ldk, Kt, tkp);
    for (int t0 = 0; t0 < T; t0 += BQ) {
        const int rows = T - t0 < BQ ? T - t0 : BQ, first = off + t0;
        // S[r, j] = scale · q[t0 + r] · k[j] for the keys j ≤ first + r (up to the sub-tile's end).
        causal_scores(rows, first, hd, scale, q + (long)t0 * ld, ld, Kt, tkp, S, tkp);
        for (int r = 0; r < rows; r++) {
            const int seen = first + r + 1, computed = first + (r / SUB + 1) * SUB;
            float *row = S + (long)r * tkp;
            const float mx = mpo_max(row, seen);
            const float sum = mpo_exp_sum(row, seen, mx);
            mpo_scale(row, (size_t)seen, 1.0f / sum);
            const int pad = (computed < first + rows ? computed : first + rows) - seen;
            if (pad > 0) memset(row + seen, 0, (size_t)pad * sizeof(float));
            lse[t0 + r] = mx + logf(sum);
        }
        // out[t0 …] = P · v
        causal_apply(rows, first, hd, 1.0f, S, tkp, v, ldk, out + (long)t0 * ld, ld);
    }
}

void mpo_attention_backward(const float *q, const float *k, const float *v, const float *out,
                            const float *dout, const float *lse, float *dq, float *dk, float *dv,
                            int T, int hd, int ld, int ldk, int accumulate_kv, float scale, float *scratch) {
    if (T <= 0) return;
    const int tkp = round8(T);
    float *Kt = scratch, *Vt = Kt + (size_t)hd * tkp, *P = Vt + (size_t)hd * tkp, *dS = P + (size_t)BQ * tkp;
    pack_transposed(k, T, hd, ldk, Kt, tkp);
    pack_transposed(v, T, hd, ldk, Vt, tkp);
    if (!accumulate_kv) {
        for (int t = 0; t < T; t++) {
            memset(dk + (long)t * ldk, 0, (size_t)hd * sizeof(float));
            memset(dv + (long)t * ldk, 0, (size_t)hd * sizeof(float));
        }
    }
    for (int t0 = 0; t0 < T; t0 += BQ) {
        const int rows = T - t0 < BQ ? T - t0 : BQ;
        const float *Q = q + (long)t0 * ld, *dO = dout + (long)t0 * ld;
        causal_scores(rows, t0, hd, scale, Q, ld, Kt, tkp, P, tkp);      // S
        causal_scores(rows, t0, hd, 1.0f, dO, ld, Vt, tkp, dS, tkp);     // dP = dO · vᵀ
        for (int r = 0; r < rows; r++) {
            const int t = t0 + r, seen = t + 1, computed = t0 + (r / SUB + 1) * SUB;
            float *prow = P + (long)r * tkp, *drow = dS + (long)r * tkp;
            (void)mpo_exp_sum(prow, seen, lse[t]);                        // P = exp(S − lse)
            const float *o = out + (long)t * ld, *g = dO + (long)r * ld;
            float D = 0.0f;                                               // D_t = dO_t · O_t
            for (int d = 0; d < hd; d++) D += o[d] * g[d];
            for (int j = 0; j < seen; j++) drow[j] = prow[j] * (drow[j] - D);   // dS = P ∘ (dP − D)
            const int pad = (computed < t0 + rows ? computed : t0 + rows) - seen;
            if (pad > 0) {
                memset(prow + seen, 0, (size_t)pad * sizeof(float));
                memset(drow + seen, 0, (size_t)pad * sizeof(float));
            }
        }
        // dq[t0 …] = scale · dS · k;  dk += scale · dSᵀ · q[t0 …];  dv += Pᵀ · dO[t0 …]
        causal_apply(rows, t0, hd, scale, dS, tkp, k, ldk, dq + (long)t0 * ld, ld);
        causal_apply_transposed(rows, t0, hd, scale, dS, tkp, Q, ld, dk, ldk);
        causal_apply_transposed(rows, t0, hd, 1.0f, P, tkp, dO, ld, dv, ldk);
    }
}
