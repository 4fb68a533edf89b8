// CPUDevice: the non-GEMM ops (bias, elementwise, embedding, LayerNorm, loss, optimiser).
// Plain loops split across the workers by rows (or by columns where rows are reduced), in a
// fixed order so results are deterministic. Accumulations that matter (LayerNorm statistics,
// loss sums, gradient norm) run in Double. Legend: N rows (tokens), C columns, V vocabulary.

import Foundation

extension CPUDevice {
    // MARK: - Bias

    public func addBias(_ bias: TensorView, to out: TensorView, rows: Int, columns: Int) {
        precondition(bias.count >= columns && out.count >= rows * columns, "addBias shape mismatch")
        let b = ptr(bias), o = ptr(out)
        parallelFor(rows, grain: 64) { r in
            for i in r {
                let row = o + i * columns
                for j in 0..<columns { row[j] += b[j] }
            }
        }
    }

    public func biasBackward(_ dOut: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        precondition(dBias.count >= columns && dOut.count >= rows * columns, "biasBackward shape mismatch")
        let d = ptr(dOut), db = ptr(dBias)
        parallelFor(columns, grain: 16) { cr in   // each worker owns a column range: no races
            var acc = [Float](repeating: 0, count: cr.count)
            acc.withUnsafeMutableBufferPointer { acc in
                for i in 0..<rows {
                    let row = d + i * columns + cr.lowerBound
                    for j in 0..<cr.count { acc[j] += row[j] }
                }
                for j in 0..<cr.count { db[cr.lowerBound + j] += acc[j] }
            }
        }
    }

    // MARK: - Elementwise

    public func add(_ a: TensorView, _ b: TensorView, out: TensorView) {
        precondition(a.count == b.count && a.count == out.count, "add size mismatch")
        let pa = ptr(a), pb = ptr(b), po = ptr(out)
        parallelFor(out.count, grain: 1 << 15) { r in for i in r { po[i] = pa[i] + pb[i] } }
    }

    public func accumulate(_ source: TensorView, into destination: TensorView) {
        precondition(source.count == destination.count, "accumulate size mismatch")
        let s = ptr(source), d = ptr(destination)
        parallelFor(source.count, grain: 1 << 15) { r in for i in r { d[i] += s[i] } }
    }

    public func scale(_ view: TensorView, by factor: Float) {
        let p = ptr(view)
        parallelFor(view.count, grain: 1 << 15) { r in for i in r { p[i] *= factor } }
    }

    public func reluForward(_ x: TensorView, out: TensorView) {
        precondition(x.count == out.count, "relu size mismatch")
        let px = ptr(x), po = ptr(out)
        parallelFor(x.count, grain: 1 << 15) { r in for i in r { po[i] = px[i] > 0 ? px[i] : 0 } }
    }

    public func reluBackward(_ dOut: TensorView, out: TensorView, dX: TensorView) {
        precondition(dOut.count == out.count && dX.count == out.count, "relu backward size mismatch")
        let d = ptr(dOut), o = ptr(out), dx = ptr(dX)
        parallelFor(out.count, grain: 1 << 15) { r in   // branch-free: the sign pattern is random
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                let ov = UnsafeRawPointer(o + i).loadUnaligned(as: SIMD8<Float>.self)
                let dv = UnsafeRawPointer(d + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(dx + i).storeBytes(of: dv.replacing(with: 0, where: ov .<= 0), as: SIMD8<Float>.self)
                i += 8
            }
            while i < r.upperBound { dx[i] = o[i] > 0 ? d[i] : 0; i += 1 }
        }
    }

    // MARK: - Embedding

    public func embeddingForward(tokens: TensorView, table: TensorView, positions: TensorView, out: TensorView,
                                 batch: Int, time: Int, channels: Int) {
        let n = batch * time, C = channels
        precondition(tokens.count >= n && out.count >= n * C && positions.count >= time * C, "embedding shape mismatch")
        let tok = intPtr(tokens), w = ptr(table), pe = ptr(positions), o = ptr(out)
        let vocab = table.count / C
        parallelFor(n, grain: 64) { r in
            for i in r {
                let id = Int(tok[i])
                precondition(id >= 0 && id < vocab, "token id \(id) outside vocabulary 0..<\(vocab)")
                let src = w + id * C, p = pe + (i % time) * C, dst = o + i * C
                for c in 0..<C { dst[c] = src[c] + p[c] }
            }
        }
    }

    public func embeddingBackward(dOut: TensorView, tokens: TensorView, dTable: TensorView,
                                  batch: Int, time: Int, channels: Int) {
        let n = batch * time, C = channels
        let tok = intPtr(tokens), d = ptr(dOut), dw = ptr(dTable)
        parallelFor(C, grain: 16) { cr in   // each worker owns channels; rows in order
            for i in 0..<n {
                let src = d + i * C, dst = dw + Int(tok[i]) * C
                for c in cr { dst[c] += src[c] }
            }
        }
    }

    // MARK: - LayerNorm

    public func layerNormForward(_ x: TensorView, weight: TensorView, bias: TensorView, out: TensorView,
                                 mean: TensorView, rstd: TensorView, rows: Int, columns C: Int) {
        let px = ptr(x), w = ptr(weight), b = ptr(bias), o = ptr(out), pm = ptr(mean), pr = ptr(rstd)
        parallelFor(rows, grain: 32) { r in
            for i in r {
                let row = px + i * C
                var s = 0.0
                for c in 0..<C { s += Double(row[c]) }
                let mu = s / Double(C)
                var v = 0.0
                for c in 0..<C { let d = Double(row[c]) - mu; v += d * d }
                let rs = 1.0 / (v / Double(C) + 1e-5).squareRoot()
                let m = Float(mu), rsf = Float(rs)
                let dst = o + i * C
                for c in 0..<C { dst[c] = (row[c] - m) * rsf * w[c] + b[c] }
                pm[i] = m; pr[i] = rsf
            }
        }
    }

    public func layerNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, mean: TensorView,
                                  rstd: TensorView, dInput: TensorView, dWeight: TensorView, dBias: TensorView,
                                  rows: Int, columns C: Int) {
        let d = ptr(dOut), px = ptr(x), w = ptr(weight), pm = ptr(mean), pr = ptr(rstd)
        let dx = ptr(dInput), dw = ptr(dWeight), db = ptr(dBias)
        let chunks = min(threads, max(1, rows / 32))
        // Per-chunk partial sums of dWeight/dBias, reduced in chunk order afterwards.
        var partial = [Float](repeating: 0, count: chunks * 2 * C)
        partial.withUnsafeMutableBufferPointer { part in
            let pp = part.baseAddress!
            parallelFor(chunks, grain: 1) { cr in
                for chunk in cr {
                    let lo = rows * chunk / chunks, hi = rows * (chunk + 1) / chunks
                    let pw = pp + chunk * 2 * C, pb = pw + C
                    for i in lo..<hi {
                        let dr = d + i * C, xr = px + i * C, m = pm[i], rs = pr[i]
                        var meanD = 0.0, meanDN = 0.0
                        for c in 0..<C {
                            let nrm = (xr[c] - m) * rs
                            let dn = Double(w[c] * dr[c])
                            meanD += dn; meanDN += dn * Double(nrm)
                            pw[c] += nrm * dr[c]; pb[c] += dr[c]
                        }
                        let a = Float(meanD / Double(C)), bb = Float(meanDN / Double(C))
                        let dxr = dx + i * C
                        for c in 0..<C {
                            let nrm = (xr[c] - m) * rs
                            dxr[c] += rs * (w[c] * dr[c] - a - nrm * bb)
                        }
                    }
                }
            }
            for chunk in 0..<chunks {
                let pw = pp + chunk * 2 * C, pb = pw + C
                for c in 0..<C { dw[c] += pw[c]; db[c] += pb[c] }
            }
        }
    }

    // MARK: - Loss

    public func crossEntropy(logits: TensorView, targets: TensorView, losses: TensorView, correct: TensorView,
                             dLogits: TensorView?, gradScale: Float, rows: Int, vocabulary V: Int) {
        precondition(logits.count >= rows * V && targets.count >= rows && losses.count >= rows && correct.count >= rows,
                     "crossEntropy shape mismatch")
        let lg = ptr(logits), tg = intPtr(targets), ls = ptr(losses), cr = ptr(correct)
        let dl = dLogits.map { ptr($0) }
        parallelFor(rows, grain: 64) { r in
            for i in r {
                let row = lg + i * V
                var mx = row[0], arg = 0
                for j in 1..<V where row[j] > mx { mx = row[j]; arg = j }
                let t = Int(tg[i])
                precondition(t >= 0 && t < V, "target \(t) outside vocabulary 0..<\(V)")
                let targetLogit = Double(row[t])   // read before dLogits (which may alias) is written
                // exp(x − max) once per logit, kept in dLogits when it is wanted.
                var s = 0.0
                if let dl {
                    let e = dl + i * V
                    if e != row { e.update(from: row, count: V) }
                    s = Double(expInPlace(e, V, minus: mx))
                    let k = Float(1 / s) * gradScale
                    for j in 0..<V { e[j] *= k }
                    e[t] -= gradScale
                } else {
                    s = Double(withUnsafeTemporaryAllocation(of: Float.self, capacity: V) { tmp -> Float in
                        tmp.baseAddress!.update(from: row, count: V)
                        return expInPlace(tmp.baseAddress!, V, minus: mx)
                    })
                }
                let lse = Double(mx) + log(s)
                ls[i] = Float(lse - targetLogit)
                cr[i] = arg == t ? 1 : 0
            }
        }
    }

    // MARK: - Optimiser

    public func sumOfSquares(_ view: TensorView) throws -> Double {
        let p = ptr(view)
        let chunks = min(threads, max(1, view.count / (1 << 16)))
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { part in
            let pp = part.baseAddress!
            parallelFor(chunks, grain: 1) { cr in
                for chunk in cr {
                    let lo = view.count * chunk / chunks, hi = view.count * (chunk + 1) / chunks
                    var s = 0.0
                    for i in lo..<hi { let x = Double(p[i]); s += x * x }
                    pp[chunk] = s
                }
            }
        }
        return partial.reduce(0, +)
    }

    public func adamW(parameters: TensorView, gradients: TensorView, m: TensorView, v: TensorView, hyper h: AdamWHyper) {
        precondition(parameters.count == gradients.count && m.count == parameters.count && v.count == parameters.count,
                     "adamW size mismatch")
        let p = ptr(parameters), g = ptr(gradients), pm = ptr(m), pv = ptr(v)
        let lr = h.learningRate, b1 = h.beta1, b2 = h.beta2, eps = h.epsilon
        let decay = 1 - lr * h.weightDecay
        let bc1 = 1 - Float(pow(Double(b1), Double(h.step)))
        let bc2 = 1 - Float(pow(Double(b2), Double(h.step)))
        let stepSize = lr / bc1, bc2Sqrt = bc2.squareRoot()
        parallelFor(parameters.count, grain: 1 << 14) { r in
            for i in r {
                let gi = g[i]
                let mi = b1 * pm[i] + (1 - b1) * gi
                let vi = b2 * pv[i] + (1 - b2) * gi * gi
                pm[i] = mi; pv[i] = vi
                p[i] = p[i] * decay - stepSize * mi / (vi.squareRoot() / bc2Sqrt + eps)
            }
        }
    }
}
