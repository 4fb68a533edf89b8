// The typed layers of a transformer block: a norm (LayerNorm or RMSNorm, forward and backward side
// by side) and the block's linears by role. The model's passes reach every layer through these
// fields — no look-up by name on the hot path.

/// A norm layer: LayerNorm (weight, bias) or RMSNorm (weight), its ε, and the gradient views
/// (nil for an inference-only model).
struct Norm {
    let kind: NormKind
    let epsilon: Double
    let weight: TensorView, bias: TensorView?
    let dWeight: TensorView?, dBias: TensorView?

    init(_ name: String, kind: NormKind, epsilon: Double, layout: ParameterLayout, params: DeviceBuffer, grads: DeviceBuffer?) {
        func view(_ b: DeviceBuffer?, _ n: String) -> TensorView? { b.flatMap { b in layout[n].map { b.view($0.offset, $0.count) } } }
        self.kind = kind; self.epsilon = epsilon
        weight = view(params, "\(name).weight")!; bias = view(params, "\(name).bias")
        dWeight = view(grads, "\(name).weight"); dBias = view(grads, "\(name).bias")
    }

    /// out (rows, C) = norm(x); saves mean (LayerNorm only) and rstd per row.
    func forward(_ dev: any ComputeDevice, x: TensorView, out: TensorView, mean: TensorView, rstd: TensorView, rows: Int, columns C: Int) {
        switch kind {
        case .layerNorm:
            dev.layerNormForward(x, weight: weight, bias: bias!, out: out, mean: mean, rstd: rstd, rows: rows, columns: C, epsilon: epsilon)
        case .rmsNorm:
            dev.rmsNormForward(x, weight: weight, out: out, rstd: rstd, rows: rows, columns: C, epsilon: epsilon)
        }
    }

    /// dInput += the input's gradient; the parameters' gradients accumulate.
    func backward(_ dev: any ComputeDevice, dOut: TensorView, x: TensorView, mean: TensorView, rstd: TensorView, dInput: TensorView,
                  rows: Int, columns C: Int) throws {
        guard let dWeight else { throw ModelError("an inference-only model has no gradients") }
        switch kind {
        case .layerNorm:
            dev.layerNormBackward(dOut: dOut, input: x, weight: weight, mean: mean, rstd: rstd, dInput: dInput, dWeight: dWeight,
                                  dBias: dBias!, rows: rows, columns: C)
        case .rmsNorm:
            dev.rmsNormBackward(dOut: dOut, input: x, weight: weight, rstd: rstd, dInput: dInput, dWeight: dWeight, rows: rows, columns: C)
        }
    }
}

/// One block's layers.
struct Block {
    let norm1: Norm, norm2: Norm
    let query: Linear, key: Linear, value: Linear, output: Linear
    /// MLP: up (W1 / c_fc / up_proj), gate (SwiGLU's gate_proj), down (W2 / c_proj / down_proj).
    let up: Linear, gate: Linear?, down: Linear
    /// Inference with packed low-rank q/k/v (gate/up): their V factors stacked in one matrix, so
    /// one product of the shared input serves all three (two) — Linear.forwardStacked.
    let stackedQKV: PackedMatrix?, stackedGateUp: PackedMatrix?

    var linears: [Linear] { [query, key, value, output, up] + (gate.map { [$0] } ?? []) + [down] }
}
