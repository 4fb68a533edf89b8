//------------------------------------------------------------------------------------------------
// embedding.cl — token embedding plus positions (fixed or learned), forward and backward.
//
// Legend: B batch, T time, N = B·T tokens, C channels, V vocabulary. tokens are Int32 (N).
// Backward is a scatter-add made deterministic without atomics, in two stages: work-item
// (c, chunk) walks its chunk's rows in order into partial[chunk, token, c] (acc_t), then one
// work-item per (token, c) adds the chunks in order into dTable. The chunk count depends only
// on the shape (the host's choice), so a run is reproducible on a device.
//------------------------------------------------------------------------------------------------

// out[i, c] = table[tokens[i], c] + positions[i mod T, c] (just the table row without positions:
// hasPos 0). Global (C, N). An id outside the vocabulary writes NaN (the host validates ids;
// this only keeps the kernel in bounds).
__kernel void kernel_embedding_forward(__global const int *tokens, int to, __global const float *table, int tbo,
                                       __global const float *positions, int po, __global float *out, int oo,
                                       int N, int T, int C, int V, int hasPos) {
    const int c = get_global_id(0), i = get_global_id(1);
    if (c >= C || i >= N) return;
    const int id = tokens[to + i];
    const float e = (id >= 0 && id < V) ? table[tbo + (long)id * C + c] : NAN;
    out[oo + (long)i * C + c] = hasPos ? e + positions[po + (long)(i % T) * C + c] : e;
}

// Learned positions: dTable[t, c] += Σ_b dout[b, t, c], b in order, in acc_t. Global (C, T).
__kernel void kernel_position_backward(__global const float *dout, int dso, __global float *dtable, int dto,
                                       int B, int T, int C) {
    const int c = get_global_id(0), t = get_global_id(1);
    if (c >= C || t >= T) return;
    acc_t acc = 0;
    for (int b = 0; b < B; b++) acc += (acc_t)dout[dso + ((long)b * T + t) * C + c];
    dtable[dto + (long)t * C + c] = (float)((acc_t)dtable[dto + (long)t * C + c] + acc);
}

// Stage 1: partial[chunk, v, c] = Σ_{i in chunk, tokens[i] = v} dout[i, c] for every v (zeroed
// here first). Global (C, chunks).
__kernel void kernel_embedding_backward(__global const float *dout, int dso, __global const int *tokens, int to,
                                        __global acc_t *partial, int N, int C, int V, int chunks) {
    const int c = get_global_id(0), chunk = get_global_id(1);
    if (c >= C || chunk >= chunks) return;
    __global acc_t *p = partial + (long)chunk * V * C;
    for (int v = 0; v < V; v++) p[(long)v * C + c] = 0;
    const int lo = (int)((long)N * chunk / chunks), hi = (int)((long)N * (chunk + 1) / chunks);
    for (int i = lo; i < hi; i++) {
        const int id = tokens[to + i];
        if (id >= 0 && id < V) p[(long)id * C + c] += (acc_t)dout[dso + (long)i * C + c];
    }
}

// Stage 2: dTable[v, c] += Σ_chunk partial[chunk, v, c], chunks in order. Global (C, V).
__kernel void kernel_embedding_backward_finish(__global const acc_t *partial, __global float *dtable, int dto,
                                               int C, int V, int chunks) {
    const int c = get_global_id(0), v = get_global_id(1);
    if (c >= C || v >= V) return;
    acc_t acc = 0;
    for (int k = 0; k < chunks; k++) acc += partial[((long)k * V + v) * C + c];
    dtable[dto + (long)v * C + c] = (float)((acc_t)dtable[dto + (long)v * C + c] + acc);
}
