//------------------------------------------------------------------------------------------------
// q8.cl — 8-bit weights (--core-dtype q8): rows in blocks of 32 int8 with an f32 scale each
// (CKernels q8.c has the scheme). The product rounds each block of A's row to q8 the same way
// (scale max|x|/127, round to even) and sums the block exactly in int, then scales it in f32.
//
// A q8 matrix's quants start at element `wo` of its buffer (byte 4·wo), rows of kp bytes (K
// rounded up to 32, the padding 0); its scales are a float view (ws, wso), nb = kp/32 per row.
//------------------------------------------------------------------------------------------------

/// 127 / max|x| as the host computes it (correctly rounded where the device has doubles), 0 for a
/// zero or non-finite block.
inline float q8_inverse(float amax) {
    if (!(amax > 0.0f) || isinf(amax)) return 0.0f;
    return (float)((acc_t)127 / (acc_t)amax);
}

inline int q8_round(float x, float inv) {
    const float v = clamp(rint(x * inv), -127.0f, 127.0f);
    return isnan(v) ? 0 : (int)v;
}

// C (M, N) = alpha·A (M, K)·Wᵀ + beta·C for W (N, K) in q8; beta 0 never reads C.
// Global (N, M): one output per work-item; it rounds its row of A block by block itself.
__kernel void kernel_gemm_q8(__global const float *a, int ao, int lda, __global const char *w, int wo,
                             __global const float *ws, int wso, __global float *c, int co, int ldc,
                             int M, int N, int K, float alpha, float beta) {
    const int j = get_global_id(0), i = get_global_id(1);
    if (j >= N || i >= M) return;
    const int kp = (K + 31) / 32 * 32, nb = kp / 32;
    __global const char *row = w + 4 * (long)wo + (long)j * kp;
    __global const float *x = a + ao + (long)i * lda, *sw = ws + wso + (long)j * nb;
    acc_t s = 0;
    for (int b = 0; b < nb; b++) {
        const int lo = 32 * b, hi = min(lo + 32, K);
        float amax = 0.0f;
        for (int t = lo; t < hi; t++) { const float v = fabs(x[t]); amax = (v > amax || isnan(v)) ? v : amax; }
        const float inv = q8_inverse(amax);
        int dot = 0;
        for (int t = lo; t < hi; t++) dot += q8_round(x[t], inv) * (int)row[t];
        s += (acc_t)dot * (acc_t)(sw[b] * (amax / 127.0f));
    }
    const long at = co + (long)i * ldc + j;
    c[at] = beta == 0.0f ? alpha * (float)s : alpha * (float)s + beta * c[at];
}

// out[i, c] = q · scale of row tokens[i] + positions[i mod T, c]. Global (C, N).
__kernel void kernel_embedding_forward_q8(__global const int *tokens, int to, __global const char *table, int tbo,
                                          __global const float *scales, int so, __global const float *positions, int po,
                                          __global float *out, int oo, int N, int T, int C, int V, int hasPos) {
    const int c = get_global_id(0), i = get_global_id(1);
    if (c >= C || i >= N) return;
    const int id = tokens[to + i], kp = (C + 31) / 32 * 32;
    const float e = (id >= 0 && id < V)
        ? (float)table[4 * (long)tbo + (long)id * kp + c] * scales[so + (long)id * (kp / 32) + c / 32] : NAN;
    out[oo + (long)i * C + c] = hasPos ? e + positions[po + (long)(i % T) * C + c] : e;
}
