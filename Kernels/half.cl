//------------------------------------------------------------------------------------------------
// half.cl — 16-bit weights (f16 or bf16) computed in f32: the inference model's --core-dtype.
//
// A HalfMatrix is packed two values per 4-byte buffer element; the host passes the element
// offset, so value i of the matrix is half i + 2·offset of the buffer. f16 is read with
// vload_half (core OpenCL 1.2, no cl_khr_fp16 needed); bf16 is the top half of an f32.
//------------------------------------------------------------------------------------------------

inline float half_at(__global const ushort *w, long i, int bf16) {
    return bf16 ? as_float((uint)w[i] << 16) : vload_half(i, (__global const half *)w);
}

// C (M, N) = alpha·A (M, K)·Wᵀ + beta·C for W (N, K) in 16 bits; beta 0 never reads C.
// Global (N, M): one output per work-item, its dot product in acc_t in k order.
__kernel void kernel_gemm_half(__global const float *a, int ao, int lda, __global const ushort *w, int wo,
                               __global float *c, int co, int ldc, int M, int N, int K, float alpha, float beta, int bf16) {
    const int j = get_global_id(0), i = get_global_id(1);
    if (j >= N || i >= M) return;
    __global const ushort *row = w + 2 * (long)wo + (long)j * K;
    __global const float *x = a + ao + (long)i * lda;
    acc_t s = 0;
    for (int k = 0; k < K; k++) s += (acc_t)x[k] * (acc_t)half_at(row, k, bf16);
    const long at = co + (long)i * ldc + j;
    c[at] = beta == 0.0f ? alpha * (float)s : alpha * (float)s + beta * c[at];
}

// out[i, c] = table[tokens[i], c] + positions[i mod T, c] for a 16-bit table. Global (C, N).
__kernel void kernel_embedding_forward_half(__global const int *tokens, int to, __global const ushort *table, int tbo,
                                            __global const float *positions, int po, __global float *out, int oo,
                                            int N, int T, int C, int V, int hasPos, int bf16) {
    const int c = get_global_id(0), i = get_global_id(1);
    if (c >= C || i >= N) return;
    const int id = tokens[to + i];
    const float e = (id >= 0 && id < V) ? half_at(table + 2 * (long)tbo, (long)id * C + c, bf16) : NAN;
    out[oo + (long)i * C + c] = hasPos ? e + positions[po + (long)(i % T) * C + c] : e;
}
