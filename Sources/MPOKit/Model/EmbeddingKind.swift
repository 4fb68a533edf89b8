// Embedding kinds (docs/SPEC.md §5): how the token embedding (V, D) is stored, its parameter tensors,
// their initialisation, and the `--embedding` syntax.
//
//  - dense:        `tok_emb.weight` (V, D), as in docs/SPEC.md §1.
//  - tensor train: TensorGPT's per-token MPS. D = ∏ d_k (default [4,4,8] for D = 128, balanced
//                  factors otherwise); token v's vector is the contraction of its cores
//                  G_k[v] (r_k, d_k, r_{k+1}) with ranks [1, r, …, r, 1], d_0 the most
//                  significant digit of the feature index. Stored as `tok_emb.cores.<k>` with a
//                  leading vocabulary axis: (V, r_k, d_k, r_{k+1}). V·Σ_k r_k·d_k·r_{k+1} parameters.
//  - mpo:          the whole table as one MPO, out = vocabulary, in = d_model (docs/SPEC.md §2 cores
//                  `tok_emb.cores.<l>` (b_l, o_l, i_l, b_{l+1}); (65,128) → [5,13]×[8,16]). `svd:r`
//                  is the two-site MPO [V, 1] × [1, D] of bond r: the truncated SVD of the table.
//
// Initialisation from scratch keeps the contracted embedding at std 0.02 like the dense one:
// an entry of the contraction is a sum over ∏_{k=1}^{L−1} r_k bond paths of products of L
// independent N(0, σ²) core entries. Distinct paths differ in at least one independent zero-mean
// factor, so the terms are uncorrelated and Var = (∏ r_k)·σ^(2L). Setting it to 0.02² gives
//     σ = (0.02 / sqrt(∏_{k=1}^{L−1} r_k))^(1/L)
// (the same formula with the bonds b_l for the table MPO). E.g. [4,4,8], r = 4: σ = 0.005^(1/3) ≈ 0.171.

import Foundation
import TensorTrain

/// How the token embedding is stored.
public enum EmbeddingKind: Codable, Equatable, Sendable, CustomStringConvertible {
    case dense
    /// Per-token tensor train over `factors` of d_model, ranks [1, r_1, …, r_{L−1}, 1].
    case tensorTrain(factors: [Int], ranks: [Int])
    /// The (V, D) table as one MPO: out factors multiply to V, in factors to D.
    case mpo(factorization: MPOFactorization, bonds: [Int])

    /// Default site factors of d_model: [4,4,8] for 128, otherwise three balanced factors.
    public static func defaultFactors(channels: Int) -> [Int] {
        channels == 128 ? [4, 4, 8] : MPOFactorization.automatic(out: max(channels, 1), in: 1, sites: 3).outFactors
    }

    /// A fresh per-token tensor train of rank r (ranks [1, r, …, r, 1], never capped).
    public static func tensorTrain(rank: Int, channels: Int, factors: [Int]? = nil) -> EmbeddingKind {
        let f = factors ?? defaultFactors(channels: channels)
        return .tensorTrain(factors: f, ranks: [1] + Array(repeating: rank, count: max(f.count - 1, 0)) + [1])
    }

    /// A fresh table MPO of bond χ with the standard factorisation of (vocabulary, channels).
    public static func mpo(chi: Int, vocabulary: Int, channels: Int) -> EmbeddingKind {
        let f = MPOFactorization.automatic(out: vocabulary, in: channels)
        return .mpo(factorization: f, bonds: f.bonds(chi: chi))
    }

    /// The table as a rank-r product (V, r)·(r, D): the table MPO of two sites [V, 1] × [1, D],
    /// whose TT-SVD is the truncated SVD (ALBERT's factorised embedding).
    public static func lowRank(rank: Int, vocabulary: Int, channels: Int) -> EmbeddingKind {
        let f = MPOFactorization.lowRank(out: vocabulary, in: channels)
        return .mpo(factorization: f, bonds: f.bonds(chi: rank))
    }

    /// Parses the `--embedding` syntax: `dense`, `tt:R`, `tt:R:4x4x8` (explicit factors of
    /// d_model), `mpo:χ` or `svd:r`. The message of a failure names the bad part and the valid forms.
    public static func parse(_ text: String, vocabulary: Int, channels: Int) throws -> EmbeddingKind {
        let forms = "dense, tt:R (e.g. tt:4), tt:R:AxBxC (factors of d_model \(channels), e.g. tt:4:4x4x8), mpo:χ (e.g. mpo:8) or svd:r (e.g. svd:32)"
        let parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func number(_ s: String, _ what: String) throws -> Int {
            guard let v = Int(s), v >= 1 else { throw ModelError("--embedding: \(what) must be an integer ≥ 1 (got '\(s)' in '\(text)'); use \(forms)") }
            return v
        }
        switch (parts.first ?? "", parts.count) {
        case ("dense", 1): return .dense
        case ("tt", 2), ("tt", 3):
            let r = try number(parts[1], "the TT rank R")
            var factors: [Int]? = nil
            if parts.count == 3 {
                factors = try parts[2].split(separator: "x", omittingEmptySubsequences: false).map { try number(String($0), "every factor") }
                guard factors!.reduce(1, *) == channels else {
                    throw ModelError("--embedding: factors \(factors!) multiply to \(factors!.reduce(1, *)), not d_model \(channels); use \(forms)")
                }
            }
            return .tensorTrain(rank: r, channels: channels, factors: factors)
        case ("mpo", 2): return .mpo(chi: try number(parts[1], "the bond dimension χ"), vocabulary: vocabulary, channels: channels)
        case ("svd", 2): return .lowRank(rank: try number(parts[1], "the rank r"), vocabulary: vocabulary, channels: channels)
        default: throw ModelError("--embedding must be \(forms) (got '\(text)')")
        }
    }

    /// e.g. "dense", "tt [4, 4, 8] ranks [1, 4, 4, 1]", "mpo [5, 13]×[8, 16] bonds [1, 8, 1]".
    public var description: String {
        switch self {
        case .dense: return "dense"
        case .tensorTrain(let f, let r): return "tt \(f) ranks \(r)"
        case .mpo(let f, let b): return "mpo \(f) bonds \(b)"
        }
    }

    /// The bond list of a TT or MPO embedding (nil for dense).
    var bondList: [Int]? {
        switch self {
        case .dense: return nil
        case .tensorTrain(_, let r): return r
        case .mpo(_, let b): return b
        }
    }
}

extension ModelConfig {
    /// The embedding kind (`embedding`, with nil read as dense; setting .dense stores nil so
    /// a dense config stays equal to, and encodes like, one written before embeddings had kinds).
    public var tokenEmbedding: EmbeddingKind {
        get { embedding ?? .dense }
        set { embedding = newValue == .dense ? nil : newValue }
    }

    /// The embedding's parameter tensors in layout order, with their shapes.
    public var embeddingParameterShapes: [(name: String, shape: [Int])] {
        let V = vocabularySize, e = names.tokenEmbedding
        switch tokenEmbedding {
        case .dense:
            return [("\(e).weight", [V, channels])]
        case .tensorTrain(let f, let r):
            return f.indices.map { ("\(e).cores.\($0)", [V, r[$0], f[$0], r[$0 + 1]]) }
        case .mpo(let f, let b):
            return f.coreShapes(bonds: b).enumerated().map { ("\(e).cores.\($0.offset)", $0.element) }
        }
    }

    /// Trainable scalars of the embedding: V·D dense; V·Σ_k r_k·d_k·r_{k+1} per-token TT;
    /// Σ_l b_l·o_l·i_l·b_{l+1} table MPO.
    public var embeddingParameterCount: Int {
        embeddingParameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// Std of the fresh embedding parameters: 0.02 dense, (0.02/√∏ inner ranks)^(1/L) otherwise
    /// (see the file header), so the contracted table has std 0.02 either way.
    public var embeddingInitStd: Double {
        guard let b = tokenEmbedding.bondList else { return 0.02 }
        let L = Double(b.count - 1)
        let paths = b.dropFirst().dropLast().reduce(1.0) { $0 * Double($1) }
        return pow(0.02 / paths.squareRoot(), 1 / L)
    }

    /// Checks the embedding kind against the vocabulary and d_model.
    func validateEmbedding() throws {
        switch tokenEmbedding {
        case .dense: return
        case .tensorTrain(let f, let r):
            guard !f.isEmpty, f.allSatisfy({ $0 >= 1 }), f.reduce(1, *) == channels else {
                throw ModelError("TT embedding factors \(f) must be ≥ 1 and multiply to d_model \(channels) (e.g. \(EmbeddingKind.defaultFactors(channels: channels)))")
            }
            guard r.count == f.count + 1, r.first == 1, r.last == 1, r.allSatisfy({ $0 >= 1 }) else {
                throw ModelError("TT embedding ranks \(r) must be [1, …, 1] with \(f.count + 1) entries ≥ 1")
            }
        case .mpo(let f, let b):
            do { try f.validate(out: vocabularySize, in: channels) } catch {
                throw ModelError("embedding MPO factorisation (\(vocabularySize)×\(channels)): \(error)")
            }
            guard b.count == f.sites + 1, b.first == 1, b.last == 1, b.allSatisfy({ $0 >= 1 }) else {
                throw ModelError("embedding MPO bonds \(b) must be [1, …, 1] with \(f.sites + 1) entries ≥ 1")
            }
        }
    }
}
