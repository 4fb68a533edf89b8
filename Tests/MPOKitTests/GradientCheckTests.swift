// Gradient checks in float64 by central differences (ggml's grad mode), on tiny shapes, for every
// backward op: LayerNorm, attention, cross-entropy (through the loss), relu, embedding, bias,
// gemm as a linear layer (plain and the MPO site step with a shared core and a batch reduction)
// and permute. Each test does two things:
//  1. NaiveReference's backward == finite differences of NaiveReference's forward (so the
//     reference itself is verified), for the scalar loss L = Σ G ∘ forward(…) with a random G;
//  2. CPUDevice's backward == NaiveReference's backward on the same (Float-representable) inputs.
// Plus two hand-computed forward values (attention, cross-entropy), so the forward that the
// differences are taken of is pinned as well.
// Not here: the full shape sweep (CPUOpReferenceTests.swift, driven by OpCases.parity).

import Foundation
import Testing
import MPOKit
import OpCases

// MARK: - helpers

/// Deterministic Float-representable doubles in [lo, hi).
private func randoms(_ n: Int, _ lo: Double = -1, _ hi: Double = 1, seed: UInt64) -> [Double] {
    var g = SplitMix64(seed: seed)
    return (0..<n).map { _ in Double(Float(lo + (hi - lo) * g.uniform())) }
}

private func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

/// ‖a − b‖ / ‖b‖ (‖a − b‖ when b = 0).
private func relErr(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    let num = zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }, den = dot(b, b)
    return (den == 0 ? num : num / den).squareRoot()
}

/// Central differences of f at x, one coordinate at a time.
private func numericGradient(_ x: [Double], h: Double = 1e-5, _ f: ([Double]) -> Double) -> [Double] {
    var x = x
    return (0..<x.count).map { i in
        let x0 = x[i]
        x[i] = x0 + h; let up = f(x)
        x[i] = x0 - h; let down = f(x)
        x[i] = x0
        return (up - down) / (2 * h)
    }
}

/// Naive backward vs finite differences: tight, both are Double.
private let fdTolerance = 1e-6
/// CPU (Float) vs naive (Double) on the same inputs.
private let deviceTolerance = 2e-5

/// A CPUDevice plus buffers that stay alive for one test.
private final class CPUBench {
    let dev = CPUDevice()
    private var keep: [DeviceBuffer] = []
    func f(_ x: [Double]) -> TensorView {
        let b = try! dev.makeBuffer(x.map { Float($0) }, label: "gc")
        keep.append(b); return b.all
    }
    func i(_ x: [Int]) -> TensorView {
        let b = try! dev.makeBuffer(x.map { Int32($0) }, label: "gc ids")
        keep.append(b); return b.all
    }
    func zeros(_ n: Int) -> TensorView { f([Double](repeating: 0, count: n)) }
    func read(_ v: TensorView) -> [Double] { try! dev.read(v).map(Double.init) }
}

@Suite("Gradient checks (float64 central differences)")
struct GradientCheckTests {
    // MARK: LayerNorm

    @Test("layerNorm: dInput, dWeight, dBias")
    func layerNorm() {
        let N = 3, C = 5
        let x = randoms(N * C, -2, 2, seed: 1), w = randoms(C, -1.5, 1.5, seed: 2), b = randoms(C, seed: 3)
        let G = randoms(N * C, seed: 4), zN = [Double](repeating: 0, count: N * C), zC = [Double](repeating: 0, count: C)
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            dot(G, NaiveReference.layerNormForward(x, weight: w, bias: b, rows: N, columns: C).out)
        }
        let g = NaiveReference.layerNormBackward(dOut: G, x: x, weight: w, dInput: zN, dWeight: zC, dBias: zC, rows: N, columns: C)
        #expect(relErr(g.dInput, numericGradient(x) { loss($0, w, b) }) < fdTolerance)
        #expect(relErr(g.dWeight, numericGradient(w) { loss(x, $0, b) }) < fdTolerance)
        #expect(relErr(g.dBias, numericGradient(b) { loss(x, w, $0) }) < fdTolerance)

        let cpu = CPUBench()
        let vx = cpu.f(x), vw = cpu.f(w), vb = cpu.f(b), out = cpu.zeros(N * C), mean = cpu.zeros(N), rstd = cpu.zeros(N)
        cpu.dev.layerNormForward(vx, weight: vw, bias: vb, out: out, mean: mean, rstd: rstd, rows: N, columns: C)
        let dx = cpu.zeros(N * C), dw = cpu.zeros(C), db = cpu.zeros(C)
        cpu.dev.layerNormBackward(dOut: cpu.f(G), input: vx, weight: vw, mean: mean, rstd: rstd,
                                  dInput: dx, dWeight: dw, dBias: db, rows: N, columns: C)
        #expect(relErr(cpu.read(dx), g.dInput) < deviceTolerance)
        #expect(relErr(cpu.read(dw), g.dWeight) < deviceTolerance)
        #expect(relErr(cpu.read(db), g.dBias) < deviceTolerance)
    }

    @Test("layerNorm forward by hand: biased variance, eps 1e-5")
    func layerNormByHand() {
        let r = NaiveReference.layerNormForward([1, 2, 3, 6], weight: [2, 1], bias: [0.5, 0], rows: 2, columns: 2)
        // Row 0 = [1, 2]: mean 1.5, var 0.25; row 1 = [3, 6]: mean 4.5, var 2.25.
        let a = 1 / (0.25 + 1e-5).squareRoot(), b = 1 / (2.25 + 1e-5).squareRoot()
        #expect(relErr(r.mean, [1.5, 4.5]) < 1e-15 && relErr(r.rstd, [a, b]) < 1e-15)
        #expect(relErr(r.out, [-0.5 * a * 2 + 0.5, 0.5 * a, -1.5 * b * 2 + 0.5, 1.5 * b]) < 1e-15)
    }

    // MARK: attention

    @Test("attention: dq, dk, dv")
    func attention() {
        let s = AttentionShape(batch: 2, time: 4, heads: 2, headDim: 3), n = s.tokens * s.channels
        let q = randoms(n, -1.5, 1.5, seed: 5), k = randoms(n, -1.5, 1.5, seed: 6), v = randoms(n, seed: 7)
        let G = randoms(n, seed: 8)
        func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double {
            dot(G, NaiveReference.attentionForward(s, q: q, k: k, v: v).out)
        }
        let g = NaiveReference.attentionBackward(s, dOut: G, q: q, k: k, v: v)
        #expect(relErr(g.dq, numericGradient(q) { loss($0, k, v) }) < fdTolerance)
        #expect(relErr(g.dk, numericGradient(k) { loss(q, $0, v) }) < fdTolerance)
        #expect(relErr(g.dv, numericGradient(v) { loss(q, k, $0) }) < fdTolerance)

        let cpu = CPUBench()
        let vq = cpu.f(q), vk = cpu.f(k), vv = cpu.f(v), out = cpu.zeros(n), lse = cpu.zeros(s.batch * s.heads * s.time)
        cpu.dev.attentionForward(s, q: vq, k: vk, v: vv, out: out, lse: lse)
        let dq = cpu.f(randoms(n, seed: 9)), dk = cpu.f(randoms(n, seed: 10)), dv = cpu.f(randoms(n, seed: 11))  // overwritten
        cpu.dev.attentionBackward(s, dOut: cpu.f(G), q: vq, k: vk, v: vv, out: out, lse: lse, dq: dq, dk: dk, dv: dv)
        #expect(relErr(cpu.read(dq), g.dq) < deviceTolerance)
        #expect(relErr(cpu.read(dk), g.dk) < deviceTolerance)
        #expect(relErr(cpu.read(dv), g.dv) < deviceTolerance)
    }

    @Test("attention forward by hand: causal, scale 1/√hd, lse")
    func attentionByHand() {
        // T=2, one head, hd=4 (scale 1/2); query 0 sees key 0 only, query 1 sees both.
        let s = AttentionShape(batch: 1, time: 2, heads: 1, headDim: 4)
        let q: [Double] = [1, 0, 0, 0, 0, 2, 0, 0], k: [Double] = [3, 0, 0, 0, 0, 1, 0, 0]
        let v: [Double] = [1, 2, 3, 4, -1, 0, 1, 5]
        let r = NaiveReference.attentionForward(s, q: q, k: k, v: v)
        let s10 = 0.0, s11 = 2.0 * 1 / 2   // q1·k0/2, q1·k1/2
        let p0 = exp(s10) / (exp(s10) + exp(s11)), p1 = 1 - p0
        let expected = [1, 2, 3, 4] + (0..<4).map { p0 * v[$0] + p1 * v[4 + $0] }
        #expect(relErr(r.out, expected) < 1e-14)
        #expect(relErr(r.lse, [1.5, log(exp(s10) + exp(s11))]) < 1e-14)   // lse0 = q0·k0/2 = 3/2
    }

    // MARK: cross-entropy

    @Test("crossEntropy: dLogits is the gradient of gradScale·Σ losses")
    func crossEntropy() {
        let N = 3, V = 5, scale = 0.25
        let logits = randoms(N * V, -3, 3, seed: 12), targets = [4, 0, 2]
        let r = NaiveReference.crossEntropy(logits: logits, targets: targets, rows: N, vocabulary: V, gradScale: scale)
        let fd = numericGradient(logits) {
            scale * NaiveReference.crossEntropy(logits: $0, targets: targets, rows: N, vocabulary: V, gradScale: 1).losses.reduce(0, +)
        }
        #expect(relErr(r.dLogits, fd) < fdTolerance)

        let cpu = CPUBench()
        let losses = cpu.zeros(N), correct = cpu.zeros(N), dl = cpu.zeros(N * V)
        cpu.dev.crossEntropy(logits: cpu.f(logits), targets: cpu.i(targets), losses: losses, correct: correct,
                             dLogits: dl, gradScale: Float(scale), rows: N, vocabulary: V)
        #expect(relErr(cpu.read(dl), r.dLogits) < deviceTolerance)
        #expect(relErr(cpu.read(losses), r.losses) < deviceTolerance)
        #expect(cpu.read(correct) == r.correct)
    }

    @Test("crossEntropy by hand: loss, correct (first max wins), dLogits")
    func crossEntropyByHand() {
        // Row 0: logits [0, ln 3], target 1 → p = [1/4, 3/4]. Row 1: a tie [2, 2], target 1 → not correct.
        let r = NaiveReference.crossEntropy(logits: [0, log(3), 2, 2], targets: [1, 1], rows: 2, vocabulary: 2, gradScale: 2)
        #expect(relErr(r.losses, [-log(0.75), log(2)]) < 1e-14)
        #expect(r.correct == [1, 0])
        #expect(relErr(r.dLogits, [0.5, -0.5, 1, -1]) < 1e-14)
    }

    // MARK: relu, bias, embedding

    @Test("relu: dX = dOut·[out > 0]")
    func relu() {
        // Keep |x| ≥ 0.1 so the kink is farther than the difference step.
        let x = randoms(23, seed: 13).map { $0 >= 0 ? $0 + 0.1 : $0 - 0.1 }, G = randoms(23, seed: 14)
        let out = NaiveReference.reluForward(x)
        let g = NaiveReference.reluBackward(G, out: out)
        #expect(relErr(g, numericGradient(x) { dot(G, NaiveReference.reluForward($0)) }) < fdTolerance)
        let cpu = CPUBench(), dX = cpu.f(randoms(23, seed: 15))
        cpu.dev.reluBackward(cpu.f(G), out: cpu.f(out), dX: dX)
        #expect(relErr(cpu.read(dX), g) < deviceTolerance)
    }

    @Test("bias: dBias = Σ_rows dOut")
    func bias() {
        let R = 4, C = 3, out0 = randoms(R * C, seed: 16), bias = randoms(C, seed: 17), G = randoms(R * C, seed: 18)
        let g = NaiveReference.biasBackward(G, dBias: [0, 0, 0], rows: R, columns: C)
        let fd = numericGradient(bias) { dot(G, NaiveReference.addBias($0, to: out0, rows: R, columns: C)) }
        #expect(relErr(g, fd) < fdTolerance)
        let cpu = CPUBench(), db = cpu.zeros(C)
        cpu.dev.biasBackward(cpu.f(G), dBias: db, rows: R, columns: C)
        #expect(relErr(cpu.read(db), g) < deviceTolerance)
    }

    @Test("embedding: dTable scatter-adds, with repeated tokens")
    func embedding() {
        let B = 2, T = 3, C = 2, V = 4, tokens = [1, 3, 1, 0, 1, 3]   // token 2 never appears: zero gradient
        let table = randoms(V * C, seed: 19), pos = randoms(T * C, seed: 20), G = randoms(B * T * C, seed: 21)
        let g = NaiveReference.embeddingBackward(dOut: G, tokens: tokens, dTable: [Double](repeating: 0, count: V * C),
                                                 batch: B, time: T, channels: C)
        let fd = numericGradient(table) {
            dot(G, NaiveReference.embeddingForward(tokens: tokens, table: $0, positions: pos, batch: B, time: T, channels: C))
        }
        #expect(relErr(g, fd) < fdTolerance)
        #expect(g[4] == 0 && g[5] == 0)
        let cpu = CPUBench(), dt = cpu.zeros(V * C)
        cpu.dev.embeddingBackward(dOut: cpu.f(G), tokens: cpu.i(tokens), dTable: dt, batch: B, time: T, channels: C)
        #expect(relErr(cpu.read(dt), g) < deviceTolerance)
    }

    // MARK: gemm as a linear layer

    @Test("gemm as linear: Y = X·Wᵀ, dX = dY·W, dW = dYᵀ·X")
    func linear() {
        let N = 4, I = 3, O = 5
        let x = randoms(N * I, seed: 22), w = randoms(O * I, seed: 23), G = randoms(N * O, seed: 24)
        let fwd = GemmShape(m: N, n: O, k: I, transposeB: true)
        let dxShape = GemmShape(m: N, n: I, k: O), dwShape = GemmShape(m: O, n: I, k: N, transposeA: true)
        func loss(_ x: [Double], _ w: [Double]) -> Double {
            dot(G, NaiveReference.gemm(fwd, a: x, b: w, c: [Double](repeating: 0, count: N * O)))
        }
        let dx = NaiveReference.gemm(dxShape, a: G, b: w, c: [Double](repeating: .nan, count: N * I))   // beta 0: C unread
        let dw = NaiveReference.gemm(dwShape, a: G, b: x, c: [Double](repeating: 0, count: O * I))
        #expect(relErr(dx, numericGradient(x) { loss($0, w) }) < fdTolerance)
        #expect(relErr(dw, numericGradient(w) { loss(x, $0) }) < fdTolerance)

        let cpu = CPUBench(), cdx = cpu.zeros(N * I), cdw = cpu.zeros(O * I), vG = cpu.f(G)
        cpu.dev.gemm(dxShape, a: vG, b: cpu.f(w), c: cdx)
        cpu.dev.gemm(dwShape, a: vG, b: cpu.f(x), c: cdw)
        #expect(relErr(cpu.read(cdx), dx) < deviceTolerance)
        #expect(relErr(cpu.read(cdw), dw) < deviceTolerance)
    }

    @Test("gemm as MPO site step: shared core (strideA 0) and batch reduction (strideC 0)")
    func mpoSiteStep() {
        // out[p] (Mo, O) = Mᵀ (Mo, K) · in[p] (K, O); dM (K, Mo) = Σ_p in[p] · dOut[p]ᵀ; dIn[p] = M · dOut[p].
        let P = 3, K = 4, Mo = 2, O = 3
        let m = randoms(K * Mo, seed: 25), input = randoms(P * K * O, seed: 26), G = randoms(P * Mo * O, seed: 27)
        let fwd = GemmShape(m: Mo, n: O, k: K, transposeA: true, batch: P, strideA: 0, strideB: K * O, strideC: Mo * O)
        let dmShape = GemmShape(m: K, n: Mo, k: O, transposeB: true, batch: P, strideA: K * O, strideB: Mo * O, strideC: 0)
        let dinShape = GemmShape(m: K, n: O, k: Mo, batch: P, strideA: 0, strideB: Mo * O, strideC: K * O)
        func loss(_ m: [Double], _ input: [Double]) -> Double {
            dot(G, NaiveReference.gemm(fwd, a: m, b: input, c: [Double](repeating: 0, count: P * Mo * O)))
        }
        let dm = NaiveReference.gemm(dmShape, a: input, b: G, c: [Double](repeating: 0, count: K * Mo))
        let din = NaiveReference.gemm(dinShape, a: m, b: G, c: [Double](repeating: 0, count: P * K * O))
        #expect(relErr(dm, numericGradient(m) { loss($0, input) }) < fdTolerance)
        #expect(relErr(din, numericGradient(input) { loss(m, $0) }) < fdTolerance)

        let cpu = CPUBench(), cdm = cpu.f(randoms(K * Mo, seed: 28)), cdin = cpu.zeros(P * K * O), vG = cpu.f(G)
        cpu.dev.gemm(dmShape, a: cpu.f(input), b: vG, c: cdm)   // beta 0: the garbage in cdm must not survive
        cpu.dev.gemm(dinShape, a: cpu.f(m), b: vG, c: cdin)
        #expect(relErr(cpu.read(cdm), dm) < deviceTolerance)
        #expect(relErr(cpu.read(cdin), din) < deviceTolerance)
    }

    // MARK: permute

    @Test("permute: the gradient is the inverse permutation, accumulated")
    func permute() {
        let shape = [2, 3, 2, 2], order = [2, 0, 3, 1], n = 24
        let inverse = (0..<order.count).map { order.firstIndex(of: $0)! }
        let dShape = order.map { shape[$0] }
        let x = randoms(n, seed: 29), G = randoms(n, seed: 30), start = randoms(n, seed: 31)
        let g = NaiveReference.permute(G, shape: dShape, order: inverse, into: start, accumulate: true)
        let fd = numericGradient(x) {
            dot(G, NaiveReference.permute($0, shape: shape, order: order, into: [Double](repeating: 0, count: n), accumulate: false))
        }
        #expect(relErr(zip(g, start).map { $0 - $1 }, fd) < fdTolerance)
        let cpu = CPUBench(), dx = cpu.f(start)
        cpu.dev.permute(cpu.f(G), shape: dShape, order: inverse, into: dx, accumulate: true)
        #expect(relErr(cpu.read(dx), g) < deviceTolerance)
    }

    // MARK: distillation

    @Test("distillation: τ²·KL(teacher ‖ student) has the hand-derived gradient τ·(p − q)", arguments: [0.5, 1.0, 3.0])
    func distillation(temperature tau: Double) {
        let N = 3, V = 7
        let s = randoms(N * V, -3, 3, seed: 32), t = randoms(N * V, -3, 3, seed: 33), zero = [Double](repeating: 0, count: N * V)
        func loss(_ x: [Double]) -> Double {
            NaiveReference.distillation(student: x, teacher: t, dLogits: zero, rows: N, vocabulary: V, temperature: tau,
                                        gradScale: 1).losses.reduce(0, +)
        }
        let r = NaiveReference.distillation(student: s, teacher: t, dLogits: zero, rows: N, vocabulary: V, temperature: tau, gradScale: 1)
        #expect(relErr(r.dLogits, numericGradient(s, loss)) < fdTolerance)
        // KL(q ‖ q) = 0 and its gradient vanishes.
        let same = NaiveReference.distillation(student: t, teacher: t, dLogits: zero, rows: N, vocabulary: V, temperature: tau, gradScale: 1)
        #expect(same.losses.allSatisfy { abs($0) < 1e-12 } && same.dLogits.allSatisfy { abs($0) < 1e-12 })
        // A hand-computed value: V = 2, s = (0, 0), t = (log 3, 0), τ = 1: q = (3/4, 1/4), p = (1/2, 1/2),
        // KL = 3/4·log(3/2) + 1/4·log(1/2).
        let two = NaiveReference.distillation(student: [0, 0], teacher: [log(3), 0], dLogits: [0, 0], rows: 1, vocabulary: 2,
                                              temperature: 1, gradScale: 1)
        #expect(abs(two.losses[0] - (0.75 * log(1.5) + 0.25 * log(0.5))) < 1e-12)
        #expect(abs(two.dLogits[0] - (0.5 - 0.75)) < 1e-12)
        let cpu = CPUBench(), losses = cpu.zeros(N), d = cpu.f(randoms(N * V, seed: 34))
        cpu.dev.distillation(student: cpu.f(s), teacher: cpu.f(t), losses: losses, dLogits: d, temperature: Float(tau),
                             gradScale: 0.5, rows: N, vocabulary: V)
        let ref = NaiveReference.distillation(student: s, teacher: t, dLogits: randoms(N * V, seed: 34), rows: N, vocabulary: V,
                                              temperature: tau, gradScale: 0.5)
        #expect(relErr(cpu.read(losses), ref.losses) < deviceTolerance)
        #expect(relErr(cpu.read(d), ref.dLogits) < deviceTolerance)
    }

    @Test("squared distance: Σ(a − b)² has the gradient 2(a − b)")
    func squaredDistance() {
        let N = 4, C = 5
        let a = randoms(N * C, seed: 35), b = randoms(N * C, seed: 36), zero = [Double](repeating: 0, count: N * C)
        let r = NaiveReference.squaredDistance(a, b, dA: zero, rows: N, columns: C, gradScale: 1)
        let fd = numericGradient(a) { NaiveReference.squaredDistance($0, b, dA: zero, rows: N, columns: C, gradScale: 1).sums.reduce(0, +) }
        #expect(relErr(r.dA, fd) < fdTolerance)
        let cpu = CPUBench(), sums = cpu.zeros(N), d = cpu.f(zero)
        cpu.dev.squaredDistance(cpu.f(a), cpu.f(b), sums: sums, dA: d, gradScale: 1, rows: N, columns: C)
        #expect(relErr(cpu.read(sums), r.sums) < deviceTolerance && relErr(cpu.read(d), r.dA) < deviceTolerance)
    }
}
