// CPUDevice: causal multi-head attention, forward and backward.
//
// Per (batch, head) the work is small GEMMs over query tiles of `tile` rows: a query tile only
// looks at keys up to its last row, so the masked upper triangle is (mostly) never computed.
// Forward saves the log-sum-exp per query; backward recomputes the probabilities from it
// (DESIGN §3), so no (T,T) matrix is ever stored. Workers take (b, h) pairs round-robin, each
// with its own scratch for a (tile, T) score block and its gradient.
// Legend: B batch, T time, H heads, hd head dim, C = H·hd row stride of q/k/v/out.

import Foundation

extension CPUDevice {
    static let attentionTile = 64

    public func attentionForward(_ s: AttentionShape, q: TensorView, k: TensorView, v: TensorView,
                                 out: TensorView, lse: TensorView) {
        let T = s.time, C = s.channels, hd = s.headDim, H = s.heads, off = s.queryOffset, TK = s.keys
        precondition(q.count >= s.tokens * C && k.count >= s.batch * TK * C && v.count >= s.batch * TK * C
                     && out.count >= s.tokens * C && lse.count >= s.batch * H * T, "attention shape mismatch")
        let pq = ptr(q), pk = ptr(k), pv = ptr(v), po = ptr(out), pl = ptr(lse)
        let tile = Self.attentionTile, scale = 1 / Float(hd).squareRoot()
        ensureScratch(tile * TK)
        let pairs = s.batch * H
        forEachChunk(threads) { w, _ in
            let S = self.scratch[w]
            var pair = w
            while pair < pairs {
                let b = pair / H, h = pair % H
                let base = b * T * C + h * hd, kvBase = b * TK * C + h * hd
                let Q = pq + base, K = pk + kvBase, V = pv + kvBase, O = po + base, L = pl + pair * T
                var t0 = 0
                while t0 < T {
                    let rows = min(tile, T - t0), keys = off + t0 + rows
                    // S[r, j] = scale · q[t0+r] · k[j], j < keys
                    Self.sgemm(false, true, rows, keys, hd, scale, Q + t0 * C, C, K, C, 0, S, keys)
                    for r in 0..<rows {
                        let t = off + t0 + r, row = S + r * keys
                        var mx = -Float.infinity
                        for j in 0...t where row[j] > mx { mx = row[j] }
                        let sum = expInPlace(row, t + 1, minus: mx)
                        let inv = 1 / sum
                        for j in 0...t { row[j] *= inv }
                        if t + 1 < keys { for j in (t + 1)..<keys { row[j] = 0 } }
                        L[t0 + r] = mx + logf(sum)
                    }
                    // out[t0..] = P · v[0..<keys]
                    Self.sgemm(false, false, rows, hd, keys, 1, S, keys, V, C, 0, O + t0 * C, C)
                    t0 += rows
                }
                pair += self.threads
            }
        }
    }

    public func attentionBackward(_ s: AttentionShape, dOut: TensorView, q: TensorView, k: TensorView,
                                  v: TensorView, out: TensorView, lse: TensorView,
                                  dq: TensorView, dk: TensorView, dv: TensorView) {
        let T = s.time, C = s.channels, hd = s.headDim, H = s.heads
        precondition(s.queryOffset == 0, "attention backward supports queryOffset 0 only (training)")
        let pq = ptr(q), pk = ptr(k), pv = ptr(v), po = ptr(out), pl = ptr(lse), pdo = ptr(dOut)
        let pdq = ptr(dq), pdk = ptr(dk), pdv = ptr(dv)
        let tile = Self.attentionTile, scale = 1 / Float(hd).squareRoot()
        ensureScratch(2 * tile * T + tile)
        let pairs = s.batch * H
        forEachChunk(threads) { w, _ in
            let P = self.scratch[w], dP = P + tile * T, D = dP + tile * T
            var pair = w
            while pair < pairs {
                let b = pair / H, h = pair % H
                let base = b * T * C + h * hd
                let Q = pq + base, K = pk + base, V = pv + base, O = po + base, L = pl + pair * T
                let dO = pdo + base, dQ = pdq + base, dK = pdk + base, dV = pdv + base
                for t in 0..<T {
                    (dK + t * C).update(repeating: 0, count: hd)
                    (dV + t * C).update(repeating: 0, count: hd)
                }
                var t0 = 0
                while t0 < T {
                    let rows = min(tile, T - t0), keys = t0 + rows
                    Self.sgemm(false, true, rows, keys, hd, scale, Q + t0 * C, C, K, C, 0, P, keys)
                    Self.sgemm(false, true, rows, keys, hd, 1, dO + t0 * C, C, V, C, 0, dP, keys)
                    for r in 0..<rows {
                        let t = t0 + r, prow = P + r * keys, drow = dP + r * keys
                        let l = L[t]
                        // D_t = Σ_j P·dP = dO_t · O_t
                        var dsum: Float = 0
                        let o = O + t * C, g = dO + t * C
                        for c in 0..<hd { dsum += o[c] * g[c] }
                        D[r] = dsum
                        _ = expInPlace(prow, t + 1, minus: l)
                        for j in 0...t { drow[j] = prow[j] * (drow[j] - dsum) }
                        if t + 1 < keys { for j in (t + 1)..<keys { prow[j] = 0; drow[j] = 0 } }
                    }
                    // dV[0..<keys] += Pᵀ · dO_tile ; dQ_tile = scale · dS · K ; dK += scale · dSᵀ · Q_tile
                    Self.sgemm(true, false, keys, hd, rows, 1, P, keys, dO + t0 * C, C, 1, dV, C)
                    Self.sgemm(false, false, rows, hd, keys, scale, dP, keys, K, C, 0, dQ + t0 * C, C)
                    Self.sgemm(true, false, keys, hd, rows, scale, dP, keys, Q + t0 * C, C, 1, dK, C)
                    t0 += rows
                }
                pair += self.threads
            }
        }
    }
}
