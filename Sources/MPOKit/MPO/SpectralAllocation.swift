// Budgeted bonds for a large model from its unfolding spectra (CompactifAI and SVD-LLM choose
// ranks per layer; here one SVD per inner unfolding of every layer, done once, replaces the
// TT-SVD per candidate χ of BondAllocator — SmolLM2's 210 linears in seconds instead of hours).
//
// A layer truncated to bonds r_1…r_{L−1} loses at most Σ_l tail_l(r_l)² of its energy, tail_l(r)²
// being the squared singular values of unfolding l beyond r (TT-SVD's quasi-optimality bound;
// exact for two sites, so for plain SVD and 2-site MPOs the allocation sees the true errors).
// Every layer starts at χ = minimumChi, then one layer's χ grows at a time while the budget allows
// and its cores stay smaller than its dense matrix, chosen by the objective:
//   .equalError (default): the layer with the largest weighted relative error² — the errors
//     are levelled, so no layer is destroyed (on SmolLM2 at 2× fewer linear parameters the
//     other rule left every MLP at error 0.90 and attention uncompressed: loss 3.59 → 29.8);
//   .errorPerParameter: BondAllocator's — the most weighted error² removed per added parameter
//     (minimises Σ e², which a pretrained LLM does not tolerate: its loss follows the worst layers).
// Errors are relative to each layer's own norm, weighted by `weights` (measured sensitivities).

import Foundation
import TensorTrain

/// One linear layer's unfolding spectra under its factorisation.
public struct LayerSpectra: Sendable {
    public let name: String
    public let factorization: MPOFactorization
    public let normSquared: Double
    /// Per inner bond l: tails[l][r] = Σ_{k≥r} s_k² (r = 0…rank).
    let tails: [[Double]]

    public init(name: String, factorization: MPOFactorization, spectra: [[Double]]) {
        self.name = name; self.factorization = factorization
        tails = spectra.map { s in
            var t = [Double](repeating: 0, count: s.count + 1)
            for r in stride(from: s.count - 1, through: 0, by: -1) { t[r] = t[r + 1] + s[r] * s[r] }
            return t
        }
        normSquared = tails.first?.first ?? 0
    }

    /// The bound on the relative error² of TT-SVD at `bonds` ([1, r_1, …, 1]).
    public func relativeError2(bonds: [Int]) -> Double {
        guard normSquared > 0 else { return 0 }
        var e = 0.0
        for (l, t) in tails.enumerated() { e += t[min(bonds[l + 1], t.count - 1)] }
        return min(e / normSquared, 1)
    }
}

public enum SpectralAllocator {
    public enum Objective: String, Sendable, CaseIterable { case equalError = "max", errorPerParameter = "sum" }

    /// The spectra of every linear layer of `model` (its contracted weights, or W·S for a layer in
    /// `inputMoments`: its output error on the calibration data, compressWhitened; Sgᵀ·W·S with
    /// `outputMoments` as well) under the
    /// given factorisations, computed on all cores.
    /// With `layers`, only those (in the model's order).
    public static func spectra(_ model: Transformer, factorizations: [String: MPOFactorization],
                               inputMoments: [String: [Double]] = [:], outputMoments: [String: [Double]] = [:],
                               layers only: Set<String>? = nil) throws -> [LayerSpectra] {
        let layers = model.config.linearLayers.filter { only?.contains($0.name) ?? true }
        let dense = try Compression.denseWeights(model, layers: Set(layers.map(\.name)))
        final class Slots: @unchecked Sendable {   // one slot per layer, each written by one worker
            var results: [Result<LayerSpectra, Error>?]
            init(_ n: Int) { results = Array(repeating: nil, count: n) }
        }
        let slots = Slots(layers.count), lock = NSLock(), weights = UncheckedSendable(dense)
        DispatchQueue.concurrentPerform(iterations: layers.count) { i in
            let l = layers[i], f = factorizations[l.name]!
            let r = Result {
                var w = weights.value[l.name]!
                if let m = inputMoments[l.name] {
                    var x = try KroneckerWhitening(secondMoment: m, inFactors: f.inFactors).whiten(w.map(Double.init), out: l.out)
                    if let g = outputMoments[l.name] { x = try OutputWhitening(secondMoment: g, factorization: f).whiten(x, columns: l.in) }
                    w = x.map(Float.init)
                }
                return LayerSpectra(name: l.name, factorization: f, spectra: try unfoldingSpectra(w, factorization: f))
            }
            lock.lock(); slots.results[i] = r; lock.unlock()
        }
        return try slots.results.map { try $0!.get() }
    }

    /// The name the tied table goes by among the layers of a budget (compress --embedding svd:auto).
    public static let tableName = "tok_emb"

    /// The token table's spectrum as one more layer of a budget (compress --embedding svd:auto): the
    /// (V, D) table as a plain SVD, [V, 1] × [1, D], whitened as Compression.compressEmbedding
    /// truncates it — by the head input's second moment `headMoment` (a tied table truncated as the
    /// head) and, with `rowWeights`, row by row (--embedding-error fisher) — so its errors are that
    /// truncation's, exactly. Without `headMoment`, the table's own spectrum.
    public static func tableSpectra(_ model: Transformer, headMoment: [Double]?, rowWeights: [Double]?) throws -> LayerSpectra {
        let c = model.config, f = MPOFactorization.lowRank(out: c.vocabularySize, in: c.channels)
        var w = try Compression.embeddingTable(model)
        if let m = headMoment {
            var x = try KroneckerWhitening(secondMoment: m, inFactors: f.inFactors).whiten(w.map(Double.init), out: c.vocabularySize)
            if let d = rowWeights { x = try OutputWhitening(rowWeights: d, factorization: f).whiten(x, columns: c.channels) }
            w = x.map(Float.init)
        }
        return LayerSpectra(name: tableName, factorization: f, spectra: try unfoldingSpectra(w, factorization: f))
    }

    /// The largest χ at which every layer (factorisations `fs`, bonds capped at χ) and `fixed`
    /// dense parameters fit in `budget` (1 when none does): compress's default floor is half of it.
    public static func largestUniformChi(_ fs: [MPOFactorization], fixed: Int, budget: Int) -> Int {
        func size(_ c: Int) -> Int { fixed + fs.reduce(0) { $0 + $1.parameterCount(bonds: $1.cappedBonds(chi: c)) } }
        return (1...4096).last { size($0) <= budget } ?? 1
    }

    /// Bonds for every layer in `spectra` so that the whole model (the cores plus `fixed`
    /// parameters kept dense) has at most `budget` parameters.
    public static func allocate(_ spectra: [LayerSpectra], fixed: Int, parameters budget: Int,
                                weights: [String: Double] = [:], minimumChi: Int = 1,
                                objective: Objective = .equalError) throws -> BondAllocation {
        precondition(minimumChi >= 1, "minimumChi must be ≥ 1")
        func bonds(_ i: Int, _ c: Int) -> [Int] { spectra[i].factorization.cappedBonds(chi: c) }
        func cores(_ i: Int, _ c: Int) -> Int { spectra[i].factorization.parameterCount(bonds: bonds(i, c)) }
        let denseSize = spectra.map { $0.factorization.outFeatures * $0.factorization.inFeatures }
        var chi = [Int](repeating: minimumChi, count: spectra.count)
        var used = fixed + spectra.indices.reduce(0) { $0 + cores($1, minimumChi) }
        guard used <= budget else {
            throw ModelError("a budget of \(budget) parameters is below the smallest MPO model (\(used): every layer at χ = \(minimumChi), plus \(fixed) kept dense); give at least \(used) or a smaller --min-chi")
        }
        // Each layer's next step, recomputed only for the layer that grew.
        func step(_ i: Int) -> (gain: Double, cost: Int)? {
            let next = bonds(i, chi[i] + 1)
            guard next != bonds(i, chi[i]) else { return nil }
            let cost = cores(i, chi[i] + 1) - cores(i, chi[i])
            guard cores(i, chi[i] + 1) <= denseSize[i] else { return nil }
            let s = spectra[i], w = weights[s.name] ?? 1, now = s.relativeError2(bonds: bonds(i, chi[i]))
            switch objective {
            case .equalError: return (w * now, cost)
            case .errorPerParameter: return (w * (now - s.relativeError2(bonds: next)) / Double(max(cost, 1)), cost)
            }
        }
        var steps = spectra.indices.map(step)
        while true {
            var best: Int? = nil
            for i in spectra.indices {
                guard let s = steps[i], used + s.cost <= budget, s.gain > 0 else { continue }
                if best == nil || s.gain > steps[best!]!.gain { best = i }
            }
            guard let b = best else { break }
            used += steps[b]!.cost
            chi[b] += 1
            steps[b] = step(b)
        }
        var out: [String: [Int]] = [:], predicted: [String: Double] = [:], facs: [String: MPOFactorization] = [:]
        for (i, s) in spectra.enumerated() {
            out[s.name] = bonds(i, chi[i])
            facs[s.name] = s.factorization
            predicted[s.name] = s.relativeError2(bonds: out[s.name]!).squareRoot()
        }
        return BondAllocation(bonds: out, factorizations: facs, modelParameters: used, predictedError: predicted)
    }
}

extension LayerCompression {
    /// What TT-SVD at `bonds` does to a layer, read off its unfolding spectra without running it:
    /// parameters and FLOPs exact, the error the TT-SVD bound — exact for two sites (plain SVD
    /// and 2-site MPOs), an upper bound for more (`report --errors ttsvd` gives the exact one).
    public init(spectra s: LayerSpectra, bonds: [Int]) {
        let f = s.factorization, e2 = s.relativeError2(bonds: bonds), params = f.parameterCount(bonds: bonds)
        self.init(layer: s.name, out: f.outFeatures, in: f.inFeatures, factorization: f.description, chi: bonds.max() ?? 1,
                  bonds: bonds, denseParameters: f.outFeatures * f.inFeatures, parameters: params,
                  compressionRatio: Double(f.outFeatures * f.inFeatures) / Double(params), relativeError: e2.squareRoot(),
                  errorBound: e2.squareRoot(), normSquared: s.normSquared, errorSquared: e2 * s.normSquared,
                  denseFlopsPerRow: 2 * Double(f.outFeatures * f.inFeatures), siteFlopsPerRow: f.siteFlopsPerRow(bonds: bonds))
    }
}
