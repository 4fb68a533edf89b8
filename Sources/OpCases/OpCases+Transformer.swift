// Case builders for the transformer and optimiser ops: embedding, LayerNorm, causal attention,
// cross-entropy, sumOfSquares and AdamW (forward and backward where there is one).
//
// Backward cases whose inputs are another op's outputs (LayerNorm mean/rstd, attention out/lse)
// get them by running the forward op on the same device during `prepare`, as llm.c's dev files
// do; those tensors are then frozen as read-only inputs. The naive reference recomputes them in
// Double from the same seeded inputs.
// Not here: which shapes are in the table (OpCases.swift).

import MPOKit

extension OpCases {
    // MARK: - embedding

    /// `context` ≥ time rows of positions (only the first `time` are read); `positions` false: the
    /// table rows alone (rotary models).
    static func embeddingForward(batch B: Int, time T: Int, channels C: Int, vocabulary V: Int, context: Int? = nil,
                                 positions withPositions: Bool = true) -> OpCase {
        let P = context ?? T, N = B * T
        return CaseBuilder.make(.embeddingForward, "B=\(B) T=\(T) C=\(C) V=\(V) " + (withPositions ? "context=\(P)" : "no positions"),
                                flops: Double(N * C), bytes: bytes(N + 3 * N * C), inputs: { g in
            g.ids("tokens", N, below: V)
            g.uniform("table", V * C, -1, 1); g.uniform("positions", P * C, -1, 1); g.uniform("out", N * C, -1, 1)
        }, device: { ws, h in
            let tok = try ws.input("tokens", h.ints["tokens"]!), table = try ws.input("table", h["table"])
            let pos = withPositions ? try ws.input("positions", h["positions"]) : nil, out = try ws.output("out", h["out"])
            return ws.instance {
                ws.device.embeddingForward(tokens: tok, table: table, positions: pos, out: out, batch: B, time: T, channels: C)
            }
        }, reference: { h in
            ["out": NaiveReference.embeddingForward(tokens: h.i("tokens"), table: h.d("table"),
                                                    positions: withPositions ? h.d("positions") : nil, batch: B, time: T, channels: C)]
        })
    }

    static func embeddingBackward(batch B: Int, time T: Int, channels C: Int, vocabulary V: Int, low: Float = -1) -> OpCase {
        let N = B * T
        return CaseBuilder.make(.embeddingBackward, "B=\(B) T=\(T) C=\(C) V=\(V)" + (low != -1 ? " dOut≥\(low)" : ""), flops: Double(N * C),
                                bytes: bytes(N + 3 * N * C), inputs: { g in
            g.ids("tokens", N, below: V)
            g.uniform("dOut", N * C, low, 1)
            g.uniform("dTable", V * C, -1, 1)   // accumulates: non-zero start
        }, device: { ws, h in
            let tok = try ws.input("tokens", h.ints["tokens"]!), d = try ws.input("dOut", h["dOut"])
            let dt = try ws.output("dTable", h["dTable"])
            return ws.instance { ws.device.embeddingBackward(dOut: d, tokens: tok, dTable: dt, batch: B, time: T, channels: C) }
        }, reference: { h in
            ["dTable": NaiveReference.embeddingBackward(dOut: h.d("dOut"), tokens: h.i("tokens"), dTable: h.d("dTable"),
                                                        batch: B, time: T, channels: C)]
        })
    }

    // MARK: - LayerNorm

    /// x is uniform in offset ± spread (a large offset punishes a one-pass E[x²] − E[x]² variance,
    /// a small spread makes the variance comparable to eps).
    private static func layerNormInputs(_ g: inout InputGenerator, rows N: Int, columns C: Int, offset: Float, spread: Float) {
        g.uniform("x", N * C, offset - spread, offset + spread)
        g.uniform("weight", C, -1.5, 1.5); g.uniform("bias", C, -1, 1)
        g.uniform("out", N * C, -1, 1); g.uniform("mean", N, -1, 1); g.uniform("rstd", N, -1, 1)
    }

    /// Uploads x/weight/bias and pre-filled out/mean/rstd; returns the views.
    private static func layerNormViews(_ ws: Workspace, _ h: HostInputs) throws
        -> (x: TensorView, w: TensorView, b: TensorView, out: TensorView, mean: TensorView, rstd: TensorView) {
        (try ws.input("x", h["x"]), try ws.input("weight", h["weight"]), try ws.input("bias", h["bias"]),
         try ws.output("out", h["out"]), try ws.output("mean", h["mean"]), try ws.output("rstd", h["rstd"]))
    }

    static func layerNormForward(rows N: Int, columns C: Int, offset: Float = 0, spread: Float = 2, epsilon: Double = 1e-5) -> OpCase {
        CaseBuilder.make(.layerNormForward, "N=\(N) C=\(C) x=\(offset)±\(spread)" + (epsilon != 1e-5 ? " ε=\(epsilon)" : ""),
                         flops: Double(8 * N * C), bytes: bytes(2 * N * C + 2 * C + 2 * N), inputs: { g in
            layerNormInputs(&g, rows: N, columns: C, offset: offset, spread: spread)
        }, device: { ws, h in
            let v = try layerNormViews(ws, h)
            return ws.instance {
                ws.device.layerNormForward(v.x, weight: v.w, bias: v.b, out: v.out, mean: v.mean, rstd: v.rstd, rows: N, columns: C,
                                           epsilon: epsilon)
            }
        }, reference: { h in
            let r = NaiveReference.layerNormForward(h.d("x"), weight: h.d("weight"), bias: h.d("bias"), rows: N, columns: C,
                                                    epsilon: epsilon)
            return ["out": r.out, "mean": r.mean, "rstd": r.rstd]
        })
    }

    /// mean/rstd come from layerNormForward on the same device; dInput, dWeight and dBias all
    /// accumulate, so they start from seeded non-zero values.
    static func layerNormBackward(rows N: Int, columns C: Int, offset: Float = 0, spread: Float = 2) -> OpCase {
        CaseBuilder.make(.layerNormBackward, "N=\(N) C=\(C) x=\(offset)±\(spread)",
                         flops: Double(14 * N * C), bytes: bytes(4 * N * C + 5 * C + 2 * N), inputs: { g in
            layerNormInputs(&g, rows: N, columns: C, offset: offset, spread: spread)
            g.uniform("dOut", N * C, -1, 1)
            g.uniform("dInput", N * C, -1, 1); g.uniform("dWeight", C, -1, 1); g.uniform("dBias", C, -1, 1)
        }, device: { ws, h in
            let v = try layerNormViews(ws, h)
            ws.device.layerNormForward(v.x, weight: v.w, bias: v.b, out: v.out, mean: v.mean, rstd: v.rstd, rows: N, columns: C)
            try ws.device.synchronize()
            for name in ["out", "mean", "rstd"] { try ws.freeze(name) }
            let d = try ws.input("dOut", h["dOut"]), dx = try ws.output("dInput", h["dInput"])
            let dw = try ws.output("dWeight", h["dWeight"]), db = try ws.output("dBias", h["dBias"])
            return ws.instance {
                ws.device.layerNormBackward(dOut: d, input: v.x, weight: v.w, mean: v.mean, rstd: v.rstd,
                                            dInput: dx, dWeight: dw, dBias: db, rows: N, columns: C)
            }
        }, reference: { h in
            let r = NaiveReference.layerNormBackward(dOut: h.d("dOut"), x: h.d("x"), weight: h.d("weight"),
                                                     dInput: h.d("dInput"), dWeight: h.d("dWeight"), dBias: h.d("dBias"),
                                                     rows: N, columns: C)
            return ["dInput": r.dInput, "dWeight": r.dWeight, "dBias": r.dBias]
        })
    }

    // MARK: - attention

    private static func attentionInputs(_ g: inout InputGenerator, _ s: AttentionShape, range r: Float) {
        let n = s.tokens * s.channels, kv = s.batch * s.kvRows * s.kvChannels   // k, v: (B, kvRows ≥ queryOffset + T, KVH·hd)
        g.uniform("q", n, -r, r); g.uniform("k", kv, -r, r); g.uniform("v", kv, -1, 1)
        g.uniform("out", n, -1, 1); g.uniform("lse", s.batch * s.heads * s.time, -1, 1)
    }

    private static func attentionViews(_ ws: Workspace, _ h: HostInputs) throws
        -> (q: TensorView, k: TensorView, v: TensorView, out: TensorView, lse: TensorView) {
        (try ws.input("q", h["q"]), try ws.input("k", h["k"]), try ws.input("v", h["v"]),
         try ws.output("out", h["out"]), try ws.output("lse", h["lse"]))
    }

    /// q and k uniform in ±range (a wider range gives peakier softmax rows). queryOffset > 0 is
    /// the KV-cache decode form (k, v longer than q).
    static func attentionForward(_ s: AttentionShape, range: Float = 1) -> OpCase {
        let n = s.tokens * s.channels, kv = s.batch * s.kvRows * s.kvChannels
        let vars = "B=\(s.batch) T=\(s.time) H=\(s.heads)" + (s.kvHeads != s.heads ? " KVH=\(s.kvHeads)" : "") + " hd=\(s.headDim) qk=±\(range)"
            + (s.queryOffset > 0 ? " offset=\(s.queryOffset)" : "") + (s.kvRows > s.keys ? " kvRows=\(s.kvRows)" : "")
        return CaseBuilder.make(.attentionForward, vars, flops: s.forwardFlops,
                                bytes: bytes(2 * n + 2 * kv + s.batch * s.heads * s.time), inputs: { g in
            attentionInputs(&g, s, range: range)
        }, device: { ws, h in
            let v = try attentionViews(ws, h)
            return ws.instance { ws.device.attentionForward(s, q: v.q, k: v.k, v: v.v, out: v.out, lse: v.lse) }
        }, reference: { h in
            let r = NaiveReference.attentionForward(s, q: h.d("q"), k: h.d("k"), v: h.d("v"))
            return ["out": r.out, "lse": r.lse]
        })
    }

    /// out and lse come from attentionForward on the same device; dq, dk, dv are overwritten
    /// (pre-filled with garbage).
    static func attentionBackward(_ s: AttentionShape, range: Float = 1) -> OpCase {
        let n = s.tokens * s.channels, kv = s.tokens * s.kvChannels
        let vars = "B=\(s.batch) T=\(s.time) H=\(s.heads)" + (s.kvHeads != s.heads ? " KVH=\(s.kvHeads)" : "") + " hd=\(s.headDim) qk=±\(range)"
        return CaseBuilder.make(.attentionBackward, vars,
                                flops: 2.5 * s.forwardFlops, bytes: bytes(5 * n + 5 * kv + s.batch * s.heads * s.time), inputs: { g in
            attentionInputs(&g, s, range: range)
            g.uniform("dOut", n, -1, 1)
            g.uniform("dq", n, -1, 1); g.uniform("dk", kv, -1, 1); g.uniform("dv", kv, -1, 1)
        }, device: { ws, h in
            let v = try attentionViews(ws, h)
            ws.device.attentionForward(s, q: v.q, k: v.k, v: v.v, out: v.out, lse: v.lse)
            try ws.device.synchronize()
            try ws.freeze("out"); try ws.freeze("lse")
            let d = try ws.input("dOut", h["dOut"])
            let dq = try ws.output("dq", h["dq"]), dk = try ws.output("dk", h["dk"]), dv = try ws.output("dv", h["dv"])
            return ws.instance {
                ws.device.attentionBackward(s, dOut: d, q: v.q, k: v.k, v: v.v, out: v.out, lse: v.lse, dq: dq, dk: dk, dv: dv)
            }
        }, reference: { h in
            let r = NaiveReference.attentionBackward(s, dOut: h.d("dOut"), q: h.d("q"), k: h.d("k"), v: h.d("v"))
            return ["dq": r.dq, "dk": r.dk, "dv": r.dv]
        })
    }

    // MARK: - cross-entropy

    enum LogitGradient: String, Sendable {
        case none          // eval-only pass: dLogits nil
        case separate      // dLogits in its own buffer
        case inPlace       // dLogits aliases logits
    }

    /// `ties`: logits are the integers −1…1, so rows have several maximal entries and the
    /// first-max-wins rule of `correct` is exercised; otherwise uniform in ±range.
    static func crossEntropy(rows N: Int, vocabulary V: Int, range: Float = 4, ties: Bool = false,
                             gradient: LogitGradient = .separate, gradScale: Float = 1) -> OpCase {
        let vars = "N=\(N) V=\(V) " + (ties ? "logits∈{-1,0,1}" : "logits=±\(range)")
            + " dLogits=\(gradient.rawValue)" + (gradient == .none ? "" : " scale=\(gradScale)")
        return CaseBuilder.make(.crossEntropy, vars, flops: Double(5 * N * V),
                                bytes: bytes(N * V * (gradient == .none ? 1 : 2) + 3 * N), inputs: { g in
            if ties { g.integers("logits", N * V, -1, 1) } else { g.uniform("logits", N * V, -range, range) }
            g.ids("targets", N, below: V)
            g.uniform("losses", N, -1, 1); g.uniform("correct", N, 2, 3); g.uniform("dLogits", N * V, -1, 1)
        }, device: { ws, h in
            let tg = try ws.input("targets", h.ints["targets"]!)
            let losses = try ws.output("losses", h["losses"]), correct = try ws.output("correct", h["correct"])
            let logits: TensorView, dLogits: TensorView?
            switch gradient {
            case .none: logits = try ws.input("logits", h["logits"]); dLogits = nil
            case .separate: logits = try ws.input("logits", h["logits"]); dLogits = try ws.output("dLogits", h["dLogits"])
            case .inPlace: logits = try ws.output("dLogits", h["logits"]); dLogits = logits
            }
            return ws.instance {
                ws.device.crossEntropy(logits: logits, targets: tg, losses: losses, correct: correct, dLogits: dLogits,
                                       gradScale: gradScale, rows: N, vocabulary: V)
            }
        }, reference: { h in
            let r = NaiveReference.crossEntropy(logits: h.d("logits"), targets: h.i("targets"), rows: N, vocabulary: V,
                                                gradScale: Double(gradScale))
            var out = ["losses": r.losses, "correct": r.correct]
            if gradient != .none { out["dLogits"] = r.dLogits }
            return out
        })
    }

    // MARK: - distillation

    /// KL(teacher ‖ student) at temperature τ; `withGradient` accumulates into a seeded dLogits.
    static func distillation(rows N: Int, vocabulary V: Int, temperature: Float, range: Float = 4,
                             withGradient: Bool = true, gradScale: Float = 1) -> OpCase {
        let vars = "N=\(N) V=\(V) τ=\(temperature) logits=±\(range)" + (withGradient ? " scale=\(gradScale)" : " no gradient")
        return CaseBuilder.make(.distillation, vars, flops: Double(12 * N * V), bytes: bytes(N * V * (withGradient ? 4 : 2) + N),
                                inputs: { g in
            g.uniform("student", N * V, -range, range); g.uniform("teacher", N * V, -range, range)
            g.uniform("losses", N, -1, 1); g.uniform("dLogits", N * V, -1, 1)
        }, device: { ws, h in
            let s = try ws.input("student", h["student"]), t = try ws.input("teacher", h["teacher"])
            let losses = try ws.output("losses", h["losses"])
            let d = withGradient ? try ws.output("dLogits", h["dLogits"]) : nil
            return ws.instance {
                ws.device.distillation(student: s, teacher: t, losses: losses, dLogits: d, temperature: temperature,
                                       gradScale: gradScale, rows: N, vocabulary: V)
            }
        }, reference: { h in
            let r = NaiveReference.distillation(student: h.d("student"), teacher: h.d("teacher"), dLogits: h.d("dLogits"), rows: N,
                                                vocabulary: V, temperature: Double(temperature), gradScale: Double(gradScale))
            return withGradient ? ["losses": r.losses, "dLogits": r.dLogits] : ["losses": r.losses]
        })
    }

    static func squaredDistance(rows N: Int, columns C: Int, withGradient: Bool = true, gradScale: Float = 0.5) -> OpCase {
        CaseBuilder.make(.squaredDistance, "N=\(N) C=\(C)" + (withGradient ? " scale=\(gradScale)" : " no gradient"),
                         flops: Double(4 * N * C), bytes: bytes(N * C * (withGradient ? 4 : 2) + N), inputs: { g in
            g.uniform("a", N * C, -1, 1); g.uniform("b", N * C, -1, 1)
            g.uniform("sums", N, -1, 1); g.uniform("dA", N * C, -1, 1)
        }, device: { ws, h in
            let a = try ws.input("a", h["a"]), b = try ws.input("b", h["b"]), sums = try ws.output("sums", h["sums"])
            let d = withGradient ? try ws.output("dA", h["dA"]) : nil
            return ws.instance { ws.device.squaredDistance(a, b, sums: sums, dA: d, gradScale: gradScale, rows: N, columns: C) }
        }, reference: { h in
            let r = NaiveReference.squaredDistance(h.d("a"), h.d("b"), dA: h.d("dA"), rows: N, columns: C, gradScale: Double(gradScale))
            return withGradient ? ["sums": r.sums, "dA": r.dA] : ["sums": r.sums]
        })
    }
}
