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

import CBLAS
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
        return normalised(raw)
    }

    /// The K-FAC estimate of the same weights, with no truncation and no extra pass: a layer's
    /// weight changed by ΔW raises the mean loss by ½·T²·tr(G·ΔW·M·ΔWᵀ) to second order
    /// (Calibration.outputGradientMoments' G = E[g·gᵀ] of the gradients of each window's mean loss,
    /// T tokens a window, so T²·g·gᵀ is a token's Fisher; M = E[x·xᵀ] of its inputs; x and g taken
    /// as independent). A truncation with relative error ε in the metric tr(G·ΔW·M·ΔWᵀ) loses ε² of
    /// that form at ΔW = W, so the loss per unit relative error² is ½·T²·tr(G·W·M·Wᵀ): exact for the
    /// two-sided whitening (--output-fisher, undamped), and under input whitening alone the estimate
    /// that the error spreads over the outputs as the weight does. Raw values (nats per unit ε²),
    /// for every layer but an untied head; `normalised` gives median 1, floored at 1e-3, as the others.
    public static func kfacSensitivity(_ model: Transformer, inputMoments: [String: [Double]], outputMoments: [String: [Double]],
                                       context: Int) throws -> [String: Double] {
        let layers = model.config.linearLayers.filter { $0.role != .head }   // an untied head's G would be V × V: left out (compress gives it the median)
        let dense = try Compression.denseWeights(model, layers: Set(layers.map(\.name)))
        var out: [String: Double] = [:]
        for l in layers {
            guard let m = inputMoments[l.name], let g = outputMoments[l.name] else {
                throw ModelError("the K-FAC sensitivity of \(l.name) needs its input and output-gradient moments on the calibration text; it has \(inputMoments[l.name] == nil ? "no input" : "no output-gradient") moment")
            }
            guard m.count == l.in * l.in, g.count == l.out * l.out else {
                throw ModelError("\(l.name): moments of \(m.count) and \(g.count) values, not \(l.in)² and \(l.out)²")
            }
            out[l.name] = 0.5 * Double(context * context) * fisherForm(dense[l.name]!.map(Double.init), outputMoment: g, inputMoment: m, out: l.out, in: l.in)
        }
        return out
    }

    /// The same raw weight for a tied table as the head (compress --embedding svd:auto): its logits T·h
    /// move by ΔT·h, and the loss's curvature in the logits, diag(p) − p·pᵀ a token, is taken as
    /// diag(p̄) — p̄ the mean predicted distribution on the calibration text, the weights its fisher
    /// truncation uses (p and h taken as independent, p·pᵀ left out). A relative error ε in that metric
    /// then loses ½·ε²·Σ_v p̄_v·(T·M·Tᵀ)_vv nats a token (M = E[h·hᵀ]): a token's already, the units of
    /// kfacSensitivity. Its role as the embedding is kfacEmbeddingSensitivity's.
    public static func kfacTableSensitivity(table: [Float], vocabulary V: Int, channels D: Int, headMoment m: [Double],
                                            probabilities p: [Double]) throws -> Double {
        guard table.count == V * D, m.count == D * D, p.count == V else {
            throw ModelError("the table's K-FAC weight needs a \(V) × \(D) table, a \(D)² head-input moment and \(V) probabilities; got \(table.count), \(m.count) and \(p.count) values")
        }
        return 0.5 * rowWeightedForm(table, vocabulary: V, channels: D, moment: m, rowWeights: p)
    }

    /// The raw weight of the table as the embedding: a linear from one-hot tokens, so its input moment
    /// is diag(f), f the tokens' frequencies in the calibration windows, and K-FAC's ½·T²·tr(G·ΔTᵀ·diag(f)·ΔT)
    /// with G the embedding output's gradient moment (Calibration.embeddingOutput) gives
    /// ½·T²·Σ_v f_v·T_v·G·T_vᵀ per unit relative error² — assuming, as kfacSensitivity does for a layer
    /// whitened on one side, that the error spreads over the rows as the table's weighted energy does.
    public static func kfacEmbeddingSensitivity(table: [Float], vocabulary V: Int, channels D: Int, outputMoment g: [Double],
                                                frequencies f: [Double], context: Int) throws -> Double {
        guard table.count == V * D, g.count == D * D, f.count == V else {
            throw ModelError("the table's K-FAC weight as the embedding needs a \(V) × \(D) table, a \(D)² gradient moment and \(V) frequencies; got \(table.count), \(g.count) and \(f.count) values")
        }
        return 0.5 * Double(context * context) * rowWeightedForm(table, vocabulary: V, channels: D, moment: g, rowWeights: f)
    }

    /// Σ_v w_v·T_v·A·T_vᵀ for the (V, D) table T and a symmetric D × D A: both table prices' form
    /// (A the head input's moment with w = p̄, or the embedding output's gradient moment with w = f).
    static func rowWeightedForm(_ table: [Float], vocabulary V: Int, channels D: Int, moment a: [Double], rowWeights w: [Double]) -> Double {
        let t = table.map(Double.init)
        var ta = [Double](repeating: 0, count: V * D)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(V), Int32(D), Int32(D), 1, t, Int32(D), a, Int32(D), 0, &ta, Int32(D))
        var s = 0.0
        for v in 0..<V where w[v] != 0 {
            var row = 0.0
            for j in (v * D)..<((v + 1) * D) { row += ta[j] * t[j] }
            s += w[v] * row
        }
        return s
    }

    /// tr(G·W·M·Wᵀ) = Σ_ij (G·W)_ij·(W·M)_ij for W (out × in, row-major), G (out × out), M (in × in) symmetric.
    static func fisherForm(_ w: [Double], outputMoment g: [Double], inputMoment m: [Double], out: Int, in n: Int) -> Double {
        var gw = [Double](repeating: 0, count: out * n), wm = gw
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(out), Int32(n), Int32(out), 1, g, Int32(out), w, Int32(n), 0, &gw, Int32(n))
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(out), Int32(n), Int32(n), 1, w, Int32(n), m, Int32(n), 0, &wm, Int32(n))
        var t = 0.0
        for i in gw.indices { t += gw[i] * wm[i] }
        return t
    }

    /// The median of raw weights (the upper one of an even count): the scale `normalised` divides by.
    public static func median(_ raw: [String: Double]) -> Double { raw.values.sorted()[raw.count / 2] }

    /// Weights to median 1, floored at 1e-3 (the probe's and the Fisher's convention).
    public static func normalised(_ raw: [String: Double]) -> [String: Double] {
        let median = max(Self.median(raw), .leastNormalMagnitude)
        return raw.mapValues { max($0 / median, 1e-3) }
    }
}
