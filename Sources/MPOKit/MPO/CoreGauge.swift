// CoreGauge: where a tensor train keeps its scale. Core k times c_k with ∏ c_k = 1 contracts to
// the same W, so the scale can sit in any core; TT-SVD and ALS leave it wherever the sweep ended
// (whitened 2-site MPOs of SmolLM2 have cores of RMS 0.015 beside cores of RMS 0.5 in one layer).
// Adam moves every entry by about the same absolute step, so a small core changes many times
// faster, relative to itself, than its neighbour, and the gradient of a small core is large
// (its neighbour multiplies it). `balance` gives every core of an MPO linear the layer's
// geometric-mean RMS — the same weights, the gauge in which one learning rate is one relative
// rate for all cores (train --balance-cores; results/smollm2/RESULTS.md measures what it does
// to healing). A compressed embedding is balanced too: the table MPO's cores as one chain, and
// the per-token tensor train token by token (token v's row is the contraction of its own slices
// G_k[v] alone, so every token has a gauge of its own).

import Foundation

public enum CoreGauge {
    /// What `balance` found: how unequal the cores' RMS were within a layer (max/min), over the
    /// layers it rescaled.
    public struct Report: Sendable, Equatable {
        public var layers = 0
        public var medianSpread = 1.0
        public var maxSpread = 1.0
        /// The embedding's cores were among them (its spread is one of the layers').
        public var embedding = false

        public var summary: String {
            String(format: "%d MPO %@ cores rescaled to one RMS per layer%@ (the same weights; RMS spread within a layer was median %.1f×, max %.1f×)",
                   layers, layers == 1 ? "layer's" : "layers'", embedding ? " (the embedding's among them)" : "", medianSpread, maxSpread)
        }
    }

    /// The per-core factors c_k (∏ c_k = 1) that give every core RMS (∏ rms_k)^(1/L). nil when a
    /// core is all zeros (no gauge moves scale into it) or there is one core.
    public static func balancingFactors(rms: [Double]) -> [Double]? {
        guard rms.count > 1, rms.allSatisfy({ $0 > 0 && $0.isFinite }) else { return nil }
        let target = exp(rms.map(log).reduce(0, +) / Double(rms.count))
        return rms.map { target / $0 }
    }

    /// Rescales the cores of every MPO linear layer of `model` to one RMS per layer, and those of
    /// a compressed embedding (per token for the per-token tensor train; the embedding counts as
    /// one layer, its spread the largest of its tokens'). The model's outputs do not change beyond
    /// float rounding.
    @discardableResult
    public static func balance(_ model: Transformer) throws -> Report {
        var chains: [String: [(site: Int, name: String)]] = [:]
        var embedding: [(site: Int, name: String)] = []
        for spec in model.layout.specs {
            switch spec.role {
            case .core(let l, let site): chains[l.name, default: []].append((site, spec.name))
            case .embeddingCore(let site): embedding.append((site, spec.name))
            default: break
            }
        }
        var spreads: [Double] = []
        for layer in chains.keys.sorted() {
            if let spread = try balanceChain(model, names: chains[layer]!.sorted { $0.site < $1.site }.map(\.name), slices: 1) {
                spreads.append(spread)
            }
        }
        var balancedEmbedding = false
        if !embedding.isEmpty {
            let perToken: Bool
            if case .tensorTrain = model.config.tokenEmbedding { perToken = true } else { perToken = false }
            if let spread = try balanceChain(model, names: embedding.sorted { $0.site < $1.site }.map(\.name),
                                             slices: perToken ? model.config.vocabularySize : 1) {
                spreads.append(spread)
                balancedEmbedding = true
            }
        }
        guard !spreads.isEmpty else { return Report() }
        let sorted = spreads.sorted()
        return Report(layers: spreads.count, medianSpread: sorted[sorted.count / 2], maxSpread: sorted.last!, embedding: balancedEmbedding)
    }

    /// Balances the chain of cores `names`, each split along its leading axis into `slices`
    /// independent gauges (1: the whole core). Returns the largest RMS spread it found, nil when
    /// no slice could be balanced.
    static func balanceChain(_ model: Transformer, names: [String], slices: Int) throws -> Double? {
        var cores = try names.map { try model.parameter($0) }
        guard cores.allSatisfy({ $0.count % slices == 0 }) else { return nil }
        var spread: Double?
        for s in 0..<slices {
            let ranges = cores.map { c in (s * c.count / slices)..<((s + 1) * c.count / slices) }
            let rms = zip(cores, ranges).map { c, r in
                (c[r].reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(r.count, 1))).squareRoot()
            }
            guard let factors = balancingFactors(rms: rms) else { continue }
            spread = max(spread ?? 1, rms.max()! / rms.min()!)
            for k in cores.indices {
                let f = Float(factors[k])
                for i in ranges[k] { cores[k][i] *= f }
            }
        }
        guard spread != nil else { return nil }
        for (name, c) in zip(names, cores) { try model.setParameter(name, c) }
        return spread
    }
}
