// Case builders for the packed-weight ops (inference with --core-dtype f16|bf16|q8): gemmPacked
// and embeddingForwardPacked. The weights are drawn in f32, rounded to the format on the host and
// uploaded packed; the reference reads the same packed values in Double, so a case checks the
// device's unpacking and arithmetic, not the rounding (HalfWeightTests and Q8WeightTests do that).
// For q8 the reference also rounds A's rows to q8 (the op's contract) with the host's rounding.

import MPOKit

extension OpCases {
    /// Packed `format` values of (rows, columns) uniform values in [-1, 1), as the Float bit patterns of the buffer.
    static func packedWeights(_ g: inout InputGenerator, _ name: String, rows: Int, columns: Int, _ format: WeightDType) {
        let v = g.uniform(name + ".f32", rows * columns, -1, 1)
        let packed = v.withUnsafeBufferPointer { PackedMatrix.pack($0, columns: columns, format: format) }
        g.set(name, packed.map { Float(bitPattern: UInt32(bitPattern: $0)) })
    }

    /// The packed values of `name` in Double: widened halves, or q8 quants times their scales.
    static func unpacked(_ packed: [Float], rows: Int, columns: Int, _ format: WeightDType) -> [Double] {
        guard format == .q8 else { return PackedMatrix.unpack(packed, count: rows * columns, columns: columns, format: format).map(Double.init) }
        let kp = PackedMatrix.paddedColumns(columns), nb = kp / PackedMatrix.q8Block
        return packed.withUnsafeBytes { raw in
            let q = raw.bindMemory(to: Int8.self), scales = UnsafeRawBufferPointer(rebasing: raw[(rows * kp)...]).bindMemory(to: Float.self)
            return (0..<(rows * columns)).map { e in
                let r = e / columns, i = e % columns
                return Double(q[r * kp + i]) * Double(scales[r * nb + i / PackedMatrix.q8Block])
            }
        }
    }

    static func unpacked(_ h: HostInputs, _ name: String, rows: Int, columns: Int, _ format: WeightDType) -> [Double] {
        unpacked(h[name], rows: rows, columns: columns, format)
    }

    /// A (m, k) as the q8 product reads it: each row rounded to q8 block by block (in Double).
    static func roundedRows(_ a: [Float], rows: Int, columns: Int) -> [Double] {
        let packed = a.withUnsafeBufferPointer { PackedMatrix.pack($0, columns: columns, format: .q8) }
        return unpacked(packed.map { Float(bitPattern: UInt32(bitPattern: $0)) }, rows: rows, columns: columns, .q8)
    }

    /// C (m, n) = alpha·A (m, k)·Bᵀ + beta·C with B (n, k) in `format`.
    static func gemmPacked(m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0, format: WeightDType) -> OpCase {
        let s = GemmShape(m: m, n: n, k: k, transposeB: true, alpha: alpha, beta: beta)
        let vars = "\(format.rawValue) m=\(m) n=\(n) k=\(k) alpha=\(alpha) beta=\(beta)"
        let traffic = Double(n * k) * format.bytesPerWeight + bytes(m * k + m * n * (beta == 0 ? 1 : 2))
        return CaseBuilder.make(.gemmPacked, vars, flops: s.flops, bytes: traffic, inputs: { g in
            g.uniform("a", m * k, -1, 1)
            packedWeights(&g, "b", rows: n, columns: k, format)
            g.uniform("c", m * n, -1, 1)
        }, device: { ws, h in
            let a = try ws.input("a", h["a"]), c = try ws.output("c", h["c"])
            let b = PackedMatrix(name: "b", storage: try ws.input("b", h["b"]), rows: n, columns: k, format: format)
            return ws.instance { ws.device.gemmPacked(s, a: a, b: b, c: c) }
        }, reference: { h in
            let a = format == .q8 ? roundedRows(h["a"], rows: m, columns: k) : h.d("a")
            return ["c": NaiveReference.gemm(s, a: a, b: unpacked(h, "b", rows: n, columns: k, format), c: h.d("c"))]
        })
    }

    static func embeddingForwardPacked(batch B: Int, time T: Int, channels C: Int, vocabulary V: Int, positions withPositions: Bool,
                                     format: WeightDType) -> OpCase {
        let N = B * T
        return CaseBuilder.make(.embeddingForwardPacked, "\(format.rawValue) B=\(B) T=\(T) C=\(C) V=\(V)" + (withPositions ? "" : " no positions"),
                                flops: Double(N * C), bytes: bytes(N + 2 * N * C) + Double(N * C) * format.bytesPerWeight, inputs: { g in
            g.ids("tokens", N, below: V)
            packedWeights(&g, "table", rows: V, columns: C, format)
            g.uniform("positions", T * C, -1, 1); g.uniform("out", N * C, -1, 1)
        }, device: { ws, h in
            let tok = try ws.input("tokens", h.ints["tokens"]!)
            let table = PackedMatrix(name: "table", storage: try ws.input("table", h["table"]), rows: V, columns: C, format: format)
            let pos = withPositions ? try ws.input("positions", h["positions"]) : nil, out = try ws.output("out", h["out"])
            return ws.instance {
                ws.device.embeddingForwardPacked(tokens: tok, table: table, positions: pos, out: out, batch: B, time: T, channels: C)
            }
        }, reference: { h in
            ["out": NaiveReference.embeddingForward(tokens: h.i("tokens"), table: unpacked(h, "table", rows: V, columns: C, format),
                                                    positions: withPositions ? h.d("positions") : nil, batch: B, time: T, channels: C)]
        })
    }

    /// Odd and even row lengths (a row of halves may start mid-element), k below, at and above
    /// the 16-wide vector loop and q8's blocks of 32 (a row's last block partial), batch 1 (the
    /// fused GEMV) and more rows than one block of 64 W rows, accumulation.
    static let packedParity: [OpCase] = {
        var c: [OpCase] = []
        for format in [WeightDType.f16, .bf16, .q8] {
            for (m, n, k) in [(1, 1, 1), (1, 7, 33), (1, 37, 100), (1, 300, 576), (3, 5, 17), (17, 70, 64), (65, 130, 31)] {
                c.append(gemmPacked(m: m, n: n, k: k, format: format))
            }
            c += [
                gemmPacked(m: 1, n: 9, k: 40, alpha: -0.5, beta: 1, format: format),       // accumulate at batch 1
                gemmPacked(m: 5, n: 67, k: 40, alpha: 2, beta: 1, format: format),         // accumulate across blocks
                embeddingForwardPacked(batch: 2, time: 5, channels: 13, vocabulary: 11, positions: true, format: format),
                embeddingForwardPacked(batch: 1, time: 3, channels: format == .q8 ? 40 : 16, vocabulary: 7, positions: false,
                                       format: format),   // q8: a whole block and a partial one
            ]
        }
        return c
    }()

    /// SmolLM2-135M's shapes at batch 1 (decode) and 32 (prefill), f16 and q8.
    static let packedPerf: [OpCase] = [
        gemmPacked(m: 1, n: 1536, k: 576, format: .f16),      // gate/up
        gemmPacked(m: 1, n: 576, k: 1536, format: .f16),      // down
        gemmPacked(m: 1, n: 49_152, k: 576, format: .f16),    // tied head
        gemmPacked(m: 32, n: 1536, k: 576, format: .f16),     // prefill of 32
        embeddingForwardPacked(batch: 1, time: 32, channels: 576, vocabulary: 49_152, positions: false, format: .f16),
        gemmPacked(m: 1, n: 1536, k: 576, format: .q8),
        gemmPacked(m: 1, n: 576, k: 1536, format: .q8),
        gemmPacked(m: 1, n: 49_152, k: 576, format: .q8),
        gemmPacked(m: 32, n: 1536, k: 576, format: .q8),
    ]
}
