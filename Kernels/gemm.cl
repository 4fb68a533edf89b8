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
// GEMM_VEC = 4 loads four consecutive floats per work-item (vload4) and GEMM_DB = 1 fetches the
// next tiles into registers while the current ones are used (the GPU build).
// Split-K: a single long product is cut along K into batch items reduced like a batch
// (strides along K, the last item shorter: kLast), for few output tiles and a long K (dW).
// kernel_gemm_reference: one work-item per element of C, the simple kernel the tiled one is
// tested against (docs/DESIGN.md §4).
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
#ifndef GEMM_VEC
#define GEMM_VEC 1      // consecutive elements one work-item loads at once (1 or 4: vload4)
#endif
#ifndef GEMM_DB
#define GEMM_DB 0       // 1: prefetch the next A/B tiles into registers while computing this one
#endif

#define GEMM_LM (GEMM_TM / GEMM_WM)         // work-items along rows (local size 1)
#define GEMM_LN (GEMM_TN / GEMM_WN)         // work-items along columns (local size 0)
#define GEMM_THREADS (GEMM_LM * GEMM_LN)
#define GEMM_A_GROUPS (GEMM_TM * GEMM_TK / GEMM_VEC)   // vector loads of one A tile
#define GEMM_B_GROUPS (GEMM_TN * GEMM_TK / GEMM_VEC)
#define GEMM_A_LOADS ((GEMM_A_GROUPS + GEMM_THREADS - 1) / GEMM_THREADS)   // per work-item
#define GEMM_B_LOADS ((GEMM_B_GROUPS + GEMM_THREADS - 1) / GEMM_THREADS)
#if GEMM_VEC != 1 && GEMM_VEC != 4
#error "GEMM_VEC must be 1 or 4"
#endif
#if GEMM_TK % GEMM_VEC != 0 || GEMM_TM % GEMM_VEC != 0 || GEMM_TN % GEMM_VEC != 0
#error "GEMM_TK, GEMM_TM and GEMM_TN must be multiples of GEMM_VEC"
#endif

// GEMM_VEC values of one matrix that are consecutive in memory, starting at (i, j) of a stored
// rows×cols matrix with row stride ld; out-of-range elements read as 0. A whole in-range group
// is one vload4 (which needs only float alignment).
inline void gemm_load(const __global float *X, int ld, int rows, int cols, int i, int j, float v[GEMM_VEC]) {
#if GEMM_VEC == 4
    if (i < rows && j + 3 < cols) {
        const float4 x = vload4(0, X + (long)i * ld + j);
        v[0] = x.s0; v[1] = x.s1; v[2] = x.s2; v[3] = x.s3;
        return;
    }
#endif
    for (int u = 0; u < GEMM_VEC; u++) v[u] = (i < rows && j + u < cols) ? X[(long)i * ld + j + u] : 0.0f;
}

// Folded batches (fold = 1: one A shared by every item, the items' columns side by side: column
// j of the product is column j % fn of item j / fn; fold = 2: one B shared, the items' rows
// stacked: row r is row r % fm of item r / fm). One large product instead of P tiny ones: the
// shared matrix is read once per tile, and no lane idles when an item is narrower than a tile.
// Element (k, j) of op(B), and (r, k) of op(A), in those modes; 0 outside.
inline float gemm_fold_b(const __global float *Bb, int ldb, int sb, int tb, int N, int Kb, int fn, int k, int j) {
    if (k >= Kb || j >= N) return 0.0f;
    const int item = j / fn, c = j - item * fn;
    return Bb[(long)item * sb + (tb ? (long)c * ldb + k : (long)k * ldb + c)];
}
inline float gemm_fold_a(const __global float *Ab, int lda, int sa, int ta, int M, int Kb, int fm, int r, int k) {
    if (k >= Kb || r >= M) return 0.0f;
    const int item = r / fm, i = r - item * fm;
    return Ab[(long)item * sa + (ta ? (long)k * lda + i : (long)i * lda + k)];
}

// Tile group `e` of op(A) at (row0, k0): its local coordinates (kk, r) and values, consecutive
// along k (ta = 0: rows of A) or along r (ta = 1: A stored K×M). fm > 0: rows folded (fold = 2).
inline void gemm_load_a(const __global float *Ab, int lda, int sa, int ta, int M, int Kb, int fm, int row0, int k0, int e,
                        float v[GEMM_VEC], int *kk, int *r) {
    if (ta) { *r = (e % (GEMM_TM / GEMM_VEC)) * GEMM_VEC; *kk = e / (GEMM_TM / GEMM_VEC); }
    else    { *kk = (e % (GEMM_TK / GEMM_VEC)) * GEMM_VEC; *r = e / (GEMM_TK / GEMM_VEC); }
    if (fm > 0) {
        for (int u = 0; u < GEMM_VEC; u++)
            v[u] = gemm_fold_a(Ab, lda, sa, ta, M, Kb, fm, row0 + *r + (ta ? u : 0), k0 + *kk + (ta ? 0 : u));
    } else if (ta) gemm_load(Ab, lda, Kb, M, k0 + *kk, row0 + *r, v);
    else gemm_load(Ab, lda, M, Kb, row0 + *r, k0 + *kk, v);
}

// Tile group `e` of op(B) at (k0, col0): consecutive along c (tb = 0) or along k (tb = 1: B stored
// N×K). fn > 0: columns folded (fold = 1).
inline void gemm_load_b(const __global float *Bb, int ldb, int sb, int tb, int N, int Kb, int fn, int col0, int k0, int e,
                        float v[GEMM_VEC], int *kk, int *c) {
    if (tb) { *kk = (e % (GEMM_TK / GEMM_VEC)) * GEMM_VEC; *c = e / (GEMM_TK / GEMM_VEC); }
    else    { *c = (e % (GEMM_TN / GEMM_VEC)) * GEMM_VEC; *kk = e / (GEMM_TN / GEMM_VEC); }
    if (fn > 0) {
        for (int u = 0; u < GEMM_VEC; u++)
            v[u] = gemm_fold_b(Bb, ldb, sb, tb, N, Kb, fn, k0 + *kk + (tb ? u : 0), col0 + *c + (tb ? 0 : u));
    } else if (tb) gemm_load(Bb, ldb, N, Kb, col0 + *c, k0 + *kk, v);
    else gemm_load(Bb, ldb, Kb, N, k0 + *kk, col0 + *c, v);
}

//------------------------------------------------------------------------------------------------
// Tiled kernel. Global (ceil(N/TN)·LN, ceil(M/TM)·LM, zGroups), local (LN, LM, 1).
// K is the depth of every batch item but the last, which has kLast (split-K: the host cuts one
// long product into items along K; otherwise kLast = K). fold 1/2 with item size fsize: M×N is
// the folded product (batch = slots = 1), sa/sb/sc the items' strides.
//------------------------------------------------------------------------------------------------
__kernel __attribute__((reqd_work_group_size(GEMM_LN, GEMM_LM, 1)))
void kernel_gemm_tiled(__global const float *A, int ao, int lda, int sa,
                       __global const float *B, int bo, int ldb, int sb,
                       __global float *C, int co, int ldc, int sc,
                       int M, int N, int K, int ta, int tb, float alpha, float beta,
                       int batch, int slots, int perSlot, int kLast, int fold, int fsize) {
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int fm = fold == 2 ? fsize : 0, fn = fold == 1 ? fsize : 0;
    const int tid = ty * GEMM_LN + tx;
    // Row tiles from the global id: a launch with more row tiles than a grid dimension holds
    // is split into launches with a y offset (OpenCLDevice.launch).
    const int col0 = get_group_id(0) * GEMM_TN, row0 = (int)(get_global_id(1) / GEMM_LM) * GEMM_TM;
    __local float As[GEMM_TK][GEMM_TM + GEMM_PAD];
    __local float Bs[GEMM_TK][GEMM_TN + GEMM_PAD];
    float ra[GEMM_A_LOADS][GEMM_VEC], rb[GEMM_B_LOADS][GEMM_VEC];
    int ak[GEMM_A_LOADS], ar[GEMM_A_LOADS], bk[GEMM_B_LOADS], bc[GEMM_B_LOADS];

    for (int slot = get_group_id(2); slot < slots; slot += get_num_groups(2)) {
        float acc[GEMM_WM][GEMM_WN];
        for (int i = 0; i < GEMM_WM; i++)
            for (int j = 0; j < GEMM_WN; j++) acc[i][j] = 0.0f;

        const int first = slot * perSlot, last = min(batch, first + perSlot);
        for (int item = first; item < last; item++) {
            const __global float *Ab = A + ao + (long)item * sa;
            const __global float *Bb = B + bo + (long)item * sb;
            const int Kb = item == batch - 1 ? kLast : K;
            // Global → registers (this work-item's share of the tile at k0).
            #define GEMM_FETCH(k0) do {                                                              \
                for (int u = 0; u < GEMM_A_LOADS; u++) {                                             \
                    const int e = tid + u * GEMM_THREADS;                                            \
                    if (e < GEMM_A_GROUPS) gemm_load_a(Ab, lda, sa, ta, M, Kb, fm, row0, (k0), e, ra[u], &ak[u], &ar[u]); \
                }                                                                                    \
                for (int u = 0; u < GEMM_B_LOADS; u++) {                                             \
                    const int e = tid + u * GEMM_THREADS;                                            \
                    if (e < GEMM_B_GROUPS) gemm_load_b(Bb, ldb, sb, tb, N, Kb, fn, col0, (k0), e, rb[u], &bk[u], &bc[u]); \
                }                                                                                    \
            } while (0)
            // Registers → local tiles As[k][row], Bs[k][col].
            #define GEMM_STORE() do {                                                                \
                for (int u = 0; u < GEMM_A_LOADS; u++) {                                             \
                    if (tid + u * GEMM_THREADS >= GEMM_A_GROUPS) continue;                           \
                    for (int w = 0; w < GEMM_VEC; w++) {                                             \
                        if (ta) As[ak[u]][ar[u] + w] = ra[u][w]; else As[ak[u] + w][ar[u]] = ra[u][w]; \
                    }                                                                                \
                }                                                                                    \
                for (int u = 0; u < GEMM_B_LOADS; u++) {                                             \
                    if (tid + u * GEMM_THREADS >= GEMM_B_GROUPS) continue;                           \
                    for (int w = 0; w < GEMM_VEC; w++) {                                             \
                        if (tb) Bs[bk[u] + w][bc[u]] = rb[u][w]; else Bs[bk[u]][bc[u] + w] = rb[u][w]; \
                    }                                                                                \
                }                                                                                    \
            } while (0)
#if GEMM_DB
            if (Kb > 0) GEMM_FETCH(0);
#endif
            for (int k0 = 0; k0 < Kb; k0 += GEMM_TK) {
#if !GEMM_DB
                GEMM_FETCH(k0);
#endif
                GEMM_STORE();
                barrier(CLK_LOCAL_MEM_FENCE);
#if GEMM_DB
                if (k0 + GEMM_TK < Kb) GEMM_FETCH(k0 + GEMM_TK);   // in flight while this tile is used
#endif
                for (int kk = 0; kk < GEMM_TK; kk++) {
                    float a[GEMM_WM], b[GEMM_WN];
                    for (int i = 0; i < GEMM_WM; i++) a[i] = As[kk][ty + i * GEMM_LM];
                    for (int j = 0; j < GEMM_WN; j++) b[j] = Bs[kk][tx + j * GEMM_LN];
                    for (int i = 0; i < GEMM_WM; i++)
                        for (int j = 0; j < GEMM_WN; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
                }
                barrier(CLK_LOCAL_MEM_FENCE);
            }
            #undef GEMM_FETCH
            #undef GEMM_STORE
        }

        __global float *Cs = C + co + (long)slot * sc;
        for (int i = 0; i < GEMM_WM; i++) {
            const int r = row0 + ty + i * GEMM_LM;
            if (r >= M) continue;
            for (int j = 0; j < GEMM_WN; j++) {
                const int c = col0 + tx + j * GEMM_LN;
                if (c >= N) continue;
                long at = (long)r * ldc + c;
                if (fm > 0) { const int item = r / fm; at = (long)item * sc + (long)(r - item * fm) * ldc + c; }
                if (fn > 0) { const int item = c / fn; at = (long)item * sc + (long)r * ldc + (c - item * fn); }
                float v = alpha * acc[i][j];
                if (beta != 0.0f) v += beta * Cs[at];
                Cs[at] = v;
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
                                    int batch, int slots, int perSlot, int kLast, int fold, int fsize) {
    // The host never folds the reference kernel (fold = 0).
    const int c = get_global_id(0), r = get_global_id(1);
    if (r >= M || c >= N) return;
    for (int slot = get_global_id(2); slot < slots; slot += get_global_size(2)) {
        float acc = 0.0f;
        const int first = slot * perSlot, last = min(batch, first + perSlot);
        for (int item = first; item < last; item++) {
            const __global float *Ab = A + ao + (long)item * sa;
            const __global float *Bb = B + bo + (long)item * sb;
            const int Kb = item == batch - 1 ? kLast : K;
            for (int k = 0; k < Kb; k++) {
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
