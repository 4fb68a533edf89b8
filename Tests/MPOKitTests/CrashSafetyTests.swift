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
        let m = try PicoGPT(config: Tiny.config(vocabulary: data.vocabulary.count), device: CPUDevice())
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
        let m2 = try PicoGPT(config: Tiny.config(vocabulary: data.vocabulary.count), device: CPUDevice())
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
        var kills = 0, finished = false
        let ckpt = b.appendingPathComponent("checkpoint.safetensors")
        func start() throws -> Process {
            let p = Process()
            p.executableURL = binary
            p.arguments = args(b) + (FileManager.default.fileExists(atPath: ckpt.path) ? ["--resume"] : [])
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        // Six kills at random points (a run that finishes first ends the loop early) ...
        for _ in 0..<30 where kills < 6 && !finished {
            let p = try start()
            let deadline = Date().addingTimeInterval(0.05 + rng.uniform() * 0.5)
            while p.isRunning && Date() < deadline { usleep(5_000) }
            if !p.isRunning { #expect(p.terminationStatus == 0); finished = true; break }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            kills += 1
            if FileManager.default.fileExists(atPath: ckpt.path) {   // never partial
                let f = try SafeTensorsFile(contentsOf: ckpt)
                #expect(f.metadata["step"] != nil)
            }
        }
        // ... then resume to the end undisturbed.
        if !finished {
            let p = try start()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
        }
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
