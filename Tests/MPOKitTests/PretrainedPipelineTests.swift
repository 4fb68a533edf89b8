// The pretrained-model pipeline from the command line, on a small Llama that carries SmolLM2's
// byte-level BPE tokenizer in a GGUF file (what a user's pretrained file looks like, at a size a
// test can afford): compress (a linear-layer budget, plain SVD and 3-site MPO) → eval → train
// --teacher (distillation, resumable) → sample → export (GGUF and Hugging Face), each taking the
// compressed checkpoint alone — its tokenizer travels with it.

import Foundation
import Testing
import TestSupport
import Tokenizers
@testable import MPOKit

@Suite("Pretrained pipeline: compress → eval → heal → sample → export")
struct PretrainedPipelineTests {
    static let tokenizer = try! BPETokenizer.fromTokenizerJSON(
        ReferenceData.root.appendingPathComponent("Tests/Resources/tokenizers/smollm2.tokenizer.json"),
        chatTemplate: "<|im_start|>user\n{{ content }}<|im_end|>\n<|im_start|>assistant\n")

    /// A 2-block Llama (d 48, 4 heads, 2 key/value heads, FFN 96) with SmolLM2's vocabulary, random
    /// weights, written as GGUF with the tokenizer.
    static func pretrained(_ dir: URL, tiedHead: Bool = true) throws -> URL {
        let c = ModelConfig(vocabularySize: tokenizer.count, channels: 48, heads: 4, layers: 2, context: 128, ffn: 96,
                            architecture: .llama(theta: 10_000, normEpsilon: 1e-5, kvHeads: 2, tiedHead: tiedHead))
        let m = try Transformer(config: c, device: CPUDevice(), purpose: .inference)
        try m.initialize(seed: 3)
        let url = dir.appendingPathComponent(tiedHead ? "tiny.gguf" : "tiny-untied.gguf")
        try GGUFCheckpoint.save(m, tokenizer: tokenizer, to: url)
        return url
    }

    /// A fresh folder with the tiny model (`pretrained`) and the first 3,000 characters of Tiny Shakespeare as text.txt.
    static func workspace(_ prefix: String) throws -> (dir: URL, original: String, text: URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let original = try pretrained(dir).path, text = dir.appendingPathComponent("text.txt")
        try String(try String(contentsOfFile: ReferenceData.root.appendingPathComponent("Data/tinyshakespeare.txt").path, encoding: .utf8).prefix(3_000))
            .write(to: text, atomically: true, encoding: .utf8)
        return (dir, original, text)
    }

    static func json(_ out: String) throws -> [String: Any] {
        let line = try #require(out.split(separator: "\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test("every step takes the compressed checkpoint alone", arguments: ["svd", "3"])
    func pipeline(_ sites: String) throws { try run(sites: sites, device: "cpu") }

    @Test("compress without --data suggests healing on the original's own samples, with the loop that writes them")
    func healOnOwnSamples() throws {
        let (dir, original, _) = try Self.workspace("own-samples")
        let out = dir.appendingPathComponent("r2.safetensors").path
        let (code, stdout, err) = try CLI.run(["compress", "--checkpoint", original, "--linear-ratio", "2", "--sites", "svd", "--eval-batches", "0", "--out", out])
        #expect(code == 0, "\(err)")
        #expect(stdout.contains("--init \(out) --teacher \(original) --data own.txt --lr 1e-4 ") && stdout.contains("--steps 400 "), "\(stdout)")
        #expect(stdout.contains("own.txt: 400 steps of 1024 tokens read 409k tokens: about one pass over the text — general text, or the original's own samples (393216 tokens)"), "\(stdout)")
        #expect(stdout.contains("for b in $(seq 0 47); do mpo-train sample --checkpoint \(original) --batch 16 --tokens 512 --temperature 1 --top-k 0 --seed $((16 * b)) | grep -v '^--- sequence'; done > own.txt"),
                "48 batches of 8,192 sampled tokens, the samples that healed furthest: \(stdout)")
    }

    @Test("the same pipeline on the OpenCL device (PoCL in CI)", .enabled(if: OpenCLGate.enabled, OpenCLGate.reason))
    func pipelineOnOpenCL() throws { try run(sites: "svd", device: "opencl") }

    @Test("compress --error-correction refits the layers on either device (one model), and asks for --calibration without it")
    func errorCorrection() throws {
        let (dir, original, text) = try Self.workspace("correction")
        var losses: [String: Double] = [:]
        for device in ["cpu"] + (OpenCLGate.enabled ? ["opencl"] : []) {
            let out = dir.appendingPathComponent("c-\(device).safetensors").path
            var (code, stdout, err) = try CLI.run(["compress", "--checkpoint", original, "--linear-ratio", "2", "--sites", "svd",
                                                   "--calibration", text.path, "--calibration-tokens", "256", "--eval-context", "64",
                                                   "--error-correction", "--data", text.path, "--eval-batches", "0", "--out", out, "--device", device])
            #expect(code == 0, "\(err)")
            #expect(stdout.contains("error correction: every layer refitted") && stdout.contains("--lr 1e-4"), "\(stdout)")
            (code, stdout, err) = try CLI.run(["eval", "--checkpoint", out, "--data", text.path, "--split", "all", "--context", "64", "--json"])
            #expect(code == 0, "\(err)")
            losses[device] = try Self.json(stdout)["loss"] as? Double
        }
        if let gpu = losses["opencl"], let cpu = losses["cpu"] { #expect(abs(gpu - cpu) < 1e-3 * cpu, "\(losses)") }
        let (code, _, err) = try CLI.run(["compress", "--checkpoint", original, "--linear-ratio", "2", "--error-correction",
                                          "--out", dir.appendingPathComponent("x.safetensors").path])
        #expect(code != 0 && err.contains("--error-correction needs --calibration"), "\(err)")
    }

    /// Layer → the relative error compress printed for it.
    static func printedErrors(_ out: String) -> [String: Double] {
        var e: [String: Double] = [:]
        for line in out.split(separator: "\n") where line.contains(" err ") {
            let words = line.split(separator: " ")
            if let i = words.firstIndex(of: "err"), let v = Double(words[i + 1]) { e[String(words[0])] = v }
        }
        return e
    }

    @Test("compress --calibration fits 2-site MPO layers to their exact output error by ALS: every layer's printed error at most the Kronecker truncation's, most lower, with and without --error-correction")
    func exactMPOTruncation() throws {
        let (dir, original, text) = try Self.workspace("als")
        func errors(_ extra: [String]) throws -> [String: Double] {   // layer → printed relative output error
            let (code, out, err) = try CLI.run(["compress", "--checkpoint", original, "--linear-ratio", "2", "--sites", "2",
                                                "--calibration", text.path, "--calibration-tokens", "256", "--eval-context", "64",
                                                "--data", text.path, "--eval-batches", "0", "--out", dir.appendingPathComponent("m.safetensors").path] + extra)
            #expect(code == 0, "\(err)")
            return Self.printedErrors(out)
        }
        for correction in [[], ["--error-correction"]] {
            let kronecker = try errors(["--als-sweeps", "0"] + correction), exact = try errors(correction)   // default: 2 sweeps
            #expect(kronecker.count == 14 && Set(kronecker.keys) == Set(exact.keys), "\(kronecker.keys)")
            #expect(kronecker.allSatisfy { exact[$0.key]! <= $0.value + 1e-4 }, "\(correction): \(kronecker) vs \(exact)")
            let lower = kronecker.filter { exact[$0.key]! < $0.value - 1e-3 }.count
            #expect(lower >= 7, "\(correction): ALS lowered \(lower) of 14 layers: \(kronecker) vs \(exact)")
        }
        let (code, _, err) = try CLI.run(["compress", "--checkpoint", original, "--linear-ratio", "2", "--als-sweeps=-1",
                                          "--out", dir.appendingPathComponent("x.safetensors").path])
        #expect(code != 0 && err.contains("--als-sweeps must be ≥ 0"), "\(err)")
    }

    @Test("compress --calibration --embedding svd:r truncates the tied table as the head and says so; --embedding-error fisher weights its rows, weight keeps the table's own error; the checkpoint records which; an MPO table takes fisher too; a bad value, fisher for a per-token TT or without --calibration is refused")
    func tiedEmbeddingAsHead() throws {
        let (dir, original, text) = try Self.workspace("tied-head")
        func compress(_ extra: [String]) throws -> (out: String, table: [Float], recorded: String?) {
            let path = dir.appendingPathComponent("e\(extra.count).safetensors").path
            let (code, out, err) = try CLI.run(["compress", "--checkpoint", original, "--embedding", "svd:8", "--calibration", text.path,
                                                "--calibration-tokens", "256", "--eval-context", "64", "--data", text.path, "--eval-batches", "0",
                                                "--out", path] + extra)
            #expect(code == 0, "\(err)")
            let m = try ModelCheckpoint.loadModel(URL(fileURLWithPath: path), device: CPUDevice(), purpose: .inference)
            #expect(m.config.tokenEmbedding == .lowRank(rank: 8, vocabulary: m.config.vocabularySize, channels: 48))
            return (out, try Compression.embeddingTable(m), try ModelCheckpoint.open(URL(fileURLWithPath: path)).metadata["embedding_error"])
        }
        let head = try compress([]), weight = try compress(["--embedding-error", "weight"])
        let fisher = try compress(["--embedding-error", "fisher", "--als-sweeps", "2"])
        #expect(head.out.contains("truncated as the tied head by its output error on the calibration text: 0."), "\(head.out)")
        #expect(!head.out.contains("weighted by the predicted token probabilities"), "\(head.out)")
        #expect(fisher.out.contains("truncated as the tied head by its output error on the calibration text: 0.")
                && fisher.out.contains("(weighted by the predicted token probabilities, what it minimised: 0."), "\(fisher.out)")
        #expect(!weight.out.contains("truncated as the tied head"), "\(weight.out)")
        #expect(zip(head.table, weight.table).contains { abs($0 - $1) > 1e-4 }, "the two truncations are different tables")
        #expect(zip(head.table, fisher.table).contains { abs($0 - $1) > 1e-4 }, "fisher weights change the table")
        #expect(head.recorded == "output" && fisher.recorded == "fisher" && weight.recorded == "weight",
                "metadata embedding_error: \(head.recorded ?? "none"), \(fisher.recorded ?? "none"), \(weight.recorded ?? "none")")
        // A table MPO takes the fisher weights too (a Kronecker product over its token factors, then ALS).
        let mpoPath = dir.appendingPathComponent("mpo-fisher.safetensors").path
        let (mpoCode, mpoOut, mpoErr) = try CLI.run(["compress", "--checkpoint", original, "--embedding", "mpo:8", "--embedding-error", "fisher",
                                                     "--als-sweeps", "2", "--calibration", text.path, "--calibration-tokens", "256", "--eval-context", "64",
                                                     "--data", text.path, "--eval-batches", "0", "--out", mpoPath])
        #expect(mpoCode == 0 && mpoOut.contains("(weighted by the predicted token probabilities, what it minimised: 0."), "\(mpoOut)\(mpoErr)")
        #expect(try ModelCheckpoint.open(URL(fileURLWithPath: mpoPath)).metadata["embedding_error"] == "fisher")
        if case .mpo = try ModelCheckpoint.loadModel(URL(fileURLWithPath: mpoPath), device: CPUDevice(), purpose: .inference).config.tokenEmbedding {} else {
            Issue.record("mpo:8 gave no MPO table")
        }
        for (extra, message) in [(["--embedding", "svd:8", "--embedding-error", "logits"], "--embedding-error must be output, fisher or weight"),
                                 (["--embedding", "tt:4", "--embedding-error", "fisher", "--calibration", text.path], "it needs --calibration and --embedding svd:r or mpo:χ"),
                                 (["--embedding", "svd:8", "--embedding-error", "fisher"], "it needs --calibration and --embedding svd:r or mpo:χ")] {
            let (code, _, err) = try CLI.run(["compress", "--checkpoint", original] + extra + ["--out", dir.appendingPathComponent("x.safetensors").path])
            #expect(code == 64 && err.contains(message), "\(extra): exit \(code): \(err)")
        }
    }

    @Test("a whole-model budget (--params, --ratio) with --embedding counts the table at its compressed size: the model fits it, its linears taking the rest; --embedding-error fisher with an untied head is refused")
    func budgetCountsCompressedTable() throws {
        let (dir, original, text) = try Self.workspace("budget-table")
        let dense = try ModelCheckpoint.loadModel(URL(fileURLWithPath: original), device: CPUDevice(), purpose: .inference)
        let linearDense = dense.config.linearLayers.reduce(0) { $0 + $1.out * $1.in }
        var small = dense.config
        small.tokenEmbedding = .lowRank(rank: 8, vocabulary: small.vocabularySize, channels: small.channels)
        let rest = dense.parameterCount - linearDense - dense.config.embeddingParameterCount   // norms
        // Half the linears beside the rank-8 table: below the dense table alone, so only a budget that counts the table compressed fits it.
        let budget = rest + small.embeddingParameterCount + linearDense / 2
        #expect(budget < rest + dense.config.embeddingParameterCount)
        func compress(_ extra: [String]) throws -> Transformer {
            let path = dir.appendingPathComponent("b\(extra.count).safetensors").path
            let (code, out, err) = try CLI.run(["compress", "--checkpoint", original, "--sites", "svd", "--data", text.path, "--eval-batches", "0",
                                                "--eval-context", "64", "--out", path] + extra)
            #expect(code == 0 && out.contains("budget "), "\(err)")
            return try ModelCheckpoint.loadModel(URL(fileURLWithPath: path), device: CPUDevice(), purpose: .inference)
        }
        let withTable = try compress(["--params", "\(budget)", "--embedding", "svd:8"])
        #expect(withTable.config.embeddingParameterCount == small.embeddingParameterCount)
        // The linears get the rest of the budget (a rank step of the largest layer may stay unspent).
        let step = dense.config.linearLayers.map { $0.out + $0.in }.max()!
        #expect(withTable.parameterCount <= budget && withTable.parameterCount >= budget - step, "\(withTable.parameterCount) of \(budget)")
        // --ratio is the same budget, dense parameters / R.
        let ratio = Double(dense.parameterCount) / Double(budget), byRatio = try compress(["--ratio", "\(ratio)", "--embedding", "svd:8"])
        let ratioBudget = Int((Double(dense.parameterCount) / ratio).rounded(.down))
        #expect(byRatio.parameterCount <= ratioBudget && byRatio.parameterCount >= ratioBudget - step, "\(byRatio.parameterCount) of \(ratioBudget)")
        let (code, _, err) = try CLI.run(["compress", "--checkpoint", "Tests/Resources/reference/dense_seed2024.safetensors", "--heads", "4",
                                          "--embedding", "svd:8", "--embedding-error", "fisher", "--calibration", text.path,
                                          "--out", dir.appendingPathComponent("x.safetensors").path])
        #expect(code != 0 && err.contains("--embedding-error fisher is for a tied table"), "exit \(code): \(err)")
    }

    @Test("compress --embedding svd:auto gives the tied table the rank the budget finds for it as one more layer: the model fits the budget, and the error predicted from its spectrum is the one it gets (fisher, output or the table's own); K-FAC prices it as head and embedding and keeps the layers' scale in the sensitivity file; without a whole-model budget, with probes, or K-FAC without fisher, it is refused")
    func autoTableRank() throws {
        let (dir, original, text) = try Self.workspace("auto-table")
        let dense = try ModelCheckpoint.loadModel(URL(fileURLWithPath: original), device: CPUDevice(), purpose: .inference)
        let (V, C) = (dense.config.vocabularySize, dense.config.channels), budget = dense.parameterCount * 2 / 3
        let calibrated = ["--calibration", text.path, "--calibration-tokens", "256", "--eval-context", "64"]
        func number(after key: String, in out: String) throws -> Double {
            let rest = try #require(out.range(of: key).map { out[$0.upperBound...] }, "no '\(key)' in \(out)")
            return try #require(Double(String(rest.prefix { "0123456789.".contains($0) })))
        }
        func run(_ name: String, _ extra: [String]) throws -> (out: String, rank: Int, predicted: Double) {
            let path = dir.appendingPathComponent("\(name).safetensors").path
            let (code, out, err) = try CLI.run(["compress", "--checkpoint", original, "--sites", "svd", "--embedding", "svd:auto", "--params", "\(budget)",
                                                "--data", text.path, "--eval-batches", "0", "--out", path] + extra)
            #expect(code == 0, "\(err)")
            let m = try ModelCheckpoint.loadModel(URL(fileURLWithPath: path), device: CPUDevice(), purpose: .inference)
            let rank = Int(try number(after: "tok_emb: svd:", in: out))
            #expect(m.config.tokenEmbedding == .lowRank(rank: rank, vocabulary: V, channels: C) && rank >= 1 && rank < C, "\(m.config.tokenEmbedding)")
            #expect(m.parameterCount <= budget, "\(m.parameterCount) > \(budget)")
            return (out, rank, try number(after: "predicted relative error ", in: out))
        }
        let fisher = try run("fisher", calibrated + ["--embedding-error", "fisher"])
        #expect(abs(fisher.predicted - (try number(after: "what it minimised: ", in: fisher.out))) < 2e-4, "\(fisher.out)")
        let output = try run("output", calibrated)
        #expect(abs(output.predicted - (try number(after: "by its output error on the calibration text: ", in: output.out))) < 2e-4, "\(output.out)")
        let own = try run("own", ["--eval-context", "64"])
        #expect(abs(own.predicted - (try number(after: "relative error ", in: String(own.out[own.out.range(of: "embedding parameters")!.lowerBound...])))) < 2e-4, "\(own.out)")
        // K-FAC: the table priced as the head beside the layers, its scale kept for the next run, which reads it and agrees.
        let file = dir.appendingPathComponent("kfac.json").path
        let kfacFlags = calibrated + ["--embedding-error", "fisher", "--output-fisher", "--sensitivity-method", "kfac", "--sensitivity-file", file, "--objective", "sum"]
        let measured = try run("kfac", kfacFlags), kept = try run("kfac-kept", kfacFlags)
        #expect(measured.out.contains("(the tied table by K-FAC, nats per unit relative error² in the head's Fisher metric: ") && measured.out.contains(" as the embedding)")
                && measured.out.contains("weighted by K-FAC as head and embedding)"), "\(measured.out)")
        #expect(try SensitivityRecord.read(from: URL(fileURLWithPath: file), layers: dense.config.linearLayers.map(\.name)).median.map { $0 > 0 } == true)
        #expect(kept.out.contains("sensitivity read from") && kept.rank == measured.rank && kept.predicted == measured.predicted, "\(kept.out)")
        let x = dir.appendingPathComponent("x.safetensors").path
        for (extra, message) in [(["--linear-ratio", "2"], "sizes the table inside a whole-model budget"),
                                 (["--chi", "4"], "sizes the table inside a whole-model budget"),
                                 (["--params", "\(budget)", "--sensitivity", "1"], "prices the table by K-FAC"),
                                 (["--params", "\(budget)", "--allocation", "ttsvd"], "drop --allocation ttsvd"),
                                 (["--params", "\(budget)", "--sensitivity-method", "kfac"] + calibrated, "add --embedding-error fisher")] {
            let (code, _, err) = try CLI.run(["compress", "--checkpoint", original, "--embedding", "svd:auto"] + extra + ["--out", x])
            #expect(code == 64 && err.contains(message), "\(extra): exit \(code): \(err)")
        }
    }

    @Test("compress --output-fisher whitens the SVD layers' outputs by the calibration's loss gradients: other factors, the same budget, the same model from the OpenCL device, recorded in the checkpoint; an MPO's too (Kronecker on both sides, ALS raising no layer's two-sided error and lowering some); it asks for --calibration and refuses --error-correction")
    func outputFisher() throws {
        let (dir, original, text) = try Self.workspace("output-fisher")
        let base = ["compress", "--checkpoint", original, "--linear-ratio", "2", "--sites", "svd", "--calibration", text.path,
                    "--calibration-tokens", "256", "--eval-context", "64", "--data", text.path, "--eval-batches", "0"]
        func run(_ name: String, _ extra: [String]) throws -> (out: String, model: Transformer, meta: [String: String]) {
            let path = dir.appendingPathComponent(name).path
            let (code, out, err) = try CLI.run(base + extra + ["--out", path])
            #expect(code == 0, "\(err)")
            return (out, try ModelCheckpoint.loadModel(URL(fileURLWithPath: path), device: CPUDevice(), purpose: .inference),
                    try ModelCheckpoint.open(URL(fileURLWithPath: path)).metadata)
        }
        let one = try run("one.safetensors", []), two = try run("two.safetensors", ["--output-fisher"])
        #expect(two.out.contains("output gradients: the loss gradients of every layer's outputs") && two.out.contains("truncated by K-FAC's two-sided Fisher")
                && !one.out.contains("output gradients"), "\(two.out)")
        #expect(two.meta["output_fisher"] == "K-FAC two-sided" && one.meta["output_fisher"] == nil)
        #expect(two.model.parameterCount <= one.model.parameterCount + one.model.parameterCount / 50, "the same budget: \(two.model.parameterCount) vs \(one.model.parameterCount)")
        let w1 = try Compression.denseWeights(one.model), w2 = try Compression.denseWeights(two.model)
        #expect(w1.keys.contains { k in zip(w1[k]!, w2[k]!).contains { abs($0 - $1) > 1e-3 } }, "the output side changes the truncation")
        if OpenCLGate.enabled {   // the backward passes that collect G on the OpenCL device give the same model
            let gpu = try run("two-opencl.safetensors", ["--output-fisher", "--device", "opencl"])
            var losses: [Double] = []
            for name in ["two.safetensors", "two-opencl.safetensors"] {
                let (code, stdout, err) = try CLI.run(["eval", "--checkpoint", dir.appendingPathComponent(name).path, "--data", text.path,
                                                       "--split", "all", "--context", "64", "--json"])
                #expect(code == 0, "\(err)")
                losses.append(try #require(try Self.json(stdout)["loss"] as? Double))
            }
            #expect(gpu.model.parameterCount == two.model.parameterCount && abs(losses[0] - losses[1]) < 1e-3 * losses[0], "CPU vs OpenCL: \(losses)")
        }
        // A 2-site MPO: its printed errors are the two-sided ones, which ALS raises on no layer and lowers on some.
        let mpoBase = base.map { $0 == "svd" ? "2" : $0 }
        var mpo: [[String: Double]] = []
        for (name, sweeps) in [("mpo0.safetensors", "0"), ("mpo2.safetensors", "2")] {
            let path = dir.appendingPathComponent(name).path
            let (code, out, err) = try CLI.run(mpoBase + ["--output-fisher", "--als-sweeps", sweeps, "--out", path])
            #expect(code == 0 && out.contains("truncated by K-FAC's two-sided Fisher"), "\(err)")
            let model = try ModelCheckpoint.loadModel(URL(fileURLWithPath: path), device: CPUDevice(), purpose: .inference)
            #expect(model.config.linearLayers.allSatisfy { l in
                if case .mpo(let f, _) = model.config.linearKind(l.name, out: l.out, in: l.in) { return f.sites == 2 } else { return false }
            })
            mpo.append(Self.printedErrors(out))
        }
        #expect(mpo[0].count == 14 && Set(mpo[0].keys) == Set(mpo[1].keys), "\(mpo[0].keys)")
        #expect(mpo[0].allSatisfy { mpo[1][$0.key]! <= $0.value + 1e-4 } && mpo[0].contains { mpo[1][$0.key]! < $0.value - 1e-3 }, "\(mpo)")
        for (extra, message) in [(["--sites", "svd", "--output-fisher"], "it needs --calibration"),
                                 (["--sites", "2", "--output-fisher"], "it needs --calibration"),
                                 (["--sites", "svd", "--output-fisher", "--calibration", text.path, "--error-correction"], "does not go with --error-correction")] {
            let (code, _, err) = try CLI.run(["compress", "--checkpoint", original, "--linear-ratio", "2"] + extra
                                             + ["--out", dir.appendingPathComponent("x.safetensors").path])
            #expect(code == 64 && err.contains(message), "\(extra): exit \(code): \(err)")
        }
    }

    @Test("compress --allocation measured rescales each MPO layer's spectrum by its exact/Kronecker error ratio: the worst layer's exact error drops, the budget holds, and it asks for --calibration and MPO sites")
    func measuredAllocation() throws {
        let (dir, original, text) = try Self.workspace("measured")
        let base = ["compress", "--checkpoint", original, "--linear-ratio", "2", "--sites", "2", "--calibration", text.path,
                    "--calibration-tokens", "256", "--eval-context", "64", "--data", text.path, "--eval-batches", "0",
                    "--out", dir.appendingPathComponent("m.safetensors").path]
        func run(_ extra: [String]) throws -> (errors: [String: Double], ratios: [String: Double], out: String) {
            let (code, out, err) = try CLI.run(base + extra)
            #expect(code == 0, "\(err)")
            var e: [String: Double] = [:], r: [String: Double] = [:]
            for line in out.split(separator: "\n") {
                let words = line.split(separator: " ")
                if let i = words.firstIndex(of: "err"), let v = Double(words[i + 1]) { e[String(words[0])] = v }
                // "  layer  exact / bound = ratio  at χ c"
                if words.count == 9, words[2] == "/", words[4] == "=", let a = Double(words[1]), let b = Double(words[3]), let q = Double(words[5]) {
                    #expect(abs(a / b - q) < 2e-3 * max(q, 1), "\(line)")
                    r[String(words[0])] = q
                }
            }
            return (e, r, out)
        }
        let spectral = try run([]), measured = try run(["--allocation", "measured"])
        #expect(measured.out.contains("measured at the spectra's allocation") && measured.ratios.count == 14, "\(measured.out)")
        #expect(spectral.ratios.isEmpty && spectral.errors.count == 14 && measured.errors.count == 14)
        // The Kronecker spectra misjudge the layers unevenly (the point of measuring them) …
        let q = measured.ratios.values
        #expect(q.max()! > 1.3 * q.min()!, "\(measured.ratios)")
        // … and levelling the exact errors lowers the worst one.
        let worst = (spectral.errors.values.max()!, measured.errors.values.max()!)
        #expect(worst.1 < worst.0 - 1e-3, "worst exact error: spectra \(worst.0), measured \(worst.1)")
        for out in [spectral.out, measured.out] {   // both fit the budget: "budget B parameters: allocation of A"
            let words = try #require(out.split(separator: "\n").first { $0.hasPrefix("budget ") }).split(separator: " ")
            #expect(Int(words[5])! <= Int(words[1])!, "\(words)")
        }
        // Loss sensitivities on output errors combine with it (one validation batch per layer).
        let weighed = try run(["--allocation", "measured", "--sensitivity", "1"])
        #expect(weighed.out.contains("(loss increase per unit relative output error², 1 batches") && weighed.errors.count == 14, "\(weighed.out)")
        for (extra, message) in [(["--allocation", "measured"], "--allocation measured needs --calibration"),
                                 (["--allocation", "measured", "--calibration", text.path, "--sites", "svd"], "--allocation measured is for MPO layers")] {
            let (code, _, err) = try CLI.run(["compress", "--checkpoint", original, "--linear-ratio", "2",
                                              "--out", dir.appendingPathComponent("x.safetensors").path] + extra)
            #expect(code != 0 && err.contains(message), "\(err)")
        }
    }

    @Test("compress --sensitivity-file keeps the measured sensitivities: a second run reads them instead of probing and allocates the same bonds, SVD reuses them, and a wrong file is refused with a message")
    func sensitivityFile() throws {
        let (dir, original, text) = try Self.workspace("sensitivity-file")
        let file = dir.appendingPathComponent("sens.json").path
        let base = ["compress", "--checkpoint", original, "--linear-ratio", "2", "--calibration", text.path,
                    "--calibration-tokens", "256", "--eval-context", "64", "--data", text.path, "--eval-batches", "0",
                    "--out", dir.appendingPathComponent("m.safetensors").path]
        func bonds(_ extra: [String]) throws -> (table: [String], out: String) {   // each layer's line up to its error
            let (code, out, err) = try CLI.run(base + extra)
            #expect(code == 0, "\(err)")
            return (out.split(separator: "\n").filter { $0.contains(" err ") }.map { String($0[..<$0.range(of: " err ")!.lowerBound]) }, out)
        }
        let measured = try bonds(["--sites", "2", "--sensitivity", "1", "--sensitivity-file", file])
        #expect(measured.out.contains("sensitivity written to \(file)") && measured.table.count == 14, "\(measured.out)")
        let names = try GGUFCheckpoint.loadModel(URL(fileURLWithPath: original), device: CPUDevice(), purpose: .inference).config.linearLayers.map(\.name)
        let record = try SensitivityRecord.read(from: URL(fileURLWithPath: file), layers: names)
        #expect(record.whitened && record.batches == 1 && record.weights.count == 14)
        for (name, w) in record.weights {   // the file holds what the run printed
            #expect(measured.out.contains("  " + name) && measured.out.contains(String(format: "%.4f", w)), "\(name) \(w)")
        }
        #expect(Set(record.weights.values).count > 3, "\(record.weights)")
        let reused = try bonds(["--sites", "2", "--sensitivity-file", file])
        #expect(reused.out.contains("sensitivity read from \(file)") && !reused.out.contains("sensitivity at χ"), "\(reused.out)")
        #expect(reused.table == measured.table, "\(reused.table) vs \(measured.table)")
        // SVD spends the same weights, and they move its allocation from the unweighted one.
        let svd = try bonds(["--sites", "svd", "--sensitivity-file", file]), plain = try bonds(["--sites", "svd"])
        #expect(svd.out.contains("sensitivity read from") && svd.table.count == 14 && svd.table != plain.table, "\(svd.table) vs \(plain.table)")
        // The gradient estimate writes the same kind of file, marked as such, and SVD reads it.
        let fisherFile = dir.appendingPathComponent("fisher.json").path
        let fisher = try bonds(["--sites", "svd", "--sensitivity", "1", "--sensitivity-method", "fisher", "--sensitivity-file", fisherFile])
        #expect(fisher.out.contains("(Fisher along each truncation per unit relative output error², median 1, 1 batches") && fisher.table.count == 14, "\(fisher.out)")
        let estimated = try SensitivityRecord.read(from: URL(fileURLWithPath: fisherFile), layers: names)
        #expect(estimated.method == .fisher && record.measuredBy == .probe && estimated.weights.values.sorted()[7] == 1, "\(estimated)")
        #expect(try bonds(["--sites", "svd", "--sensitivity-file", fisherFile]).table == fisher.table)
        // Wrong files and wrong combinations are refused before any work.
        let malformed = dir.appendingPathComponent("bad.json").path, other = dir.appendingPathComponent("other.json").path
        try "{\"weights\": 3}".write(toFile: malformed, atomically: true, encoding: .utf8)
        var elsewhere = record
        elsewhere.weights["model.layers.7.mlp.up_proj"] = 1
        try elsewhere.write(to: URL(fileURLWithPath: other))
        let unknown = dir.appendingPathComponent("unknown.json").path   // a method this build does not know
        try String(contentsOfFile: fisherFile, encoding: .utf8).replacingOccurrences(of: "\"fisher\"", with: "\"hessian\"")
            .write(toFile: unknown, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("x.safetensors").path
        for (args, message) in [
            (base + ["--sensitivity-file", dir.appendingPathComponent("none.json").path], "does not exist: give --sensitivity K"),
            (base + ["--sensitivity-file", file, "--sensitivity", "2"], "was measured with 1 batches"),
            (["compress", "--checkpoint", original, "--linear-ratio", "2", "--sensitivity-file", file, "--data", text.path, "--out", out], "was measured with --calibration"),
            (base + ["--sensitivity-file", malformed], "is not a sensitivity file"),
            (base + ["--sensitivity-file", other], "was measured on another model"),
            (["compress", "--checkpoint", original, "--chi", "4", "--sensitivity-file", file, "--out", out], "go with --params, --ratio or --linear-ratio"),
            (base + ["--sensitivity", "1", "--sensitivity-method", "hessian"], "'hessian' is invalid for '--sensitivity-method <probe|fisher|kfac>'"),
            (base + ["--sensitivity-file", unknown], "is not a sensitivity file"),
            (base + ["--sensitivity-file", fisherFile, "--sensitivity-method", "probe"], "was measured by fisher, not --sensitivity-method probe"),
            (base + ["--sensitivity-method", "fisher"], "--sensitivity-method goes with --sensitivity K"),
        ] {
            let (code, _, err) = try CLI.run(args)
            #expect(code != 0 && err.contains(message), "\(args.suffix(4)): \(err)")
        }
    }

    @Test("compress --sensitivity-method kfac weighs the layers by K-FAC with no probes: written and read back like the others, spent by max and sum, for SVD and MPO layers; it asks for --calibration and a budget and refuses --sensitivity K")
    func kfacSensitivity() throws {
        let (dir, original, text) = try Self.workspace("kfac")
        let file = dir.appendingPathComponent("kfac.json").path, out = dir.appendingPathComponent("m.safetensors").path
        let base = ["compress", "--checkpoint", original, "--linear-ratio", "2", "--calibration", text.path,
                    "--calibration-tokens", "512", "--eval-context", "64", "--data", text.path, "--eval-batches", "0"]
        func run(_ name: String, _ extra: [String]) throws -> (table: [String], out: String) {   // each layer's line up to its error
            let (code, stdout, err) = try CLI.run(base + extra + ["--out", dir.appendingPathComponent(name).path])
            #expect(code == 0, "\(err)")
            return (stdout.split(separator: "\n").filter { $0.contains(" err ") }.map { String($0[..<$0.range(of: " err ")!.lowerBound]) }, stdout)
        }
        let plain = try run("plain.safetensors", ["--sites", "svd", "--objective", "sum"])
        let kfac = try run("kfac.safetensors", ["--sites", "svd", "--objective", "sum", "--sensitivity-method", "kfac", "--sensitivity-file", file])
        #expect(kfac.out.contains("sensitivity by K-FAC (½·T²·tr(G·W·M·Wᵀ) from 7 calibration windows, no probes; median 1 = ")
                && kfac.out.contains("sensitivity written to \(file)") && kfac.table.count == 14, "\(kfac.out)")
        let names = try GGUFCheckpoint.loadModel(URL(fileURLWithPath: original), device: CPUDevice(), purpose: .inference).config.linearLayers.map(\.name)
        let record = try SensitivityRecord.read(from: URL(fileURLWithPath: file), layers: names)
        #expect(record.method == .kfac && record.whitened && record.batches == 7 && record.weights.values.sorted()[7] == 1, "\(record)")
        #expect(record.weights.values.max()! > 3 * record.weights.values.min()!, "the layers differ: \(record.weights)")
        // Read back: the same bonds without the backward passes.
        let reused = try run("reused.safetensors", ["--sites", "svd", "--objective", "sum", "--sensitivity-file", file])
        #expect(reused.out.contains("sensitivity read from \(file) (measured by kfac on \(original) from 7 calibration windows,") && !reused.out.contains("output gradients") && reused.table == kfac.table,
                "\(reused.out)")
        // The weights move the bonds (whether to where the loss feels them is results/smollm2's to measure: this model is random, its loss ln V).
        #expect(kfac.table != plain.table)
        // Levelling the weighted errors (max) and MPO layers take them too.
        let levelled = try run("max.safetensors", ["--sites", "svd", "--sensitivity-file", file])
        let mpo = try run("mpo.safetensors", ["--sites", "2", "--sensitivity-file", file])
        #expect(levelled.table.count == 14 && levelled.table != kfac.table && mpo.table.count == 14 && mpo.out.contains("sensitivity read from"))
        // An untied head (its G would be V × V) takes the median weight, and the file still covers every layer.
        let untied = try Self.pretrained(dir, tiedHead: false).path, untiedFile = dir.appendingPathComponent("untied.json").path
        let (code, stdout, err) = try CLI.run(["compress", "--checkpoint", untied] + base.dropFirst(3) + ["--sites", "svd", "--sensitivity-method", "kfac",
                                              "--sensitivity-file", untiedFile, "--out", dir.appendingPathComponent("untied.safetensors").path])
        #expect(code == 0 && stdout.contains("sensitivity by K-FAC"), "\(err)")
        let layers = try GGUFCheckpoint.loadModel(URL(fileURLWithPath: untied), device: CPUDevice(), purpose: .inference).config.linearLayers
        let untiedRecord = try SensitivityRecord.read(from: URL(fileURLWithPath: untiedFile), layers: layers.map(\.name))
        #expect(layers.count == 15 && untiedRecord.weights[layers.last!.name] == 1 && layers.last!.role == .head, "\(untiedRecord.weights)")
        for (args, message) in [
            (["compress", "--checkpoint", original, "--linear-ratio", "2", "--sensitivity-method", "kfac"], "it needs --calibration and --params, --ratio or --linear-ratio"),
            (["compress", "--checkpoint", original, "--chi", "4", "--calibration", text.path, "--sensitivity-method", "kfac"], "it needs --calibration and --params"),
            (base + ["--sensitivity-method", "kfac", "--sensitivity", "1"], "drop --sensitivity 1"),
        ] {
            let (code, _, err) = try CLI.run(args + ["--out", out])
            #expect(code == 64 && err.contains(message), "\(args.suffix(4)): exit \(code): \(err)")
        }
    }

    func run(sites: String, device: String) throws {
        let on = ["--device", device]
        let (dir, original, text) = try Self.workspace("pipeline-\(sites)-\(device)")
        let compressed = dir.appendingPathComponent("r2.safetensors").path

        var (code, out, err) = try CLI.run(["compress", "--checkpoint", original, "--linear-ratio", "2", "--sites", sites,
                                            "--data", text.path, "--eval-batches", "1", "--eval-context", "32", "--out", compressed] + on)
        #expect(code == 0, "\(err)")
        #expect(out.contains("× fewer)") && out.contains("heal it with: mpo-train train --init") && out.contains("--lr 1e-4 ")
                && out.contains("--steps 400 ") && out.contains("400 steps of 1024 tokens read 409k tokens"), "the long one-schedule heal that healed furthest: \(out)")
        #expect(out.contains("--balance-cores") == (sites != "svd"), "MPO cores are healed in the balanced gauge, SVD factors as fitted: \(out)")
        let model = try ModelCheckpoint.loadModel(URL(fileURLWithPath: compressed), device: CPUDevice(), purpose: .inference)
        #expect(model.config.isMPO && model.config.linearLayers.allSatisfy {
            if case .mpo(let f, _) = model.config.linearKind($0.name, out: $0.out, in: $0.in) { return f.sites == (sites == "svd" ? 2 : 3) }
            return false
        })
        guard case .bpe(let t)? = try TextCodec.of(checkpoint: URL(fileURLWithPath: compressed)) else { Issue.record("no tokenizer"); return }
        #expect(t.tokens == Self.tokenizer.tokens && t.chatTemplate == Self.tokenizer.chatTemplate && t.eos == Self.tokenizer.eos)

        (code, out, err) = try CLI.run(["eval", "--checkpoint", compressed, "--data", text.path, "--split", "all", "--context", "64", "--json"] + on)
        #expect(code == 0, "\(err)")
        let before = try Self.json(out)
        // Weights stored in f16 for inference: the same text, nearly the same loss.
        (code, out, err) = try CLI.run(["eval", "--checkpoint", compressed, "--data", text.path, "--split", "all", "--context", "64",
                                        "--core-dtype", "f16", "--json"] + on)
        #expect(code == 0, "\(err)")
        let half = try Self.json(out)
        #expect(half["core_dtype"] as? String == "f16" && abs((half["loss"] as! Double) - (before["loss"] as! Double)) < 2e-3, "\(half)")
        // And in q8 (products in integers, activations rounded too): near, not equal.
        (code, out, err) = try CLI.run(["eval", "--checkpoint", compressed, "--data", text.path, "--split", "all", "--context", "64",
                                        "--core-dtype", "q8", "--json"] + on)
        #expect(code == 0, "\(err)")
        let q8 = try Self.json(out), dq = abs((q8["loss"] as! Double) - (before["loss"] as! Double))
        #expect(q8["core_dtype"] as? String == "q8" && dq > 0 && dq < 2e-2 * (before["loss"] as! Double), "\(q8)")
        let tokens = try #require(before["tokens"] as? Int)
        let raw = try String(contentsOf: text, encoding: .utf8)
        #expect(tokens == Self.tokenizer.encode(raw).count - 1)

        let run = dir.appendingPathComponent("heal").path
        (code, out, err) = try CLI.run(["train", "--init", compressed, "--teacher", original, "--data", text.path, "--lr", "3e-3",
                                        "--distill-weight", "0.5", "--distill-temperature", "1", "--batch", "2", "--context", "32",
                                        "--steps", "4", "--warmup", "1", "--eval-batches", "0", "--out", run] + on)
        #expect(code == 0, "\(err)")
        let healed = run + "/checkpoint.safetensors"
        (code, out, err) = try CLI.run(["eval", "--checkpoint", healed, "--data", text.path, "--split", "all", "--context", "64", "--json"] + on)
        #expect(code == 0, "\(err)")
        let after = try Self.json(out)
        #expect((after["loss"] as! Double) < (before["loss"] as! Double), "healing on the text lowers its loss: \(before["loss"]!) → \(after["loss"]!)")

        (code, out, err) = try CLI.run(["sample", "--checkpoint", healed, "--chat", "--prompt", "Hi", "--tokens", "4", "--temperature", "0"] + on)
        #expect(code == 0, "\(err)")

        let gguf = dir.appendingPathComponent("healed.f16.gguf").path, hf = dir.appendingPathComponent("healed-hf").path
        (code, out, err) = try CLI.run(["export", "--checkpoint", healed, "--dtype", "f16", "--out", gguf])
        #expect(code == 0, "\(err)")
        (code, out, err) = try CLI.run(["export", "--checkpoint", healed, "--format", "hf", "--out", hf])
        #expect(code == 0, "\(err)")
        // The exports are the healed model: the same loss (F16 within its rounding) and tokenizer.
        for (file, tol) in [(hf, 1e-5), (gguf, 2e-3)] {
            (code, out, err) = try CLI.run(["eval", "--checkpoint", file, "--data", text.path, "--split", "all", "--context", "64", "--json"])
            #expect(code == 0, "\(err)")
            let e = try Self.json(out)
            #expect(e["tokens"] as? Int == tokens && abs((e["loss"] as! Double) - (after["loss"] as! Double)) < tol, "\(file): \(e)")
        }
    }
}
