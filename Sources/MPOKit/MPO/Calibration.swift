// Calibration for data-aware truncation (compress --calibration): the second moment XᵀX / rows
// of every linear layer's inputs while the model reads a text, the statistic SVD-LLM whitens by
// (Compression.compressWhitened). The inputs of q/k/v (and of gate/up) are one tensor, so one moment serves
// them; sums run in Double (dsyrk per window of rows), over the original model's activations.

import CBLAS
import Foundation
import TensorTrain

public enum Calibration {
    /// The tap role a layer's input is seen under (Transformer.linearInputTap).
    static func tapRole(_ role: LinearRole) -> LinearRole? {
        switch role {
        case .query, .key, .value: return .query
        case .gate, .up: return .up
        case .output, .down: return role
        case .head: return nil
        }
    }

    /// The inputs' second moment of every linear layer (by layer name, row-major in × in) and of
    /// the head's input (under `headInput`) over `tokens` read in consecutive windows of `context` tokens.
    public static func inputSecondMoments(_ model: Transformer, tokens: [Int32], context: Int) throws -> [String: [Double]] {
        try inputStatistics(model, tokens: tokens, context: context, headProbabilities: false).moments
    }

    /// The same moments and, with `headProbabilities`, the model's mean predicted distribution
    /// over those rows (V values summing to 1: the mean of softmax(logits)) — the diagonal of the
    /// head's output Fisher that `--embedding-error fisher` weights the table's rows by.
    public static func inputStatistics(_ model: Transformer, tokens: [Int32], context: Int, headProbabilities: Bool)
        throws -> (moments: [String: [Double]], headProbabilities: [Double]?) {
        guard context >= 1, tokens.count >= context else {
            throw ModelError("calibration needs at least one window of \(context) tokens (got \(tokens.count)); give a longer --calibration text")
        }
        let c = model.config
        var sums: [Int: [LinearRole: [Double]]] = [:]
        var rowsSeen = 0
        model.linearInputTap = { block, role, x, rows in
            let n = x.count / rows
            let values = try model.device.read(x.view(0, rows * n)).map(Double.init)
            sums[block, default: [:]][role] = addGram(values, rows: rows, n: n, to: sums[block]?.removeValue(forKey: role))
        }
        defer { model.linearInputTap = nil }
        var probabilities = headProbabilities ? [Double](repeating: 0, count: c.vocabularySize) : nil
        for start in stride(from: 0, through: tokens.count - context, by: context) {
            try model.forward(tokens: Array(tokens[start..<(start + context)]), batch: 1, time: context, needsGradients: false)
            rowsSeen += context
            if probabilities != nil { try addSoftmax(try model.logits(), rows: context, to: &probabilities!) }
        }
        return (byLayer(c, sums, rows: rowsSeen), probabilities.map { p in p.map { $0 / Double(rowsSeen) } })
    }

    /// The output side of every linear layer's K-FAC Fisher (compress --output-fisher): the mean
    /// over `tokens` (consecutive windows of `context`) of g·gᵀ, g the gradient of the window's
    /// mean cross-entropy with respect to the layer's output at one position, by layer name
    /// (row-major out × out). One forward and backward pass per window on a copy of `model` that
    /// has gradients; the scale (1/context per position) cancels in the whitening. The same moment of
    /// the gradient at the embedding's output comes under `embeddingOutput` (channels × channels).
    public static func outputGradientMoments(_ model: Transformer, tokens: [Int32], context: Int) throws -> [String: [Double]] {
        guard context >= 1, tokens.count > context else {
            throw ModelError("output gradients need at least one window of \(context) tokens and its next token (got \(tokens.count)); give a longer --calibration text")
        }
        let trainable = try Transformer(config: model.config, device: model.device, purpose: .training)
        try trainable.load(from: model)
        var sums: [String: [Double]] = [:]
        let linears = trainable.blocks.flatMap(\.linears)
        for l in linears {
            let n = l.outFeatures, name = l.name
            l.outputGradientTap = { dY, rows in
                let g = try trainable.device.read(dY.view(0, rows * n)).map(Double.init)
                sums[name] = addGram(g, rows: rows, n: n, to: sums.removeValue(forKey: name))
            }
        }
        let C = model.config.channels
        trainable.embeddingGradientTap = { dX, rows in
            let g = try trainable.device.read(dX.view(0, rows * C)).map(Double.init)
            sums[embeddingOutput] = addGram(g, rows: rows, n: C, to: sums.removeValue(forKey: embeddingOutput))
        }
        defer { for l in linears { l.outputGradientTap = nil }; trainable.embeddingGradientTap = nil }
        var rows = 0
        for start in stride(from: 0, to: gradientWindows(tokens: tokens.count, context: context) * context, by: context) {
            try trainable.forward(tokens: Array(tokens[start..<(start + context)]), targets: Array(tokens[(start + 1)...(start + context)]),
                                  batch: 1, time: context)
            try trainable.backward()
            rows += context
        }
        var out: [String: [Double]] = [:]
        for l in linears { if var m = sums[l.name] { mirroredMean(&m, n: l.outFeatures, rows: rows); out[l.name] = m } }
        if var m = sums[embeddingOutput] { mirroredMean(&m, n: C, rows: rows); out[embeddingOutput] = m }
        return out
    }

    /// How many windows outputGradientMoments runs over `tokens` tokens: every window of `context`
    /// needs its next token as a target, so the last token starts none.
    public static func gradientWindows(tokens: Int, context: Int) -> Int { context >= 1 ? max(0, tokens - 1) / context : 0 }

    /// `sum` (n × n, lower triangle; nil: zeros) + XᵀX for X (rows × n) by dsyrk. The caller takes
    /// the sum out of its table first, so no copy of n² Doubles is made per call.
    static func addGram(_ x: [Double], rows: Int, n: Int, to sum: [Double]?) -> [Double] {
        var acc = sum ?? [Double](repeating: 0, count: n * n)
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(n), Int32(rows), 1, x, Int32(n), 1, &acc, Int32(n))
        return acc
    }

    /// Adds softmax(row) of each of `rows` rows of `logits` to `sum`, in Double.
    static func addSoftmax(_ logits: [Float], rows: Int, to sum: inout [Double]) throws {
        let V = sum.count
        guard logits.count == rows * V else { throw ModelError("the logits hold \(logits.count) values, not \(rows) rows of \(V)") }
        var e = [Double](repeating: 0, count: V)
        for r in 0..<rows {
            let row = logits[(r * V)..<((r + 1) * V)]
            let top = Double(row.max()!)
            var z = 0.0
            for (j, x) in row.enumerated() { e[j] = exp(Double(x) - top); z += e[j] }
            for j in 0..<V { sum[j] += e[j] / z }
        }
    }

    /// Error correction (compress --error-correction; GPTAQ's asymmetric calibration, stage by
    /// stage): every compressed layer refitted to the original's outputs from the inputs the
    /// compressed model gives it, in the order a pass reads them — block by block, and in a block
    /// q/k/v, o, gate/up, down — so each stage sees the inputs of the stages already corrected and
    /// no stage undoes an error a stage before it has already undone. A stage's G = E[x_c·x_cᵀ] and
    /// C = E[x_c·x_oᵀ] over every window give W_ls (correctedWeight), truncated whitened by G at
    /// the layer's own bonds (Compression.compressWhitened) and written into `compressed`'s cores.
    /// The two models run one block at a time over host copies of their residual streams, so
    /// the whole costs about six passes over `tokens`. Returns the new reports (output errors
    /// against W_ls on the stage's inputs) by layer, in the order corrected.
    public static func correct(_ compressed: Transformer, original: Transformer, tokens: [Int32], context: Int,
                               damping: Double = 0.01, alsSweeps: Int = 0) throws -> [LayerCompression] {
        guard context >= 1, tokens.count >= context else {
            throw ModelError("calibration needs at least one window of \(context) tokens (got \(tokens.count)); give a longer --calibration text")
        }
        let c = original.config
        guard compressed.config.layers == c.layers, compressed.config.channels == c.channels, compressed.config.ffn == c.ffn else {
            throw ModelError("error correction needs the compressed model of this original")
        }
        let weights = try Compression.denseWeights(original)
        let windows = stride(from: 0, through: tokens.count - context, by: context).map { Array(tokens[$0..<($0 + context)]) }
        var streamO = try windows.map { try original.embedded($0) }, streamC = try windows.map { try compressed.embedded($0) }
        var reports: [LayerCompression] = []
        defer { original.linearInputTap = nil; compressed.linearInputTap = nil }
        for b in 0..<c.layers {
            // The original's inputs of this block's linears, per window (its stream advanced once).
            var inputsO: [[LinearRole: [Double]]] = Array(repeating: [:], count: windows.count)
            for w in windows.indices {
                original.linearInputTap = { _, role, x, rows in
                    inputsO[w][role] = try original.device.read(x.view(0, x.count)).map(Double.init)
                }
                streamO[w] = try original.blockForward(b, residual: streamO[w], time: context)
            }
            for stage in [LinearRole.query, .output, .up, .down] {
                let layers = c.blockLinears(b).filter { l in
                    guard tapRole(l.role) == stage, case .mpo = compressed.config.linearKind(l.name, out: l.out, in: l.in) else { return false }
                    return true
                }
                guard let n = layers.first?.in else { continue }
                var g = [Double](repeating: 0, count: n * n), cross = g, current = 0
                compressed.linearInputTap = { _, role, x, rows in
                    guard role == stage else { return }
                    let xc = try compressed.device.read(x.view(0, rows * n)).map(Double.init), xo = inputsO[current][stage]!
                    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(n), Int32(rows), 1, xc, Int32(n), 1, &g, Int32(n))
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(n), Int32(rows), 1, xc, Int32(n), xo, Int32(n), 1, &cross, Int32(n))
                }
                for w in windows.indices {   // the stream is not advanced: the block runs again per stage
                    current = w
                    _ = try compressed.blockForward(b, residual: streamC[w], time: context)
                }
                mirroredMean(&g, n: n, rows: windows.count * context)
                for i in 0..<cross.count { cross[i] /= Double(windows.count * context) }
                // One factorisation of G + δI per stage: q/k/v (gate/up) share their inputs.
                let exact: InputWhitening
                do { exact = try InputWhitening(secondMoment: g, inFeatures: n, damping: damping) } catch {
                    throw ModelError("block \(b), the compressed model's inputs of \(layers.map(\.name).joined(separator: ", ")): \(error)")
                }
                for l in layers {
                    guard case .mpo(let f, let bonds) = compressed.config.linearKind(l.name, out: l.out, in: l.in) else { continue }
                    do {
                        let target = correctedWeight(weights[l.name]!, out: l.out, cross: cross, whitening: exact)
                        let wh = try KroneckerWhitening(exact: exact, inFactors: f.inFactors)
                            ?? KroneckerWhitening(secondMoment: g, inFactors: f.inFactors, damping: damping)
                        let (cores, report) = try Compression.compressWhitened(target, layer: l.name, factorization: f, maxBonds: bonds,
                                                                                whitening: wh,
                                                                                exact: .init(secondMoment: g, damping: damping, sweeps: alsSweeps))
                        guard cores.bonds == bonds else { throw ModelError("the corrected truncation has bonds \(cores.bonds), not \(bonds)") }
                        for (site, core) in cores.cores.enumerated() { try compressed.setParameter("\(l.name).cores.\(site)", core) }
                        reports.append(report)
                    } catch { throw ModelError("\(l.name): \(error)") }
                }
            }
            compressed.linearInputTap = nil
            for w in windows.indices { streamC[w] = try compressed.blockForward(b, residual: streamC[w], time: context) }
        }
        return reports
    }

    /// Sums per block and tap role → means per layer name (the lower triangle, which dsyrk fills,
    /// mirrored).
    static func byLayer(_ c: ModelConfig, _ sums: [Int: [LinearRole: [Double]]], rows: Int) -> [String: [Double]] {
        var out: [String: [Double]] = [:]
        for b in 0..<c.layers {
            for l in c.blockLinears(b) {
                guard let role = tapRole(l.role), var m = sums[b]?[role] else { continue }
                mirroredMean(&m, n: l.in, rows: rows)
                out[l.name] = m
            }
        }
        if var m = sums[c.layers]?[.head] {   // the head's input: its own linear's, or the tied table's as a head
            mirroredMean(&m, n: c.channels, rows: rows)
            out[headInput] = m
            if !c.architecture.tiedHead { out[c.names.head] = m }
        }
        return out
    }

    /// The key of the head's input moment in `inputSecondMoments` (an untied head's is under its
    /// layer name as well, so it is truncated by its output error like every other linear).
    public static let headInput = "<head input>"
    /// The key of the embedding output's gradient moment in outputGradientMoments.
    public static let embeddingOutput = "<embedding output>"

    /// A dsyrk sum (n × n, lower triangle filled) → the full symmetric mean over `rows`.
    static func mirroredMean(_ m: inout [Double], n: Int, rows: Int) {
        for i in 0..<n { for j in 0...i { let v = m[i * n + j] / Double(rows); m[i * n + j] = v; m[j * n + i] = v } }
    }

    /// The weight a layer is fitted to when its inputs are x_c and its target the original's
    /// W·x_o: the ridge least-squares W_ls = W·Cᵀ·(G + δI)⁻¹ with G = E[x_c·x_cᵀ] and C =
    /// E[x_c·x_oᵀ] (`cross`, row-major in × in), `whitening` the factor of G + δI (δ the damping
    /// the whitened truncation adds), so that E‖Ŵx_c − Wx_o‖² = ‖(Ŵ − W_ls)·S‖² + const — the
    /// whitened truncation of W_ls with the same S is the best Ŵ of its rank. W row-major (out × in).
    public static func correctedWeight(_ w: [Float], out: Int, cross: [Double], whitening: InputWhitening) -> [Float] {
        let n = whitening.inFeatures
        precondition(cross.count == n * n && w.count == out * n)
        var wc = [Double](repeating: 0, count: out * n)   // W·Cᵀ
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(out), Int32(n), Int32(n), 1, w.map(Double.init), Int32(n),
                    cross, Int32(n), 0, &wc, Int32(n))
        return whitening.solve(wc, rows: out).map(Float.init)
    }
}
