// CPUDevice: products and look-ups on packed weights (PackedMatrix).
// 16 bits, computed in f32: at batch 1 a fused GEMV widens each weight as it streams past
// (CKernels half.c); with more rows blocks of W are widened into per-worker scratch and multiplied
// by sgemm, so the widening costs one pass over W per call, not per row.
// q8: the rows of A are rounded to q8 once per call, then integer block dots (CKernels q8.c),
// W in row blocks that stay in cache while every row of A passes — the same arithmetic per output
// at any batch size, so a decoded token equals the forward pass.
// Blocks are fixed by the shape (never the thread count): every output element comes out of the
// same arithmetic whatever the threads.

import CBLAS
import CKernels

extension CPUDevice {
    /// Rows of W per block when A has more than one row (16 bits: widened per sgemm; q8: a chunk of
    /// the integer product).
    static let packedBlockRows = 64

    public func gemmPacked(_ s: GemmShape, a: TensorView, b: PackedMatrix, c: TensorView) {
        precondition(s.batch == 1 && s.transposeB && !s.transposeA && s.ldb == s.k && b.rows == s.n && b.columns == s.k,
                     "\(s): gemmPacked takes one NT product with B (\(b.rows), \(b.columns)) = \(b.name)")
        precondition(s.m == 0 || (s.extentA <= a.count && s.extentC <= c.count), "\(s): operands too small for \(b.name)")
        guard s.m > 0 && s.n > 0 else { return }
        let pa = UnsafePointer(ptr(a)), pc = ptr(c), bf16 = b.isBF16
        let pb = UnsafePointer(UnsafeRawPointer(ptr(b.storage)).assumingMemoryBound(to: UInt16.self))
        let n = s.n, k = s.k
        if k == 0 {
            for i in 0..<s.m { for j in 0..<n { pc[i * s.ldc + j] = s.beta == 0 ? 0 : s.beta * pc[i * s.ldc + j] } }
            return
        }
        if b.format == .q8 { gemmQ8(s, a: pa, b: b, c: pc); return }
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
        let rowsPerBlock = Self.packedBlockRows, blocks = (n + rowsPerBlock - 1) / rowsPerBlock
        ensureScratch(rowsPerBlock * k)
        forEachChunk(blocks) { blk, worker in
            let lo = blk * rowsPerBlock, rows = min(rowsPerBlock, n - lo), w = scratch[worker]
            mpo_half_rows_to_f32(pb + lo * k, Int32(rows), Int32(k), Int32(k), w, Int32(k), bf16)
            Self.sgemm(false, true, s.m, rows, k, s.alpha, pa, s.lda, w, k, s.beta, pc + lo, s.ldc)
        }
    }

    /// C = alpha·A·Bᵀ + beta·C with B in q8: A's rows rounded to q8 here, then integer block dots
    /// over W's rows, cut into whole blocks of 64 rows (at batch 1 as an f32 GEMV is cut).
    private func gemmQ8(_ s: GemmShape, a pa: UnsafePointer<Float>, b: PackedMatrix, c pc: UnsafeMutablePointer<Float>) {
        let n = s.n, k = s.k, kp = b.paddedColumns, nb = kp / PackedMatrix.q8Block
        let wq = UnsafeRawPointer(ptr(b.storage)).assumingMemoryBound(to: Int8.self), ws = UnsafePointer(ptr(b.scales))
        var aq = [Int8](repeating: 0, count: s.m * kp), sa = [Float](repeating: 0, count: s.m * nb)
        mpo_quantize_q8_rows(pa, Int32(s.m), Int32(k), Int32(s.lda), &aq, &sa)
        var pieces = (n + Self.packedBlockRows - 1) / Self.packedBlockRows
        if s.m == 1 { pieces = 1; if case .columns(let p) = Self.gemmSplit(s) { pieces = p } }
        aq.withUnsafeBufferPointer { q in
            sa.withUnsafeBufferPointer { sc in
                forEachChunk(pieces) { p, _ in
                    let lo = n * p / pieces, hi = n * (p + 1) / pieces
                    if hi > lo {
                        mpo_gemm_q8_rows(Int32(s.m), Int32(hi - lo), Int32(k), wq + lo * kp, ws + lo * nb, q.baseAddress, sc.baseAddress,
                                         s.alpha, s.beta, pc + lo, Int32(s.ldc))
                    }
                }
            }
        }
    }

    public func embeddingForwardPacked(tokens: TensorView, table: PackedMatrix, positions: TensorView?, out: TensorView,
                                     batch: Int, time: Int, channels: Int) {
        let n = batch * time, C = channels
        precondition(table.columns == C && tokens.count >= n && out.count >= n * C && (positions?.count ?? time * C) >= time * C,
                     "embedding shape mismatch (\(table.name))")
        let tok = intPtr(tokens), pe = positions.map { ptr($0) }, o = ptr(out), vocab = table.rows, bf16 = table.isBF16
        let raw = UnsafeRawPointer(ptr(table.storage)), w = raw.assumingMemoryBound(to: UInt16.self)
        let kp = table.paddedColumns, nb = kp / PackedMatrix.q8Block
        let q = raw.assumingMemoryBound(to: Int8.self), scales = table.format == .q8 ? UnsafePointer(ptr(table.scales)) : nil
        parallelFor(n, grain: 64) { r in
            for i in r {
                let id = Int(tok[i])
                precondition(id >= 0 && id < vocab, "token id \(id) outside vocabulary 0..<\(vocab)")
                if table.format == .q8 {
                    mpo_dequantize_q8_rows(q + id * kp, scales! + id * nb, 1, Int32(C), o + i * C, Int32(C))
                } else {
                    mpo_half_to_f32(w + id * C, o + i * C, C, bf16)
                }
                if let pe { mpo_add(o + i * C, pe + (i % time) * C, o + i * C, C) }
            }
        }
    }
}
