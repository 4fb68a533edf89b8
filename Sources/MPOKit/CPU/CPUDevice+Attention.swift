// CPUDevice: causal multi-head attention, forward and backward, through the tiled kernels of
// CKernels (attention.c): per (batch, head) pair, query tiles of 32 rows against packed Kᵀ/Vᵀ
// held in cache, the log-sum-exp saved by forward and P recomputed from it in backward
// (docs/DESIGN.md §3), so no (T, T) matrix is ever stored. Pairs are spread over the workers, each with
// its own scratch; a pair's numbers do not depend on which worker computes it.
// Legend: B batch, T time, H heads (KVH key/value heads, G = H/KVH per group), hd head dim,
// C = H·hd row stride of q/out, KC = KVH·hd of k/v.

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
        let T = s.time, C = s.channels, KC = s.kvChannels, hd = s.headDim, H = s.heads, G = s.group
        let TK = s.keys, R = s.kvRows
        checkAttention(s, q: [q, out], kv: [k, v], lse: lse, keyRows: R)
        let pq = ptr(q), pk = ptr(k), pv = ptr(v), po = ptr(out), pl = ptr(lse)
        let scale = 1 / Float(hd).squareRoot()
        forEachPair(s.batch * H, work: s.batch * H * T * TK * hd, scratch: mpo_attention_scratch(Int32(T), Int32(TK), Int32(hd))) { pair, scratch in
            let b = pair / H, h = pair % H
            let base = b * T * C + h * hd, kvBase = b * R * KC + (h / G) * hd
            mpo_attention_forward(pq + base, pk + kvBase, pv + kvBase, po + base, pl + pair * T, Int32(T), Int32(TK),
                                  Int32(s.queryOffset), Int32(hd), Int32(C), Int32(KC), scale, scratch)
        }
    }

    /// Per (batch, key/value head): the group's query heads in order, the first overwriting dk/dv
    /// and the others adding to them — the same sums whichever worker runs the pair.
    public func attentionBackward(_ s: AttentionShape, dOut: TensorView, q: TensorView, k: TensorView,
                                  v: TensorView, out: TensorView, lse: TensorView,
                                  dq: TensorView, dk: TensorView, dv: TensorView) {
        let T = s.time, C = s.channels, KC = s.kvChannels, hd = s.headDim, H = s.heads, KVH = s.kvHeads, G = s.group
        precondition(s.queryOffset == 0, "attention backward supports queryOffset 0 only (training)")
        checkAttention(s, q: [dOut, q, out, dq], kv: [k, v, dk, dv], lse: lse, keyRows: T)
        let pq = ptr(q), pk = ptr(k), pv = ptr(v), po = ptr(out), pl = ptr(lse), pdo = ptr(dOut)
        let pdq = ptr(dq), pdk = ptr(dk), pdv = ptr(dv)
        let scale = 1 / Float(hd).squareRoot()
        forEachPair(s.batch * KVH, work: s.batch * H * T * T * hd, scratch: mpo_attention_scratch(Int32(T), Int32(T), Int32(hd))) { pair, scratch in
            let b = pair / KVH, kvh = pair % KVH
            let kvBase = b * T * KC + kvh * hd
            for g in 0..<G {
                let h = kvh * G + g, base = b * T * C + h * hd
                mpo_attention_backward(pq + base, pk + kvBase, pv + kvBase, po + base, pdo + base, pl + (b * H + h) * T,
                                       pdq + base, pdk + kvBase, pdv + kvBase, Int32(T), Int32(hd), Int32(C), Int32(KC),
                                       g > 0 ? 1 : 0, scale, scratch)
            }
        }
    }
}
