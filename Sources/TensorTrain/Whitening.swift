// Data-aware truncation (SVD-LLM's truncation-aware data whitening). A linear layer's output
// error on calibration inputs X (rows × in) is ‖X·(W − Ŵ)ᵀ‖_F² = ‖(W − Ŵ)·S‖_F² where
// XᵀX/N = S·Sᵀ (Cholesky, S lower triangular). Truncating the SVD of W·S therefore minimises the
// output error on that data, not the weight error, and Ŵ = trunc(W·S)·S⁻¹: for a low-rank layer
// U·V the inverse folds into V exactly (V ← V·S⁻¹). Its singular values give the output error
// of every rank, so the allocator can level output errors instead of weight errors. An MPO whose
// input index is split over several sites cannot absorb a general S⁻¹ without growing its bonds:
// it is whitened by a Kronecker product of per-site factors (KroneckerWhitening), and
// WhitenedALS then fits its cores to the exact output error in that whitening's coordinates.

import CBLAS

/// The whitening transform of one layer's inputs.
public struct InputWhitening: Sendable {
    public let inFeatures: Int
    /// S, row-major and lower triangular (in × in), with S·Sᵀ = the damped second moment.
    public let factor: [Double]

    /// From the inputs' second moment `c` (row-major in × in, symmetric: XᵀX / rows), with
    /// `damping`·mean(diag c) added to the diagonal (dead or collinear inputs make c singular).
    public init(secondMoment c: [Double], inFeatures n: Int, damping: Double = 0.01) throws {
        precondition(c.count == n * n && n > 0, "second moment of \(c.count) values for \(n) inputs")
        var (a, meanDiagonal) = Self.damped(c, n: n, damping: damping)
        guard meanDiagonal.isFinite, meanDiagonal > 0 else {
            throw TensorTrainError("the calibration inputs of a layer are all zero or not finite (mean square \(meanDiagonal)); use another --calibration text")
        }
        // Row-major symmetric = column-major; "U" in column-major is the row-major lower factor.
        var uplo: CChar = 0x55, order = Int32(n), lda = Int32(n), info: Int32 = 0
        dpotrf_(&uplo, &order, &a, &lda, &info)
        guard info == 0 else {
            throw TensorTrainError("Cholesky factorisation of a layer's input second moment failed (LAPACK dpotrf info \(info)); raise the damping")
        }
        for i in 0..<n { for j in (i + 1)..<n { a[i * n + j] = 0 } }
        inFeatures = n; factor = a
    }

    /// The damping rule every whitened fit shares: c + damping·mean(diag c)·I, and mean(diag c).
    public static func damped(_ c: [Double], n: Int, damping: Double) -> (matrix: [Double], meanDiagonal: Double) {
        let meanDiagonal = (0..<n).reduce(0.0) { $0 + c[$1 * n + $1] } / Double(n)
        var a = c
        for i in 0..<n { a[i * n + i] += damping * meanDiagonal }
        return (a, meanDiagonal)
    }

    /// S⁻¹ (row-major, in × in).
    var inverse: [Double] { unwhiten((0..<(inFeatures * inFeatures)).map { $0 / inFeatures == $0 % inFeatures ? 1 : 0 }, rows: inFeatures) }

    /// W·S for a row-major (out × in) W.
    public func whiten(_ w: [Double], out: Int) -> [Double] {
        precondition(w.count == out * inFeatures)
        var r = [Double](repeating: 0, count: w.count)
        Double.gemm(m: out, n: inFeatures, k: inFeatures, w, factor, &r)
        return r
    }

    /// A·S⁻¹ for a row-major (rows × in) A: the right factor of a truncated W·S becomes that of Ŵ.
    public func unwhiten(_ a: [Double], rows: Int) -> [Double] {
        precondition(a.count == rows * inFeatures)
        var x = a
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, Int32(rows), Int32(inFeatures), 1,
                    factor, Int32(inFeatures), &x, Int32(inFeatures))
        return x
    }

    /// A·(S·Sᵀ)⁻¹ for a row-major (rows × in) A: the damped second moment's ridge solve, by two
    /// triangular solves on the factor (A·S⁻ᵀ, then ·S⁻¹).
    public func solve(_ a: [Double], rows: Int) -> [Double] {
        precondition(a.count == rows * inFeatures)
        var x = a
        let n = Int32(inFeatures)
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, Int32(rows), n, 1, factor, n, &x, n)
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, Int32(rows), n, 1, factor, n, &x, n)
        return x
    }
}

/// Whitening of an MPO layer whose input index is split over sites (i₀, i₁, …): the second moment
/// approximated by a Kronecker product M ≈ M₀ ⊗ M₁ ⊗ … (each Mₖ the partial trace of M over the
/// other factors, K-FAC's approximation; exact when M is such a product), so S = S₀ ⊗ S₁ ⊗ … and
/// S⁻¹ acts on each core's input leg alone: the bonds do not grow. A plain SVD layer [out, 1] ×
/// [1, in] has one input factor, and this is exactly InputWhitening. Scales do not matter (the
/// truncation minimises a norm up to a constant), so factors of size 1 are left out.
public struct KroneckerWhitening: Sendable {
    public let inFactors: [Int]
    /// Per site, its factor (nil for a factor of size 1).
    public let factors: [InputWhitening?]

    /// `unitScale`: each factor's partial trace taken relative to its mean diagonal (the output
    /// side's, OutputWhitening.kronecker: a Fisher's scale would otherwise grow every core's scale).
    public init(secondMoment m: [Double], inFactors: [Int], damping: Double = 0.01, unitScale: Bool = false) throws {
        let n = inFactors.reduce(1, *)
        precondition(m.count == n * n, "second moment of \(m.count) values for \(n) inputs")
        self.inFactors = inFactors
        var factors: [InputWhitening?] = []
        for (k, d) in inFactors.enumerated() {
            guard d > 1 else { factors.append(nil); continue }
            let stride = inFactors[(k + 1)...].reduce(1, *)
            var partial = [Double](repeating: 0, count: d * d)
            for i in 0..<n {   // Σ over indices that agree off site k
                let a = (i / stride) % d, base = i - a * stride
                for b in 0..<d { partial[a * d + b] += m[i * n + base + b * stride] }
            }
            if unitScale, case let mean = InputWhitening.damped(partial, n: d, damping: 0).meanDiagonal, mean > 0 {
                partial = partial.map { $0 / mean }
            }
            factors.append(try InputWhitening(secondMoment: partial, inFeatures: d, damping: damping))
        }
        self.factors = factors
    }

    /// The same for a diagonal second moment diag(d) (d > 0, n values, never an n × n matrix): each
    /// partial trace is diagonal, the marginal sum of d over the other factors, taken relative to
    /// its mean as `unitScale` takes the general ones; undamped (the caller floors d).
    init(diagonal d: [Double], inFactors: [Int]) throws {
        let n = inFactors.reduce(1, *)
        precondition(d.count == n, "a diagonal of \(d.count) values for \(n) inputs")
        self.inFactors = inFactors
        var factors: [InputWhitening?] = []
        for (k, dk) in inFactors.enumerated() {
            guard dk > 1 else { factors.append(nil); continue }
            let stride = inFactors[(k + 1)...].reduce(1, *)
            var marginal = [Double](repeating: 0, count: dk)
            for i in 0..<n { marginal[(i / stride) % dk] += d[i] }
            let mean = marginal.reduce(0, +) / Double(dk)
            var partial = [Double](repeating: 0, count: dk * dk)
            for a in 0..<dk { partial[a * dk + a] = marginal[a] / mean }
            factors.append(try InputWhitening(secondMoment: partial, inFeatures: dk, damping: 0))
        }
        self.factors = factors
    }

    /// Π_k S_k[i_k, i_k] per input i: S's diagonal (all of S for diagonal factors, init(diagonal:)).
    var diagonal: [Double] {
        var s: [Double] = [1]
        for (d, f) in zip(inFactors, factors) {
            s = s.flatMap { x in (0..<d).map { a in x * (f.map { $0.factor[a * d + a] } ?? 1) } }
        }
        return s
    }

    /// For a factorisation with a single input factor above 1 (a plain SVD layer, [1, in]), the
    /// exact whitening made already: the Kronecker product is then M itself. Nil otherwise.
    public init?(exact: InputWhitening, inFactors: [Int]) {
        guard inFactors.filter({ $0 > 1 }) == [exact.inFeatures] else { return nil }
        self.inFactors = inFactors
        factors = inFactors.map { $0 > 1 ? exact : nil }
    }

    /// Applies `matrix(k)` (d × d, row-major) to every site-k input leg of a row-major W (out × in).
    private func apply(_ w: [Double], rows: Int, _ matrix: (Int) -> [Double]?) -> [Double] {
        var w = w
        let n = inFactors.reduce(1, *)
        for (k, d) in inFactors.enumerated() {
            guard let t = matrix(k) else { continue }
            let stride = inFactors[(k + 1)...].reduce(1, *)
            w = Self.middleAxisProduct(w, blocks: rows * n / (d * stride), d: d, stride: stride, t)
        }
        return w
    }

    /// y[blk, b, s] = Σ_a x[blk, a, s]·t[a, b] for a row-major (blocks, d, stride) tensor x and a
    /// row-major (d × d) t: the middle axis times t, by BLAS (one GEMM when stride is 1).
    static func middleAxisProduct(_ x: [Double], blocks: Int, d: Int, stride: Int, _ t: [Double]) -> [Double] {
        precondition(x.count == blocks * d * stride && t.count == d * d)
        var y = [Double](repeating: 0, count: x.count)
        if stride == 1 {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(blocks), Int32(d), Int32(d), 1, x, Int32(d), t, Int32(d), 0, &y, Int32(d))
            return y
        }
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                for blk in 0..<blocks {   // y_blk (d × stride) = tᵀ · x_blk
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(d), Int32(stride), Int32(d), 1, t, Int32(d),
                                xp.baseAddress! + blk * d * stride, Int32(stride), 0, yp.baseAddress! + blk * d * stride, Int32(stride))
                }
            }
        }
        return y
    }

    /// W·S for a row-major (out × in) W.
    public func whiten(_ w: [Double], out: Int) -> [Double] { apply(w, rows: out) { factors[$0]?.factor } }

    /// Whether S·Sᵀ is the second moment itself (at most one input factor above 1): the
    /// whitened truncation is then exact and WhitenedALS has nothing to refine.
    public var isExact: Bool { factors.filter { $0 != nil }.count <= 1 }

    /// G′ = S⁻¹·G·S⁻ᵀ for the second moment `m` (row-major in × in) damped as InputWhitening
    /// damps it: the metric of the exact output error in this whitening's coordinates (the
    /// identity when m is the Kronecker product S·Sᵀ). WhitenedALS fits the cores in it.
    public func metric(secondMoment m: [Double], damping: Double = 0.01) -> [Double] {
        let n = inFactors.reduce(1, *)
        precondition(m.count == n * n, "second moment of \(m.count) values for \(n) inputs")
        let g = InputWhitening.damped(m, n: n, damping: damping).matrix
        let inverseTransposed: [[Double]?] = factors.map { f in f.map { transposed($0.inverse, $0.inFeatures) } }   // S_k⁻ᵀ
        let gt = apply(g, rows: n) { inverseTransposed[$0] }               // G·S⁻ᵀ
        let h = apply(transposed(gt, n), rows: n) { inverseTransposed[$0] }  // (G·S⁻ᵀ)ᵀ·S⁻ᵀ = (S⁻¹·G·S⁻ᵀ)ᵀ
        return transposed(h, n)
    }

    private func transposed(_ a: [Double], _ n: Int) -> [Double] { (0..<(n * n)).map { a[($0 % n) * n + $0 / n] } }

    /// Every core's input leg times S_k⁻¹: the cores of trunc(W·S) become those of Ŵ. With
    /// `outputLeg` (this whitening made over the output factors, OutputWhitening.kronecker) every
    /// core's output leg times S_k⁻ᵀ instead, y[b, o, ·] = Σ_a x[b, a, ·]·(S_k⁻¹)[a, o].
    public func unwhiten(_ cores: inout MPOCores<Double>, outputLeg: Bool = false) {
        for (k, f) in factors.enumerated() {
            guard let f else { continue }
            let d = f.inFeatures, shape = cores.coreShapes[k]   // (b, o, i, b′)
            cores.cores[k] = outputLeg
                ? Self.middleAxisProduct(cores.cores[k], blocks: shape[0], d: d, stride: shape[2] * shape[3], f.inverse)
                : Self.middleAxisProduct(cores.cores[k], blocks: shape[0] * shape[1], d: d, stride: shape[3], f.inverse)
        }
    }
}

/// The output side of a plain SVD layer's two-sided whitening. Under K-FAC's Fisher F ≈ G ⊗ M
/// (G = E[g·gᵀ] of the loss gradient g the layer's outputs receive, M = E[x·xᵀ] of its inputs)
/// a change ΔW raises the loss by about ½·tr(G·ΔW·M·ΔWᵀ) = ½·‖Sgᵀ·ΔW·S‖², so truncating
/// Sgᵀ·W·S minimises it at every rank: Ŵ = Sg⁻ᵀ·trunc(Sgᵀ·W·S)·S⁻¹, the left inverse folding
/// into U exactly as S⁻¹ folds into V. `.rows` is a diagonal G (weights per output row, given
/// as their square roots: a tied table's tokens); `.full` the Cholesky factor of G + δI.
/// `.kronecker` is an MPO's output side: G ≈ G₀ ⊗ G₁ ⊗ … over its output factors (partial traces,
/// as KroneckerWhitening approximates the inputs' moment), so Sg⁻ᵀ acts on each core's output leg
/// alone and the bonds do not grow; it keeps G/ḡ and δ for `metric()`, H′ = Sg⁻¹·(G/ḡ + δI)·Sg⁻ᵀ,
/// in which WhitenedALS fits the cores to the exact two-sided error. `.kroneckerRows` is a diagonal
/// G (a tied table's per-token weights) on an MPO table: diag(d) ≈ D₀ ⊗ D₁ ⊗ … (each D_k the
/// marginal sum of d over the other token factors), and H′ = d / (D₀ ⊗ D₁ ⊗ …) stays diagonal.
public enum OutputWhitening: Sendable {
    case rows([Double])
    case full(InputWhitening)
    case kronecker(KroneckerWhitening, moment: [Double], damping: Double)
    case kroneckerRows(KroneckerWhitening, weights: [Double])

    /// The damping of an empirical output Fisher (compress --output-fisher): G + mean diag(G)·I.
    /// Per-token gradients of a few thousand tokens leave most output directions nearly unseen;
    /// at the inputs' 0.01 the truncation trusts that and a tiny Llama lost 5× more than with the
    /// inputs whitened alone, at 1 it lost less. A tied table's per-token weights p̄ + 1/V are
    /// floored the same way (one mean share).
    public static let fisherDamping = 1.0

    /// Row o weighted by d_o (> 0). Like `secondMoment`'s, the weights are taken relative to
    /// their mean: the truncation does not depend on their scale, but the split of Ŵ into U and
    /// V does, and training moves tiny V entries by Adam's per-entry steps.
    public init(rowWeights d: [Double]) {
        let mean = d.reduce(0, +) / Double(max(d.count, 1))
        self = .rows(d.map { ($0 / mean).squareRoot() })
    }

    /// Row o weighted by d_o (> 0) on a layer of factorisation `f`: `.rows` for a plain SVD layer
    /// (exact), `.kroneckerRows` otherwise — d taken relative to its mean as `.rows` takes it, each
    /// site's marginal relative to its own mean (the per-factor scale KroneckerWhitening(unitScale:)
    /// gives G's partial traces), no damping (the weights come floored: fisherRowWeights).
    public init(rowWeights d: [Double], factorization f: MPOFactorization) throws {
        let n = f.outFeatures
        guard d.count == n, d.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw TensorTrainError("per-row weights must be \(n) positive numbers (got \(d.count))")
        }
        if f == MPOFactorization.lowRank(out: n, in: f.inFeatures) { self = .init(rowWeights: d); return }
        let mean = d.reduce(0, +) / Double(n), unit = d.map { $0 / mean }
        self = .kroneckerRows(try KroneckerWhitening(diagonal: unit, inFactors: f.outFactors), weights: unit)
    }

    /// G (out × out, row-major) damped by δ = damping · mean diagonal (fisherDamping unless told), taken
    /// relative to its mean diagonal: loss gradients are small (about 1/tokens), and Sg⁻ᵀ would
    /// scale U up and V down by as much — a model 2,000× more sensitive to an Adam step (a
    /// SmolLM2 heal diverged at lr 5e-6 before this).
    public init(secondMoment g: [Double], outFeatures n: Int, damping: Double = fisherDamping) throws {
        self = .full(try InputWhitening(secondMoment: try Self.relativeToMeanDiagonal(g, n: n), inFeatures: n, damping: damping))
    }

    /// G / mean(diag G), the scale every output side takes G at.
    static func relativeToMeanDiagonal(_ g: [Double], n: Int) throws -> [Double] {
        precondition(g.count == n * n, "output second moment of \(g.count) values for \(n) outputs")
        let mean = InputWhitening.damped(g, n: n, damping: 0).meanDiagonal
        guard mean > 0, mean.isFinite else { throw TensorTrainError("the output gradients' second moment has mean diagonal \(mean): nothing to whiten by") }
        return g.map { $0 / mean }
    }

    /// For a layer of factorisation `f`: `.full` for a plain SVD layer (exact), `.kronecker` over
    /// the output factors otherwise, G taken relative to its mean diagonal and damped as `.full`.
    public init(secondMoment g: [Double], factorization f: MPOFactorization, damping: Double = fisherDamping) throws {
        let n = f.outFeatures
        if f == MPOFactorization.lowRank(out: n, in: f.inFeatures) { self = try .init(secondMoment: g, outFeatures: n, damping: damping); return }
        let unit = try Self.relativeToMeanDiagonal(g, n: n)
        self = .kronecker(try KroneckerWhitening(secondMoment: unit, inFactors: f.outFactors, damping: damping, unitScale: true),
                          moment: unit, damping: damping)
    }

    public var outFeatures: Int {
        switch self {
        case .rows(let s): return s.count
        case .full(let f): return f.inFeatures
        case .kronecker(let k, _, _), .kroneckerRows(let k, _): return k.inFactors.reduce(1, *)
        }
    }

    /// The output metric WhitenedALS needs to make the fit exact (nil when the whitening is),
    /// made on demand: the spectra allocation only whitens.
    public func metric() -> OutputMetric? {
        switch self {
        case .rows, .full: return nil
        case .kronecker(let k, let unit, let damping): return k.isExact ? nil : .dense(k.metric(secondMoment: unit, damping: damping))
        case .kroneckerRows(let k, let unit):
            guard !k.isExact else { return nil }
            return .diagonal(zip(unit, k.diagonal).map { $0 / ($1 * $1) })
        }
    }

    /// Sgᵀ·W for a row-major W (out × `columns`).
    public func whiten(_ w: [Double], columns n: Int) -> [Double] {
        let m = outFeatures
        precondition(w.count == m * n)
        switch self {
        case .rows(let s):
            return Self.scaledRows(w, by: s, columns: n)
        case .full(let f):   // (Wᵀ·Sg)ᵀ
            return Self.transposed(f.whiten(Self.transposed(w, rows: m, columns: n), out: n), rows: n, columns: m)
        case .kronecker(let k, _, _):
            return Self.transposed(k.whiten(Self.transposed(w, rows: m, columns: n), out: n), rows: n, columns: m)
        case .kroneckerRows(let k, _):
            return Self.scaledRows(w, by: k.diagonal, columns: n)
        }
    }

    /// The cores of trunc(Sgᵀ·W·S) (input side unwhitened or not) become those of Sg⁻ᵀ·trunc(…):
    /// a plain SVD layer's U (core 0, (1, out, 1, r)) times Sg⁻ᵀ, or every core's output leg times
    /// its site's Sg_k⁻ᵀ.
    public func unwhiten(_ cores: inout MPOCores<Double>) {
        switch self {
        case .kronecker(let k, _, _), .kroneckerRows(let k, _): k.unwhiten(&cores, outputLeg: true)
        case .rows, .full: cores.cores[0] = unwhiten(cores.cores[0], columns: cores.bonds[1])
        }
    }

    /// Sg⁻ᵀ·U for a row-major U (out × `columns`): the left factor of a truncated Sgᵀ·W·S.
    public func unwhiten(_ u: [Double], columns r: Int) -> [Double] {
        let m = outFeatures
        precondition(u.count == m * r)
        switch self {
        case .rows(let s):
            return Self.scaledRows(u, by: s.map { 1 / $0 }, columns: r)
        case .full(let f):   // (Uᵀ·Sg⁻¹)ᵀ
            return Self.transposed(f.unwhiten(Self.transposed(u, rows: m, columns: r), rows: r), rows: r, columns: m)
        case .kronecker, .kroneckerRows:
            preconditionFailure("a Kronecker output whitening unwhitens the cores: unwhiten(_: inout MPOCores)")
        }
    }

    static func scaledRows(_ a: [Double], by s: [Double], columns n: Int) -> [Double] {
        var r = a
        for o in s.indices { for j in 0..<n { r[o * n + j] *= s[o] } }
        return r
    }

    static func transposed(_ a: [Double], rows: Int, columns: Int) -> [Double] {
        var t = [Double](repeating: 0, count: a.count)
        for i in 0..<rows { for j in 0..<columns { t[j * rows + i] = a[i * columns + j] } }
        return t
    }
}
