// The trainer and its pieces: schedule, batches, resume bit-exactness, checkpoints.

import Foundation
import Testing
@testable import MPOKit

/// A tiny model and data set for fast end-to-end runs.
enum Tiny {
    static let text = String(decoding: Reference.text.prefix(30_000), as: UTF8.self)
    static func data() throws -> TextDataset { try TextDataset(text: text) }
    static func config(vocabulary: Int, chi: Int? = nil, architecture: Architecture = .picoGPT) -> ModelConfig {
        var c = ModelConfig(vocabularySize: vocabulary, channels: 32, heads: 2, layers: 2, context: 16, ffn: 64, chi: chi,
                            architecture: architecture)
        if chi != nil {  // factorisations for the small shapes: automatic ones
            c.chi = chi
        }
        return c
    }
    static func options(steps: Int) -> TrainOptions {
        var o = TrainOptions()
        o.steps = steps; o.batch = 4; o.time = 16; o.evalInterval = 5; o.evalBatches = 2; o.trainEvalBatches = 1
        o.evalBatchSize = 2; o.warmup = 3; o.learningRate = 3e-3; o.seed = 7
        return o
    }
    static func tempDir() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("mpo-test-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

struct SimulatedCrash: Error {}

@Suite("Trainer")
struct TrainerTests {
    @Test("learning-rate schedule at steps 0, 99, 100, 1999")
    func schedule() {
        #expect(abs(learningRate(step: 0, total: 2000) - 3e-6) < 1e-18)
        #expect(abs(learningRate(step: 99, total: 2000) - 3e-4) < 1e-18)
        #expect(abs(learningRate(step: 100, total: 2000) - 3e-4) < 1e-18)
        let last = 3e-4 * 0.5 * (1 + cos(Double.pi * 1899 / 1900))
        #expect(abs(learningRate(step: 1999, total: 2000) - last) < 1e-18)
        #expect(learningRate(step: 1999, total: 2000) < 3e-10)  // ≈ 2.05e-10: the cosine ends near 0
    }

    @Test("Tiny Shakespeare splits into 1,003,854 train and 111,540 validation tokens of 65 characters")
    func dataSplit() throws {
        let d = try TextDataset(url: Reference.dataFile)
        #expect(d.vocabularySize == 65)
        #expect(d.train.count == 1_003_854)
        #expect(d.validation.count == 111_540)
        #expect(d.characters!.string == (try Reference.json("dense_seed2024.json")["vocab"] as! String))
    }

    @Test("batches are windows with targets shifted by one, reproducible from the seed")
    func batches() {
        let split = (0..<100).map(Int32.init)
        var r1 = SplitMix64(seed: 3), r2 = SplitMix64(seed: 3)
        let (a, t) = TextDataset.sample(split, batch: 5, time: 10, rng: &r1)
        let (b, _) = TextDataset.sample(split, batch: 5, time: 10, rng: &r2)
        #expect(a == b)
        for i in 0..<50 { #expect(t[i] == a[i] + 1) }
        for w in 0..<5 { #expect(a[w * 10] <= 89 && a[w * 10 + 9] == a[w * 10] + 9) }
    }

    @Test("resume after an interruption gives the bit-identical loss curve and weights",
          arguments: [nil, 2] as [Int?], [ModelFamily.picogpt, .gpt2, .llama])
    func resumeIsBitExact(chi: Int?, family: ModelFamily) throws {
        let data = try Tiny.data()
        let arch = family == .llama ? Architecture.llama(kvHeads: 1) : .preset(family)
        var cfg = Tiny.config(vocabulary: data.vocabularySize, chi: chi, architecture: arch)
        if let chi, family != .picogpt { cfg = cfg.choosingFactorizations(chi: chi) }
        func fresh() throws -> Transformer {
            let m = try Transformer(config: cfg, device: CPUDevice())
            try m.initialize(seed: 7)
            return m
        }
        let dirA = Tiny.tempDir(), dirB = Tiny.tempDir()
        let a = try Trainer(model: try fresh(), data: data, options: Tiny.options(steps: 20), directory: dirA)
        try a.run()
        // Interrupted run: dies during step 12; the checkpoint on disk is from step 10.
        let b = try Trainer(model: try fresh(), data: data, options: Tiny.options(steps: 20), directory: dirB)
        b.onStep = { if $0.step == 12 { throw SimulatedCrash() } }
        #expect(throws: SimulatedCrash.self) { try b.run() }
        let c = try Trainer(model: try fresh(), data: data, options: Tiny.options(steps: 20), directory: dirB)
        try c.run(resume: true)
        #expect(c.losses.count == 10)
        #expect(c.losses == Array(a.losses[10...]))          // bit-identical
        #expect(c.evals.map(\.valLoss) == a.evals.filter { $0.step > 10 }.map(\.valLoss))
        #expect(try c.model.device.read(c.model.params.all) == (try a.model.device.read(a.model.params.all)))
        // metrics.jsonl of the resumed run holds the same step losses as the uninterrupted one.
        func stepLosses(_ dir: URL) throws -> [Double] {
            try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
                .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { $0["type"] as? String == "step" }.map { $0["loss"] as! Double }
        }
        #expect(try stepLosses(dirB) == (try stepLosses(dirA)))
        #expect(a.losses.last! < a.losses.first!)
    }

    @Test("a checkpoint round-trips parameters, optimiser state, RNG and vocabulary")
    func checkpointRoundTrip() throws {
        let data = try Tiny.data()
        let dir = Tiny.tempDir()
        let m = try Transformer(config: Tiny.config(vocabulary: data.vocabularySize, chi: 3), device: CPUDevice())
        try m.initialize(seed: 1)
        let t = try Trainer(model: m, data: data, options: Tiny.options(steps: 5), directory: dir)
        try t.run()
        let file = try ModelCheckpoint.open(t.checkpointURL)
        #expect(file.metadata["vocab"] == data.characters!.string)
        #expect(file.metadata["step"] == "5")
        let loaded = try ModelCheckpoint.loadModel(t.checkpointURL, device: CPUDevice())
        #expect(loaded.config == m.config)
        #expect(try loaded.device.read(loaded.params.all) == (try m.device.read(m.params.all)))
        let opt = try AdamW(model: loaded)
        let st = try TrainingCheckpoint.restore(file, optimizer: opt)
        #expect(st.step == 5 && st.optimizerStep == 5 && opt.step == 5)
        #expect(try loaded.device.read(opt.m.all) == (try m.device.read(t.optimizer.m.all)))
        #expect(try loaded.device.read(opt.v.all) == (try m.device.read(t.optimizer.v.all)))
        // No temporary files are left next to the checkpoint.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(names.allSatisfy { !$0.contains(".tmp") }, "\(names)")
    }

    @Test("our checkpoint of a PyTorch reference model re-loads bit-exactly")
    func referenceRoundTrip() throws {
        for name in ["dense_seed2024", "mpo4_seed2024"] {
            let m = try Reference.model("\(name).safetensors")
            let url = Tiny.tempDir().appendingPathComponent("m.safetensors")
            try ModelCheckpoint.save(m, to: url)
            let back = try ModelCheckpoint.loadModel(url, device: CPUDevice())
            #expect(back.config == m.config)
            let ref = try Reference.file("\(name).safetensors")
            for spec in back.layout.specs { #expect(try back.parameter(spec.name) == (try ref.floats(spec.name))) }
        }
    }
}

@Suite("Metrics records")
struct MetricsRecordTests {
    @Test("NaN and infinite values are written (never dropped) and read back by the same types")
    func nonFiniteRoundTrip() throws {
        let url = Tiny.tempDir().appendingPathComponent("metrics.jsonl")
        let log = try MetricsLog(url: url)
        try log.append(.run(RunRecord(name: "diverged", model: "mpo", chi: 8)))
        try log.append(.step(StepRecord(step: 0, total: 2, loss: 4.2, accuracy: 0.1, learningRate: 1e-3, gradNorm: .infinity,
                                        tokensPerSecond: 100, elapsed: 1)))
        try log.append(.eval(EvalRecord(step: 1, trainLoss: .nan, trainAccuracy: 0, valLoss: .nan, valAccuracy: 0.2, elapsed: 2)))
        try log.append(.nonFinite(NonFiniteRecord(step: 1, loss: .nan, tensor: "lm_head.weight")))
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text.split(separator: "\n").count == 4)
        #expect(text.contains("\"val_loss\":\"NaN\"") && text.contains("\"grad_norm\":\"Infinity\""), "\(text)")
        let run = try RunMetrics.load(url)
        #expect(run.name == "diverged" && run.model == "mpo" && run.malformedLines == 0)
        #expect(run.steps.count == 1 && run.evals.count == 1 && run.evals[0].valLoss.isNaN && run.evals[0].valAccuracy == 0.2)
        let lines = text.split(separator: "\n").map { Data($0.utf8) }
        guard case .nonFinite(let r) = try MetricsRecord.decode(lines[3]) else { Issue.record("not a nonfinite record"); return }
        #expect(r.loss.isNaN && r.tensor == "lm_head.weight" && r.step == 1)
        guard case .step(let st) = try MetricsRecord.decode(lines[1]) else { Issue.record("not a step record"); return }
        #expect(st.gradNorm == .infinity && st.learningRate == 1e-3 && st.loss == 4.2)
    }
}

@Suite("Training step")
struct TrainingStepTests {
    @Test("clipping inside AdamW equals clipping the gradients in place and then updating, bit for bit", arguments: [0.05, 1e9])
    func clipInsideAdamW(clip: Double) throws {
        let data = try Tiny.data()
        var weights: [[Float]] = [], norms: [[Double]] = []
        for fused in [true, false] {
            let m = try Transformer(config: Tiny.config(vocabulary: data.vocabularySize, chi: 4), device: CPUDevice())
            try m.initialize(seed: 5)
            var o = TrainOptions(); o.clip = clip
            let opt = try AdamW(model: m, options: o)
            var rng = SplitMix64(seed: 6), n: [Double] = []
            for s in 0..<4 {
                let (tok, tgt) = TextDataset.sample(data.train, batch: 4, time: 16, rng: &rng)
                let lr = 3e-3 * Double(s + 1)
                if fused {
                    n.append(try opt.trainStep(tokens: tok, targets: tgt, batch: 4, time: 16, learningRate: lr).gradNorm)
                } else {
                    m.zeroGradients()
                    try m.forward(tokens: tok, targets: tgt, batch: 4, time: 16)
                    try m.backward()
                    n.append(try opt.clipGradients())
                    opt.update(learningRate: lr)
                }
            }
            weights.append(try m.device.read(m.params.all) + m.device.read(opt.m.all) + m.device.read(opt.v.all))
            norms.append(n)
        }
        #expect(norms[0] == norms[1])
        #expect(clip > 1 || norms[0].allSatisfy { $0 > clip }, "the small clip must clip every step: \(norms[0])")
        #expect(weights[0].map(\.bitPattern) == weights[1].map(\.bitPattern))
    }
}

@Suite("NaN propagation (CPU)")
struct NaNPropagationTests {
    @Test("a NaN weight reaches the loss and the non-finite guard refuses the step", arguments: NonFiniteProbe.sites.map(\.parameter))
    func nanWeight(name: String) throws {
        let o = try NonFiniteProbe.step(device: CPUDevice(), nanIn: name)
        #expect(o.loss.isNaN, "\(name): loss \(o.loss) — the NaN vanished on its way")
        #expect(!o.applied && o.unchanged && o.stepsCounted == 0, "\(name): the update was applied")
    }
}
