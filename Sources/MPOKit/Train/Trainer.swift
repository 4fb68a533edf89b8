// Trainer: the paper's training loop (docs/SPEC.md §6) with evaluation, metrics, checkpoints and resume.
//
// Order per step s of S: truncate if the χ schedule names s (every linear layer TT-SVD'd to the
// new χ, the moments of the changed tensors reset); set lr; evaluate if s % evalInterval == 0
// (then checkpoint); forward (with the teacher's targets when distilling); backward; clip;
// AdamW. A final evaluation and checkpoint follow the last step. Batches come from a train RNG
// stream and evaluation batches from a separate eval stream, both derived from the seed and
// stored in checkpoints, so a resumed run continues bit for bit — across a truncation too (the
// checkpoint carries the truncated shapes; TT-SVD is deterministic).

import Foundation

public struct StepRecord: Sendable {
    public var step: Int, total: Int
    public var loss: Double, accuracy: Double, learningRate: Double, gradNorm: Double
    public var tokensPerSecond: Double, elapsed: Double
    /// With distillation: the parts of `loss` (cross-entropy, τ²·KL, hidden MSE).
    public var crossEntropy: Double? = nil, distillation: Double? = nil, hidden: Double? = nil
    /// Data-parallel runs: bytes each rank all-reduced in the step, and the seconds it spent in the all-reduces.
    public var allReduceBytes: Int? = nil, communicationSeconds: Double? = nil

    public init(step: Int, total: Int, loss: Double, accuracy: Double, learningRate: Double, gradNorm: Double,
                tokensPerSecond: Double, elapsed: Double) {
        self.step = step; self.total = total; self.loss = loss; self.accuracy = accuracy; self.learningRate = learningRate
        self.gradNorm = gradNorm; self.tokensPerSecond = tokensPerSecond; self.elapsed = elapsed
    }
}

public struct EvalRecord: Sendable, Equatable {
    public var step: Int
    public var trainLoss: Double, trainAccuracy: Double
    public var valLoss: Double, valAccuracy: Double
    public var elapsed: Double
}

public final class Trainer {
    /// The model being trained (replaced by a truncated one at each step of the χ schedule).
    public private(set) var model: Transformer
    public private(set) var optimizer: AdamW
    public let data: TextDataset
    /// The frozen teacher when `options.distillation` is set (required then).
    public var teacher: Teacher?
    public let options: TrainOptions
    public let directory: URL
    /// The run record written first (the trainer fills in parameters, device, seed, steps, lr).
    public var runInfo = RunRecord()
    /// Callbacks; a throwing callback stops the run (the last checkpoint stays).
    public var onStep: (StepRecord) throws -> Void = { _ in }
    public var onEval: (EvalRecord) throws -> Void = { _ in }
    public var onCheckpoint: (URL, Int) throws -> Void = { _, _ in }
    /// (step, χ, relative error) after each truncation of the χ schedule.
    public var onTruncation: (Int, Int, Double) throws -> Void = { _, _, _ in }
    public private(set) var evals: [EvalRecord] = []
    public private(set) var losses: [Double] = []
    public private(set) var wallSeconds = 0.0
    /// Steps with a non-finite loss or gradient that may be skipped (not applied) before the run stops.
    public var skipNonFinite = 0
    public private(set) var skippedSteps = 0
    /// Data-parallel training over several ranks (nil: this process alone). Rank 0 alone writes
    /// metrics and checkpoints and runs the callbacks.
    public let dataParallel: DataParallel?
    /// End the run after checkpointing this step, as an interruption there would (a job with a
    /// time limit trains in slices: `--stop-at`, then `--resume`).
    public var stopAt: Int?
    /// Testing the data-parallel non-finite guard: steps at which this rank's gradient gets a NaN.
    public var poisonGradientAt: Set<Int> = []
    public var isRoot: Bool { dataParallel?.rank ?? 0 == 0 }

    public var checkpointURL: URL { directory.appendingPathComponent("checkpoint.safetensors") }
    public var metricsURL: URL { directory.appendingPathComponent("metrics.jsonl") }

    /// With a `collective` of more than one rank, trains data-parallel (DataParallel.swift).
    public init(model: Transformer, data: TextDataset, options: TrainOptions, directory: URL, collective: Collective? = nil) throws {
        try options.validate()
        dataParallel = collective.flatMap { $0.size > 1 ? DataParallel($0) : nil }
        if let c = collective, c.size > 1 {
            guard options.batch >= c.size else {
                throw ModelError("--batch \(options.batch) is smaller than the \(c.size) ranks: every rank needs at least one row of the global batch")
            }
        }
        guard options.time <= model.config.context else {
            throw ModelError("--context \(options.time) exceeds the model's context \(model.config.context)")
        }
        try data.checkFits(vocabularySize: model.config.vocabularySize)
        try data.validate(time: options.time)
        self.model = model
        self.data = data
        self.options = options
        self.directory = directory
        optimizer = try AdamW(model: model, options: options)
        guard isRoot else { return }   // the other ranks never write the run directory
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw ModelError("cannot create output directory \(directory.path): \(error.localizedDescription)")
        }
        guard FileManager.default.isWritableFile(atPath: directory.path) else {
            throw ModelError("output directory \(directory.path) is not writable; choose another with --out")
        }
        // Temporary files of a checkpoint write that a killed run never finished.
        let stale = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in stale where name.hasPrefix("checkpoint.safetensors.tmp-") {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    /// The name of the first parameter whose gradient holds a NaN or infinity.
    func firstNonFiniteGradient() throws -> String? {
        let g = try model.device.read(try model.gradientArena().all)
        return model.layout.specs.first { spec in g[spec.offset..<(spec.offset + spec.count)].contains { !$0.isFinite } }?.name
    }

    /// Mean loss and accuracy over `batches` random (evalBatchSize, time) windows of `split`.
    public func evaluate(_ split: [Int32], batches: Int, rng: inout SplitMix64) throws -> (Double, Double) {
        if let dp = dataParallel {
            return try dp.evaluate(model, split, batches: batches, batchSize: options.evalBatchSize, time: options.time, rng: &rng)
        }
        return try model.evaluate(split, batches: batches, batchSize: options.evalBatchSize, time: options.time, rng: &rng)
    }

    /// Every linear layer TT-SVD'd to `chi` (a dense model becomes an MPO one); the optimiser keeps
    /// the moments of every tensor whose name and shape survive (embedding, LayerNorms, biases) and
    /// starts the new cores from zero moments, at the same step count. Returns the linear layers'
    /// relative error sqrt(Σ‖W − Ŵ‖² / Σ‖W‖²).
    func truncate(to chi: Int) throws -> Double {
        let (smaller, reports) = try Compression.compress(model, chi: chi)
        smaller.mpoStrategy = model.mpoStrategy
        let next = try AdamW(model: smaller, options: options)
        let oldM = try model.device.read(optimizer.m.all), oldV = try model.device.read(optimizer.v.all)
        var m = [Float](repeating: 0, count: smaller.layout.count), v = m
        for spec in smaller.layout.specs {
            guard let old = model.layout[spec.name], old.shape == spec.shape, !spec.role.isCore else { continue }
            m.replaceSubrange(spec.offset..<(spec.offset + spec.count), with: oldM[old.offset..<(old.offset + old.count)])
            v.replaceSubrange(spec.offset..<(spec.offset + spec.count), with: oldV[old.offset..<(old.offset + old.count)])
        }
        try next.restore(m: m, v: v, step: optimizer.step)
        model = smaller
        optimizer = next
        try dataParallel?.broadcastParameters(model)
        return Compression.total(reports).relativeError
    }

    /// Trains to `options.steps`. With `resume`, continues from the run directory's checkpoint.
    @discardableResult
    public func run(resume: Bool = false) throws -> [EvalRecord] {
        guard (options.distillation == nil) == (teacher == nil) else {
            throw ModelError(teacher == nil ? "the recipe distils from a teacher: pass --teacher" : "a teacher was given but the recipe has no distillation options")
        }
        try teacher?.check(student: model, time: options.time)
        guard poisonGradientAt.isEmpty || dataParallel != nil else { throw ModelError("poisoned gradients are a test of data-parallel runs") }
        var state = TrainingState(step: 0, optimizerStep: 0, trainRNG: SplitMix64(seed: options.trainStreamSeed),
                                  evalRNG: SplitMix64(seed: options.evalStreamSeed), options: options)
        var skipEvalAt: Int? = nil
        if resume {
            guard FileManager.default.fileExists(atPath: checkpointURL.path) else {
                throw ModelError("--resume: no checkpoint at \(checkpointURL.path); start without --resume")
            }
            let file = try ModelCheckpoint.open(checkpointURL)
            // After a truncation the checkpoint holds smaller cores than the model the run began with.
            let saved = try ModelCheckpoint.inferConfig(file)
            if saved != model.config, options.chiSchedule != nil {
                let m = try Transformer(config: saved, device: model.device)
                m.mpoStrategy = model.mpoStrategy
                model = m
                optimizer = try AdamW(model: m, options: options)
            }
            try ModelCheckpoint.load(file, into: model, extraTensors: { $0.hasPrefix("optimizer.") })
            state = try TrainingCheckpoint.restore(file, optimizer: optimizer)
            guard state.options == options else {
                throw ModelError("--resume: the checkpoint was trained with different options (steps, batch, lr, seed, …); resume with the same options")
            }
            skipEvalAt = state.step
        }
        if let dp = dataParallel { try dp.broadcastParameters(model) }
        let log = isRoot ? try MetricsLog(url: metricsURL, keepThrough: resume ? state.step : nil) : nil
        if !resume {
            var info = runInfo
            info.parameters = model.parameterCount; info.device = model.device.name
            info.seed = Int(truncatingIfNeeded: options.seed); info.steps = options.steps; info.learningRate = options.learningRate
            if let d = options.distillation {
                info.teacher = d.teacher; info.distillWeight = d.weight; info.distillTemperature = d.temperature
                info.distillHidden = d.hiddenWeight
            }
            info.chiSchedule = options.chiSchedule?.description
            info.ranks = dataParallel?.size
            try log?.append(.run(info))
        }
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let tokensPerStep = Double(options.batch * options.time)
        var s = state.step
        while true {
            if let chi = options.chiSchedule?.chi(at: s), skipEvalAt != s {
                let error = try truncate(to: chi)
                try log?.append(.truncation(TruncationRecord(step: s, chi: chi, parameters: model.parameterCount, relativeError: error)))
                if isRoot { try onTruncation(s, chi, error) }
            }
            if (s % options.evalInterval == 0 || s == options.steps) && options.evalBatches > 0, skipEvalAt != s {
                let (tl, ta) = try evaluate(data.train, batches: options.trainEvalBatches, rng: &state.evalRNG)
                let (vl, va) = try evaluate(data.validation, batches: options.evalBatches, rng: &state.evalRNG)
                let e = EvalRecord(step: s, trainLoss: tl, trainAccuracy: ta, valLoss: vl, valAccuracy: va, elapsed: elapsed())
                evals.append(e)
                try log?.append(.eval(e))
                if isRoot { try onEval(e) }
            }
            let due = options.checkpointInterval == 0 ? s % options.evalInterval == 0 : s % options.checkpointInterval == 0
            if (due || s == options.steps || s == stopAt) && skipEvalAt != s {
                state.step = s
                state.optimizerStep = optimizer.step
                try dataParallel?.checkAgreement(model, at: s)
                if isRoot {
                    try TrainingCheckpoint.save(model: model, optimizer: optimizer, state: state, codec: data.codec,
                                                to: checkpointURL)
                    try onCheckpoint(checkpointURL, s)
                }
            }
            if s >= options.steps || s == stopAt { break }
            let lr = options.learningRate(at: s)
            let (tok, tgt) = TextDataset.sample(data.train, batch: options.batch, time: options.time, rng: &state.trainRNG)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let st: StepStats
            if let dp = dataParallel {
                st = try dp.trainStep(optimizer, tokens: tok, targets: tgt, batch: options.batch, time: options.time, learningRate: lr,
                                      teacher: teacher, poison: poisonGradientAt.contains(s))
            } else {
                st = try optimizer.trainStep(tokens: tok, targets: tgt, batch: options.batch, time: options.time, learningRate: lr,
                                             teacher: teacher)
            }
            if !st.applied {   // skip the step (if allowed) or stop; the gradients are still there to inspect
                // Data-parallel: the arena holds the reduced gradient, the same on every rank.
                let culprit = try firstNonFiniteGradient() ?? "the loss"
                let where_ = dataParallel?.lastNonFiniteRank.map { " on rank \($0)" } ?? ""
                skippedSteps += 1
                try log?.append(.nonFinite(NonFiniteRecord(step: s, loss: st.loss, tensor: culprit)))
                if skippedSteps <= skipNonFinite { s += 1; continue }
                let message = "step \(s): non-finite \(st.loss.isFinite ? "gradient" : "loss")\(where_) (first in \(culprit)); the last good checkpoint is \(checkpointURL.path). Try a lower --lr, or --skip-nonfinite N to skip such steps"
                if dataParallel != nil { throw CollectiveFailure(message) }
                throw ModelError(message)
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            losses.append(st.loss)
            var rec = StepRecord(step: s, total: options.steps, loss: st.loss, accuracy: st.accuracy, learningRate: lr,
                                 gradNorm: st.gradNorm, tokensPerSecond: tokensPerStep / dt, elapsed: elapsed())
            if teacher != nil { rec.crossEntropy = st.pass.crossEntropy; rec.distillation = st.pass.distillation; rec.hidden = st.pass.hidden }
            if let dp = dataParallel { rec.allReduceBytes = dp.last.bytes; rec.communicationSeconds = dp.last.seconds }
            try log?.append(.step(rec))
            if isRoot { try onStep(rec) }
            s += 1
        }
        wallSeconds = elapsed()
        return evals
    }
}
