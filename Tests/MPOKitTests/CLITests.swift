// The mpo-train executable end to end: exit codes and messages for bad input, and the parity
// tool `dump` on the PyTorch reference checkpoints.

import Foundation
import SafeTensors
import Testing
@testable import MPOKit

enum CLI {
    /// The mpo-train binary built next to the test bundle.
    static var binary: URL? {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("mpo-train")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let root = Reference.directory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let fallback = root.appendingPathComponent(".build/debug/mpo-train")
        return FileManager.default.isExecutableFile(atPath: fallback.path) ? fallback : nil
    }

    /// Runs mpo-train with `args`; returns (exit code, stdout, stderr).
    static func run(_ args: [String]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = try #require(binary, "build mpo-train first (swift build --build-tests)")
        p.arguments = args
        p.currentDirectoryURL = Reference.directory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}

@Suite("mpo-train command line", .enabled(if: CLI.binary != nil))
struct CLITests {
    @Test("usage errors exit 64 with a message naming the problem", arguments: [
        (["train", "--device", "gpu", "--steps", "1"], "device"),
        (["train", "--model", "mpo", "--chi", "0", "--steps", "1"], "--chi"),
        (["train", "--model", "tucker"], "--model"),
        (["train", "--heads", "3"], "divisible"),
        (["report", "--chi", "4,x"], "--chi"),
        (["sample", "--checkpoint", "Tests/Resources/reference/dense_seed2024.safetensors", "--prompt", "héllo"], "vocabulary"),
    ])
    func usageErrors(args: [String], needle: String) throws {
        let (code, _, err) = try CLI.run(args)
        #expect(code == 64, "exit \(code): \(err)")
        #expect(err.contains(needle), "\(err)")
    }

    @Test("runtime errors exit 1 with a message naming the file")
    func runtimeErrors() throws {
        let dir = Tiny.tempDir()
        let empty = dir.appendingPathComponent("empty.txt")
        try Data().write(to: empty)
        var (code, _, err) = try CLI.run(["train", "--data", "/nonexistent/text.txt", "--steps", "1"])
        #expect(code == 1 && err.contains("/nonexistent/text.txt"), "\(code) \(err)")
        (code, _, err) = try CLI.run(["train", "--data", empty.path, "--steps", "1"])
        #expect(code == 1 && err.contains("empty"), "\(code) \(err)")
        let garbage = dir.appendingPathComponent("bad.safetensors")
        try Data("not a checkpoint at all".utf8).write(to: garbage)
        (code, _, err) = try CLI.run(["sample", "--checkpoint", garbage.path])
        #expect(code == 1 && err.contains("bad.safetensors"), "\(code) \(err)")
        let odd = dir.appendingPathComponent("odd.txt")
        try Data(String(repeating: "§ unusual text ", count: 100).utf8).write(to: odd)
        // A checkpoint with a vocabulary and data with a character outside it.
        let ckpt = dir.appendingPathComponent("mpo4.safetensors")
        let vocab = try Reference.json("mpo4_seed2024.json")["vocab"] as! String
        try ModelCheckpoint.save(try Reference.model("mpo4_seed2024.safetensors"), to: ckpt, metadata: ["vocab": vocab])
        (code, _, err) = try CLI.run(["train", "--init", ckpt.path, "--data", odd.path, "--steps", "1"])
        #expect(code == 1 && err.contains("§") && err.contains("vocabulary"), "\(code) \(err)")
    }

    /// Devices to run `dump` on: the CPU, and OpenCL where a platform exists (PoCL in CI).
    static let dumpDevices = ["cpu"] + (mpo_cl_platform_count() > 0 ? ["opencl"] : [])

    @Test("dump reproduces the PyTorch loss and gradients", arguments: ["dense_seed2024", "mpo4_seed2024"], dumpDevices)
    func dump(name: String, device: String) throws {
        let json = try Reference.json("\(name).json")
        let input = json["input"] as! [String: Any]
        let dir = Tiny.tempDir()
        let batch = dir.appendingPathComponent("batch.json"), out = dir.appendingPathComponent("out.safetensors")
        try JSONSerialization.data(withJSONObject: ["tokens": input["tokens"]!, "targets": input["targets"]!]).write(to: batch)
        let (code, stdout, err) = try CLI.run(["dump", "--checkpoint", "Tests/Resources/reference/\(name).safetensors",
                                               "--batch", batch.path, "--out", out.path, "--device", device])
        #expect(code == 0, "\(err)")
        #expect(stdout.contains(String(format: "loss %.5f", json["loss_f64"] as! Double)), "\(stdout)")
        let dumped = try SafeTensorsFile(contentsOf: out), ref = try Reference.file("\(name)_outputs.safetensors")
        #expect(abs(Double(try dumped.floats("loss")[0]) - (json["loss_f64"] as! Double)) < 1e-5)
        #expect(dumped.info("logits")?.shape == [2, 64, 65])
        var grads = 0
        for n in dumped.names where n.hasPrefix("grad.") {
            // OpenCL χ=4: one ReLU mask flips at rounding level (see OpenCLTests/EndToEndTests).
            let tolerance = device == "opencl" && name.hasPrefix("mpo4") ? 1e-3 : 1e-4
            #expect(relativeError(try dumped.floats(n), try ref.doubles(n)) <= tolerance, "\(n)")
            grads += 1
        }
        #expect(grads == (json["grad_l2_norm_f64"] as! [String: Any]).count)
    }

    @Test("report --json gives per-layer errors for each χ")
    func reportJSON() throws {
        let (code, stdout, err) = try CLI.run(["report", "--checkpoint", "Tests/Resources/reference/dense_seed2024.safetensors",
                                               "--chi", "4,64", "--json"])
        #expect(code == 0, "\(err)")
        let obj = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as! [String: Any]
        let results = obj["results"] as! [[String: Any]]
        #expect(results.map { $0["chi"] as! Int } == [4, 64])
        #expect((results[0]["layers"] as! [Any]).count == 25)
        #expect(results[0]["model_parameters"] as! Int == 42_336)
        #expect((results[1]["linear_relative_error"] as! Double) < 1e-6)   // χ = 64 is full rank everywhere
        #expect((results[0]["linear_relative_error"] as! Double) > 0.5)
    }
}
