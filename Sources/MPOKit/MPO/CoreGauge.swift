// CoreGauge: where a tensor train keeps its scale. Core k times c_k with ∏ c_k = 1 contracts to
// the same W, so the scale can sit in any core; TT-SVD and ALS leave it wherever the sweep ended
// (whitened 2-site MPOs of SmolLM2 have cores of RMS 0.015 beside cores of RMS 0.5 in one layer).
// Adam moves every entry by about the same absolute step, so a small core changes many times
// faster, relative to itself, than its neighbour, and the gradient of a small core is large
// (its neighbour multiplies it). `balance` gives every core of an MPO linear the layer's
// geometric-mean RMS — the same weights, the gauge in which one learning rate is one relative
// rate for all cores (train --balance-cores; results/smollm2/RESULTS.md measures what it does
// to healing).

import Foundation

public enum CoreGauge {
    /// What `balance` found: how unequal the cores' RMS were within a layer (max/min), over the
    /// layers it rescaled.
    public struct Report: Sendable, Equatable {
        public var layers = 0
        public var medianSpread = 1.0
        public var maxSpread = 1.0

        public var summary: String {
            String(format: "%d MPO layers' cores rescaled to one RMS per layer (the same weights; RMS spread within a layer was median %.1f×, max %.1f×)",
                   layers, medianSpread, maxSpread)
        }
    }

    /// The per-core factors c_k (∏ c_k = 1) that give every core RMS (∏ rms_k)^(1/L). nil when a
    /// core is all zeros (no gauge moves scale into it) or there is one core.
    public static func balancingFactors(rms: [Double]) -> [Double]? {
        guard rms.count > 1, rms.allSatisfy({ $0 > 0 && $0.isFinite }) else { return nil }
        let target = exp(rms.map(log).reduce(0, +) / Double(rms.count))
        return rms.map { target / $0 }
    }

    /// Rescales the cores of every MPO linear layer of `model` (the embedding's are left as
    /// they are) to one RMS per layer. The model's outputs do not change beyond float rounding.
    @discardableResult
    public static func balance(_ model: Transformer) throws -> Report {
        var chains: [String: [(site: Int, name: String)]] = [:]
        for spec in model.layout.specs {
            if case .core(let l, let site) = spec.role { chains[l.name, default: []].append((site, spec.name)) }
        }
        var spreads: [Double] = []
        for layer in chains.keys.sorted() {
            let names = chains[layer]!.sorted { $0.site < $1.site }.map(\.name)
            let cores = try names.map { try model.parameter($0) }
            let rms = cores.map { c in (c.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(c.count, 1))).squareRoot() }
            guard let factors = balancingFactors(rms: rms) else { continue }
            spreads.append(rms.max()! / rms.min()!)
            for (k, name) in names.enumerated() {
                let f = Float(factors[k])
                try model.setParameter(name, cores[k].map { $0 * f })
            }
        }
        guard !spreads.isEmpty else { return Report() }
        let sorted = spreads.sorted()
        return Report(layers: spreads.count, medianSpread: sorted[sorted.count / 2], maxSpread: sorted.last!)
    }
}
