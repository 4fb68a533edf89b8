// Case builders for the memory, dense and elementwise ops: gemm, permute, fill, copy, addBias,
// biasBackward, addBiasReLU, reluBackwardBias, add, accumulate, scale, reluForward, reluBackward.
//
// Each builder states its inputs (with ranges), the device call on guarded views and the
// naive reference. Overwrite outputs are pre-filled with seeded garbage, so an element the op
// forgets to write shows up as a mismatch; accumulate outputs start from seeded non-zero values.
// Not here: which shapes are in the table (OpCases.swift).

import MPOKit

extension OpCases {
    // MARK: - gemm

    /// A gemm case. Elements of A and B inside the extent that the call must not read (leading
    /// dimension and stride padding) are NaN, so reading them poisons C; C's padding holds
    /// values the call must leave alone. `nanC` fills C with NaN for a beta = 0 call (BLAS
    /// convention: beta 0 means C is not read).
    /// `low`: the lower end of A's and B's uniform range (0 makes every product positive, the hard
    /// case for a Float sum).
    static func gemm(_ s: GemmShape, nanC: Bool = false, poisonPadding: Bool = true, maxNMSE: Double = 1e-7,
                     low: Float = -1) -> OpCase {
        precondition(!nanC || s.beta == 0, "nanC needs beta = 0")
        let vars = "\(s.transposeA ? "T" : "N")\(s.transposeB ? "T" : "N") m=\(s.m) n=\(s.n) k=\(s.k)"
            + " lda=\(s.lda) ldb=\(s.ldb) ldc=\(s.ldc) alpha=\(s.alpha) beta=\(s.beta)"
            + (s.batch > 1 ? " batch=\(s.batch) sA=\(s.strideA) sB=\(s.strideB) sC=\(s.strideC)" : "")
            + (nanC ? " C=NaN" : "") + (low != -1 ? " A,B≥\(low)" : "")
        let itemsA = s.strideA == 0 ? 1 : s.batch, itemsB = s.strideB == 0 ? 1 : s.batch
        let itemsC = s.strideC == 0 ? 1 : s.batch
        let traffic = bytes(itemsA * s.m * s.k + itemsB * s.k * s.n + itemsC * s.m * s.n * (s.beta == 0 ? 1 : 2))
        return CaseBuilder.make(.gemm, vars, maxNMSE: maxNMSE, flops: s.flops, bytes: traffic, inputs: { g in
            var a = g.uniform("a", s.extentA, low, 1)
            var b = g.uniform("b", s.extentB, low, 1)
            if nanC { g.set("c", [Float](repeating: .nan, count: s.extentC)) } else { g.uniform("c", s.extentC, -1, 1) }
            guard poisonPadding else { return }
            var usedA = [Bool](repeating: false, count: a.count), usedB = [Bool](repeating: false, count: b.count)
            for p in 0..<s.batch {
                for i in 0..<s.m { for l in 0..<s.k { usedA[p * s.strideA + (s.transposeA ? l * s.lda + i : i * s.lda + l)] = true } }
                for l in 0..<s.k { for j in 0..<s.n { usedB[p * s.strideB + (s.transposeB ? j * s.ldb + l : l * s.ldb + j)] = true } }
            }
            for i in 0..<a.count where !usedA[i] { a[i] = .nan }
            for i in 0..<b.count where !usedB[i] { b[i] = .nan }
            g.set("a", a); g.set("b", b)
        }, device: { ws, h in
            let a = try ws.input("a", h["a"]), b = try ws.input("b", h["b"]), c = try ws.output("c", h["c"])
            return ws.instance { ws.device.gemm(s, a: a, b: b, c: c) }
        }, reference: { h in
            ["c": NaiveReference.gemm(s, a: h.d("a"), b: h.d("b"), c: h.d("c"))]
        })
    }

    // MARK: - permute

    static func permute(shape: [Int], order: [Int], accumulate: Bool) -> OpCase {
        let n = shape.reduce(1, *)
        let vars = "shape=\(shape) order=\(order) accumulate=\(accumulate)"
        return CaseBuilder.make(.permute, vars, bytes: bytes(n * (accumulate ? 3 : 2)), inputs: { g in
            g.uniform("src", n, -1, 1)
            g.uniform("dst", n, -1, 1)   // garbage to overwrite, or the accumulator's start
        }, device: { ws, h in
            let src = try ws.input("src", h["src"]), dst = try ws.output("dst", h["dst"])
            return ws.instance { ws.device.permute(src, shape: shape, order: order, into: dst, accumulate: accumulate) }
        }, reference: { h in
            ["dst": NaiveReference.permute(h.d("src"), shape: shape, order: order, into: h.d("dst"), accumulate: accumulate)]
        })
    }

    // MARK: - fill, copy

    static func fill(count n: Int, value: Float) -> OpCase {
        CaseBuilder.make(.fill, "n=\(n) value=\(value)", bytes: bytes(n), inputs: { g in
            g.uniform("out", n, -1, 1)
        }, device: { ws, h in
            let out = try ws.output("out", h["out"])
            return ws.instance { ws.device.fill(out, value: value) }
        }, reference: { _ in ["out": [Double](repeating: Double(value), count: n)] })
    }

    static func copy(count n: Int) -> OpCase {
        CaseBuilder.make(.copy, "n=\(n)", bytes: bytes(2 * n), inputs: { g in
            g.uniform("src", n, -1, 1); g.uniform("dst", n, -1, 1)
        }, device: { ws, h in
            let src = try ws.input("src", h["src"]), dst = try ws.output("dst", h["dst"])
            return ws.instance { ws.device.copy(src, to: dst) }
        }, reference: { h in ["dst": h.d("src")] })
    }

    // MARK: - bias

    static func addBias(rows: Int, columns: Int) -> OpCase {
        CaseBuilder.make(.addBias, "rows=\(rows) columns=\(columns)", flops: Double(rows * columns),
                         bytes: bytes(2 * rows * columns + columns), inputs: { g in
            g.uniform("bias", columns, -1, 1); g.uniform("out", rows * columns, -1, 1)
        }, device: { ws, h in
            let bias = try ws.input("bias", h["bias"]), out = try ws.output("out", h["out"])
            return ws.instance { ws.device.addBias(bias, to: out, rows: rows, columns: columns) }
        }, reference: { h in
            ["out": NaiveReference.addBias(h.d("bias"), to: h.d("out"), rows: rows, columns: columns)]
        })
    }

    /// `low`: the lower end of dOut's uniform range (≥ 0: every column sums same-signed values).
    static func biasBackward(rows: Int, columns: Int, low: Float = -1) -> OpCase {
        CaseBuilder.make(.biasBackward, "rows=\(rows) columns=\(columns)" + (low != -1 ? " dOut≥\(low)" : ""), flops: Double(rows * columns),
                         bytes: bytes(rows * columns + 2 * columns), inputs: { g in
            g.uniform("dOut", rows * columns, low, 1)
            g.uniform("dBias", columns, -1, 1)   // accumulates: non-zero start
        }, device: { ws, h in
            let d = try ws.input("dOut", h["dOut"]), db = try ws.output("dBias", h["dBias"])
            return ws.instance { ws.device.biasBackward(d, dBias: db, rows: rows, columns: columns) }
        }, reference: { h in
            ["dBias": NaiveReference.biasBackward(h.d("dOut"), dBias: h.d("dBias"), rows: rows, columns: columns)]
        })
    }

    /// relu(out + bias): `nan` puts NaN into a few outputs (they must stay NaN, as in PyTorch).
    static func addBiasReLU(rows: Int, columns: Int, nan: Bool = false) -> OpCase {
        CaseBuilder.make(.addBiasReLU, "rows=\(rows) columns=\(columns)\(nan ? " NaN" : "")", flops: 2 * Double(rows * columns),
                         bytes: bytes(2 * rows * columns + columns), inputs: { g in
            g.uniform("bias", columns, -1, 1)
            var out = g.uniform("out", rows * columns, -1, 1)
            if nan { for i in stride(from: 5, to: out.count, by: 97) { out[i] = .nan } }
            g.set("out", out)
        }, device: { ws, h in
            let bias = try ws.input("bias", h["bias"]), out = try ws.output("out", h["out"])
            return ws.instance { ws.device.addBiasReLU(bias, to: out, rows: rows, columns: columns) }
        }, reference: { h in
            ["out": NaiveReference.reluForward(NaiveReference.addBias(h.d("bias"), to: h.d("out"), rows: rows, columns: columns))]
        })
    }

    /// dX = dOut·[out > 0] and dBias += Σ_r dX (the ReLU's output `out` made on the host).
    static func reluBackwardBias(rows: Int, columns: Int, inPlace: Bool = false, low: Float = -1) -> OpCase {
        let n = rows * columns
        return CaseBuilder.make(.reluBackwardBias, "rows=\(rows) columns=\(columns)\(inPlace ? " dX=dOut" : "")" + (low != -1 ? " dOut≥\(low)" : ""),
                                flops: 2 * Double(n), bytes: bytes(3 * n + 2 * columns), inputs: { g in
            let x = reluInput(&g, "x", n)
            g.set("out", x.map { max($0, 0) })
            g.uniform("dOut", n, low, 1); g.uniform("dX", n, -1, 1)
            g.uniform("dBias", columns, -1, 1)   // accumulates: non-zero start
        }, device: { ws, h in
            let out = try ws.input("out", h["out"]), db = try ws.output("dBias", h["dBias"])
            if inPlace {
                let d = try ws.output("dX", h["dOut"])
                return ws.instance { ws.device.reluBackwardBias(d, out: out, dX: d, dBias: db, rows: rows, columns: columns) }
            }
            let d = try ws.input("dOut", h["dOut"]), dx = try ws.output("dX", h["dX"])
            return ws.instance { ws.device.reluBackwardBias(d, out: out, dX: dx, dBias: db, rows: rows, columns: columns) }
        }, reference: { h in
            let dx = NaiveReference.reluBackward(h.d("dOut"), out: h.d("out"))
            return ["dX": dx, "dBias": NaiveReference.biasBackward(dx, dBias: h.d("dBias"), rows: rows, columns: columns)]
        })
    }

    // MARK: - elementwise

    enum AddAlias: String, Sendable { case none, a, b }

    /// out = a + b; `alias` makes out the same view as a or b (allowed by the contract).
    static func add(count n: Int, alias: AddAlias = .none) -> OpCase {
        CaseBuilder.make(.add, "n=\(n) out=\(alias == .none ? "new" : alias.rawValue)", flops: Double(n),
                         bytes: bytes(3 * n), inputs: { g in
            g.uniform("a", n, -1, 1); g.uniform("b", n, -1, 1); g.uniform("out", n, -1, 1)
        }, device: { ws, h in
            switch alias {
            case .none:
                let a = try ws.input("a", h["a"]), b = try ws.input("b", h["b"]), out = try ws.output("out", h["out"])
                return ws.instance { ws.device.add(a, b, out: out) }
            case .a:
                let a = try ws.output("out", h["a"]), b = try ws.input("b", h["b"])
                return ws.instance { ws.device.add(a, b, out: a) }
            case .b:
                let a = try ws.input("a", h["a"]), b = try ws.output("out", h["b"])
                return ws.instance { ws.device.add(a, b, out: b) }
            }
        }, reference: { h in ["out": NaiveReference.add(h.d("a"), h.d("b"))] })
    }

    static func accumulate(count n: Int) -> OpCase {
        CaseBuilder.make(.accumulate, "n=\(n)", flops: Double(n), bytes: bytes(3 * n), inputs: { g in
            g.uniform("src", n, -1, 1); g.uniform("dst", n, -1, 1)
        }, device: { ws, h in
            let src = try ws.input("src", h["src"]), dst = try ws.output("dst", h["dst"])
            return ws.instance { ws.device.accumulate(src, into: dst) }
        }, reference: { h in ["dst": NaiveReference.add(h.d("dst"), h.d("src"))] })
    }

    static func scale(count n: Int, factor: Float) -> OpCase {
        CaseBuilder.make(.scale, "n=\(n) factor=\(factor)", flops: Double(n), bytes: bytes(2 * n), inputs: { g in
            g.uniform("x", n, -2, 2)
        }, device: { ws, h in
            let x = try ws.output("x", h["x"])
            return ws.instance { ws.device.scale(x, by: factor) }
        }, reference: { h in ["x": NaiveReference.scale(h.d("x"), by: Double(factor))] })
    }

    /// Inputs for relu: uniform in [-1, 1) with every 7th element an exact 0 (the boundary).
    private static func reluInput(_ g: inout InputGenerator, _ name: String, _ n: Int) -> [Float] {
        var x = g.uniform(name, n, -1, 1)
        for i in stride(from: 3, to: n, by: 7) { x[i] = 0 }
        g.set(name, x)
        return x
    }

    /// `nan`: a few inputs are NaN, and must come out NaN (PyTorch's relu keeps NaN).
    static func reluForward(count n: Int, inPlace: Bool, nan: Bool = false) -> OpCase {
        CaseBuilder.make(.reluForward, "n=\(n)\(inPlace ? " in-place" : "")\(nan ? " NaN" : "")", flops: Double(n), bytes: bytes(2 * n),
                         inputs: { g in
            var x = reluInput(&g, "x", n)
            if nan { for i in stride(from: 1, to: n, by: 11) { x[i] = .nan }; g.set("x", x) }
            g.uniform("out", n, -1, 1)
        }, device: { ws, h in
            if inPlace {
                let x = try ws.output("out", h["x"])
                return ws.instance { ws.device.reluForward(x, out: x) }
            }
            let x = try ws.input("x", h["x"]), out = try ws.output("out", h["out"])
            return ws.instance { ws.device.reluForward(x, out: out) }
        }, reference: { h in ["out": NaiveReference.reluForward(h.d("x"))] })
    }

    /// `out` is a relu output (≥ 0, with exact zeros), made on the host: the backward needs only
    /// its sign pattern, so no forward run is required.
    /// `nan`: a few outputs of the forward are NaN; PyTorch passes dOut through there.
    static func reluBackward(count n: Int, inPlace: Bool, nan: Bool = false) -> OpCase {
        CaseBuilder.make(.reluBackward, "n=\(n)\(inPlace ? " dX=dOut" : "")\(nan ? " NaN" : "")", flops: Double(n), bytes: bytes(3 * n),
                         inputs: { g in
            let x = reluInput(&g, "x", n)
            var out = x.map { max($0, 0) }
            if nan { for i in stride(from: 2, to: n, by: 13) { out[i] = .nan } }
            g.set("out", out)
            g.uniform("dOut", n, -1, 1); g.uniform("dX", n, -1, 1)
        }, device: { ws, h in
            let out = try ws.input("out", h["out"])
            if inPlace {
                let d = try ws.output("dX", h["dOut"])
                return ws.instance { ws.device.reluBackward(d, out: out, dX: d) }
            }
            let d = try ws.input("dOut", h["dOut"]), dx = try ws.output("dX", h["dX"])
            return ws.instance { ws.device.reluBackward(d, out: out, dX: dx) }
        }, reference: { h in ["dX": NaiveReference.reluBackward(h.d("dOut"), out: h.d("out"))] })
    }
}
