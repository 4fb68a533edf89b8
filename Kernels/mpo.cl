//------------------------------------------------------------------------------------------------
// mpo.cl — the fused site-by-site MPO contraction for inference (ComputeDevice.mpoForward): one
// launch contracts a batch of rows through every site of one layer, never forming W.
//
// Legend (MPOContraction): sites l = L−1 … 0; per row, site l maps a state (P, K, O) to
// (P, Mo, O) with P = ∏_{k<l} i_k, K = i_l·b_{l+1}, Mo = b_l·o_l, O = ∏_{k>l} o_k:
//   out[p, m, o] = Σ_k M_l[k, m] · in[p, k, o],   M_l = core l permuted to (i_l b_{l+1}, b_l o_l).
// The first site reads the row of x, the last writes the row of y (+= with accumulate); the
// states in between ping-pong through the row's slice of `scratch` (global memory, barriers with
// a global fence between sites). One work-group per row; its work-items share the outputs of a
// site. Each output is one fma chain over k in order (like the CPU's kernel). At most MPO_SITES
// sites; the host falls back to GEMMs beyond.
//
// dims: for site l, (P, K, Mo, O) at [4l … 4l+3] of two int8 vectors (sites 0–1, 2–3); `second`
// is where the second state buffer starts in scratch.
// Global (MPO_WG, rows), local (MPO_WG, 1).
//------------------------------------------------------------------------------------------------

#ifndef MPO_WG
#define MPO_WG 64
#endif
#define MPO_SITES 4

__kernel __attribute__((reqd_work_group_size(MPO_WG, 1, 1)))
void kernel_mpo_forward(__global const float *x, int xo, __global float *y, int yo,
                        __global float *scratch, int so, int second, int perRow,
                        __global const float *m0, int m0o, __global const float *m1, int m1o,
                        __global const float *m2, int m2o, __global const float *m3, int m3o,
                        int8 dims01, int8 dims23, int sites, int inF, int outF, int accumulate) {
    const int row = get_global_id(1), lid = get_local_id(0);
    int d[16];
    vstore8(dims01, 0, d);
    vstore8(dims23, 0, d + 8);
    __global const float *cores[MPO_SITES] = { m0 + m0o, m1 + m1o, m2 + m2o, m3 + m3o };
    __global float *bufs[2] = { scratch + so + (long)row * perRow, scratch + so + second + (long)row * perRow };
    __global const float *in = x + xo + (long)row * inF;
    for (int l = sites - 1; l >= 0; l--) {
        const int P = d[4 * l], K = d[4 * l + 1], Mo = d[4 * l + 2], O = d[4 * l + 3];
        __global const float *M = cores[l];
        __global float *out = l == 0 ? y + yo + (long)row * outF : bufs[l % 2];
        const int n = P * Mo * O;
        for (int e = lid; e < n; e += MPO_WG) {
            const int o = e % O, m = (e / O) % Mo, p = e / (O * Mo);
            const __global float *src = in + (long)p * K * O + o;
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc = fma(M[(long)k * Mo + m], src[(long)k * O], acc);
            if (l == 0 && accumulate) out[e] += acc; else out[e] = acc;
        }
        barrier(CLK_GLOBAL_MEM_FENCE);
        in = out;
    }
}
