// Exact data-aware truncation of an MPO (docs/SPEC.md §4): alternating least squares of the
// cores against a layer's output error on its calibration inputs.
//
// The output error of Ŵ on inputs with damped second moment G is tr((Ŵ − W)·G·(Ŵ − W)ᵀ). An MPO
// splits the input index over its sites, so KroneckerWhitening truncates in the metric of a
// Kronecker product S̃·S̃ᵀ ≈ G instead, which is exact only when G is such a product. ALS makes
// it exact: in the whitened coordinates Ŵ = Ŵ′·S̃⁻¹ (the cores the whitened TT-SVD returns,
// before KroneckerWhitening.unwhiten) the error is tr((Ŵ′ − W′)·G′·(Ŵ′ − W′)ᵀ) with W′ = W·S̃
// and G′ = S̃⁻¹·G·S̃⁻ᵀ — the identity when the Kronecker product is exact, so the TT-SVD is
// the start and G′'s distance from I is what is left to fit. With every core but k fixed, Ŵ′
// is linear in core k, Ŵ′ = P_k(C), and the best C solves P_kᵀ(P_k(C)·G′) = P_kᵀ(W′·G′): a
// positive definite system solved by conjugate gradients from the current core, matrix-free
// (one contraction, one product with G′ and one projection per iteration, in single precision;
// the right-hand side and the errors in double). Between visits the
// gauge moves to the next core (an SVD of the visited core, its non-orthogonal part pushed into
// the neighbour), so every other core is an isometry and the system is as well conditioned as
// G′. Every visit can only lower the error (CG from a warm start on a convex quadratic; a visit
// whose single-precision solve did not lower it in double is undone), and the bonds never change.
//
// With an output metric too (compress --output-fisher on an MPO: K-FAC's two-sided Fisher, the
// outputs whitened by a Kronecker product over the output factors, OutputWhitening.kronecker) the
// error is tr(H′·(Ŵ′ − W′)·G′·(Ŵ′ − W′)ᵀ), H′ the output side's metric in its coordinates; the
// system becomes P_kᵀ(H′·P_k(C)·G′) = P_kᵀ(H′·W′·G′), one more product per iteration. A tied
// table's per-token weights (--embedding-error fisher with an MPO table) make H′ diagonal: a
// row scaling, never an out × out matrix (49,152² for SmolLM2's vocabulary).

import CBLAS

/// The output side's metric H′ in WhitenedALS: a dense (out × out) matrix, or a diagonal (out).
public enum OutputMetric: Sendable, Equatable {
    case dense([Double])
    case diagonal([Double])

    /// A → H′·A for row-major A (out × n) in precision S, H′ converted to S once.
    func product<S: LAPACKScalar>(out: Int, columns n: Int, _: S.Type) -> ([S]) -> [S] {
        switch self {
        case .dense(let h):
            let hs = h.map { S($0) }
            return { matmul(hs, $0, m: out, k: out, n: n) }
        case .diagonal(let h):
            let hs = h.map { S($0) }
            return { a in
                var r = a
                for o in 0..<out { for j in 0..<n { r[o * n + j] *= hs[o] } }
                return r
            }
        }
    }

    func fits(out: Int) -> Bool {
        switch self {
        case .dense(let h): return h.count == out * out
        case .diagonal(let h): return h.count == out
        }
    }
}

/// The result of WhitenedALS.refine: the relative errors ‖(Ŵ′ − W′)‖_G′ / ‖W′‖_G′ at the
/// start and at the end.
public struct ALSReport: Sendable, Equatable {
    public var startError: Double
    public var endError: Double
    /// ‖W′‖²_G′ = tr(W′·G′·W′ᵀ): the output energy the errors are relative to.
    public var targetNormSquared: Double
    /// Core visits made.
    public var visits: Int
}

public enum WhitenedALS {
    /// Refines `cores` (in the coordinates of `target`) to minimise tr((Ŵ − target)·metric·(Ŵ −
    /// target)ᵀ): `sweeps` passes right to left and back, `iterations` CG steps per core visit.
    /// `target` is row-major (out × in), `metric` row-major (in × in), symmetric positive definite;
    /// `outputMetric` (out × out or diagonal, the same), when given, weighs the outputs: the error
    /// is then tr(H·(Ŵ − target)·G·(Ŵ − target)ᵀ).
    public static func refine(_ m: inout MPOCores<Double>, target: [Double], metric g: [Double], outputMetric h: OutputMetric? = nil,
                              sweeps: Int = 2, iterations: Int = 20) throws -> ALSReport {
        try m.checkShapes()
        let f = m.factorization, out = f.outFeatures, n = f.inFeatures
        precondition(target.count == out * n && g.count == n * n, "ALS: a \(out)×\(n) target needs an \(n)×\(n) metric")
        precondition(h.map { $0.fits(out: out) } ?? true, "ALS: a \(out)×\(n) target needs an \(out)×\(out) or diagonal output metric")
        let h64 = h?.product(out: out, columns: n, Double.self), h32 = h?.product(out: out, columns: n, Float.self)
        func weighed(_ w: [Double]) -> [Double] {   // H·W·G (W·G without an output metric), row-major
            let wg = matmul(w, g, m: out, k: n, n: n)
            return h64.map { $0(wg) } ?? wg
        }
        let e = interleaved(weighed(target), f)                            // H′·W′·G′, interleaved
        let targetNorm = dot(interleaved(target, f), e)                   // ‖W′‖²
        guard targetNorm > 0, targetNorm.isFinite else {
            return ALSReport(startError: 0, endError: 0, targetNormSquared: 0, visits: 0)
        }
        func error(_ m: MPOCores<Double>) -> Double {   // ‖Ŵ − W′‖ / ‖W′‖ in the metric, from ‖Ŵ‖², ⟨Ŵ, H′W′G′⟩, ‖W′‖²
            let w = contractCores(m)
            let e2 = dot(w, weighed(w)) - 2 * dot(interleaved(w, f), e) + targetNorm
            return (max(e2, 0) / targetNorm).squareRoot()
        }
        let start = error(m)
        let sites = f.sites
        guard sites > 1, sweeps > 0, iterations > 0 else { return ALSReport(startError: start, endError: start, targetNormSquared: targetNorm, visits: 0) }
        // Zigzag from the last core (the TT-SVD leaves the others left-orthonormal).
        var order: [Int] = [], k = sites - 1, step = -1
        for _ in 0..<(sweeps * 2 * (sites - 1)) {
            order.append(k)
            if k + step < 0 || k + step >= sites { step = -step }
            k += step
        }
        let g32 = g.map(Float.init)
        var current = start
        for (v, k) in order.enumerated() {
            // The right-hand side in Double; the Hessian's products (nearly all the work) in Float.
            let b = Environment(m, site: k).project(e), env = Environment(m.converted(to: Float.self), site: k)
            let kept = m.cores[k]
            m.cores[k] = conjugateGradient(kept, b: b, iterations: iterations) { c in
                let w = deinterleaved(env.expand(c.map(Float.init)), f), wg = matmul(w, g32, m: out, k: n, n: n)
                return env.project(interleaved(h32.map { $0(wg) } ?? wg, f)).map(Double.init)
            }
            let now = error(m)   // in Double: a visit whose single-precision solve did not help is undone
            if now <= current { current = now } else { m.cores[k] = kept }
            if v + 1 < order.count { moveGauge(&m, from: k, to: order[v + 1]) }
        }
        return ALSReport(startError: start, endError: current, targetNormSquared: targetNorm, visits: order.count)
    }

    /// x minimising ½xᵀAx − bᵀx from x₀, at most `iterations` CG steps (A symmetric positive definite).
    static func conjugateGradient(_ x0: [Double], b: [Double], iterations: Int, _ a: ([Double]) -> [Double]) -> [Double] {
        var x = x0, r = b
        let ax = a(x)
        for i in r.indices { r[i] -= ax[i] }
        var p = r, rs = dot(r, r)
        let stop = 1e-20 * max(dot(b, b), .leastNormalMagnitude)
        for _ in 0..<iterations {
            guard rs > stop else { break }
            let ap = a(p), curvature = dot(p, ap)
            guard curvature > 0, curvature.isFinite else { break }
            let alpha = rs / curvature
            for i in x.indices { x[i] += alpha * p[i]; r[i] -= alpha * ap[i] }
            let next = dot(r, r), beta = next / rs
            rs = next
            for i in p.indices { p[i] = r[i] + beta * p[i] }
        }
        return x
    }

    /// Moves the non-orthogonal part of core `k` into its neighbour `to` (k ± 1): core k becomes
    /// an isometry towards the other cores. Skipped when the core is too small for that without
    /// changing the bond (the next solve is then correct, only less well conditioned).
    static func moveGauge(_ m: inout MPOCores<Double>, from k: Int, to next: Int) {
        let s = m.coreShapes[k], l = s[0], oi = s[1] * s[2], r = s[3]
        if next == k - 1 {   // core k = (U·S)·Vᵀ as (l × oi·r): keep Vᵀ, core k−1 ← core k−1·(U·S)
            guard l <= oi * r, let (u, sv, vt) = try? thinSVD(m.cores[k], rows: l, cols: oi * r) else { return }
            var us = u
            for i in 0..<l { for j in 0..<l { us[i * l + j] *= sv[j] } }
            m.cores[k] = vt
            let left = m.cores[k - 1].count / l
            m.cores[k - 1] = matmul(m.cores[k - 1], us, m: left, k: l, n: l)
        } else {             // core k = U·(S·Vᵀ) as (l·oi × r): keep U, core k+1 ← (S·Vᵀ)·core k+1
            guard l * oi >= r, let (u, sv, vt) = try? thinSVD(m.cores[k], rows: l * oi, cols: r) else { return }
            var svt = vt
            for i in 0..<r { for j in 0..<r { svt[i * r + j] *= sv[i] } }
            m.cores[k] = u
            let right = m.cores[k + 1].count / r
            m.cores[k + 1] = matmul(svt, m.cores[k + 1], m: r, k: r, n: right)
        }
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count)
        return cblas_ddot(Int32(a.count), a, 1, b, 1)
    }

    /// Core k's environment: the cores left of it contracted to (P × l), those right of it to
    /// (r × Q), P and Q the products of their sites' o·i (1 at the ends).
    struct Environment<S: LAPACKScalar> {
        let left: [S], right: [S], p: Int, q: Int, l: Int, oi: Int, r: Int

        init(_ m: MPOCores<S>, site k: Int) {
            let shapes = m.coreShapes
            l = shapes[k][0]; oi = shapes[k][1] * shapes[k][2]; r = shapes[k][3]
            var left: [S] = [1], p = 1
            for s in 0..<k {   // (p × b) · (b × oi·b′) → (p·oi × b′)
                let sh = shapes[s]
                left = matmul(left, m.cores[s], m: p, k: sh[0], n: sh[1] * sh[2] * sh[3])
                p *= sh[1] * sh[2]
            }
            var right: [S] = [1], q = 1
            for s in stride(from: shapes.count - 1, to: k, by: -1) {   // (b × oi·b′) · (b′ × q) → (b × oi·q)
                let sh = shapes[s]
                right = matmul(m.cores[s], right, m: sh[0] * sh[1] * sh[2], k: sh[3], n: q)
                q *= sh[1] * sh[2]
            }
            self.left = left; self.right = right; self.p = p; self.q = q
        }

        /// The interleaved Ŵ of the MPO with core k = c (l × oi × r): (P × l)·c·(r × Q).
        func expand(_ c: [S]) -> [S] {
            let lc = matmul(left, c, m: p, k: l, n: oi * r)            // (P·oi × r)
            return matmul(lc, right, m: p * oi, k: r, n: q)           // (P·oi × Q)
        }

        /// Pₖᵀ: an interleaved (P·oi × Q) tensor contracted with both environments → (l × oi × r).
        func project(_ t: [S]) -> [S] {
            var tr = [S](repeating: 0, count: p * oi * r), c = [S](repeating: 0, count: l * oi * r)
            t.withUnsafeBufferPointer { t in right.withUnsafeBufferPointer { right in tr.withUnsafeMutableBufferPointer { tr in
                S.gemm(transposeA: false, transposeB: true, m: p * oi, n: r, k: q, t.baseAddress!, lda: q,   // t·rightᵀ
                       right.baseAddress!, ldb: q, tr.baseAddress!)
            } } }
            left.withUnsafeBufferPointer { left in tr.withUnsafeBufferPointer { tr in c.withUnsafeMutableBufferPointer { c in
                S.gemm(transposeA: true, transposeB: false, m: l, n: oi * r, k: p, left.baseAddress!, lda: l,   // leftᵀ·tr
                       tr.baseAddress!, ldb: oi * r, c.baseAddress!)
            } } }
            return c
        }
    }
}
