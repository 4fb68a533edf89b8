// MPOFactorization.swift — how an (out, in) weight matrix is split into MPO sites
// (docs/SPEC.md §2): factor lists d_out, d_in with ∏ d_out = out, ∏ d_in = in, one pair per site;
// bond lists, core shapes (b_l, d_out[l], d_in[l], b_{l+1}) and parameter counts.
// Also the error type shared by the whole TensorTrain module.

import Foundation

/// Every recoverable failure of the TensorTrain module; `message` says what was wrong.
public struct TensorTrainError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "TensorTrainError: \(message)" }
}

/// The site factorisation of one MPO linear layer: `outFactors[l]` × `inFactors[l]` at site l.
/// Output index digits are (o_0, …, o_{L-1}) with o_0 the most significant, likewise for the input.
public struct MPOFactorization: Equatable, Hashable, Codable, Sendable, CustomStringConvertible {
    public var outFactors: [Int]
    public var inFactors: [Int]

    /// Throws when the lists are empty, differ in length, or hold a factor < 1.
    public init(outFactors: [Int], inFactors: [Int]) throws {
        try Self.check(outFactors: outFactors, inFactors: inFactors)
        self.outFactors = outFactors
        self.inFactors = inFactors
    }

    private static func check(outFactors: [Int], inFactors: [Int]) throws {
        guard !outFactors.isEmpty, !inFactors.isEmpty else {
            throw TensorTrainError("an MPO factorisation needs at least one site "
                + "(outFactors \(outFactors), inFactors \(inFactors))")
        }
        guard outFactors.count == inFactors.count else {
            throw TensorTrainError("outFactors and inFactors must have the same number of sites, "
                + "got \(outFactors.count) (\(outFactors)) and \(inFactors.count) (\(inFactors))")
        }
        if let bad = outFactors.firstIndex(where: { $0 < 1 }) {
            throw TensorTrainError("every factor must be ≥ 1, but outFactors[\(bad)] = \(outFactors[bad]) in \(outFactors)")
        }
        if let bad = inFactors.firstIndex(where: { $0 < 1 }) {
            throw TensorTrainError("every factor must be ≥ 1, but inFactors[\(bad)] = \(inFactors[bad]) in \(inFactors)")
        }
    }

    private enum CodingKeys: String, CodingKey { case outFactors, inFactors }

    /// Decoding validates exactly like `init(outFactors:inFactors:)`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(outFactors: try c.decode([Int].self, forKey: .outFactors),
                      inFactors: try c.decode([Int].self, forKey: .inFactors))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(outFactors, forKey: .outFactors)
        try c.encode(inFactors, forKey: .inFactors)
    }

    /// Number of sites L.
    public var sites: Int { outFactors.count }
    /// ∏ outFactors.
    public var outFeatures: Int { outFactors.reduce(1, *) }
    /// ∏ inFactors.
    public var inFeatures: Int { inFactors.reduce(1, *) }

    /// e.g. "[8, 16]×[8, 16]" (out factors × in factors).
    public var description: String { "\(outFactors)×\(inFactors)" }

    /// Throws unless the factor products equal (out, in); the message names both shapes.
    public func validate(out: Int, in inF: Int) throws {
        guard outFeatures == out, inFeatures == inF else {
            throw TensorTrainError("factorisation \(description) describes a \(outFeatures)×\(inFeatures) "
                + "matrix (∏ outFactors = \(outFeatures), ∏ inFactors = \(inFeatures)), "
                + "but the layer is \(out)×\(inF)")
        }
    }

    // MARK: - Bonds, shapes, parameter counts

    /// Bonds of a freshly initialised MPO: [1, χ, …, χ, 1] (L+1 entries), never capped by rank.
    public func bonds(chi: Int) -> [Int] {
        precondition(chi >= 1, "bond dimension χ must be ≥ 1, got \(chi)")
        return [1] + Array(repeating: chi, count: sites - 1) + [1]
    }

    /// Bonds produced by TT-SVD with maximum bond χ (no tolerance): bond l (0 < l < L) is
    /// min(χ, ∏_{k<l} o_k·i_k, ∏_{k≥l} o_k·i_k); the outer bonds are 1.
    public func cappedBonds(chi: Int) -> [Int] {
        precondition(chi >= 1, "bond dimension χ must be ≥ 1, got \(chi)")
        let sizes = zip(outFactors, inFactors).map { $0 * $1 }
        var result = [1]
        for l in 1..<max(sites, 1) {
            let left = sizes[..<l].reduce(1, *)
            let right = sizes[l...].reduce(1, *)
            result.append(min(chi, left, right))
        }
        result.append(1)
        return result
    }

    /// Core shapes (b_l, o_l, i_l, b_{l+1}) for a bond list of L+1 entries.
    public func coreShapes(bonds: [Int]) -> [[Int]] {
        precondition(bonds.count == sites + 1,
                     "a \(sites)-site factorisation needs \(sites + 1) bonds, got \(bonds.count) (\(bonds))")
        return (0..<sites).map { [bonds[$0], outFactors[$0], inFactors[$0], bonds[$0 + 1]] }
    }

    /// Σ_l b_l·o_l·i_l·b_{l+1}.
    public func parameterCount(bonds: [Int]) -> Int {
        coreShapes(bonds: bonds).reduce(0) { $0 + $1.reduce(1, *) }
    }

    // MARK: - Standard and automatic factorisations

    /// A balanced factorisation with the same number of sites for out and in.
    ///
    /// Rule:
    /// - Sites: `sites` if given (≥ 1); otherwise 3 when out·in ≥ 65,536 (2¹⁶), else 2.
    /// - Each dimension n is split into exactly L integer factors ≥ 1 with product n, chosen to
    ///   minimise the factors sorted in descending order, lexicographically (smallest largest
    ///   factor first, then the smallest second largest, …). E.g. 128 with L = 3 → {8,4,4},
    ///   not {8,8,2}; 65 with L = 2 → {13,5}; a prime p → {p,1,…}; 1 → {1,…,1}.
    /// - Order: the factors > 1 in ascending order, followed by the 1s. So a prime p gives
    ///   [p, 1] (its trivial factors sit at the end, on the same sites for out and in).
    /// This reproduces every entry of the docs/SPEC.md §2 table (PicoGPT's fixed factorisations;
    /// MPOKit's ModelConfig decides which shapes are fixed, TensorTrain knows no model).
    public static func automatic(out: Int, in inF: Int, sites: Int? = nil) -> MPOFactorization {
        precondition(out >= 1 && inF >= 1, "matrix dimensions must be ≥ 1, got \(out)×\(inF)")
        let l: Int
        if let sites {
            precondition(sites >= 1, "number of sites must be ≥ 1, got \(sites)")
            l = sites
        } else {
            l = out.multipliedReportingOverflow(by: inF).overflow || out * inF >= 65_536 ? 3 : 2
        }
        return unchecked(balancedFactors(out, count: l), balancedFactors(inF, count: l))
    }

    private static func unchecked(_ o: [Int], _ i: [Int]) -> MPOFactorization {
        // Only called with valid lists.
        try! MPOFactorization(outFactors: o, inFactors: i)
    }

    /// n split into `count` factors per the rule documented on `automatic`.
    static func balancedFactors(_ n: Int, count: Int) -> [Int] {
        precondition(n >= 1 && count >= 1)
        // Depth-first search over non-increasing tuples in lexicographic order: the first
        // complete tuple found is the lexicographically smallest descending one.
        func search(_ remaining: Int, _ slots: Int, _ cap: Int) -> [Int]? {
            if slots == 1 { return remaining <= cap ? [remaining] : nil }
            // The largest of `slots` factors is at least ⌈remaining^(1/slots)⌉.
            var d = max(1, Int(pow(Double(remaining), 1.0 / Double(slots))) - 1)
            while power(d, slots) < remaining { d += 1 }
            let upper = min(cap, remaining)
            guard d <= upper else { return nil }
            for f in d...upper where remaining % f == 0 {
                if let rest = search(remaining / f, slots - 1, f) { return [f] + rest }
            }
            return nil
        }
        let descending = search(n, count, n) ?? ([n] + Array(repeating: 1, count: count - 1))
        let nontrivial = descending.filter { $0 > 1 }.sorted()
        return nontrivial + Array(repeating: 1, count: count - nontrivial.count)
    }

    /// b^e, saturating at Int.max.
    private static func power(_ b: Int, _ e: Int) -> Int {
        var r = 1
        for _ in 0..<e {
            let (p, o) = r.multipliedReportingOverflow(by: b)
            if o { return Int.max }
            r = p
        }
        return r
    }
}
