// TTSVD.swift — dense (out, in) matrix → MPO cores by sequential truncated SVDs (TT-SVD,
// docs/SPEC.md §3), with an error report. The SVDs run in the input precision (dgesdd for Double,
// sgesdd for Float); every number in the report is accumulated in Double.
//
// Algorithm (exactly docs/SPEC.md §3):
//  1. View W row-major as (o0..o_{L-1}, i0..i_{L-1}); permute to interleaved (o0,i0,o1,i1,…);
//     r_0 = 1; the "remainder" starts as that tensor.
//  2. For l = 0..L-2: unfold the remainder to (r_l·o_l·i_l) × (∏_{k>l} o_k·i_k); thin SVD
//     U·diag(S)·Vᵀ; keep r = min(χ, #singular values) — with a relative tolerance τ, r is further
//     reduced to the smallest r ≥ 1 with sqrt(Σ_{k≥r} S_k²) ≤ τ·‖remainder‖_F (per step, relative
//     to the remainder being split, ‖remainder‖_F = sqrt(Σ S_k²)); core l = first r columns of U
//     as (r_l, o_l, i_l, r); remainder = diag(S[:r])·Vᵀ[:r]; r_{l+1} = r.
//  3. The last core is the remainder as (r_{L-1}, o_{L-1}, i_{L-1}, 1).
// Since every remainder has norm ≤ ‖W‖ and the discarded parts are orthogonal, the total
// relative error is ≤ sqrt(Σ_l ‖discarded_l‖²)/‖W‖ ≤ τ·sqrt(L−1).

import Foundation

/// What TT-SVD did to one matrix. All norms are Frobenius norms computed in Double.
public struct TTSVDReport: Sendable, Codable {
    /// Bonds [1, r_1, …, r_{L-1}, 1] actually kept.
    public var bonds: [Int]
    /// Number of core entries.
    public var parameters: Int
    /// out·in.
    public var denseParameters: Int
    /// denseParameters / parameters.
    public var compressionRatio: Double
    /// ‖W‖.
    public var normW: Double
    /// ‖Ŵ‖ (Ŵ = contraction of the returned cores, in the storage precision).
    public var normApprox: Double
    /// ‖W − Ŵ‖ / ‖W‖ (0 when W = 0).
    public var relativeError: Double
    /// sqrt(Σ_l ‖discarded singular values of step l‖²) / ‖W‖ (0 when W = 0).
    public var errorBound: Double
    /// Per SVD step l = 0..L-2, the singular values that were dropped.
    public var discarded: [[Double]]
    /// Per SVD step l = 0..L-2, all singular values (descending).
    public var singularValues: [[Double]]
    /// |‖Ŵ‖² + ‖W−Ŵ‖² − ‖W‖²| / ‖W‖² (0 when W = 0): how orthogonal Ŵ and W−Ŵ are.
    public var orthogonalityResidual: Double
}

/// TT-SVD in double precision (dgesdd). `w` is (outFeatures × inFeatures) row-major.
/// Throws for a shape mismatch, χ < 1, a bad tolerance, NaN/infinite entries, or a LAPACK failure.
public func ttSVD(_ w: [Double], factorization: MPOFactorization, maxBond chi: Int,
                  relativeTolerance: Double? = nil) throws -> (MPOCores<Double>, TTSVDReport) {
    try ttSVDGeneric(w, factorization: factorization, chi: chi, tolerance: relativeTolerance)
}

/// TT-SVD in double precision with a cap per bond: `maxBonds` has L+1 entries (the outer ones 1),
/// bond l of the result is at most maxBonds[l] (a budgeted allocation gives every bond its own).
public func ttSVD(_ w: [Double], factorization: MPOFactorization, maxBonds: [Int],
                  relativeTolerance: Double? = nil) throws -> (MPOCores<Double>, TTSVDReport) {
    guard maxBonds.count == factorization.sites + 1, maxBonds.allSatisfy({ $0 >= 1 }) else {
        throw TensorTrainError("TT-SVD: \(factorization.sites) sites need \(factorization.sites + 1) bond caps ≥ 1, got \(maxBonds)")
    }
    return try ttSVDGeneric(w, factorization: factorization, chi: maxBonds.max() ?? 1, tolerance: relativeTolerance, caps: maxBonds)
}

/// TT-SVD with float storage (sgesdd for every SVD); the report's numbers are computed in Double.
public func ttSVD(_ w: [Float], factorization: MPOFactorization, maxBond chi: Int,
                  relativeTolerance: Double? = nil) throws -> (MPOCores<Float>, TTSVDReport) {
    try ttSVDGeneric(w, factorization: factorization, chi: chi, tolerance: relativeTolerance)
}

func ttSVDGeneric<S: LAPACKScalar>(_ w: [S], factorization f: MPOFactorization, chi: Int,
                                   tolerance: Double?, caps: [Int]? = nil) throws -> (MPOCores<S>, TTSVDReport) {
    let nOut = f.outFeatures, nIn = f.inFeatures
    guard w.count == nOut * nIn else {
        throw TensorTrainError("TT-SVD: the matrix has \(w.count) entries but factorisation \(f) "
            + "describes a \(nOut)×\(nIn) matrix (\(nOut * nIn) entries)")
    }
    guard chi >= 1 else {
        throw TensorTrainError("TT-SVD: the maximum bond χ must be ≥ 1, got \(chi)")
    }
    if let tolerance, !(tolerance.isFinite && tolerance >= 0) {
        throw TensorTrainError("TT-SVD: the relative tolerance must be finite and ≥ 0, got \(tolerance)")
    }
    if let bad = w.firstIndex(where: { !$0.isFinite }) {
        let what = w[bad].isNaN ? "NaN" : (w[bad] > 0 ? "+infinity" : "-infinity")
        throw TensorTrainError("TT-SVD: the \(nOut)×\(nIn) matrix contains \(what) at "
            + "[\(bad / nIn), \(bad % nIn)] (flat index \(bad))")
    }

    // 1. Interleave: tensor[outOffset[r] + inOffset[c]] = W[r, c].
    var remainder = interleaved(w, f)

    // 2. Sequential truncated SVDs.
    let L = f.sites
    var bonds = [1]
    var cores: [[S]] = []
    var discarded: [[Double]] = [], singularValues: [[Double]] = []
    var rest = nOut * nIn                       // columns of the current remainder × r_l
    for l in 0..<(L - 1) {
        let rl = bonds[l], oi = f.outFactors[l] * f.inFactors[l]
        rest /= oi
        let rows = rl * oi, cols = rest
        let (u, s, vt) = try thinSVD(remainder, rows: rows, cols: cols)
        let sv = s.map { Double($0) }
        var r = min(caps?[l + 1] ?? chi, sv.count)
        if let tolerance { r = min(r, toleranceRank(sv, tolerance)) }
        r = max(r, 1)
        singularValues.append(sv)
        discarded.append(Array(sv[min(r, sv.count)...]))
        let k = sv.count                        // r ≤ k = min(rows, cols)
        // core l = U[:, :r] as (r_l, o_l, i_l, r).
        var core = [S](repeating: 0, count: rows * r)
        for i in 0..<rows {
            for j in 0..<r { core[i * r + j] = u[i * k + j] }
        }
        cores.append(core)
        // remainder = diag(S[:r])·Vᵀ[:r]  (r × cols).
        var next = [S](repeating: 0, count: r * cols)
        for j in 0..<r {
            let sj = s[j]
            for c in 0..<cols { next[j * cols + c] = sj * vt[j * cols + c] }
        }
        remainder = next
        bonds.append(r)
    }
    // 3. Last core.
    cores.append(remainder)
    bonds.append(1)
    let mpo = MPOCores<S>(factorization: f, bonds: bonds, cores: cores)

    // Report, in Double.
    let approx = contractCores(mpo)
    var normW2 = 0.0, normA2 = 0.0, diff2 = 0.0
    for idx in 0..<w.count {
        let a = Double(w[idx]), b = Double(approx[idx])
        normW2 += a * a
        normA2 += b * b
        diff2 += (a - b) * (a - b)
    }
    let normW = normW2.squareRoot()
    let discardedTotal = discarded.reduce(0.0) { acc, d in acc + d.reduce(0.0) { $0 + $1 * $1 } }
    let params = mpo.parameterCount
    let report = TTSVDReport(
        bonds: bonds,
        parameters: params,
        denseParameters: nOut * nIn,
        compressionRatio: Double(nOut * nIn) / Double(params),
        normW: normW,
        normApprox: normA2.squareRoot(),
        relativeError: normW > 0 ? diff2.squareRoot() / normW : 0,
        errorBound: normW > 0 ? discardedTotal.squareRoot() / normW : 0,
        discarded: discarded,
        singularValues: singularValues,
        orthogonalityResidual: normW2 > 0 ? abs(normA2 + diff2 - normW2) / normW2 : 0)
    return (mpo, report)
}

/// Smallest r ≥ 1 with sqrt(Σ_{k≥r} s_k²) ≤ τ·sqrt(Σ_k s_k²) (s descending).
func toleranceRank(_ s: [Double], _ tau: Double) -> Int {
    guard !s.isEmpty else { return 1 }
    let total = s.reduce(0.0) { $0 + $1 * $1 }
    let allowed = tau * tau * total
    // tail[r] = Σ_{k≥r} s_k², accumulated from the small end for accuracy.
    var tail = 0.0
    var r = s.count
    while r > 1 {
        let t = tail + s[r - 1] * s[r - 1]
        if t > allowed { break }
        tail = t
        r -= 1
    }
    return r
}

/// The singular values (descending, in Double) of every inner unfolding of W under `f`: entry l
/// is the spectrum of the interleaved tensor (o0,i0,…) reshaped to (∏_{s≤l} o_s·i_s) × (the rest)
/// — a plain reshape of the row-major buffer, no truncation upstream. Truncating unfolding l to
/// rank r_l costs tail_l(r_l)² = Σ_{k≥r_l} s_k²; TT-SVD's error² is at most Σ_l tail_l(r_l)²
/// (and exactly that for two sites), which is what a budgeted allocation needs without running
/// a TT-SVD per candidate bond. SVDs in single precision (sgesdd): a spectrum for allocation.
public func unfoldingSpectra(_ w: [Float], factorization f: MPOFactorization) throws -> [[Double]] {
    let nOut = f.outFeatures, nIn = f.inFeatures
    guard w.count == nOut * nIn else {
        throw TensorTrainError("unfolding spectra: the matrix has \(w.count) entries but factorisation \(f) describes \(nOut)×\(nIn)")
    }
    if let bad = w.firstIndex(where: { !$0.isFinite }) {
        throw TensorTrainError("unfolding spectra: the \(nOut)×\(nIn) matrix contains \(w[bad]) at [\(bad / nIn), \(bad % nIn)]")
    }
    let t = interleaved(w, f)
    var rows = 1, out: [[Double]] = []
    for l in 0..<(f.sites - 1) {
        rows *= f.outFactors[l] * f.inFactors[l]
        let (_, s, _) = try thinSVD(t, rows: rows, cols: w.count / rows)
        out.append(s.map { Double($0) })
    }
    return out
}

/// W (out, in) row-major as the interleaved tensor (o0, i0, o1, i1, …) of `f`, row-major.
func interleaved<S: LAPACKScalar>(_ w: [S], _ f: MPOFactorization) -> [S] {
    let (outOffset, inOffset) = interleavedOffsets(f)
    let nIn = f.inFeatures
    var t = [S](repeating: 0, count: w.count)
    for r in 0..<f.outFeatures {
        let base = outOffset[r], row = r * nIn
        for c in 0..<nIn { t[base + inOffset[c]] = w[row + c] }
    }
    return t
}
