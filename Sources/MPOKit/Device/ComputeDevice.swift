// ComputeDevice: the one interface between the model/trainer and the hardware.
//
// The model's data flow (layer loop forward, reverse loop backward, optimiser) is written once,
// above this line, in Model/ and Train/. A device implements memory and primitive ops only.
// Ops are enqueued in order and may run asynchronously; `download` and the scalar-returning
// reductions synchronise.
//
// Shapes: B batch, T time, C channels, V vocabulary, N = B·T tokens, H heads, hd head dim.
//
// Gradient contract (after llm.c):
//  - an argument named d<parameter> (dWeight, dBias, dTable) ACCUMULATES (+=);
//  - an argument named d<activation> is OVERWRITTEN, except layerNormBackward's dInput, which
//    accumulates because it feeds the residual stream;
//  - the trainer zeroes the gradient arena once per step with `fill`.

public enum DeviceKind: String, CaseIterable, Sendable, Codable {
    case cpu, opencl
}

public protocol ComputeDevice: AnyObject {
    var name: String { get }
    var kind: DeviceKind { get }

    // MARK: - Memory
    /// Bytes held by this device's live buffers (what a model really allocates).
    var allocatedBytes: Int { get }
    /// A buffer of `count` 4-byte elements (Float32 or Int32), zero-filled.
    func makeBuffer(count: Int, label: String) throws -> DeviceBuffer
    func upload(_ source: UnsafeBufferPointer<Float>, to view: TensorView) throws
    func upload(_ source: UnsafeBufferPointer<Int32>, to view: TensorView) throws
    /// Waits for queued work, then copies `view` into `destination` (sizes must match).
    func download(_ view: TensorView, into destination: UnsafeMutableBufferPointer<Float>) throws
    /// Waits for all queued work.
    func synchronize() throws
    func fill(_ view: TensorView, value: Float)
    func copy(_ source: TensorView, to destination: TensorView)
    /// Tensor transpose: `source` is row-major with `shape`; destination has shape
    /// order.map { shape[$0] } and dst[j_0, j_1, …] = src[i] with i[order[k]] = j_k.
    /// Overwrites, or adds when `accumulate` (for gradients). At most 8 dimensions.
    func permute(_ source: TensorView, shape: [Int], order: [Int], into destination: TensorView, accumulate: Bool)

    // MARK: - Dense linear algebra
    /// Batched, strided, row-major sgemm (see `GemmShape`).
    func gemm(_ shape: GemmShape, a: TensorView, b: TensorView, c: TensorView)
    /// out[r, c] += bias[c] for a (rows, columns) matrix.
    func addBias(_ bias: TensorView, to out: TensorView, rows: Int, columns: Int)
    /// dBias[c] += Σ_r dOut[r, c] (bias gradient).
    func biasBackward(_ dOut: TensorView, dBias: TensorView, rows: Int, columns: Int)
    /// out[r, c] = relu(out[r, c] + bias[c]): `addBias` then `reluForward`, fused (one pass).
    func addBiasReLU(_ bias: TensorView, to out: TensorView, rows: Int, columns: Int)
    /// dX = dOut·[out > 0] (overwrite; may alias dOut) and dBias[c] += Σ_r dX[r, c]: `reluBackward`
    /// and the bias gradient of the layer that feeds the ReLU, fused (one pass).
    func reluBackwardBias(_ dOut: TensorView, out: TensorView, dX: TensorView, dBias: TensorView, rows: Int, columns: Int)

    // MARK: - Elementwise
    /// out = a + b (out may alias a or b).
    func add(_ a: TensorView, _ b: TensorView, out: TensorView)
    /// destination += source.
    func accumulate(_ source: TensorView, into destination: TensorView)
    /// view *= factor.
    func scale(_ view: TensorView, by factor: Float)
    /// out = max(x, 0) (may alias); NaN stays NaN, as in PyTorch.
    func reluForward(_ x: TensorView, out: TensorView)
    /// dX = dOut · [out > 0], overwrite (dX may alias dOut); where out is NaN, dOut passes (PyTorch's
    /// threshold_backward).
    func reluBackward(_ dOut: TensorView, out: TensorView, dX: TensorView)

    // MARK: - Embedding
    /// out (B,T,C) = table[tokens[b,t]] + positions[t] (without `positions`, the table rows alone);
    /// tokens (B,T) Int32, table (V,C), positions (≥T, C) — a fixed table, or a learned one's rows
    /// from the first position on.
    func embeddingForward(tokens: TensorView, table: TensorView, positions: TensorView?, out: TensorView,
                          batch: Int, time: Int, channels: Int)
    /// dTable[tokens[b,t]] += dOut[b,t] (scatter-add; deterministic order).
    func embeddingBackward(dOut: TensorView, tokens: TensorView, dTable: TensorView,
                           batch: Int, time: Int, channels: Int)
    /// Learned positions: dTable[t] += Σ_b dOut[b,t] (Double sums, b in order).
    func positionBackward(dOut: TensorView, dTable: TensorView, batch: Int, time: Int, channels: Int)

    // MARK: - Normalisation (statistics in Double)
    /// LayerNorm, biased variance: out (N,C) = (x − mean)·rstd·weight + bias, rstd = 1/√(var + ε);
    /// saves mean (N) and rstd (N).
    func layerNormForward(_ x: TensorView, weight: TensorView, bias: TensorView, out: TensorView,
                          mean: TensorView, rstd: TensorView, rows: Int, columns: Int, epsilon: Double)
    /// dInput += …, dWeight += …, dBias += … (all accumulate).
    func layerNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, mean: TensorView,
                           rstd: TensorView, dInput: TensorView, dWeight: TensorView, dBias: TensorView,
                           rows: Int, columns: Int)
    /// RMSNorm: out (N,C) = (x·rstd)·weight with rstd = 1/√(mean(x²) + ε), saved (N).
    func rmsNormForward(_ x: TensorView, weight: TensorView, out: TensorView, rstd: TensorView, rows: Int, columns: Int,
                        epsilon: Double)
    /// With x̂ = x·rstd and g = weight∘dOut: dInput += rstd·(g − x̂·mean(g∘x̂)) and dWeight += Σ_r dOut∘x̂
    /// (both accumulate).
    func rmsNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, rstd: TensorView,
                         dInput: TensorView, dWeight: TensorView, rows: Int, columns: Int)

    // MARK: - Positions and activations of the Llama and GPT-2 families
    /// Rotary embedding in place on x (B·T rows of `heads` heads of hd values): for i < hd/2 and
    /// token t at p = positionOffset + t, (x_i, x_{i+hd/2}) ← (x_i·cos − x_{i+hd/2}·sin,
    /// x_{i+hd/2}·cos + x_i·sin) with table row p = [cos_0 … cos_{hd/2−1}, sin_0 … sin_{hd/2−1}]
    /// ((positions, hd)); `inverse` turns by −angle, which is the backward pass.
    func rotary(_ x: TensorView, table: TensorView, shape: RotaryShape, inverse: Bool)
    /// out = silu(gate)∘up = gate/(1 + e^(−gate))∘up over `count` values.
    func swigluForward(gate: TensorView, up: TensorView, out: TensorView, count: Int)
    /// dGate = dOut∘up∘silu′(gate), dUp = dOut∘silu(gate) (both overwritten).
    func swigluBackward(dOut: TensorView, gate: TensorView, up: TensorView, dGate: TensorView, dUp: TensorView, count: Int)
    /// out = ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (GPT-2's gelu_new); out may alias x.
    func geluForward(_ x: TensorView, out: TensorView)
    /// dX = dOut∘gelu′(x) (overwrite; may alias dOut).
    func geluBackward(_ dOut: TensorView, input x: TensorView, dX: TensorView)

    // MARK: - Causal attention, multi-head or grouped-query (scale 1/√hd)
    /// out (B,T,H·hd) = softmax(mask(q·kᵀ/√hd))·v per (b, h), k and v (B, kvRows, KVH·hd) read at key/value
    /// head h / (H/KVH); saves the log-sum-exp lse (B,H,T).
    func attentionForward(_ shape: AttentionShape, q: TensorView, k: TensorView, v: TensorView,
                          out: TensorView, lse: TensorView)
    /// dq (B,T,H·hd), dk, dv (B,T,KVH·hd) overwritten, dk/dv summed over the query heads of a
    /// group in head order; recomputes the probabilities from q, k and lse.
    func attentionBackward(_ shape: AttentionShape, dOut: TensorView, q: TensorView, k: TensorView,
                           v: TensorView, out: TensorView, lse: TensorView,
                           dq: TensorView, dk: TensorView, dv: TensorView)

    // MARK: - Loss
    /// Softmax cross-entropy per row of logits (N,V) with Int32 targets (N):
    /// losses[r] = logsumexp − logit[target], correct[r] = 1 if argmax == target else 0;
    /// if dLogits is given, dLogits = (softmax − onehot)·gradScale (overwrite; may alias logits).
    func crossEntropy(logits: TensorView, targets: TensorView, losses: TensorView, correct: TensorView,
                      dLogits: TensorView?, gradScale: Float, rows: Int, vocabulary: Int)

    /// Knowledge distillation on logits at temperature τ, per row of the student's logits s and the
    /// teacher's t (rows, V): with p = softmax(s/τ), q = softmax(t/τ), losses[r] = τ²·KL(q ‖ p) =
    /// τ²·Σ q·(log q − log p) and, if dLogits is given, dLogits += gradScale·τ·(p − q) (accumulates:
    /// it adds to the cross-entropy's gradient). Sums in Double.
    func distillation(student: TensorView, teacher: TensorView, losses: TensorView, dLogits: TensorView?,
                      temperature: Float, gradScale: Float, rows: Int, vocabulary: Int)

    /// sums[r] = Σ_c (a[r, c] − b[r, c])² (Double sums), and dA += gradScale·2·(a − b) if given
    /// (hidden-state matching: a is the student's residual stream, b the teacher's).
    func squaredDistance(_ a: TensorView, _ b: TensorView, sums: TensorView, dA: TensorView?, gradScale: Float,
                         rows: Int, columns: Int)

    // MARK: - Optimiser
    /// Σ x² in double precision (synchronises; the one scalar a step reads back besides the loss).
    func sumOfSquares(_ view: TensorView) throws -> Double
    /// Decoupled AdamW over a flat range: p −= lr·wd·p; m, v updated; p −= lr·m̂/(√v̂ + eps).
    /// With `control` (the `stepScalars` of this step) every gradient is multiplied by the clip
    /// scale first, and nothing is updated when the step was not finite — all on the device.
    func adamW(parameters: TensorView, gradients: TensorView, m: TensorView, v: TensorView, hyper: AdamWHyper,
               control: TensorView?)

    /// A training step's scalars, reduced on the device with no host wait, into `scalars`
    /// (`StepScalars.count` elements, in the device's own layout: read them with `readStepScalars`;
    /// adamW reads the clip scale and the finite flag from them): the mean of `losses` (cross-
    /// entropy) and of `extra` (distillation, if given) over `rows`, the mean of `correct`, Σ g² of
    /// `gradients` in Double, the clip scale min(1, clip / (√Σg² + 1e-6)) and whether the losses
    /// and Σ g² are finite.
    func stepScalars(losses: TensorView, correct: TensorView, extra: TensorView?, rows: Int, gradients: TensorView,
                     clip: Double, into scalars: TensorView)
    /// Waits for the queue and reads what `stepScalars` wrote (the one host wait of a step).
    func readStepScalars(_ scalars: TensorView) throws -> StepScalars

    // MARK: - 16-bit weights (inference, --core-dtype; see PackedMatrix)

    /// C (m, n) = alpha·A (m, k)·Bᵀ + beta·C for B (n, k) stored in f16/bf16, computed in f32.
    /// `s` must be a single NT product with B's row stride k.
    func gemmPacked(_ s: GemmShape, a: TensorView, b: PackedMatrix, c: TensorView)
    /// embeddingForward with the (V, C) table stored in f16/bf16.
    func embeddingForwardPacked(tokens: TensorView, table: PackedMatrix, positions: TensorView?, out: TensorView,
                              batch: Int, time: Int, channels: Int)

    // MARK: - MPO
    // Training needs no MPO op of its own: both contraction strategies are sequences of `gemm`
    // (batched, strided, with a shared core) and `permute` (see MPO/MPOLinear.swift).

    /// Inference: y (rows, out) = x (rows, in)·Wᵀ (+= with `accumulate`) for the MPO whose cores,
    /// permuted to M_l (i_l·b_{l+1}, b_l·o_l), are `cores` — site by site, never forming W and
    /// keeping no state (`scratch`: `s.scratchCount` floats). The default runs it as `gemm` calls;
    /// devices fuse it into one routine per layer.
    func mpoForward(_ s: MPOContraction, x: TensorView, cores: [TensorView], y: TensorView, accumulate: Bool, scratch: TensorView)

    /// How much less efficiently this device runs a batch of tiny GEMMs sharing one operand
    /// (an MPO site step with a trailing dimension) than one large GEMM of the same FLOPs; the
    /// training strategy rule weighs such FLOPs by it.
    var batchedGemmPenalty: Double { get }

    /// Kernels enqueued and host waits so far, on a device with a queue (nil on one that runs
    /// each op as it is called). `bench` reports both per training step.
    var queueCounters: QueueCounters? { get }

    /// The most elements one buffer may hold (the activation arena is split into segments of at
    /// most this many; a larger single tensor is refused with a message).
    var maxBufferElements: Int { get }
}

/// What a queued device has done since it was made (`ComputeDevice.queueCounters`).
public struct QueueCounters: Sendable, Equatable {
    /// Kernels enqueued.
    public var launches: Int
    /// Times the host waited for the queue (blocking reads, clFinish).
    public var hostWaits: Int
    public init(launches: Int, hostWaits: Int) { self.launches = launches; self.hostWaits = hostWaits }
    public static func - (a: Self, b: Self) -> Self { Self(launches: a.launches - b.launches, hostWaits: a.hostWaits - b.hostWaits) }
}

/// What `stepScalars` reduces (see there).
public struct StepScalars: Sendable, Equatable {
    /// Elements the device's scalar buffer needs.
    public static let count = 16
    public var crossEntropy: Double
    public var distillation: Double
    public var accuracy: Double
    public var gradientSquares: Double
    public var clipScale: Double
    public var finite: Bool
    public init(crossEntropy: Double, distillation: Double, accuracy: Double, gradientSquares: Double, clipScale: Double, finite: Bool) {
        self.crossEntropy = crossEntropy; self.distillation = distillation; self.accuracy = accuracy
        self.gradientSquares = gradientSquares; self.clipScale = clipScale; self.finite = finite
    }
    public var gradientNorm: Double { gradientSquares.squareRoot() }
    /// The clip scale of a gradient norm (docs/SPEC.md §6): min(1, clip / (norm + 1e-6)).
    public static func clipScale(norm: Double, clip: Double) -> Double { min(1, clip / (norm + 1e-6)) }
}

extension ComputeDevice {
    /// LayerNorm at PyTorch's default ε = 1e-5 (PicoGPT's).
    public func layerNormForward(_ x: TensorView, weight: TensorView, bias: TensorView, out: TensorView,
                                 mean: TensorView, rstd: TensorView, rows: Int, columns: Int) {
        layerNormForward(x, weight: weight, bias: bias, out: out, mean: mean, rstd: rstd, rows: rows, columns: columns, epsilon: 1e-5)
    }

    /// AdamW without a step control (every gradient as it is, always applied).
    public func adamW(parameters: TensorView, gradients: TensorView, m: TensorView, v: TensorView, hyper: AdamWHyper) {
        adamW(parameters: parameters, gradients: gradients, m: m, v: v, hyper: hyper, control: nil)
    }

    public var queueCounters: QueueCounters? { nil }
    public var maxBufferElements: Int { Int.max }

    /// Measured on OpenBLAS (`mpo-train bench --profile`: ≈ 16 against ≈ 75 GFLOP/s on a 2-core EPYC).
    public var batchedGemmPenalty: Double { 4 }

    /// The default: one `gemm` per site (`mpoForwardBySite`).
    public func mpoForward(_ s: MPOContraction, x: TensorView, cores: [TensorView], y: TensorView, accumulate: Bool,
                           scratch: TensorView) {
        mpoForwardBySite(s, x: x, cores: cores, y: y, accumulate: accumulate, scratch: scratch)
    }

    /// `mpoForward` as one `gemm` per site (a batch of products sharing the core where O > 1),
    /// for devices whose fused routine does not cover a contraction.
    public func mpoForwardBySite(_ s: MPOContraction, x: TensorView, cores: [TensorView], y: TensorView, accumulate: Bool,
                                 scratch: TensorView) {
        let half = s.scratchCount / 2
        var input = x
        for l in stride(from: s.sites - 1, through: 0, by: -1) {
            let st = s.step(l), beta: Float = l == 0 && accumulate ? 1 : 0
            let out = l == 0 ? y : scratch.view((l % 2) * half, st.p * st.mo * st.o)
            if st.o == 1 {
                gemm(GemmShape(m: st.p, n: st.mo, k: st.k, beta: beta), a: input, b: cores[l], c: out)
            } else {
                gemm(GemmShape(m: st.mo, n: st.o, k: st.k, transposeA: true, beta: beta, batch: st.p, strideA: 0,
                               strideB: st.k * st.o, strideC: st.mo * st.o), a: cores[l], b: input, c: out)
            }
            input = out
        }
    }

    /// The unfused default: `addBias`, then `reluForward` in place.
    public func addBiasReLU(_ bias: TensorView, to out: TensorView, rows: Int, columns: Int) {
        addBias(bias, to: out, rows: rows, columns: columns)
        let v = out.view(0, rows * columns)
        reluForward(v, out: v)
    }

    /// The unfused default: `reluBackward`, then `biasBackward` of the result.
    public func reluBackwardBias(_ dOut: TensorView, out: TensorView, dX: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        let n = rows * columns
        reluBackward(dOut.view(0, n), out: out.view(0, n), dX: dX.view(0, n))
        biasBackward(dX, dBias: dBias, rows: rows, columns: columns)
    }

    /// Downloads a whole view into a new array.
    public func read(_ view: TensorView) throws -> [Float] {
        var out = [Float](repeating: 0, count: view.count)
        try out.withUnsafeMutableBufferPointer { try download(view, into: $0) }
        return out
    }

    /// Uploads an array into a view (sizes must match).
    public func write(_ values: [Float], to view: TensorView) throws {
        try values.withUnsafeBufferPointer { try upload($0, to: view) }
    }

    public func write(_ values: [Int32], to view: TensorView) throws {
        try values.withUnsafeBufferPointer { try upload($0, to: view) }
    }

    /// A new buffer holding `values`.
    public func makeBuffer(_ values: [Float], label: String) throws -> DeviceBuffer {
        let b = try makeBuffer(count: values.count, label: label)
        try write(values, to: b.all)
        return b
    }

    public func makeBuffer(_ values: [Int32], label: String) throws -> DeviceBuffer {
        let b = try makeBuffer(count: values.count, label: label)
        try write(values, to: b.all)
        return b
    }
}
