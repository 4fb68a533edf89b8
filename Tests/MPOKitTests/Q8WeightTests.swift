// 8-bit weights for inference (--core-dtype q8): the block rounding rule (scale max|x|/127, round
// to even, the padding 0), the product against an emulation of its exact integer lanes (bit for bit
// on either SIMD path, and a row of a batch equal to the row alone), and whole models — a tiny
// Llama with dense and plain-SVD layers in q8 stays near its f32 logits, decodes token by token as
// its forward pass does, and saves what it holds. (The ops are rows of the op-case table too.)

import CKernels
import Foundation
import Testing
import TensorTrain
import TestSupport
@testable import MPOKit

struct Q8KernelTests {
    /// q8 of `rows` rows of `cols`: quants (padded rows) and scales.
    static func quantize(_ x: [Float], rows: Int, cols: Int) -> (q: [Int8], s: [Float]) {
        let kp = PackedMatrix.paddedColumns(cols)
        var q = [Int8](repeating: 99, count: rows * kp), s = [Float](repeating: -1, count: rows * kp / 32)
        mpo_quantize_q8_rows(x, Int32(rows), Int32(cols), Int32(cols), &q, &s)
        return (q, s)
    }

    @Test("q8 rounding: scale max|x|/127 per block of 32, quants round to even, the largest maps to ±127, padding and zero blocks 0",
          arguments: [1, 31, 32, 33, 100, 576])
    func rounding(cols: Int) {
        var rng = SplitMix64(seed: UInt64(cols))
        let rows = 3
        var x = (0..<(rows * cols)).map { _ in Float(rng.uniform() * 2 - 1) * 3 }
        for i in 0..<min(cols, 32) { x[cols + i] = 0 }   // row 1 starts with a zero block
        let (q, s) = Self.quantize(x, rows: rows, cols: cols)
        let kp = PackedMatrix.paddedColumns(cols), nb = kp / 32
        for r in 0..<rows {
            for b in 0..<nb {
                let lo = b * 32, hi = min(lo + 32, cols), block = x[(r * cols + lo)..<(r * cols + hi)]
                let amax = block.map { abs($0) }.max()!
                #expect(s[r * nb + b] == amax / 127, "row \(r) block \(b)")
                for i in lo..<(lo + 32) {
                    let got = q[r * kp + i]
                    if i >= hi { #expect(got == 0, "padding at \(i)"); continue }
                    let v = x[r * cols + i], want = amax == 0 ? 0 : Int8((v * (127 / amax)).rounded(.toNearestOrEven))
                    #expect(got == want, "x \(v) → \(got), expected \(want)")
                    #expect(abs(Float(got) * s[r * nb + b] - v) <= s[r * nb + b] * 0.5001, "dequantised \(v)")
                }
                if amax > 0 { #expect(block.indices.contains { abs(Int(q[r * kp + $0 - r * cols])) == 127 }) }
            }
        }
        var back = [Float](repeating: .nan, count: rows * cols)
        mpo_dequantize_q8_rows(q, s, Int32(rows), Int32(cols), &back, Int32(cols))
        for r in 0..<rows { for i in 0..<cols { #expect(back[r * cols + i] == Float(q[r * kp + i]) * s[r * nb + i / 32]) } }
    }

    /// The product as its lanes compute it: lane u of block b sums elements 32b+4u…32b+4u+3 exactly,
    /// then acc_u += lane·(sw·sa) fused; the eight lanes added in mpo_hsum8's order.
    static func emulated(m: Int, n: Int, k: Int, wq: [Int8], ws: [Float], aq: [Int8], sa: [Float],
                         alpha: Float, beta: Float, c: [Float]) -> [Float] {
        let kp = PackedMatrix.paddedColumns(k), nb = kp / 32
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var acc = [Float](repeating: 0, count: 8)
                for b in 0..<nb {
                    let s = ws[j * nb + b] * sa[i * nb + b]
                    for u in 0..<8 {
                        var lane = 0
                        for t in 0..<4 { lane += Int(wq[j * kp + 32 * b + 4 * u + t]) * Int(aq[i * kp + 32 * b + 4 * u + t]) }
                        acc[u] = acc[u].addingProduct(Float(lane), s)
                    }
                }
                let v = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
                out[i * n + j] = beta == 0 ? alpha * v : alpha * v + beta * c[i * n + j]
            }
        }
        return out
    }

    @Test("the q8 product equals its integer-lane emulation bit for bit; a row of a batch equals the row alone")
    func productExact() {
        var rng = SplitMix64(seed: 11)
        for (m, n, k, alpha, beta) in [(1, 1, 1, Float(1), Float(0)), (1, 7, 33, 1, 0), (3, 70, 100, 1, 0), (5, 130, 576, -0.5, 1), (2, 9, 31, 2, 1)] {
            let w = (0..<(n * k)).map { _ in Float(rng.uniform() * 2 - 1) }, a = (0..<(m * k)).map { _ in Float(rng.uniform() * 4 - 2) }
            let c0 = (0..<(m * n)).map { _ in Float(rng.uniform() - 0.5) }
            let (wq, ws) = Self.quantize(w, rows: n, cols: k), (aq, sa) = Self.quantize(a, rows: m, cols: k)
            var c = c0
            mpo_gemm_q8_rows(Int32(m), Int32(n), Int32(k), wq, ws, aq, sa, alpha, beta, &c, Int32(n))
            let want = Self.emulated(m: m, n: n, k: k, wq: wq, ws: ws, aq: aq, sa: sa, alpha: alpha, beta: beta, c: c0)
            #expect(c.map(\.bitPattern) == want.map(\.bitPattern), "m \(m) n \(n) k \(k) (\(String(cString: mpo_simd_name(mpo_simd_active()))))")
            let kp = PackedMatrix.paddedColumns(k), nb = kp / 32
            for i in 0..<m {   // row i alone
                var row = Array(c0[(i * n)..<((i + 1) * n)])
                Array(aq[(i * kp)..<((i + 1) * kp)]).withUnsafeBufferPointer { q in
                    Array(sa[(i * nb)..<((i + 1) * nb)]).withUnsafeBufferPointer { s in
                        mpo_gemm_q8_rows(1, Int32(n), Int32(k), wq, ws, q.baseAddress, s.baseAddress, alpha, beta, &row, Int32(n))
                    }
                }
                #expect(row.map(\.bitPattern) == c[(i * n)..<((i + 1) * n)].map(\.bitPattern))
            }
            // And the exact real-number value of the rounded operands, within f32 summation error.
            for i in 0..<m {
                for j in 0..<n {
                    var exact = 0.0
                    for t in 0..<k { exact += Double(wq[j * kp + t]) * Double(ws[j * nb + t / 32]) * Double(aq[i * kp + t]) * Double(sa[i * nb + t / 32]) }
                    exact = Double(alpha) * exact + (beta == 0 ? 0 : Double(beta) * Double(c0[i * n + j]))
                    #expect(abs(Double(c[i * n + j]) - exact) <= 1e-5 * max(1, abs(exact)))
                }
            }
        }
    }

    @Test("a non-finite activation makes its outputs NaN, not a number")
    func nonFinite() {
        let k = 40, w = (0..<(2 * k)).map { Float($0 % 7) - 3 }
        let (wq, ws) = Self.quantize(w, rows: 2, cols: k)
        for bad in [Float.nan, .infinity] {
            var a = [Float](repeating: 0.5, count: k); a[35] = bad
            let (aq, sa) = Self.quantize(a, rows: 1, cols: k)
            var c = [Float](repeating: 0, count: 2)
            mpo_gemm_q8_rows(1, 2, Int32(k), wq, ws, aq, sa, 1, 0, &c, 2)
            #expect(c.allSatisfy { $0.isNaN }, "\(bad): \(c)")
        }
    }
}

struct Q8ModelTests {
    @Test("a tiny Llama in q8 stays within 5 % of its f32 logits (more than f16 costs), stores the matrices in 1.125 bytes per weight, decodes as its forward pass, saves what it holds")
    func model() throws {
        let f32 = try HalfModelTests.lowRankLlama()
        let c = f32.config
        let q8 = try Transformer(config: c, device: CPUDevice(), purpose: .inference, weightDType: .q8)
        try q8.load(from: f32)
        let f16 = try Transformer(config: c, device: CPUDevice(), purpose: .inference, weightDType: .f16)
        #expect(Set(q8.packed.keys) == Set(f16.packed.keys) && !q8.packed.isEmpty)
        let packedBytes = q8.packed.values.reduce(0) { $0 + 4 * PackedMatrix.elements(rows: $1.rows, columns: $1.columns, format: .q8) }
        let f32Bytes = q8.packed.values.reduce(0) { $0 + 4 * $1.rows * $1.columns }
        #expect(q8.weightBytes() == f32.weightBytes() - f32Bytes + packedBytes)
        for m in q8.packed.values where m.columns % 32 == 0 {   // 1.125 bytes per weight; short rows pad to 32
            #expect(4 * PackedMatrix.elements(rows: m.rows, columns: m.columns, format: .q8) * 8 == 9 * m.rows * m.columns)
        }
        #expect(packedBytes < f32Bytes)
        let a = try HalfModelTests.logits(q8), exact = try HalfModelTests.logits(f32)
        let scale = exact.map { abs($0) }.max()!, cost = zip(a, exact).map { abs($0 - $1) }.max()!
        try f16.load(from: f32)
        let halfCost = zip(try HalfModelTests.logits(f16), exact).map { abs($0 - $1) }.max()!
        #expect(cost > halfCost && cost < 0.05 * max(1, scale), "q8 cost \(cost) of \(scale) (f16: \(halfCost))")
        // Token by token through the KV cache: the forward pass's logits.
        let (tok, _, _, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        let rows = Array(tok[0..<t])
        try q8.forward(tokens: rows, batch: 1, time: t, needsGradients: false)
        let full = try q8.logits()
        let gen = try Generator(model: q8, batch: 1, capacity: t)
        var stepped: [Float] = []
        for p in 0..<t { stepped += try gen.feed([[rows[p]]])[0] }
        #expect(zip(full, stepped).map { abs($0 - $1) }.max()! < 1e-4)
        // Saved as the values it holds; loaded straight into q8 again, the same model.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("q8-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try ModelCheckpoint.save(q8, to: url)
        let back = try ModelCheckpoint.loadModel(url, device: CPUDevice(), purpose: .inference)
        for (name, m) in q8.packed { #expect(try back.parameter(name) == (try m.read(q8.device))) }
        let again = try ModelCheckpoint.loadModel(url, device: CPUDevice(), purpose: .inference, weightDType: .q8)
        let b = try HalfModelTests.logits(again), ref = try HalfModelTests.logits(q8)
        #expect(zip(b, ref).map { abs($0 - $1) }.max()! <= 1e-5 * max(1, scale))
        #expect(throws: ModelError.self) { try q8.packed.values.first!.write(q8.device, [1, 2, 3], at: 1) }
    }
}
