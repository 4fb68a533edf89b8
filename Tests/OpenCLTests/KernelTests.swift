// Direct kernel tests beyond the op table's small shapes: every GEMM build (large register-blocked
// tile, small tile, the simple reference kernel) against the CPU on shapes that span several
// tiles, reductions over the batch with many slots, the z grid-stride loop (batch > 65,535),
// multi-tile and KV-cache attention, and determinism of the reductions.

import Foundation
import MPOKit
@testable import MPOOpenCL
import Testing

@Suite("OpenCL kernels vs CPU", .enabled(if: Shared.available, OpenCLGate.reason))
struct KernelTests {
    /// Runs `body` on both devices with the same inputs and returns (OpenCL, CPU) outputs.
    static func both(inputs: [[Float]], outputCount: Int, outputInit: [Float]? = nil,
                     _ body: (any ComputeDevice, [TensorView], TensorView) throws -> Void) throws -> ([Float], [Float]) {
        var results: [[Float]] = []
        for d in [try Shared.opencl() as any ComputeDevice, CPUDevice()] {
            let views = try inputs.enumerated().map { try d.makeBuffer($1, label: "in\($0)").all }
            let out = try d.makeBuffer(outputInit ?? [Float](repeating: 0, count: outputCount), label: "out")
            try body(d, views, out.all)
            results.append(try d.read(out.all))
        }
        return (results[0], results[1])
    }

    // MARK: - GEMM

    static let gemmShapes: [GemmShape] = [
        GemmShape(m: 130, n: 70, k: 50, lda: 53, ldb: 71, ldc: 75, alpha: 0.75, beta: 1),
        GemmShape(m: 130, n: 70, k: 50, transposeA: true, transposeB: true, lda: 131, ldb: 52, alpha: -1),
        GemmShape(m: 200, n: 96, k: 33, transposeB: true),
        GemmShape(m: 64, n: 64, k: 16, transposeA: true),                                  // exactly one large tile
        GemmShape(m: 65, n: 129, k: 17, beta: 1),                                           // one past a tile in each direction
        GemmShape(m: 12, n: 8, k: 16, transposeB: true, beta: 1, batch: 200, strideA: 192, strideB: 128, strideC: 0),
        GemmShape(m: 12, n: 8, k: 16, alpha: 2, batch: 130, strideA: 192, strideB: 128, strideC: 0), // uneven slots
        GemmShape(m: 70, n: 66, k: 9, transposeA: true, beta: 1, batch: 3, strideA: 0, strideB: 66 * 9, strideC: 70 * 66),
    ]

    @Test("GEMM builds match the CPU", arguments: gemmShapes, GemmVariant.allCases)
    func gemm(_ s: GemmShape, variant: GemmVariant) throws {
        let a = randomFloats(s.extentA, seed: 1), b = randomFloats(s.extentB, seed: 2), c = randomFloats(s.extentC, seed: 3)
        let (cl, cpu) = try Self.both(inputs: [a, b], outputCount: c.count, outputInit: c) { d, v, out in
            if let cl = d as? OpenCLDevice { cl.gemm(s, a: v[0], b: v[1], c: out, variant: variant) } else { d.gemm(s, a: v[0], b: v[1], c: out) }
        }
        #expect(relativeError(cl, cpu) < 1e-6, "\(s) \(variant)")
    }

    @Test("a batch past the 65,535 z-groups limit runs through the grid-stride loop")
    func hugeBatch() throws {
        let s = GemmShape(m: 2, n: 3, k: 2, batch: 70_000, strideA: 0, strideB: 6, strideC: 6)
        let a = randomFloats(s.extentA, seed: 4), b = randomFloats(s.extentB, seed: 5)
        let (cl, cpu) = try Self.both(inputs: [a, b], outputCount: s.extentC) { d, v, out in d.gemm(s, a: v[0], b: v[1], c: out) }
        #expect(relativeError(cl, cpu) < 1e-6)
        #expect(cl.suffix(6) == cpu.suffix(6) || relativeError(Array(cl.suffix(6)), Array(cpu.suffix(6))) < 1e-6)
    }

    // MARK: - Attention

    @Test("attention over several tiles matches the CPU", arguments: [
        AttentionShape(batch: 2, time: 100, heads: 2, headDim: 32),
        AttentionShape(batch: 1, time: 64, heads: 4, headDim: 16),
        AttentionShape(batch: 3, time: 33, heads: 1, headDim: 7),
    ])
    func attention(_ s: AttentionShape) throws {
        let n = s.tokens * s.channels
        let q = randomFloats(n, seed: 6, range: 2), k = randomFloats(n, seed: 7, range: 2)
        let v = randomFloats(n, seed: 8), dOut = randomFloats(n, seed: 9)
        var outputs: [[String: [Float]]] = []
        for d in [try Shared.opencl() as any ComputeDevice, CPUDevice()] {
            let bq = try d.makeBuffer(q, label: "q"), bk = try d.makeBuffer(k, label: "k"), bv = try d.makeBuffer(v, label: "v")
            let bd = try d.makeBuffer(dOut, label: "dOut")
            let out = try d.makeBuffer(count: n, label: "out"), lse = try d.makeBuffer(count: s.batch * s.heads * s.time, label: "lse")
            let dq = try d.makeBuffer(count: n, label: "dq"), dk = try d.makeBuffer(count: n, label: "dk")
            let dv = try d.makeBuffer(count: n, label: "dv")
            d.attentionForward(s, q: bq.all, k: bk.all, v: bv.all, out: out.all, lse: lse.all)
            d.attentionBackward(s, dOut: bd.all, q: bq.all, k: bk.all, v: bv.all, out: out.all, lse: lse.all,
                                dq: dq.all, dk: dk.all, dv: dv.all)
            outputs.append(["out": try d.read(out.all), "lse": try d.read(lse.all), "dq": try d.read(dq.all),
                            "dk": try d.read(dk.all), "dv": try d.read(dv.all)])
        }
        for key in ["out", "lse", "dq", "dk", "dv"] {
            #expect(relativeError(outputs[0][key]!, outputs[1][key]!) < 1e-5, "\(s) \(key)")
        }
    }

    @Test("KV-cache attention (queries at an offset) matches the CPU")
    func decode() throws {
        let s = AttentionShape(batch: 2, time: 5, heads: 2, headDim: 32, queryOffset: 70)
        let q = randomFloats(s.tokens * s.channels, seed: 10), kv = randomFloats(s.batch * s.keys * s.channels, seed: 11)
        let (cl, cpu) = try Self.both(inputs: [q, kv, kv.reversed()], outputCount: s.tokens * s.channels + s.batch * s.heads * s.time) { d, v, out in
            d.attentionForward(s, q: v[0], k: v[1], v: v[2], out: out.view(0, s.tokens * s.channels),
                               lse: out.view(s.tokens * s.channels, s.batch * s.heads * s.time))
        }
        #expect(relativeError(cl, cpu) < 1e-5)
    }

    // MARK: - Reductions

    @Test("sum of squares is deterministic and matches the CPU")
    func sumOfSquares() throws {
        let x = randomFloats(300_007, seed: 12, range: 3)
        let cl = try Shared.opencl()
        let b = try cl.makeBuffer(x, label: "x")
        let first = try cl.sumOfSquares(b.all), second = try cl.sumOfSquares(b.all)
        #expect(first == second)
        let cpu = CPUDevice()
        let ref = try cpu.sumOfSquares(try cpu.makeBuffer(x, label: "x").all)
        #expect(abs(first - ref) / ref < 1e-12)
        #expect(try cl.sumOfSquares(b.view(5, 0)) == 0)
    }

    @Test("embedding and LayerNorm backward over many rows match the CPU and repeat bit for bit")
    func columnReductions() throws {
        let B = 3, T = 201, C = 48, V = 11, N = B * T
        var rng = SplitMix64(seed: 13)
        let tokens = (0..<N).map { _ in Int32(rng.below(V)) }
        let dOut = randomFloats(N * C, seed: 14)
        var runs: [[Float]] = []
        for d in [try Shared.opencl() as any ComputeDevice, try Shared.opencl(), CPUDevice()] {
            let tok = try d.makeBuffer(tokens, label: "tokens"), g = try d.makeBuffer(dOut, label: "dOut")
            let table = try d.makeBuffer(randomFloats(V * C, seed: 15), label: "dTable")
            d.embeddingBackward(dOut: g.all, tokens: tok.all, dTable: table.all, batch: B, time: T, channels: C)
            let x = try d.makeBuffer(randomFloats(N * C, seed: 16, range: 2), label: "x")
            let w = try d.makeBuffer(randomFloats(C, seed: 17), label: "w"), bias = try d.makeBuffer(count: C, label: "b")
            let y = try d.makeBuffer(count: N * C, label: "y")
            let mean = try d.makeBuffer(count: N, label: "mean"), rstd = try d.makeBuffer(count: N, label: "rstd")
            let dx = try d.makeBuffer(count: N * C, label: "dx"), dw = try d.makeBuffer(count: C, label: "dw")
            let db = try d.makeBuffer(count: C, label: "db")
            d.layerNormForward(x.all, weight: w.all, bias: bias.all, out: y.all, mean: mean.all, rstd: rstd.all, rows: N, columns: C)
            d.layerNormBackward(dOut: g.all, input: x.all, weight: w.all, mean: mean.all, rstd: rstd.all, dInput: dx.all,
                                dWeight: dw.all, dBias: db.all, rows: N, columns: C)
            runs.append(try d.read(table.all) + d.read(y.all) + d.read(dx.all) + d.read(dw.all) + d.read(db.all))
        }
        #expect(runs[0] == runs[1])
        #expect(relativeError(runs[0], runs[2]) < 1e-6)
    }
}

/// GEMM timing per build on the model's shapes (MPO_GEMM_BENCH=1; tune with MPO_GEMM_LARGE/SMALL).
@Test("GEMM timing (MPO_GEMM_BENCH=1)", .enabled(if: Shared.available && ProcessInfo.processInfo.environment["MPO_GEMM_BENCH"] == "1"))
func gemmBench() throws {
    let d = try Shared.opencl()
    let shapes = [GemmShape(m: 512, n: 128, k: 128, transposeB: true), GemmShape(m: 512, n: 512, k: 128, transposeB: true),
                  GemmShape(m: 512, n: 128, k: 512), GemmShape(m: 128, n: 512, k: 512, transposeA: true, beta: 1)]
    for s in shapes {
        let a = try d.makeBuffer(randomFloats(s.extentA, seed: 1), label: "a"), b = try d.makeBuffer(randomFloats(s.extentB, seed: 2), label: "b")
        let c = try d.makeBuffer(count: s.extentC, label: "c")
        for v in [GemmVariant.large, .small] {
            d.gemm(s, a: a.all, b: b.all, c: c.all, variant: v)
            try d.synchronize()
            let clock = ContinuousClock(), reps = 5
            let t = try clock.measure { for _ in 0..<reps { d.gemm(s, a: a.all, b: b.all, c: c.all, variant: v) }; try d.synchronize() }
            let sec = Double(t.components.seconds) + Double(t.components.attoseconds) * 1e-18
            print("\(s) \(v): \(String(format: "%.2f ms, %.2f GFLOP/s", sec / Double(reps) * 1e3, s.flops * Double(reps) / sec * 1e-9))")
        }
    }
}
