// Case builders for the 16-bit weight ops (inference with --core-dtype f16|bf16): gemmHalf and
// embeddingForwardHalf. The weights are drawn in f32, rounded to the format on the host and
// uploaded packed (two per element); the reference widens the same packed values in Double, so
// a case checks the device's widening and f32 arithmetic, not the rounding (HalfTests do that).

import MPOKit

extension OpCases {
    /// Packed halves of `count` uniform values in [-1, 1), as the Float bit patterns of the buffer.
    static func packedHalves(_ g: inout InputGenerator, _ name: String, _ count: Int, _ format: WeightDType) {
        let v = g.uniform(name + ".f32", count, -1, 1)
        let packed = v.withUnsafeBufferPointer { HalfMatrix.pack($0, format: format) }
        g.set(name, packed.map { Float(bitPattern: UInt32(bitPattern: $0)) })
    }

    /// The packed halves of `name` widened to Double.
    static func widened(_ h: HostInputs, _ name: String, _ count: Int, _ format: WeightDType) -> [Double] {
        HalfMatrix.unpack(h[name], count: count, format: format).map(Double.init)
    }

    /// C (m, n) = alpha·A (m, k)·Bᵀ + beta·C with B (n, k) in `format`.
    static func gemmHalf(m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0, format: WeightDType) -> OpCase {
        let s = GemmShape(m: m, n: n, k: k, transposeB: true, alpha: alpha, beta: beta)
        let vars = "\(format.rawValue) m=\(m) n=\(n) k=\(k) alpha=\(alpha) beta=\(beta)"
        let traffic = Double(2 * n * k) + bytes(m * k + m * n * (beta == 0 ? 1 : 2))
        return CaseBuilder.make(.gemmHalf, vars, flops: s.flops, bytes: traffic, inputs: { g in
            g.uniform("a", m * k, -1, 1)
            packedHalves(&g, "b", n * k, format)
            g.uniform("c", m * n, -1, 1)
        }, device: { ws, h in
            let a = try ws.input("a", h["a"]), c = try ws.output("c", h["c"])
            let b = HalfMatrix(name: "b", storage: try ws.input("b", h["b"]), rows: n, columns: k, format: format)
            return ws.instance { ws.device.gemmHalf(s, a: a, b: b, c: c) }
        }, reference: { h in
            ["c": NaiveReference.gemm(s, a: h.d("a"), b: widened(h, "b", n * k, format), c: h.d("c"))]
        })
    }

    static func embeddingForwardHalf(batch B: Int, time T: Int, channels C: Int, vocabulary V: Int, positions withPositions: Bool,
                                     format: WeightDType) -> OpCase {
        let N = B * T
        return CaseBuilder.make(.embeddingForwardHalf, "\(format.rawValue) B=\(B) T=\(T) C=\(C) V=\(V)" + (withPositions ? "" : " no positions"),
                                flops: Double(N * C), bytes: bytes(N + 2 * N * C) + Double(2 * N * C), inputs: { g in
            g.ids("tokens", N, below: V)
            packedHalves(&g, "table", V * C, format)
            g.uniform("positions", T * C, -1, 1); g.uniform("out", N * C, -1, 1)
        }, device: { ws, h in
            let tok = try ws.input("tokens", h.ints["tokens"]!)
            let table = HalfMatrix(name: "table", storage: try ws.input("table", h["table"]), rows: V, columns: C, format: format)
            let pos = withPositions ? try ws.input("positions", h["positions"]) : nil, out = try ws.output("out", h["out"])
            return ws.instance {
                ws.device.embeddingForwardHalf(tokens: tok, table: table, positions: pos, out: out, batch: B, time: T, channels: C)
            }
        }, reference: { h in
            ["out": NaiveReference.embeddingForward(tokens: h.i("tokens"), table: widened(h, "table", V * C, format),
                                                    positions: withPositions ? h.d("positions") : nil, batch: B, time: T, channels: C)]
        })
    }

    /// Odd and even row lengths (a row of halves may start mid-element), k below, at and above
    /// the 16-wide vector loop, batch 1 (the fused GEMV) and more rows (widen + sgemm blocks of 64).
    static let halfParity: [OpCase] = {
        var c: [OpCase] = []
        for format in [WeightDType.f16, .bf16] {
            for (m, n, k) in [(1, 1, 1), (1, 7, 33), (1, 37, 100), (1, 300, 576), (3, 5, 17), (17, 70, 64), (65, 130, 31)] {
                c.append(gemmHalf(m: m, n: n, k: k, format: format))
            }
            c += [
                gemmHalf(m: 1, n: 9, k: 40, alpha: -0.5, beta: 1, format: format),       // accumulate at batch 1
                gemmHalf(m: 5, n: 67, k: 40, alpha: 2, beta: 1, format: format),         // accumulate across blocks
                embeddingForwardHalf(batch: 2, time: 5, channels: 13, vocabulary: 11, positions: true, format: format),
                embeddingForwardHalf(batch: 1, time: 3, channels: 16, vocabulary: 7, positions: false, format: format),
            ]
        }
        return c
    }()

    /// SmolLM2-135M's shapes at batch 1 (decode) and 32 (prefill), f16.
    static let halfPerf: [OpCase] = [
        gemmHalf(m: 1, n: 1536, k: 576, format: .f16),      // gate/up
        gemmHalf(m: 1, n: 576, k: 1536, format: .f16),      // down
        gemmHalf(m: 1, n: 49_152, k: 576, format: .f16),    // tied head
        gemmHalf(m: 32, n: 1536, k: 576, format: .f16),     // prefill of 32
        embeddingForwardHalf(batch: 1, time: 32, channels: 576, vocabulary: 49_152, positions: false, format: .f16),
    ]
}
