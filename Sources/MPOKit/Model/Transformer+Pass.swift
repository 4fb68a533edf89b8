// Transformer forward and backward passes: the layer loop and the reverse loop, llm.c style.
// Pre-norm blocks: x ← x + o(Attn(rope(q(N1(x))), rope(k(N1(x))), v(N1(x))));  x ← x + down(act(N2(x))),
// act = relu(up·) | gelu(up·) | silu(gate·)∘(up·); N = LayerNorm or RMSNorm; rope only for rotary
// positions (fixed and learned positions are added to the embedding instead).

import Foundation

/// Mean loss and token accuracy of one forward pass. With distillation, `loss` is the training
/// loss (1 − α)·CE + α·τ²·KL + β·MSE and the parts are given separately.
public struct PassResult: Sendable, Equatable {
    public var loss: Double
    public var accuracy: Double
    /// Mean cross-entropy against the targets (= loss without distillation).
    public var crossEntropy: Double
    /// Mean τ²·KL(teacher ‖ student) over positions, and the mean squared hidden-state distance
    /// (over blocks, positions and channels); nil without distillation (or hidden matching).
    public var distillation: Double? = nil
    public var hidden: Double? = nil

    public init(loss: Double, accuracy: Double, crossEntropy: Double? = nil, distillation: Double? = nil, hidden: Double? = nil) {
        self.loss = loss; self.accuracy = accuracy; self.crossEntropy = crossEntropy ?? loss
        self.distillation = distillation; self.hidden = hidden
    }
}

/// What the student of a distillation matches in one forward pass (views on the student's device):
/// the teacher's logits (N, V) and, for hidden matching, its residual stream after every block
/// (L, N, C). loss = (1 − α)·CE + α·τ²·KL(teacher ‖ student) + β·mean((h_s − h_t)²).
public struct DistillationTargets {
    public var logits: TensorView
    public var residuals: TensorView?
    public var weight: Double
    public var temperature: Double
    public var hiddenWeight: Double

    public init(logits: TensorView, residuals: TensorView? = nil, weight: Double, temperature: Double, hiddenWeight: Double = 0) {
        self.logits = logits; self.residuals = residuals; self.weight = weight
        self.temperature = temperature; self.hiddenWeight = hiddenWeight
    }
}

extension Transformer {
    /// Runs the model on `tokens` (B·T ids, row-major), leaving the logits in the activations;
    /// nothing is read back. `captureResiduals` (L, B·T, C) receives the residual stream after
    /// every block (a teacher's forward for hidden-state matching).
    public func forward(tokens: [Int32], batch: Int, time: Int, needsGradients: Bool = true,
                        captureResiduals: TensorView? = nil) throws {
        try enqueuePass(tokens: tokens, targets: nil, batch: batch, time: time, needsGradients: needsGradients,
                        distill: nil, captureResiduals: captureResiduals)
    }

    /// Runs the model on `tokens` and scores it against `targets`: the mean cross-entropy and
    /// accuracy, read back, and (if `needsGradients`) the logits' gradient for `backward`; with
    /// `distill`, the distillation loss too (its gradient follows in `backward`).
    @discardableResult
    public func forward(tokens: [Int32], targets: [Int32], batch: Int, time: Int, needsGradients: Bool = true,
                        distill: DistillationTargets? = nil) throws -> PassResult {
        try enqueuePass(tokens: tokens, targets: targets, batch: batch, time: time, needsGradients: needsGradients,
                        distill: distill, captureResiduals: nil)
        return try readPassResult(batch: batch, time: time)
    }

    /// The training step's pass: as `forward(tokens:targets:…)` with gradients, but the losses
    /// stay on the device (the step reduces them there and waits once).
    func enqueueLoss(tokens: [Int32], targets: [Int32], batch: Int, time: Int, distill: DistillationTargets?) throws {
        try enqueuePass(tokens: tokens, targets: targets, batch: batch, time: time, needsGradients: true,
                        distill: distill, captureResiduals: nil)
    }

    private func enqueuePass(tokens: [Int32], targets: [Int32]?, batch: Int, time: Int, needsGradients: Bool,
                             distill: DistillationTargets?, captureResiduals: TensorView?) throws {
        let c = config, N = batch * time, C = c.channels
        guard batch >= 1, time >= 1, time <= c.context else {
            throw ModelError("batch \(batch) × time \(time) is not a valid input; time must be 1…\(c.context) (the model's context)")
        }
        guard tokens.count == N, targets.map({ $0.count == N }) ?? true else {
            throw ModelError("expected \(N) token ids (and targets) for batch \(batch) × time \(time), got \(tokens.count)")
        }
        for t in tokens + (targets ?? []) where t < 0 || Int(t) >= c.vocabularySize {
            throw ModelError("token id \(t) outside the vocabulary 0..<\(c.vocabularySize)")
        }
        if let capture = captureResiduals, capture.count < c.layers * N * C {
            throw ModelError("captureResiduals holds \(capture.count) values; \(c.layers) blocks × \(N) rows × \(C) need more")
        }
        if let d = distill {
            guard d.logits.count >= N * c.vocabularySize, (d.residuals?.count ?? c.layers * N * C) >= c.layers * N * C,
                  d.weight >= 0, d.weight <= 1, d.temperature > 0, d.hiddenWeight >= 0 else {
                throw ModelError("distillation targets do not fit this batch, or α ∉ [0, 1], τ ≤ 0 or β < 0")
            }
            guard d.hiddenWeight == 0 || d.residuals != nil else { throw ModelError("hidden-state matching needs the teacher's residuals") }
        }
        let a = try activations(batch: batch, time: time, scoring: targets != nil && distill == nil)
        distillTargets = distill
        let dev = device
        if let targets { try dev.write(targets, to: a.targets) }
        try embed(tokens, a, batch: batch, time: time)
        let shape = AttentionShape(batch: batch, time: time, heads: c.heads, headDim: c.headDim, kvHeads: c.kvHeads)
        for l in 0..<c.layers {
            try blockForward(l, blockIO(l, a), rows: N, shape: shape)
            if let capture = captureResiduals { dev.copy(residual(after: l, a), to: capture.view(l * N * C, N * C)) }
        }
        finalNorm.forward(dev, x: a.output, out: a.lnf, mean: a.lnfMean, rstd: a.lnfRstd, rows: N, columns: C)
        try linearInputTap?(c.layers, .head, a.lnf, N)   // the head's input (block index: one past the last)
        if a.scoring {   // inference against targets: logits and their loss a slice of rows at a time
            let V = c.vocabularySize
            for r0 in stride(from: 0, to: N, by: a.logitRows) {
                let n = min(a.logitRows, N - r0), logits = a.logits.view(0, n * V)
                try headForward(dev, x: a.lnf.view(r0 * C, n * C), y: logits, rows: n)
                dev.crossEntropy(logits: logits, targets: a.targets.view(r0, n), losses: a.losses.view(r0, n),
                                 correct: a.correct.view(r0, n), dLogits: nil, gradScale: 0, rows: n, vocabulary: V)
            }
            return
        }
        try headForward(dev, x: a.lnf, y: a.logits, rows: N)
        guard targets != nil else { return }
        let alpha = distill?.weight ?? 0
        let dLogits = needsGradients ? a.backward?.dLogits : nil
        dev.crossEntropy(logits: a.logits, targets: a.targets, losses: a.losses, correct: a.correct,
                         dLogits: dLogits, gradScale: distill == nil ? 1 / Float(N) : Float((1 - alpha) / Double(N)),
                         rows: N, vocabulary: c.vocabularySize)
        if let d = distill {
            dev.distillation(student: a.logits, teacher: d.logits, losses: a.distillLosses, dLogits: dLogits,
                             temperature: Float(d.temperature), gradScale: Float(alpha / Double(N)), rows: N, vocabulary: c.vocabularySize)
        }
    }

    /// Loss and accuracy of the pass just enqueued with targets, read back (a host wait).
    private func readPassResult(batch: Int, time: Int) throws -> PassResult {
        guard let a = acts else { throw ModelError("no forward pass has run yet") }
        let dev = device, N = batch * time
        func mean(_ v: TensorView, over n: Int) throws -> Double { try dev.read(v).reduce(0.0) { $0 + Double($1) } / Double(n) }
        let ce = try mean(a.losses, over: N), accuracy = try mean(a.correct, over: N)
        guard let d = distillTargets else { return PassResult(loss: ce, accuracy: accuracy) }
        let kd = try mean(a.distillLosses, over: N)
        let hidden = try hiddenDistance(a)
        let loss = (1 - d.weight) * ce + d.weight * kd + d.hiddenWeight * (hidden ?? 0)
        return PassResult(loss: loss, accuracy: accuracy, crossEntropy: ce, distillation: kd, hidden: hidden)
    }

    /// The mean squared distance of the residual stream to the teacher's (over blocks, rows and
    /// channels) of the last forward pass, read back; nil without hidden-state matching.
    func hiddenDistance(_ a: Activations) throws -> Double? {
        guard let d = distillTargets, d.hiddenWeight > 0, let teacher = d.residuals else { return nil }
        let c = config, N = a.batch * a.time, C = c.channels
        var total = 0.0
        for l in 0..<c.layers {
            device.squaredDistance(residual(after: l, a), teacher.view(l * N * C, N * C), sums: a.hiddenDistances, dA: nil,
                                   gradScale: 0, rows: N, columns: C)
            total += try device.read(a.hiddenDistances).reduce(0.0) { $0 + Double($1) } / Double(N * C * c.layers)
        }
        return total
    }

    /// The residual stream after block `l` in the activations `a`.
    func residual(after l: Int, _ a: Activations) -> TensorView { l + 1 < config.layers ? a.blocks[l + 1].input : a.output }

    /// Block `l`'s views in a whole pass's activations `a` (inference: one residual stream,
    /// updated in place).
    func blockIO(_ l: Int, _ a: Activations) -> BlockIO {
        let b = a.blocks[l]
        return BlockIO(input: b.input, mid: purpose == .inference ? b.input : b.mid, output: residual(after: l, a),
                       norm1: b.norm1, norm1Mean: b.norm1Mean, norm1Rstd: b.norm1Rstd, q: b.q, kNew: b.k, vNew: b.v,
                       kAll: b.k, vAll: b.v, att: b.att, lse: b.lse, norm2: b.norm2, norm2Mean: b.norm2Mean,
                       norm2Rstd: b.norm2Rstd, hidden: b.hidden, pre: b.pre, up: b.up)
    }

    /// The residual stream entering block 0 for one sequence of `tokens` (time × channels).
    func embedded(_ tokens: [Int32]) throws -> [Float] {
        let a = try activations(batch: 1, time: tokens.count)
        return try device.read(try embed(tokens, a, batch: 1, time: tokens.count).view(0, tokens.count * config.channels))
    }

    /// Writes `tokens` and their embedding (positions from 0) where the first block reads its
    /// input (the final norm's input for a model without blocks); returns that view.
    @discardableResult
    private func embed(_ tokens: [Int32], _ a: Activations, batch: Int, time: Int) throws -> TensorView {
        try device.write(tokens, to: a.tokens)
        let out = config.layers > 0 ? a.blocks[0].input : a.output
        try embedding.forward(device, tokens: a.tokens, positions: positionRows(from: 0, count: time), out: out, batch: batch, time: time)
        return out
    }

    /// Block `l` alone on one sequence's residual stream (time × channels): the stream after it.
    /// linearInputTap sees the block's linear inputs, as in a whole pass.
    func blockForward(_ l: Int, residual: [Float], time: Int) throws -> [Float] {
        let c = config, a = try activations(batch: 1, time: time), io = blockIO(l, a)
        try device.write(residual, to: io.input.view(0, time * c.channels))
        try blockForward(l, io, rows: time, shape: AttentionShape(batch: 1, time: time, heads: c.heads, headDim: c.headDim, kvHeads: c.kvHeads))
        return try device.read(io.output.view(0, time * c.channels))
    }

    /// Where one block's forward reads and writes. `input`, `mid` and `output` may be one view
    /// (the residual updated in place, as the generator does); new keys/values go to `kNew`/`vNew`
    /// and attention reads `kAll`/`vAll` (the KV cache when decoding, the same views in training).
    /// `pre` and `up` are the MLP's extra activations (GELU's pre-activation; SwiGLU's gate and up).
    struct BlockIO {
        var input, mid, output: TensorView
        var norm1, norm1Mean, norm1Rstd, q, kNew, vNew, kAll, vAll, att, lse: TensorView
        var norm2, norm2Mean, norm2Rstd, hidden: TensorView
        var pre: TensorView?, up: TensorView?
    }

    /// Rows `from`…`from + count − 1` of the position table added to the embedding (fixed or
    /// learned); nil for rotary models.
    func positionRows(from p: Int, count n: Int) -> TensorView? {
        let C = config.channels
        if let fixedPositions { return fixedPositions.view(p * C, n * C) }
        return positionTable?.view(p * C, n * C)
    }

    /// The head: its own linear, or the token embedding's table (tied).
    func headForward(_ dev: any ComputeDevice, x: TensorView, y: TensorView, rows: Int) throws {
        if let head { try head.forward(dev, x: x, y: y, rows: rows) } else { try embedding.headForward(dev, x: x, y: y, rows: rows) }
    }

    /// Block `l`: mid = input + o(Attn(N1(input))); output = mid + down(act(N2(mid))). Rotary
    /// models turn q and the new keys to their positions (shape.queryOffset + t) before attention.
    /// `afterKeyValues` runs between the projections and attention (the generator moves a
    /// batch's new keys and values into its caches there).
    func blockForward(_ l: Int, _ io: BlockIO, rows N: Int, shape: AttentionShape, afterKeyValues: () -> Void = {}) throws {
        let dev = device, c = config, C = c.channels, F = c.ffn, blk = blocks[l]
        func same(_ a: TensorView, _ b: TensorView) -> Bool { a.buffer === b.buffer && a.offset == b.offset }
        blk.norm1.forward(dev, x: io.input, out: io.norm1, mean: io.norm1Mean, rstd: io.norm1Rstd, rows: N, columns: C)
        try linearInputTap?(l, .query, io.norm1, N)
        try forward([blk.query, blk.key, blk.value], stacked: blk.stackedQKV, x: io.norm1, ys: [io.q, io.kNew, io.vNew], rows: N)
        if let rotaryTable {
            let p = shape.queryOffset
            dev.rotary(io.q, table: rotaryTable.all, shape: RotaryShape(batch: shape.batch, time: shape.time, heads: c.heads,
                                                                        headDim: c.headDim, positionOffset: p), inverse: false)
            dev.rotary(io.kNew, table: rotaryTable.all, shape: RotaryShape(batch: shape.batch, time: shape.time, heads: c.kvHeads,
                                                                           headDim: c.headDim, positionOffset: p), inverse: false)
        }
        afterKeyValues()
        dev.attentionForward(shape, q: io.q, k: io.kAll, v: io.vAll, out: io.att, lse: io.lse)
        if !same(io.input, io.mid) { dev.copy(io.input, to: io.mid) }
        try linearInputTap?(l, .output, io.att, N)
        try blk.output.forward(dev, x: io.att, y: io.mid, rows: N, accumulate: true)
        blk.norm2.forward(dev, x: io.mid, out: io.norm2, mean: io.norm2Mean, rstd: io.norm2Rstd, rows: N, columns: C)
        try linearInputTap?(l, .up, io.norm2, N)
        let hidden = io.hidden.view(0, N * F)
        switch c.architecture.mlp {
        case .relu:
            try blk.up.forward(dev, x: io.norm2, y: io.hidden, rows: N, relu: true)
        case .geluTanh:
            try blk.up.forward(dev, x: io.norm2, y: io.pre!, rows: N)
            dev.geluForward(io.pre!.view(0, N * F), out: hidden)
        case .swiglu:
            try forward([blk.gate!, blk.up], stacked: blk.stackedGateUp, x: io.norm2, ys: [io.pre!, io.up!], rows: N)
            dev.swigluForward(gate: io.pre!, up: io.up!, out: hidden, count: N * F)
        }
        if !same(io.mid, io.output) { dev.copy(io.mid, to: io.output) }
        try linearInputTap?(l, .down, hidden, N)
        try blk.down.forward(dev, x: io.hidden, y: io.output, rows: N, accumulate: true)
    }

    /// Layers that read the same x: one product of their stacked V factors when the block has
    /// them (and usesStackedFactors), else each layer alone.
    private func forward(_ layers: [Linear], stacked: PackedMatrix?, x: TensorView, ys: [TensorView], rows: Int) throws {
        if let stacked, usesStackedFactors {
            try Linear.forwardStacked(device, layers, stacked: stacked, x: x, ys: ys, rows: rows)
        } else {
            for (l, y) in zip(layers, ys) { try l.forward(device, x: x, y: y, rows: rows) }
        }
    }

    /// Logits (B, T, V) of the last forward pass.
    public func logits() throws -> [Float] { try device.read(try logitsView()) }

    /// The device view of the last forward pass's logits (B·T, V) (a teacher's, for distillation).
    public func logitsView() throws -> TensorView {
        guard let a = acts else { throw ModelError("no forward pass has run yet") }
        guard !a.scoring else {
            throw ModelError("an inference-only pass against targets keeps no logits (it scores them a slice at a time); run forward(tokens:) for logits")
        }
        return a.logits
    }

    /// Accumulates the gradient of the last forward pass's mean loss into `grads`
    /// (call `zeroGradients()` first). Requires `forward(…, targets:, needsGradients: true)`.
    public func backward() throws {
        guard let a = acts else { throw ModelError("backward() needs a forward pass with targets first") }
        guard let d = a.backward, grads != nil else { throw ModelError("this model was built for inference only; build it with purpose .training to train it") }
        let c = config, N = a.batch * a.time, C = c.channels, F = c.ffn, dev = device
        let dx = d.dResidual
        dev.fill(dx, value: 0)
        try embedding.zeroTableGradient(dev)
        if let head { try head.backward(dev, dY: d.dLogits, x: a.lnf, dX: d.dLn, rows: N) }
        else { try embedding.headBackward(dev, dY: d.dLogits, x: a.lnf, dX: d.dLn, rows: N) }
        try finalNorm.backward(dev, dOut: d.dLn, x: a.output, mean: a.lnfMean, rstd: a.lnfRstd, dInput: dx, rows: N, columns: C)
        let shape = AttentionShape(batch: a.batch, time: a.time, heads: c.heads, headDim: c.headDim, kvHeads: c.kvHeads)
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let b = a.blocks[l], blk = blocks[l]
            // Hidden-state matching: d(β·mean((h_l − t_l)²)) enters the residual after block l.
            if let t = distillTargets, t.hiddenWeight > 0, let teacher = t.residuals {
                dev.squaredDistance(residual(after: l, a), teacher.view(l * N * C, N * C), sums: a.hiddenDistances, dA: dx,
                                    gradScale: Float(t.hiddenWeight / Double(c.layers * N * C)), rows: N, columns: C)
            }
            // MLP branch: dx is d(next); the residual passes it to d(mid) unchanged.
            try blk.down.backward(dev, dY: dx, x: b.hidden, dX: d.dHidden, rows: N)
            switch c.architecture.mlp {
            case .relu:
                try blk.up.backwardReLU(dev, dY: d.dHidden, y: b.hidden, x: b.norm2, dX: d.dLn, rows: N)
            case .geluTanh:
                let dh = d.dHidden.view(0, N * F)
                dev.geluBackward(dh, input: b.pre!.view(0, N * F), dX: dh)
                try blk.up.backward(dev, dY: d.dHidden, x: b.norm2, dX: d.dLn, rows: N)
            case .swiglu:
                dev.swigluBackward(dOut: d.dHidden, gate: b.pre!, up: b.up!, dGate: d.dHidden, dUp: d.dUp!, count: N * F)
                try blk.gate!.backward(dev, dY: d.dHidden, x: b.norm2, dX: d.dLn, rows: N)
                try blk.up.backward(dev, dY: d.dUp!, x: b.norm2, dX: d.dLn, rows: N, accumulateInput: true)
            }
            try blk.norm2.backward(dev, dOut: d.dLn, x: b.mid, mean: b.norm2Mean, rstd: b.norm2Rstd, dInput: dx, rows: N, columns: C)
            // Attention branch.
            try blk.output.backward(dev, dY: dx, x: b.att, dX: d.dAtt, rows: N)
            dev.attentionBackward(shape, dOut: d.dAtt, q: b.q, k: b.k, v: b.v, out: b.att, lse: b.lse, dq: d.dq, dk: d.dk, dv: d.dv)
            if let rotaryTable {
                dev.rotary(d.dq, table: rotaryTable.all, shape: RotaryShape(batch: a.batch, time: a.time, heads: c.heads, headDim: c.headDim),
                           inverse: true)
                dev.rotary(d.dk, table: rotaryTable.all, shape: RotaryShape(batch: a.batch, time: a.time, heads: c.kvHeads, headDim: c.headDim),
                           inverse: true)
            }
            try blk.query.backward(dev, dY: d.dq, x: b.norm1, dX: d.dLn, rows: N)
            try blk.key.backward(dev, dY: d.dk, x: b.norm1, dX: d.dLn, rows: N, accumulateInput: true)
            try blk.value.backward(dev, dY: d.dv, x: b.norm1, dX: d.dLn, rows: N, accumulateInput: true)
            try blk.norm1.backward(dev, dOut: d.dLn, x: b.input, mean: b.norm1Mean, rstd: b.norm1Rstd, dInput: dx, rows: N, columns: C)
        }
        try embeddingGradientTap?(dx, N)
        try embedding.backward(dev, dOut: dx, tokens: a.tokens, batch: a.batch, time: a.time)
        if let dPositionTable { dev.positionBackward(dOut: dx, dTable: dPositionTable, batch: a.batch, time: a.time, channels: C) }
    }

    /// Global L2 norm of the gradient arena.
    public func gradientNorm() throws -> Double { try device.sumOfSquares(try gradientArena().all).squareRoot() }
}
