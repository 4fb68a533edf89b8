//------------------------------------------------------------------------------------------------
// loss.cl — fused softmax cross-entropy: per-row loss, accuracy and (optionally) dLogits.
//
// Legend: N rows, V vocabulary. One work-group of XENT_WG work-items per row: row max with
// first-index argmax, Σ exp(x − max) in acc_t, lse = max + log Σ; loss = lse − x[target];
// correct = argmax == target; dLogits = (softmax − onehot)·gradScale, which may alias logits
// (every read of the row happens before the barrier that precedes the writes).
// After llm.c's fused_classifier.
//------------------------------------------------------------------------------------------------

#ifndef XENT_WG
#define XENT_WG 64      // work-items per row (power of two)
#endif

// Global (XENT_WG·N), local (XENT_WG).
__kernel __attribute__((reqd_work_group_size(XENT_WG, 1, 1)))
void kernel_crossentropy_forward(__global const float *logits, int lgo, __global const int *targets, int tgo,
                                 __global float *losses, int lso, __global float *correct, int cro,
                                 __global float *dlogits, int dlo, int hasGrad, float gradScale, int V) {
    __local float maxs[XENT_WG];
    __local int args[XENT_WG];
    __local acc_t red[XENT_WG];
    const int row = get_group_id(0), lid = get_local_id(0);
    const __global float *x = logits + lgo + (long)row * V;

    // Max and first index of the max.
    float mx = -INFINITY;
    int arg = V;
    for (int j = lid; j < V; j += XENT_WG) if (arg == V || x[j] > mx) { mx = x[j]; arg = j; }
    maxs[lid] = mx; args[lid] = arg;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int span = XENT_WG / 2; span > 0; span /= 2) {
        if (lid < span) {
            const float om = maxs[lid + span];
            const int oa = args[lid + span];
            if (oa < V && (args[lid] == V || om > maxs[lid] || (om == maxs[lid] && oa < args[lid]))) {
                maxs[lid] = om; args[lid] = oa;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    mx = maxs[0];
    arg = args[0];

    acc_t s = 0;
    for (int j = lid; j < V; j += XENT_WG) s += (acc_t)exp(x[j] - mx);
    const acc_t lse = (acc_t)mx + log(wg_sum(s, red));
    const int t = targets[tgo + row];
    const bool valid = t >= 0 && t < V;
    if (lid == 0) {
        losses[lso + row] = valid ? (float)(lse - (acc_t)x[t]) : NAN;
        correct[cro + row] = arg == t ? 1.0f : 0.0f;
    }
    // Every read of the row precedes any write (dlogits may alias logits). The barrier is
    // unconditional: PoCL requires every work-item to reach the same barriers.
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (hasGrad) {
        __global float *d = dlogits + dlo + (long)row * V;
        for (int j = lid; j < V; j += XENT_WG) {
            const float p = (float)exp((acc_t)x[j] - lse);
            d[j] = (p - (j == t ? 1.0f : 0.0f)) * gradScale;
        }
    }
}

//------------------------------------------------------------------------------------------------
// Distillation on logits at temperature τ (invT = 1/τ): p = softmax(s/τ), q = softmax(t/τ),
// losses[row] = τ²·KL(q ‖ p) = τ²·Σ q·((t − s)/τ − lse_t + lse_s), and with hasGrad
// dlogits += gradScale·τ·(p − q) (accumulates onto the cross-entropy's gradient).
// Global (XENT_WG·N), local (XENT_WG).
//------------------------------------------------------------------------------------------------
__kernel __attribute__((reqd_work_group_size(XENT_WG, 1, 1)))
void kernel_distillation_forward(__global const float *student, int so, __global const float *teacher, int to,
                                 __global float *losses, int lso, __global float *dlogits, int dlo, int hasGrad,
                                 float invT, float tau, float gradScale, int V) {
    __local acc_t red[XENT_WG];
    const int row = get_group_id(0), lid = get_local_id(0);
    const __global float *s = student + so + (long)row * V, *t = teacher + to + (long)row * V;
    float ms = -INFINITY, mt = -INFINITY;
    for (int j = lid; j < V; j += XENT_WG) { ms = fmax(ms, s[j] * invT); mt = fmax(mt, t[j] * invT); }
    // Work-group max through the sum scratch: max(a, b) = (a + b + |a − b|)/2 would round, so
    // reduce explicitly.
    __local float mxs[XENT_WG], mxt[XENT_WG];
    mxs[lid] = ms; mxt[lid] = mt;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int span = XENT_WG / 2; span > 0; span /= 2) {
        if (lid < span) { mxs[lid] = fmax(mxs[lid], mxs[lid + span]); mxt[lid] = fmax(mxt[lid], mxt[lid + span]); }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    ms = mxs[0]; mt = mxt[0];
    acc_t zs = 0, zt = 0;
    for (int j = lid; j < V; j += XENT_WG) { zs += (acc_t)exp(s[j] * invT - ms); zt += (acc_t)exp(t[j] * invT - mt); }
    zs = wg_sum(zs, red);
    zt = wg_sum(zt, red);
    const acc_t lseS = (acc_t)ms + log(zs), lseT = (acc_t)mt + log(zt);
    acc_t kl = 0;
    for (int j = lid; j < V; j += XENT_WG) {
        const acc_t qj = (acc_t)exp(t[j] * invT - mt) / zt;
        if (qj > 0) kl += qj * (((acc_t)t[j] - (acc_t)s[j]) * (acc_t)invT - lseT + lseS);
    }
    kl = wg_sum(kl, red);
    if (lid == 0) losses[lso + row] = (float)((acc_t)tau * (acc_t)tau * kl);
    if (hasGrad) {
        __global float *d = dlogits + dlo + (long)row * V;
        const acc_t k = (acc_t)gradScale * (acc_t)tau;
        for (int j = lid; j < V; j += XENT_WG) {
            const acc_t pj = (acc_t)exp(s[j] * invT - ms) / zs, qj = (acc_t)exp(t[j] * invT - mt) / zt;
            d[j] = (float)((acc_t)d[j] + k * (pj - qj));
        }
    }
}
