// Data-aware truncation (compress --calibration, SVD-LLM's whitening): the Cholesky factor
// reproduces the inputs' second moment, whitening round-trips, a whitened truncation reaches
// the Eckart–Young bound of W·S (the least output error on the calibration inputs at that rank)
// and beats plain SVD there, an MPO is whitened exactly when the inputs' statistics are a
// Kronecker product, the calibration moments equal ones computed in Double from the
// embedding and RMSNorm by hand, and a whitened tiny Llama loses less than a plain one.

import Foundation
import Testing
import TensorTrain
import TestSupport
@testable import MPOKit

struct WhiteningTests {
    /// (rows × n) inputs whose columns have scales from 1 to 100 and are correlated.
    static func inputs(rows: Int, n: Int, seed: UInt64) -> [Double] {
        var rng = SplitMix64(seed: seed)
        let z = (0..<(rows * n)).map { _ in rng.normal() }
        var x = [Double](repeating: 0, count: rows * n)
        for r in 0..<rows { for j in 0..<n {
            let scale = pow(100, Double(j) / Double(n - 1))
            x[r * n + j] = scale * (z[r * n + j] + 0.5 * z[r * n + (j + 1) % n])
        } }
        return x
    }

    static func squares(_ v: [Double]) -> Double { var s = 0.0; for x in v { s += x * x }; return s }

    /// A ⊗ B for square row-major A (p × p) and B (q × q).
    static func kron(_ a: [Double], _ p: Int, _ b: [Double], _ q: Int) -> [Double] {
        let n = p * q
        var k = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { k[i * n + j] = a[(i / q) * p + j / q] * b[(i % q) * q + j % q] } }
        return k
    }

    /// KᵀK (n × n) for row-major K (n × n): a positive-definite second moment shaped by K.
    static func gram(_ k: [Double], n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { var v = 0.0; for r in 0..<n { v += k[r * n + i] * k[r * n + j] }; c[i * n + j] = v } }
        return c
    }

    /// A random Kronecker-product second moment (A₀ ⊗ A₁)ᵀ(A₀ ⊗ A₁) over factors p and q: A₀ is a normal
    /// draw plus 3·I, A₁ 0.3 times one plus I, drawn in that order from `rng`.
    static func kroneckerMoment(_ p: Int, _ q: Int, rng: inout SplitMix64) -> [Double] {
        let a0 = (0..<(p * p)).map { i in rng.normal() + (i % (p + 1) == 0 ? 3 : 0) }
        let a1 = (0..<(q * q)).map { i in 0.3 * rng.normal() + (i % (q + 1) == 0 ? 1 : 0) }
        return gram(kron(a0, p, a1, q), n: p * q)
    }

    /// E·M·Eᵀ (rows × rows) for E (rows × n) and M (n × n), row-major, in Double.
    static func sandwich(_ e: [Double], _ m: [Double], rows: Int, n: Int) -> [Double] {
        let em = (0..<rows).map { v in (0..<n).map { j in (0..<n).reduce(0.0) { $0 + e[v * n + $1] * m[$1 * n + j] } } }
        var out = [Double](repeating: 0, count: rows * rows)
        for i in 0..<rows { for j in 0..<rows { out[i * rows + j] = (0..<n).reduce(0.0) { $0 + em[i][$1] * e[j * n + $1] } } }
        return out
    }

    static func moment(_ x: [Double], rows: Int, n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { var s = 0.0; for r in 0..<rows { s += x[r * n + i] * x[r * n + j] }; c[i * n + j] = s / Double(rows) } }
        return c
    }

    /// ‖X·(W − Ŵ)ᵀ‖_F / ‖X·Wᵀ‖_F.
    static func outputError(_ x: [Double], rows: Int, _ w: [Double], _ what: [Double], out: Int, n: Int) -> Double {
        var e = 0.0, t = 0.0
        for r in 0..<rows { for o in 0..<out {
            var y = 0.0, yh = 0.0
            for j in 0..<n { y += x[r * n + j] * w[o * n + j]; yh += x[r * n + j] * what[o * n + j] }
            e += (y - yh) * (y - yh); t += y * y
        } }
        return (e / t).squareRoot()
    }

    @Test("S·Sᵀ is the second moment (plus damping), S is lower triangular, unwhiten undoes whiten, solve divides by S·Sᵀ")
    func factor() throws {
        let n = 12, rows = 200, x = Self.inputs(rows: rows, n: n, seed: 1), c = Self.moment(x, rows: rows, n: n)
        for damping in [0.0, 0.01] {
            let wh = try InputWhitening(secondMoment: c, inFeatures: n, damping: damping)
            let s = wh.factor, mean = (0..<n).reduce(0.0) { $0 + c[$1 * n + $1] } / Double(n)
            for i in 0..<n { for j in 0..<n {
                if j > i { #expect(s[i * n + j] == 0) }
                var v = 0.0; for k in 0..<n { v += s[i * n + k] * s[j * n + k] }
                let target = c[i * n + j] + (i == j ? damping * mean : 0)
                #expect(abs(v - target) <= 1e-9 * mean)
            } }
            var rng = SplitMix64(seed: 2)
            let w = (0..<(7 * n)).map { _ in rng.normal() }
            let back = wh.unwhiten(wh.whiten(w, out: 7), rows: 7)
            #expect(zip(w, back).map { abs($0 - $1) }.max()! < 1e-9)
            // solve is ·(S·Sᵀ)⁻¹: solve(A)·(C + δI) = A.
            let solved = wh.solve(w, rows: 7)
            var worst = 0.0
            for r in 0..<7 { for j in 0..<n {
                var v = damping * mean * solved[r * n + j]
                for k in 0..<n { v += solved[r * n + k] * c[k * n + j] }
                worst = max(worst, abs(v - w[r * n + j]))
            } }
            #expect(worst < 1e-9, "solve off by \(worst)")
            // A plain SVD layer's Kronecker whitening is this one; an MPO's input split is not.
            #expect(KroneckerWhitening(exact: wh, inFactors: [1, n])?.factors.map { $0?.factor } == [nil, s])
            #expect(KroneckerWhitening(exact: wh, inFactors: [3, 4]) == nil)
        }
        #expect(throws: TensorTrainError.self) { try InputWhitening(secondMoment: [Double](repeating: 0, count: 4), inFeatures: 2) }
    }

    @Test("a whitened truncation reaches the least output error at its rank (the tail of W·S's spectrum) and beats plain SVD's")
    func optimalOutputError() throws {
        let n = 12, out = 10, rows = 300, rank = 3
        let x = Self.inputs(rows: rows, n: n, seed: 3), c = Self.moment(x, rows: rows, n: n)
        var rng = SplitMix64(seed: 4)
        let w = (0..<(out * n)).map { _ in Float(rng.normal()) }, wd = w.map(Double.init)
        let f = MPOFactorization.lowRank(out: out, in: n), caps = [1, rank, 1]
        let wh = try InputWhitening(secondMoment: c, inFeatures: n, damping: 0)
        let (whitened, report) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: c, damping: 0)
        let (plain, _) = try Compression.compressWeight(w, layer: "l", factorization: f, maxBonds: caps)
        let ew = Self.outputError(x, rows: rows, wd, contractMPO(whitened).map(Double.init), out: out, n: n)
        let ep = Self.outputError(x, rows: rows, wd, contractMPO(plain).map(Double.init), out: out, n: n)
        // Eckart–Young on W·S: the relative output error is the tail of its singular values.
        let sv = try unfoldingSpectra(wh.whiten(wd, out: out).map(Float.init), factorization: f)[0]
        let bound = (sv[rank...].reduce(0) { $0 + $1 * $1 } / sv.reduce(0) { $0 + $1 * $1 }).squareRoot()
        #expect(abs(ew - bound) < 1e-4, "whitened output error \(ew) vs bound \(bound)")
        #expect(abs(report.relativeError - ew) < 1e-4, "the report gives the output error")
        #expect(ew < 0.8 * ep, "whitened \(ew) vs plain \(ep)")
    }

    @Test("an MPO whose inputs have Kronecker-structured statistics is whitened exactly: 2 sites reach the TT-SVD bound of W·S and beat plain TT-SVD")
    func kroneckerMPO() throws {
        let d0 = 3, d1 = 4, n = d0 * d1, out = 10, rows = 400
        let f = try MPOFactorization(outFactors: [2, 5], inFactors: [d0, d1]), caps = [1, 3, 1]
        // X = Z·(A₀ ⊗ A₁): its second moment is (A₀ᵀA₀) ⊗ (A₁ᵀA₁) in expectation; use that exact product.
        var rng = SplitMix64(seed: 5)
        var a0 = [Double](repeating: 0, count: d0 * d0), a1 = [Double](repeating: 0, count: d1 * d1)
        for i in 0..<(d0 * d0) { a0[i] = rng.normal() + (i % (d0 + 1) == 0 ? 3 : 0) }
        for i in 0..<(d1 * d1) { a1[i] = 0.3 * rng.normal() + (i % (d1 + 1) == 0 ? 0.2 * Double(i + 1) : 0) }
        let k = Self.kron(a0, d0, a1, d1)   // (n × n)
        let c = Self.gram(k, n: n)
        var x = [Double](repeating: 0, count: rows * n)
        for r in 0..<rows {
            var z = [Double](repeating: 0, count: n)
            for i in 0..<n { z[i] = rng.normal() }
            for j in 0..<n { var v = 0.0; for i in 0..<n { v += z[i] * k[i * n + j] }; x[r * n + j] = v }
        }
        let w = (0..<(out * n)).map { _ in Float(rng.normal()) }, wd = w.map(Double.init)
        let (whitened, report) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: c, damping: 0)
        let (plain, _) = try Compression.compressWeight(w, layer: "l", factorization: f, maxBonds: caps)
        // The whitened error in the exact metric: ‖(W − Ŵ)·S‖/‖W·S‖ with S = chol(c).
        let s = try InputWhitening(secondMoment: c, inFeatures: n, damping: 0)
        func metric(_ what: [Float]) -> Double {
            var diff = [Double](repeating: 0, count: wd.count)
            for i in 0..<wd.count { diff[i] = wd[i] - Double(what[i]) }
            let e: [Double] = s.whiten(diff, out: out), t: [Double] = s.whiten(wd, out: out)
            return (Self.squares(e) / Self.squares(t)).squareRoot()
        }
        let ew = metric(contractMPO(whitened)), ep = metric(contractMPO(plain))
        let kw = try KroneckerWhitening(secondMoment: c, inFactors: f.inFactors, damping: 0)
        let sv = try unfoldingSpectra(kw.whiten(wd, out: out).map(Float.init), factorization: f)[0]
        let bound: Double = (Self.squares(Array(sv[3...])) / Self.squares(sv)).squareRoot()
        let reported: Double = report.relativeError
        #expect(abs(ew - bound) < 1e-4 && abs(reported - ew) < 1e-4, "error \(ew), bound \(bound), report \(reported)")
        #expect(ew < 0.9 * ep, "whitened \(ew) vs plain \(ep)")
        // The sampled inputs' output error agrees in ranking.
        let sampledW = Self.outputError(x, rows: rows, wd, contractMPO(whitened).map(Double.init), out: out, n: n)
        let sampledP = Self.outputError(x, rows: rows, wd, contractMPO(plain).map(Double.init), out: out, n: n)
        #expect(sampledW < sampledP)
    }

    @Test("calibration moments of block 0's q/k/v input equal XᵀX/N of the RMS-normed embeddings computed in Double")
    func momentsByHand() throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        let c = m.config, C = c.channels, n = c.names
        let (tok, _, _, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        let tokens = Array(tok.prefix(2 * t)), window = t
        let moments = try Calibration.inputSecondMoments(m, tokens: tokens, context: window)
        let emb = try m.parameter("\(n.tokenEmbedding).weight").map(Double.init)
        let g = try m.parameter("\(n.block(0)).\(n.norm1).weight").map(Double.init), eps = c.architecture.normEpsilon
        var ref = [Double](repeating: 0, count: C * C)
        for id in tokens {
            let row = Array(emb[(Int(id) * C)..<(Int(id) * C + C)])
            let r = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(C) + eps).squareRoot()
            let x = (0..<C).map { row[$0] * r * g[$0] }
            for i in 0..<C { for j in 0..<C { ref[i * C + j] += x[i] * x[j] / Double(tokens.count) } }
        }
        let b0 = c.blockLinears(0)
        let q = b0.first { $0.role == .query }!, k = b0.first { $0.role == .key }!, down = b0.first { $0.role == .down }!
        let scale = ref.map(abs).max()!
        #expect(zip(moments[q.name]!, ref).map { abs($0 - $1) }.max()! <= 1e-5 * scale)
        #expect(moments[k.name]! == moments[q.name]!)
        #expect(moments[down.name]!.count == c.ffn * c.ffn)
        #expect(moments.count == c.layers * 7 + 1)
        #expect(m.linearInputTap == nil, "the tap is removed afterwards")
        // The head's input h (tied: logits = E·h): E·Σ_h·Eᵀ is the mean of logits·logitsᵀ over the
        // same windows' rows, computed from the model's own logits in Double.
        let head = try #require(moments[Calibration.headInput])
        #expect(head.count == C * C)
        let V = c.vocabularySize
        var rhs = [Double](repeating: 0, count: V * V)
        for w in 0..<(tokens.count / window) {
            try m.forward(tokens: Array(tokens[(w * window)..<((w + 1) * window)]), batch: 1, time: window, needsGradients: false)
            let logits = try m.logits().map(Double.init)
            for r in 0..<window { for i in 0..<V { for j in 0..<V { rhs[i * V + j] += logits[r * V + i] * logits[r * V + j] / Double(tokens.count) } } }
        }
        let lhs = Self.sandwich(emb, head, rows: V, n: C)
        let top = rhs.map(abs).max()!
        #expect(zip(lhs, rhs).map { abs($0 - $1) }.max()! <= 1e-4 * top, "E·Σ_h·Eᵀ against the logits' second moment")
    }

    @Test("a tied table compressed as the head (--calibration with svd:r / mpo:χ) reaches the least logit error at its rank and loses less than one truncated by its own error",
          arguments: ["svd", "mpo"])
    func tiedHead(kind: String) throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        let c = m.config, V = c.vocabularySize, C = c.channels
        #expect(c.architecture.tiedHead)
        let (tok, targets, b, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        let moments = try Calibration.inputSecondMoments(m, tokens: tok, context: t)
        let head = try #require(moments[Calibration.headInput])
        let target: EmbeddingKind = kind == "svd" ? .lowRank(rank: 6, vocabulary: V, channels: C) : .mpo(chi: 6, vocabulary: V, channels: C)
        let (plain, p) = try Compression.compressEmbedding(m, to: target)
        let (white, w) = try Compression.compressEmbedding(m, to: target, headMoment: head)
        #expect(p.headOutputError == nil && w.parameters == p.parameters && w.bonds == p.bonds)
        // The logits' error on the calibration inputs, E‖(E − Ê)h‖² = tr(ΔE·Σ_h·ΔEᵀ), in Double.
        let table = try Compression.embeddingTable(m).map(Double.init)
        func logitError(_ model: Transformer) throws -> Double {
            let d = zip(try Compression.embeddingTable(model).map(Double.init), table).map { $0 - $1 }
            var e = 0.0, n = 0.0
            for v in 0..<V { for i in 0..<C { for j in 0..<C {
                e += d[v * C + i] * head[i * C + j] * d[v * C + j]; n += table[v * C + i] * head[i * C + j] * table[v * C + j]
            } } }
            return (e / n).squareRoot()
        }
        let ew = try logitError(white), ep = try logitError(plain)
        #expect(ew < 0.9 * ep, "logit error: as the head \(ew), by the table's own error \(ep)")
        #expect(w.relativeError > p.relativeError, "the table's own error is what it gives up: \(w.relativeError) vs \(p.relativeError)")
        if kind == "svd" {
            // Rank 6 of E·S is the optimum (Eckart–Young in the metric Σ_h + δI, δ the whitening's
            // damping): the reported output error is the tail of its spectrum, from float64 Jacobi.
            let damped = ALSTests.damped(head, n: C, 0.01)
            let lambda = TTEmbeddingTests.jacobiEigenvalues(Self.sandwich(table, damped, rows: V, n: C), n: V).sorted(by: >)
            let optimal = (lambda[6...].reduce(0, +) / lambda.reduce(0, +)).squareRoot()
            #expect(abs(try #require(w.headOutputError) - optimal) < 1e-4, "reported \(w.headOutputError!), Eckart–Young \(optimal)")
        }
        let base = try m.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        let lp = try plain.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        let lw = try white.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        #expect(lw - base < lp - base, "loss: original \(base), table by its own error \(lp), as the head \(lw)")
    }

    @Test("fisher: the calibration's mean predicted distribution is the mean softmax of the logits, and an svd:r table truncated with those row weights reaches the least weighted logit error at its rank; a table MPO so truncated reports its exact weighted error, which ALS lowers; the table's spectrum as a budget layer gives those errors at every rank, and its K-FAC price is ½·Σ p̄·(T·M·Tᵀ)_vv")
    func tiedHeadFisher() throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        let c = m.config, V = c.vocabularySize, C = c.channels
        let (tok, _, _, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        let (moments, probabilities) = try Calibration.inputStatistics(m, tokens: tok, context: t, headProbabilities: true)
        let p = try #require(probabilities)
        #expect(moments == (try Calibration.inputSecondMoments(m, tokens: tok, context: t)))
        var ref = [Double](repeating: 0, count: V)
        for w in 0..<(tok.count / t) {
            try m.forward(tokens: Array(tok[(w * t)..<((w + 1) * t)]), batch: 1, time: t, needsGradients: false)
            let logits = try m.logits().map(Double.init)
            for r in 0..<t {
                let row = logits[(r * V)..<((r + 1) * V)], z = row.reduce(0) { $0 + exp($1) }
                for (j, x) in row.enumerated() { ref[j] += exp(x) / z / Double(tok.count) }
            }
        }
        #expect(zip(p, ref).map { abs($0 - $1) }.max()! < 1e-9 && abs(p.reduce(0, +) - 1) < 1e-9)
        let head = try #require(moments[Calibration.headInput]), weights = Compression.fisherRowWeights(p)
        #expect(weights.allSatisfy { $0 >= 1 / Double(V) } && abs(weights.reduce(0, +) - 2) < 1e-9)
        let rank = 6, target = EmbeddingKind.lowRank(rank: rank, vocabulary: V, channels: C)
        let (output, o) = try Compression.compressEmbedding(m, to: target, headMoment: head)
        let (fisher, f) = try Compression.compressEmbedding(m, to: target, headMoment: head, rowWeights: weights)
        #expect(o.headWeightedError == nil && f.parameters == o.parameters)
        // Eckart–Young in the two-sided metric: the tail of the spectrum of D^½·T·(Σ_h + δI)·Tᵀ·D^½.
        let damped = ALSTests.damped(head, n: C, 0.01)
        let table = try Compression.embeddingTable(m).map(Double.init)
        var g = Self.sandwich(table, damped, rows: V, n: C)
        for i in 0..<V { for j in 0..<V { g[i * V + j] *= (weights[i] * weights[j]).squareRoot() } }
        let lambda = TTEmbeddingTests.jacobiEigenvalues(g, n: V).sorted(by: >)
        let optimal = (lambda[rank...].reduce(0, +) / lambda.reduce(0, +)).squareRoot()
        #expect(abs(try #require(f.headWeightedError) - optimal) < 1e-4, "reported \(f.headWeightedError!), Eckart–Young \(optimal)")
        // The table as one more layer of a budget (--embedding svd:auto): its spectrum gives that error at every rank,
        // and without the head's moment the table's own; its K-FAC weight is ½·Σ_v p̄_v·(T·M·Tᵀ)_vv.
        let asLayer = try SpectralAllocator.tableSpectra(m, headMoment: head, rowWeights: weights)
        for r in 1...C {
            let tail = (lambda[r...].reduce(0, +) / lambda.reduce(0, +)).squareRoot()
            #expect(abs(asLayer.relativeError2(bonds: [1, r, 1]).squareRoot() - tail) < 1e-4, "rank \(r): \(asLayer.relativeError2(bonds: [1, r, 1]).squareRoot()) vs \(tail)")
        }
        let own = try SpectralAllocator.tableSpectra(m, headMoment: nil, rowWeights: nil)
        let (_, plainTable) = try Compression.compressEmbedding(m, to: target)
        #expect(abs(own.relativeError2(bonds: [1, rank, 1]).squareRoot() - plainTable.relativeError) < 1e-5)
        var kfac = 0.0
        for v in 0..<V { for i in 0..<C { for j in 0..<C { kfac += 0.5 * p[v] * table[v * C + i] * head[i * C + j] * table[v * C + j] } } }
        let priced = try BondAllocator.kfacTableSensitivity(table: try Compression.embeddingTable(m), vocabulary: V, channels: C, headMoment: head, probabilities: p)
        #expect(abs(priced - kfac) < 1e-9 * abs(kfac), "\(priced) vs \(kfac)")
        // Each truncation is the best of its rank in its own metric, measured here in Double.
        func errors(_ model: Transformer) throws -> (plain: Double, weighted: Double) {
            let d = zip(try Compression.embeddingTable(model).map(Double.init), table).map { $0 - $1 }
            var e = 0.0, n = 0.0, ew = 0.0, nw = 0.0
            for v in 0..<V {
                var ev = 0.0, nv = 0.0
                for i in 0..<C { for j in 0..<C { ev += d[v * C + i] * damped[i * C + j] * d[v * C + j]; nv += table[v * C + i] * damped[i * C + j] * table[v * C + j] } }
                e += ev; n += nv; ew += weights[v] * ev; nw += weights[v] * nv
            }
            return ((e / n).squareRoot(), (ew / nw).squareRoot())
        }
        let eo = try errors(output), ef = try errors(fisher)
        let reported = try #require(f.headOutputError)
        #expect(abs(ef.weighted - optimal) < 1e-4 && abs(reported - ef.plain) < 1e-4, "fisher table: \(ef), reported \(reported)")
        #expect(ef.weighted < eo.weighted - 1e-4 && eo.plain < ef.plain - 1e-4, "weighted / plain logit error: fisher \(ef), output \(eo)")
        // A table MPO: the token weights as a Kronecker product, then ALS in the exact weighted error, which it
        // reports (at 0 sweeps too); the sweeps lower it and keep the bonds.
        let mpo = EmbeddingKind.mpo(chi: 3, vocabulary: V, channels: C)
        let (start, ms) = try Compression.compressEmbedding(m, to: mpo, headMoment: head, rowWeights: weights)
        let (fitted, mf) = try Compression.compressEmbedding(m, to: mpo, headMoment: head, rowWeights: weights, alsSweeps: 2)
        let es: (plain: Double, weighted: Double) = try errors(start), mw: (plain: Double, weighted: Double) = try errors(fitted)
        let mpoReported = [ms.headWeightedError, ms.headOutputError, mf.headWeightedError, mf.headOutputError].compactMap { $0 }
        #expect(fitted.config.tokenEmbedding == start.config.tokenEmbedding && mpoReported.count == 4)
        #expect(zip(mpoReported, [es.weighted, es.plain, mw.weighted, mw.plain]).allSatisfy { abs($0 - $1) < 1e-4 },
                "MPO fisher table: reported \(mpoReported) vs loops \(es), \(mw)")
        #expect(mw.weighted < es.weighted - 1e-4, "weighted logit error: ALS \(mw.weighted) vs the Kronecker start \(es.weighted)")
    }

    @Test("a tiny Llama compressed to rank 3 with whitening loses less on its calibration text than with plain SVD")
    func wholeModel() throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        let (tok, targets, b, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        var fs: [String: MPOFactorization] = [:]
        for l in m.config.linearLayers { fs[l.name] = MPOFactorization.lowRank(out: l.out, in: l.in) }
        let moments = try Calibration.inputSecondMoments(m, tokens: tok, context: t)
        let (plain, _) = try Compression.compress(m, chi: 3, factorizations: fs)
        let (white, reports) = try Compression.compress(m, chi: 3, factorizations: fs, inputMoments: moments)
        #expect(reports.allSatisfy { $0.bonds == [1, 3, 1] })
        let base = try m.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        let lp = try plain.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        let lw = try white.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        #expect(lw - base < 0.8 * (lp - base), "loss: original \(base), plain SVD \(lp), whitened \(lw)")
    }

    /// The tiny Llama reference model, its token batch, windows of half its length, SVD
    /// factorisations of every layer and the batch's input second moments.
    static func sensitivitySetUp() throws -> (Transformer, [Int32], Int, [String: MPOFactorization], [String: [Double]]) {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        let (tok, _, _, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        var fs: [String: MPOFactorization] = [:]
        for l in m.config.linearLayers { fs[l.name] = MPOFactorization.lowRank(out: l.out, in: l.in) }
        return (m, tok, max(2, t / 2), fs, try Calibration.inputSecondMoments(m, tokens: tok, context: t))
    }

    @Test("with calibration moments a layer's sensitivity is the loss its whitened truncation alone adds per unit of its relative output error², not of its weight error")
    func sensitivityOnOutputErrors() throws {
        let (m, tok, time, fs, moments) = try Self.sensitivitySetUp()
        let output = try BondAllocator.sensitivity(m, chi: 2, validation: tok, batches: 1, time: time, factorizations: fs, inputMoments: moments)
        let weight = try BondAllocator.sensitivity(m, chi: 2, validation: tok, batches: 1, time: time, factorizations: fs)
        func loss(_ x: Transformer) throws -> Double { var rng = SplitMix64(seed: 2024); return try x.evaluate(tok, batches: 1, batchSize: 8, time: time, rng: &rng).loss }
        let base = try loss(m)
        var raw: [String: Double] = [:], differs = 0
        for l in m.config.linearLayers {   // by hand: the layer alone truncated whitened, its output error from the report
            let (one, reports) = try Compression.compress(m, chi: 2, layers: [l.name], factorizations: fs, inputMoments: moments)
            let e = try #require(reports.first { $0.layer == l.name }).relativeError
            raw[l.name] = max(try loss(one) - base, 0) / (e * e)
            if abs(output[l.name]! - weight[l.name]!) > 0.01 * weight[l.name]! { differs += 1 }
        }
        let floor = 1e-3 * raw.values.sorted()[raw.count / 2]
        for (name, r) in raw { #expect(abs(output[name]! - max(r, floor)) <= 1e-9 * max(r, floor), "\(name): \(output[name]!) vs \(r)") }
        #expect(differs >= raw.count / 2, "output- and weight-error sensitivities differ in \(differs) of \(raw.count) layers")
    }

    @Test("the Fisher sensitivity of a layer is ⟨gradient, truncation error⟩² per unit of its relative output error²: it matches central finite differences of the loss along each layer's truncation error")
    func fisherSensitivityMatchesFiniteDifferences() throws {
        let (m, tok, time, fs, moments) = try Self.sensitivitySetUp()
        // One window, so the Fisher is one gradient's square along each truncation.
        let fisher = try BondAllocator.fisherSensitivity(m, chi: 2, validation: tok, batches: 1, batchSize: 1, time: time,
                                                         factorizations: fs, inputMoments: moments)
        var rng = SplitMix64(seed: 2024)
        let (wt, wg) = TextDataset.sample(tok, batch: 1, time: time, rng: &rng)
        func loss() throws -> Double { try m.forward(tokens: wt, targets: wg, batch: 1, time: time, needsGradients: false).loss }
        var raw: [String: Double] = [:]
        let h = 0.05
        for l in m.config.linearLayers {   // the loss's slope along E = W − Ŵ, by central differences in float64 arithmetic on the weights
            let (one, reports) = try Compression.compress(m, chi: 2, layers: [l.name], factorizations: fs, inputMoments: moments)
            let e = try #require(reports.first { $0.layer == l.name }).relativeError
            let w = try m.parameter("\(l.name).weight"), approx = try #require(try Compression.denseWeights(one, layers: [l.name])[l.name])
            func shifted(_ s: Double) -> [Float] { (0..<w.count).map { Float(Double(w[$0]) + s * (Double(w[$0]) - Double(approx[$0]))) } }
            try m.setParameter("\(l.name).weight", shifted(h)); let up = try loss()
            try m.setParameter("\(l.name).weight", shifted(-h)); let down = try loss()
            try m.setParameter("\(l.name).weight", w)
            let slope = (up - down) / (2 * h)
            raw[l.name] = slope * slope / (e * e)
        }
        let median = raw.values.sorted()[raw.count / 2]
        #expect(Set(fisher.keys) == Set(raw.keys) && abs(fisher.values.sorted()[fisher.count / 2] - 1) < 1e-12, "\(fisher)")
        var checked = 0
        for (name, r) in raw where r / median > 1e-2 {   // above the floor and the differences' rounding
            #expect(abs(fisher[name]! - r / median) <= 0.05 * r / median, "\(name): Fisher \(fisher[name]!) vs finite differences \(r / median)")
            checked += 1
        }
        #expect(checked >= raw.count / 2, "only \(checked) of \(raw.count) layers above 1 % of the median: \(raw)")
    }
}
