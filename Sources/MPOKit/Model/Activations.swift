// Activations: every tensor the forward pass keeps for the backward pass, plus the scratch the
// backward pass needs, carved out of one device arena for a given (B, T) by a named layout
// (`ArenaLayout`, like `ParameterLayout`): each tensor is added under its name and every view
// is looked up by that name, so reordering the plan cannot make two tensors share memory.
// Shapes (N = B·T): residual streams (N, C); q/att (N, C); k/v (N, KVH·hd); lse (B, H, T); MLP
// hidden (N, F) (and GELU's pre-activation, SwiGLU's gate and up); logits and dLogits (N, V);
// losses and correct flags (N); tokens/targets (N) Int32.

/// Named regions of one or more flat arenas (segments), in the order they were added; offsets
/// rounded up to 16 elements (64 bytes). A tensor that would take a segment past
/// `segmentLimit` elements starts the next one, so a model whose activations exceed what one
/// device buffer holds (2³¹ elements on OpenCL) still runs; a single tensor over the limit is
/// refused by `check`.
struct ArenaLayout {
    private(set) var specs: [(name: String, segment: Int, offset: Int, count: Int)] = []
    private var index: [String: Int] = [:]
    /// Elements of each segment.
    private(set) var segments: [Int] = [0]
    let segmentLimit: Int

    init(segmentLimit: Int = .max) { self.segmentLimit = segmentLimit }

    /// Elements in all segments.
    var count: Int { segments.reduce(0, +) }

    mutating func add(_ name: String, _ n: Int) {
        precondition(index[name] == nil, "activation '\(name)' added twice")
        let padded = (n + 15) / 16 * 16
        if segments[segments.count - 1] > 0 && segments[segments.count - 1] > segmentLimit - padded { segments.append(0) }
        index[name] = specs.count
        specs.append((name, segments.count - 1, segments[segments.count - 1], n))
        segments[segments.count - 1] += padded
    }

    /// Throws if a single tensor is larger than a segment may be.
    func check(_ what: String) throws {
        if let big = specs.first(where: { ($0.count + 15) / 16 * 16 > segmentLimit }) {
            throw ModelError(String(format: "%@: the activation '%@' alone needs %.1f MiB, more than one buffer of this device holds (%.1f MiB); use a smaller --batch or --context",
                                    what, big.name, Double(big.count) * 4 / 1_048_576, Double(segmentLimit) * 4 / 1_048_576))
        }
    }

    /// The view of `name` in `arenas` (one buffer per segment of this layout).
    func view(_ name: String, in arenas: [DeviceBuffer]) -> TensorView {
        guard let i = index[name] else { preconditionFailure("no activation '\(name)'") }
        return arenas[specs[i].segment].view(specs[i].offset, specs[i].count)
    }
}

struct BlockActivations {
    let input: TensorView        // x_l, the residual stream entering the block (N, C)
    let norm1, norm1Mean, norm1Rstd: TensorView
    let q: TensorView            // (N, H·hd)
    let k, v: TensorView         // (N, KVH·hd)
    let att, lse: TensorView
    let mid: TensorView          // x_l + attention branch (N, C)
    let norm2, norm2Mean, norm2Rstd: TensorView
    let hidden: TensorView       // the MLP's activation output (N, F): relu is applied in place
    /// GELU: the pre-activation c_fc(x) + b; SwiGLU: gate(x). Nil for ReLU.
    let pre: TensorView?
    /// SwiGLU: up(x). Nil otherwise.
    let up: TensorView?

    /// The tensors of block `l` and their sizes, in arena order.
    static func plan(_ layout: inout ArenaLayout, block l: Int, config c: ModelConfig, rows N: Int, lse: Int) {
        let C = c.channels, KC = c.kvChannels, F = c.ffn, mlp = c.architecture.mlp
        var names = [("input", N * C), ("ln1", N * C), ("ln1.mean", N), ("ln1.rstd", N), ("q", N * C), ("k", N * KC),
                     ("v", N * KC), ("att", N * C), ("lse", lse), ("mid", N * C), ("ln2", N * C), ("ln2.mean", N),
                     ("ln2.rstd", N), ("hidden", N * F)]
        if mlp != .relu { names.append(("pre", N * F)) }
        if mlp == .swiglu { names.append(("up", N * F)) }
        for (name, n) in names { layout.add("blocks.\(l).\(name)", n) }
    }

    init(_ layout: ArenaLayout, block l: Int, mlp: MLPKind, arena: [DeviceBuffer]) {
        func v(_ name: String) -> TensorView { layout.view("blocks.\(l).\(name)", in: arena) }
        input = v("input"); norm1 = v("ln1"); norm1Mean = v("ln1.mean"); norm1Rstd = v("ln1.rstd")
        q = v("q"); k = v("k"); self.v = v("v"); att = v("att"); lse = v("lse"); mid = v("mid")
        norm2 = v("ln2"); norm2Mean = v("ln2.mean"); norm2Rstd = v("ln2.rstd"); hidden = v("hidden")
        pre = mlp == .relu ? nil : v("pre")
        up = mlp == .swiglu ? v("up") : nil
    }
}

/// The backward pass's scratch (training only).
struct BackwardScratch {
    let dResidual, dLn, dAtt, dq, dk, dv, dHidden, dLogits: TensorView
    /// SwiGLU: the up projection's output gradient (the gate's overwrites dHidden).
    let dUp: TensorView?
}

final class Activations {
    let batch: Int, time: Int
    /// Inference against targets: `logits` holds `logitRows` rows (a slice), not B·T.
    let scoring: Bool
    let logitRows: Int

    /// Rows of logits a scoring pass makes at once: about 8 M logits (32 MB; 170 rows of SmolLM2's
    /// 49,152), at least one row.
    static func scoringRows(rows: Int, vocabulary V: Int) -> Int { min(rows, max(1, (1 << 23) / max(V, 1))) }
    let layout: ArenaLayout
    /// One buffer per segment of `layout`.
    let arena: [DeviceBuffer]
    let ids: DeviceBuffer          // Int32: tokens (N) then targets (N)
    let tokens, targets: TensorView
    /// One per block for training; for inference every block is the same set, updated in place
    /// (nothing is kept for a backward pass).
    let blocks: [BlockActivations]
    let output: TensorView         // x_L (N, C); for inference, the one residual stream
    let lnf, lnfMean, lnfRstd: TensorView
    let logits, losses, correct: TensorView
    /// Per-row distillation losses (τ²·KL) and squared hidden-state distances (one block at a time).
    let distillLosses, hiddenDistances: TensorView
    let backward: BackwardScratch?

    /// The named tensors of a (B, T) pass of model `c`, in segments of at most `segmentLimit`
    /// elements.
    static func plan(config c: ModelConfig, batch: Int, time: Int, inference: Bool, scoring: Bool = false, segmentLimit: Int) -> ArenaLayout {
        let N = batch * time, C = c.channels, KC = c.kvChannels, F = c.ffn, V = c.vocabularySize
        let L = scoring ? scoringRows(rows: N, vocabulary: V) : N
        var plan = ArenaLayout(segmentLimit: segmentLimit)
        for l in 0..<(inference ? 1 : c.layers) {
            BlockActivations.plan(&plan, block: l, config: c, rows: N, lse: batch * c.heads * time)
        }
        var names = [("ln_f", N * C), ("ln_f.mean", N), ("ln_f.rstd", N), ("logits", L * V), ("losses", N), ("correct", N),
                     ("distill.losses", N), ("distill.hidden", N)]
        if !inference {
            names += [("output", N * C), ("d.residual", N * C), ("d.ln", N * C), ("d.att", N * C), ("d.q", N * C),
                      ("d.k", N * KC), ("d.v", N * KC), ("d.hidden", N * F), ("d.logits", N * V)]
            if c.architecture.mlp == .swiglu { names.append(("d.up", N * F)) }
        }
        for (name, n) in names { plan.add(name, n) }
        return plan
    }

    init(config c: ModelConfig, batch: Int, time: Int, device: any ComputeDevice, inference: Bool = false, scoring: Bool = false) throws {
        self.batch = batch; self.time = time
        let N = batch * time, mlp = c.architecture.mlp
        self.scoring = scoring && inference
        logitRows = self.scoring ? Self.scoringRows(rows: N, vocabulary: c.vocabularySize) : N
        let plan = Self.plan(config: c, batch: batch, time: time, inference: inference, scoring: self.scoring,
                             segmentLimit: device.maxBufferElements)
        try plan.check("B=\(batch) T=\(time)")
        layout = plan
        let label = "activations B=\(batch) T=\(time)\(inference ? " (inference)" : "")"
        arena = try plan.segments.enumerated().map { i, n in
            try device.makeBuffer(count: n, label: plan.segments.count == 1 ? label : label + " [\(i + 1)/\(plan.segments.count)]")
        }
        ids = try device.makeBuffer(count: 2 * N, label: "token ids")
        tokens = ids.view(0, N); targets = ids.view(N, N)
        let a = arena
        func v(_ name: String) -> TensorView { plan.view(name, in: a) }
        if inference {
            let shared = BlockActivations(plan, block: 0, mlp: mlp, arena: a)
            blocks = Array(repeating: shared, count: c.layers)
            output = shared.input
            backward = nil
        } else {
            blocks = (0..<c.layers).map { BlockActivations(plan, block: $0, mlp: mlp, arena: a) }
            output = v("output")
            backward = BackwardScratch(dResidual: v("d.residual"), dLn: v("d.ln"), dAtt: v("d.att"), dq: v("d.q"), dk: v("d.k"),
                                       dv: v("d.v"), dHidden: v("d.hidden"), dLogits: v("d.logits"),
                                       dUp: mlp == .swiglu ? v("d.up") : nil)
        }
        lnf = v("ln_f"); lnfMean = v("ln_f.mean"); lnfRstd = v("ln_f.rstd")
        logits = v("logits"); losses = v("losses"); correct = v("correct"); distillLosses = v("distill.losses")
        hiddenDistances = v("distill.hidden")
    }
}
