// The CPU device's numbers do not depend on its thread count: every reduction runs over chunks
// fixed by the problem size (CPUDevice's threading rule), so 1, 2 and 3 threads give the same
// bits, and a run resumed on another thread count continues exactly. The shapes are big enough
// to take every split: GEMMs cut into row/column pieces and along K (dW with K = B·T = 2,048),
// reductions over several 512-row chunks, the MPO batch reduction, attention over many pairs.

import Foundation
import Testing
@testable import MPOKit

@Suite("Determinism across thread counts")
struct DeterminismTests {
    static let configs: [(String, ModelConfig, MPOStrategy)] = [
        ("dense", .picoGPT, .automatic),
        ("mpo χ=4 rebuild", .mpo(chi: 4), .rebuild),
        ("mpo χ=4 site by site", .mpo(chi: 4), .siteBySite),
    ]

    /// Losses, gradient norms and final parameters of `steps` AdamW steps on B = 8, T = 256 (one
    /// step covers forward, backward, the gradient norm and AdamW).
    static func train(_ config: ModelConfig, _ strategy: MPOStrategy, threads: Int, steps: Int) throws -> ([Double], [Float]) {
        let model = try Transformer(config: config, device: CPUDevice(threads: threads))
        model.mpoStrategy = strategy
        try model.initialize(seed: 5)
        let opt = try AdamW(model: model)
        var rng = SplitMix64(seed: 9)
        let data = try TextDataset(url: Reference.dataFile)
        var trace: [Double] = []
        for s in 0..<steps {
            let (tok, tgt) = TextDataset.sample(data.train, batch: 8, time: 256, rng: &rng)
            let st = try opt.trainStep(tokens: tok, targets: tgt, batch: 8, time: 256, learningRate: 1e-3 * Double(s + 1))
            trace += [st.loss, st.gradNorm]
        }
        return (trace, try model.device.read(model.params.all))
    }

    @Test("1, 2 and 3 threads give bit-identical losses, gradient norms and weights", arguments: configs.map(\.0))
    func threadCounts(name: String) throws {
        let (_, config, strategy) = Self.configs.first { $0.0 == name }!
        let (trace1, params1) = try Self.train(config, strategy, threads: 1, steps: 1)
        for threads in [2, 3] {
            let (trace, params) = try Self.train(config, strategy, threads: threads, steps: 1)
            #expect(trace.map(\.bitPattern) == trace1.map(\.bitPattern), "\(name), \(threads) threads: \(trace) vs \(trace1)")
            let differing = zip(params, params1).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "\(name), \(threads) threads: \(differing) parameters differ from 1 thread")
        }
    }

    @Test("a run stopped under 1 thread and resumed under 2 continues exactly")
    func resumeOnAnotherThreadCount() throws {
        let data = try TextDataset(url: Reference.dataFile)
        var options = TrainOptions()
        options.steps = 4; options.batch = 4; options.time = 128; options.evalInterval = 2; options.evalBatches = 1; options.trainEvalBatches = 1
        options.warmup = 1; options.learningRate = 1e-3; options.seed = 11
        func trainer(threads: Int, dir: URL) throws -> Trainer {
            let model = try Transformer(config: .mpo(chi: 4), device: CPUDevice(threads: threads))
            try model.initialize(seed: 11)
            return try Trainer(model: model, data: data, options: options, directory: dir)
        }
        let straight = try trainer(threads: 2, dir: Tiny.tempDir())
        try straight.run()
        let dir = Tiny.tempDir()
        let first = try trainer(threads: 1, dir: dir)
        first.onStep = { if $0.step == 2 { throw SimulatedCrash() } }   // after the step-2 checkpoint
        #expect(throws: SimulatedCrash.self) { try first.run() }
        let resumed = try trainer(threads: 2, dir: dir)
        try resumed.run(resume: true)
        #expect(Array(first.losses.prefix(2)) + resumed.losses == straight.losses)   // step 2 reruns from its checkpoint
        #expect(resumed.evals.last?.valLoss == straight.evals.last?.valLoss)
        #expect(try resumed.model.device.read(resumed.model.params.all) == (try straight.model.device.read(straight.model.params.all)))
    }
}
