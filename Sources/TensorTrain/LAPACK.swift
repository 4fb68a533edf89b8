// LAPACK.swift — thin, row-major wrappers around the BLAS/LAPACK routines the tensor-train
// math needs: GEMM (cblas_sgemm/cblas_dgemm) for core contraction and the divide-and-conquer
// thin SVD (sgesdd_/dgesdd_, Fortran ABI, column-major) for TT-SVD.
//
// Row-major ↔ column-major: a row-major m×n matrix A occupies exactly the memory of the
// column-major n×m matrix Aᵀ. We therefore hand LAPACK Aᵀ (M = n, N = m) and use
//     Aᵀ = U' S V'ᵀ   ⇒   A = V' S U'ᵀ,   i.e.  U_A = V',  V_Aᵀ = U'ᵀ.
// LAPACK writes U' (n×k, column-major) and V'ᵀ (k×m, column-major). Read back as row-major,
// the V'ᵀ buffer *is* U_A (m×k) and the U' buffer *is* V_Aᵀ (k×n) — no copy or transpose needed.

import CBLAS

/// Scalars for which we have a GEMM and a thin SVD (Float → s-routines, Double → d-routines).
protocol LAPACKScalar: BinaryFloatingPoint, Sendable {
    /// C (m×n) = A (m×k) · B (k×n), all row-major and contiguous.
    static func gemm(m: Int, n: Int, k: Int, _ a: UnsafePointer<Self>, _ b: UnsafePointer<Self>,
                     _ c: UnsafeMutablePointer<Self>)
    /// C (m×n) = op(A)·op(B), row-major, op the transpose where asked (`lda`/`ldb` the stored rows' lengths).
    static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, _ a: UnsafePointer<Self>, lda: Int,
                     _ b: UnsafePointer<Self>, ldb: Int, _ c: UnsafeMutablePointer<Self>)
    /// Raw column-major `?gesdd_` call with jobz = "S". Returns LAPACK's `info`.
    static func gesdd(m: Int32, n: Int32, a: UnsafeMutablePointer<Self>, lda: Int32,
                      s: UnsafeMutablePointer<Self>, u: UnsafeMutablePointer<Self>, ldu: Int32,
                      vt: UnsafeMutablePointer<Self>, ldvt: Int32,
                      work: UnsafeMutablePointer<Self>, lwork: Int32,
                      iwork: UnsafeMutablePointer<Int32>) -> Int32
    static var lapackPrefix: String { get }
}

extension Double: LAPACKScalar {
    static func gemm(m: Int, n: Int, k: Int, _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                     _ c: UnsafeMutablePointer<Double>) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    1.0, a, Int32(max(k, 1)), b, Int32(max(n, 1)), 0.0, c, Int32(max(n, 1)))
    }

    static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, _ a: UnsafePointer<Double>, lda: Int,
                     _ b: UnsafePointer<Double>, ldb: Int, _ c: UnsafeMutablePointer<Double>) {
        cblas_dgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
                    Int32(k), 1, a, Int32(max(lda, 1)), b, Int32(max(ldb, 1)), 0, c, Int32(max(n, 1)))
    }

    static func gesdd(m: Int32, n: Int32, a: UnsafeMutablePointer<Double>, lda: Int32,
                      s: UnsafeMutablePointer<Double>, u: UnsafeMutablePointer<Double>, ldu: Int32,
                      vt: UnsafeMutablePointer<Double>, ldvt: Int32,
                      work: UnsafeMutablePointer<Double>, lwork: Int32,
                      iwork: UnsafeMutablePointer<Int32>) -> Int32 {
        var m = m, n = n, lda = lda, ldu = ldu, ldvt = ldvt, lwork = lwork, info: Int32 = 0
        var jobz: CChar = 0x53 // "S"
        dgesdd_(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info)
        return info
    }

    static var lapackPrefix: String { "d" }
}

extension Float: LAPACKScalar {
    static func gemm(m: Int, n: Int, k: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                     _ c: UnsafeMutablePointer<Float>) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    1.0, a, Int32(max(k, 1)), b, Int32(max(n, 1)), 0.0, c, Int32(max(n, 1)))
    }

    static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, _ a: UnsafePointer<Float>, lda: Int,
                     _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>) {
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
                    Int32(k), 1, a, Int32(max(lda, 1)), b, Int32(max(ldb, 1)), 0, c, Int32(max(n, 1)))
    }

    static func gesdd(m: Int32, n: Int32, a: UnsafeMutablePointer<Float>, lda: Int32,
                      s: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>, ldu: Int32,
                      vt: UnsafeMutablePointer<Float>, ldvt: Int32,
                      work: UnsafeMutablePointer<Float>, lwork: Int32,
                      iwork: UnsafeMutablePointer<Int32>) -> Int32 {
        var m = m, n = n, lda = lda, ldu = ldu, ldvt = ldvt, lwork = lwork, info: Int32 = 0
        var jobz: CChar = 0x53 // "S"
        sgesdd_(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info)
        return info
    }

    static var lapackPrefix: String { "s" }
}

/// Row-major matrix product C = A·B (A m×k, B k×n) via cblas ?gemm.
func matmul<S: LAPACKScalar>(_ a: [S], _ b: [S], m: Int, k: Int, n: Int) -> [S] {
    precondition(a.count == m * k && b.count == k * n, "matmul: operand sizes do not match \(m)×\(k)·\(k)×\(n)")
    var c = [S](repeating: 0, count: m * n)
    if m == 0 || n == 0 { return c }
    if k == 0 { return c }
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                S.gemm(m: m, n: n, k: k, pa.baseAddress!, pb.baseAddress!, pc.baseAddress!)
            }
        }
    }
    return c
}

/// Thin SVD of a row-major m×n matrix: A = U·diag(s)·Vᵀ with U m×k, s (descending) of
/// length k, Vᵀ k×n, k = min(m, n); U and Vᵀ are returned row-major.
/// Throws `TensorTrainError` with LAPACK's `info` when the routine fails.
func thinSVD<S: LAPACKScalar>(_ a: [S], rows m: Int, cols n: Int) throws -> (u: [S], s: [S], vt: [S]) {
    precondition(a.count == m * n, "thinSVD: \(a.count) elements for a \(m)×\(n) matrix")
    guard m > 0, n > 0 else { return ([], [], []) }
    guard m <= Int(Int32.max), n <= Int(Int32.max) else {
        throw TensorTrainError("SVD of a \(m)×\(n) matrix exceeds LAPACK's 32-bit dimensions")
    }
    let k = min(m, n)
    // Column-major problem: Aᵀ, M = n rows, N = m columns.
    let cm = Int32(n), cn = Int32(m), lda = Int32(n)
    let ldu = Int32(n), ldvt = Int32(k)
    var work = a
    var s = [S](repeating: 0, count: k)
    var uPrime = [S](repeating: 0, count: n * k)   // U' (n×k col-major) = V_Aᵀ row-major (k×n)
    var vtPrime = [S](repeating: 0, count: k * m)  // V'ᵀ (k×m col-major) = U_A row-major (m×k)
    var iwork = [Int32](repeating: 0, count: 8 * k)
    let name = "\(S.lapackPrefix)gesdd"

    // Workspace query (lwork = -1).
    var query = [S](repeating: 0, count: 1)
    var info: Int32 = work.withUnsafeMutableBufferPointer { pa in
        s.withUnsafeMutableBufferPointer { ps in
            uPrime.withUnsafeMutableBufferPointer { pu in
                vtPrime.withUnsafeMutableBufferPointer { pv in
                    query.withUnsafeMutableBufferPointer { pw in
                        iwork.withUnsafeMutableBufferPointer { pi in
                            S.gesdd(m: cm, n: cn, a: pa.baseAddress!, lda: lda, s: ps.baseAddress!,
                                    u: pu.baseAddress!, ldu: ldu, vt: pv.baseAddress!, ldvt: ldvt,
                                    work: pw.baseAddress!, lwork: -1, iwork: pi.baseAddress!)
                        }
                    }
                }
            }
        }
    }
    guard info == 0 else {
        throw TensorTrainError("\(name) workspace query failed for a \(m)×\(n) matrix (info = \(info))")
    }
    // The optimal size comes back as a floating-point number; single precision can round it
    // down, so round up and add a little slack.
    let reported = Double(query[0]).rounded(.up)
    let lworkCount = max(Int(reported * 1.001) + 16, 1)
    guard lworkCount <= Int(Int32.max) else {
        throw TensorTrainError("\(name) needs \(lworkCount) workspace elements, more than LAPACK's 32-bit limit")
    }
    var workspace = [S](repeating: 0, count: lworkCount)
    info = work.withUnsafeMutableBufferPointer { pa in
        s.withUnsafeMutableBufferPointer { ps in
            uPrime.withUnsafeMutableBufferPointer { pu in
                vtPrime.withUnsafeMutableBufferPointer { pv in
                    workspace.withUnsafeMutableBufferPointer { pw in
                        iwork.withUnsafeMutableBufferPointer { pi in
                            S.gesdd(m: cm, n: cn, a: pa.baseAddress!, lda: lda, s: ps.baseAddress!,
                                    u: pu.baseAddress!, ldu: ldu, vt: pv.baseAddress!, ldvt: ldvt,
                                    work: pw.baseAddress!, lwork: Int32(lworkCount), iwork: pi.baseAddress!)
                        }
                    }
                }
            }
        }
    }
    guard info == 0 else {
        let why = info < 0 ? "argument \(-info) had an illegal value" : "the SVD did not converge"
        throw TensorTrainError("\(name) failed on a \(m)×\(n) matrix (info = \(info)): \(why)")
    }
    return (u: vtPrime, s: s, vt: uPrime)
}
