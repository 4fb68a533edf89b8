// NonFiniteProbe: a NaN planted in one weight must reach the loss (PyTorch semantics: relu, exp
// and softmax keep NaN) and be caught by the trainer's non-finite guard, leaving the weights as
// they were. Shared by the CPU and OpenCL suites.

import MPOKit

public enum NonFiniteProbe {
    /// Where the NaN goes, and the path it must survive to reach the loss.
    public static let sites: [(parameter: String, path: String)] = [
        ("blocks.0.ffn.W1.weight", "ReLU"),              // relu(NaN) must stay NaN
        ("blocks.1.attn.W_q.weight", "attention exp"),   // NaN scores must not be clamped away
        ("lm_head.weight", "cross-entropy"),
    ]

    public struct Outcome: Sendable {
        public var loss: Double
        public var gradNorm: Double
        public var applied: Bool
        /// Every parameter and both moments kept their values (bit for bit) through the refused step.
        public var unchanged: Bool
        /// The optimiser's step count afterwards (a refused step is not counted).
        public var stepsCounted: Int
    }

    /// One training step of a small dense model on `device` with parameter `name`[3] = NaN.
    public static func step(device: any ComputeDevice, nanIn name: String) throws -> Outcome {
        let config = ModelConfig(vocabularySize: 11, channels: 16, heads: 2, layers: 2, context: 8, ffn: 32)
        let model = try Transformer(config: config, device: device)
        try model.initialize(seed: 3)
        var w = try model.parameter(name)
        w[3] = .nan
        try model.setParameter(name, w)
        let before = try device.read(model.params.all)
        var rng = SplitMix64(seed: 4)
        let tokens = (0..<16).map { _ in Int32(rng.below(11)) }, targets = (0..<16).map { _ in Int32(rng.below(11)) }
        let opt = try AdamW(model: model)
        let st = try opt.trainStep(tokens: tokens, targets: targets, batch: 2, time: 8, learningRate: 1e-3)
        let after = try device.read(model.params.all)
        let moments = try device.read(opt.m.all) + device.read(opt.v.all)
        let same = zip(before, after).allSatisfy { $0.bitPattern == $1.bitPattern } && moments.allSatisfy { $0 == 0 }
        return Outcome(loss: st.loss, gradNorm: st.gradNorm, applied: st.applied, unchanged: same, stepsCounted: opt.step)
    }
}
