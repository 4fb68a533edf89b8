// Knowledge distillation from a dense (or any) teacher (TQCompressor, Ren et al. ICLR 2022):
// the teacher is an inference-only model on the student's device — no gradient, optimiser or
// backward buffers — run forward on every batch; its logits (and, for hidden-state matching, its
// residual stream after every block) become the student's targets:
//   loss = (1 − α)·CE + α·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) + β·mean over blocks of ‖h_s − h_t‖²/(N·C).

/// The distillation recipe (part of TrainOptions, so a resumed run must use the same one).
public struct DistillationOptions: Codable, Equatable, Sendable {
    /// The teacher checkpoint, as given (recorded, and compared on resume).
    public var teacher: String
    /// α: the weight of the KL term (the cross-entropy gets 1 − α).
    public var weight: Double = 0.5
    /// τ: the softmax temperature of both distributions (the KL term is scaled by τ²).
    public var temperature: Double = 2
    /// β: the weight of the hidden-state MSE (0: logits only).
    public var hiddenWeight: Double = 0

    public init(teacher: String, weight: Double = 0.5, temperature: Double = 2, hiddenWeight: Double = 0) {
        self.teacher = teacher; self.weight = weight; self.temperature = temperature; self.hiddenWeight = hiddenWeight
    }

    public func validate() throws {
        guard weight >= 0, weight <= 1 else { throw ModelError("--distill-weight must be in [0, 1] (got \(weight))") }
        guard temperature > 0, temperature.isFinite else { throw ModelError("--distill-temperature must be > 0 (got \(temperature))") }
        guard hiddenWeight >= 0, hiddenWeight.isFinite else { throw ModelError("--distill-hidden must be ≥ 0 (got \(hiddenWeight))") }
    }
}

/// A frozen teacher on the student's device.
public final class Teacher {
    public let model: Transformer
    public let options: DistillationOptions
    private var residuals: DeviceBuffer?

    public init(model: Transformer, options: DistillationOptions) throws {
        try options.validate()
        self.model = model
        self.options = options
    }

    /// Checks that the teacher can teach `student` on windows of `time` tokens.
    public func check(student: Transformer, time: Int) throws {
        let t = model.config, s = student.config
        guard model.device === student.device else {
            throw ModelError("the teacher must run on the student's device (\(student.device.name)), not \(model.device.name)")
        }
        guard t.vocabularySize == s.vocabularySize else {
            throw ModelError("the teacher's vocabulary has \(t.vocabularySize) tokens, the student's \(s.vocabularySize): they must be trained on the same text")
        }
        guard time <= t.context else { throw ModelError("the teacher's context \(t.context) is shorter than the training window \(time)") }
        if options.hiddenWeight > 0, t.layers != s.layers || t.channels != s.channels {
            throw ModelError("--distill-hidden matches the residual stream block by block: the teacher has \(t.layers) blocks of width \(t.channels), the student \(s.layers) of \(s.channels)")
        }
    }

    /// Runs the teacher on one batch and returns what the student matches.
    public func targets(tokens: [Int32], batch: Int, time: Int) throws -> DistillationTargets {
        let n = batch * time, c = model.config
        var capture: TensorView? = nil
        if options.hiddenWeight > 0 {
            let count = c.layers * n * c.channels
            if residuals == nil || residuals!.count < count {
                residuals = try model.device.makeBuffer(count: count, label: "teacher residuals")
            }
            capture = residuals!.view(0, count)
        }
        try model.forward(tokens: tokens, batch: batch, time: time, needsGradients: false, captureResiduals: capture)
        return DistillationTargets(logits: try model.logitsView(), residuals: capture, weight: options.weight,
                                   temperature: options.temperature, hiddenWeight: options.hiddenWeight)
    }
}
