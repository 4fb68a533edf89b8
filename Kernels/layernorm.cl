//------------------------------------------------------------------------------------------------
// layernorm.cl — LayerNorm (biased variance) and RMSNorm over the last axis, forward and backward.
// ε comes as two floats, eps + epsLo = the host's Double ε to 48 bits (no double kernel arguments).
//
// Legend: N rows (tokens), C columns (channels). One work-group of LN_WG work-items per row;
// mean and variance in acc_t (double where available), two passes like the CPU reference.
// Backward: dInput per row (same layout as forward); dWeight/dBias as a two-stage column
// reduction — kernel_layernorm_backward_params writes per-chunk partials, the host finishes
// with kernel_colsum_finish (deterministic, no atomics). After llm.c layernorm_backward.
//------------------------------------------------------------------------------------------------

#ifndef LN_WG
#define LN_WG 128       // work-items per row (power of two)
#endif

// out (N,C) = (x − mean)·rstd·w + b; mean (N), rstd (N). Global (LN_WG·N), local (LN_WG).
__kernel __attribute__((reqd_work_group_size(LN_WG, 1, 1)))
void kernel_layernorm_forward(__global const float *x, int xo, __global const float *w, int wo,
                              __global const float *b, int bo, __global float *out, int oo,
                              __global float *mean, int mo, __global float *rstd, int ro, int C, float eps, float epsLo) {
    __local acc_t red[LN_WG];
    const int row = get_group_id(0), lid = get_local_id(0);
    const __global float *xr = x + xo + (long)row * C;
    acc_t s = 0;
    for (int c = lid; c < C; c += LN_WG) s += (acc_t)xr[c];
    const acc_t mu = wg_sum(s, red) / (acc_t)C;
    acc_t v = 0;
    for (int c = lid; c < C; c += LN_WG) { const acc_t d = (acc_t)xr[c] - mu; v += d * d; }
    const acc_t var = wg_sum(v, red) / (acc_t)C;
    const float m = (float)mu, rs = (float)((acc_t)1 / sqrt(var + ((acc_t)eps + (acc_t)epsLo)));
    __global float *o = out + oo + (long)row * C;
    for (int c = lid; c < C; c += LN_WG) o[c] = (xr[c] - m) * rs * w[wo + c] + b[bo + c];
    if (lid == 0) { mean[mo + row] = m; rstd[ro + row] = rs; }
}

// dx (N,C) += rstd·(w·dout − mean(w·dout) − n̂·mean(w·dout·n̂)), n̂ = (x − mean)·rstd.
// Global (LN_WG·N), local (LN_WG).
__kernel __attribute__((reqd_work_group_size(LN_WG, 1, 1)))
void kernel_layernorm_backward(__global const float *dout, int dso, __global const float *x, int xo,
                               __global const float *w, int wo, __global const float *mean, int mo,
                               __global const float *rstd, int ro, __global float *dx, int dxo, int C) {
    __local acc_t red[LN_WG];
    const int row = get_group_id(0), lid = get_local_id(0);
    const __global float *dr = dout + dso + (long)row * C;
    const __global float *xr = x + xo + (long)row * C;
    const float m = mean[mo + row], rs = rstd[ro + row];
    acc_t sd = 0, sdn = 0;
    for (int c = lid; c < C; c += LN_WG) {
        const float nrm = (xr[c] - m) * rs;
        const acc_t dn = (acc_t)(w[wo + c] * dr[c]);
        sd += dn;
        sdn += dn * (acc_t)nrm;
    }
    const float a = (float)(wg_sum(sd, red) / (acc_t)C);
    const float bb = (float)(wg_sum(sdn, red) / (acc_t)C);
    __global float *dxr = dx + dxo + (long)row * C;
    for (int c = lid; c < C; c += LN_WG) {
        const float nrm = (xr[c] - m) * rs;
        dxr[c] += rs * (w[wo + c] * dr[c] - a - nrm * bb);
    }
}

// Stage 1 of dWeight/dBias: partial[chunk, 0:C] = Σ_{r in chunk} n̂·dout, partial[chunk, C:2C] =
// Σ dout, in acc_t. Global (C, chunks).
__kernel void kernel_layernorm_backward_params(__global const float *dout, int dso, __global const float *x, int xo,
                                               __global const float *mean, int mo, __global const float *rstd, int ro,
                                               __global acc_t *partial, int rows, int C, int chunks) {
    const int c = get_global_id(0), chunk = get_global_id(1);
    if (c >= C || chunk >= chunks) return;
    const int lo = (int)((long)rows * chunk / chunks), hi = (int)((long)rows * (chunk + 1) / chunks);
    acc_t pw = 0, pb = 0;
    for (int r = lo; r < hi; r++) {
        const float d = dout[dso + (long)r * C + c];
        const float nrm = (x[xo + (long)r * C + c] - mean[mo + r]) * rstd[ro + r];
        pw += (acc_t)(nrm * d);
        pb += (acc_t)d;
    }
    partial[(long)chunk * 2 * C + c] = pw;
    partial[(long)chunk * 2 * C + C + c] = pb;
}

// MARK: - RMSNorm

// out (N,C) = (x·rstd)·w, rstd = 1/√(mean(x²) + eps) (N). Global (LN_WG·N), local (LN_WG).
__kernel __attribute__((reqd_work_group_size(LN_WG, 1, 1)))
void kernel_rmsnorm_forward(__global const float *x, int xo, __global const float *w, int wo,
                            __global float *out, int oo, __global float *rstd, int ro, int C, float eps, float epsLo) {
    __local acc_t red[LN_WG];
    const int row = get_group_id(0), lid = get_local_id(0);
    const __global float *xr = x + xo + (long)row * C;
    acc_t s = 0;
    for (int c = lid; c < C; c += LN_WG) s += (acc_t)xr[c] * (acc_t)xr[c];
    const acc_t ms = wg_sum(s, red) / (acc_t)C;
    const float rs = (float)((acc_t)1 / sqrt(ms + ((acc_t)eps + (acc_t)epsLo)));
    __global float *o = out + oo + (long)row * C;
    for (int c = lid; c < C; c += LN_WG) o[c] = (xr[c] * rs) * w[wo + c];
    if (lid == 0) rstd[ro + row] = rs;
}

// dx (N,C) += rstd·(w·dout − x̂·mean(w·dout·x̂)), x̂ = x·rstd. Global (LN_WG·N), local (LN_WG).
__kernel __attribute__((reqd_work_group_size(LN_WG, 1, 1)))
void kernel_rmsnorm_backward(__global const float *dout, int dso, __global const float *x, int xo,
                             __global const float *w, int wo, __global const float *rstd, int ro,
                             __global float *dx, int dxo, int C) {
    __local acc_t red[LN_WG];
    const int row = get_group_id(0), lid = get_local_id(0);
    const __global float *dr = dout + dso + (long)row * C;
    const __global float *xr = x + xo + (long)row * C;
    const float rs = rstd[ro + row];
    acc_t s = 0;
    for (int c = lid; c < C; c += LN_WG) s += (acc_t)(w[wo + c] * dr[c]) * (acc_t)(xr[c] * rs);
    const float a = (float)(wg_sum(s, red) / (acc_t)C);
    __global float *dxr = dx + dxo + (long)row * C;
    for (int c = lid; c < C; c += LN_WG) dxr[c] += rs * (w[wo + c] * dr[c] - (xr[c] * rs) * a);
}

// Stage 1 of dWeight: partial[chunk, c] = Σ_{r in chunk} x̂·dout in acc_t. Global (C, chunks).
__kernel void kernel_rmsnorm_backward_params(__global const float *dout, int dso, __global const float *x, int xo,
                                             __global const float *rstd, int ro, __global acc_t *partial,
                                             int rows, int C, int chunks) {
    const int c = get_global_id(0), chunk = get_global_id(1);
    if (c >= C || chunk >= chunks) return;
    const int lo = (int)((long)rows * chunk / chunks), hi = (int)((long)rows * (chunk + 1) / chunks);
    acc_t pw = 0;
    for (int r = lo; r < hi; r++) pw += (acc_t)((x[xo + (long)r * C + c] * rstd[ro + r]) * dout[dso + (long)r * C + c]);
    partial[(long)chunk * C + c] = pw;
}
