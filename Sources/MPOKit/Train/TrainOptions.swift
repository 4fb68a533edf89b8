// The training recipe (SPEC §6) as one Codable value: defaults are the paper's.

public struct TrainOptions: Codable, Equatable, Sendable {
    public var steps = 2000
    public var batch = 32
    public var time = 256
    public var learningRate = 3e-4
    public var warmup = 100
    public var weightDecay = 0.1
    public var beta1 = 0.9
    public var beta2 = 0.95
    public var epsilon = 1e-8
    public var clip = 1.0
    public var evalInterval = 100
    public var evalBatches = 20
    public var trainEvalBatches = 10
    public var evalBatchSize = 8
    /// Save a checkpoint every this many steps (0: at every evaluation).
    public var checkpointInterval = 0
    public var seed: UInt64 = 2024

    public init() {}

    public var hyper: TrainingHyper {
        var h = TrainingHyper()
        h.learningRate = learningRate; h.warmupSteps = warmup; h.beta1 = beta1; h.beta2 = beta2
        h.epsilon = epsilon; h.weightDecay = weightDecay; h.clipNorm = clip
        return h
    }

    /// The learning rate at `step`.
    public func learningRate(at step: Int) -> Double {
        MPOKit.learningRate(step: step, total: steps, peak: learningRate, warmup: warmup)
    }

    public func validate() throws {
        func bad(_ s: String) -> ModelError { ModelError(s) }
        guard steps >= 0 else { throw bad("--steps must be ≥ 0 (got \(steps))") }
        guard batch >= 1, evalBatchSize >= 1 else { throw bad("batch sizes must be ≥ 1") }
        guard time >= 1 else { throw bad("--context must be ≥ 1") }
        guard learningRate > 0, learningRate.isFinite else { throw bad("--lr must be a positive number (got \(learningRate))") }
        guard warmup >= 0, weightDecay >= 0, clip > 0 else { throw bad("--warmup and --weight-decay must be ≥ 0 and --clip > 0") }
        guard evalInterval >= 1, evalBatches >= 1, trainEvalBatches >= 0, checkpointInterval >= 0 else {
            throw bad("--eval-interval and --eval-batches must be ≥ 1")
        }
    }

    /// Independent random streams derived from the seed.
    var trainStreamSeed: UInt64 { seed ^ 0x5452_4149_4E00_0001 }
    var evalStreamSeed: UInt64 { seed ^ 0x4556_414C_0000_0002 }
}
