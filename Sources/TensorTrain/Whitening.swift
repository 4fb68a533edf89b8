// Data-aware truncation (SVD-LLM's truncation-aware data whitening). A linear layer's output
// error on calibration inputs X (rows × in) is ‖X·(W − Ŵ)ᵀ‖_F² = ‖(W − Ŵ)·S‖_F² where
// XᵀX/N = S·Sᵀ (Cholesky, S lower triangular). Truncating the SVD of W·S therefore minimises the
// output error on that data, not the weight error, and Ŵ = trunc(W·S)·S⁻¹: for a low-rank layer
// U·V the inverse folds into V exactly (V ← V·S⁻¹). Its singular values give the output error
// of every rank, so the allocator can level output errors instead of weight errors. An MPO whose
// input index is split over several sites cannot absorb S⁻¹ without growing its bonds, so only
// two-factor (SVD) layers are whitened.

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
        let meanDiagonal = (0..<n).reduce(0.0) { $0 + c[$1 * n + $1] } / Double(n)
        guard meanDiagonal.isFinite, meanDiagonal > 0 else {
            throw TensorTrainError("the calibration inputs of a layer are all zero or not finite (mean square \(meanDiagonal)); use another --calibration text")
        }
        var a = c
        for i in 0..<n { a[i * n + i] += damping * meanDiagonal }
        // Row-major symmetric = column-major; "U" in column-major is the row-major lower factor.
        var uplo: CChar = 0x55, order = Int32(n), lda = Int32(n), info: Int32 = 0
        dpotrf_(&uplo, &order, &a, &lda, &info)
        guard info == 0 else {
            throw TensorTrainError("Cholesky factorisation of a layer's input second moment failed (LAPACK dpotrf info \(info)); raise the damping")
        }
        for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { a[i * n + j] = 0 } }
        inFeatures = n; factor = a
    }

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
}
