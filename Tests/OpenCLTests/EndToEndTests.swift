// The whole model on the OpenCL device: the PyTorch reference checkpoints (dense and MPO χ=4,
// both contraction strategies) loaded with `ModelCheckpoint.loadModel(_:device: OpenCLDevice)`,
// checked with the CPU suites' tolerances (loss 1e-5 abs, logits 1e-4 abs, every gradient 1e-4
// relative), then a few AdamW steps on the reference batches whose losses must agree with the
// CPU device's to 1e-4 (and with PyTorch's to 1e-3). Also prints the time of a dense training
// step at B=8, T=64.

import Foundation
@testable import MPOKit
import MPOOpenCL
import Testing

@Suite("OpenCL PicoGPT vs PyTorch and CPU", .enabled(if: Shared.available, OpenCLGate.reason))
struct EndToEndTests {
    static let models: [(String, MPOStrategy)] = [("dense", .automatic), ("mpo4", .rebuild), ("mpo4", .siteBySite)]

    /// Per-gradient tolerance against PyTorch: the CPU suites' 1e-4, except χ=4 `.rebuild`, where
    /// one pre-activation of block 0's W1 (row 34, unit 270) is +1.0e-8 here and ≤ 0 on the CPU
    /// (rounding level for a 128-term dot product): the flipped ReLU mask passes one extra
    /// upstream gradient of 1e-4, which moves block 0's W1/LN2 gradients by up to 8e-4 relative
    /// and block 0's attention/LN1/embedding gradients by ~1e-4. Loss and logits are unaffected,
    /// and the training trajectory still matches the CPU to 1e-4.
    static func gradientTolerance(_ name: String, _ strategy: MPOStrategy) -> Double {
        name == "mpo4" && strategy == .rebuild ? 1e-3 : 1e-4
    }

    @Test("loss, logits and every gradient match PyTorch", arguments: models)
    func lossLogitsGradients(model name: String, strategy: MPOStrategy) throws {
        let json = try Reference.json("\(name)_seed2024.json")
        let out = try Reference.file("\(name)_seed2024_outputs.safetensors")
        let model = try ModelCheckpoint.loadModel(Reference.url("\(name)_seed2024.safetensors"), device: try Shared.opencl(), hints: Reference.hints)
        model.mpoStrategy = strategy
        let (tok, tgt, b, t) = Reference.batch(json)
        model.zeroGradients()
        let r = try model.forward(tokens: tok, targets: tgt, batch: b, time: t)
        if strategy != .automatic { #expect(Set(model.lastMPOStrategies.values) == [strategy]) }
        #expect(abs(r.loss - (json["loss_f64"] as! Double)) < 1e-5, "loss \(r.loss)")
        #expect(maxAbsDifference(try model.logits(), try out.doubles("logits_f64")) < 1e-4)
        try model.backward()
        var worst = (name: "", error: 0.0)
        for spec in model.layout.specs {
            let err = relativeError(try model.gradient(spec.name), try out.doubles("grad.\(spec.name)"))
            #expect(err <= Self.gradientTolerance(name, strategy), "gradient of \(spec.name): relative error \(err)")
            if err > worst.error { worst = (spec.name, err) }
        }
        let norm = try model.gradientNorm()
        #expect(abs(norm - (json["grad_total_l2_norm_f64"] as! Double)) / norm < 1e-4)
        print("\(name) \(strategy): loss \(r.loss) vs \(json["loss_f64"] as! Double); worst gradient \(worst.name) \(worst.error)")
    }

    @Test("a few AdamW steps agree with the CPU device and PyTorch", arguments: models)
    func trainingSteps(model name: String, strategy: MPOStrategy) throws {
        let steps = 3
        let j = try Reference.json("\(name)_seed2024_train10.json")
        let vocab = try Reference.json("\(name)_seed2024.json")["vocab"] as! String
        let offsets = j["batch_char_offsets"] as! [[Int]], lrs = j["lr"] as! [Double], t = j["T"] as! Int
        let torchLosses = j["loss_f64"] as! [Double]
        var trajectories: [[StepStats]] = []
        for device in [try Shared.opencl() as any ComputeDevice, CPUDevice()] {
            let model = try ModelCheckpoint.loadModel(Reference.url("\(name)_seed2024.safetensors"), device: device, hints: Reference.hints)
            model.mpoStrategy = strategy
            let opt = try AdamW(model: model)
            var stats: [StepStats] = []
            for s in 0..<steps {
                let (tok, tgt) = try Reference.windows(offsets[s], time: t, vocab: vocab)
                stats.append(try opt.trainStep(tokens: tok, targets: tgt, batch: offsets[s].count, time: t, learningRate: lrs[s]))
            }
            trajectories.append(stats)
        }
        for s in 0..<steps {
            let cl = trajectories[0][s], cpu = trajectories[1][s]
            #expect(abs(cl.loss - cpu.loss) < 1e-4, "step \(s): OpenCL loss \(cl.loss) vs CPU \(cpu.loss)")
            #expect(abs(cl.gradNorm - cpu.gradNorm) / cpu.gradNorm < 1e-4, "step \(s): grad norm \(cl.gradNorm) vs \(cpu.gradNorm)")
            #expect(abs(cl.loss - torchLosses[s]) < 1e-3, "step \(s): OpenCL loss \(cl.loss) vs PyTorch \(torchLosses[s])")
        }
        print("\(name) \(strategy): OpenCL losses \(trajectories[0].map(\.loss)), CPU \(trajectories[1].map(\.loss))")
    }

    @Test("time of a dense training step at B=8, T=64")
    func stepTime() throws {
        let device = try Shared.opencl()
        let model = try Transformer(config: .picoGPT, device: device)
        try model.initialize(seed: 7)
        let opt = try AdamW(model: model)
        let B = 8, T = 64
        var rng = SplitMix64(seed: 8)
        let tokens = (0..<(B * T)).map { _ in Int32(rng.below(model.config.vocabularySize)) }
        let targets = (0..<(B * T)).map { _ in Int32(rng.below(model.config.vocabularySize)) }
        try opt.trainStep(tokens: tokens, targets: targets, batch: B, time: T, learningRate: 1e-3)   // warm-up
        let clock = ContinuousClock()
        var losses: [Double] = []
        let elapsed = try clock.measure {
            for _ in 0..<3 { losses.append(try opt.trainStep(tokens: tokens, targets: targets, batch: B, time: T, learningRate: 1e-3).loss) }
        }
        #expect(losses.allSatisfy { $0.isFinite })
        #expect(losses.last! < losses.first!)
        print("dense PicoGPT train step B=\(B) T=\(T) on \(device.name): \(elapsed / 3) per step")
        if ProcessInfo.processInfo.environment["MPO_OPENCL_STEP_PROFILE"] == "1" {
            device.profiling = true
            device.resetProfile()
            try opt.trainStep(tokens: tokens, targets: targets, batch: B, time: T, learningRate: 1e-3)
            device.profiling = false
            print(device.profileReport())
        }
    }
}

@Suite("NaN propagation (OpenCL)", .enabled(if: Shared.available, OpenCLGate.reason))
struct OpenCLNaNPropagationTests {
    @Test("a NaN weight reaches the loss and the non-finite guard refuses the step", arguments: NonFiniteProbe.sites.map(\.parameter))
    func nanWeight(name: String) throws {
        let o = try NonFiniteProbe.step(device: try Shared.opencl(), nanIn: name)
        #expect(o.loss.isNaN, "\(name): loss \(o.loss) — the NaN vanished on its way")
        #expect(!o.applied && o.unchanged && o.stepsCounted == 0, "\(name): the update was applied")
    }
}
