// The cost of running an MPO layer site by site, and the factorisation that makes it cheapest —
// for shapes docs/SPEC.md §2 does not fix (PicoGPT's stay as the table says). Decoding multiplies one
// row at a time, so the cost that matters is the site-by-site FLOPs per row: the sweep right to
// left (MPOLinear) costs, per row, Σ_l 2·∏_{k<l} i_k · (i_l·b_{l+1}) · (b_l·o_l) · ∏_{k>l} o_k.
// The order of the sites is part of the choice (it fixes the contraction order of the sweep).

/// The shape of one step of the site-by-site contraction over `rows` rows (docs/DESIGN.md §2,
/// strategy 2; sites right to left): before site l the state is (P, K, O) with P = rows·∏_{k<l} i_k,
/// K = i_l·b_{l+1} and O = ∏_{k>l} o_k; the step multiplies each of the P (K, O) items by the
/// core as a (K, Mo) matrix, Mo = b_l·o_l. The one definition the layers, the device op and the
/// cost model all use.
public struct MPOSiteStep: Sendable, Equatable {
    public let p: Int, k: Int, mo: Int, o: Int

    public init(site l: Int, outFactors: [Int], inFactors: [Int], bonds: [Int], rows: Int) {
        p = rows * inFactors[..<l].reduce(1, *)
        k = inFactors[l] * bonds[l + 1]
        mo = bonds[l] * outFactors[l]
        o = outFactors[(l + 1)...].reduce(1, *)
    }

    /// Multiply-adds × 2.
    public var flops: Double { 2 * Double(p) * Double(k) * Double(mo) * Double(o) }
}

extension MPOFactorization {
    /// Site l's step over `rows` rows with bonds `bonds`.
    public func siteStep(_ l: Int, bonds: [Int], rows: Int) -> MPOSiteStep {
        MPOSiteStep(site: l, outFactors: outFactors, inFactors: inFactors, bonds: bonds, rows: rows)
    }

    /// Multiply-adds × 2 per row of the site-by-site forward with bonds `bonds`.
    public func siteFlopsPerRow(bonds: [Int]) -> Double {
        precondition(bonds.count == sites + 1)
        return (0..<sites).reduce(0.0) { $0 + siteStep($1, bonds: bonds, rows: 1).flops }
    }

    /// The factorisation of (out, in) whose site-by-site forward at bond χ costs the fewest FLOPs
    /// per row, among the balanced ones docs/SPEC.md's table is made of: 2 to `maxSites` sites, every
    /// factor ≥ 2 and the factors of each side at most `balance` times apart (unbalanced splits
    /// such as [384, 2]×[2, 384] are cheaper still but are a low-rank factorisation in disguise),
    /// and every inner bond able to reach χ (no site so small that its rank caps the bond below
    /// χ); ties go to fewer parameters. Falls back to `automatic` when no split qualifies (a
    /// prime, or χ above every rank). E.g. GPT-2's 768×768 at χ = 16: [48, 16]×[16, 48], 0.67× the
    /// dense FLOPs per row, where the balanced 3-site [8, 8, 12]² costs 2.4×.
    public static func cheapest(out: Int, in inF: Int, chi: Int, minSites: Int = 2, maxSites: Int = 3, balance: Int = 4) -> MPOFactorization {
        var best: (flops: Double, params: Int, f: MPOFactorization)? = nil
        func balanced(_ f: [Int]) -> Bool { (f.max() ?? 1) <= balance * (f.min() ?? 1) }
        for sites in max(2, minSites)...max(2, minSites, maxSites) {
            let outs = orderedFactorizations(out, count: sites).filter(balanced)
            let ins = orderedFactorizations(inF, count: sites).filter(balanced)
            for o in outs {
                for i in ins {
                    guard let f = try? MPOFactorization(outFactors: o, inFactors: i) else { continue }
                    let bonds = f.bonds(chi: chi)
                    guard f.cappedBonds(chi: chi) == bonds else { continue }   // a rank would cap a bond below χ
                    let flops = f.siteFlopsPerRow(bonds: bonds), params = f.parameterCount(bonds: bonds)
                    if best == nil || flops < best!.flops || (flops == best!.flops && params < best!.params) {
                        best = (flops, params, f)
                    }
                }
            }
        }
        return best?.f ?? automatic(out: out, in: inF, sites: minSites == maxSites ? max(2, minSites) : nil)
    }

    /// Plain low-rank factorisation W ≈ U·Vᵀ as a two-site MPO: [out, 1] × [1, in], the bond is
    /// the rank (truncated SVD, the baseline every MPO must beat at equal parameters).
    public static func lowRank(out: Int, in inF: Int) -> MPOFactorization {
        try! MPOFactorization(outFactors: [out, 1], inFactors: [1, inF])
    }

    /// Every ordered list of `count` factors ≥ 2 with product n.
    static func orderedFactorizations(_ n: Int, count: Int) -> [[Int]] {
        if count == 1 { return n >= 2 ? [[n]] : [] }
        var out: [[Int]] = []
        var d = 2
        while d * d <= n || d <= n {
            if n % d == 0, n / d >= 2 {
                for rest in orderedFactorizations(n / d, count: count - 1) { out.append([d] + rest) }
            }
            d += 1
            if d > n / 2 { break }
        }
        return out
    }
}
