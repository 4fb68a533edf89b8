// CPUDevice: the non-GEMM ops (bias, elementwise, embedding, LayerNorm, loss, optimiser).
// The loops are CKernels (portable or AVX2, chosen at run time); this file splits them over the
// workers. Rows are independent, so row ops split any way; every reduction over rows (bias and
// LayerNorm gradients, the embedding scatter, the sum of squares) runs over fixed row chunks
// (`Chunking`, never the thread count) into Double partials that are added in chunk order, so
// results do not depend on the thread count. Legend: N rows (tokens), C columns, V vocabulary.

import CKernels
import Foundation

extension CPUDevice {
    /// Rows per chunk of a reduction over rows (fixed: the results must not depend on threads).
    static let reductionRows = 512

    /// Σ over row chunks of `partial(rows, accumulator)` into C Doubles, chunks added in order;
    /// then `finish(sums)`.
    func reduceRows(rows: Int, columns C: Int, width: Int = 1,
                    _ partial: (Range<Int>, UnsafeMutablePointer<Double>) -> Void,
                    finish: (UnsafePointer<Double>) -> Void) {
        let chunking = Chunking(n: rows, per: Self.reductionRows), n = width * C
        let acc = UnsafeMutablePointer<Double>.allocate(capacity: chunking.count * n)
        defer { acc.deallocate() }
        acc.initialize(repeating: 0, count: chunking.count * n)
        forEachChunk(chunking.count) { c, _ in partial(chunking.range(c), acc + c * n) }
        for c in 1..<max(chunking.count, 1) {
            let p = acc + c * n
            for j in 0..<n { acc[j] += p[j] }
        }
        finish(acc)
    }

    // MARK: - Bias

    public func addBias(_ bias: TensorView, to out: TensorView, rows: Int, columns: Int) {
        biasRows(bias, out, rows, columns, relu: false)
    }

    public func addBiasReLU(_ bias: TensorView, to out: TensorView, rows: Int, columns: Int) {
        biasRows(bias, out, rows, columns, relu: true)
    }

    private func biasRows(_ bias: TensorView, _ out: TensorView, _ rows: Int, _ columns: Int, relu: Bool) {
        precondition(bias.count >= columns && out.count >= rows * columns, "addBias shape mismatch")
        let b = ptr(bias), o = ptr(out)
        parallelFor(rows, grain: max(1, 16_384 / max(columns, 1))) { r in
            let row = o + r.lowerBound * columns
            mpo_bias_rows(row, b, row, Int32(r.count), Int32(columns), relu ? 1 : 0)
        }
    }

    public func biasBackward(_ dOut: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        precondition(dBias.count >= columns && dOut.count >= rows * columns, "biasBackward shape mismatch")
        let d = ptr(dOut), db = ptr(dBias)
        reduceRows(rows: rows, columns: columns, { r, acc in
            mpo_colsum_rows(d + r.lowerBound * columns, Int32(r.count), Int32(columns), acc)
        }, finish: { sums in for j in 0..<columns { db[j] += Float(sums[j]) } })
    }

    // MARK: - Elementwise

    public func add(_ a: TensorView, _ b: TensorView, out: TensorView) {
        precondition(a.count == b.count && a.count == out.count, "add size mismatch")
        let pa = ptr(a), pb = ptr(b), po = ptr(out)
        parallelFor(out.count, grain: 1 << 15) { r in
            mpo_add(pa + r.lowerBound, pb + r.lowerBound, po + r.lowerBound, r.count)
        }
    }

    public func accumulate(_ source: TensorView, into destination: TensorView) {
        precondition(source.count == destination.count, "accumulate size mismatch")
        let s = ptr(source), d = ptr(destination)
        parallelFor(source.count, grain: 1 << 15) { r in mpo_accumulate(s + r.lowerBound, d + r.lowerBound, r.count) }
    }

    public func scale(_ view: TensorView, by factor: Float) {
        let p = ptr(view)
        parallelFor(view.count, grain: 1 << 15) { r in mpo_scale(p + r.lowerBound, r.count, factor) }
    }

    public func reluForward(_ x: TensorView, out: TensorView) {
        precondition(x.count == out.count, "relu size mismatch")
        let px = ptr(x), po = ptr(out)
        parallelFor(x.count, grain: 1 << 15) { r in mpo_relu(px + r.lowerBound, po + r.lowerBound, r.count) }
    }

    public func reluBackward(_ dOut: TensorView, out: TensorView, dX: TensorView) {
        precondition(dOut.count == out.count && dX.count == out.count, "relu backward size mismatch")
        let d = ptr(dOut), o = ptr(out), dx = ptr(dX)
        parallelFor(out.count, grain: 1 << 15) { r in
            mpo_relu_backward_rows(d + r.lowerBound, o + r.lowerBound, dx + r.lowerBound, 1, Int32(r.count), nil)
        }
    }

    public func reluBackwardBias(_ dOut: TensorView, out: TensorView, dX: TensorView, dBias: TensorView,
                                 rows: Int, columns: Int) {
        let n = rows * columns
        precondition(dOut.count >= n && out.count >= n && dX.count >= n && dBias.count >= columns,
                     "reluBackwardBias shape mismatch")
        let d = ptr(dOut), o = ptr(out), dx = ptr(dX), db = ptr(dBias)
        reduceRows(rows: rows, columns: columns, { r, acc in
            let at = r.lowerBound * columns
            mpo_relu_backward_rows(d + at, o + at, dx + at, Int32(r.count), Int32(columns), acc)
        }, finish: { sums in for j in 0..<columns { db[j] += Float(sums[j]) } })
    }

    // MARK: - Embedding

    public func embeddingForward(tokens: TensorView, table: TensorView, positions: TensorView?, out: TensorView,
                                 batch: Int, time: Int, channels: Int) {
        let n = batch * time, C = channels
        precondition(tokens.count >= n && out.count >= n * C && (positions?.count ?? time * C) >= time * C, "embedding shape mismatch")
        let tok = intPtr(tokens), w = ptr(table), pe = positions.map { ptr($0) }, o = ptr(out)
        let vocab = table.count / C
        parallelFor(n, grain: 64) { r in
            for i in r {
                let id = Int(tok[i])
                precondition(id >= 0 && id < vocab, "token id \(id) outside vocabulary 0..<\(vocab)")
                if let pe { mpo_add(w + id * C, pe + (i % time) * C, o + i * C, C) } else { (o + i * C).update(from: w + id * C, count: C) }
            }
        }
    }

    /// dTable[tokens[i]] += dOut[i]: the rows of each token summed in Double, in row order (a
    /// frequent token collects thousands of rows), then added once. Rows are grouped by token
    /// first, so the work and memory follow B·T, not the vocabulary (49,152 rows for SmolLM2).
    public func embeddingBackward(dOut: TensorView, tokens: TensorView, dTable: TensorView,
                                  batch: Int, time: Int, channels: Int) {
        let n = batch * time, C = channels, V = dTable.count / max(C, 1)
        precondition(tokens.count >= n && dOut.count >= n * C, "embedding backward shape mismatch")
        let tok = intPtr(tokens), d = ptr(dOut), dw = ptr(dTable)
        let order = (0..<n).sorted { (tok[$0], $0) < (tok[$1], $1) }   // by token, then row
        var starts: [Int] = []
        for (k, i) in order.enumerated() where k == 0 || tok[order[k - 1]] != tok[i] {
            precondition(Int(tok[i]) >= 0 && Int(tok[i]) < V, "token id \(tok[i]) outside vocabulary 0..<\(V)")
            starts.append(k)
        }
        starts.append(n)
        order.withUnsafeBufferPointer { order in
            starts.withUnsafeBufferPointer { starts in
                parallelFor(starts.count - 1, grain: 8) { groups in
                    var acc = [Double](repeating: 0, count: C)
                    for g in groups {
                        for c in 0..<C { acc[c] = 0 }
                        for k in starts[g]..<starts[g + 1] {
                            let src = d + order[k] * C
                            for c in 0..<C { acc[c] += Double(src[c]) }
                        }
                        let dst = dw + Int(tok[order[starts[g]]]) * C
                        for c in 0..<C { dst[c] += Float(acc[c]) }
                    }
                }
            }
        }
    }

    /// dTable[t] += Σ_b dOut[b, t] in Double, b in order.
    public func positionBackward(dOut: TensorView, dTable: TensorView, batch: Int, time: Int, channels C: Int) {
        precondition(dOut.count >= batch * time * C && dTable.count >= time * C, "position backward shape mismatch")
        let d = ptr(dOut), dw = ptr(dTable)
        parallelFor(time, grain: 8) { ts in
            var acc = [Double](repeating: 0, count: C)
            for t in ts {
                for c in 0..<C { acc[c] = 0 }
                for b in 0..<batch { let src = d + (b * time + t) * C; for c in 0..<C { acc[c] += Double(src[c]) } }
                for c in 0..<C { dw[t * C + c] += Float(acc[c]) }
            }
        }
    }

    // MARK: - LayerNorm

    public func layerNormForward(_ x: TensorView, weight: TensorView, bias: TensorView, out: TensorView,
                                 mean: TensorView, rstd: TensorView, rows: Int, columns C: Int, epsilon: Double) {
        checkLayerNormForward(x: x, weight: weight, bias: bias, out: out, mean: mean, rstd: rstd, rows: rows, columns: C)
        let px = ptr(x), w = ptr(weight), b = ptr(bias), o = ptr(out), pm = ptr(mean), pr = ptr(rstd)
        parallelFor(rows, grain: 32) { r in
            let at = r.lowerBound
            mpo_layernorm_forward(px + at * C, w, b, o + at * C, pm + at, pr + at, Int32(r.count), Int32(C), epsilon)
        }
    }

    public func layerNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, mean: TensorView,
                                  rstd: TensorView, dInput: TensorView, dWeight: TensorView, dBias: TensorView,
                                  rows: Int, columns C: Int) {
        checkLayerNormBackward(dOut: dOut, x: x, weight: weight, mean: mean, rstd: rstd, dInput: dInput, dWeight: dWeight,
                               dBias: dBias, rows: rows, columns: C)
        let d = ptr(dOut), px = ptr(x), w = ptr(weight), pm = ptr(mean), pr = ptr(rstd)
        let dx = ptr(dInput), dw = ptr(dWeight), db = ptr(dBias)
        reduceRows(rows: rows, columns: C, width: 2, { r, acc in   // acc: dWeight (C), dBias (C)
            let at = r.lowerBound
            mpo_layernorm_backward(d + at * C, px + at * C, w, pm + at, pr + at, dx + at * C, acc, acc + C,
                                   Int32(r.count), Int32(C))
        }, finish: { sums in
            for c in 0..<C { dw[c] += Float(sums[c]); db[c] += Float(sums[C + c]) }
        })
    }

    // MARK: - Loss

    public func crossEntropy(logits: TensorView, targets: TensorView, losses: TensorView, correct: TensorView,
                             dLogits: TensorView?, gradScale: Float, rows: Int, vocabulary V: Int) {
        checkCrossEntropy(logits: logits, targets: targets, losses: losses, correct: correct, dLogits: dLogits, rows: rows, vocabulary: V)
        let lg = ptr(logits), tg = intPtr(targets), ls = ptr(losses), cr = ptr(correct)
        let dl = dLogits.map { ptr($0) }
        parallelFor(rows, grain: 64) { r in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: V) { tmp in
                for i in r {
                    let row = lg + i * V
                    var arg = 0
                    for j in 1..<V where row[j] > row[arg] { arg = j }   // first maximum wins ties
                    let mx = mpo_max(row, Int32(V))                     // NaN when the row has one
                    let t = Int(tg[i])
                    precondition(t >= 0 && t < V, "target \(t) outside vocabulary 0..<\(V)")
                    let targetLogit = Double(row[t])   // read before dLogits (which may alias) is written
                    // exp(x − max) once per logit, kept in dLogits when it is wanted.
                    let e = dl.map { $0 + i * V } ?? tmp.baseAddress!
                    if e != row { e.update(from: row, count: V) }
                    let s = Double(mpo_exp_sum(e, Int32(V), mx))
                    if dl != nil {
                        mpo_scale(e, V, Float(1 / s) * gradScale)
                        e[t] -= gradScale
                    }
                    ls[i] = Float(Double(mx) + log(s) - targetLogit)
                    cr[i] = arg == t ? 1 : 0
                }
            }
        }
    }

    // MARK: - Optimiser

    public func sumOfSquares(_ view: TensorView) throws -> Double {
        let p = ptr(view)
        let chunking = Chunking(n: view.count, per: 1 << 16)
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: chunking.count)
        defer { partial.deallocate() }
        forEachChunk(chunking.count) { c, _ in
            var s = 0.0
            for i in chunking.range(c) { let x = Double(p[i]); s += x * x }
            partial[c] = s
        }
        var total = 0.0
        for c in 0..<chunking.count { total += partial[c] }
        return total
    }

    public func adamW(parameters: TensorView, gradients: TensorView, m: TensorView, v: TensorView, hyper h: AdamWHyper,
                      control: TensorView?) {
        precondition(parameters.count == gradients.count && m.count == parameters.count && v.count == parameters.count,
                     "adamW size mismatch")
        var gradScale: Float = 1
        if let control {
            let sc = scalars(control)
            guard sc.finite else { return }   // a non-finite step changes nothing
            gradScale = Float(sc.clipScale)
        }
        let p = ptr(parameters), g = ptr(gradients), pm = ptr(m), pv = ptr(v)
        let s = h.stepScalars
        parallelFor(parameters.count, grain: 1 << 14) { r in
            let at = r.lowerBound
            mpo_adamw(p + at, g + at, pm + at, pv + at, r.count, h.beta1, h.beta2, h.epsilon, s.decay, s.stepSize, s.bc2Sqrt,
                      gradScale)
        }
    }

    // MARK: - Step scalars (stored as Doubles in the view's memory: this device's layout)

    public func stepScalars(losses: TensorView, correct: TensorView, extra: TensorView?, rows: Int, gradients: TensorView,
                            clip: Double, into out: TensorView) {
        precondition(out.count >= StepScalars.count && losses.count >= rows && correct.count >= rows && (extra?.count ?? rows) >= rows,
                     "stepScalars shape mismatch")
        let l = ptr(losses), c = ptr(correct), e = extra.map { ptr($0) }
        var ce = 0.0, kd = 0.0, acc = 0.0
        for i in 0..<rows { ce += Double(l[i]); acc += Double(c[i]) }
        if let e { for i in 0..<rows { kd += Double(e[i]) } }
        let n2 = (try? sumOfSquares(gradients)) ?? .nan
        let n = Double(rows), scale = StepScalars.clipScale(norm: n2.squareRoot(), clip: clip)
        let finite = ce.isFinite && kd.isFinite && n2.isFinite
        let d = UnsafeMutableRawPointer(ptr(out)).assumingMemoryBound(to: Double.self)
        d[0] = ce / n; d[1] = kd / n; d[2] = acc / n; d[3] = n2; d[4] = scale; d[5] = finite ? 1 : 0
    }

    private func scalars(_ v: TensorView) -> StepScalars {
        let d = UnsafeMutableRawPointer(ptr(v)).assumingMemoryBound(to: Double.self)
        return StepScalars(crossEntropy: d[0], distillation: d[1], accuracy: d[2], gradientSquares: d[3], clipScale: d[4], finite: d[5] != 0)
    }

    public func readStepScalars(_ v: TensorView) throws -> StepScalars {
        precondition(v.count >= StepScalars.count, "readStepScalars: view too small")
        return scalars(v)
    }
}
