// CPUDevice: products and look-ups on 16-bit weights (HalfMatrix), computed in f32.
// At batch 1 a fused GEMV widens each weight as it streams past (CKernels half.c); with more rows
// blocks of W are widened into per-worker scratch and multiplied by sgemm, so the widening costs
// one pass over W per call, not per row. Blocks are fixed by the shape (never the thread count):
// every output element comes out of the same arithmetic whatever the threads.

import CBLAS
import CKernels

extension CPUDevice {
    /// Rows of W widened per sgemm block when A has more than one row.
    static let halfBlockRows = 64

    public func gemmHalf(_ s: GemmShape, a: TensorView, b: HalfMatrix, c: TensorView) {
        precondition(s.batch == 1 && s.transposeB && !s.transposeA && s.ldb == s.k && b.rows == s.n && b.columns == s.k,
                     "\(s): gemmHalf takes one NT product with B (\(b.rows), \(b.columns)) = \(b.name)")
        precondition(s.m == 0 || (s.extentA <= a.count && s.extentC <= c.count), "\(s): operands too small for \(b.name)")
        guard s.m > 0 && s.n > 0 else { return }
        let pa = UnsafePointer(ptr(a)), pc = ptr(c), bf16 = b.isBF16
        let pb = UnsafePointer(UnsafeRawPointer(ptr(b.storage)).assumingMemoryBound(to: UInt16.self))
        let n = s.n, k = s.k
        if k == 0 {
            for i in 0..<s.m { for j in 0..<n { pc[i * s.ldc + j] = s.beta == 0 ? 0 : s.beta * pc[i * s.ldc + j] } }
            return
        }
        if s.m == 1 {  // batch 1: the fused GEMV, whole rows of W per piece, cut as an f32 GEMV is (gemmSplit)
            var pieces = 1
            if case .columns(let p) = Self.gemmSplit(s) { pieces = p }
            forEachChunk(pieces) { p, _ in
                let lo = n * p / pieces, hi = n * (p + 1) / pieces
                if hi > lo {
                    mpo_gemv_half_rows(Int32(hi - lo), Int32(k), pb + lo * k, Int32(k), pa, s.alpha, s.beta, pc + lo, bf16)
                }
            }
            return
        }
        let rowsPerBlock = Self.halfBlockRows, blocks = (n + rowsPerBlock - 1) / rowsPerBlock
        ensureScratch(rowsPerBlock * k)
        forEachChunk(blocks) { blk, worker in
            let lo = blk * rowsPerBlock, rows = min(rowsPerBlock, n - lo), w = scratch[worker]
            mpo_half_rows_to_f32(pb + lo * k, Int32(rows), Int32(k), Int32(k), w, Int32(k), bf16)
            Self.sgemm(false, true, s.m, rows, k, s.alpha, pa, s.lda, w, k, s.beta, pc + lo, s.ldc)
        }
    }

    public func embeddingForwardHalf(tokens: TensorView, table: HalfMatrix, positions: TensorView?, out: TensorView,
                                     batch: Int, time: Int, channels: Int) {
        let n = batch * time, C = channels
        precondition(table.columns == C && tokens.count >= n && out.count >= n * C && (positions?.count ?? time * C) >= time * C,
                     "embedding shape mismatch (\(table.name))")
        let tok = intPtr(tokens), pe = positions.map { ptr($0) }, o = ptr(out), vocab = table.rows, bf16 = table.isBF16
        let w = UnsafePointer(UnsafeRawPointer(ptr(table.storage)).assumingMemoryBound(to: UInt16.self))
        parallelFor(n, grain: 64) { r in
            for i in r {
                let id = Int(tok[i])
                precondition(id >= 0 && id < vocab, "token id \(id) outside vocabulary 0..<\(vocab)")
                mpo_half_to_f32(w + id * C, o + i * C, C, bf16)
                if let pe { mpo_add(o + i * C, pe + (i % time) * C, o + i * C, C) }
            }
        }
    }
}
