// Layer sensitivities from gradients (`compress --sensitivity-method fisher`): the probe in
// BondAllocator.sensitivity evaluates the model once per layer (210 evaluations for SmolLM2, an
// hour on two cores); this prices every layer with one compression and one backward pass per
// validation sequence.
//
// A truncation changes layer ℓ's weight by −E_ℓ (E_ℓ = W_ℓ − Ŵ_ℓ, the error of the same truncation
// the probe makes). To second order the loss rises by ½·E_ℓᵀ·H·E_ℓ (the first-order term averages
// out at a trained model), and with the empirical Fisher over the validation sequences s,
// H ≈ c·Σ_s g_s·g_sᵀ (g_s the gradient of sequence s's mean loss), that is c/2·Σ_s ⟨g_s, E_ℓ⟩²: the
// curvature along the very direction the truncation moves the layer. Divided by ε_ℓ² (the
// truncation's relative error, an output error under calibration) it is the loss per unit error² the
// probe measures; the constant c is the same for every layer and cancels in the allocation, so the
// weights are normalised to the median 1 (and floored at 1e-3, as the probe's are).

import Foundation

extension BondAllocator {
    /// Fisher estimate of `sensitivity`'s weights: each layer truncated at bond `chi` as
    /// `sensitivity` truncates it (whitened with `inputMoments`, an MPO fitted by `alsSweeps` of
    /// ALS), then Σ_s ⟨g_s, W − Ŵ⟩² over `batches`·`batchSize` validation windows of `time` tokens
    /// (the windows `sensitivity` evaluates), per unit of the layer's relative error², median 1.
    public static func fisherSensitivity(_ model: Transformer, chi: Int, validation: [Int32], batches: Int, batchSize: Int = 8,
                                         time: Int? = nil, factorizations: [String: MPOFactorization] = [:],
                                         inputMoments: [String: [Double]] = [:], outputMoments: [String: [Double]] = [:], alsSweeps: Int = 0,
                                         seed: UInt64 = 2024) throws -> [String: Double] {
        let time = time ?? model.config.context
        let layers = model.config.linearLayers.map(\.name)
        let (truncated, reports) = try Compression.compress(model, chi: chi, factorizations: factorizations,
                                                            inputMoments: inputMoments, outputMoments: outputMoments, alsSweeps: alsSweeps)
        let original = try Compression.denseWeights(model), approx = try Compression.denseWeights(truncated)
        var errors: [String: [Float]] = [:]
        for name in layers { errors[name] = zip(original[name]!, approx[name]!).map { $0 - $1 } }
        let epsilon = Dictionary(uniqueKeysWithValues: reports.map { ($0.layer, $0.relativeError) })
        // A model with gradients, holding the original's weights.
        let trainable = try Transformer(config: model.config, device: model.device, purpose: .training)
        try trainable.load(from: model)
        var fisher = [String: Double](uniqueKeysWithValues: layers.map { ($0, 0) })
        var rng = SplitMix64(seed: seed)
        for _ in 0..<batches {
            let (tok, tgt) = TextDataset.sample(validation, batch: batchSize, time: time, rng: &rng)
            for s in 0..<batchSize {   // one window at a time: the Fisher wants per-sequence gradients
                let window = s * time..<(s + 1) * time
                trainable.zeroGradients()
                try trainable.forward(tokens: Array(tok[window]), targets: Array(tgt[window]), batch: 1, time: time)
                try trainable.backward()
                for name in layers {
                    let g = try trainable.gradient("\(name).weight"), e = errors[name]!
                    var d = 0.0
                    for i in g.indices { d += Double(g[i]) * Double(e[i]) }
                    fisher[name]! += d * d
                }
            }
        }
        var raw: [String: Double] = [:]
        for (name, f) in fisher { raw[name] = f / max(epsilon[name]! * epsilon[name]!, 1e-12) }
        let median = max(raw.values.sorted()[raw.count / 2], .leastNormalMagnitude)
        return raw.mapValues { max($0 / median, 1e-3) }
    }
}
