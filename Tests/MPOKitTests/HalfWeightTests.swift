// 16-bit weights for inference (--core-dtype f16|bf16): the conversions against Swift's Float16
// and an exact bf16 rule, the fused widening against the scalar one for every bit pattern, and
// whole models — a tiny Llama with dense and plain-SVD layers stored in f16/bf16 gives the logits
// of the f32 model holding the same rounded weights, saves what it holds, and refuses training.
// (The ops themselves are rows of the op-case table: gemmPacked, embeddingForwardPacked.)

import CKernels
import Foundation
import Testing
import TensorTrain
import TestSupport
@testable import MPOKit

struct HalfConversionTests {
    static func toHalf(_ v: [Float], _ bf16: Bool) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: v.count)
        mpo_f32_to_half(v, &out, v.count, bf16 ? 1 : 0)
        return out
    }

    static func toFloat(_ h: [UInt16], _ bf16: Bool) -> [Float] {
        var out = [Float](repeating: 0, count: h.count)
        mpo_half_to_f32(h, &out, h.count, bf16 ? 1 : 0)
        return out
    }

    static let edges: [Float] = [0, -0.0, 1, -1, 65504, 65519.99, 65520, -65520, 1e10, .infinity, -.infinity,
                                 0x1p-14, 0x1p-24, 0x1.8p-25, 0x1p-25, 0x1p-26, 0x1.004p0, 0x1.002p0, 0x1.006p0,
                                 .leastNonzeroMagnitude, .greatestFiniteMagnitude, 3.1415927, -2.7182817, 6.1e-5]

    #if !(os(macOS) && arch(x86_64))
    @Test("f32 → f16 rounds as Swift's Float16 (nearest even, subnormals, overflow to inf) on edges and 100,000 values")
    func f16MatchesFloat16() {
        var rng = SplitMix64(seed: 7)
        var values = Self.edges
        for _ in 0..<100_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        values = values.filter { !$0.isNaN }
        let ours = Self.toHalf(values, false)
        for (v, h) in zip(values, ours) {
            #expect(h == Float16(v).bitPattern, "f16(\(v)): \(String(h, radix: 16)) vs \(String(Float16(v).bitPattern, radix: 16))")
        }
        // Widening is exact for every pattern (NaN stays NaN).
        let all = (0...UInt16.max).map { $0 }
        for (h, f) in zip(all, Self.toFloat(all, false)) {
            let ref = Float(Float16(bitPattern: h))
            #expect(f.bitPattern == ref.bitPattern || (f.isNaN && ref.isNaN))
        }
        #expect(Self.toHalf([.nan], false)[0] & 0x7c00 == 0x7c00 && Self.toHalf([.nan], false)[0] & 0x3ff != 0)
    }
    #endif

    @Test("f32 → bf16 keeps the nearer of the two neighbours (ties to even), inf stays inf, NaN stays NaN")
    func bf16Rounds() {
        var rng = SplitMix64(seed: 8)
        var values = Self.edges + [Float(bitPattern: 0x3f80_8000), Float(bitPattern: 0x3f81_8000), Float(bitPattern: 0x7f7f_ffff)]
        for _ in 0..<100_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        values = values.filter { !$0.isNaN }
        for (v, h) in zip(values, Self.toHalf(values, true)) {
            // The two bf16 neighbours; above the largest finite one the next is inf, at 2^128 as IEEE rounds.
            let lo = Float(bitPattern: v.bitPattern & 0xffff_0000), hi = Float(bitPattern: (v.bitPattern & 0xffff_0000) &+ 0x1_0000)
            let got = Float(bitPattern: UInt32(h) << 16)
            let dLo = abs(Double(v) - Double(lo)), dHi = abs(Double(v) - (hi.isInfinite ? 0x1p128 * Double(hi.sign == .minus ? -1 : 1) : Double(hi)))
            let expected = v.bitPattern & 0xffff == 0 ? lo : dLo < dHi ? lo : dHi < dLo ? hi : ((lo.bitPattern >> 16) & 1 == 0 ? lo : hi)
            #expect(got == expected || (got.isInfinite && expected.isInfinite && got.sign == expected.sign), "bf16(\(v)) = \(got), expected \(expected)")
        }
        #expect(Self.toFloat(Self.toHalf([.nan], true), true)[0].isNaN)
    }

    @Test("the vectorised widening of rows equals the scalar one for all 65,536 patterns, f16 and bf16")
    func rowsWidenExactly() {
        let all = (0...UInt16.max).map { $0 }
        for bf16 in [false, true] {
            var rows = [Float](repeating: 0, count: all.count)
            mpo_half_rows_to_f32(all, 256, 256, 256, &rows, 256, bf16 ? 1 : 0)
            let scalar = Self.toFloat(all, bf16)
            #expect(zip(rows, scalar).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })
        }
    }

    @Test("PackedMatrix writes of odd lengths at odd offsets keep their neighbours")
    func oddWrites() throws {
        let dev = CPUDevice()
        let buffer = try dev.makeBuffer(count: PackedMatrix.elements(rows: 5, columns: 7, format: .f16), label: "m")
        let m = PackedMatrix(name: "m", storage: buffer.all, rows: 5, columns: 7, format: .f16)
        let values = (0..<35).map { Float($0) * 0.25 - 3 }   // exact in f16
        for r in 0..<5 { try m.write(dev, Array(values[(r * 7)..<(r * 7 + 7)]), at: r * 7) }
        #expect(try m.read(dev) == values)
        try m.write(dev, [100], at: 17)
        var expected = values; expected[17] = 100
        #expect(try m.read(dev) == expected)
    }
}

struct HalfModelTests {
    /// llama-tiny with every linear a plain SVD of rank 5, as an inference model.
    static func lowRankLlama() throws -> Transformer {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        var fs: [String: MPOFactorization] = [:]
        for l in m.config.linearLayers where l.role != .down { fs[l.name] = MPOFactorization.lowRank(out: l.out, in: l.in) }
        var c = try Compression.compress(m, chi: 5, factorizations: fs).0.config
        for l in c.linearLayers where l.role == .down { c.bonds[l.name] = nil }   // down projections stay dense
        c.chi = nil
        let model = try Transformer(config: c, device: CPUDevice(), purpose: .inference)
        let (low, _) = try Compression.compress(m, chi: 5, factorizations: fs)
        for spec in model.layout.specs {
            try model.setParameter(spec.name, low.layout[spec.name] != nil ? try low.parameter(spec.name) : try m.parameter(spec.name))
        }
        return model
    }

    static func logits(_ model: Transformer) throws -> [Float] {
        let (tok, _, b, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        try model.forward(tokens: tok, batch: b, time: t, needsGradients: false)
        return try model.logits()
    }

    @Test("a model in f16/bf16 gives the logits of the f32 model holding its rounded weights; it stores the large matrices in half the bytes", arguments: [WeightDType.f16, .bf16])
    func logitsMatchRounded(_ dtype: WeightDType) throws {
        let f32 = try Self.lowRankLlama()
        let c = f32.config
        #expect(c.linearLayers.contains { if case .dense = c.linearKind($0.name, out: $0.out, in: $0.in) { return true }; return false })
        let half = try Transformer(config: c, device: CPUDevice(), purpose: .inference, weightDType: dtype)
        try half.load(from: f32)
        #expect(half.weightDType == dtype && !half.packed.isEmpty)
        // Every dense weight, SVD factor and the embedding are 16-bit; norms stay f32.
        for spec in c.parameterLayout().specs {
            let isMatrix = spec.role.isEmbedding || { if case .linearWeight = spec.role { return true }; if case .core = spec.role { return true }; return false }()
            #expect((half.packed[spec.name] != nil) == isMatrix, "\(spec.name)")
        }
        let bytes16 = half.packed.values.reduce(0) { $0 + 2 * $1.rows * $1.columns }
        #expect(half.weightBytes() == f32.weightBytes() - bytes16)
        // The f32 twin of what the half model holds.
        let rounded = try Transformer(config: c, device: CPUDevice(), purpose: .inference)
        try rounded.load(from: half)
        let a = try Self.logits(half), b = try Self.logits(rounded), exact = try Self.logits(f32)
        let diff = zip(a, b).map { abs($0 - $1) }.max()!, scale = b.map { abs($0) }.max()!
        #expect(diff <= 2e-5 * max(1, scale), "f16 model vs its f32 twin: \(diff)")
        // Rounding costs something (the test would pass trivially if nothing was rounded) but little.
        let cost = zip(a, exact).map { abs($0 - $1) }.max()!
        #expect(cost > 0 && cost < (dtype == .f16 ? 0.02 : 0.2) * max(1, scale), "rounding cost \(cost)")
        // What it holds reads back, saves and loads as the rounded weights.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("half-\(dtype.rawValue)-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try ModelCheckpoint.save(half, to: url)
        let back = try ModelCheckpoint.loadModel(url, device: CPUDevice(), purpose: .inference)
        for spec in c.parameterLayout().specs { #expect(try back.parameter(spec.name) == (try rounded.parameter(spec.name))) }
        // Loading a file straight into 16 bits gives the same model.
        let direct = try ModelCheckpoint.loadModel(url, device: CPUDevice(), purpose: .inference, weightDType: dtype)
        #expect(try Self.logits(direct) == a)
    }

    @Test("packed low-rank q/k/v and gate/up run as one product of their stacked V factors: each layer's factor is its block of rows, and the logits are those of running the layers one by one (decode and q8 bit for bit)",
          arguments: [WeightDType.f16, .bf16, .q8])
    func stackedFactors(_ dtype: WeightDType) throws {
        let f32 = try Self.lowRankLlama()
        let m = try Transformer(config: f32.config, device: CPUDevice(), purpose: .inference, weightDType: dtype)
        try m.load(from: f32)
        #expect(m.blocks.allSatisfy { $0.stackedQKV?.rows == 15 && $0.stackedGateUp?.rows == 10 })
        for b in m.blocks {
            for (stack, layers) in [(b.stackedQKV!, [b.query, b.key, b.value]), (b.stackedGateUp!, [b.gate!, b.up])] {
                let all = try stack.read(m.device)
                var r0 = 0
                for l in layers {
                    let v = l.packedFactors!.v
                    #expect(Array(all[(r0 * stack.columns)..<((r0 + v.rows) * stack.columns)]) == (try v.read(m.device)), "\(v.name)")
                    r0 += v.rows
                }
            }
        }
        let (tok, _, _, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        func run() throws -> (prefill: [Float], decode: [Float]) {
            let prefill = try Self.logits(m)
            let gen = try Generator(model: m, batch: 1, capacity: t)
            var stepped: [Float] = []
            for p in 0..<t { stepped += try gen.feed([[tok[p]]])[0] }
            return (prefill, stepped)
        }
        let stacked = try run()
        m.usesStackedFactors = false
        let alone = try run()
        // One row at a time (decode), and q8 at any rows, compute every output as the layers do
        // alone; a 16-bit prefill multiplies widened blocks by sgemm, whose blocks now differ.
        #expect(stacked.decode == alone.decode)
        let scale = alone.prefill.map { abs($0) }.max()!, diff = zip(stacked.prefill, alone.prefill).map { abs($0 - $1) }.max()!
        if dtype == .q8 { #expect(diff == 0) } else { #expect(diff <= 1e-5 * max(1, scale), "prefill off by \(diff) of \(scale)") }
        #expect(scale > 0)
    }

    @Test("general MPO layers keep f32 cores in an f16 model; decoding through the Generator matches the forward pass")
    func generalMPOStaysF32() throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        let (mpo, _) = try Compression.compress(m, chi: 4)
        let half = try Transformer(config: mpo.config, device: CPUDevice(), purpose: .inference, weightDType: .f16)
        try half.load(from: mpo)
        for spec in half.layout.specs {
            if case .core = spec.role { #expect(half.packed[spec.name] == nil, "\(spec.name) should stay f32") }
        }
        #expect(half.packed.keys.contains { $0.hasSuffix("embed_tokens.weight") || $0.contains("emb") })
        let (tok, _, b, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        let rows = Array(tok[0..<t])
        try half.forward(tokens: rows, batch: 1, time: t, needsGradients: false)
        let full = try half.logits(), V = half.config.vocabularySize
        let gen = try Generator(model: half, batch: 1, capacity: t)
        var stepped: [Float] = []
        for p in 0..<t { stepped += try gen.feed([[rows[p]]])[0] }
        #expect(zip(full, stepped).map { abs($0 - $1) }.max()! < 1e-4)
        #expect(stepped.count == t * V && b >= 1)
    }

    @Test("training refuses 16-bit weights with a message")
    func trainingRefuses() throws {
        let c = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference).config
        #expect(throws: ModelError.self) { try Transformer(config: c, device: CPUDevice(), purpose: .training, weightDType: .f16) }
    }
}
