// `mpo-train bench --decode`: what compression buys at run time. For PicoGPT (dense, χ = 4, 8,
// 16) and a GPT-2-small shape (d_model 768, 12 layers, 12 heads, FFN 3072, context 1024; dense,
// χ = 8, 16, 32) with random weights, each in its own process (so its peak resident memory is
// its own): parameters, weight bytes, the bytes the device allocated, prefill tokens/s of a
// 32-token prompt, decode tokens/s of 256 tokens at batch 1 and 8, peak RSS after batch 1 and 8,
// and the contraction each MPO layer shape chose. Models are inference-only (no gradient or
// rebuild buffers); MPO layers of shapes docs/SPEC.md does not fix get the factorisation cheapest to run.

import ArgumentParser
import Foundation
import MPOKit

/// One model of the decode table: "picogpt:dense", "picogpt:8", "gpt2:16", "smollm2:dense", ….
/// smollm2 is SmolLM2-135M's shape (Llama: d 576, 30 layers, 9 heads, 3 key/value heads, FFN 1536,
/// vocabulary 49,152, θ 1e5, tied head; context 2048 here) with random weights.
struct DecodeModel: CustomStringConvertible {
    var shape: String
    var chi: Int?
    /// A real checkpoint ("file:PATH"): its weights, shape and factorisations.
    var path: String?
    /// How the weights are stored ("…@f16", "…@bf16", "…@q8"; f32 without a suffix).
    var dtype = WeightDType.f32

    init?(_ spec: String) {
        var text = spec
        if let at = spec.lastIndex(of: "@"), let d = WeightDType(rawValue: String(spec[spec.index(after: at)...])) {
            dtype = d; text = String(spec[..<at])
        }
        if text.hasPrefix("file:") {
            path = String(text.dropFirst(5)); shape = "file"; chi = nil
            return
        }
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count == 2, ["picogpt", "gpt2", "smollm2"].contains(parts[0]) else { return nil }
        shape = parts[0]
        if parts[1] == "dense" { chi = nil } else if let c = Int(parts[1]), c >= 1 { chi = c } else { return nil }
    }

    private var suffix: String { dtype == .f32 ? "" : "@\(dtype.rawValue)" }
    var description: String { (path.map { "file:\($0)" } ?? "\(shape):\(chi.map(String.init) ?? "dense")") + suffix }
    var label: String { path.map { URL(fileURLWithPath: $0).lastPathComponent + suffix } ?? description }

    var config: ModelConfig {
        var c: ModelConfig
        switch shape {
        case "gpt2": c = ModelConfig(vocabularySize: 65, channels: 768, heads: 12, layers: 12, context: 1024, ffn: 3072)
        case "smollm2": c = Self.smolLM2
        default: c = ModelConfig.picoGPT
        }
        if let chi { c.chi = chi; c = c.choosingFactorizations(chi: chi) }
        return c
    }

    static let table = ["picogpt:dense", "picogpt:4", "picogpt:8", "picogpt:16", "gpt2:dense", "gpt2:8", "gpt2:16", "gpt2:32"]

    static let smolLM2 = ModelConfig(vocabularySize: 49_152, channels: 576, heads: 9, layers: 30, context: 2048, ffn: 1536,
                                     architecture: .llama(theta: 100_000, normEpsilon: 1e-5, kvHeads: 3, tiedHead: true))
}

extension Bench {
    /// Peak resident set size of this process so far, in bytes (VmHWM).
    static func peakRSS() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb * 1024
    }

    /// The model of one decode row: the checkpoint's, or the shape's with random weights.
    func decodeModel(_ spec: DecodeModel, device: any ComputeDevice) throws -> Transformer {
        let model: Transformer
        if let path = spec.path {
            model = try loadCheckpoint(path, device: device, hints: ShapeHints(), purpose: .inference, weightDType: spec.dtype)
        } else {
            model = try Transformer(config: spec.config, device: device, purpose: .inference, weightDType: spec.dtype)
            try model.initialize(seed: 1)
        }
        model.mpoStrategy = strategy
        model.usesStackedFactors = !layerByLayer
        return model
    }

    /// One configuration, in this process: prints one JSON object.
    func decodeOne(_ spec: DecodeModel, device: any ComputeDevice) throws {
        let model = try decodeModel(spec, device: device)
        let weightsAllocated = device.allocatedBytes
        // Decoding stays inside the context (PicoGPT: 256 positions; docs/SPEC.md §7 recomputes the cropped
        // window past it, a different workload).
        let cfg = model.config
        guard promptTokens >= 1, promptTokens < cfg.context else {
            throw ValidationError("--prompt-tokens must be in 1…\(cfg.context - 1) for \(spec)")
        }
        let decodeTokens = min(self.decodeTokens, cfg.context - promptTokens)
        // Weights read per decoded token: all but the embedding table, of which one row is read —
        // unless the head is tied to it, then the whole table once (as the head).
        let embedding = model.weightBytes(where: { $0.role.isEmbedding })
        let bytesPerToken = model.weightBytes() - (cfg.architecture.tiedHead ? 0 : embedding - embedding / cfg.vocabularySize)
        var rng = SplitMix64(seed: 5)
        let prompt = (0..<promptTokens).map { _ in Int32(rng.below(65)) }
        var result: [String: Any] = ["what": "decode", "model": spec.description, "shape": spec.shape, "chi": spec.chi ?? 0,
                                     "parameters": model.parameterCount, "weight_bytes": model.weightBytes(),
                                     "core_dtype": model.weightDType.rawValue, "stacked_factors": model.hasStackedFactors && !layerByLayer,
                                     "weight_bytes_per_token": bytesPerToken,
                                     "device": device.name, "prompt_tokens": promptTokens, "decode_tokens": decodeTokens]
        for batch in [1, 8] {
            let gen = try Generator(model: model, batch: batch, capacity: promptTokens + decodeTokens)
            let prompts = [[Int32]](repeating: prompt, count: batch)
            _ = try gen.feed(prompts)                       // warm-up: the tuner times its choices here
            for _ in 0..<2 { _ = try gen.feed((0..<batch).map { [Int32($0)] }) }
            gen.reset()
            let prefill = try seconds { _ = try gen.feed(prompts) }
            var next = (0..<batch).map { Int32($0 % 65) }
            let decode = try seconds {
                for _ in 0..<decodeTokens {
                    let logits = try gen.feed(next.map { [$0] })
                    next = logits.map { row in Int32(row.indices.max { row[$0] < row[$1] }!) }
                }
            }
            result["prefill_tokens_per_second_b\(batch)"] = Double(batch * promptTokens) / prefill
            result["decode_tokens_per_second_b\(batch)"] = Double(batch * decodeTokens) / decode
            result["allocated_bytes_b\(batch)"] = device.allocatedBytes
            result["peak_rss_b\(batch)"] = Self.peakRSS()
        }
        result["allocated_bytes_model"] = weightsAllocated
        let choices = model.strategyDecisions.map(\.decision.strategy.rawValue)
        result["strategies"] = Dictionary(grouping: choices, by: { $0 }).map { "\($0.key) \($0.value.count)" }.sorted().joined(separator: ", ")
        result["decisions"] = model.strategyDecisions.map {
            String(format: "%@: %@ (rebuild %.1f µs, site %.1f µs)", $0.description, $0.decision.strategy.rawValue,
                   $0.decision.rebuildSeconds * 1e6, $0.decision.siteSeconds * 1e6)
        }
        print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        if profile { try decodeProfile(spec, device: device, prompt: prompt) }
    }

    /// Where one decoded token's time goes (batch 1, after the prompt and a warm-up), per op, on
    /// stderr: the same model on a ProfilingDevice (it synchronises after every op).
    func decodeProfile(_ spec: DecodeModel, device: any ComputeDevice, prompt: [Int32]) throws {
        let prof = ProfilingDevice(device)
        let model = try decodeModel(spec, device: prof)
        let tokens = 16
        let gen = try Generator(model: model, batch: 1, capacity: prompt.count + 8 + tokens)
        _ = try gen.feed([prompt])
        for t in 0..<8 { _ = try gen.feed([[Int32(t)]]) }   // the tuner decides here
        prof.reset()
        for t in 0..<tokens { _ = try gen.feed([[Int32(t)]]) }
        let total = prof.profile.values.reduce(0) { $0 + $1.seconds }
        printError("\(spec): one decoded token (batch 1, mean of \(tokens)) \(String(format: "%.1f µs", total / Double(tokens) * 1e6)) in ops:")
        for line in profileLines(prof, repeats: tokens, microseconds: true, skipIdle: true) { printError(line) }
    }

    /// The whole table: one child process per model, side by side in time (one after another).
    func decodeTable() throws {
        let list = checkpoint.map { $0.split(separator: ",").map { "file:\($0)" }.joined(separator: ",") } ?? decodeModels
        let specs = try list.split(separator: ",").map { s -> DecodeModel in
            guard let m = DecodeModel(String(s)) else { throw ValidationError("--decode-models: '\(s)' is not shape:dense|χ (shapes picogpt, gpt2, smollm2), optionally @f16, @bf16 or @q8") }
            return m
        }
        let me = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0])
        var rows: [[String: Any]] = []
        if !json {
            let env = ProcessInfo.processInfo.environment
            print("decode: \(promptTokens)-token prompt, then \(decodeTokens) tokens (at most to the end of the model's context); \(checkpoint == nil ? "random weights" : "ratios against the first checkpoint"); inference-only models; \(deviceOptions.threads.map { "\($0) threads; " } ?? "")OPENBLAS_CORETYPE=\(env["OPENBLAS_CORETYPE"] ?? "(unset)")")
            let w = specs.map { $0.label.count }.max().map { max($0 + 1, 14) } ?? 14
            print(pad("model", w) + lpad("params", 11) + lpad("weights MB", 11) + lpad("prefill tok/s", 14) + lpad("decode b=1", 11)
                  + lpad("vs dense", 9) + lpad("decode b=8", 11) + lpad("vs dense", 9) + lpad("RSS MB b=1", 11) + lpad("vs dense", 9)
                  + "  strategies")
        }
        var dense: [String: [String: Any]] = [:]
        for spec in specs {
            let p = Process()
            p.executableURL = me
            var args = ["bench", "--decode-one", spec.description, "--prompt-tokens", "\(promptTokens)",
                        "--decode-tokens", "\(decodeTokens)", "--device", deviceOptions.device.description, "--strategy", strategy.rawValue]
            if let t = deviceOptions.threads { args += ["--threads", "\(t)"] }
            if profile { args.append("--profile") }
            if layerByLayer { args.append("--layer-by-layer") }
            p.arguments = args
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0, let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
                  let row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw ModelError("bench --decode-one \(spec) failed (exit \(p.terminationStatus))")
            }
            if spec.chi == nil && dense[spec.shape] == nil { dense[spec.shape] = row }
            rows.append(row)
            if json { print(line); continue }
            func d(_ k: String) -> Double { (row[k] as? Double) ?? Double(row[k] as? Int ?? 0) }
            func ratio(_ k: String) -> String {
                guard let base = dense[spec.shape], let b = (base[k] as? Double) ?? (base[k] as? Int).map(Double.init), b > 0 else { return "" }
                return String(format: "%.2f×", d(k) / b)
            }
            let w = specs.map { $0.label.count }.max().map { max($0 + 1, 14) } ?? 14
            print(pad(spec.label, w) + lpad("\(row["parameters"] as? Int ?? 0)", 11)
                  + lpad(String(format: "%.1f", d("weight_bytes") / 1e6), 11) + lpad(String(format: "%.0f", d("prefill_tokens_per_second_b1")), 14)
                  + lpad(String(format: "%.0f", d("decode_tokens_per_second_b1")), 11) + lpad(ratio("decode_tokens_per_second_b1"), 9)
                  + lpad(String(format: "%.0f", d("decode_tokens_per_second_b8")), 11) + lpad(ratio("decode_tokens_per_second_b8"), 9)
                  + lpad(String(format: "%.0f", d("peak_rss_b1") / 1e6), 11) + lpad(ratio("peak_rss_b1"), 9)
                  + "  " + (row["strategies"] as? String ?? ""))
        }
    }
}
