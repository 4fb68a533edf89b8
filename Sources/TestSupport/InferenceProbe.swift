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

    /// A tiny Llama (grouped-query, rotary, SwiGLU, tied head) and GPT-2 (learned positions, GELU,
    /// biases, tied head), dense and with every linear an MPO of χ = 3.
    public static func familyConfigs() -> [(name: String, config: ModelConfig)] {
        var out: [(String, ModelConfig)] = []
        for (family, arch) in [("llama", Architecture.llama(theta: 500, kvHeads: 2, tiedHead: true)), ("gpt2", Architecture.gpt2)] {
            for chi in [nil, 3] {
                var c = ModelConfig(vocabularySize: 24, channels: 24, heads: 4, layers: 2, context: 40, ffn: 40, chi: chi, architecture: arch)
                if let chi { c = c.choosingFactorizations(chi: chi) }
                out.append(("\(family) " + (chi.map { "χ=\($0)" } ?? "dense"), c))
            }
        }
        return out
    }

    /// KV-cache decoding of an inference-only model against its full forward: `batch` sequences
    /// (the same prompt), a prefill of 5 tokens then one token at a time to 24; the largest
    /// |Δlogit| relative to the largest logit.
    public static func worstDecodeError(_ config: ModelConfig, batch: Int, strategy: MPOStrategy, device: any ComputeDevice) throws -> Double {
        let model = try Transformer(config: config, device: device, purpose: .inference)
        try model.initialize(seed: 6)
        model.mpoStrategy = strategy
        var rng = SplitMix64(seed: 8)
        let tokens = (0..<24).map { _ in Int32(rng.below(config.vocabularySize)) }, V = config.vocabularySize
        try model.forward(tokens: tokens, batch: 1, time: tokens.count, needsGradients: false)
        let full = try model.logits()
        let scale = Double(full.map { abs($0) }.max() ?? 1)
        let gen = try Generator(model: model, batch: batch)
        var worst = 0.0
        func check(_ logits: [[Float]], _ p: Int) {
            for l in logits { for j in 0..<V { worst = max(worst, Double(abs(l[j] - full[p * V + j])) / scale) } }
        }
        check(try gen.feed([[Int32]](repeating: Array(tokens[..<5]), count: batch)), 4)
        for p in 5..<tokens.count { check(try gen.feed([[Int32]](repeating: [tokens[p]], count: batch)), p) }
        return worst
    }
}
