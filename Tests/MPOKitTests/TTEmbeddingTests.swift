// TT embeddings (docs/SPEC.md §5): per-token tensor trains and the table MPO on the CPU device.
//  - forward: the device table equals a naive Double contraction of the cores, and the model
//    computes the same loss/logits as a dense twin whose `tok_emb.weight` is that table;
//  - backward: the core gradients equal the dense twin's embedding gradient projected onto the
//    cores (host Double), that projection equals float64 central differences of the host
//    contraction, and the whole model's loss agrees with float central differences;
//  - TT-SVD of an embedding at full rank is exact, at low rank its error is what it reports;
//  - parameter counts by formula, fresh tables of std 0.02, checkpoints (with and without the
//    config metadata), training with MPO linears, KV-cache generation, and the CLI.

import Foundation
import SafeTensors
import Testing
@testable import MPOKit

/// A tensor network for the (rows, cols) table, evaluated naively in Double: entry (x, y) is the
/// product of per-site matrices M_k[a, b] = cores[k][base(x, y, k) + a·aStride[k] + b].
private struct NaiveNetwork {
    let rows: Int, cols: Int, bonds: [Int], aStride: [Int]
    let base: (Int, Int, Int) -> Int
    var sites: Int { bonds.count - 1 }

    /// Digits of n over `factors`, the first most significant.
    static func digits(_ n: Int, _ factors: [Int]) -> [Int] {
        var d = [Int](repeating: 0, count: factors.count), rem = n
        for k in stride(from: factors.count - 1, through: 0, by: -1) { d[k] = rem % factors[k]; rem /= factors[k] }
        return d
    }

    /// Per-token TT: cores (V, r_k, d_k, r_{k+1}).
    static func tensorTrain(vocabulary V: Int, factors f: [Int], ranks r: [Int]) -> NaiveNetwork {
        NaiveNetwork(rows: V, cols: f.reduce(1, *), bonds: r, aStride: f.indices.map { f[$0] * r[$0 + 1] }) { v, j, k in
            v * r[k] * f[k] * r[k + 1] + digits(j, f)[k] * r[k + 1]
        }
    }

    /// docs/SPEC.md §2 MPO of the (out, in) table: cores (b_l, o_l, i_l, b_{l+1}).
    static func mpo(out o: [Int], in i: [Int], bonds b: [Int]) -> NaiveNetwork {
        NaiveNetwork(rows: o.reduce(1, *), cols: i.reduce(1, *), bonds: b, aStride: o.indices.map { o[$0] * i[$0] * b[$0 + 1] }) { x, y, l in
            (digits(x, o)[l] * i[l] + digits(y, i)[l]) * b[l + 1]
        }
    }

    private func matrix(_ cores: [[Double]], _ x: Int, _ y: Int, _ k: Int) -> [Double] {
        let b0 = base(x, y, k), n = bonds[k + 1]
        return (0..<(bonds[k] * n)).map { cores[k][b0 + ($0 / n) * aStride[k] + $0 % n] }
    }

    func table(_ cores: [[Double]]) -> [Double] {
        var out = [Double](repeating: 0, count: rows * cols)
        for x in 0..<rows { for y in 0..<cols {
            var vec = [1.0]
            for k in 0..<sites {
                let m = matrix(cores, x, y, k), n = bonds[k + 1]
                vec = (0..<n).map { b in vec.indices.reduce(0.0) { $0 + vec[$1] * m[$1 * n + b] } }
            }
            out[x * cols + y] = vec[0]
        } }
        return out
    }

    /// dcores[k] = Σ_{x,y} g[x,y] · ∂table[x,y]/∂cores[k] (left vector ⊗ right vector per entry).
    func project(_ cores: [[Double]], _ g: [Double]) -> [[Double]] {
        var d = cores.map { [Double](repeating: 0, count: $0.count) }
        for x in 0..<rows { for y in 0..<cols {
            let ms = (0..<sites).map { matrix(cores, x, y, $0) }
            var left = [[1.0]]
            for k in 0..<(sites - 1) {
                let n = bonds[k + 1], v = left[k]
                left.append((0..<n).map { b in v.indices.reduce(0.0) { $0 + v[$1] * ms[k][$1 * n + b] } })
            }
            var right = [[Double]](repeating: [1.0], count: sites)
            for k in stride(from: sites - 2, through: 0, by: -1) {
                let n = bonds[k + 2], v = right[k + 1]
                right[k] = (0..<bonds[k + 1]).map { a in (0..<n).reduce(0.0) { $0 + ms[k + 1][a * n + $1] * v[$1] } }
            }
            for k in 0..<sites {
                let b0 = base(x, y, k)
                for a in 0..<bonds[k] { for b in 0..<bonds[k + 1] {
                    d[k][b0 + a * aStride[k] + b] += g[x * cols + y] * left[k][a] * right[k][b]
                } }
            }
        } }
        return d
    }
}

private enum TT {
    static let vocabulary = 12
    /// A one-block model with d_model 32 and the given embedding (and MPO linears at χ if given).
    static func config(_ kind: (Int, Int) -> EmbeddingKind, chi: Int? = nil, vocabulary V: Int = vocabulary) -> ModelConfig {
        var c = ModelConfig(vocabularySize: V, channels: 32, heads: 2, layers: 1, context: 8, ffn: 64, chi: chi)
        c.tokenEmbedding = kind(V, 32)
        return c
    }
    static let kinds: [(String, @Sendable (Int, Int) -> EmbeddingKind)] = [
        ("tt r=3 [2,4,4]", { _, d in .tensorTrain(rank: 3, channels: d) }),
        ("tt r=2 [4,8]", { _, d in .tensorTrain(rank: 2, channels: d, factors: [4, 8]) }),
        ("mpo χ=3", { v, d in .mpo(chi: 3, vocabulary: v, channels: d) }),
        ("svd r=3", { v, d in .lowRank(rank: 3, vocabulary: v, channels: d) }),
    ]
    static func kind(_ name: String) -> (Int, Int) -> EmbeddingKind { kinds.first { $0.0 == name }!.1 }

    static func network(_ c: ModelConfig) -> NaiveNetwork {
        switch c.tokenEmbedding {
        case .tensorTrain(let f, let r): return .tensorTrain(vocabulary: c.vocabularySize, factors: f, ranks: r)
        case .mpo(let f, let b): return .mpo(out: f.outFactors, in: f.inFactors, bonds: b)
        case .dense: fatalError("dense has no network")
        }
    }

    static func cores(_ m: Transformer) throws -> [[Double]] {
        try m.config.embeddingParameterShapes.map { try m.parameter($0.name).map(Double.init) }
    }

    /// A dense model with the same parameters and `tok_emb.weight` = `table`.
    static func denseTwin(_ m: Transformer, table: [Double]) throws -> Transformer {
        var c = m.config
        c.tokenEmbedding = .dense
        let d = try Transformer(config: c, device: m.device)
        for s in d.layout.specs where s.name != "tok_emb.weight" { try d.setParameter(s.name, try m.parameter(s.name)) }
        try d.setParameter("tok_emb.weight", table.map { Float($0) })
        return d
    }

    static func batch(_ b: Int, _ t: Int, vocabulary V: Int = vocabulary, seed: UInt64) -> ([Int32], [Int32]) {
        var g = SplitMix64(seed: seed)
        return ((0..<(b * t)).map { _ in Int32(g.below(V)) }, (0..<(b * t)).map { _ in Int32(g.below(V)) })
    }
}

@Suite("TT embeddings")
struct TTEmbeddingTests {
    @Test("forward equals a dense embedding contracted from the cores in Double", arguments: TT.kinds.map(\.0))
    func forwardMatchesDense(kind: String) throws {
        let m = try Transformer(config: TT.config(TT.kind(kind), chi: 2), device: CPUDevice())
        try m.initialize(seed: 11)
        let host = TT.network(m.config).table(try TT.cores(m))
        let device = try m.device.read(m.embedding.table(m.device))
        #expect(relativeError(device, host) < 1e-6)
        #expect(relativeError(try Compression.embeddingTable(m), host) < 1e-6)
        let twin = try TT.denseTwin(m, table: host)
        let (tok, tgt) = TT.batch(3, 8, seed: 5)
        let a = try m.forward(tokens: tok, targets: tgt, batch: 3, time: 8, needsGradients: false)
        let la = try m.logits()
        let b = try twin.forward(tokens: tok, targets: tgt, batch: 3, time: 8, needsGradients: false)
        #expect(abs(a.loss - b.loss) < 1e-6, "loss \(a.loss) vs dense twin \(b.loss)")
        #expect(maxAbsDifference(la, try twin.logits()) < 1e-5)
        // Re-compressing the linears keeps the embedding's cores as they are.
        let (re, _) = try Compression.compress(m, chi: 2)
        #expect(re.config.tokenEmbedding == m.config.tokenEmbedding)
        for s in m.config.embeddingParameterShapes { #expect(try re.parameter(s.name) == (try m.parameter(s.name))) }
    }

    @Test("core gradients = the dense gradient projected onto the cores = float64 finite differences", arguments: TT.kinds.map(\.0))
    func gradientsMatchProjection(kind: String) throws {
        let m = try Transformer(config: TT.config(TT.kind(kind), chi: 2), device: CPUDevice())
        try m.initialize(seed: 12)
        let net = TT.network(m.config), cores = try TT.cores(m)
        let twin = try TT.denseTwin(m, table: net.table(cores))
        let (tok, tgt) = TT.batch(4, 8, seed: 6)
        for model in [m, twin] {
            model.zeroGradients()
            try model.forward(tokens: tok, targets: tgt, batch: 4, time: 8)
            try model.backward()
        }
        let g = try twin.gradient("tok_emb.weight").map(Double.init)
        #expect(g.contains { $0 != 0 })
        let projected = net.project(cores, g)
        // 1. The host projection is the gradient of ℓ(cores) = Σ g ∘ table(cores): central differences in Double.
        var worstFD = 0.0
        for k in cores.indices {
            var c = cores, fd = [Double](repeating: 0, count: cores[k].count)
            let h = 1e-4
            for i in cores[k].indices {
                c[k][i] = cores[k][i] + h
                let up = zip(g, net.table(c)).reduce(0.0) { $0 + $1.0 * $1.1 }
                c[k][i] = cores[k][i] - h
                let down = zip(g, net.table(c)).reduce(0.0) { $0 + $1.0 * $1.1 }
                c[k][i] = cores[k][i]
                fd[i] = (up - down) / (2 * h)
            }
            worstFD = max(worstFD, relativeError(projected[k], fd))
        }
        #expect(worstFD < 1e-9, "projection vs float64 finite differences: \(worstFD)")
        // 2. The device's core gradients equal that projection.
        for (k, spec) in m.config.embeddingParameterShapes.enumerated() {
            let err = relativeError(try m.gradient(spec.name), projected[k])
            #expect(err < 1e-5, "\(spec.name): relative error \(err)")
        }
        // 3. Every other gradient equals the dense twin's.
        for s in twin.layout.specs where s.name != "tok_emb.weight" {
            #expect(relativeError(try m.gradient(s.name), try twin.gradient(s.name)) < 1e-5, "\(s.name)")
        }
    }

    @Test("whole-model loss: float central differences of core entries match the analytic gradient, with the head tied to the embedding too",
          arguments: TT.kinds.map(\.0), [false, true])
    func modelFiniteDifferences(kind: String, tied: Bool) throws {
        var c = TT.config(TT.kind(kind), chi: 2)
        c.architecture.tiedHead = tied   // tied: the head's gradient reaches the cores through the shared table
        let m = try Transformer(config: c, device: CPUDevice())
        #expect(m.layout["lm_head.cores.0"] == nil || !tied)
        try m.initialize(seed: 13)
        let (tok, tgt) = TT.batch(2, 8, seed: 7)
        m.zeroGradients()
        try m.forward(tokens: tok, targets: tgt, batch: 2, time: 8)
        try m.backward()
        func loss() throws -> Double { try m.forward(tokens: tok, targets: tgt, batch: 2, time: 8, needsGradients: false).loss }
        var checked = 0
        for spec in m.config.embeddingParameterShapes {
            let p = try m.parameter(spec.name), g = try m.gradient(spec.name)
            // The three entries with the largest gradient of each core tensor.
            for i in g.indices.sorted(by: { abs(g[$0]) > abs(g[$1]) }).prefix(3) {
                let h: Float = 5e-3
                var q = p
                q[i] = p[i] + h; try m.setParameter(spec.name, q); let up = try loss()
                q[i] = p[i] - h; try m.setParameter(spec.name, q); let down = try loss()
                try m.setParameter(spec.name, p)
                let fd = (up - down) / Double(2 * h)
                #expect(abs(fd - Double(g[i])) <= 0.01 * abs(Double(g[i])) + 1e-5, "\(spec.name)[\(i)]: fd \(fd) vs \(g[i])")
                checked += 1
            }
        }
        #expect(checked >= 6)
    }

    @Test("TT-SVD of an embedding at full rank is exact; at low rank it reports its true error")
    func ttSVDExactness() throws {
        let dense = try Reference.model("dense_seed2024.safetensors")
        let table = try dense.parameter("tok_emb.weight")
        let T = table.map(Double.init), V = 65, D = 128
        // Full rank: per-token ranks are capped at [1, 4, 8, 1] for [4,4,8]; the table MPO at 40.
        for (target, bonds) in [(EmbeddingKind.tensorTrain(rank: 64, channels: D), [1, 4, 8, 1]),
                                (.mpo(chi: 64, vocabulary: V, channels: D), [1, 40, 1])] {
            let (model, r) = try Compression.compressEmbedding(dense, to: target)
            #expect(r.bonds == bonds)
            #expect(r.relativeError < 1e-5, "\(r.kind): \(r.relativeError)")
            let rebuilt = try model.device.read(model.embedding.table(model.device))
            #expect(relativeError(rebuilt, table) < 1e-5)
            let json = try Reference.json("dense_seed2024.json")
            let (tok, tgt, b, t) = Reference.batch(json)
            let l0 = try dense.forward(tokens: tok, targets: tgt, batch: b, time: t).loss
            let l1 = try model.forward(tokens: tok, targets: tgt, batch: b, time: t).loss
            #expect(abs(l0 - l1) < 1e-4)
            for s in dense.layout.specs where s.name != "tok_emb.weight" {
                #expect(try model.parameter(s.name) == (try dense.parameter(s.name)))
            }
        }
        // Low rank: the reported error is the true one; Pythagoras holds; error ≤ bound.
        let (kind, cores, r) = try Compression.ttEmbedding(table: table, vocabulary: V, factors: [4, 4, 8], maxRank: 2)
        #expect(kind == .tensorTrain(factors: [4, 4, 8], ranks: [1, 2, 2, 1]))
        #expect(r.parameters == 65 * (1 * 4 * 2 + 2 * 4 * 2 + 2 * 8 * 1))
        let approx = NaiveNetwork.tensorTrain(vocabulary: V, factors: [4, 4, 8], ranks: [1, 2, 2, 1]).table(cores.map { $0.map(Double.init) })
        let err = relativeError(approx, T)
        #expect(abs(err - r.relativeError) < 1e-6 && err > 0.1)
        let n2 = T.reduce(0) { $0 + $1 * $1 }, a2 = approx.reduce(0) { $0 + $1 * $1 }
        #expect(abs(a2 + err * err * n2 - n2) / n2 < 1e-5)
        #expect(r.relativeError <= r.errorBound + 1e-6)
        let mpo = try Compression.mpoEmbedding(table: table, vocabulary: V, channels: D, chi: 8)
        #expect(mpo.report.parameters == 248 * 8)
        let mApprox = NaiveNetwork.mpo(out: [5, 13], in: [8, 16], bonds: [1, 8, 1]).table(mpo.cores.cores.map { $0.map(Double.init) })
        #expect(abs(relativeError(mApprox, T) - mpo.report.relativeError) < 1e-6)
    }

    @Test("svd:r compresses the table to its truncated SVD: the error Eckart–Young gives from float64 Jacobi eigenvalues of T·Tᵀ",
          arguments: [1, 8, 40])
    func lowRankIsTruncatedSVD(rank r: Int) throws {
        let dense = try Reference.model("dense_seed2024.safetensors")
        let table = try dense.parameter("tok_emb.weight")
        let V = 65, D = 128
        let (model, report) = try Compression.compressEmbedding(dense, to: .lowRank(rank: r, vocabulary: V, channels: D))
        #expect(report.parameters == (V + D) * r && report.bonds == [1, r, 1])
        // The optimum: ‖T − T_r‖² = Σ_{i>r} λ_i, λ the eigenvalues of the 65×65 Gram T·Tᵀ.
        let T = table.map(Double.init)
        var G = [Double](repeating: 0, count: V * V)
        for a in 0..<V { for b in 0..<V { G[a * V + b] = (0..<D).reduce(0) { $0 + T[a * D + $1] * T[b * D + $1] } } }
        let lambda = Self.jacobiEigenvalues(G, n: V).sorted(by: >)
        let total = lambda.reduce(0, +)
        let optimal = (lambda[r...].reduce(0, +) / total).squareRoot()
        let rebuilt = try model.device.read(model.embedding.table(model.device)).map(Double.init)
        let actual = relativeError(rebuilt, T)
        #expect(abs(actual - optimal) < 1e-5, "rank \(r): error \(actual), Eckart–Young \(optimal)")
        #expect(abs(report.relativeError - optimal) < 1e-5)
    }

    /// Eigenvalues of a symmetric n×n matrix by cyclic Jacobi rotations, in Double.
    static func jacobiEigenvalues(_ input: [Double], n: Int) -> [Double] {
        var a = input
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<n { off += a[p * n + q] * a[p * n + q] } }
            if off < 1e-26 * a.enumerated().reduce(0) { $0 + $1.element * $1.element } { break }
            for p in 0..<n {
                for q in (p + 1)..<n where a[p * n + q] != 0 {
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {   // columns p, q
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq; a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {   // rows p, q
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk; a[q * n + k] = s * apk + c * aqk
                    }
                }
            }
        }
        return (0..<n).map { a[$0 * n + $0] }
    }

    @Test("per-token TT parameters = V·Σ r_{k-1}·d_k·r_k", arguments: [(2, 2_600), (4, 7_280), (8, 22_880)])
    func ttParameterCount(rank r: Int, expected: Int) throws {
        var c = ModelConfig.picoGPT
        c.tokenEmbedding = .tensorTrain(rank: r, channels: 128)
        #expect(c.tokenEmbedding == .tensorTrain(factors: [4, 4, 8], ranks: [1, r, r, 1]))
        #expect(c.embeddingParameterCount == 65 * (1 * 4 * r + r * 4 * r + r * 8 * 1))
        #expect(c.embeddingParameterCount == expected)
        let shapes = c.parameterLayout().specs.filter { $0.name.hasPrefix("tok_emb.") }.map(\.shape)
        #expect(shapes == [[65, 1, 4, r], [65, r, 4, r], [65, r, 8, 1]])
        let m = try Transformer(config: c, device: CPUDevice())
        #expect(m.parameterCount == 808_448 - 8_320 + expected)
        var both = ModelConfig.mpo(chi: 8)
        both.tokenEmbedding = .tensorTrain(rank: r, channels: 128)
        #expect(both.parameterLayout().parameterCount == 79_168 - 8_320 + expected)
    }

    @Test("an inference model builds a TT/MPO table once and again only when its cores change: its loss after a core is set equals a fresh model's with that core, with the head tied and not",
          arguments: TT.kinds.map(\.0))
    func inferenceTableFollowsCores(kind: String) throws {
        for tied in [true, false] {
            var c = TT.config(TT.kind(kind), chi: 2)
            if tied { c.architecture = .llama(theta: 10_000, normEpsilon: 1e-5, kvHeads: 2, tiedHead: true) }
            let trained = try Transformer(config: c, device: CPUDevice())
            try trained.initialize(seed: 9)
            func copy() throws -> Transformer {
                let m = try Transformer(config: c, device: CPUDevice(), purpose: .inference)
                for s in trained.layout.specs { try m.setParameter(s.name, try trained.parameter(s.name)) }
                return m
            }
            let m = try copy()
            let (tok, tgt) = TT.batch(2, 8, seed: 4)
            let first = try m.forward(tokens: tok, targets: tgt, batch: 2, time: 8, needsGradients: false).loss
            #expect(try m.forward(tokens: tok, targets: tgt, batch: 2, time: 8, needsGradients: false).loss == first)
            let core = c.embeddingParameterShapes.last!.name
            let changed = try trained.parameter(core).map { $0 * 1.5 + 0.01 }
            try trained.setParameter(core, changed)
            try m.setParameter(core, changed)
            let after = try m.forward(tokens: tok, targets: tgt, batch: 2, time: 8, needsGradients: false).loss
            let fresh = try copy().forward(tokens: tok, targets: tgt, batch: 2, time: 8, needsGradients: false).loss
            // (equal to rounding: the fresh model's linears may pick another contraction order)
            #expect(abs(after - fresh) < 1e-6 * fresh && abs(after - first) > 1e-4, "\(kind), tied \(tied): before \(first), after \(after), fresh \(fresh)")
        }
    }

    @Test("an inference model uses an svd:r table as its two factors (rows of U times W; the tied head (x·Wᵀ)·Uᵀ): its logits equal the training model's, which builds the table, tied and untied")
    func lowRankFactorPath() throws {
        for tied in [true, false] {
            var c = TT.config(TT.kind("svd r=3"), chi: 2)
            if tied { c.architecture = .llama(theta: 10_000, normEpsilon: 1e-5, kvHeads: 2, tiedHead: true) }
            let trained = try Transformer(config: c, device: CPUDevice())
            try trained.initialize(seed: 13)
            let m = try Transformer(config: c, device: CPUDevice(), purpose: .inference)
            for s in trained.layout.specs { try m.setParameter(s.name, try trained.parameter(s.name)) }
            let (tok, _) = TT.batch(2, 8, seed: 6)
            try trained.forward(tokens: tok, batch: 2, time: 8, needsGradients: false)
            try m.forward(tokens: tok, batch: 2, time: 8, needsGradients: false)
            let a = try trained.logits(), b = try m.logits()
            let scale = a.map { abs($0) }.max()!
            #expect(zip(a, b).map { abs($0 - $1) }.max()! < 1e-5 * scale, "tied \(tied)")
        }
    }

    @Test("table-MPO embedding parameters = 248χ with [5,13]×[8,16]", arguments: [(4, 992), (8, 1_984), (16, 3_968)])
    func mpoParameterCount(chi: Int, expected: Int) throws {
        var c = ModelConfig.picoGPT
        c.tokenEmbedding = .mpo(chi: chi, vocabulary: 65, channels: 128)
        #expect(c.embeddingParameterCount == expected && expected == 248 * chi)
        let shapes = c.parameterLayout().specs.filter { $0.name.hasPrefix("tok_emb.") }.map(\.shape)
        #expect(shapes == [[1, 5, 8, chi], [chi, 13, 16, 1]])
    }

    @Test("fresh TT and MPO embeddings contract to a table of std ≈ 0.02",
          arguments: ["tt:2", "tt:4", "tt:8", "mpo:4", "mpo:8", "mpo:16"])
    func initialStd(kind: String) throws {
        var c = ModelConfig.picoGPT
        c.tokenEmbedding = try EmbeddingKind.parse(kind, vocabulary: 65, channels: 128)
        let m = try Transformer(config: c, device: CPUDevice())
        try m.initialize(seed: 2024)
        let t = try Compression.embeddingTable(m).map(Double.init)
        let mean = t.reduce(0, +) / Double(t.count)
        let std = (t.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(t.count)).squareRoot()
        #expect(abs(std - 0.02) < 0.004, "std \(std)")
    }

    @Test("checkpoints round-trip TT and table-MPO embeddings, with and without config metadata", arguments: TT.kinds.map(\.0))
    func checkpointRoundTrip(kind: String) throws {
        let m = try Transformer(config: TT.config(TT.kind(kind), chi: 3), device: CPUDevice())
        try m.initialize(seed: 4)
        let url = Tiny.tempDir().appendingPathComponent("tt.safetensors")
        try ModelCheckpoint.save(m, to: url)
        let back = try ModelCheckpoint.loadModel(url, device: CPUDevice())
        #expect(back.config == m.config)
        #expect(try back.device.read(back.params.all) == (try m.device.read(m.params.all)))
        // Without metadata the kind is inferred from the core shapes.
        var w = SafeTensorsWriter()
        for s in m.layout.specs { try w.add(s.name, shape: s.shape, floats: try m.parameter(s.name)) }
        let bare = url.deletingLastPathComponent().appendingPathComponent("bare.safetensors")
        try w.write(to: bare)
        // What the tensors cannot tell (heads, and the context without pos_enc) must be given.
        #expect(throws: MissingShapeError.self) { try ModelCheckpoint.inferConfig(try ModelCheckpoint.open(bare)) }
        let inferred = try ModelCheckpoint.inferConfig(try ModelCheckpoint.open(bare), hints: ShapeHints(heads: 2, context: 8))
        #expect(inferred.tokenEmbedding == m.config.tokenEmbedding)
        #expect(inferred.heads == 2 && inferred.context == 8)
        #expect(inferred.parameterLayout().specs == m.config.parameterLayout().specs)   // the same model (bonds, not χ)
        // A dense config encodes without an "embedding" key, and configs without one decode as dense.
        let json = String(decoding: try JSONEncoder().encode(ModelConfig.picoGPT), as: UTF8.self)
        #expect(!json.contains("embedding"))
        #expect(try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8)).tokenEmbedding == .dense)
    }

    @Test("a tiny model with TT/MPO embedding and MPO linears trains; KV-cache logits equal the full forward",
          arguments: ["tt r=2 [4,8]", "mpo χ=3"])
    func trainsAndGenerates(kind: String) throws {
        let data = try Tiny.data()
        var c = Tiny.config(vocabulary: data.vocabularySize, chi: 4)
        c.tokenEmbedding = TT.kind(kind)(c.vocabularySize, c.channels)
        let m = try Transformer(config: c, device: CPUDevice())
        try m.initialize(seed: 3)
        let t = try Trainer(model: m, data: data, options: Tiny.options(steps: 30), directory: Tiny.tempDir())
        try t.run()
        let first = t.losses.prefix(5).reduce(0, +) / 5, last = t.losses.suffix(5).reduce(0, +) / 5
        #expect(last < first - 0.3, "mean loss of the first 5 steps \(first), of the last 5 \(last)")
        #expect(t.evals.last!.valLoss < t.evals.first!.valLoss)
        // KV cache after training.
        let (tok, _) = TT.batch(1, 16, vocabulary: c.vocabularySize, seed: 9)
        try m.forward(tokens: tok, batch: 1, time: 16)
        let full = try m.logits(), V = c.vocabularySize
        let gen = try Generator(model: m)
        var worst = maxAbsDifference(try gen.feed(Array(tok[..<5])), Array(full[(4 * V)..<(5 * V)]))
        for p in 5..<16 { worst = max(worst, maxAbsDifference(try gen.feed([tok[p]]), Array(full[(p * V)..<((p + 1) * V)]))) }
        #expect(worst < 2e-5, "max |Δlogit| = \(worst)")
    }

    @Test("--embedding parsing: valid forms and clear errors")
    func parsing() throws {
        #expect(try EmbeddingKind.parse("dense", vocabulary: 65, channels: 128) == .dense)
        #expect(try EmbeddingKind.parse("tt:4", vocabulary: 65, channels: 128) == .tensorTrain(factors: [4, 4, 8], ranks: [1, 4, 4, 1]))
        #expect(try EmbeddingKind.parse("TT:2:8x16", vocabulary: 65, channels: 128) == .tensorTrain(factors: [8, 16], ranks: [1, 2, 1]))
        #expect(try EmbeddingKind.parse("mpo:8", vocabulary: 65, channels: 128)
                == .mpo(factorization: try .init(outFactors: [5, 13], inFactors: [8, 16]), bonds: [1, 8, 1]))
        #expect(try EmbeddingKind.parse("svd:8", vocabulary: 65, channels: 128)
                == .mpo(factorization: try .init(outFactors: [65, 1], inFactors: [1, 128]), bonds: [1, 8, 1]))
        #expect(EmbeddingKind.defaultFactors(channels: 32) == [2, 4, 4])
        for bad in ["tt", "tt:0", "tt:x", "tt:4:3x3x3", "mpo", "mpo:-1", "svd", "svd:0", "svd:4:2", "tucker:3", "dense:2"] {
            #expect(throws: ModelError.self, "\(bad)") { try EmbeddingKind.parse(bad, vocabulary: 65, channels: 128) }
        }
    }
}

@Suite("TT embeddings on the command line")
struct TTEmbeddingCLITests {
    @Test("bad --embedding exits 64 naming the option", arguments: ["tt:0", "foo", "tt:4:3x3x3", "mpo:x"])
    func badEmbedding(value: String) throws {
        let (code, _, err) = try CLI.run(["train", "--embedding", value, "--steps", "1"])
        #expect(code == 64, "exit \(code): \(err)")
        #expect(err.contains("--embedding"), "\(err)")
    }

    @Test("report --json shows the embedding and its TT-SVD compressions")
    func reportJSON() throws {
        let (code, stdout, err) = try CLI.run(["report", "--checkpoint", "Tests/Resources/reference/dense_seed2024.safetensors", "--heads", "4",
                                               "--chi", "4", "--embedding", "tt:2,tt:8,mpo:8", "--json"])
        #expect(code == 0, "\(err)")
        let obj = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as! [String: Any]
        let emb = obj["embedding"] as! [String: Any]
        #expect(emb["parameters"] as! Int == 8_320)
        let comps = emb["compressions"] as! [[String: Any]]
        #expect(comps.map { $0["parameters"] as! Int } == [2_600, 13_520, 1_984])
        #expect((comps[1]["relativeError"] as! Double) < 1e-5)
    }

    @Test("compress --embedding tt:R writes a model with per-token cores and prints its error")
    func compressEmbedding() throws {
        let out = Tiny.tempDir().appendingPathComponent("tt.safetensors")
        let (code, stdout, err) = try CLI.run(["compress", "--checkpoint", "Tests/Resources/reference/dense_seed2024.safetensors", "--heads", "4",
                                               "--embedding", "tt:2", "--out", out.path, "--eval-batches", "1"])
        #expect(code == 0, "\(err)")
        #expect(stdout.contains("embedding parameters 8320 → 2600"), "\(stdout)")
        let m = try ModelCheckpoint.loadModel(out, device: CPUDevice())
        #expect(m.config.tokenEmbedding == .tensorTrain(factors: [4, 4, 8], ranks: [1, 2, 2, 1]))
        #expect(m.parameterCount == 808_448 - 8_320 + 2_600)
    }
}
