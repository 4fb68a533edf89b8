// InferenceProbe: an inference-only model must compute what the training model computes, for
// every MPO contraction it may choose (rebuild, the fused site-by-site op, or the tuner's pick),
// on any device. Shared by the CPU and OpenCL suites.

import MPOKit

public enum InferenceProbe {
    /// Small models whose MPO layers have 2 and 3 sites (and a 4-site lm_head), at χ = 1, a middle
    /// value, and one above every full rank.
    public static func configs() -> [(name: String, config: ModelConfig)] {
        var out: [(String, ModelConfig)] = []
        for chi in [1, 3, 40] {
            var c = ModelConfig(vocabularySize: 24, channels: 16, heads: 2, layers: 2, context: 64, ffn: 32, chi: chi)
            for b in 0..<2 {   // W1/W2 on three sites, the attention projections on two
                c.factorizations["blocks.\(b).ffn.W1"] = try! MPOFactorization(outFactors: [2, 4, 4], inFactors: [2, 2, 4])
                c.factorizations["blocks.\(b).ffn.W2"] = try! MPOFactorization(outFactors: [2, 2, 4], inFactors: [2, 4, 4])
            }
            c.factorizations["lm_head"] = try! MPOFactorization(outFactors: [2, 3, 2, 2], inFactors: [2, 2, 2, 2])
            out.append(("χ=\(chi)", c))
        }
        return out
    }

    /// The largest relative difference of the logits of an inference model (under `strategy`)
    /// from the training model's, over row counts 1, 7 and 64, on `device`.
    public static func worstLogitError(_ config: ModelConfig, strategy: MPOStrategy, device: any ComputeDevice) throws -> Double {
        let train = try Transformer(config: config, device: device)
        try train.initialize(seed: 3)
        let infer = try Transformer(config: config, device: device, purpose: .inference)
        try infer.load(from: train)
        infer.mpoStrategy = strategy
        var rng = SplitMix64(seed: 4), worst = 0.0
        for (batch, time) in [(1, 1), (1, 7), (2, 32)] {
            let tokens = (0..<(batch * time)).map { _ in Int32(rng.below(config.vocabularySize)) }
            try train.forward(tokens: tokens, batch: batch, time: time, needsGradients: false)
            try infer.forward(tokens: tokens, batch: batch, time: time, needsGradients: false)
            worst = max(worst, relativeError(try infer.logits(), try train.logits()))
        }
        return worst
    }
}
