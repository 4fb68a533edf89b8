// Case builders for the ops of the Llama and GPT-2 families: RMSNorm, rotary embedding, SwiGLU,
// GELU-tanh and learned positions (grouped-query attention is attentionForward/Backward with
// kvHeads < heads, OpCases+Transformer.swift). Backward cases that need a forward's saved
// statistics (RMSNorm's rstd) run it on the same device in `prepare`, then freeze them.

import MPOKit

extension OpCases {
    // MARK: - RMSNorm

    /// x uniform in offset ± spread (a small spread next to ε checks that ε is used).
    static func rmsNormForward(rows N: Int, columns C: Int, offset: Float = 0, spread: Float = 2, epsilon: Double = 1e-5) -> OpCase {
        CaseBuilder.make(.rmsNormForward, "N=\(N) C=\(C) x=\(offset)±\(spread) ε=\(epsilon)", flops: Double(4 * N * C),
                         bytes: bytes(2 * N * C + C + N), inputs: { g in
            g.uniform("x", N * C, offset - spread, offset + spread); g.uniform("weight", C, -1.5, 1.5)
            g.uniform("out", N * C, -1, 1); g.uniform("rstd", N, -1, 1)
        }, device: { ws, h in
            let x = try ws.input("x", h["x"]), w = try ws.input("weight", h["weight"])
            let out = try ws.output("out", h["out"]), rstd = try ws.output("rstd", h["rstd"])
            return ws.instance { ws.device.rmsNormForward(x, weight: w, out: out, rstd: rstd, rows: N, columns: C, epsilon: epsilon) }
        }, reference: { h in
            let r = NaiveReference.rmsNormForward(h.d("x"), weight: h.d("weight"), rows: N, columns: C, epsilon: epsilon)
            return ["out": r.out, "rstd": r.rstd]
        })
    }

    /// rstd from rmsNormForward on the same device; dInput and dWeight accumulate into seeded values.
    static func rmsNormBackward(rows N: Int, columns C: Int, offset: Float = 0, spread: Float = 2, epsilon: Double = 1e-5) -> OpCase {
        CaseBuilder.make(.rmsNormBackward, "N=\(N) C=\(C) x=\(offset)±\(spread) ε=\(epsilon)", flops: Double(8 * N * C),
                         bytes: bytes(4 * N * C + 2 * C + N), inputs: { g in
            g.uniform("x", N * C, offset - spread, offset + spread); g.uniform("weight", C, -1.5, 1.5)
            g.uniform("out", N * C, -1, 1); g.uniform("rstd", N, -1, 1)
            g.uniform("dOut", N * C, -1, 1); g.uniform("dInput", N * C, -1, 1); g.uniform("dWeight", C, -1, 1)
        }, device: { ws, h in
            let x = try ws.input("x", h["x"]), w = try ws.input("weight", h["weight"])
            let out = try ws.output("out", h["out"]), rstd = try ws.output("rstd", h["rstd"])
            ws.device.rmsNormForward(x, weight: w, out: out, rstd: rstd, rows: N, columns: C, epsilon: epsilon)
            try ws.device.synchronize()
            try ws.freeze("out"); try ws.freeze("rstd")
            let d = try ws.input("dOut", h["dOut"]), dx = try ws.output("dInput", h["dInput"]), dw = try ws.output("dWeight", h["dWeight"])
            return ws.instance {
                ws.device.rmsNormBackward(dOut: d, input: x, weight: w, rstd: rstd, dInput: dx, dWeight: dw, rows: N, columns: C)
            }
        }, reference: { h in
            let r = NaiveReference.rmsNormBackward(dOut: h.d("dOut"), x: h.d("x"), weight: h.d("weight"), dInput: h.d("dInput"),
                                                   dWeight: h.d("dWeight"), rows: N, columns: C, epsilon: epsilon)
            return ["dInput": r.dInput, "dWeight": r.dWeight]
        })
    }

    // MARK: - rotary

    /// In place on x; the table is the model's (Double angles, stored in Float), base θ.
    static func rotary(_ s: RotaryShape, base: Double = 10_000, inverse: Bool) -> OpCase {
        let n = s.rows * s.width
        return CaseBuilder.make(inverse ? .rotaryBackward : .rotaryForward, "\(s) θ=\(base)", flops: Double(3 * n),
                                bytes: bytes(2 * n + s.positions * s.headDim), inputs: { g in
            g.uniform("x", n, -2, 2)
            g.set("table", NaiveReference.rotaryTable(positions: s.positions, headDim: s.headDim, base: base).map(Float.init))
        }, device: { ws, h in
            let x = try ws.output("x", h["x"]), table = try ws.input("table", h["table"])
            return ws.instance { ws.device.rotary(x, table: table, shape: s, inverse: inverse) }
        }, reference: { h in
            ["x": NaiveReference.rotary(h.d("x"), table: h.d("table"), shape: s, inverse: inverse)]
        })
    }

    // MARK: - SwiGLU and GELU

    /// gate uniform in ±range (wide: the sigmoid saturates); `nan` puts NaN into a few gates.
    static func swigluForward(count n: Int, range: Float = 4, nan: Bool = false) -> OpCase {
        CaseBuilder.make(.swigluForward, "n=\(n) gate=±\(range)" + (nan ? " NaN" : ""), flops: Double(6 * n), bytes: bytes(3 * n),
                         inputs: { g in
            var gate = g.uniform("gate", n, -range, range)
            if nan { for i in stride(from: 3, to: n, by: 41) { gate[i] = .nan } }
            g.set("gate", gate)
            g.uniform("up", n, -2, 2); g.uniform("out", n, -1, 1)
        }, device: { ws, h in
            let gate = try ws.input("gate", h["gate"]), up = try ws.input("up", h["up"]), out = try ws.output("out", h["out"])
            return ws.instance { ws.device.swigluForward(gate: gate, up: up, out: out, count: n) }
        }, reference: { h in
            ["out": NaiveReference.swigluForward(gate: h.d("gate"), up: h.d("up"))]
        })
    }

    static func swigluBackward(count n: Int, range: Float = 4) -> OpCase {
        CaseBuilder.make(.swigluBackward, "n=\(n) gate=±\(range)", flops: Double(10 * n), bytes: bytes(5 * n), inputs: { g in
            g.uniform("gate", n, -range, range); g.uniform("up", n, -2, 2); g.uniform("dOut", n, -1, 1)
            g.uniform("dGate", n, -1, 1); g.uniform("dUp", n, -1, 1)
        }, device: { ws, h in
            let gate = try ws.input("gate", h["gate"]), up = try ws.input("up", h["up"]), d = try ws.input("dOut", h["dOut"])
            let dg = try ws.output("dGate", h["dGate"]), du = try ws.output("dUp", h["dUp"])
            return ws.instance { ws.device.swigluBackward(dOut: d, gate: gate, up: up, dGate: dg, dUp: du, count: n) }
        }, reference: { h in
            let r = NaiveReference.swigluBackward(dOut: h.d("dOut"), gate: h.d("gate"), up: h.d("up"))
            return ["dGate": r.dGate, "dUp": r.dUp]
        })
    }

    /// x uniform in ±range; `inPlace` writes over x; `nan` puts NaN into a few inputs.
    static func geluForward(count n: Int, range: Float = 5, inPlace: Bool = false, nan: Bool = false) -> OpCase {
        CaseBuilder.make(.geluForward, "n=\(n) x=±\(range)" + (inPlace ? " in place" : "") + (nan ? " NaN" : ""), flops: Double(8 * n),
                         bytes: bytes(2 * n), inputs: { g in
            var x = g.uniform("x", n, -range, range)
            if nan { for i in stride(from: 2, to: n, by: 37) { x[i] = .nan } }
            g.set("x", x)
            g.uniform("out", n, -1, 1)
        }, device: { ws, h in
            if inPlace {
                let x = try ws.output("out", h["x"])
                return ws.instance { ws.device.geluForward(x, out: x) }
            }
            let x = try ws.input("x", h["x"]), out = try ws.output("out", h["out"])
            return ws.instance { ws.device.geluForward(x, out: out) }
        }, reference: { h in
            ["out": NaiveReference.geluForward(h.d("x"))]
        })
    }

    static func geluBackward(count n: Int, range: Float = 5, inPlace: Bool = false) -> OpCase {
        CaseBuilder.make(.geluBackward, "n=\(n) x=±\(range)" + (inPlace ? " dX=dOut" : ""), flops: Double(12 * n), bytes: bytes(3 * n),
                         inputs: { g in
            g.uniform("x", n, -range, range); g.uniform("dOut", n, -1, 1); g.uniform("dX", n, -1, 1)
        }, device: { ws, h in
            let x = try ws.input("x", h["x"])
            if inPlace {
                let d = try ws.output("dX", h["dOut"])
                return ws.instance { ws.device.geluBackward(d, input: x, dX: d) }
            }
            let d = try ws.input("dOut", h["dOut"]), dx = try ws.output("dX", h["dX"])
            return ws.instance { ws.device.geluBackward(d, input: x, dX: dx) }
        }, reference: { h in
            ["dX": NaiveReference.geluBackward(dOut: h.d("dOut"), x: h.d("x"))]
        })
    }

    // MARK: - learned positions

    /// dTable (≥ T rows) accumulates from a seeded start; `low` 0 makes every sum same-signed.
    static func positionBackward(batch B: Int, time T: Int, channels C: Int, context: Int? = nil, low: Float = -1) -> OpCase {
        let P = context ?? T, N = B * T
        return CaseBuilder.make(.positionBackward, "B=\(B) T=\(T) C=\(C) context=\(P)" + (low != -1 ? " dOut≥\(low)" : ""),
                                flops: Double(N * C), bytes: bytes(N * C + 2 * T * C), inputs: { g in
            g.uniform("dOut", N * C, low, 1); g.uniform("dTable", P * C, -1, 1)
        }, device: { ws, h in
            let d = try ws.input("dOut", h["dOut"]), dt = try ws.output("dTable", h["dTable"])
            return ws.instance { ws.device.positionBackward(dOut: d, dTable: dt, batch: B, time: T, channels: C) }
        }, reference: { h in
            ["dTable": NaiveReference.positionBackward(dOut: h.d("dOut"), dTable: h.d("dTable"), batch: B, time: T, channels: C)]
        })
    }

    // MARK: - the table's rows

    /// Small and awkward shapes of the family ops, and grouped-query attention.
    static let familyParity: [OpCase] = {
        var c: [OpCase] = []
        for (n, ch, off, spread) in [(8, 32, Float(0), Float(2)), (5, 13, 0, 2), (1, 1, 0, 2), (67, 128, 0, 2), (4, 16, 0, 0.003)] {
            // (67,128): CPU row chunks; spread 0.003: mean(x²) ≈ ε, so a wrong ε shows.
            c += [rmsNormForward(rows: n, columns: ch, offset: off, spread: spread),
                  rmsNormBackward(rows: n, columns: ch, offset: off, spread: spread)]
        }
        c += [rmsNormForward(rows: 6, columns: 24, epsilon: 1e-6), layerNormForward(rows: 6, columns: 24, spread: 0.003, epsilon: 1e-3)]
        for (s, base) in [(RotaryShape(batch: 2, time: 5, heads: 3, headDim: 8), 10_000.0),
                          (RotaryShape(batch: 1, time: 7, heads: 1, headDim: 2), 100.0),                       // one pair
                          (RotaryShape(batch: 3, time: 1, heads: 2, headDim: 64, positionOffset: 300), 100_000.0), // decode at 300
                          (RotaryShape(batch: 2, time: 9, heads: 4, headDim: 6, positionOffset: 4), 10_000.0)] {  // prefill at 4
            c += [rotary(s, base: base, inverse: false), rotary(s, base: base, inverse: true)]
        }
        c += [swigluForward(count: 37), swigluForward(count: 1000, range: 30, nan: true), swigluForward(count: 1),
              swigluBackward(count: 37), swigluBackward(count: 1000, range: 30),
              geluForward(count: 37), geluForward(count: 1000, range: 12, nan: true), geluForward(count: 64, inPlace: true),
              geluBackward(count: 37), geluBackward(count: 1000, range: 12, inPlace: true),
              positionBackward(batch: 3, time: 5, channels: 7, context: 9), positionBackward(batch: 1, time: 1, channels: 3),
              embeddingForward(batch: 2, time: 5, channels: 6, vocabulary: 11, positions: false)]
        let gqa: [(AttentionShape, Float)] = [
            (AttentionShape(batch: 2, time: 9, heads: 6, headDim: 8, kvHeads: 2), 1),           // groups of 3
            (AttentionShape(batch: 1, time: 40, heads: 4, headDim: 16, kvHeads: 1), 1.5),       // multi-query, crosses a tile
            (AttentionShape(batch: 2, time: 5, heads: 9, headDim: 64, kvHeads: 3), 1),          // SmolLM2's heads, hd 64
        ]
        for (s, r) in gqa { c += [attentionForward(s, range: r), attentionBackward(s, range: r)] }
        c += [attentionForward(AttentionShape(batch: 2, time: 1, heads: 4, headDim: 8, kvHeads: 2, queryOffset: 11, kvRows: 20)),  // cache
              attentionForward(AttentionShape(batch: 1, time: 6, heads: 6, headDim: 4, kvHeads: 3, queryOffset: 5))]               // prefill
        return c
    }()

    /// SmolLM2-135M at T = 512 (d 576, 9 heads of 64, 3 key/value heads, FFN 1536, vocabulary
    /// 49,152; a batch of 4 sequences for the per-token ops).
    static let familyPerf: [OpCase] = {
        let B = 4, T = 512, C = 576, F = 1536, V = 49_152, H = 9, KVH = 3, hd = 64, N = B * T
        func g(_ s: GemmShape) -> OpCase { gemm(s, poisonPadding: false) }
        return [
            g(GemmShape(m: N, n: C, k: C, transposeB: true)),                       // q/o projection
            g(GemmShape(m: N, n: KVH * hd, k: C, transposeB: true)),                // k/v projection (192)
            g(GemmShape(m: N, n: F, k: C, transposeB: true)),                       // gate/up
            g(GemmShape(m: N, n: C, k: F, transposeB: true)),                       // down
            rmsNormForward(rows: N, columns: C), rmsNormBackward(rows: N, columns: C),
            rotary(RotaryShape(batch: B, time: T, heads: H, headDim: hd), base: 100_000, inverse: false),
            rotary(RotaryShape(batch: B, time: T, heads: H, headDim: hd), base: 100_000, inverse: true),
            swigluForward(count: N * F), swigluBackward(count: N * F),
            geluForward(count: N * F), geluBackward(count: N * F, inPlace: true),
            attentionForward(AttentionShape(batch: B, time: T, heads: H, headDim: hd, kvHeads: KVH)),
            attentionBackward(AttentionShape(batch: B, time: T, heads: H, headDim: hd, kvHeads: KVH)),
            attentionForward(AttentionShape(batch: 1, time: 1, heads: H, headDim: hd, kvHeads: KVH, queryOffset: T - 1)),  // decode
            embeddingForward(batch: B, time: T, channels: C, vocabulary: V, positions: false),
            embeddingBackward(batch: B, time: T, channels: C, vocabulary: V),
            positionBackward(batch: B, time: T, channels: C, context: 1024),
        ]
    }()
}
