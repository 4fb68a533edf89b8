// The accuracy recipes end to end on tiny models: distillation (α = 0 is plain training bit for
// bit; a teacher equal to the student adds nothing; the whole-model gradient of the combined
// loss matches a directional finite difference), progressive truncation (the schedule's χ, reset
// moments, resume across it bit-exact), the budgeted allocation (fits the budget, beats a
// starved layer), and the whole-split evaluation (every window exactly once).

import Foundation
import Testing
@testable import MPOKit
import TensorTrain

@Suite("Compression recipes")
struct RecipeTests {
    static let config = ModelConfig(vocabularySize: 11, channels: 16, heads: 2, layers: 2, context: 8, ffn: 32)

    static func model(seed: UInt64, config: ModelConfig = config, purpose: ModelPurpose = .training) throws -> Transformer {
        let m = try Transformer(config: config, device: CPUDevice(threads: 1), purpose: purpose)
        try m.initialize(seed: seed)
        return m
    }

    static func batch(_ seed: UInt64) -> ([Int32], [Int32]) {
        var rng = SplitMix64(seed: seed)
        return ((0..<16).map { _ in Int32(rng.below(11)) }, (0..<16).map { _ in Int32(rng.below(11)) })
    }

    /// A teacher on `device` from the weights of a model made with `seed`.
    static func teacher(seed: UInt64, on device: any ComputeDevice, weight: Double, temperature: Double = 2,
                        hidden: Double = 0) throws -> Teacher {
        let t = try Transformer(config: config, device: device, purpose: .inference)
        try t.load(from: try model(seed: seed))
        return try Teacher(model: t, options: DistillationOptions(teacher: "test", weight: weight, temperature: temperature,
                                                                  hiddenWeight: hidden))
    }

    @Test("α = 0 trains bit for bit like no teacher; a teacher equal to the student adds no loss and scales the gradient by 1 − α")
    func distillationLimits() throws {
        let (tok, tgt) = Self.batch(1)
        let plain = try Self.model(seed: 2), opt = try AdamW(model: plain)
        let st = try opt.trainStep(tokens: tok, targets: tgt, batch: 2, time: 8, learningRate: 1e-2)
        let zeroAlpha = try Self.model(seed: 2)
        let t0 = try Self.teacher(seed: 9, on: zeroAlpha.device, weight: 0)
        let st0 = try AdamW(model: zeroAlpha).trainStep(tokens: tok, targets: tgt, batch: 2, time: 8, learningRate: 1e-2, teacher: t0)
        #expect(st0.loss == st.loss && st0.gradNorm == st.gradNorm)
        #expect(try zeroAlpha.device.read(zeroAlpha.params.all) == (try plain.device.read(plain.params.all)))

        let student = try Self.model(seed: 2)
        student.zeroGradients()
        let r = try student.forward(tokens: tok, targets: tgt, batch: 2, time: 8)
        try student.backward()
        let g = try student.device.read(try student.gradientArena().all)
        let self_ = try Self.teacher(seed: 2, on: student.device, weight: 0.7, hidden: 0.3)
        student.zeroGradients()
        let d = try student.forward(tokens: tok, targets: tgt, batch: 2, time: 8, distill: try self_.targets(tokens: tok, batch: 2, time: 8))
        try student.backward()
        #expect(abs(d.distillation!) < 1e-6 && d.hidden! < 1e-12, "KL \(d.distillation!), hidden \(d.hidden!)")
        #expect(abs(d.loss - 0.3 * r.loss) < 1e-6 && d.crossEntropy == r.loss)
        let gd = try student.device.read(try student.gradientArena().all)
        #expect(relativeError(gd, g.map { 0.3 * $0 }) < 1e-5)
    }

    @Test("the gradient of (1 − α)·CE + α·τ²·KL + β·MSE matches a directional finite difference")
    func distillationGradient() throws {
        let (tok, tgt) = Self.batch(3)
        let student = try Self.model(seed: 4)
        let teacher = try Self.teacher(seed: 5, on: student.device, weight: 0.6, temperature: 1.5, hidden: 2)
        let targets = try teacher.targets(tokens: tok, batch: 2, time: 8)
        func loss() throws -> Double {
            try student.forward(tokens: tok, targets: tgt, batch: 2, time: 8, needsGradients: false, distill: targets).loss
        }
        student.zeroGradients()
        _ = try student.forward(tokens: tok, targets: tgt, batch: 2, time: 8, distill: targets)
        try student.backward()
        let g = try student.device.read(try student.gradientArena().all)
        var rng = SplitMix64(seed: 6)
        let u = (0..<g.count).map { _ in Float(rng.normal()) }
        let p0 = try student.device.read(student.params.all)
        let eps: Float = 1e-3
        func shifted(_ s: Float) throws -> Double {
            try student.device.write(zip(p0, u).map { $0 + s * $1 }, to: student.params.all)
            student.parametersChanged()
            return try loss()
        }
        let numeric = (try shifted(eps) - shifted(-eps)) / Double(2 * eps)
        let analytic = zip(g, u).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(numeric - analytic) <= 2e-2 * abs(analytic), "numeric \(numeric) vs analytic \(analytic)")
    }

    @Test("a χ schedule truncates at its steps, resets the cores' moments, and a resume across it is exact")
    func chiSchedule() throws {
        let data = try Tiny.data()
        var options = Tiny.options(steps: 12)
        options.chiSchedule = try ChiSchedule(parsing: "6@0,3@6")
        options.evalInterval = 4
        let config = Tiny.config(vocabulary: data.vocabularySize)   // dense: compressed at step 0
        func trainer(_ dir: URL) throws -> Trainer {
            let m = try Transformer(config: config, device: CPUDevice(threads: 1))
            try m.initialize(seed: 1)
            return try Trainer(model: m, data: data, options: options, directory: dir)
        }
        let straight = try trainer(Tiny.tempDir())
        var truncations: [(Int, Int)] = []
        straight.onTruncation = { step, chi, _ in truncations.append((step, chi)) }
        try straight.run()
        #expect(truncations.map(\.0) == [0, 6] && truncations.map(\.1) == [6, 3])
        let bonds = straight.model.config.bonds.values.flatMap { $0.dropFirst().dropLast() }
        #expect(!bonds.isEmpty && bonds.allSatisfy { $0 <= 3 })
        let records = try String(contentsOf: straight.metricsURL, encoding: .utf8).split(separator: "\n")
            .compactMap { try? MetricsRecord.decode(Data($0.utf8)) }
            .compactMap { if case .truncation(let t) = $0 { return t } else { return nil } }
        #expect(records.map(\.chi) == [6, 3] && records.allSatisfy { $0.relativeError > 0 && $0.relativeError < 1 })
        // Stopped after the step-8 checkpoint (past the truncation at 6), resumed: the same run.
        let dir = Tiny.tempDir()
        let first = try trainer(dir)
        first.onStep = { if $0.step == 9 { throw SimulatedCrash() } }
        #expect(throws: SimulatedCrash.self) { try first.run() }
        let resumed = try trainer(dir)
        try resumed.run(resume: true)
        #expect(Array(first.losses.prefix(8)) + resumed.losses == straight.losses)
        #expect(try resumed.model.device.read(resumed.model.params.all) == (try straight.model.device.read(straight.model.params.all)))
    }

    @Test("the budgeted allocation fits the budget and puts its parameters where the error falls fastest")
    func allocation() throws {
        let m = try Self.model(seed: 7, config: ModelConfig(vocabularySize: 11, channels: 16, heads: 2, layers: 1, context: 8, ffn: 32))
        // W_q an exact MPO of bond 2 and every other layer full rank: W_q should stop at bond 2.
        var rng = SplitMix64(seed: 8)
        let f = Compression.factorization(of: "blocks.0.attn.W_q", in: m, chi: 8)   // the one the allocation uses
        let cores = f.coreShapes(bonds: [1, 2, 1]).map { shape in (0..<shape.reduce(1, *)).map { _ in Float(rng.normal()) } }
        let wq = contractMPO(MPOCores<Float>(factorization: f, bonds: [1, 2, 1], cores: cores))
        try m.setParameter("blocks.0.attn.W_q.weight", wq)
        let budget = 2_000
        let alloc = try BondAllocator.allocate(m, parameters: budget)
        #expect(alloc.modelParameters <= budget)
        let (compressed, reports) = try Compression.compress(m, chi: 1, bondCaps: alloc.bonds, factorizations: alloc.factorizations)
        #expect(compressed.parameterCount == alloc.modelParameters)
        let q = try #require(reports.first { $0.layer == "blocks.0.attn.W_q" })
        #expect(q.bonds.max()! <= 2 && q.relativeError < 1e-5, "W_q \(q.bonds) error \(q.relativeError)")
        #expect(reports.allSatisfy { abs($0.relativeError - alloc.predictedError[$0.layer]!) < 1e-9 })
        // No layer's cores outgrow its dense matrix, however large the budget.
        let rich = try BondAllocator.allocate(m, parameters: 1_000_000)
        for l in m.config.linearLayers {
            #expect(rich.factorizations[l.name]!.parameterCount(bonds: rich.bonds[l.name]!) <= l.out * l.in, "\(l.name)")
        }
        // A floor: every layer at χ ≥ 3 (where its rank allows), W_q still stopping at its rank 2.
        let floored = try BondAllocator.allocate(m, parameters: budget, minimumChi: 3)
        #expect(floored.modelParameters <= budget)
        for l in m.config.linearLayers where l.name != "blocks.0.attn.W_q" {
            let f = floored.factorizations[l.name]!
            #expect(zip(floored.bonds[l.name]!, f.cappedBonds(chi: 3)).allSatisfy { $0 >= $1 }, "\(l.name) \(floored.bonds[l.name]!)")
        }
        #expect { try BondAllocator.allocate(m, parameters: 1_500, minimumChi: 6) } throws: { "\($0)".contains("χ = 6") }
        // Too small a budget says what the minimum is.
        #expect { try BondAllocator.allocate(m, parameters: 100) } throws: { "\($0)".contains("smallest MPO model") }
    }

    @Test("evaluateAll scores every non-overlapping window once, deterministically")
    func wholeSplit() throws {
        let m = try Self.model(seed: 10, purpose: .inference)
        var rng = SplitMix64(seed: 11)
        let split = (0..<83).map { _ in Int32(rng.below(11)) }   // (83 − 1) / 8 = 10 windows
        let r = try m.evaluateAll(split, time: 8, batchSize: 3)
        #expect(r.windows == 10 && r.tokens == 80)
        var loss = 0.0
        for w in 0..<10 {
            let tok = Array(split[(w * 8)..<(w * 8 + 8)]), tgt = Array(split[(w * 8 + 1)...(w * 8 + 8)])
            loss += try m.forward(tokens: tok, targets: tgt, batch: 1, time: 8, needsGradients: false).loss
        }
        #expect(abs(r.loss - loss / 10) < 1e-6)
        #expect(abs(try m.evaluateAll(split, time: 8, batchSize: 4).loss - r.loss) < 1e-6)
    }
}
