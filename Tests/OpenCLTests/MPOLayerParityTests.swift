// MPO layers on OpenCL against the CPU device for the awkward cases of the contraction:
// χ = 1, χ above the possible rank, L = 2 and L = 3 sites, both strategies — every gradient of a
// small model after one forward/backward, and ten training steps of a small dense and a small
// MPO model whose losses must agree to 1e-4.

import Foundation
@testable import MPOKit
import MPOOpenCL
import Testing
import TensorTrain

@Suite("OpenCL MPO layers and training vs CPU", .enabled(if: Shared.available, OpenCLGate.reason))
struct MPOLayerParityTests {
    /// vocab 20, d 32, 2 heads, 1 block, context 16, d_ff 64; W1/W2 factorised over three sites.
    static func config(chi: Int?) throws -> ModelConfig {
        var c = ModelConfig(vocabularySize: 20, channels: 32, heads: 2, layers: 1, context: 16, ffn: 64, chi: chi)
        if chi != nil {
            c.factorizations["blocks.0.ffn.W1"] = try MPOFactorization(outFactors: [4, 4, 4], inFactors: [2, 4, 4])
            c.factorizations["blocks.0.ffn.W2"] = try MPOFactorization(outFactors: [2, 4, 4], inFactors: [4, 4, 4])
        }
        return c
    }

    static func batch(_ seed: UInt64) -> ([Int32], [Int32]) {
        var rng = SplitMix64(seed: seed)
        return ((0..<48).map { _ in Int32(rng.below(20)) }, (0..<48).map { _ in Int32(rng.below(20)) })
    }

    @Test("every gradient matches the CPU", arguments: [1, 3, 80], [MPOStrategy.rebuild, .siteBySite])
    func gradients(chi: Int, strategy: MPOStrategy) throws {
        let cfg = try Self.config(chi: chi)
        var losses: [Double] = [], grads: [[String: [Float]]] = []
        for device in [CPUDevice() as any ComputeDevice, try Shared.opencl()] {
            let m = try Transformer(config: cfg, device: device)
            try m.initialize(seed: 4)
            m.mpoStrategy = strategy
            m.zeroGradients()
            let (tok, tgt) = Self.batch(1)
            losses.append(try m.forward(tokens: tok, targets: tgt, batch: 3, time: 16).loss)
            #expect(Set(m.lastMPOStrategies.values) == [strategy])
            try m.backward()
            grads.append(Dictionary(uniqueKeysWithValues: try m.layout.specs.map { ($0.name, try m.gradient($0.name)) }))
        }
        #expect(abs(losses[0] - losses[1]) < 1e-5)
        for (name, g) in grads[0] {
            let err = relativeError(grads[1][name]!, g)
            #expect(err < 1e-4 || maxAbsDifference(grads[1][name]!, g) < 1e-7, "\(name): \(err)")
        }
    }

    @Test("ten training steps give the CPU's losses to 1e-4", arguments: [nil, 4] as [Int?], [ModelFamily.picogpt, .gpt2, .llama])
    func tenSteps(chi: Int?, family: ModelFamily) throws {
        var config = try Self.config(chi: chi)
        if family != .picogpt {   // the same sizes in a GPT-2 / grouped-query Llama block, factorisations chosen
            config = ModelConfig(vocabularySize: 20, channels: 32, heads: 2, layers: 1, context: 16, ffn: 64, chi: chi,
                                 architecture: family == .llama ? .llama(kvHeads: 1) : .gpt2)
            if let chi { config = config.choosingFactorizations(chi: chi) }
        }
        var curves: [[Double]] = []
        for device in [CPUDevice() as any ComputeDevice, try Shared.opencl()] {
            let m = try Transformer(config: config, device: device)
            try m.initialize(seed: 9)
            let opt = try AdamW(model: m)
            curves.append(try (0..<10).map { s in
                let (tok, tgt) = Self.batch(UInt64(100 + s % 2))   // two batches, alternating: the loss must fall
                return try opt.trainStep(tokens: tok, targets: tgt, batch: 3, time: 16, learningRate: 3e-3).loss
            })
        }
        for s in 0..<10 { #expect(abs(curves[0][s] - curves[1][s]) < 1e-4, "step \(s): \(curves[0][s]) vs \(curves[1][s])") }
        #expect(curves[0][9] < curves[0][0])
    }

    @Test("a training step waits for the device once, and its scalars are the CPU's", arguments: [
        (nil, false), (4, false), (4, true),
    ] as [(Int?, Bool)])
    func oneHostWait(chi: Int?, distill: Bool) throws {
        var stats: [[StepStats]] = []
        var waits: [Int] = []
        // A device of its own: the shared one's counters also count concurrent tests' waits.
        for device in [CPUDevice() as any ComputeDevice, try OpenCLDevice()] {
            let m = try Transformer(config: try Self.config(chi: chi), device: device)
            try m.initialize(seed: 9)
            var teacher: Teacher? = nil
            if distill {
                let t = try Transformer(config: try Self.config(chi: nil), device: device, purpose: .inference)
                try t.initialize(seed: 4)
                teacher = try Teacher(model: t, options: DistillationOptions(teacher: "t", weight: 0.5, temperature: 2))
            }
            let opt = try AdamW(model: m)
            var run: [StepStats] = []
            for s in 0..<3 {
                let (tok, tgt) = Self.batch(UInt64(200 + s))
                let before = device.queueCounters
                run.append(try opt.trainStep(tokens: tok, targets: tgt, batch: 3, time: 16, learningRate: 3e-3, teacher: teacher))
                if let b = before, let a = device.queueCounters { waits.append((a - b).hostWaits) }
            }
            stats.append(run)
        }
        #expect(waits == [1, 1, 1], "host waits per step: \(waits)")
        for s in 0..<3 {
            let (c, o) = (stats[0][s], stats[1][s])
            #expect(abs(c.loss - o.loss) < 1e-4 && abs(c.gradNorm - o.gradNorm) < 1e-4 * c.gradNorm, "step \(s): \(c) vs \(o)")
            #expect(c.accuracy == o.accuracy && c.applied && o.applied)
            #expect(abs((c.pass.distillation ?? 0) - (o.pass.distillation ?? 0)) < 1e-4)
            #expect((c.pass.distillation != nil) == distill)
        }
    }
}
