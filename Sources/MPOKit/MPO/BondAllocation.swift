// BondAllocation: a parameter budget in, a bond per site of every linear layer out (CompactifAI
// chooses χ per layer; Bayesian TT and CoMERA adapt ranks to a budget), from the layers'
// TT-SVD errors: e_layer(χ)² is the relative error² of the layer's TT-SVD at χ (computed on
// demand and cached — one TT-SVD per greedy step).
//
// Greedy over a χ per layer (every inner bond of a layer min(χ, its rank), so bonds still differ
// along a chain where a rank caps them): every layer starts at χ = `minimumChi`; repeatedly raise the χ of
// the layer whose next step buys the most weighted error reduction per added parameter,
//     gain = w_layer · (e(χ)² − e(χ + 1)²),   cost = params(χ + 1) − params(χ),
// among the steps that still fit the budget and keep the layer's cores no larger than its dense
// matrix, until none does. The errors fall and the cost
// grows with χ, so each layer's gain per parameter shrinks as it grows: the greedy order is the
// marginal-value order. (Growing single bonds greedily does not work: on a 3-site layer the
// first bond is cheap to grow while the second stays at 1, a chain that discards nearly all of
// W.) `weights` default to 1 (plain energy); `sensitivity` measures them as the validation-loss
// increase of compressing one layer alone, per unit of its relative error². The TT-SVD that
// follows caps each bond at its allocation (ttSVD(maxBonds:)).
// The floor matters: relative error per parameter alone starves the layers with flat spectra
// (on a trained PicoGPT at 79k parameters every FFN W2 fell to bond 1, error 0.997 — the FFN
// deleted for good, since fine-tuning cannot grow a bond); `mpo-train compress` floors every
// layer at half the uniform χ that fits the budget.

import Foundation
import TensorTrain

public struct BondAllocation: Sendable {
    /// Layer name → bonds [1, b_1, …, b_{L−1}, 1], for the factorisation in `factorizations`.
    public var bonds: [String: [Int]]
    public var factorizations: [String: MPOFactorization]
    /// Parameters of the whole model with these bonds (linear cores + everything kept dense).
    public var modelParameters: Int
    /// Layer name → the relative error of its TT-SVD at the allocated bonds.
    public var predictedError: [String: Double]
}

public enum BondAllocator {
    /// One layer's inputs: its factorisation, weight and the TT-SVD errors² found so far.
    final class Layer {
        let name: String
        let factorization: MPOFactorization
        let w: [Float]
        let weight: Double
        private var errors: [Int: Double] = [:]

        init(name: String, factorization: MPOFactorization, w: [Float], weight: Double) {
            self.name = name; self.factorization = factorization; self.w = w; self.weight = weight
        }

        /// The relative error² of this layer's TT-SVD at χ.
        func error2(_ chi: Int) throws -> Double {
            if let e = errors[chi] { return e }
            let r = try Compression.compressWeight(w, layer: name, factorization: factorization, chi: chi).1
            errors[chi] = r.relativeError * r.relativeError
            return errors[chi]!
        }
    }

    /// Bonds for every linear layer of `model` so that the whole model has at most
    /// `parameters` trainable scalars. `weights` (layer name → factor) scale each layer's
    /// relative error²; missing layers weigh 1. `fixed`: the parameters outside the linears' weights
    /// (default: the model's own; compress passes them with the embedding at the size it will have).
    public static func allocate(_ model: Transformer, parameters budget: Int,
                                factorizations: [String: MPOFactorization] = [:],
                                weights: [String: Double] = [:], minimumChi: Int = 1, fixed given: Int? = nil) throws -> BondAllocation {
        precondition(minimumChi >= 1, "minimumChi must be ≥ 1")
        let dense = try Compression.denseWeights(model)
        let fixed = given ?? model.parameterCount - model.config.linearLayers.reduce(0) { acc, l in
            acc + model.layout.specs.filter { $0.name.hasPrefix(l.name + ".") && !$0.name.hasSuffix(".bias") }.reduce(0) { $0 + $1.count }
        }
        var layers: [Layer] = []
        for l in model.config.linearLayers {
            let f = factorizations[l.name] ?? Compression.factorization(of: l.name, in: model, chi: 8)
            layers.append(Layer(name: l.name, factorization: f, w: dense[l.name]!, weight: weights[l.name] ?? 1))
        }
        var chi = [Int](repeating: minimumChi, count: layers.count)
        func bonds(_ i: Int, _ c: Int) -> [Int] { layers[i].factorization.cappedBonds(chi: c) }
        func cores(_ i: Int, _ c: Int) -> Int { layers[i].factorization.parameterCount(bonds: bonds(i, c)) }
        var used = fixed + layers.indices.reduce(0) { $0 + cores($1, minimumChi) }
        guard used <= budget else {
            let floor = minimumChi == 1 ? "every bond 1" : "every layer at χ = \(minimumChi)"
            throw ModelError("a budget of \(budget) parameters is below the smallest MPO model (\(used): \(floor), plus \(fixed) kept dense); give at least \(used)")
        }
        while true {
            var best: (gain: Double, layer: Int, cost: Int)? = nil
            for i in layers.indices where bonds(i, chi[i] + 1) != bonds(i, chi[i]) {
                let cost = cores(i, chi[i] + 1) - cores(i, chi[i])
                guard used + cost <= budget, cores(i, chi[i] + 1) <= layers[i].w.count else { continue }
                let gain = layers[i].weight * (try layers[i].error2(chi[i]) - layers[i].error2(chi[i] + 1)) / Double(max(cost, 1))
                if best == nil || gain > best!.gain { best = (gain, i, cost) }
            }
            guard let b = best, b.gain > 0 else { break }
            chi[b.layer] += 1
            used += b.cost
        }
        let allBonds = layers.indices.map { bonds($0, chi[$0]) }
        var out: [String: [Int]] = [:], predicted: [String: Double] = [:], facs: [String: MPOFactorization] = [:]
        for (i, layer) in layers.enumerated() {
            out[layer.name] = allBonds[i]
            facs[layer.name] = layer.factorization
            predicted[layer.name] = try layer.error2(chi[i]).squareRoot()
        }
        return BondAllocation(bonds: out, factorizations: facs, modelParameters: used, predictedError: predicted)
    }

    /// Per-layer weights for `allocate`: compress each layer alone at bond `chi` (TT-SVD), and
    /// take the increase of the mean loss over `batches` validation batches per unit of that
    /// layer's relative error² (floored at 1e-3 of the median, so no layer is free), on windows of
    /// `time` tokens (default the model's context). With `inputMoments` (compress --calibration)
    /// each layer is truncated whitened (and an MPO fitted by `alsSweeps` of ALS), and its error
    /// is its relative output error on the calibration inputs: the weight is then the loss
    /// increase per unit of the error the whitened allocation levels.
    public static func sensitivity(_ model: Transformer, chi: Int, validation: [Int32], batches: Int, batchSize: Int = 8,
                                   time: Int? = nil, factorizations: [String: MPOFactorization] = [:],
                                   inputMoments: [String: [Double]] = [:], outputMoments: [String: [Double]] = [:], alsSweeps: Int = 0,
                                   seed: UInt64 = 2024) throws -> [String: Double] {
        let time = time ?? model.config.context
        func loss(_ m: Transformer) throws -> Double {
            var rng = SplitMix64(seed: seed)
            return try m.evaluate(validation, batches: batches, batchSize: batchSize, time: time, rng: &rng).loss
        }
        let base = try loss(model)
        var raw: [String: Double] = [:]
        for l in model.config.linearLayers {
            let (one, reports) = try Compression.compress(model, chi: chi, layers: [l.name], factorizations: factorizations,
                                                          inputMoments: inputMoments, outputMoments: outputMoments, alsSweeps: alsSweeps)
            let err = reports.first { $0.layer == l.name }!.relativeError
            raw[l.name] = max(try loss(one) - base, 0) / max(err * err, 1e-12)
        }
        let median = raw.values.sorted()[raw.count / 2]
        return raw.mapValues { max($0, 1e-3 * median) }
    }
}
