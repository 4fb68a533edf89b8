// Exact whitened truncation of MPOs (WhitenedALS, docs/SPEC.md §4): the metric G′ puts the
// damped second moment in the Kronecker whitening's coordinates; ALS from the Kronecker-whitened
// TT-SVD lowers the exact output error of 2- and 3-site MPOs on inputs whose statistics are not
// a Kronecker product, never raises it, keeps the bonds, converges to a point where the error's
// gradient (by finite differences, in plain loops) vanishes, and changes nothing where the
// Kronecker whitening is already exact.

import Foundation
import Testing
import TensorTrain
import TestSupport
@testable import MPOKit

struct ALSTests {
    /// ‖(W − Ŵ)·S‖² / ‖W·S‖² with S·Sᵀ = g, by plain loops: tr(D·g·Dᵀ) / tr(W·g·Wᵀ).
    static func outputError(_ w: [Double], _ what: [Double], out: Int, n: Int, metric g: [Double]) -> Double {
        var e = 0.0, t = 0.0
        for o in 0..<out { for i in 0..<n { for j in 0..<n {
            let di = w[o * n + i] - what[o * n + i], dj = w[o * n + j] - what[o * n + j]
            e += di * g[i * n + j] * dj; t += w[o * n + i] * g[i * n + j] * w[o * n + j]
        } } }
        return (e / t).squareRoot()
    }

    static func damped(_ c: [Double], n: Int, _ damping: Double) -> [Double] {
        let mean = (0..<n).reduce(0.0) { $0 + c[$1 * n + $1] } / Double(n)
        var g = c
        for i in 0..<n { g[i * n + i] += damping * mean }
        return g
    }

    /// The Kronecker-whitened TT-SVD of W (whitened coordinates), W′ = W·S̃ and G′.
    static func start(_ w: [Double], _ f: MPOFactorization, caps: [Int], moment c: [Double]) throws
        -> (MPOCores<Double>, KroneckerWhitening, [Double], [Double]) {
        let kw = try KroneckerWhitening(secondMoment: c, inFactors: f.inFactors)
        let target = kw.whiten(w, out: f.outFeatures)
        let (cores, _) = try ttSVD(target, factorization: f, maxBonds: caps)
        return (cores, kw, target, kw.metric(secondMoment: c))
    }

    /// A random (10 × 12) W, the second moment of correlated inputs (not a Kronecker product), and it damped.
    static func problem(seed: UInt64) -> (w: [Double], moment: [Double], metric: [Double]) {
        let n = 12, c = WhiteningTests.moment(WhiteningTests.inputs(rows: 300, n: n, seed: seed), rows: 300, n: n)
        var rng = SplitMix64(seed: seed + 1)
        return ((0..<(10 * n)).map { _ in rng.normal() }, c, Self.damped(c, n: n, 0.01))
    }

    static let cases: [(MPOFactorization, [Int])] = [
        (try! MPOFactorization(outFactors: [2, 5], inFactors: [3, 4]), [1, 3, 1]),
        (try! MPOFactorization(outFactors: [2, 1, 5], inFactors: [2, 3, 2]), [1, 3, 4, 1]),
    ]

    @Test("G′ = S̃⁻¹·(G + δI)·S̃⁻ᵀ: S̃·G′·S̃ᵀ gives the damped moment back, and G′ ∝ I for a Kronecker-product moment")
    func metric() throws {
        let n = 12, c = WhiteningTests.moment(WhiteningTests.inputs(rows: 200, n: n, seed: 11), rows: 200, n: n)
        let kw = try KroneckerWhitening(secondMoment: c, inFactors: [3, 4])
        let exactSVD = KroneckerWhitening(exact: try InputWhitening(secondMoment: c, inFeatures: n), inFactors: [1, n])
        #expect(!kw.isExact && exactSVD?.isExact == true)
        let g = kw.metric(secondMoment: c)
        let st = WhiteningTests.kron(kw.factors[0]!.factor, 3, kw.factors[1]!.factor, 4)   // S̃ = S₀ ⊗ S₁
        var back = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { for a in 0..<n { for b in 0..<n { back[i * n + j] += st[i * n + a] * g[a * n + b] * st[j * n + b] } } } }
        let target = Self.damped(c, n: n, 0.01)
        let worst = (0..<(n * n)).map { abs(back[$0] - target[$0]) }.max()!
        #expect(worst < 1e-9 * target[0], "S̃·G′·S̃ᵀ off by \(worst)")
        // A Kronecker product moment (no damping): the metric is the identity.
        var rng = SplitMix64(seed: 12)
        let kk = WhiteningTests.kroneckerMoment(3, 4, rng: &rng)
        let identity = try KroneckerWhitening(secondMoment: kk, inFactors: [3, 4], damping: 0).metric(secondMoment: kk, damping: 0)
        // (The Kronecker factors are partial traces, so their product is the moment times a scale.)
        let scale = identity[0], offIdentity = (0..<(n * n)).map { abs(identity[$0] - ($0 / n == $0 % n ? scale : 0)) }.max()!
        #expect(scale > 0 && offIdentity < 1e-9 * scale, "G′ off \(scale)·I by \(offIdentity)")
    }

    @Test("ALS lowers the exact output error of 2- and 3-site MPOs below the Kronecker-whitened TT-SVD's, monotonically, with the same bonds")
    func lowersTheError() throws {
        let n = 12, out = 10, (w, c, g) = Self.problem(seed: 13)
        for (f, caps) in Self.cases {
            let (cores, kw, target, metric) = try Self.start(w, f, caps: caps, moment: c)
            func exact(_ m: MPOCores<Double>) -> Double {
                var u = m
                kw.unwhiten(&u)
                return Self.outputError(w, contractMPO(u), out: out, n: n, metric: g)
            }
            let e0 = exact(cores)
            var previous = e0
            for sweeps in [1, 2, 4] {
                var m = cores
                let report = try WhitenedALS.refine(&m, target: target, metric: metric, sweeps: sweeps, iterations: 30)
                let e = exact(m)
                #expect(m.bonds == cores.bonds && m.cores.map(\.count) == cores.cores.map(\.count))
                #expect(abs(report.startError - e0) < 1e-9 && abs(report.endError - e) < 1e-9, "report \(report) vs \(e0) → \(e)")
                #expect(report.visits == sweeps * 2 * (f.sites - 1))
                #expect(e <= previous + 1e-12, "\(f): \(sweeps) sweeps \(e) after \(previous)")
                previous = e
            }
            #expect(previous < 0.97 * e0, "\(f): ALS \(previous) vs Kronecker-whitened \(e0)")
        }
    }

    @Test("converged ALS is a stationary point of the exact output error (finite differences in plain loops, every core)")
    func stationary() throws {
        let n = 12, out = 10, (w, c, g) = Self.problem(seed: 15)
        for (f, caps) in Self.cases {
            var (m, kw, target, metric) = try Self.start(w, f, caps: caps, moment: c)
            func gradientNorm(_ m: MPOCores<Double>) -> Double {   // ‖∂ error² / ∂ cores‖ in the original coordinates
                var u = m
                kw.unwhiten(&u)
                var total = 0.0
                for k in 0..<f.sites { for i in u.cores[k].indices {
                    let h = 1e-6 * max(1, abs(u.cores[k][i]))
                    var plus = u, minus = u
                    plus.cores[k][i] += h; minus.cores[k][i] -= h
                    let d = (pow(Self.outputError(w, contractMPO(plus), out: out, n: n, metric: g), 2)
                        - pow(Self.outputError(w, contractMPO(minus), out: out, n: n, metric: g), 2)) / (2 * h)
                    total += d * d
                } }
                return total.squareRoot()
            }
            let before = gradientNorm(m)
            _ = try WhitenedALS.refine(&m, target: target, metric: metric, sweeps: 60, iterations: 200)
            let after = gradientNorm(m)
            #expect(after < 1e-3 * before, "\(f): gradient \(before) → \(after)")
        }
    }

    @Test("where the Kronecker whitening is exact (a Kronecker-product moment) ALS keeps the TT-SVD's error")
    func nothingToRefine() throws {
        let n = 12, out = 10
        var rng = SplitMix64(seed: 17)
        let c = WhiteningTests.kroneckerMoment(3, 4, rng: &rng)
        let w = (0..<(out * n)).map { _ in rng.normal() }
        let f = Self.cases[0].0
        let kw = try KroneckerWhitening(secondMoment: c, inFactors: f.inFactors, damping: 0)
        let target = kw.whiten(w, out: out)
        var (m, _) = try ttSVD(target, factorization: f, maxBonds: [1, 3, 1])
        let report = try WhitenedALS.refine(&m, target: target, metric: kw.metric(secondMoment: c, damping: 0), sweeps: 3, iterations: 50)
        #expect(report.startError > 0.05 && abs(report.endError - report.startError) < 1e-9 * report.startError, "\(report)")
    }
}
