// One optimisation step in the recipe's order (SPEC §6): forward, backward, clip, AdamW.

public struct StepStats: Sendable, Equatable {
    public var loss: Double
    public var accuracy: Double
    public var gradNorm: Double
}

extension AdamW {
    /// zero-grad → forward → backward → clip → update, on one batch.
    @discardableResult
    public func trainStep(tokens: [Int32], targets: [Int32], batch: Int, time: Int, learningRate lr: Double) throws -> StepStats {
        model.zeroGradients()
        let r = try model.forward(tokens: tokens, targets: targets, batch: batch, time: time)!
        try model.backward()
        let norm = try clipGradients()
        update(learningRate: lr)
        return StepStats(loss: r.loss, accuracy: r.accuracy, gradNorm: norm)
    }
}
