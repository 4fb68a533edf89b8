// The training recipe (docs/SPEC.md §6) as one Codable value: defaults are the paper's.

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
    /// Distillation from a teacher (nil: plain cross-entropy).
    public var distillation: DistillationOptions?
    /// Progressive truncation: at each listed step every linear layer is TT-SVD'd to the χ given.
    public var chiSchedule: ChiSchedule?

    public init() {}

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
        guard evalInterval >= 1, evalBatches >= 0, trainEvalBatches >= 0, checkpointInterval >= 0 else {
            throw bad("--eval-interval must be ≥ 1 and --eval-batches ≥ 0 (0: no evaluation)")
        }
        try distillation?.validate()
        try chiSchedule?.validate()
    }

    /// Independent random streams derived from the seed.
    var trainStreamSeed: UInt64 { seed ^ 0x5452_4149_4E00_0001 }
    var evalStreamSeed: UInt64 { seed ^ 0x4556_414C_0000_0002 }
}

/// `--chi-schedule 32@0,16@300,8@600`: the bond dimension each linear layer is truncated to, and
/// from which step.
public struct ChiSchedule: Codable, Equatable, Sendable, CustomStringConvertible {
    public struct Entry: Codable, Equatable, Sendable { public var step: Int; public var chi: Int }
    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// Parses "χ@step,χ@step,…".
    public init(parsing text: String) throws {
        let form = "χ@step pairs like 32@0,16@300,8@600"
        entries = try text.split(separator: ",").map { item in
            let parts = item.split(separator: "@").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let chi = Int(parts[0]), let step = Int(parts[1]) else {
                throw ModelError("--chi-schedule: '\(item)' is not χ@step; give \(form)")
            }
            return Entry(step: step, chi: chi)
        }
        try validate()
    }

    public func validate() throws {
        guard !entries.isEmpty else { throw ModelError("--chi-schedule is empty; give χ@step pairs like 32@0,16@300") }
        for (i, e) in entries.enumerated() {
            guard e.chi >= 1, e.step >= 0 else { throw ModelError("--chi-schedule: χ must be ≥ 1 and steps ≥ 0 (got \(e.chi)@\(e.step))") }
            if i > 0, e.step <= entries[i - 1].step {
                throw ModelError("--chi-schedule: steps must increase (\(entries[i - 1].step) then \(e.step))")
            }
        }
    }

    /// The χ to truncate to at `step`, if the schedule names it.
    public func chi(at step: Int) -> Int? { entries.first { $0.step == step }?.chi }

    public var description: String { entries.map { "\($0.chi)@\($0.step)" }.joined(separator: ",") }
}
