// Error correction (compress --error-correction, GPTAQ's asymmetric calibration stage by stage):
// the corrected weight solves its normal equations (and is W itself when the inputs agree); after
// the correction every layer is the whitened truncation of that weight for the moments of the
// corrected model's own inputs against the original's, computed by hand in Double; that lowers
// every layer's output objective against the original's outputs, and the tiny Llama's loss.

import Foundation
import Testing
import TensorTrain
import TestSupport
@testable import MPOKit

struct CorrectionTests {
    static func tinyLlama() throws -> Transformer {
        try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
    }

    /// The tiny Llama truncated to rank 3 everywhere, whitened on `tokens`.
    static func whitened(_ m: Transformer, tokens: [Int32], window: Int) throws -> Transformer {
        var fs: [String: MPOFactorization] = [:]
        for l in m.config.linearLayers { fs[l.name] = MPOFactorization.lowRank(out: l.out, in: l.in) }
        let moments = try Calibration.inputSecondMoments(m, tokens: tokens, context: window)
        return try Compression.compress(m, chi: 3, factorizations: fs, inputMoments: moments).0
    }

    /// Every linear layer's inputs (rows × in, Double) in `model` over `tokens`, by tap role and block.
    static func inputs(_ model: Transformer, tokens: [Int32], batch: Int, time: Int) throws -> [Int: [LinearRole: [Double]]] {
        var seen: [Int: [LinearRole: [Double]]] = [:]
        model.linearInputTap = { b, r, x, _ in seen[b, default: [:]][r] = try model.device.read(x.view(0, x.count)).map(Double.init) }
        defer { model.linearInputTap = nil }
        try model.forward(tokens: tokens, batch: batch, time: time, needsGradients: false)
        return seen
    }

    @Test("the corrected weight solves W_ls·(G + δI) = W·Cᵀ, and is W when the compressed model's inputs are the original's")
    func normalEquations() throws {
        var rng = SplitMix64(seed: 7)
        let out = 5, n = 6, rows = 40
        let xo = (0..<(rows * n)).map { _ in rng.normal() }
        let xc = xo.map { $0 + 0.3 * rng.normal() }
        var g = [Double](repeating: 0, count: n * n), c = g
        for r in 0..<rows { for i in 0..<n { for j in 0..<n {
            g[i * n + j] += xc[r * n + i] * xc[r * n + j] / Double(rows)
            c[i * n + j] += xc[r * n + i] * xo[r * n + j] / Double(rows)
        } } }
        let w = (0..<(out * n)).map { _ in Float(rng.normal()) }
        let damping = 0.01, delta = damping * (0..<n).reduce(0.0) { $0 + g[$1 * n + $1] } / Double(n)
        let ls = Calibration.correctedWeight(w, out: out, cross: c, whitening: try InputWhitening(secondMoment: g, inFeatures: n, damping: damping))
            .map(Double.init)
        var worst = 0.0
        for o in 0..<out { for j in 0..<n {
            var lhs = delta * ls[o * n + j], rhs = 0.0
            for i in 0..<n { lhs += ls[o * n + i] * g[i * n + j]; rhs += Double(w[o * n + i]) * c[j * n + i] }
            worst = max(worst, abs(lhs - rhs))
        } }
        #expect(worst < 1e-5, "normal equations off by \(worst)")
        let same = Calibration.correctedWeight(w, out: out, cross: g, whitening: try InputWhitening(secondMoment: g, inFeatures: n, damping: 0))
        #expect(zip(same, w).map { abs($0 - $1) }.max()! < 1e-5)
    }

    @Test("after error correction every layer is the whitened truncation of W·Cᵀ(G + δI)⁻¹ for the inputs the corrected model gives it (by hand, in Double), its damped objective E‖Ŵx_c − Wx_o‖² at most whitening's, and the tiny Llama's loss lower")
    func correction() throws {
        let m = try Self.tinyLlama()
        let (tok, targets, b, t) = try FamilyReference.batch(try FamilyReference.reference("llama-tiny"))
        let c1 = try Self.whitened(m, tokens: tok, window: t), c2 = try Self.whitened(m, tokens: tok, window: t)
        let reports = try Calibration.correct(c2, original: m, tokens: tok, context: t)
        #expect(reports.count == m.config.linearLayers.count && reports.allSatisfy { $0.bonds == [1, 3, 1] })
        #expect(m.linearInputTap == nil && c2.linearInputTap == nil, "the taps are removed afterwards")
        // Every stage runs after the stages that feed it, so the corrected model's own inputs are
        // the ones each layer was fitted on.
        let xo = try Self.inputs(m, tokens: tok, batch: b, time: t), xc = try Self.inputs(c2, tokens: tok, batch: b, time: t)
        let w = try Compression.denseWeights(m), w1 = try Compression.denseWeights(c1), w2 = try Compression.denseWeights(c2)
        let rows = b * t
        var differ = 0
        for block in 0..<m.config.layers {
            for l in m.config.blockLinears(block) {
                let role = Calibration.tapRole(l.role)!, n = l.in, a = xc[block]![role]!, o = xo[block]![role]!
                var g = [Double](repeating: 0, count: n * n), cross = g
                for r in 0..<rows { for i in 0..<n { for j in 0..<n {
                    g[i * n + j] += a[r * n + i] * a[r * n + j] / Double(rows)
                    cross[i * n + j] += a[r * n + i] * o[r * n + j] / Double(rows)
                } } }
                if zip(a, o).contains(where: { abs($0 - $1) > 1e-3 }) { differ += 1 }
                let target = Calibration.correctedWeight(w[l.name]!, out: l.out, cross: cross,
                                                         whitening: try InputWhitening(secondMoment: g, inFeatures: n))
                let (cores, _) = try Compression.compressWhitened(target, layer: l.name, factorization: .lowRank(out: l.out, in: l.in),
                                                                   maxBonds: [1, 3, 1], secondMoment: g)
                let expected = contractMPO(cores), got = w2[l.name]!
                let scale = expected.map { abs($0) }.max()!
                #expect(zip(got, expected).map { abs($0 - $1) }.max()! <= 2e-4 * scale, "\(l.name)")
                // f(Ŵ) = tr(Ŵ(G + δI)Ŵᵀ) − 2·tr(Ŵ·C·Wᵀ): the corrected layer minimises it at rank 3.
                let delta = 0.01 * (0..<n).reduce(0.0) { $0 + g[$1 * n + $1] } / Double(n)
                func objective(_ h: [Float]) -> Double {
                    var f = 0.0
                    for row in 0..<l.out {
                        let hr = (0..<n).map { Double(h[row * n + $0]) }, wr = (0..<n).map { Double(w[l.name]![row * n + $0]) }
                        for i in 0..<n {
                            var gi = delta * hr[i], ci = 0.0
                            for j in 0..<n { gi += g[i * n + j] * hr[j]; ci += cross[i * n + j] * wr[j] }
                            f += hr[i] * gi - 2 * hr[i] * ci
                        }
                    }
                    return f
                }
                let f1 = objective(w1[l.name]!), f2 = objective(got)
                #expect(f2 <= f1 + 1e-4 * abs(f1), "\(l.name): corrected \(f2) vs whitened \(f1)")
            }
        }
        #expect(differ >= m.config.linearLayers.count / 2, "the compressed model's inputs differ from the original's")
        let base = try m.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        let l1 = try c1.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        let l2 = try c2.forward(tokens: tok, targets: targets, batch: b, time: t, needsGradients: false).loss
        #expect(l2 - base < l1 - base, "loss: original \(base), whitened \(l1), corrected \(l2)")
    }
}
