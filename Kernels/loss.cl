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
