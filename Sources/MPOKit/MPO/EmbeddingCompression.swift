// Compression of a token embedding (docs/SPEC.md §3, §5): TT-SVD of the (V, D) table row by row into
// per-token tensor trains, or of the whole table into an MPO, and the host-side contraction
// back to the table (so a TT/MPO embedding can be reported on or re-compressed).
//
// Per row v, the D-vector is docs/SPEC.md §3's TT-SVD with one "out" index per site: factorisation
// out = the d_model factors, in = all 1, so the MPO cores (r_k, d_k, 1, r_{k+1}) are exactly the
// per-token cores (r_k, d_k, r_{k+1}). Without a tolerance the kept ranks depend only on the
// shapes (min(R, ∏ left, ∏ right)), so every row has the same ranks; they are still padded with
// zeros to the largest per bond, which leaves every contraction unchanged.

import CBLAS
import Foundation
import TensorTrain

/// What TT-SVD did to the token embedding.
public struct EmbeddingCompression: Codable, Sendable, Equatable {
    /// The resulting embedding kind, e.g. "tt [4, 4, 8] ranks [1, 4, 4, 1]".
    public var kind: String
    /// The requested maximum rank R (per-token TT) or bond χ (table MPO).
    public var maxRank: Int
    /// Ranks / bonds actually kept.
    public var bonds: [Int]
    /// V·D.
    public var denseParameters: Int
    public var parameters: Int
    public var compressionRatio: Double
    /// ‖T − T̂‖ / ‖T‖ over the whole table (T̂ contracted from the float cores).
    public var relativeError: Double
    /// sqrt(Σ discarded singular values²) / ‖T‖ over all rows and steps (a table truncated as a
    /// head has no such bound: there it is the relative error itself).
    public var errorBound: Double
    /// For a tied table compressed by its output error as the head (`headMoment`): the head's
    /// relative output error E‖(T − T̂)h‖ / E‖T·h‖ on the calibration inputs h (damped as the
    /// linears' whitening is); nil when the table was truncated by its own error.
    public var headOutputError: Double?
    /// For a table truncated with `rowWeights` (--embedding-error fisher): the same output error
    /// with each token's logit weighted by its row weight — the metric the truncation minimised.
    public var headWeightedError: Double?
}

extension Compression {
    // MARK: - Table from cores

    /// The (V, D) embedding table of `model`: the dense weight, or its cores contracted on the
    /// host in Double.
    public static func embeddingTable(_ model: Transformer) throws -> [Float] {
        let c = model.config
        switch c.tokenEmbedding {
        case .dense: return try model.parameter(c.embeddingParameterShapes[0].name)
        case .tensorTrain, .mpo:
            let cores = try c.embeddingParameterShapes.map { try model.parameter($0.name).map(Double.init) }
            return contractEmbedding(c.tokenEmbedding, vocabulary: c.vocabularySize, channels: c.channels, cores: cores)
                .map { Float($0) }
        }
    }

    /// Contracts embedding cores (TT: each (V, r_k, d_k, r_{k+1}); MPO: docs/SPEC.md §2 cores) to the
    /// (V, D) table, in Double. Dense: `cores[0]` is the table.
    public static func contractEmbedding(_ kind: EmbeddingKind, vocabulary V: Int, channels D: Int,
                                         cores: [[Double]]) -> [Double] {
        switch kind {
        case .dense:
            return cores[0]
        case .mpo(let f, let b):
            return contractMPO(MPOCores<Double>(factorization: f, bonds: b, cores: cores))
        case .tensorTrain(let f, let r):
            let site = try! MPOFactorization(outFactors: f, inFactors: f.map { _ in 1 })
            var table = [Double](repeating: 0, count: V * D)
            for v in 0..<V {
                let row = f.indices.map { k -> [Double] in
                    let n = r[k] * f[k] * r[k + 1]
                    return Array(cores[k][(v * n)..<((v + 1) * n)])
                }
                let vec = contractMPO(MPOCores<Double>(factorization: site, bonds: r, cores: row))
                table.replaceSubrange((v * D)..<((v + 1) * D), with: vec)
            }
            return table
        }
    }

    // MARK: - TT-SVD

    /// Per-token tensor trains of maximum rank `maxRank` over `factors` of d_model, by TT-SVD of
    /// every row of the (V, D) `table`. Returns the embedding kind (with the kept ranks), the
    /// cores (V, r_k, d_k, r_{k+1}) and the report.
    public static func ttEmbedding(table: [Float], vocabulary V: Int, factors: [Int], maxRank: Int)
        throws -> (kind: EmbeddingKind, cores: [[Float]], report: EmbeddingCompression) {
        let D = factors.reduce(1, *)
        guard maxRank >= 1 else { throw ModelError("TT embedding rank must be ≥ 1 (got \(maxRank))") }
        guard !factors.isEmpty, factors.allSatisfy({ $0 >= 1 }), table.count == V * D else {
            throw ModelError("TT embedding: factors \(factors) (product \(D)) do not fit a \(V)-row table of \(table.count) entries")
        }
        let site = try MPOFactorization(outFactors: factors, inFactors: factors.map { _ in 1 })
        var rows: [MPOCores<Double>] = []
        var discarded2 = 0.0
        for v in 0..<V {
            let row = table[(v * D)..<((v + 1) * D)].map(Double.init)
            let (cores, report) = try ttSVD(row, factorization: site, maxBond: maxRank)
            rows.append(cores)
            discarded2 += report.discarded.joined().reduce(0) { $0 + $1 * $1 }
        }
        // Common ranks (the largest per bond), zero-padded.
        let L = factors.count
        let ranks = (0...L).map { k in rows.map { $0.bonds[k] }.max() ?? 1 }
        var out = (0..<L).map { [Float](repeating: 0, count: V * ranks[$0] * factors[$0] * ranks[$0 + 1]) }
        for (v, row) in rows.enumerated() {
            for k in 0..<L {
                let (ra, d, rb) = (row.bonds[k], factors[k], row.bonds[k + 1])
                let (RA, RB) = (ranks[k], ranks[k + 1]), base = v * RA * d * RB
                for a in 0..<ra { for i in 0..<d { for b in 0..<rb {
                    out[k][base + (a * d + i) * RB + b] = Float(row.cores[k][(a * d + i) * rb + b])
                } } }
            }
        }
        let kind = EmbeddingKind.tensorTrain(factors: factors, ranks: ranks)
        let approx = contractEmbedding(kind, vocabulary: V, channels: D, cores: out.map { $0.map(Double.init) })
        let report = makeReport(kind, maxRank: maxRank, bonds: ranks, table: table, approx: approx,
                                parameters: out.reduce(0) { $0 + $1.count }, discarded2: discarded2)
        return (kind, out, report)
    }

    /// The (V, D) table as one MPO of maximum bond `chi` (TT-SVD of the whole table, docs/SPEC.md §3),
    /// with the standard factorisation of (V, D) unless one is given.
    public static func mpoEmbedding(table: [Float], vocabulary V: Int, channels D: Int, chi: Int,
                                    factorization: MPOFactorization? = nil)
        throws -> (kind: EmbeddingKind, cores: MPOCores<Float>, report: EmbeddingCompression) {
        let f = factorization ?? MPOFactorization.automatic(out: V, in: D)
        try f.validate(out: V, in: D)
        let (cores, r) = try ttSVD(table.map(Double.init), factorization: f, maxBond: chi)
        let kind = EmbeddingKind.mpo(factorization: f, bonds: r.bonds)
        let fc = cores.converted(to: Float.self)
        let approx = contractMPO(fc.converted(to: Double.self))
        let discarded2 = r.discarded.joined().reduce(0) { $0 + $1 * $1 }
        return (kind, fc, makeReport(kind, maxRank: chi, bonds: r.bonds, table: table, approx: approx,
                                     parameters: r.parameters, discarded2: discarded2))
    }

    private static func makeReport(_ kind: EmbeddingKind, maxRank: Int, bonds: [Int], table: [Float], approx: [Double],
                                   parameters: Int, discarded2: Double) -> EmbeddingCompression {
        var n2 = 0.0, e2 = 0.0
        for i in table.indices {
            let a = Double(table[i])
            n2 += a * a; e2 += (a - approx[i]) * (a - approx[i])
        }
        let norm = n2.squareRoot()
        return EmbeddingCompression(kind: kind.description, maxRank: maxRank, bonds: bonds, denseParameters: table.count,
                                    parameters: parameters, compressionRatio: Double(table.count) / Double(parameters),
                                    relativeError: norm > 0 ? e2.squareRoot() / norm : 0,
                                    errorBound: norm > 0 ? discarded2.squareRoot() / norm : 0)
    }

    // MARK: - A model with a compressed embedding

    /// A new model on the same device whose embedding is `target` obtained by TT-SVD of `model`'s
    /// (contracted) table: `.tensorTrain` uses the largest of its ranks as R and its factors,
    /// `.mpo` the largest bond as χ and its factorisation, `.dense` contracts back to a table.
    /// Every other parameter is copied unchanged.
    ///
    /// `headMoment` (the head input's second moment, Calibration.headInput), for a tied table and
    /// an `.mpo` target (svd:r included): the table is truncated as the head it also is — by its
    /// output error on those inputs, whitened like every linear (SVD-LLM; with `alsSweeps` fitted
    /// exactly for a Kronecker-whitened MPO). A tied head turns every lost direction into wrong
    /// logits for every token, where the table's own error treats a row of a rare token like a
    /// row of a common one. A per-token tensor train has no head form and ignores it.
    ///
    /// `rowWeights` (V values > 0, with `headMoment`): the logits' error is weighted per token as
    /// well, ‖D^½·(T − T̂)·S‖ — the two-sided (K-FAC) form of the head's output Fisher, D the mean
    /// predicted probabilities (fisherRowWeights), so a rare token's logit counts for how often it
    /// is predicted. Exact for svd:r (the rows live in one core). A table MPO splits the token
    /// index over its cores: D is whitened as a Kronecker product of per-factor marginals, and
    /// the cores are fitted to the exact weighted error by ALS (`alsSweeps`; with 0 the error is
    /// still reported exactly).
    public static func compressEmbedding(_ model: Transformer, to target: EmbeddingKind, headMoment: [Double]? = nil,
                                         rowWeights: [Double]? = nil, alsSweeps: Int = 0) throws -> (Transformer, EmbeddingCompression) {
        let c = model.config, V = c.vocabularySize
        let table = try embeddingTable(model)
        let (kind, tensors, report): (EmbeddingKind, [[Float]], EmbeddingCompression)
        if let headMoment, c.architecture.tiedHead, case .mpo(let f, let b) = target {
            try f.validate(out: V, in: c.channels)
            let output: OutputWhitening?
            do { output = try rowWeights.map { try OutputWhitening(rowWeights: $0, factorization: f) } } catch {
                throw ModelError("tok_emb (tied head), its per-token weights: \(error)")
            }
            let (cores, head) = try compressWhitened(table, layer: "tok_emb (tied head)", factorization: f, maxBonds: f.cappedBonds(chi: b.max() ?? 1),
                                                     secondMoment: headMoment, sweeps: alsSweeps, output: output)
            kind = .mpo(factorization: f, bonds: cores.bonds)
            tensors = cores.cores
            let approx = contractMPO(cores.converted(to: Double.self))
            var r = makeReport(kind, maxRank: b.max() ?? 1, bonds: cores.bonds, table: table,
                               approx: approx, parameters: head.parameters, discarded2: 0)
            r.errorBound = r.relativeError   // no Frobenius bound: the truncation was of the whitened table
            if output != nil {
                r.headWeightedError = head.relativeError
                r.headOutputError = headError(table, approx, secondMoment: headMoment, channels: c.channels)
            } else {
                r.headOutputError = head.relativeError
            }
            report = r
        } else {
            (kind, tensors, report) = try compressTable(table, vocabulary: c.vocabularySize, channels: c.channels, to: target)
        }
        var config = c
        config.tokenEmbedding = kind
        let out = try Transformer(config: config, device: model.device, purpose: model.purpose)
        for spec in out.layout.specs where !spec.role.isEmbedding {
            try out.setParameter(spec.name, try model.parameter(spec.name))
        }
        for (k, (name, _)) in config.embeddingParameterShapes.enumerated() { try out.setParameter(name, tensors[k]) }
        out.mpoStrategy = model.mpoStrategy
        return (out, report)
    }

    /// The row weights of `--embedding-error fisher` from the calibration's mean predicted
    /// distribution p̄ (Calibration.inputStatistics): p̄_v + 1/V. A logit error δ on token v costs
    /// about ½·p_v·δ² of KL; the floor of one uniform share keeps the tokens the text never
    /// predicts from being dropped outright (their logits must stay low, not become arbitrary).
    public static func fisherRowWeights(_ meanProbabilities: [Double]) -> [Double] {
        let floor = 1 / Double(meanProbabilities.count)
        return meanProbabilities.map { $0 + floor }
    }

    /// ‖(T − T̂)·S‖ / ‖T·S‖ with S·Sᵀ = M + δI (δ = 0.01·mean diag M, as the whitening damps it):
    /// the tied head's relative output error on the inputs whose second moment is M.
    static func headError(_ table: [Float], _ approx: [Double], secondMoment m: [Double], channels D: Int) -> Double {
        let damped = InputWhitening.damped(m, n: D, damping: 0.01).matrix
        let rows = table.count / D
        func energy(_ x: [Double]) -> Double {   // Σ_v x_v·M·x_vᵀ = Σ x ∘ (x·M)
            var xm = [Double](repeating: 0, count: x.count)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(D), Int32(D), 1, x, Int32(D), damped, Int32(D), 0, &xm, Int32(D))
            var s = 0.0
            for i in 0..<x.count { s += x[i] * xm[i] }
            return s
        }
        let t = table.map(Double.init)
        let n = energy(t)
        return n > 0 ? (energy(zip(t, approx).map { $0 - $1 }) / n).squareRoot() : 0
    }

    /// TT-SVD of a (V, D) table into `target` (see `compressEmbedding`): the kind with the kept
    /// ranks, its parameter tensors in layout order, and the report.
    public static func compressTable(_ table: [Float], vocabulary V: Int, channels D: Int, to target: EmbeddingKind)
        throws -> (kind: EmbeddingKind, tensors: [[Float]], report: EmbeddingCompression) {
        let kind: EmbeddingKind, tensors: [[Float]], report: EmbeddingCompression
        switch target {
        case .dense:
            kind = .dense; tensors = [table]
            report = makeReport(.dense, maxRank: 0, bonds: [], table: table, approx: table.map(Double.init),
                                parameters: table.count, discarded2: 0)
        case .tensorTrain(let f, let r):
            guard f.reduce(1, *) == D else { throw ModelError("TT embedding factors \(f) must multiply to d_model \(D)") }
            let res = try ttEmbedding(table: table, vocabulary: V, factors: f, maxRank: r.max() ?? 1)
            (kind, tensors, report) = (res.kind, res.cores, res.report)
        case .mpo(let f, let b):
            let res = try mpoEmbedding(table: table, vocabulary: V, channels: D, chi: b.max() ?? 1, factorization: f)
            (kind, tensors, report) = (res.kind, res.cores.cores, res.report)
        }
        return (kind, tensors, report)
    }
}
