// The trainer and its pieces: schedule, batches, resume bit-exactness, checkpoints.

import Foundation
import Testing
@testable import MPOKit

/// A tiny model and data set for fast end-to-end runs.
enum Tiny {
    static let text = String(decoding: Reference.text.prefix(30_000), as: UTF8.self)
    static func data() throws -> TextDataset { try TextDataset(text: text) }
    static func config(vocabulary: Int, chi: Int? = nil) -> ModelConfig {
        var c = ModelConfig(vocabularySize: vocabulary, channels: 32, heads: 2, layers: 2, context: 16, ffn: 64, chi: chi)
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
        #expect(d.vocabulary.count == 65)
        #expect(d.train.count == 1_003_854)
        #expect(d.validation.count == 111_540)
        #expect(d.vocabulary.string == (try Reference.json("dense_seed2024.json")["vocab"] as! String))
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

    @Test("resume after an interruption gives the bit-identical loss curve and weights", arguments: [nil, 2] as [Int?])
    func resumeIsBitExact(chi: Int?) throws {
        let data = try Tiny.data()
        let cfg = Tiny.config(vocabulary: data.vocabulary.count, chi: chi)
        func fresh() throws -> PicoGPT {
            let m = try PicoGPT(config: cfg, device: CPUDevice())
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
        let m = try PicoGPT(config: Tiny.config(vocabulary: data.vocabulary.count, chi: 3), device: CPUDevice())
        try m.initialize(seed: 1)
        let t = try Trainer(model: m, data: data, options: Tiny.options(steps: 5), directory: dir)
        try t.run()
        let file = try ModelCheckpoint.open(t.checkpointURL)
        #expect(file.metadata["vocab"] == data.vocabulary.string)
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

