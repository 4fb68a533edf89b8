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

    /// Devices with the GPU build of gemm.cl (128×128 tiles, 8×8 per work-item, float4 loads,
    /// prefetch) and with split-K forced on every single product of at least 16 deep.
    static let gpuTiled = Result { try OpenCLDevice(adjust: { $0.gemmLarge = .gpu; $0.splitKTargetGroups = 0 }) }
    static let splitting = Result { try OpenCLDevice(adjust: { $0.splitKTargetGroups = 1 << 20; $0.splitKMinDepth = 16 }) }
    static let longK: [GemmShape] = [
        GemmShape(m: 130, n: 70, k: 1000, lda: 1003, ldb: 71, ldc: 75, alpha: 0.75, beta: 1),
        GemmShape(m: 130, n: 70, k: 1000, transposeA: true, transposeB: true, lda: 131, ldb: 1002, alpha: -1),
        GemmShape(m: 128, n: 512, k: 2048, transposeA: true, beta: 1),     // dW = dYᵀ·X
        GemmShape(m: 257, n: 255, k: 77, transposeB: true),                 // two GPU tiles and an edge each way
    ]

    @Test("the GPU tiling and forced split-K match the CPU", arguments: gemmShapes + longK, ["gpu", "split"])
    func gemmBuilds(_ s: GemmShape, build: String) throws {
        let d = try (build == "gpu" ? Self.gpuTiled : Self.splitting).get()
        let a = randomFloats(s.extentA, seed: 1), b = randomFloats(s.extentB, seed: 2), c = randomFloats(s.extentC, seed: 3)
        let cpu = CPUDevice()
        let (ca, cb, cc) = (try cpu.makeBuffer(a, label: "a"), try cpu.makeBuffer(b, label: "b"), try cpu.makeBuffer(c, label: "c"))
        cpu.gemm(s, a: ca.all, b: cb.all, c: cc.all)
        let expected = try cpu.read(cc.all)
        let (da, db, dc) = (try d.makeBuffer(a, label: "a"), try d.makeBuffer(b, label: "b"), try d.makeBuffer(c, label: "c"))
        for variant in [GemmVariant.automatic, .large, .reference] {
            try d.write(c, to: dc.all)
            d.gemm(s, a: da.all, b: db.all, c: dc.all, variant: variant)
            #expect(relativeError(try d.read(dc.all), expected) < 1e-6, "\(s) \(build) \(variant)")
        }
        if build == "split", s.batch == 1, s.k >= 32 {
            let split = try #require(d.splitK(s, tiling: d.tuning.gemmLarge))
            #expect(split.shape.batch >= 2 && split.shape.strideC == 0)
            #expect((split.shape.batch - 1) * split.shape.k + split.kLast == s.k && split.kLast > 0 && split.kLast <= split.shape.k)
        }
    }

    static let unfolded = Result { try OpenCLDevice(adjust: { $0.foldBatches = false }) }
    static let foldShapes: [GemmShape] = [
        GemmShape(m: 8, n: 16, k: 32, transposeA: true, batch: 300, strideA: 0, strideB: 512, strideC: 128),    // MPO site forward
        GemmShape(m: 32, n: 16, k: 8, batch: 300, strideA: 0, strideB: 128, strideC: 512),                      // site dInput
        GemmShape(m: 12, n: 8, k: 16, transposeB: true, batch: 100, strideA: 192, strideB: 0, strideC: 96),     // shared B: rows
        GemmShape(m: 12, n: 10, k: 7, transposeA: true, alpha: 0.5, beta: 1, batch: 50, strideA: 84, strideB: 0, strideC: 120),
        GemmShape(m: 4, n: 3, k: 5, ldc: 60, batch: 20, strideA: 0, strideB: 15, strideC: 3),                   // items side by side in C
        GemmShape(m: 70, n: 66, k: 40, transposeA: true, transposeB: true, ldb: 41, beta: 1, batch: 3, strideA: 0, strideB: 66 * 41, strideC: 70 * 66),
    ]

    @Test("batches sharing A or B run folded, bit for bit as unfolded and within 1e-6 of the CPU", arguments: foldShapes)
    func folded(_ s: GemmShape) throws {
        let d = try Shared.opencl(), plain = try Self.unfolded.get()
        let fold = try #require(d.foldedBatch(s))
        #expect(fold.shape.batch == 1 && (fold.fold == 1 ? fold.shape.n == s.n * s.batch : fold.shape.m == s.m * s.batch))
        #expect(plain.foldedBatch(s) == nil)
        let a = randomFloats(s.extentA, seed: 11), b = randomFloats(s.extentB, seed: 12), c = randomFloats(s.extentC, seed: 13)
        let cpu = CPUDevice()
        let cc = try cpu.makeBuffer(c, label: "c")
        cpu.gemm(s, a: try cpu.makeBuffer(a, label: "a").all, b: try cpu.makeBuffer(b, label: "b").all, c: cc.all)
        let expected = try cpu.read(cc.all)
        for variant in [GemmVariant.automatic, .large, .small] {
            var outs: [[Float]] = []
            for dev in [d, plain] {
                let out = try dev.makeBuffer(c, label: "c")
                dev.gemm(s, a: try dev.makeBuffer(a, label: "a").all, b: try dev.makeBuffer(b, label: "b").all, c: out.all, variant: variant)
                outs.append(try dev.read(out.all))
            }
            #expect(relativeError(outs[0], expected) < 1e-6, "\(s) \(variant)")
            if variant != .automatic { #expect(outs[0].map(\.bitPattern) == outs[1].map(\.bitPattern), "\(s) \(variant): folded differs") }
        }
    }

    @Test("split-K cuts the weight gradients on the default tuning, and nothing else")
    func splitKPolicy() throws {
        let d = try Shared.opencl()
        let t = d.tuning.gemmLarge
        // dW of a 128×128 projection at B·T = 8,192: 4 large tiles, fewer than 4 per compute unit.
        let dW = GemmShape(m: 128, n: 128, k: 8192, transposeA: true)
        let tiles = ((128 + t.tm - 1) / t.tm) * ((128 + t.tn - 1) / t.tn)
        #expect(tiles < d.tuning.splitKTargetGroups)   // 4 tiles < 4 per compute unit on any device with 2+ units
        let split = try #require(d.splitK(dW, tiling: t))
        #expect(split.shape.batch * tiles >= min(d.tuning.splitKTargetGroups, 2 * tiles))
        #expect(split.shape.k % t.tk == 0 && (split.shape.batch - 1) * split.shape.k + split.kLast == 8192)
        #expect(d.splitK(GemmShape(m: 8192, n: 128, k: 128), tiling: t) == nil)            // forward: many tiles, short K
        #expect(d.splitK(GemmShape(m: 12, n: 8, k: 16, batch: 4, strideA: 192, strideB: 128, strideC: 0), tiling: t) == nil)
        #expect(d.splitK(GemmShape(m: 16, n: 16, k: 100), tiling: t) == nil)                 // too short to cut
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
