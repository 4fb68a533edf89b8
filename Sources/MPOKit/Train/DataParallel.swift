// Data-parallel training over a Collective (docs/DESIGN.md §10). Every rank draws the same global
// batch from the same sampler state and computes its own rows (Collective.rows); its gradient,
// normalised over its rows, is scaled by rows/B so that the sum over ranks is the gradient of the
// global batch's mean loss; one all-reduce of the flat gradient arena sums it (the arena is the
// model's parameter count: an MPO model moves its compressed size); every rank then clips and
// applies the same AdamW update to the same parameters. Losses, accuracy and the non-finite flags
// are summed in a second, small all-reduce, so that every rank takes the same decision: a NaN on
// one rank skips (or stops) the step on all of them, naming that rank.

import Foundation

public final class DataParallel {
    public let collective: Collective
    /// The gradient arena on the host, reused step to step (gradients go through host memory).
    private var staging: [Float] = []
    /// The last step's traffic.
    public private(set) var last = CommunicationStats()
    /// The lowest rank whose loss or gradient was not finite in the last step (nil: none). The
    /// gradient arena then holds the reduced gradient, the same on every rank, so the first
    /// non-finite tensor found there is the same everywhere too.
    public private(set) var lastNonFiniteRank: Int?

    public init(_ collective: Collective) { self.collective = collective }

    public var rank: Int { collective.rank }
    public var size: Int { collective.size }

    private func timed<T>(_ body: () throws -> T) rethrows -> T {
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { last.seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        return try body()
    }

    /// One optimisation step on this rank's rows of the global batch (`tokens`/`targets` hold all
    /// B·T of them, the same on every rank). The result is the global batch's: loss, accuracy and
    /// gradient norm as one process would report them; `applied` is the same on every rank.
    /// `poison` writes a NaN into this rank's gradient (the non-finite guard's test).
    @discardableResult
    public func trainStep(_ opt: AdamW, tokens: [Int32], targets: [Int32], batch B: Int, time T: Int, learningRate lr: Double,
                          teacher: Teacher? = nil, poison: Bool = false) throws -> StepStats {
        let model = opt.model, dev = model.device
        let rows = collective.rows(of: B), b = rows.count
        guard b >= 1 else { throw ModelError("--batch \(B) is smaller than the \(size) ranks: every rank needs at least one row") }
        let window = (rows.lowerBound * T)..<(rows.upperBound * T)
        let tok = Array(tokens[window]), tgt = Array(targets[window])
        last = CommunicationStats()
        let (a, distill, hidden) = try opt.backpropagate(tokens: tok, targets: tgt, batch: b, time: T, teacher: teacher)
        let grads = model.grads!.all
        if poison { try dev.write([Float.nan], to: grads.view(0, 1)) }
        dev.scale(grads, by: Float(b) / Float(B))
        // This rank's losses (and whether its own gradient is finite), then the sums over ranks.
        let extra = distill == nil ? nil : a.distillLosses
        dev.stepScalars(losses: a.losses, correct: a.correct, extra: extra, rows: b * T, gradients: grads, clip: opt.options.clip,
                        into: opt.scalars.all)
        let local = try dev.readStepScalars(opt.scalars.all)
        if staging.count != grads.count { staging = [Float](repeating: 0, count: grads.count) }
        try staging.withUnsafeMutableBufferPointer { try dev.download(grads, into: $0) }
        let share = Double(b) / Double(B)
        let localFinite = local.finite && (hidden?.isFinite ?? true)
        var sums = [local.crossEntropy * share, local.distillation * share, local.accuracy * share, (hidden ?? 0) * share]
            + (0..<size).map { $0 == rank && !localFinite ? 1.0 : 0.0 }
        try timed {
            try staging.withUnsafeMutableBufferPointer { try collective.allReduceSum($0) }
            try collective.allReduceSum(&sums)
        }
        last.bytes = staging.count * MemoryLayout<Float>.size + sums.count * MemoryLayout<Double>.size
        let badRank = sums[4...].firstIndex { $0 != 0 }.map { $0 - 4 }
        lastNonFiniteRank = badRank
        var applied = false, norm = Double.nan
        try staging.withUnsafeBufferPointer { try dev.upload($0, to: grads) }
        if badRank == nil {
            // The reduced gradient is the same on every rank, so are its norm, clip scale and
            // finite flag (this rank's losses are finite: no rank reported otherwise).
            dev.stepScalars(losses: a.losses, correct: a.correct, extra: extra, rows: b * T, gradients: grads, clip: opt.options.clip,
                            into: opt.scalars.all)
            opt.enqueueUpdate(learningRate: lr, step: opt.step + 1, control: opt.scalars.all)
            let s = try dev.readStepScalars(opt.scalars.all)
            applied = s.finite
            norm = s.gradientNorm
            if applied { opt.step += 1 }
        }
        let pass = PassResult(crossEntropy: sums[0], distillation: sums[1], hidden: hidden.map { _ in sums[3] }, accuracy: sums[2],
                              distill: distill)
        return StepStats(loss: pass.loss, accuracy: pass.accuracy, gradNorm: norm, applied: applied, pass: pass)
    }

    /// Mean loss and accuracy over `batches` random windows of `split`, each batch split over the
    /// ranks like a training batch (the same windows as one process draws; one all-reduce at the end).
    public func evaluate(_ model: Transformer, _ split: [Int32], batches: Int, batchSize: Int, time: Int,
                         rng: inout SplitMix64) throws -> (loss: Double, accuracy: Double) {
        let rows = collective.rows(of: batchSize)
        var sums = [0.0, 0.0]
        for _ in 0..<batches {
            let (tok, tgt) = TextDataset.sample(split, batch: batchSize, time: time, rng: &rng)
            guard !rows.isEmpty else { continue }
            let window = (rows.lowerBound * time)..<(rows.upperBound * time)
            let r = try model.forward(tokens: Array(tok[window]), targets: Array(tgt[window]), batch: rows.count, time: time,
                                      needsGradients: false)
            sums[0] += r.loss * Double(rows.count); sums[1] += r.accuracy * Double(rows.count)
        }
        try collective.allReduceSum(&sums)
        let n = Double(max(batches, 1) * batchSize)
        return (sums[0] / n, sums[1] / n)
    }

    /// Rank 0's parameters on every rank (a sum to which the other ranks add zeros): after
    /// set-up and after a truncation, whose LAPACK results may differ in the last bits between
    /// machines with different CPUs.
    public func broadcastParameters(_ model: Transformer) throws {
        var p = try model.device.read(model.params.all)
        if rank != 0 { for i in p.indices { p[i] = 0 } }
        try p.withUnsafeMutableBufferPointer { try collective.allReduceSum($0) }
        try model.device.write(p, to: model.params.all)
        model.parametersChanged()
    }

    /// Throws unless every rank holds bit-identical parameters (checked at the start and at every
    /// checkpoint: ranks that drift apart would train different models under one name).
    public func checkAgreement(_ model: Transformer, at step: Int) throws {
        let hash = fnv1a(try model.device.read(model.params.all))
        guard try collective.agree(on: hash) else {
            throw CollectiveFailure("step \(step): the ranks' parameters differ (an MPI reduction that is not the same on every rank, or ranks started from different checkpoints); the last checkpoint is the last agreed state")
        }
    }
}
