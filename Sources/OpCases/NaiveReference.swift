// NaiveReference: every ComputeDevice op as plain Double-precision loops, written from the doc
// comments of ComputeDevice / OpShapes and nothing else (no tiling, no BLAS, no threads).
//
// It is the truth the CPU device is tested against (ggml's `use_ref`), and it is itself checked
// against central finite differences in Tests/MPOKitTests/GradientCheck*.swift. Every function
// takes and returns host arrays; accumulate-style outputs take their starting value as an
// argument. It is not fast and not meant for anything but tests and one-off validation.
// Legend: B batch, T time, C channels, V vocabulary, N rows (tokens), H heads, hd head dim.

import Foundation
import MPOKit

public enum NaiveReference {
    // MARK: - Memory

    /// Tensor transpose: dst[j_0, …] = src[i] with i[order[k]] = j_k; adds into `into` when accumulating.
    public static func permute(_ src: [Double], shape: [Int], order: [Int], into dst: [Double], accumulate: Bool) -> [Double] {
        let n = shape.reduce(1, *)
        precondition(src.count == n && dst.count == n && order.count == shape.count)
        let dShape = order.map { shape[$0] }
        var out = dst
        var j = [Int](repeating: 0, count: shape.count)   // destination multi-index
        for flat in 0..<n {
            var rem = flat
            for k in stride(from: dShape.count - 1, through: 0, by: -1) { j[k] = rem % dShape[k]; rem /= dShape[k] }
            var i = [Int](repeating: 0, count: shape.count)
            for k in 0..<order.count { i[order[k]] = j[k] }
            var s = 0
            for d in 0..<shape.count { s = s * shape[d] + i[d] }
            out[flat] = (accumulate ? out[flat] : 0) + src[s]
        }
        return out
    }

    // MARK: - Dense

    /// C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] over the batch. With strideC = 0 and batch > 1 the
    /// items reduce into one C: C = beta·C + Σ_b alpha·op(A_b)·op(B_b) (beta applied once; this is
    /// what MPOLinear's dCore GEMM relies on). beta = 0 never reads C (BLAS convention), so NaN in
    /// C does not propagate.
    public static func gemm(_ s: GemmShape, a: [Double], b: [Double], c: [Double]) -> [Double] {
        var out = c
        let alpha = Double(s.alpha), beta = Double(s.beta)
        func aAt(_ p: Int, _ i: Int, _ l: Int) -> Double {   // op(A)[i, l]
            a[p * s.strideA + (s.transposeA ? l * s.lda + i : i * s.lda + l)]
        }
        func bAt(_ p: Int, _ l: Int, _ j: Int) -> Double {   // op(B)[l, j]
            b[p * s.strideB + (s.transposeB ? j * s.ldb + l : l * s.ldb + j)]
        }
        let reduce = s.batch > 1 && s.strideC == 0
        if reduce {
            for i in 0..<s.m {
                for j in 0..<s.n {
                    var acc = 0.0
                    for p in 0..<s.batch { for l in 0..<s.k { acc += aAt(p, i, l) * bAt(p, l, j) } }
                    let idx = i * s.ldc + j
                    out[idx] = alpha * acc + (beta == 0 ? 0 : beta * out[idx])
                }
            }
            return out
        }
        for p in 0..<s.batch {
            for i in 0..<s.m {
                for j in 0..<s.n {
                    var acc = 0.0
                    for l in 0..<s.k { acc += aAt(p, i, l) * bAt(p, l, j) }
                    let idx = p * s.strideC + i * s.ldc + j
                    out[idx] = alpha * acc + (beta == 0 ? 0 : beta * out[idx])
                }
            }
        }
        return out
    }

    /// out[r, c] += bias[c].
    public static func addBias(_ bias: [Double], to out: [Double], rows: Int, columns: Int) -> [Double] {
        var o = out
        for r in 0..<rows { for c in 0..<columns { o[r * columns + c] += bias[c] } }
        return o
    }

    /// dBias[c] += Σ_r dOut[r, c].
    public static func biasBackward(_ dOut: [Double], dBias: [Double], rows: Int, columns: Int) -> [Double] {
        var d = dBias
        for c in 0..<columns {
            var s = 0.0
            for r in 0..<rows { s += dOut[r * columns + c] }
            d[c] += s
        }
        return d
    }

    // MARK: - Elementwise

    public static func add(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map { $0 + $1 } }
    public static func scale(_ x: [Double], by f: Double) -> [Double] { x.map { $0 * f } }
    /// max(x, 0) with NaN kept (PyTorch's relu).
    public static func reluForward(_ x: [Double]) -> [Double] { x.map { $0 < 0 ? 0 : $0 } }
    /// dX = dOut · [out > 0] as PyTorch's threshold_backward: 0 where out ≤ 0, else dOut (a NaN out passes).
    public static func reluBackward(_ dOut: [Double], out: [Double]) -> [Double] {
        zip(dOut, out).map { $1 <= 0 ? 0 : $0 }
    }

    // MARK: - Embedding

    /// out[b,t] = table[tokens[b,t]] + positions[t] (the table row alone without positions).
    public static func embeddingForward(tokens: [Int], table: [Double], positions: [Double]?,
                                        batch: Int, time: Int, channels C: Int) -> [Double] {
        var out = [Double](repeating: 0, count: batch * time * C)
        for n in 0..<(batch * time) {
            for c in 0..<C { out[n * C + c] = table[tokens[n] * C + c] + (positions?[(n % time) * C + c] ?? 0) }
        }
        return out
    }

    /// dTable[t] += Σ_b dOut[b,t].
    public static func positionBackward(dOut: [Double], dTable: [Double], batch: Int, time: Int, channels C: Int) -> [Double] {
        var d = dTable
        for b in 0..<batch { for t in 0..<time { for c in 0..<C { d[t * C + c] += dOut[(b * time + t) * C + c] } } }
        return d
    }

    /// dTable[tokens[b,t]] += dOut[b,t].
    public static func embeddingBackward(dOut: [Double], tokens: [Int], dTable: [Double],
                                         batch: Int, time: Int, channels C: Int) -> [Double] {
        var d = dTable
        for n in 0..<(batch * time) { for c in 0..<C { d[tokens[n] * C + c] += dOut[n * C + c] } }
        return d
    }

    // MARK: - LayerNorm (biased variance) and RMSNorm

    public static let layerNormEpsilon = 1e-5

    /// out = (x − mean)·rstd·weight + bias per row; mean and rstd per row.
    public static func layerNormForward(_ x: [Double], weight: [Double], bias: [Double], rows: Int, columns C: Int,
                                        epsilon: Double = layerNormEpsilon)
        -> (out: [Double], mean: [Double], rstd: [Double]) {
        var out = [Double](repeating: 0, count: rows * C), mean = [Double](repeating: 0, count: rows)
        var rstd = mean
        for r in 0..<rows {
            let row = x[(r * C)..<(r * C + C)]
            let mu = row.reduce(0, +) / Double(C)
            let variance = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(C)
            let rs = 1 / (variance + epsilon).squareRoot()
            for c in 0..<C { out[r * C + c] = (x[r * C + c] - mu) * rs * weight[c] + bias[c] }
            mean[r] = mu; rstd[r] = rs
        }
        return (out, mean, rstd)
    }

    /// dInput += …, dWeight += Σ_r norm·dOut, dBias += Σ_r dOut (all accumulate); the row
    /// statistics are recomputed from x.
    public static func layerNormBackward(dOut: [Double], x: [Double], weight: [Double],
                                         dInput: [Double], dWeight: [Double], dBias: [Double], rows: Int, columns C: Int)
        -> (dInput: [Double], dWeight: [Double], dBias: [Double]) {
        let stats = layerNormForward(x, weight: weight, bias: [Double](repeating: 0, count: C), rows: rows, columns: C)
        var dx = dInput, dw = dWeight, db = dBias
        for r in 0..<rows {
            let mu = stats.mean[r], rs = stats.rstd[r]
            var meanD = 0.0, meanDN = 0.0
            for c in 0..<C {
                let norm = (x[r * C + c] - mu) * rs, g = dOut[r * C + c]
                meanD += weight[c] * g; meanDN += weight[c] * g * norm
                dw[c] += norm * g; db[c] += g
            }
            meanD /= Double(C); meanDN /= Double(C)
            for c in 0..<C {
                let norm = (x[r * C + c] - mu) * rs
                dx[r * C + c] += rs * (weight[c] * dOut[r * C + c] - meanD - norm * meanDN)
            }
        }
        return (dx, dw, db)
    }

    /// out = x·rstd·weight, rstd = 1/√(mean(x²) + ε) per row.
    public static func rmsNormForward(_ x: [Double], weight: [Double], rows: Int, columns C: Int, epsilon: Double)
        -> (out: [Double], rstd: [Double]) {
        var out = [Double](repeating: 0, count: rows * C), rstd = [Double](repeating: 0, count: rows)
        for r in 0..<rows {
            let ms = x[(r * C)..<(r * C + C)].reduce(0) { $0 + $1 * $1 } / Double(C)
            let rs = 1 / (ms + epsilon).squareRoot()
            for c in 0..<C { out[r * C + c] = x[r * C + c] * rs * weight[c] }
            rstd[r] = rs
        }
        return (out, rstd)
    }

    /// The gradient of Σ dOut·rmsNorm(x) added to dInput and dWeight, by the chain rule on
    /// out_c = w_c·x_c·(mean(x²) + ε)^(−1/2) (rstd recomputed from x).
    public static func rmsNormBackward(dOut: [Double], x: [Double], weight: [Double], dInput: [Double], dWeight: [Double],
                                       rows: Int, columns C: Int, epsilon: Double) -> (dInput: [Double], dWeight: [Double]) {
        var dx = dInput, dw = dWeight
        for r in 0..<rows {
            let ms = x[(r * C)..<(r * C + C)].reduce(0) { $0 + $1 * $1 } / Double(C)
            let rs = 1 / (ms + epsilon).squareRoot()
            var dot = 0.0   // Σ_c w_c·dOut_c·x_c
            for c in 0..<C { dot += weight[c] * dOut[r * C + c] * x[r * C + c]; dw[c] += dOut[r * C + c] * x[r * C + c] * rs }
            // ∂/∂x_j: w_j·dOut_j·rs − rs³·x_j·dot / C
            for c in 0..<C { dx[r * C + c] += weight[c] * dOut[r * C + c] * rs - rs * rs * rs * x[r * C + c] * dot / Double(C) }
        }
        return (dx, dw)
    }

    // MARK: - Rotary embedding and activations

    /// The (positions, hd) table the model uploads: row p = cos(p·θ_i) for i < hd/2, then
    /// sin(p·θ_i), θ_i = base^(−2i/hd), in Double.
    public static func rotaryTable(positions: Int, headDim hd: Int, base: Double) -> [Double] {
        var t = [Double](repeating: 0, count: positions * hd)
        for p in 0..<positions {
            for i in 0..<(hd / 2) {
                let a = Double(p) * pow(base, -Double(2 * i) / Double(hd))
                t[p * hd + i] = cos(a); t[p * hd + hd / 2 + i] = sin(a)
            }
        }
        return t
    }

    /// x rotated in the rotate-half convention by the table's angles (the inverse turns back).
    public static func rotary(_ x: [Double], table: [Double], shape s: RotaryShape, inverse: Bool) -> [Double] {
        var out = x
        let hd = s.headDim, half = hd / 2
        for r in 0..<s.rows {
            let p = s.positionOffset + r % s.time
            for h in 0..<s.heads {
                for i in 0..<half {
                    let a = r * s.width + h * hd + i, b = a + half
                    let c = table[p * hd + i], sn = (inverse ? -1 : 1) * table[p * hd + half + i]
                    out[a] = x[a] * c - x[b] * sn
                    out[b] = x[b] * c + x[a] * sn
                }
            }
        }
        return out
    }

    public static func silu(_ g: Double) -> Double { g / (1 + exp(-g)) }

    /// silu(gate)·up.
    public static func swigluForward(gate: [Double], up: [Double]) -> [Double] { zip(gate, up).map { silu($0) * $1 } }

    /// dGate = dOut·up·silu′(gate), dUp = dOut·silu(gate); silu′(g) = σ(g)(1 + g(1 − σ(g))).
    public static func swigluBackward(dOut: [Double], gate: [Double], up: [Double]) -> (dGate: [Double], dUp: [Double]) {
        var dg = dOut, du = dOut
        for i in 0..<dOut.count {
            let g = gate[i], s = 1 / (1 + exp(-g))
            dg[i] = dOut[i] * up[i] * s * (1 + g * (1 - s)); du[i] = dOut[i] * g * s
        }
        return (dg, du)
    }

    static let geluK = (2 / Double.pi).squareRoot()
    public static func gelu(_ x: Double) -> Double { 0.5 * x * (1 + tanh(geluK * (x + 0.044715 * x * x * x))) }
    public static func geluForward(_ x: [Double]) -> [Double] { x.map(gelu) }

    /// dX = dOut·gelu′(x).
    public static func geluBackward(dOut: [Double], x: [Double]) -> [Double] {
        zip(dOut, x).map { d, v in
            let t = tanh(geluK * (v + 0.044715 * v * v * v))
            return d * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * geluK * (1 + 3 * 0.044715 * v * v))
        }
    }

    // MARK: - Causal attention (scale 1/√hd)

    /// The masked, scaled scores of one (b, h, query t) row: s_j = q_t·k_j/√hd for keys
    /// j ≤ queryOffset + t (k is laid out (B, queryOffset + T, C)).
    private static func scores(_ s: AttentionShape, q: [Double], k: [Double], b: Int, h: Int, t: Int) -> [Double] {
        let C = s.channels, KC = s.kvChannels, hd = s.headDim, scale = 1 / Double(hd).squareRoot(), kh = h / s.group
        return (0...(s.queryOffset + t)).map { j in
            var dot = 0.0
            for d in 0..<hd { dot += q[(b * s.time + t) * C + h * hd + d] * k[(b * s.kvRows + j) * KC + kh * hd + d] }
            return dot * scale
        }
    }

    /// out (B,T,C) = softmax(mask(q·kᵀ/√hd))·v per head, k/v (B, kvRows, KVH·hd) read at head
    /// h / (H/KVH); lse (B,H,T) = logsumexp of the row. With queryOffset > 0 (KV-cache decode), k
    /// and v hold queryOffset + T rows per batch item.
    public static func attentionForward(_ s: AttentionShape, q: [Double], k: [Double], v: [Double])
        -> (out: [Double], lse: [Double]) {
        let C = s.channels, KC = s.kvChannels, hd = s.headDim, T = s.time
        var out = [Double](repeating: 0, count: s.tokens * C), lse = [Double](repeating: 0, count: s.batch * s.heads * T)
        for b in 0..<s.batch {
            for h in 0..<s.heads {
                for t in 0..<T {
                    let sc = scores(s, q: q, k: k, b: b, h: h, t: t)
                    let mx = sc.max()!
                    let l = mx + log(sc.reduce(0) { $0 + exp($1 - mx) })
                    lse[(b * s.heads + h) * T + t] = l
                    for j in 0..<sc.count {
                        let p = exp(sc[j] - l)
                        for d in 0..<hd { out[(b * T + t) * C + h * hd + d] += p * v[(b * s.kvRows + j) * KC + (h / s.group) * hd + d] }
                    }
                }
            }
        }
        return (out, lse)
    }

    /// Gradients of Σ dOut·out with respect to q (B,T,C), k and v (B,T,KVH·hd), by the textbook
    /// softmax Jacobian: dP = dO·vᵀ, dS = P ∘ (dP − Σ_j P·dP), dq = dS·k/√hd, dk = dSᵀ·q/√hd, dv = Pᵀ·dO
    /// (dk, dv summed over the query heads sharing a key/value head). Training only: queryOffset 0.
    public static func attentionBackward(_ s: AttentionShape, dOut: [Double], q: [Double], k: [Double], v: [Double])
        -> (dq: [Double], dk: [Double], dv: [Double]) {
        precondition(s.queryOffset == 0, "attention backward is defined for queryOffset 0 only")
        let C = s.channels, KC = s.kvChannels, hd = s.headDim, T = s.time, scale = 1 / Double(hd).squareRoot()
        var dq = [Double](repeating: 0, count: s.tokens * C), dk = [Double](repeating: 0, count: s.tokens * KC), dv = dk
        for b in 0..<s.batch {
            for h in 0..<s.heads {
                for t in 0..<T {
                    let sc = scores(s, q: q, k: k, b: b, h: h, t: t)
                    let mx = sc.max()!
                    let z = sc.reduce(0) { $0 + exp($1 - mx) }
                    let p = sc.map { exp($0 - mx) / z }
                    let qi = (b * T + t) * C + h * hd
                    var dp = [Double](repeating: 0, count: t + 1)
                    for j in 0...t {
                        let kj = (b * T + j) * KC + (h / s.group) * hd
                        for d in 0..<hd { dp[j] += dOut[qi + d] * v[kj + d]; dv[kj + d] += p[j] * dOut[qi + d] }
                    }
                    var pdp = 0.0
                    for j in 0...t { pdp += p[j] * dp[j] }
                    for j in 0...t {
                        let ds = p[j] * (dp[j] - pdp) * scale, kj = (b * T + j) * KC + (h / s.group) * hd
                        for d in 0..<hd { dq[qi + d] += ds * k[kj + d]; dk[kj + d] += ds * q[qi + d] }
                    }
                }
            }
        }
        return (dq, dk, dv)
    }

    // MARK: - Loss

    /// losses[r] = logsumexp(row) − row[target]; correct[r] = 1 if the first maximal index is the
    /// target; dLogits = (softmax − onehot)·gradScale.
    public static func crossEntropy(logits: [Double], targets: [Int], rows: Int, vocabulary V: Int, gradScale: Double)
        -> (losses: [Double], correct: [Double], dLogits: [Double]) {
        var losses = [Double](repeating: 0, count: rows), correct = losses
        var dl = [Double](repeating: 0, count: rows * V)
        for r in 0..<rows {
            let row = Array(logits[(r * V)..<(r * V + V)])
            var arg = 0
            for j in 1..<max(V, 1) where row[j] > row[arg] { arg = j }
            let mx = row[arg]
            let lse = mx + log(row.reduce(0) { $0 + exp($1 - mx) })
            let t = targets[r]
            losses[r] = lse - row[t]
            correct[r] = arg == t ? 1 : 0
            for j in 0..<V { dl[r * V + j] = (exp(row[j] - lse) - (j == t ? 1 : 0)) * gradScale }
        }
        return (losses, correct, dl)
    }

    /// Distillation at temperature τ (hand-derived): p = softmax(s/τ), q = softmax(t/τ),
    /// loss[r] = τ²·Σ q·(log q − log p); dLogits + gradScale·τ·(p − q).
    public static func distillation(student s: [Double], teacher t: [Double], dLogits: [Double], rows: Int,
                                    vocabulary V: Int, temperature tau: Double, gradScale: Double)
        -> (losses: [Double], dLogits: [Double]) {
        func logSoftmax(_ x: ArraySlice<Double>) -> [Double] {
            let z = x.map { $0 / tau }, m = z.max() ?? 0
            let lse = m + log(z.reduce(0) { $0 + exp($1 - m) })
            return z.map { $0 - lse }
        }
        var losses = [Double](repeating: 0, count: rows), d = dLogits
        for r in 0..<rows {
            let lp = logSoftmax(s[(r * V)..<(r * V + V)]), lq = logSoftmax(t[(r * V)..<(r * V + V)])
            var kl = 0.0
            for j in 0..<V { kl += exp(lq[j]) * (lq[j] - lp[j]) }
            losses[r] = tau * tau * kl
            for j in 0..<V { d[r * V + j] += gradScale * tau * (exp(lp[j]) - exp(lq[j])) }
        }
        return (losses, d)
    }

    /// sums[r] = Σ_c (a − b)²; dA + gradScale·2·(a − b).
    public static func squaredDistance(_ a: [Double], _ b: [Double], dA: [Double], rows: Int, columns C: Int,
                                       gradScale: Double) -> (sums: [Double], dA: [Double]) {
        var sums = [Double](repeating: 0, count: rows), d = dA
        for r in 0..<rows {
            for c in 0..<C {
                let i = r * C + c, diff = a[i] - b[i]
                sums[r] += diff * diff
                d[i] += gradScale * 2 * diff
            }
        }
        return (sums, d)
    }

    // MARK: - Optimiser

    public static func sumOfSquares(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 } }

    /// A training step's scalars (ComputeDevice.stepScalars): means over the rows, Σg², the clip
    /// scale min(1, clip/(√Σg² + 1e-6)) and whether the losses and Σg² are finite.
    public static func stepScalars(losses: [Double], correct: [Double], extra: [Double]?, gradients: [Double], clip: Double)
        -> StepScalars {
        let n = Double(losses.count), ce = losses.reduce(0, +), kd = extra?.reduce(0, +) ?? 0
        let g2 = sumOfSquares(gradients)
        return StepScalars(crossEntropy: ce / n, distillation: kd / n, accuracy: correct.reduce(0, +) / n, gradientSquares: g2,
                           clipScale: StepScalars.clipScale(norm: g2.squareRoot(), clip: clip),
                           finite: ce.isFinite && kd.isFinite && g2.isFinite)
    }

    /// Decoupled AdamW (Loshchilov & Hutter; PyTorch AdamW docs): p ← p − lr·wd·p;
    /// m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p − lr·m̂/(√v̂ + eps) with
    /// m̂ = m/(1−β1^step), v̂ = v/(1−β2^step).
    public static func adamW(parameters: [Double], gradients: [Double], m: [Double], v: [Double], hyper h: AdamWHyper)
        -> (parameters: [Double], m: [Double], v: [Double]) {
        let lr = Double(h.learningRate), b1 = Double(h.beta1), b2 = Double(h.beta2)
        let eps = Double(h.epsilon), wd = Double(h.weightDecay), step = Double(h.step)
        var p = parameters, mm = m, vv = v
        for i in 0..<p.count {
            let g = gradients[i]
            mm[i] = b1 * m[i] + (1 - b1) * g
            vv[i] = b2 * v[i] + (1 - b2) * g * g
            let mHat = mm[i] / (1 - pow(b1, step)), vHat = vv[i] / (1 - pow(b2, step))
            p[i] = p[i] - lr * wd * p[i] - lr * mHat / (vHat.squareRoot() + eps)
        }
        return (p, mm, vv)
    }
}
