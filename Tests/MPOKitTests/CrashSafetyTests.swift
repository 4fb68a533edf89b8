// Nothing is lost when a run dies: SIGKILL at random points and resume reproduces the
// uninterrupted run exactly, checkpoints are never partial, and NaNs stop a run (or are
// skipped) without touching the last good checkpoint.

import Foundation
import SafeTensors
import Testing
@testable import MPOKit

@Suite("Crash safety")
struct CrashSafetyTests {
    @Test("a NaN stops the run naming the step and tensor, and keeps the last good checkpoint")
    func nanStopsTheRun() throws {
        let data = try Tiny.data()
        let dir = Tiny.tempDir()
        let m = try Transformer(config: Tiny.config(vocabulary: data.vocabularySize), device: CPUDevice())
        try m.initialize(seed: 1)
        let t = try Trainer(model: m, data: data, options: Tiny.options(steps: 20), directory: dir)
        t.onStep = { r in if r.step == 7 { try m.setParameter("ln_f.weight", [Float](repeating: .nan, count: 32)) } }
        #expect { try t.run() } throws: { error in
            let msg = "\(error)"
            return msg.contains("step 8") && msg.contains("non-finite") && (msg.contains("blocks.") || msg.contains("tok_emb") || msg.contains("ln_f"))
        }
        let file = try ModelCheckpoint.open(t.checkpointURL)
        #expect(file.metadata["step"] == "5")
        _ = try ModelCheckpoint.loadModel(t.checkpointURL, device: CPUDevice())   // finite and complete
        // With --skip-nonfinite the run finishes; every step after the fault is skipped, and the
        // broken model is never saved.
        let m2 = try Transformer(config: Tiny.config(vocabulary: data.vocabularySize), device: CPUDevice())
        try m2.initialize(seed: 1)
        let t2 = try Trainer(model: m2, data: data, options: Tiny.options(steps: 20), directory: Tiny.tempDir())
        t2.skipNonFinite = 100
        t2.onStep = { r in if r.step == 7 { try m2.setParameter("ln_f.weight", [Float](repeating: .nan, count: 32)) } }
        #expect(throws: ModelError.self) { try t2.run() }   // the step-10 checkpoint refuses NaN weights
        #expect(t2.skippedSteps == 2)
        #expect(try ModelCheckpoint.open(t2.checkpointURL).metadata["step"] == "5")
    }

    @Test("SIGKILL at random points, then --resume, gives the uninterrupted run's weights and losses")
    func killAndResume() throws {
        let binary = try CLI.requireBinary()
        let dir = Tiny.tempDir()
        let text = dir.appendingPathComponent("tiny.txt")
        try Data(Tiny.text.utf8).write(to: text)
        func args(_ out: URL) -> [String] {
            ["train", "--data", text.path, "--layers", "1", "--d-model", "32", "--heads", "2", "--d-ff", "64",
             "--context", "16", "--batch", "4", "--steps", "60", "--eval-interval", "4", "--eval-batches", "2",
             "--seed", "3", "--quiet", "--out", out.path]
        }
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
        #expect(try CLI.run(args(a)).0 == 0)
        var rng = SplitMix64(seed: 11)
        var kills = 0
        let ckpt = b.appendingPathComponent("checkpoint.safetensors")
        let metrics = b.appendingPathComponent("metrics.jsonl")
        // The kills are aimed at observed progress, not at wall time: each run pauses `pause` ms
        // after every step (a hidden flag), so whatever the machine's speed a run lasts at least
        // 60 × pause ms and a step the test has seen is followed by more steps. Each kill waits
        // for a random step k past everything seen so far, then a random part of a step more.
        let pause = 25
        func start() throws -> Process {
            let p = Process()
            p.executableURL = binary
            p.arguments = args(b) + ["--step-pause-ms", "\(pause)"] + (FileManager.default.fileExists(atPath: ckpt.path) ? ["--resume"] : [])
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        /// The last step record in the run's metrics (a line a kill cut short does not parse).
        func lastStep() -> Int {
            guard let text = try? String(contentsOf: metrics, encoding: .utf8) else { return -1 }
            return text.split(separator: "\n").compactMap { line -> Int? in
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      o["type"] as? String == "step" else { return nil }
                return o["step"] as? Int
            }.max() ?? -1
        }
        // Six kills at steps drawn between what has been seen and step 52 (8 steps, ≥ 200 ms of
        // pauses, before the end) ...
        var seen = -1
        while kills < 6 && seen < 50 {
            let target = seen + 1 + rng.below(max(1, (52 - seen) / 3))
            let p = try start()
            while p.isRunning && lastStep() < target { usleep(1_000) }
            usleep(UInt32(rng.uniform() * Double(pause) * 1_000))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            #expect(p.terminationReason == .uncaughtSignal, "the run ended before the kill aimed at step \(target)")
            if p.terminationReason == .uncaughtSignal { kills += 1 }
            seen = max(seen, lastStep())
            if FileManager.default.fileExists(atPath: ckpt.path) {   // never partial
                let f = try SafeTensorsFile(contentsOf: ckpt)
                #expect(f.metadata["step"] != nil)
            }
        }
        // ... then resume to the end undisturbed.
        let p = try start()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(kills >= 3, "only \(kills) kills landed mid-run")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: b.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "\(leftovers)")   // a resumed run removes unfinished temporary checkpoints
        print("crash safety: \(kills) SIGKILLs survived")
        let fa = try SafeTensorsFile(contentsOf: a.appendingPathComponent("checkpoint.safetensors"))
        let fb = try SafeTensorsFile(contentsOf: ckpt)
        #expect(fb.metadata["step"] == "60")
        for n in fa.names { #expect(try fa.floats(n) == (try fb.floats(n)), "\(n)") }
        func losses(_ d: URL) throws -> [Double] {
            try String(contentsOf: d.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
                .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { $0["type"] as? String == "step" }.map { $0["loss"] as! Double }
        }
        #expect(try losses(b) == (try losses(a)))
        #expect(try losses(a).count == 60)
    }
}
