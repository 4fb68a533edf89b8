// CPUDevice: causal multi-head attention, forward and backward, through the tiled kernels of
// CKernels (attention.c): per (batch, head) pair, query tiles of 32 rows against packed Kᵀ/Vᵀ
// held in cache, the log-sum-exp saved by forward and P recomputed from it in backward
// (docs/DESIGN.md §3), so no (T, T) matrix is ever stored. Pairs are spread over the workers, each with
// its own scratch; a pair's numbers do not depend on which worker computes it.
// Legend: B batch, T time, H heads, hd head dim, C = H·hd row stride of q/k/v/out.

import CKernels

extension CPUDevice {
    /// Below this many multiply-adds a call runs on the calling thread (decoding one token).
    static let attentionInlineWork = 1 << 20

    /// Runs `body(pair, scratch)` for every (batch, head) pair, each with `floats` of scratch.
    private func forEachPair(_ pairs: Int, work: Int, scratch floats: Int,
                             _ body: (Int, UnsafeMutablePointer<Float>) -> Void) {
        ensureScratch(floats)
        if work < Self.attentionInlineWork {
            for pair in 0..<pairs { body(pair, scratch[0]) }
        } else {
            forEachChunk(pairs) { pair, worker in body(pair, scratch[worker]) }
        }
    }

    public func attentionForward(_ s: AttentionShape, q: TensorView, k: TensorView, v: TensorView,
                                 out: TensorView, lse: TensorView) {
        let T = s.time, C = s.channels, hd = s.headDim, H = s.heads, TK = s.keys, R = s.kvRows
        precondition(q.count >= s.tokens * C && k.count >= s.batch * R * C && v.count >= s.batch * R * C
                     && out.count >= s.tokens * C && lse.count >= s.batch * H * T, "attention shape mismatch")
        let pq = ptr(q), pk = ptr(k), pv = ptr(v), po = ptr(out), pl = ptr(lse)
        let scale = 1 / Float(hd).squareRoot()
        forEachPair(s.batch * H, work: s.batch * H * T * TK * hd, scratch: mpo_attention_scratch(Int32(T), Int32(TK), Int32(hd))) { pair, scratch in
            let b = pair / H, h = pair % H
            let base = b * T * C + h * hd, kvBase = b * R * C + h * hd
            mpo_attention_forward(pq + base, pk + kvBase, pv + kvBase, po + base, pl + pair * T, Int32(T), Int32(TK),
                                  Int32(s.queryOffset), Int32(hd), Int32(C), scale, scratch)
        }
    }

    public func attentionBackward(_ s: AttentionShape, dOut: TensorView, q: TensorView, k: TensorView,
                                  v: TensorView, out: TensorView, lse: TensorView,
                                  dq: TensorView, dk: TensorView, dv: TensorView) {
        let T = s.time, C = s.channels, hd = s.headDim, H = s.heads
        precondition(s.queryOffset == 0, "attention backward supports queryOffset 0 only (training)")
        let n = s.tokens * C
        precondition([dOut, q, k, v, out, dq, dk, dv].allSatisfy { $0.count >= n } && lse.count >= s.batch * H * T,
                     "attention backward shape mismatch")
        let pq = ptr(q), pk = ptr(k), pv = ptr(v), po = ptr(out), pl = ptr(lse), pdo = ptr(dOut)
        let pdq = ptr(dq), pdk = ptr(dk), pdv = ptr(dv)
        let scale = 1 / Float(hd).squareRoot()
        forEachPair(s.batch * H, work: s.batch * H * T * T * hd, scratch: mpo_attention_scratch(Int32(T), Int32(T), Int32(hd))) { pair, scratch in
            let b = pair / H, h = pair % H
            let base = b * T * C + h * hd
            mpo_attention_backward(pq + base, pk + base, pv + base, po + base, pdo + base, pl + pair * T,
                                   pdq + base, pdk + base, pdv + base, Int32(T), Int32(hd), Int32(C), scale, scratch)
        }
    }
}
