// One optimisation step in the recipe's order (SPEC §6): forward, backward, clip, AdamW;
// and the evaluation pass (mean loss and accuracy over random windows).

public struct StepStats: Sendable, Equatable {
    public var loss: Double
    public var accuracy: Double
    public var gradNorm: Double
    /// False when the loss or gradient norm was NaN/inf: the update was not applied.
    public var applied: Bool
}

extension AdamW {
    /// zero-grad → forward → backward → clip → update, on one batch. A non-finite loss or
    /// gradient norm never reaches the parameters: the update is skipped (`applied` false).
    @discardableResult
    public func trainStep(tokens: [Int32], targets: [Int32], batch: Int, time: Int, learningRate lr: Double) throws -> StepStats {
        model.zeroGradients()
        let r = try model.forward(tokens: tokens, targets: targets, batch: batch, time: time)!
        try model.backward()
        let norm = try clipGradients()
        let finite = r.loss.isFinite && norm.isFinite
        if finite { update(learningRate: lr) }
        return StepStats(loss: r.loss, accuracy: r.accuracy, gradNorm: norm, applied: finite)
    }
}

extension PicoGPT {
    /// Mean loss and token accuracy over `batches` random (batchSize, time) windows of `split`
    /// (SPEC §6 evaluation), without gradients.
    public func evaluate(_ split: [Int32], batches: Int, batchSize: Int, time: Int,
                         rng: inout SplitMix64) throws -> (loss: Double, accuracy: Double) {
        var l = 0.0, a = 0.0
        for _ in 0..<batches {
            let (tok, tgt) = TextDataset.sample(split, batch: batchSize, time: time, rng: &rng)
            let r = try forward(tokens: tok, targets: tgt, batch: batchSize, time: time, needsGradients: false)!
            l += r.loss; a += r.accuracy
        }
        return (l / Double(max(batches, 1)), a / Double(max(batches, 1)))
    }
}
