//------------------------------------------------------------------------------------------------
// embedding.cl — token embedding plus (fixed) positional encoding, forward and backward.
//
// Legend: B batch, T time, N = B·T tokens, C channels, V vocabulary. tokens are Int32 (N).
// Backward is a scatter-add made deterministic without atomics: one work-item per channel
// walks the tokens in order, so every dTable element sums its rows in the same order as the
// CPU reference (llm.c's encoder_backward idea, without the float atomics).
//------------------------------------------------------------------------------------------------

// out[i, c] = table[tokens[i], c] + positions[i mod T, c]. Global (C, N). An id outside the
// vocabulary writes NaN (the host validates ids; this only keeps the kernel in bounds).
__kernel void kernel_embedding_forward(__global const int *tokens, int to, __global const float *table, int tbo,
                                       __global const float *positions, int po, __global float *out, int oo,
                                       int N, int T, int C, int V) {
    const int c = get_global_id(0), i = get_global_id(1);
    if (c >= C || i >= N) return;
    const int id = tokens[to + i];
    const float e = (id >= 0 && id < V) ? table[tbo + (long)id * C + c] : NAN;
    out[oo + (long)i * C + c] = e + positions[po + (long)(i % T) * C + c];
}

// dTable[tokens[i], c] += dout[i, c] for i in order. Global (C).
__kernel void kernel_embedding_backward(__global const float *dout, int dso, __global const int *tokens, int to,
                                        __global float *dtable, int dto, int N, int C, int V) {
    const int c = get_global_id(0);
    if (c >= C) return;
    for (int i = 0; i < N; i++) {
        const int id = tokens[to + i];
        if (id >= 0 && id < V) dtable[dto + (long)id * C + c] += dout[dso + (long)i * C + c];
    }
}
