// Linear: y = x·Wᵀ + b for one layer, dense or MPO, forward and backward side by side.
//
// x (N, in), y (N, out), W (out, in). Dense layers are one GEMM each way; MPO layers (see
// MPO/MPOLinear.swift) either rebuild W and run the same GEMMs, or contract site by site.
// Gradient contract: dW/dBias accumulate; dX is overwritten unless `accumulateInput`.

public final class Linear {
    public let name: String
    public let outFeatures: Int
    public let inFeatures: Int
    public let kind: LinearKind
    let bias: TensorView?
    let dBias: TensorView?
    /// Dense: the weight and its gradient in the arenas.
    let weight: TensorView?
    let dWeight: TensorView?
    /// MPO: the cores, their gradients and the contraction machinery.
    let mpo: MPOLinear?
    /// The model's parameter version: MPO layers rebuild W only when it changed.
    let version: ParameterVersion
    /// Inference with 16-bit weights: the dense W, or a low-rank layer's U (out, χ) and V (χ, in)
    /// (then `mpo` is nil and `workspace` holds x·Vᵀ).
    let packedWeight: PackedMatrix?
    let packedFactors: (u: PackedMatrix, v: PackedMatrix)?
    let workspace: MPOWorkspace?
    /// Sees dY (the loss gradient of the layer's outputs, rows × out) in every backward pass
    /// (Calibration.outputGradientMoments); nil in training.
    var outputGradientTap: ((_ dY: TensorView, _ rows: Int) throws -> Void)?

    /// `grads` nil: an inference-only layer; its MPO layers share `workspace` and ask `tuner`.
    init(name: String, out: Int, in inF: Int, kind: LinearKind, layout: ParameterLayout,
         params: DeviceBuffer, grads: DeviceBuffer?, device: any ComputeDevice, version: ParameterVersion,
         workspace: MPOWorkspace? = nil, tuner: StrategyTuner? = nil, packed: [String: PackedMatrix] = [:]) {
        self.name = name; self.outFeatures = out; self.inFeatures = inF; self.kind = kind; self.version = version
        self.workspace = workspace
        packedWeight = packed["\(name).weight"]
        packedFactors = packed["\(name).cores.0"].flatMap { u in packed["\(name).cores.1"].map { (u, $0) } }
        func view(_ b: DeviceBuffer?, _ n: String) -> TensorView? { b.flatMap { b in layout[n].map { b.view($0.offset, $0.count) } } }
        bias = view(params, "\(name).bias"); dBias = view(grads, "\(name).bias")
        switch kind {
        case .dense:
            weight = view(params, "\(name).weight"); dWeight = view(grads, "\(name).weight"); mpo = nil
        case .mpo where packedFactors != nil:
            weight = nil; dWeight = nil; mpo = nil
        case .mpo(let f, let bonds):
            weight = nil; dWeight = nil
            let cores = (0..<f.sites).map { view(params, "\(name).cores.\($0)")! }
            let dCores = grads.map { g in (0..<f.sites).map { view(g, "\(name).cores.\($0)")! } }
            mpo = MPOLinear(factorization: f, bonds: bonds, cores: cores, coreGradients: dCores, device: device, label: name,
                            workspace: workspace, tuner: tuner)
        }
    }

    /// y = x·Wᵀ + b (or y += … when `accumulate`), for `rows` rows; with `relu`, y = relu(x·Wᵀ + b)
    /// (bias and ReLU in one pass).
    func forward(_ dev: any ComputeDevice, x: TensorView, y: TensorView, rows: Int, accumulate: Bool = false,
                 relu: Bool = false) throws {
        precondition(!(relu && accumulate), "a ReLU layer cannot accumulate into its output")
        if let mpo {
            try mpo.forward(dev, x: x, y: y, rows: rows, accumulate: accumulate, version: version.value)
        } else if let h = packedWeight {
            dev.gemmPacked(GemmShape(m: rows, n: outFeatures, k: inFeatures, transposeB: true, beta: accumulate ? 1 : 0), a: x, b: h, c: y)
        } else if let (u, v) = packedFactors, let workspace {  // y = (x·Vᵀ)·Uᵀ
            let t = try workspace.view(.state(0), rows * v.rows)
            dev.gemmPacked(GemmShape(m: rows, n: v.rows, k: inFeatures, transposeB: true), a: x, b: v, c: t)
            dev.gemmPacked(GemmShape(m: rows, n: outFeatures, k: v.rows, transposeB: true, beta: accumulate ? 1 : 0), a: t, b: u, c: y)
        } else {
            dev.gemm(GemmShape(m: rows, n: outFeatures, k: inFeatures, transposeB: true, beta: accumulate ? 1 : 0),
                     a: x, b: weight!, c: y)
        }
        addBias(dev, y: y, rows: rows, relu: relu)
    }

    private func addBias(_ dev: any ComputeDevice, y: TensorView, rows: Int, relu: Bool) {
        switch (bias, relu) {
        case (let b?, true): dev.addBiasReLU(b, to: y, rows: rows, columns: outFeatures)
        case (let b?, false): dev.addBias(b, to: y, rows: rows, columns: outFeatures)
        case (nil, true): let v = y.view(0, rows * outFeatures); dev.reluForward(v, out: v)
        case (nil, false): break
        }
    }

    /// yᵢ = x·Wᵢᵀ + bᵢ for packed low-rank layers that read the same x, their V factors stacked
    /// in `stacked` (each layer's rank of rows, in order; WeightStorage.stacks): one product
    /// t = x·Vᵀ for all of them — the input read and, in q8, rounded once — then each layer's U on
    /// its columns of t. At one row (decoding), and in q8 at any rows, every output is the
    /// arithmetic of the layers' own forward; a 16-bit product of several rows widens W in other
    /// blocks for sgemm, which may round differently.
    static func forwardStacked(_ dev: any ComputeDevice, _ layers: [Linear], stacked: PackedMatrix, x: TensorView, ys: [TensorView],
                               rows: Int) throws {
        precondition(layers.count == ys.count && layers.allSatisfy { $0.packedFactors != nil && $0.inFeatures == stacked.columns }
                     && layers.reduce(0) { $0 + $1.packedFactors!.v.rows } == stacked.rows, "\(stacked.name) does not stack these layers")
        let total = stacked.rows, t = try layers[0].workspace!.view(.state(0), rows * total)
        dev.gemmPacked(GemmShape(m: rows, n: total, k: stacked.columns, transposeB: true), a: x, b: stacked, c: t)
        var c0 = 0
        for (l, y) in zip(layers, ys) {
            let (u, v) = l.packedFactors!
            dev.gemmPacked(GemmShape(m: rows, n: l.outFeatures, k: v.rows, transposeB: true, lda: total),
                           a: t.view(c0, (rows - 1) * total + v.rows), b: u, c: y)
            l.addBias(dev, y: y, rows: rows, relu: false)
            c0 += v.rows
        }
    }

    /// Backward of y = relu(x·Wᵀ + b): `dY` holds the gradient of the ReLU's output `y` and is
    /// overwritten with the gradient before the ReLU (fused with the bias gradient), then as `backward`.
    func backwardReLU(_ dev: any ComputeDevice, dY: TensorView, y: TensorView, x: TensorView, dX: TensorView?, rows: Int) throws {
        let n = rows * outFeatures
        if let dBias {
            dev.reluBackwardBias(dY, out: y, dX: dY, dBias: dBias, rows: rows, columns: outFeatures)
        } else {
            dev.reluBackward(dY.view(0, n), out: y.view(0, n), dX: dY.view(0, n))
        }
        try weightBackward(dev, dY: dY, x: x, dX: dX, rows: rows, accumulateInput: false)
    }

    /// dX = dY·W (overwrite, or += when `accumulateInput`), dW += dYᵀ·x, dBias += Σ dY.
    func backward(_ dev: any ComputeDevice, dY: TensorView, x: TensorView, dX: TensorView?, rows: Int,
                  accumulateInput: Bool = false) throws {
        if let dBias { dev.biasBackward(dY, dBias: dBias, rows: rows, columns: outFeatures) }
        try weightBackward(dev, dY: dY, x: x, dX: dX, rows: rows, accumulateInput: accumulateInput)
    }

    /// The weight half of `backward`: dX and dW (or the cores' gradients).
    private func weightBackward(_ dev: any ComputeDevice, dY: TensorView, x: TensorView, dX: TensorView?, rows: Int,
                                accumulateInput: Bool) throws {
        try outputGradientTap?(dY, rows)
        if let mpo {
            try mpo.backward(dev, dY: dY, x: x, dX: dX, rows: rows, accumulateInput: accumulateInput)
            return
        }
        guard let dWeight else { throw ModelError("\(name): an inference-only model has no gradients") }
        dev.gemm(GemmShape(m: outFeatures, n: inFeatures, k: rows, transposeA: true, beta: 1), a: dY, b: x, c: dWeight)
        if let dX {
            dev.gemm(GemmShape(m: rows, n: inFeatures, k: outFeatures, beta: accumulateInput ? 1 : 0), a: dY, b: weight!, c: dX)
        }
    }
}

/// A counter the model bumps whenever its parameters change (init, load, set, optimiser step),
/// so derived device data (an MPO layer's rebuilt W, its permuted cores) is recomputed only then:
/// evaluation batches and KV-cache decoding reuse it.
final class ParameterVersion {
    var value = 0
}
