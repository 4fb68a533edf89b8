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

// With hasControl, `control` is this step's kernel_step_scalars output: every gradient is
// multiplied by the clip scale (control[4]) and nothing changes when the step was not finite
// (control[5] == 0) — no host wait between the gradient norm and the update.
// Global (n rounded up), any local size.
__kernel void kernel_adamw_forward(__global float *p, int po, __global const float *g, int go,
                                   __global float *m, int mo, __global float *v, int vo, int n,
                                   float beta1, float beta2, float eps, float decay, float stepSize, float bc2Sqrt,
                                   __global const acc_t *control, int co, int hasControl) {
    const int i = get_global_id(0);
    if (i >= n) return;
    float scale = 1.0f;
    if (hasControl) {
        if (control[co + 5] == 0) return;
        scale = (float)control[co + 4];
    }
    const float gi = g[go + i] * scale;
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

// A training step's scalars (ComputeDevice.stepScalars), one work-group of SSQ_WG work-items:
// means of the per-row losses, distillation losses (hasExtra) and correct flags over `rows`, the
// sum of the `groups` sum-of-squares partials of the gradients (kernel_sumsq_forward, in order),
// the clip scale min(1, clip/(√Σg² + 1e-6)) and the finite flag, as acc_t:
//   out[0] cross-entropy, [1] distillation, [2] accuracy, [3] Σg², [4] clip scale, [5] finite (1/0).
// Global (SSQ_WG), local (SSQ_WG).
__kernel __attribute__((reqd_work_group_size(SSQ_WG, 1, 1)))
void kernel_step_scalars(__global const float *losses, int lo, __global const float *correct, int co,
                         __global const float *extra, int eo, int hasExtra, int rows,
                         __global const acc_t *partial, int groups, float clip, __global acc_t *out, int oo) {
    __local acc_t red[SSQ_WG];
    const int lid = get_local_id(0);
    acc_t ce = 0, kd = 0, acc = 0;
    for (int i = lid; i < rows; i += SSQ_WG) {
        ce += (acc_t)losses[lo + i];
        acc += (acc_t)correct[co + i];
        if (hasExtra) kd += (acc_t)extra[eo + i];
    }
    ce = wg_sum(ce, red);
    kd = wg_sum(kd, red);
    acc = wg_sum(acc, red);
    if (lid == 0) {
        acc_t n2 = 0;
        for (int g = 0; g < groups; g++) n2 += partial[g];
        const acc_t scale = fmin((acc_t)1, (acc_t)clip / (sqrt(n2) + (acc_t)1e-6));
        const int finite = isfinite(ce) && isfinite(kd) && isfinite(n2);
        out[oo + 0] = ce / rows; out[oo + 1] = kd / rows; out[oo + 2] = acc / rows;
        out[oo + 3] = n2; out[oo + 4] = scale; out[oo + 5] = finite ? 1 : 0;
    }
}
