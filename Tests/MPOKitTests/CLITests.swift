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

    /// The binary, or a failing test that says how to build it (never a silent skip).
    static func requireBinary(sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
        guard let b = binary else {
            Issue.record("the mpo-train binary was not found next to the tests: build it first (swift build --build-tests)",
                         sourceLocation: sourceLocation)
            throw ModelError("mpo-train binary missing")
        }
        return b
    }

    /// Runs mpo-train with `args`; returns (exit code, stdout, stderr).
    static func run(_ args: [String], environment: [String: String] = [:]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = try requireBinary()
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.currentDirectoryURL = Reference.directory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}

@Suite("mpo-train command line")
struct CLITests {
    @Test("check-ops passes the op table on the CPU and exits 1 when a case fails")
    func checkOps() throws {
        let (code, out, err) = try CLI.run(["check-ops", "--device", "cpu", "--table", "parity", "--filter", "layerNorm"])
        #expect(code == 0, "\(out)\(err)")
        let lines = out.split(separator: "\n").filter { $0.hasPrefix("OK ") }
        #expect(lines.count >= 4 && lines.allSatisfy { $0.contains("layerNorm") }, "\(out)")
        #expect(out.contains(" 0 FAIL, 0 not supported of \(lines.count) cases"), "\(out)")
        // A tolerance of 0 fails every GEMM whose result differs from the float64 loop at all.
        let (bad, badOut, _) = try CLI.run(["check-ops", "--device", "cpu", "--table", "parity", "--filter", "gemm(NT m=33", "--max-nmse", "0"])
        #expect(bad == 1, "\(badOut)")
        #expect(badOut.contains("FAIL  gemm(NT m=33"), "\(badOut)")
        let (none, _, noneErr) = try CLI.run(["check-ops", "--filter", "no such op"])
        #expect(none == 64 && noneErr.contains("no such op"), "\(noneErr)")
    }

    @Test("under mpirun with several ranks, subcommands other than train and bench refuse to run as N copies")
    func onlyTrainAndBenchAreDataParallel() throws {
        let (code, out, err) = try CLI.run(["report", "--chi", "4"], environment: ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"])
        #expect(code == 64 && err.contains("only train and bench run data-parallel") && err.contains("mpo-train report"), "\(out)\(err)")
    }

    #if !MPI
    @Test("a build without MPI started by mpirun as one of several ranks refuses to train and says how to build with MPI")
    func refusesRanksWithoutMPI() throws {
        for env in [["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"], ["PMI_SIZE": "4", "PMI_RANK": "0"]] {
            let (code, out, err) = try CLI.run(["train", "--steps", "1", "--out", "/tmp/mpo-never-written"], environment: env)
            #expect(code != 0 && err.contains("--traits MPI") && err.contains("of \(env["OMPI_COMM_WORLD_SIZE"] ?? env["PMI_SIZE"]!)"), "\(out)\(err)")
            #expect(!FileManager.default.fileExists(atPath: "/tmp/mpo-never-written"))
        }
        // One rank (mpirun -np 1) is one process: it trains.
        let (code, out, err) = try CLI.run(["train", "--steps", "0", "--eval-batches", "0", "--d-model", "32", "--d-ff", "64", "--layers", "1",
                                            "--out", NSTemporaryDirectory() + "mpo-np1"], environment: ["OMPI_COMM_WORLD_SIZE": "1"])
        #expect(code == 0, "\(out)\(err)")
    }
    #endif

    @Test("usage errors exit 64 with a message naming the problem", arguments: [
        (["train", "--device", "gpu", "--steps", "1"], "device"),
        (["train", "--model", "mpo", "--chi", "0", "--steps", "1"], "--chi"),
        (["train", "--model", "tucker"], "--model"),
        (["train", "--heads", "3"], "divisible"),
        (["report", "--chi", "4,x"], "--chi"),
        (["bench", "--threads", "0"], "--threads"),
        (["bench", "--shape", "tucker"], "--shape"),
        (["bench", "--time", "300", "--chi", ""], "--time in 1…256"),
        (["check-ops", "--max-nmse", "-1"], "--max-nmse"),
        (["table", "/nonexistent/run", "--out", "/tmp"], "/nonexistent/run"),
        (["sample", "--checkpoint", "Tests/Resources/reference/dense_seed2024.safetensors", "--heads", "4", "--prompt", "héllo"], "vocabulary"),
        // A PyTorch state_dict does not say how many heads it has: never guessed.
        (["sample", "--checkpoint", "Tests/Resources/reference/dense_seed2024.safetensors", "--prompt", "ROMEO:"], "--heads"),
        (["train", "--model", "tucker"], "tucker"),
        (["train", "--strategy", "fastest"], "fastest"),
        (["train", "--lr", "1e-3,2e-3"], "sweep"),                                            // one lr per run
        (["train", "--chi-schedule", "16@300,8@100"], "increase"),
        (["train", "--teacher", "t.safetensors", "--distill-weight", "1.5"], "--distill-weight"),
        (["compress", "--checkpoint", "x.safetensors", "--chi", "8", "--params", "9000", "--out", "y"], "one of"),
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

    @Test("dump reproduces the PyTorch loss and gradients on the CPU", arguments: ["dense_seed2024", "mpo4_seed2024"])
    func dumpCPU(name: String) throws { try dump(name: name, device: "cpu") }

    @Test("dump reproduces the PyTorch loss and gradients on OpenCL", .enabled(if: OpenCLGate.enabled, OpenCLGate.reason),
          arguments: ["dense_seed2024", "mpo4_seed2024"])
    func dumpOpenCL(name: String) throws { try dump(name: name, device: "opencl") }

    func dump(name: String, device: String) throws {
        let json = try Reference.json("\(name).json")
        let input = json["input"] as! [String: Any]
        let dir = Tiny.tempDir()
        let batch = dir.appendingPathComponent("batch.json"), out = dir.appendingPathComponent("out.safetensors")
        try JSONSerialization.data(withJSONObject: ["tokens": input["tokens"]!, "targets": input["targets"]!]).write(to: batch)
        let (code, stdout, err) = try CLI.run(["dump", "--checkpoint", "Tests/Resources/reference/\(name).safetensors", "--heads", "4",
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

    @Test("table tabulates run directories: ratio, step-0 and final loss, gap, median tokens/s")
    func table() throws {
        let dir = Tiny.tempDir()
        func run(_ name: String, params: Int, evals: [(Int, Double, Double)], tps: [Double]) throws -> String {
            let d = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            var lines = ["{\"type\":\"run\",\"name\":\"\(name)\",\"parameters\":\(params),\"device\":\"cpu\"}"]
            for (i, t) in tps.enumerated() { lines.append("{\"type\":\"step\",\"step\":\(i),\"loss\":3,\"tokens_per_second\":\(t)}") }
            for (step, loss, acc) in evals {
                lines.append("{\"type\":\"eval\",\"step\":\(step),\"train_loss\":\(loss),\"val_loss\":\(loss),\"val_accuracy\":\(acc),\"elapsed\":\(step * 2)}")
            }
            try lines.joined(separator: "\n").write(to: d.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
            return d.path
        }
        let dense = try run("dense", params: 808_448, evals: [(0, 4.2, 0.02), (100, 2.0, 0.40)], tps: [100, 300, 200])
        let mpo = try run("mpo-chi8", params: 79_168, evals: [(0, 4.5, 0.01), (100, 2.5, 0.35)], tps: [50, 70])
        let out = dir.appendingPathComponent("table")
        let (code, stdout, err) = try CLI.run(["table", dense, mpo, "--out", out.path])
        #expect(code == 0, "\(err)")
        #expect(stdout.contains("| mpo-chi8 | 79168 | 10.2× | 2 | 4.5000 | 2.5000 | 35.00 % | -5.00 pp | 3m20s | 60 |"), "\(stdout)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as? [String: Any]
        let rows = try #require(json?["runs"] as? [[String: Any]])
        #expect(rows.count == 2 && rows[0]["tokens_per_second"] as? Double == 200 && rows[1]["wall_seconds"] as? Double == 200)
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("summary.svg").path))
    }

    @Test("train --steps 0 --eval-batches 0 writes the initialised model; eval --json scores it on the whole split")
    func initialiseThenEval() throws {
        let dir = Tiny.tempDir()
        let text = dir.appendingPathComponent("tiny.txt")
        try Data(Tiny.text.utf8).write(to: text)
        let out = dir.appendingPathComponent("init")
        var (code, stdout, err) = try CLI.run(["train", "--data", text.path, "--layers", "1", "--d-model", "16", "--heads", "2",
                                               "--d-ff", "32", "--context", "16", "--steps", "0", "--eval-batches", "0", "--out", out.path])
        #expect(code == 0 && stdout.contains("no evaluation"), "\(err)")
        let ckpt = out.appendingPathComponent("checkpoint.safetensors").path
        (code, stdout, err) = try CLI.run(["eval", "--checkpoint", ckpt, "--data", text.path, "--json"])
        #expect(code == 0, "\(err)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        let val = try TextDataset(text: Tiny.text).validation.count
        #expect(obj["windows"] as? Int == (val - 1) / 16 && obj["tokens"] as? Int == (val - 1) / 16 * 16)
        let loss = try #require(obj["val_loss"] as? Double)
        #expect(abs(loss - log(Double(try TextDataset(text: Tiny.text).vocabularySize))) < 0.05)   // untrained: ≈ log V
        // --split all: the whole text in windows of --context, the last one shorter, n − 1 predictions.
        (code, stdout, err) = try CLI.run(["eval", "--checkpoint", ckpt, "--data", text.path, "--split", "all", "--context", "7", "--json"])
        #expect(code == 0, "\(err)")
        let all = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        let n = Tiny.text.unicodeScalars.count
        #expect(all["tokens"] as? Int == n - 1 && all["windows"] as? Int == (n - 1 + 6) / 7 && all["context"] as? Int == 7)
        #expect(abs((all["perplexity"] as! Double) - exp(all["loss"] as! Double)) < 1e-9)
        // tokenize: a character model's ids are its vocabulary's indices.
        (code, stdout, err) = try CLI.run(["tokenize", "--checkpoint", ckpt, "--text", "ab", "--json"])
        let abIDs = try TextDataset(text: Tiny.text).characters!.encode("ab").map(Int.init)
        let expected = "{\"ids\":\(abIDs)}".replacingOccurrences(of: " ", with: "")
        #expect(code == 0 && stdout.contains(expected), "\(stdout) \(err)")
        // A budgeted compression of it fits the budget and says so.
        let small = dir.appendingPathComponent("small.safetensors")
        (code, stdout, err) = try CLI.run(["compress", "--checkpoint", ckpt, "--data", text.path, "--params", "3000", "--out", small.path,
                                           "--eval-batches", "1"])
        #expect(code == 0 && stdout.contains("budget 3000"), "\(err)")
        #expect(try ModelCheckpoint.loadModel(small, device: CPUDevice()).parameterCount <= 3000)
    }

    @Test("report --json gives per-layer errors for each χ")
    func reportJSON() throws {
        let (code, stdout, err) = try CLI.run(["report", "--checkpoint", "Tests/Resources/reference/dense_seed2024.safetensors", "--heads", "4",
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

    @Test("report --errors spectra: exact for two sites, the TT-SVD bound for three, the same parameters", arguments: ["svd", "3"])
    func reportSpectra(sites: String) throws {
        func layers(_ errors: String) throws -> [[String: Any]] {
            let (code, stdout, err) = try CLI.run(["report", "--checkpoint", "Tests/Resources/reference/dense_seed2024.safetensors", "--heads", "4",
                                                   "--chi", "4", "--sites", sites, "--errors", errors, "--json"])
            #expect(code == 0, "\(err)")
            let obj = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as! [String: Any]
            #expect(obj["errors"] as? String == errors)
            return ((obj["results"] as! [[String: Any]])[0])["layers"] as! [[String: Any]]
        }
        let spectra = try layers("spectra"), ttsvd = try layers("ttsvd")
        #expect(spectra.count == 25 && ttsvd.count == 25)
        for (s, t) in zip(spectra, ttsvd) {
            #expect(s["parameters"] as! Int == t["parameters"] as! Int && s["bonds"] as! [Int] == t["bonds"] as! [Int])
            let bound = s["relativeError"] as! Double, exact = t["relativeError"] as! Double
            if sites == "svd" {
                #expect(abs(bound - exact) <= 1e-4 * exact, "\(s["layer"]!): \(bound) vs \(exact)")
            } else {   // TT-SVD's error lies between the worst unfolding's tail and the bound
                #expect(exact <= bound * (1 + 1e-4) && bound <= exact * 2.0.squareRoot() * (1 + 1e-4), "\(s["layer"]!): \(bound) vs \(exact)")
            }
        }
        let (code, _, err) = try CLI.run(["report", "--chi", "4", "--errors", "spectra", "--tolerance", "0.1"])
        #expect(code != 0 && err.contains("--errors ttsvd"), "\(err)")
    }
}
