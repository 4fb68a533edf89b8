import Foundation

// Small value types that describe the shape of one op call. Ops take these instead of long
// argument lists, and tests/benchmarks use them to describe cases and count FLOPs.

/// C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b], row-major, for b in 0..<batch.
/// op(X) is X or Xᵀ; A is (m,k) after op, B is (k,n) after op, C is (m,n).
/// Leading dimensions are row strides in elements; strides step between batch items.
/// strideA or strideB 0 shares one operand across the batch (an MPO core); strideC 0 with
/// batch > 1 is a reduction: C = beta · C + Σ_b alpha · op(A[b]) · op(B[b]), beta applied once.
/// beta 0 never reads C (BLAS convention); k 0 gives C = beta · C.
public struct GemmShape: Sendable, Equatable, CustomStringConvertible {
    public var m: Int, n: Int, k: Int
    public var transposeA: Bool, transposeB: Bool
    public var lda: Int, ldb: Int, ldc: Int
    public var alpha: Float, beta: Float
    public var batch: Int, strideA: Int, strideB: Int, strideC: Int

    public init(m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false,
                lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil, alpha: Float = 1, beta: Float = 0,
                batch: Int = 1, strideA: Int = 0, strideB: Int = 0, strideC: Int = 0) {
        self.m = m; self.n = n; self.k = k
        self.transposeA = transposeA; self.transposeB = transposeB
        self.lda = lda ?? (transposeA ? m : k)
        self.ldb = ldb ?? (transposeB ? k : n)
        self.ldc = ldc ?? n
        self.alpha = alpha; self.beta = beta
        self.batch = batch; self.strideA = strideA; self.strideB = strideB; self.strideC = strideC
    }

    /// Elements of A, B, C that the call touches (for bounds checks).
    public var extentA: Int { (batch - 1) * strideA + (transposeA ? (k - 1) * lda + m : (m - 1) * lda + k) }
    public var extentB: Int { (batch - 1) * strideB + (transposeB ? (n - 1) * ldb + k : (k - 1) * ldb + n) }
    public var extentC: Int { (batch - 1) * strideC + (m - 1) * ldc + n }
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) * Double(batch) }
    public var description: String {
        "gemm \(transposeA ? "T" : "N")\(transposeB ? "T" : "N") m=\(m) n=\(n) k=\(k) batch=\(batch)"
    }
}

/// One MPO layer's site-by-site forward over `rows` rows (docs/DESIGN.md §2 strategy 2): x (rows, in) →
/// y (rows, out) through the cores permuted to M_l = (i_l·b_{l+1}, b_l·o_l), sites right to left.
/// Before site l the state is (P_l, K_l, O_l) = (rows·∏_{k<l} i_k, i_l·b_{l+1}, ∏_{k>l} o_k); the
/// step gives (P_l, b_l·o_l, O_l), which is exactly site l−1's (P, K, O) layout.
public struct MPOContraction: Sendable, Equatable, CustomStringConvertible {
    public var outFactors: [Int], inFactors: [Int], bonds: [Int]
    public var rows: Int

    public init(outFactors: [Int], inFactors: [Int], bonds: [Int], rows: Int) {
        precondition(outFactors.count == inFactors.count && bonds.count == outFactors.count + 1 && !outFactors.isEmpty,
                     "MPO contraction: \(outFactors)×\(inFactors) with bonds \(bonds)")
        self.outFactors = outFactors; self.inFactors = inFactors; self.bonds = bonds; self.rows = rows
    }

    public var sites: Int { outFactors.count }
    public var outFeatures: Int { outFactors.reduce(1, *) }
    public var inFeatures: Int { inFactors.reduce(1, *) }

    /// Site l's step: P items of out (Mo, O) = Mᵀ (Mo, K) · in (K, O).
    public func step(_ l: Int) -> MPOSiteStep {
        MPOSiteStep(site: l, outFactors: outFactors, inFactors: inFactors, bonds: bonds, rows: rows)
    }

    /// Elements of core l (= of M_l).
    public func coreCount(_ l: Int) -> Int { bonds[l] * outFactors[l] * inFactors[l] * bonds[l + 1] }

    /// Floats of scratch the sweep needs: two ping-pong states of the largest intermediate.
    public var scratchCount: Int {
        2 * (1..<max(sites, 1)).map { let s = step($0); return s.p * s.mo * s.o }.reduce(1, max)
    }

    public var flops: Double { (0..<sites).reduce(0.0) { $0 + step($1).flops } }

    public var description: String { "mpo \(outFactors)×\(inFactors) bonds \(bonds) rows=\(rows)" }
}

/// Causal multi-head attention over q laid out (B, T, C) and k, v laid out (B, kvRows, C) with
/// kvRows ≥ queryOffset + T (a KV cache holds `kvRows` positions per sequence), C = heads · headDim;
/// head h owns features [h·headDim, (h+1)·headDim). Query t sits at absolute position
/// queryOffset + t and sees keys 0…queryOffset + t. `queryOffset` > 0 is the KV-cache decode case
/// (forward only); training uses 0.
public struct AttentionShape: Sendable, Equatable, CustomStringConvertible {
    public var batch: Int, time: Int, heads: Int, headDim: Int
    /// Key/value heads: `heads` (multi-head), fewer (grouped-query: query head h reads key/value
    /// head h / (heads / kvHeads)), or 1 (multi-query). Divides `heads`.
    public var kvHeads: Int
    public var queryOffset: Int
    /// Rows per batch item in the k and v buffers (the cache's capacity); the keys seen are the first `keys`.
    public var kvRows: Int
    public init(batch: Int, time: Int, heads: Int, headDim: Int, kvHeads: Int? = nil, queryOffset: Int = 0, kvRows: Int? = nil) {
        self.batch = batch; self.time = time; self.heads = heads; self.headDim = headDim; self.queryOffset = queryOffset
        self.kvHeads = kvHeads ?? heads
        self.kvRows = max(kvRows ?? 0, queryOffset + time)
    }
    /// Keys seen per batch item.
    public var keys: Int { queryOffset + time }
    /// Row width of q and out (heads · headDim).
    public var channels: Int { heads * headDim }
    /// Row width of k and v (kvHeads · headDim).
    public var kvChannels: Int { kvHeads * headDim }
    /// Query heads per key/value head.
    public var group: Int { heads / max(kvHeads, 1) }
    public var tokens: Int { batch * time }
    /// Forward FLOPs with the masked half skipped (QKᵀ and PV).
    public var forwardFlops: Double { 2 * 2 * Double(batch * heads) * Double(time * (time + 1) / 2) * Double(headDim) }
    public var description: String {
        "attention B=\(batch) T=\(time) H=\(heads)" + (kvHeads != heads ? " KVH=\(kvHeads)" : "") + " hd=\(headDim)"
            + (queryOffset > 0 ? " offset=\(queryOffset)" : "") + (kvRows > keys ? " kvRows=\(kvRows)" : "")
    }
}

/// Rotary position embedding over rows (B, T) of `heads` heads of `headDim` values (row stride
/// heads · headDim), token t of every sequence at position `positionOffset` + t, in the Hugging
/// Face rotate-half convention: for i < headDim/2, (x_i, x_{i+hd/2}) turns by angle p·θ^(−2i/hd).
public struct RotaryShape: Sendable, Equatable, CustomStringConvertible {
    public var batch: Int, time: Int, heads: Int, headDim: Int
    public var positionOffset: Int
    public init(batch: Int, time: Int, heads: Int, headDim: Int, positionOffset: Int = 0) {
        self.batch = batch; self.time = time; self.heads = heads; self.headDim = headDim; self.positionOffset = positionOffset
    }
    public var rows: Int { batch * time }
    public var width: Int { heads * headDim }
    /// Positions the table must hold.
    public var positions: Int { positionOffset + time }
    public var description: String {
        "rotary B=\(batch) T=\(time) H=\(heads) hd=\(headDim)" + (positionOffset > 0 ? " offset=\(positionOffset)" : "")
    }
}

/// AdamW hyper-parameters for one update (decoupled weight decay, bias-corrected moments).
public struct AdamWHyper: Sendable, Equatable, Codable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.1
    /// 1-based step count used for bias correction.
    public var step: Int
    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.95, epsilon: Float = 1e-8,
                weightDecay: Float = 0.1, step: Int) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2
        self.epsilon = epsilon; self.weightDecay = weightDecay; self.step = step
    }
}

extension AdamWHyper {
    /// The per-step scalars every device computes the update with: decay = 1 − lr·wd,
    /// stepSize = lr / (1 − β1^step), bc2Sqrt = √(1 − β2^step) (bias corrections in Double, then Float).
    public var stepScalars: (decay: Float, stepSize: Float, bc2Sqrt: Float) {
        let bc1 = 1 - Float(pow(Double(beta1), Double(step)))
        let bc2 = 1 - Float(pow(Double(beta2), Double(step)))
        return (1 - learningRate * weightDecay, learningRate / bc1, bc2.squareRoot())
    }
}

/// The index arithmetic of `ComputeDevice.permute`, shared by every device: the destination
/// shape and, per destination axis, the stride of that axis in the source. Checks that `order`
/// is a permutation of at most 8 axes and that both views hold the tensor.
public struct Permutation: Sendable, Equatable {
    public let count: Int
    public let destinationShape: [Int]
    public let sourceStrides: [Int]

    public init(shape: [Int], order: [Int], source: TensorView, destination: TensorView) {
        precondition(shape.count == order.count && shape.count <= 8 && Set(order) == Set(0..<shape.count),
                     "permute: order \(order) is not a permutation of \(shape.count) axes")
        count = shape.reduce(1, *)
        precondition(source.count >= count && destination.count >= count, "permute: views smaller than \(shape)")
        var stride = [Int](repeating: 1, count: shape.count)
        for d in Swift.stride(from: shape.count - 2, through: 0, by: -1) { stride[d] = stride[d + 1] * shape[d + 1] }
        destinationShape = order.map { shape[$0] }
        sourceStrides = order.map { stride[$0] }
    }
}
