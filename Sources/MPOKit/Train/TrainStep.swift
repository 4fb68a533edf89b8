// One optimisation step in the recipe's order (docs/SPEC.md §6): forward, backward, clip, AdamW;
// and the evaluation pass (mean loss and accuracy over random windows).

public struct StepStats: Sendable, Equatable {
    public var loss: Double
    public var accuracy: Double
    public var gradNorm: Double
    /// False when the loss or gradient norm was NaN/inf: the update was not applied.
    public var applied: Bool
    /// The pass's parts (cross-entropy, and the distillation terms with a teacher).
    public var pass: PassResult
}

extension AdamW {
    /// zero-grad → forward → backward → clip → update, on one batch, with one host wait: the
    /// losses, accuracy, gradient norm and clip scale are reduced on the device (`stepScalars`),
    /// AdamW reads the clip scale and the finite flag from there, and the step's scalars are read
    /// once at the end. A non-finite loss or gradient norm never reaches the parameters: the
    /// update is skipped on the device (`applied` false). The gradient arena keeps the unclipped
    /// gradients (the clip scale multiplies them inside AdamW).
    /// With a `teacher`, the loss is the distillation loss (Distillation.swift); hidden-state
    /// matching (β > 0) reads its distance back before the backward pass (one more wait per block).
    @discardableResult
    public func trainStep(tokens: [Int32], targets: [Int32], batch: Int, time: Int, learningRate lr: Double,
                          teacher: Teacher? = nil) throws -> StepStats {
        let (a, distill, hidden) = try backpropagate(tokens: tokens, targets: targets, batch: batch, time: time, teacher: teacher)
        let dev = model.device
        dev.stepScalars(losses: a.losses, correct: a.correct, extra: distill == nil ? nil : a.distillLosses,
                        rows: batch * time, gradients: model.grads!.all, clip: options.clip, into: scalars.all)
        let hiddenFinite = hidden?.isFinite ?? true
        // The device applies this update only if the loss and gradient norm are finite; the step
        // is counted once the scalars say it was.
        if hiddenFinite { enqueueUpdate(learningRate: lr, step: step + 1, control: scalars.all) }
        let s = try dev.readStepScalars(scalars.all)
        let applied = s.finite && hiddenFinite
        if applied { step += 1 }
        let pass = PassResult(crossEntropy: s.crossEntropy, distillation: s.distillation, hidden: hidden, accuracy: s.accuracy,
                              distill: distill)
        return StepStats(loss: pass.loss, accuracy: pass.accuracy, gradNorm: s.gradientNorm, applied: applied, pass: pass)
    }
}

extension AdamW {
    /// zero-grad → forward (with the teacher's targets) → backward on one batch, enqueued; the
    /// hidden-state distance is read back when it is matched.
    func backpropagate(tokens: [Int32], targets: [Int32], batch: Int, time: Int, teacher: Teacher?) throws
        -> (activations: Activations, distill: DistillationTargets?, hidden: Double?) {
        let distill = try teacher?.targets(tokens: tokens, batch: batch, time: time)
        model.zeroGradients()
        try model.enqueueLoss(tokens: tokens, targets: targets, batch: batch, time: time, distill: distill)
        let a = try model.activations(batch: batch, time: time)
        let hidden = try model.hiddenDistance(a)
        try model.backward()
        return (a, distill, hidden)
    }
}

extension PassResult {
    /// A training pass's result from its parts: the cross-entropy alone, or with a teacher
    /// (1 − α)·CE + α·τ²·KL + β·hidden.
    init(crossEntropy: Double, distillation: Double, hidden: Double?, accuracy: Double, distill: DistillationTargets?) {
        if let d = distill {
            let loss = (1 - d.weight) * crossEntropy + d.weight * distillation + d.hiddenWeight * (hidden ?? 0)
            self.init(loss: loss, accuracy: accuracy, crossEntropy: crossEntropy, distillation: distillation, hidden: hidden)
        } else {
            self.init(loss: crossEntropy, accuracy: accuracy)
        }
    }
}

extension Transformer {
    /// Mean loss and token accuracy over `batches` random (batchSize, time) windows of `split`
    /// (docs/SPEC.md §6 evaluation), without gradients.
    public func evaluate(_ split: [Int32], batches: Int, batchSize: Int, time: Int,
                         rng: inout SplitMix64) throws -> (loss: Double, accuracy: Double) {
        var l = 0.0, a = 0.0
        for _ in 0..<batches {
            let (tok, tgt) = TextDataset.sample(split, batch: batchSize, time: time, rng: &rng)
            let r = try forward(tokens: tok, targets: tgt, batch: batchSize, time: time, needsGradients: false)
            l += r.loss; a += r.accuracy
        }
        return (l / Double(max(batches, 1)), a / Double(max(batches, 1)))
    }
}

/// Loss and accuracy over a whole split.
public struct SplitEvaluation: Sendable, Equatable {
    public var loss: Double
    public var accuracy: Double
    /// Tokens scored (every window's T positions).
    public var tokens: Int
    public var windows: Int
}

extension Transformer {
    /// Mean loss and token accuracy over every non-overlapping window of `time` tokens of
    /// `split` (starts 0, T, 2T, … while a window and its shifted targets fit), in batches of
    /// `batchSize`: deterministic, and over the whole split, so a result is not evaluation noise.
    public func evaluateAll(_ split: [Int32], time: Int, batchSize: Int = 32) throws -> SplitEvaluation {
        guard time >= 1, split.count > time else {
            throw ModelError("the split has \(split.count) tokens; windows of \(time) need more")
        }
        let windows = (split.count - 1) / time
        let s = try windowSums(split, time: time, windows: windows, batchSize: batchSize)
        let n = windows * time
        return SplitEvaluation(loss: s.loss / Double(n), accuracy: s.correct / Double(n), tokens: n, windows: windows)
    }

    /// Loss and accuracy of a whole token sequence, as perplexity is measured: consecutive windows
    /// of `context` tokens (the last one shorter), every position predicting the next token, each
    /// window starting afresh; n tokens give n − 1 predictions. Full windows run `batchSize` at a time.
    public func evaluateSequence(_ tokens: [Int32], context T: Int, batchSize: Int = 8) throws -> SplitEvaluation {
        guard T >= 1, T <= config.context else { throw ModelError("--context \(T) must be in 1…\(config.context) (the model's context)") }
        guard tokens.count >= 2 else { throw ModelError("the text has \(tokens.count) token(s); perplexity needs at least 2") }
        let predictions = tokens.count - 1, full = predictions / T, rest = predictions % T
        var s = try windowSums(tokens, time: T, windows: full, batchSize: batchSize)
        if rest > 0 {
            let tail = try windowSums(Array(tokens[(full * T)...]), time: rest, windows: 1, batchSize: 1)
            s.loss += tail.loss; s.correct += tail.correct
        }
        return SplitEvaluation(loss: s.loss / Double(predictions), accuracy: s.correct / Double(predictions), tokens: predictions,
                               windows: full + (rest > 0 ? 1 : 0))
    }

    /// Σ loss and Σ correct over windows 0..<windows of `time` tokens of `tokens` (window i starts
    /// at i·time, its targets one later), `batchSize` windows per forward pass.
    private func windowSums(_ tokens: [Int32], time: Int, windows: Int, batchSize: Int) throws -> (loss: Double, correct: Double) {
        var lossSum = 0.0, correctSum = 0.0
        var w = 0
        while w < windows {
            let b = min(batchSize, windows - w)
            var tok: [Int32] = [], tgt: [Int32] = []
            tok.reserveCapacity(b * time); tgt.reserveCapacity(b * time)
            for i in w..<(w + b) {
                tok.append(contentsOf: tokens[(i * time)..<(i * time + time)])
                tgt.append(contentsOf: tokens[(i * time + 1)...(i * time + time)])
            }
            let r = try forward(tokens: tok, targets: tgt, batch: b, time: time, needsGradients: false)
            lossSum += r.loss * Double(b * time); correctSum += r.accuracy * Double(b * time)
            w += b
        }
        return (lossSum, correctSum)
    }
}
