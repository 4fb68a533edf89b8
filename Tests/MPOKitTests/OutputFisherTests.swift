// K-FAC's two-sided Fisher for a plain SVD layer (compress --output-fisher): whitening the
// outputs by the loss gradients' second moment G as well as the inputs by theirs, M, makes the
// truncation reach the least tr(G·ΔW·M·ΔWᵀ) at its rank (Eckart–Young on Sgᵀ·W·S, checked
// against float64 Jacobi eigenvalues of Sgᵀ·W·M·Wᵀ·Sg); a diagonal G (`.rows`, a tied table's
// per-token weights) is the same transform; an MPO's is a Kronecker product on each side (of
// per-factor marginals for per-row weights), made exact in the two-sided metric by ALS; the gradients the calibration collects are the dY
// the weight gradient is made of (dW = dYᵀ·X); and a tiny Llama truncated so loses less.

import Foundation
import Testing
import TensorTrain
import TestSupport
@testable import MPOKit

struct OutputFisherTests {
    /// tr(G·A·M·Aᵀ) for A (out × n) row-major, G (out × out), M (n × n), in Double loops.
    static func fisherEnergy(_ a: [Double], _ g: [Double], _ m: [Double], out: Int, n: Int) -> Double {
        var am = [Double](repeating: 0, count: out * n)   // A·M
        for o in 0..<out { for j in 0..<n { for k in 0..<n { am[o * n + j] += a[o * n + k] * m[k * n + j] } } }
        var s = 0.0
        for o in 0..<out { for p in 0..<out {
            var amat = 0.0   // (A·M·Aᵀ)[o, p]
            for j in 0..<n { amat += am[o * n + j] * a[p * n + j] }
            s += g[p * out + o] * amat
        } }
        return s
    }

    @Test("two-sided whitening reaches the least Fisher error tr(G·ΔW·M·ΔWᵀ) at its rank, below the input-only truncation's, which keeps the lower output error; .rows is a diagonal .full; an MPO is refused")
    func optimalFisherError() throws {
        let n = 12, out = 10, rows = 300, rank = 3, damping = 0.01
        let x = WhiteningTests.inputs(rows: rows, n: n, seed: 3), m = WhiteningTests.moment(x, rows: rows, n: n)
        // Output gradients with their own scales and correlations (reversed, so they disagree with the inputs').
        let gx = WhiteningTests.inputs(rows: rows, n: out, seed: 7)
        let gRows = (0..<(rows * out)).map { gx[($0 / out) * out + (out - 1 - $0 % out)] }
        let g = WhiteningTests.moment(gRows, rows: rows, n: out)
        var rng = SplitMix64(seed: 4)
        let w = (0..<(out * n)).map { _ in Float(rng.normal()) }, wd = w.map(Double.init)
        let f = MPOFactorization.lowRank(out: out, in: n), caps = [1, rank, 1]
        let output = try OutputWhitening(secondMoment: g, outFeatures: out, damping: damping)
        let (two, report) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: m,
                                                             damping: damping, output: output)
        let (one, _) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: m, damping: damping)
        let gd = ALSTests.damped(g, n: out, damping), md = ALSTests.damped(m, n: n, damping)
        func fisherError(_ c: MPOCores<Float>) -> Double {
            let d = zip(wd, contractMPO(c).map(Double.init)).map { $0 - $1 }
            return (Self.fisherEnergy(d, gd, md, out: out, n: n) / Self.fisherEnergy(wd, gd, md, out: out, n: n)).squareRoot()
        }
        // The optimum: the eigenvalues of Sgᵀ·(W·M·Wᵀ)·Sg (Sg·Sgᵀ = G + δI, InputWhitening's tested Cholesky) are the
        // squared singular values of Sgᵀ·W·S; its rank-3 truncation leaves their tail.
        let sg = try InputWhitening(secondMoment: g, inFeatures: out, damping: damping).factor
        var wmw = [Double](repeating: 0, count: out * out)
        for o in 0..<out { for p in 0..<out { for i in 0..<n { for j in 0..<n { wmw[o * out + p] += wd[o * n + i] * md[i * n + j] * wd[p * n + j] } } } }
        var a = [Double](repeating: 0, count: out * out)
        for i in 0..<out { for j in 0..<out { for k in 0..<out { for l in 0..<out { a[i * out + j] += sg[k * out + i] * wmw[k * out + l] * sg[l * out + j] } } } }
        let lambda = TTEmbeddingTests.jacobiEigenvalues(a, n: out).sorted(by: >)
        let optimal = (lambda[rank...].reduce(0, +) / lambda.reduce(0, +)).squareRoot()
        let e2 = fisherError(two), e1 = fisherError(one)
        #expect(abs(e2 - optimal) < 1e-5 && abs(report.relativeError - optimal) < 1e-5, "two-sided \(e2), reported \(report.relativeError), optimum \(optimal)")
        #expect(e1 > e2 + 0.02, "input-only truncation's Fisher error \(e1) against \(e2)")
        let o1 = WhiteningTests.outputError(x, rows: rows, wd, contractMPO(one).map(Double.init), out: out, n: n)
        let o2 = WhiteningTests.outputError(x, rows: rows, wd, contractMPO(two).map(Double.init), out: out, n: n)
        #expect(o1 < o2, "the output error is the input-only truncation's optimum: \(o1) against \(o2)")
        // A diagonal G: .rows(d) and .full(diag d) undamped are the same whitening.
        let d = (0..<out).map { 0.1 + Double($0 * $0) }
        var diag = [Double](repeating: 0, count: out * out)
        for o in 0..<out { diag[o * out + o] = d[o] }
        let (byRows, _) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: m, damping: damping,
                                                           output: OutputWhitening(rowWeights: d))
        let (byFull, _) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: m, damping: damping,
                                                           output: OutputWhitening(secondMoment: diag, outFeatures: out, damping: 0))
        let wr = contractMPO(byRows), wf = contractMPO(byFull)
        #expect(zip(wr, wf).map { abs($0 - $1) }.max()! < 1e-4)
        #expect(zip(wr, w).map { abs($0 - $1) }.max()! > 1e-2, "rank 3 of 10 changes W")
        // Neither the truncation nor the split into U and V depends on the scale of G or of the row
        // weights (loss gradients are ~1/tokens: unnormalised, U would grow and V shrink by as much).
        let (small, _) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: m, damping: damping,
                                                          output: OutputWhitening(secondMoment: g.map { $0 * 1e-8 }, outFeatures: out, damping: damping))
        let (rowsSmall, _) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: m, damping: damping,
                                                              output: OutputWhitening(rowWeights: d.map { $0 * 1e-6 }))
        for (a, b) in [(small, two), (rowsSmall, byRows)] {
            for k in 0..<2 { #expect(zip(a.cores[k], b.cores[k]).map { abs($0 - $1) }.max()! < 1e-4 * b.cores[k].map(abs).max()!) }
        }
        #expect(throws: ModelError.self) {
            try Compression.compressWhitened(w, layer: "l", factorization: try MPOFactorization(outFactors: [2, 5], inFactors: [3, 4]),
                                             maxBonds: caps, secondMoment: m, output: output)
        }
    }

    @Test("an MPO's two-sided whitening (G and M as Kronecker products over its output and input factors, then ALS in the exact metric): its reported error is tr(G·ΔW·M·ΔWᵀ) by float64 loops, ALS lowers it below the Kronecker start and below the input-only fit; exact Kronecker moments leave nothing to refine")
    func mpoTwoSided() throws {
        let n = 12, out = 10, rows = 300, damping = 0.01
        let m = WhiteningTests.moment(WhiteningTests.inputs(rows: rows, n: n, seed: 21), rows: rows, n: n)
        let gx = WhiteningTests.inputs(rows: rows, n: out, seed: 22)
        let g = WhiteningTests.moment((0..<(rows * out)).map { gx[($0 / out) * out + (out - 1 - $0 % out)] }, rows: rows, n: out)
        var rng = SplitMix64(seed: 23)
        let w = (0..<(out * n)).map { _ in Float(rng.normal()) }, wd = w.map(Double.init)
        let gd = ALSTests.damped(g, n: out, OutputWhitening.fisherDamping), md = ALSTests.damped(m, n: n, damping)
        func fisherError(_ c: MPOCores<Float>, _ gm: [Double], _ mm: [Double]) -> Double {
            let d = zip(wd, contractMPO(c).map(Double.init)).map { $0 - $1 }
            return (Self.fisherEnergy(d, gm, mm, out: out, n: n) / Self.fisherEnergy(wd, gm, mm, out: out, n: n)).squareRoot()
        }
        for (f, caps) in ALSTests.cases {
            let output = try OutputWhitening(secondMoment: g, factorization: f)
            guard case .kronecker = output, output.metric() != nil else { Issue.record("\(f): not a Kronecker output whitening"); continue }
            func compress(_ sweeps: Int, _ o: OutputWhitening?) throws -> (MPOCores<Float>, LayerCompression) {
                try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: m, damping: damping, sweeps: sweeps, output: o)
            }
            let (start, r0) = try compress(0, output), (fitted, r4) = try compress(4, output), (inputOnly, _) = try compress(4, nil)
            let e0 = fisherError(start, gd, md), e4 = fisherError(fitted, gd, md)
            #expect(fitted.bonds == start.bonds && start.bonds == inputOnly.bonds)
            #expect(abs(r0.relativeError - e0) < 1e-6 && abs(r4.relativeError - e4) < 1e-6, "\(f): reported \(r0.relativeError), \(r4.relativeError) vs loops \(e0), \(e4)")
            #expect(e4 < 0.97 * e0, "\(f): ALS \(e4) vs the Kronecker start \(e0)")
            #expect(e4 < fisherError(inputOnly, gd, md), "\(f): two-sided \(e4) vs input-only \(fisherError(inputOnly, gd, md))")
        }
        // G and M Kronecker products, undamped: the whitened TT-SVD of two sites is the optimum already.
        func kroneckerMoment(_ p: Int, _ q: Int, seed: UInt64) -> [Double] {
            var rng = SplitMix64(seed: seed)
            return WhiteningTests.kroneckerMoment(p, q, rng: &rng)
        }
        let f = ALSTests.cases[0].0, gk = kroneckerMoment(2, 5, seed: 24), mk = kroneckerMoment(3, 4, seed: 25)
        let (exact, report) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: [1, 3, 1], secondMoment: mk, damping: 0, sweeps: 3,
                                                               output: try OutputWhitening(secondMoment: gk, factorization: f, damping: 0))
        #expect(report.relativeError > 0.05 && abs(report.relativeError - report.errorBound) < 1e-9, "\(report.relativeError) vs bound \(report.errorBound)")
        #expect(abs(fisherError(exact, gk, mk) - report.errorBound) < 1e-6)
    }

    @Test("per-row weights on an MPO (a tied table's per-token Fisher, --embedding-error fisher with mpo:χ): diag(d) as a Kronecker product of its marginals, then ALS in the exact weighted metric — the reported error is Σ d_o·Δ_o·M·Δ_oᵀ / Σ d_o·W_o·M·W_oᵀ by float64 loops, ALS lowers it below the Kronecker start and below the unweighted fit; Kronecker-product weights leave nothing to refine; a plain SVD layer gets .rows")
    func mpoRowWeights() throws {
        let n = 12, out = 10, rows = 300, damping = 0.01
        let m = WhiteningTests.moment(WhiteningTests.inputs(rows: rows, n: n, seed: 31), rows: rows, n: n)
        var rng = SplitMix64(seed: 32)
        let w = (0..<(out * n)).map { _ in Float(rng.normal()) }, wd = w.map(Double.init)
        let d = (0..<out).map { _ in exp(1.5 * rng.normal()) }   // skewed, as predicted token probabilities are
        func diagonal(_ v: [Double]) -> [Double] { (0..<(v.count * v.count)).map { $0 / v.count == $0 % v.count ? v[$0 % v.count] : 0 } }
        let md = ALSTests.damped(m, n: n, damping)
        func weightedError(_ c: MPOCores<Float>, _ dm: [Double], _ mm: [Double]) -> Double {
            let delta = zip(wd, contractMPO(c).map(Double.init)).map { $0 - $1 }
            return (Self.fisherEnergy(delta, dm, mm, out: out, n: n) / Self.fisherEnergy(wd, dm, mm, out: out, n: n)).squareRoot()
        }
        for (f, caps) in ALSTests.cases {
            let output = try OutputWhitening(rowWeights: d, factorization: f)
            guard case .kroneckerRows = output, case .diagonal? = output.metric() else { Issue.record("\(f): not a Kronecker row whitening"); continue }
            func compress(_ sweeps: Int, _ o: OutputWhitening?) throws -> (MPOCores<Float>, LayerCompression) {
                try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: caps, secondMoment: m, damping: damping, sweeps: sweeps, output: o)
            }
            let (start, r0) = try compress(0, output), (fitted, r4) = try compress(4, output), (unweighted, _) = try compress(4, nil)
            let e0 = weightedError(start, diagonal(d), md), e4 = weightedError(fitted, diagonal(d), md)
            #expect(fitted.bonds == start.bonds && start.bonds == unweighted.bonds)
            #expect(abs(r0.relativeError - e0) < 1e-6 && abs(r4.relativeError - e4) < 1e-6, "\(f): reported \(r0.relativeError), \(r4.relativeError) vs loops \(e0), \(e4)")
            #expect(e4 < 0.97 * e0, "\(f): ALS \(e4) vs the Kronecker start \(e0)")
            #expect(e4 < weightedError(unweighted, diagonal(d), md), "\(f): weighted fit \(e4) vs unweighted \(weightedError(unweighted, diagonal(d), md))")
        }
        // Weights a ⊗ b and M a Kronecker product, undamped: the weighted metric is exactly the whitening's,
        // H′ a constant, and the whitened TT-SVD of two sites is the optimum already.
        var rk = SplitMix64(seed: 25)
        let f = ALSTests.cases[0].0, mk = WhiteningTests.kroneckerMoment(3, 4, rng: &rk)
        let dk = [0.5, 2.0].flatMap { a in (0..<5).map { a * (0.2 + Double($0)) } }
        let kroneckerRows = try OutputWhitening(rowWeights: dk, factorization: f)
        guard case .diagonal(let h)? = kroneckerRows.metric() else { Issue.record("no diagonal metric"); return }
        #expect(h.allSatisfy { abs($0 - h[0]) < 1e-12 * h[0] }, "H′ for Kronecker weights: \(h)")
        let (exact, report) = try Compression.compressWhitened(w, layer: "l", factorization: f, maxBonds: [1, 3, 1], secondMoment: mk, damping: 0,
                                                               sweeps: 3, output: kroneckerRows)
        #expect(report.relativeError > 0.05 && abs(report.relativeError - report.errorBound) < 1e-9, "\(report.relativeError) vs bound \(report.errorBound)")
        #expect(abs(weightedError(exact, diagonal(dk), mk) - report.errorBound) < 1e-6)
        guard case .rows = try OutputWhitening(rowWeights: d, factorization: .lowRank(out: out, in: n)) else { Issue.record("a plain SVD layer's row weights are .rows"); return }
        #expect(throws: TensorTrainError.self) { try OutputWhitening(rowWeights: d.map { -$0 }, factorization: f) }
        #expect(throws: TensorTrainError.self) { try OutputWhitening(rowWeights: Array(d.prefix(4)), factorization: f) }
    }

    @Test("the calibration's output gradients are the dY of the weight gradient (dW = dYᵀ·X), their moments the mean of dY·dYᵀ; a tiny Llama truncated with them loses less than with the inputs' alone")
    func calibrationGradients() throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        let c = m.config
        let (tok, targets, b, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        let window = t / 2
        let moments = try Calibration.outputGradientMoments(m, tokens: tok, context: window)
        #expect(moments.count == c.layers * 7 + 1 && moments[Calibration.embeddingOutput]?.count == c.channels * c.channels)   // and the embedding output's
        // The same windows by hand on a trainable copy: dY of block 0's down projection (its tap) and its input X.
        let trainable = try Transformer(config: c, device: CPUDevice(), purpose: .training)
        try trainable.load(from: m)
        let down = trainable.blocks[0].down, n = down.outFeatures, k = down.inFeatures
        var g = [Double](repeating: 0, count: n * n), rows = 0, worst = 0.0, scale = 0.0
        for start in stride(from: 0, through: tok.count - window - 1, by: window) {
            var dY: [Double] = [], x: [Double] = []
            down.outputGradientTap = { d, r in dY = try trainable.device.read(d.view(0, r * n)).map(Double.init) }
            trainable.linearInputTap = { block, role, v, r in
                if block == 0, role == .down { x = try trainable.device.read(v.view(0, r * k)).map(Double.init) }
            }
            trainable.zeroGradients()
            try trainable.forward(tokens: Array(tok[start..<(start + window)]), targets: Array(tok[(start + 1)...(start + window)]), batch: 1, time: window)
            try trainable.backward()
            let dW = try trainable.gradient("\(down.name).weight")
            for o in 0..<n { for i in 0..<k {
                var s = 0.0
                for r in 0..<window { s += dY[r * n + o] * x[r * k + i] }
                worst = max(worst, abs(s - Double(dW[o * k + i]))); scale = max(scale, abs(Double(dW[o * k + i])))
            } }
            for r in 0..<window { for i in 0..<n { for j in 0..<n { g[i * n + j] += dY[r * n + i] * dY[r * n + j] } } }
            rows += window
        }
        down.outputGradientTap = nil; trainable.linearInputTap = nil
        #expect(rows > 0 && Calibration.gradientWindows(tokens: tok.count, context: window) == rows / window)   // the count compress reports
        #expect(worst <= 1e-4 * scale, "dYᵀ·X against the weight gradient: off by \(worst) of \(scale)")
        let got = try #require(moments[down.name]), top = g.map(abs).max()! / Double(rows)
        #expect(zip(got, g).map { abs($0 - $1 / Double(rows)) }.max()! <= 1e-6 * top)
        // Truncated to rank 3 with both sides whitened, the model loses less on its calibration text.
        var fs: [String: MPOFactorization] = [:]
        for l in c.linearLayers { fs[l.name] = MPOFactorization.lowRank(out: l.out, in: l.in) }
        let inputs = try Calibration.inputSecondMoments(m, tokens: tok, context: window)
        let (oneSided, _) = try Compression.compress(m, chi: 3, factorizations: fs, inputMoments: inputs)
        let (twoSided, _) = try Compression.compress(m, chi: 3, factorizations: fs, inputMoments: inputs, outputMoments: moments)
        let base = try m.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        let l1 = try oneSided.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        let l2 = try twoSided.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        #expect(l2 - base < l1 - base, "loss: original \(base), inputs whitened \(l1), both sides \(l2)")
    }

    @Test("the K-FAC sensitivity is ½·T²·tr(G·W·M·Wᵀ): its form matches float64 loops, and over one window of one token it is ½·⟨dW, W⟩², the empirical Fisher of removing the layer, for every layer of a tiny Llama")
    func kfacSensitivity() throws {
        let n = 9, out = 6, rows = 40
        let m = WhiteningTests.moment(WhiteningTests.inputs(rows: rows, n: n, seed: 5), rows: rows, n: n)
        let g = WhiteningTests.moment(WhiteningTests.inputs(rows: rows, n: out, seed: 6), rows: rows, n: out)
        var rng = SplitMix64(seed: 8)
        let w = (0..<(out * n)).map { _ in rng.normal() }
        let form = BondAllocator.fisherForm(w, outputMoment: g, inputMoment: m, out: out, in: n), loops = Self.fisherEnergy(w, g, m, out: out, n: n)
        #expect(abs(form - loops) <= 1e-12 * abs(loops) && loops > 0, "\(form) vs \(loops)")
        // One token: G = g·gᵀ and M = x·xᵀ, so tr(G·W·M·Wᵀ) = (gᵀ·W·x)² = ⟨dW, W⟩² with dW = g·xᵀ the weight gradient.
        let model = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        let (tok, _, _, _) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        let pair = Array(tok[0..<2])
        let inputs = try Calibration.inputSecondMoments(model, tokens: [pair[0]], context: 1)
        let gradients = try Calibration.outputGradientMoments(model, tokens: pair, context: 1)
        let kfac = try BondAllocator.kfacSensitivity(model, inputMoments: inputs, outputMoments: gradients, context: 1)
        let trainable = try Transformer(config: model.config, device: CPUDevice(), purpose: .training)
        try trainable.load(from: model)
        try trainable.forward(tokens: [pair[0]], targets: [pair[1]], batch: 1, time: 1)
        try trainable.backward()
        let weights = try Compression.denseWeights(model)
        var expected: [String: Double] = [:]
        for l in model.config.linearLayers where l.role != .head {
            let dW = try trainable.gradient("\(l.name).weight"), wl = weights[l.name]!
            var d = 0.0
            for i in dW.indices { d += Double(dW[i]) * Double(wl[i]) }
            expected[l.name] = 0.5 * d * d
        }
        let top = expected.values.max()!
        #expect(kfac.count == model.config.layers * 7 && top > 0)
        for (name, e) in expected {
            #expect(abs(kfac[name]! - e) <= 1e-3 * e + 1e-6 * top, "\(name): K-FAC \(kfac[name]!) vs ½⟨dW, W⟩² \(e)")
        }
        // Normalised as the other estimates: median 1, floored at 1e-3.
        let normalised = BondAllocator.normalised(kfac)
        #expect(normalised.values.sorted()[normalised.count / 2] == 1 && normalised.values.min()! >= 1e-3)
        #expect(throws: ModelError.self) { try BondAllocator.kfacSensitivity(model, inputMoments: inputs, outputMoments: [:], context: 1) }
    }

    @Test("the table's K-FAC weight as the embedding, ½·T²·Σ_v f_v·T_v·G·T_vᵀ with G the embedding output's gradient moment: over one window of one token it is ½·⟨dT, T⟩², dT the table's gradient (an untied model, where the table is the embedding alone); over several windows it matches float64 loops")
    func kfacEmbedding() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kfac-embedding-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let model = try ModelCheckpoint.loadModel(try PretrainedPipelineTests.pretrained(dir, tiedHead: false), device: CPUDevice(), purpose: .inference)
        let c = model.config, (V, D) = (c.vocabularySize, c.channels)
        let table = try Compression.embeddingTable(model)
        let (tok, _, _, _) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        let pair = Array(tok[0..<2]).map { $0 % Int32(V) }
        let one = try Calibration.outputGradientMoments(model, tokens: pair, context: 1)
        var f = [Double](repeating: 0, count: V)
        f[Int(pair[0])] = 1
        let priced = try BondAllocator.kfacEmbeddingSensitivity(table: table, vocabulary: V, channels: D, outputMoment: try #require(one[Calibration.embeddingOutput]),
                                                                frequencies: f, context: 1)
        let trainable = try Transformer(config: c, device: CPUDevice(), purpose: .training)
        try trainable.load(from: model)
        try trainable.forward(tokens: [pair[0]], targets: [pair[1]], batch: 1, time: 1)
        try trainable.backward()
        let dT = try trainable.gradient(c.embeddingParameterShapes[0].name)
        var d = 0.0
        for i in dT.indices { d += Double(dT[i]) * Double(table[i]) }
        #expect(abs(priced - 0.5 * d * d) <= 1e-3 * 0.5 * d * d && d != 0, "K-FAC \(priced) vs ½⟨dT, T⟩² \(0.5 * d * d)")
        // Several windows: the moment is the mean of dX·dXᵀ over every position, and the weight its form with the frequencies.
        let window = 8, tokens = Array(tok.prefix(4 * window + 1)).map { $0 % Int32(V) }
        let g = try #require(try Calibration.outputGradientMoments(model, tokens: tokens, context: window)[Calibration.embeddingOutput])
        var counts = [Double](repeating: 0, count: V)
        for t in tokens.prefix(4 * window) { counts[Int(t)] += 1 / Double(4 * window) }
        var loops = 0.0
        for v in 0..<V where counts[v] > 0 { for i in 0..<D { for j in 0..<D { loops += counts[v] * Double(table[v * D + i]) * g[i * D + j] * Double(table[v * D + j]) } } }
        loops *= 0.5 * Double(window * window)
        let form = try BondAllocator.kfacEmbeddingSensitivity(table: table, vocabulary: V, channels: D, outputMoment: g, frequencies: counts, context: window)
        #expect(abs(form - loops) <= 1e-9 * loops && loops > 0, "\(form) vs \(loops)")
        #expect(throws: ModelError.self) { try BondAllocator.kfacEmbeddingSensitivity(table: table, vocabulary: V, channels: D, outputMoment: g, frequencies: [1], context: window) }
    }
}
