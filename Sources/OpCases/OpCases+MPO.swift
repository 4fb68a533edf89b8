// Case builder for the fused MPO inference contraction (`mpoForward`): random cores
// (b_l, o_l, i_l, b_{l+1}) permuted on the host into the device layout M_l (i_l·b_{l+1}, b_l·o_l),
// and a naive reference that contracts the cores into W in Double and multiplies.
// Not here: which shapes are in the table (OpCases.swift).

import MPOKit

extension OpCases {
    /// y = x·Wᵀ (or += with `accumulate`) for an MPO over `outFactors`×`inFactors` with inner bonds χ.
    static func mpoForward(out outFactors: [Int], in inFactors: [Int], chi: Int, rows: Int, accumulate: Bool = false) -> OpCase {
        let L = outFactors.count
        let bonds = [1] + Array(repeating: chi, count: L - 1) + [1]
        let s = MPOContraction(outFactors: outFactors, inFactors: inFactors, bonds: bonds, rows: rows)
        let (nOut, nIn) = (s.outFeatures, s.inFeatures)
        let vars = "\(outFactors)×\(inFactors) χ=\(chi) rows=\(rows)" + (accumulate ? " y+=" : "")
        return CaseBuilder.make(.mpoForward, vars, maxNMSE: 1e-10, flops: s.flops,
                                bytes: bytes(rows * (nIn + nOut) + (0..<L).reduce(0) { $0 + s.coreCount($1) }), inputs: { g in
            g.uniform("x", rows * nIn, -1, 1)
            g.uniform("y", rows * nOut, -1, 1)   // garbage to overwrite, or the accumulator's start
            for l in 0..<L { g.uniform("core\(l)", s.coreCount(l), -1, 1) }
        }, device: { ws, h in
            let x = try ws.input("x", h["x"]), y = try ws.output("y", h["y"])
            let cores = try (0..<L).map { l in
                try ws.input("M\(l)", permuteCore(h["core\(l)"], b: bonds[l], o: outFactors[l], i: inFactors[l], b2: bonds[l + 1]))
            }
            let scratch = try ws.scratch("scratch", s.scratchCount)
            return ws.instance { ws.device.mpoForward(s, x: x, cores: cores, y: y, accumulate: accumulate, scratch: scratch) }
        }, reference: { h in
            let w = NaiveReference.contractMPO((0..<L).map { h.d("core\($0)") }, outFactors: outFactors, inFactors: inFactors, bonds: bonds)
            let ref = NaiveReference.gemm(GemmShape(m: rows, n: nOut, k: nIn, transposeB: true, beta: accumulate ? 1 : 0),
                                          a: h.d("x"), b: w, c: h.d("y"))
            return ["y": ref]
        })
    }

    /// Core (b, o, i, b') → M (i, b', b, o), row-major.
    static func permuteCore(_ c: [Float], b: Int, o: Int, i: Int, b2: Int) -> [Float] {
        var m = [Float](repeating: 0, count: c.count)
        for p in 0..<b { for q in 0..<o { for r in 0..<i { for t in 0..<b2 {
            m[((r * b2 + t) * b + p) * o + q] = c[((p * o + q) * i + r) * b2 + t]
        } } } }
        return m
    }
}

extension NaiveReference {
    /// W (out, in) of MPO cores (b_l, o_l, i_l, b_{l+1}) in Double: W[o, i] = Σ over bond paths of
    /// ∏_l A_l[b_l, o_l, i_l, b_{l+1}], o_0 and i_0 the most significant digits.
    public static func contractMPO(_ cores: [[Double]], outFactors: [Int], inFactors: [Int], bonds: [Int]) -> [Double] {
        // T over (o-prefix, i-prefix, b): start with the empty prefix and bond 1.
        var t: [Double] = [1], oP = 1, iP = 1
        for l in 0..<cores.count {
            let o = outFactors[l], i = inFactors[l], b = bonds[l], b2 = bonds[l + 1]
            var next = [Double](repeating: 0, count: oP * o * iP * i * b2)
            for po in 0..<oP { for pi in 0..<iP { for bb in 0..<b {
                let v = t[(po * iP + pi) * b + bb]
                if v == 0 { continue }
                for qo in 0..<o { for qi in 0..<i { for bn in 0..<b2 {
                    let no = po * o + qo, ni = pi * i + qi
                    next[(no * (iP * i) + ni) * b2 + bn] += v * cores[l][((bb * o + qo) * i + qi) * b2 + bn]
                } } }
            } } }
            t = next; oP *= o; iP *= i
        }
        return t   // (out, in, 1)
    }
}
