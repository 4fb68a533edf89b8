// MPOContraction.swift — MPO cores and their contraction to a dense (out, in) weight
// (docs/SPEC.md §2): contract core 0..L-1 over the shared bonds left to right (a chain of GEMMs), the
// result is indexed (o0,i0,o1,i1,…); permute to (o0,o1,…,i0,i1,…) and read it row-major as
// (out, in), o0 being the most significant digit of the output index and i0 of the input.

/// The cores of one MPO layer. Core l is stored row-major with shape
/// (bonds[l], outFactors[l], inFactors[l], bonds[l+1]); bonds[0] = bonds[L] = 1.
public struct MPOCores<Scalar: BinaryFloatingPoint> {
    public var factorization: MPOFactorization
    public var bonds: [Int]
    public var cores: [[Scalar]]

    public init(factorization: MPOFactorization, bonds: [Int], cores: [[Scalar]]) {
        self.factorization = factorization
        self.bonds = bonds
        self.cores = cores
    }

    /// Shape of every core, (b_l, o_l, i_l, b_{l+1}).
    public var coreShapes: [[Int]] { factorization.coreShapes(bonds: bonds) }

    /// Total number of core entries.
    public var parameterCount: Int { cores.reduce(0) { $0 + $1.count } }

    /// Throws unless there are L cores, L+1 bonds ≥ 1 with outer bonds 1, and every core has
    /// b_l·o_l·i_l·b_{l+1} entries.
    public func checkShapes() throws {
        let f = factorization
        guard bonds.count == f.sites + 1 else {
            throw TensorTrainError("\(f.sites)-site MPO \(f) needs \(f.sites + 1) bonds, got \(bonds)")
        }
        guard bonds.first == 1, bonds.last == 1 else {
            throw TensorTrainError("the outer bonds of an MPO must be 1, got \(bonds)")
        }
        if let bad = bonds.firstIndex(where: { $0 < 1 }) {
            throw TensorTrainError("bond \(bad) is \(bonds[bad]); bonds must be ≥ 1 (\(bonds))")
        }
        guard cores.count == f.sites else {
            throw TensorTrainError("\(f.sites)-site MPO \(f) needs \(f.sites) cores, got \(cores.count)")
        }
        for (l, shape) in coreShapes.enumerated() where cores[l].count != shape.reduce(1, *) {
            throw TensorTrainError("core \(l) should have shape \(shape) = \(shape.reduce(1, *)) "
                + "entries, but has \(cores[l].count)")
        }
    }

    /// The same cores converted to another floating-point type.
    public func converted<T: BinaryFloatingPoint>(to _: T.Type = T.self) -> MPOCores<T> {
        MPOCores<T>(factorization: factorization, bonds: bonds,
                    cores: cores.map { $0.map { T($0) } })
    }
}

extension MPOCores: Equatable where Scalar: Equatable {}
extension MPOCores: Sendable where Scalar: Sendable {}

/// Dense weight (outFeatures × inFeatures, row-major) of an MPO, in Double.
/// Traps (precondition) if the cores do not have the shapes `checkShapes()` requires.
public func contractMPO(_ m: MPOCores<Double>) -> [Double] { contractCores(m) }

/// Dense weight (outFeatures × inFeatures, row-major) of an MPO, in Float (sgemm chain).
public func contractMPO(_ m: MPOCores<Float>) -> [Float] { contractCores(m) }

func contractCores<S: LAPACKScalar>(_ m: MPOCores<S>) -> [S] {
    do { try m.checkShapes() } catch { preconditionFailure("contractMPO: \(error)") }
    let f = m.factorization
    // chain: (P_l × b_l), P_l = ∏_{k<l} o_k·i_k, digits (o0,i0,…,o_{l-1},i_{l-1}).
    var chain = m.cores[0]
    var rows = f.outFactors[0] * f.inFactors[0]      // b_0 = 1
    for l in 1..<f.sites {
        let b = m.bonds[l], oi = f.outFactors[l] * f.inFactors[l], next = m.bonds[l + 1]
        // (rows × b) · (b × oi·next) → (rows·oi × next), same memory order.
        chain = matmul(chain, m.cores[l], m: rows, k: b, n: oi * next)
        rows *= oi
    }
    // chain now holds the interleaved tensor (o0,i0,…,o_{L-1},i_{L-1}) (last bond is 1).
    return deinterleaved(chain, f)
}

/// The interleaved tensor (o0, i0, o1, i1, …) of `f` read back as the row-major (out, in) matrix
/// (the inverse of `interleaved`).
func deinterleaved<S: LAPACKScalar>(_ t: [S], _ f: MPOFactorization) -> [S] {
    let (outOffset, inOffset) = interleavedOffsets(f)
    let nIn = f.inFeatures
    var w = [S](repeating: 0, count: f.outFeatures * nIn)
    t.withUnsafeBufferPointer { src in
        w.withUnsafeMutableBufferPointer { dst in
            for r in 0..<outOffset.count {
                let base = outOffset[r], row = r * nIn
                for c in 0..<nIn { dst[row + c] = src[base + inOffset[c]] }
            }
        }
    }
    return w
}

/// Offsets into the interleaved tensor (o0,i0,o1,i1,…) (row-major): the element for output
/// row r and input column c is at `outOffset[r] + inOffset[c]`.
func interleavedOffsets(_ f: MPOFactorization) -> (outOffset: [Int], inOffset: [Int]) {
    let l = f.sites
    // Interleaved strides: stride(i_k) = ∏_{j>k} o_j·i_j, stride(o_k) = i_k·stride(i_k).
    var inStride = [Int](repeating: 1, count: l), outStride = [Int](repeating: 1, count: l)
    var acc = 1
    for k in stride(from: l - 1, through: 0, by: -1) {
        inStride[k] = acc
        outStride[k] = acc * f.inFactors[k]
        acc *= f.outFactors[k] * f.inFactors[k]
    }
    return (digitOffsets(f.outFactors, outStride), digitOffsets(f.inFactors, inStride))
}

/// For every index n = Σ_k d_k·∏_{j>k} factors[j] (digit d_0 most significant), Σ_k d_k·strides[k].
private func digitOffsets(_ factors: [Int], _ strides: [Int]) -> [Int] {
    var offsets = [0]
    for (size, s) in zip(factors, strides) {
        var next = [Int]()
        next.reserveCapacity(offsets.count * size)
        for base in offsets {
            for d in 0..<size { next.append(base + d * s) }
        }
        offsets = next
    }
    return offsets
}
