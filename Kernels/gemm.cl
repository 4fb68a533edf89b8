//------------------------------------------------------------------------------------------------
// gemm.cl — batched, strided, row-major SGEMM: C[s] = alpha·Σ_{b in slot s} op(A[b])·op(B[b]) + beta·C[s].
//
// Legend: M, N, K as in GemmShape (op(A) is M×K, op(B) is K×N, C is M×N); lda/ldb/ldc row
// strides; sa/sb/sc batch strides (sa = 0: one A shared by every item). Batch items are grouped
// into "slots": a plain batched GEMM has one item per slot (slot = item, C per item); a
// reduction over the batch (GemmShape.strideC == 0) gives each slot a contiguous run of items,
// whose products are summed in registers, and the host adds the slots' partial C in order with
// kernel_gemm_reduce (two deterministic stages, no atomics). Slots beyond the z grid are
// visited in a grid-stride loop, so the z dimension stays small on any device.
//
// kernel_gemm_tiled: a work-group computes a GEMM_TM×GEMM_TN tile of C; each work-item a
// GEMM_WM×GEMM_WN register block (rows ty + i·LM, cols tx + j·LN: strided so local reads are
// conflict-free). A and B tiles of depth GEMM_TK are staged through local memory; edges are
// zero-padded on load and masked on store, so any M, N, K work. Tile sizes are -D options,
// chosen by the host per device and per call (a large and a small build of this file).
// kernel_gemm_reference: one work-item per element of C, the simple kernel the tiled one is
// tested against (DESIGN §4).
//------------------------------------------------------------------------------------------------

#ifndef GEMM_TM
#define GEMM_TM 64      // rows of C per work-group
#endif
#ifndef GEMM_TN
#define GEMM_TN 64      // columns of C per work-group
#endif
#ifndef GEMM_TK
#define GEMM_TK 16      // depth of one staged A/B tile
#endif
#ifndef GEMM_WM
#define GEMM_WM 4       // rows per work-item
#endif
#ifndef GEMM_WN
#define GEMM_WN 4       // columns per work-item
#endif
#ifndef GEMM_PAD
#define GEMM_PAD 1      // local-memory row padding (bank conflicts on stores)
#endif

#define GEMM_LM (GEMM_TM / GEMM_WM)         // work-items along rows (local size 1)
#define GEMM_LN (GEMM_TN / GEMM_WN)         // work-items along columns (local size 0)
#define GEMM_THREADS (GEMM_LM * GEMM_LN)

//------------------------------------------------------------------------------------------------
// Tiled kernel. Global (ceil(N/TN)·LN, ceil(M/TM)·LM, zGroups), local (LN, LM, 1).
//------------------------------------------------------------------------------------------------
__kernel __attribute__((reqd_work_group_size(GEMM_LN, GEMM_LM, 1)))
void kernel_gemm_tiled(__global const float *A, int ao, int lda, int sa,
                       __global const float *B, int bo, int ldb, int sb,
                       __global float *C, int co, int ldc, int sc,
                       int M, int N, int K, int ta, int tb, float alpha, float beta,
                       int batch, int slots, int perSlot) {
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int tid = ty * GEMM_LN + tx;
    // Row tiles from the global id: a launch with more row tiles than a grid dimension holds
    // is split into launches with a y offset (OpenCLDevice.launch).
    const int col0 = get_group_id(0) * GEMM_TN, row0 = (int)(get_global_id(1) / GEMM_LM) * GEMM_TM;
    __local float As[GEMM_TK][GEMM_TM + GEMM_PAD];
    __local float Bs[GEMM_TK][GEMM_TN + GEMM_PAD];

    for (int slot = get_group_id(2); slot < slots; slot += get_num_groups(2)) {
        float acc[GEMM_WM][GEMM_WN];
        for (int i = 0; i < GEMM_WM; i++)
            for (int j = 0; j < GEMM_WN; j++) acc[i][j] = 0.0f;

        const int first = slot * perSlot, last = min(batch, first + perSlot);
        for (int item = first; item < last; item++) {
            const __global float *Ab = A + ao + (long)item * sa;
            const __global float *Bb = B + bo + (long)item * sb;
            for (int k0 = 0; k0 < K; k0 += GEMM_TK) {
                // Stage op(A)[row0.., k0..] as As[k][row], reading memory contiguously.
                for (int e = tid; e < GEMM_TM * GEMM_TK; e += GEMM_THREADS) {
                    int r, kk;
                    if (ta) { r = e % GEMM_TM; kk = e / GEMM_TM; } else { kk = e % GEMM_TK; r = e / GEMM_TK; }
                    const int gr = row0 + r, gk = k0 + kk;
                    float v = 0.0f;
                    if (gr < M && gk < K) v = ta ? Ab[(long)gk * lda + gr] : Ab[(long)gr * lda + gk];
                    As[kk][r] = v;
                }
                // Stage op(B)[k0.., col0..] as Bs[k][col].
                for (int e = tid; e < GEMM_TK * GEMM_TN; e += GEMM_THREADS) {
                    int c, kk;
                    if (tb) { kk = e % GEMM_TK; c = e / GEMM_TK; } else { c = e % GEMM_TN; kk = e / GEMM_TN; }
                    const int gc = col0 + c, gk = k0 + kk;
                    float v = 0.0f;
                    if (gc < N && gk < K) v = tb ? Bb[(long)gc * ldb + gk] : Bb[(long)gk * ldb + gc];
                    Bs[kk][c] = v;
                }
                barrier(CLK_LOCAL_MEM_FENCE);
                for (int kk = 0; kk < GEMM_TK; kk++) {
                    float a[GEMM_WM], b[GEMM_WN];
                    for (int i = 0; i < GEMM_WM; i++) a[i] = As[kk][ty + i * GEMM_LM];
                    for (int j = 0; j < GEMM_WN; j++) b[j] = Bs[kk][tx + j * GEMM_LN];
                    for (int i = 0; i < GEMM_WM; i++)
                        for (int j = 0; j < GEMM_WN; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
                }
                barrier(CLK_LOCAL_MEM_FENCE);
            }
        }

        __global float *Cs = C + co + (long)slot * sc;
        for (int i = 0; i < GEMM_WM; i++) {
            const int r = row0 + ty + i * GEMM_LM;
            if (r >= M) continue;
            for (int j = 0; j < GEMM_WN; j++) {
                const int c = col0 + tx + j * GEMM_LN;
                if (c >= N) continue;
                float v = alpha * acc[i][j];
                if (beta != 0.0f) v += beta * Cs[(long)r * ldc + c];
                Cs[(long)r * ldc + c] = v;
            }
        }
    }
}

//------------------------------------------------------------------------------------------------
// Reference kernel: same arguments and semantics, one work-item per C element.
// Global (N, M, zGroups), any local size.
//------------------------------------------------------------------------------------------------
__kernel void kernel_gemm_reference(__global const float *A, int ao, int lda, int sa,
                                    __global const float *B, int bo, int ldb, int sb,
                                    __global float *C, int co, int ldc, int sc,
                                    int M, int N, int K, int ta, int tb, float alpha, float beta,
                                    int batch, int slots, int perSlot) {
    const int c = get_global_id(0), r = get_global_id(1);
    if (r >= M || c >= N) return;
    for (int slot = get_global_id(2); slot < slots; slot += get_global_size(2)) {
        float acc = 0.0f;
        const int first = slot * perSlot, last = min(batch, first + perSlot);
        for (int item = first; item < last; item++) {
            const __global float *Ab = A + ao + (long)item * sa;
            const __global float *Bb = B + bo + (long)item * sb;
            for (int k = 0; k < K; k++) {
                const float a = ta ? Ab[(long)k * lda + r] : Ab[(long)r * lda + k];
                const float b = tb ? Bb[(long)c * ldb + k] : Bb[(long)k * ldb + c];
                acc = fma(a, b, acc);
            }
        }
        __global float *Cs = C + co + (long)slot * sc;
        float v = alpha * acc;
        if (beta != 0.0f) v += beta * Cs[(long)r * ldc + c];
        Cs[(long)r * ldc + c] = v;
    }
}

//------------------------------------------------------------------------------------------------
// Stage 2 of a reduction over the batch: C[r, c] = beta·C[r, c] + Σ_s partial[s, r, c], slots in
// order (partial is (slots, M, N) contiguous). Global (N, M).
//------------------------------------------------------------------------------------------------
__kernel void kernel_gemm_reduce(__global const float *partial, int slots,
                                 __global float *C, int co, int ldc, int M, int N, float beta) {
    const int c = get_global_id(0), r = get_global_id(1);
    if (r >= M || c >= N) return;
    float acc = 0.0f;
    for (int s = 0; s < slots; s++) acc += partial[((long)s * M + r) * N + c];
    __global float *p = C + co + (long)r * ldc + c;
    *p = (beta != 0.0f ? beta * *p : 0.0f) + acc;
}
