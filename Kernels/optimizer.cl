//------------------------------------------------------------------------------------------------
// optimizer.cl — AdamW over a flat range, and the sum of squares for gradient-norm clipping.
//
// AdamW: decoupled weight decay and bias-corrected moments, with the step-dependent scalars
// (decay = 1 − lr·wd, stepSize = lr/(1 − β1^t), √(1 − β2^t)) computed once on the host exactly
// as the CPU reference does, so both devices round the same way.
// Sum of squares: stage 1 here (SSQ_WG work-items per group, a fixed number of groups, a
// grid-stride loop, then a fixed-order tree), stage 2 on the host in double. Deterministic for a
// given device. Without fp64 the per-item sums use Kahan compensation.
//------------------------------------------------------------------------------------------------

#ifndef SSQ_WG
#define SSQ_WG 256      // work-items per group (power of two)
#endif

// Global (n rounded up), any local size.
__kernel void kernel_adamw_forward(__global float *p, int po, __global const float *g, int go,
                                   __global float *m, int mo, __global float *v, int vo, int n,
                                   float beta1, float beta2, float eps, float decay, float stepSize, float bc2Sqrt) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float gi = g[go + i];
    const float mi = beta1 * m[mo + i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[vo + i] + (1.0f - beta2) * gi * gi;
    m[mo + i] = mi;
    v[vo + i] = vi;
    p[po + i] = p[po + i] * decay - stepSize * mi / (sqrt(vi) / bc2Sqrt + eps);
}

// partial[group] = Σ x² over the group's grid-stride share. Global (SSQ_WG·groups), local (SSQ_WG).
__kernel __attribute__((reqd_work_group_size(SSQ_WG, 1, 1)))
void kernel_sumsq_forward(__global const float *x, int xo, int n, __global acc_t *partial) {
    __local acc_t red[SSQ_WG];
    acc_t s = 0;
#if !(defined(USE_FP64) && USE_FP64)
    acc_t comp = 0;   // Kahan compensation
#endif
    for (int i = get_global_id(0); i < n; i += get_global_size(0)) {
        const acc_t xi = (acc_t)x[xo + i];
#if defined(USE_FP64) && USE_FP64
        s += xi * xi;
#else
        const acc_t y = xi * xi - comp;
        const acc_t t = s + y;
        comp = (t - s) - y;
        s = t;
#endif
    }
    const acc_t total = wg_sum(s, red);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = total;
}
