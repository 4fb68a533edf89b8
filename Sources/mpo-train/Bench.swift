// `mpo-train bench`: headline speed figures in under a minute — one training step
// (forward + backward + AdamW) for dense and each χ, and forward-only tokens/s.

import ArgumentParser
import CBLAS
import CKernels
import Foundation
import MPOKit
import OpCases

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a training step (dense and MPO at each χ), the forward pass and sampling on a device.",
        discussion: """
        Reports the median over --repeats timed steps after one warm-up step, the FLOPs of one
        step (counted op by op), the rate they run at, and that rate as a share of the device's
        sgemm rate on the model's largest GEMM (measured first). Sampling times --sample-tokens
        tokens at batch 1 with the KV cache, and with a full forward per token (what the original
        PyTorch code does). The environment's OPENBLAS_* settings are used as they are and
        printed with the results.

        Under mpirun (a build with --traits MPI), the training steps run data-parallel: --batch is
        the global batch, and each step reports the bytes every rank all-reduced and the time spent
        in the all-reduces.

        Example: mpo-train bench --chi 4,8,16,32 --batch 32 --time 256
                 mpirun -np 2 mpo-train bench --chi 8 --threads 1 --json
        """)

    @Option(help: "Comma-separated bond dimensions to time besides dense ('' for none).") var chi = "4,8,16,32"
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Sequence length.") var time = 256
    @Option(help: "Timed repetitions per configuration.") var repeats = 5
    @Option(help: "MPO contraction: automatic, rebuild or site.") var strategy = MPOStrategy.automatic
    @Option(name: .customLong("sample-tokens"), help: "Tokens to sample at batch 1 with the dense model (0 = skip).") var sampleTokens = 500
    @Flag(help: "Print one JSON object per measurement instead of the table (for Benchmarks/peer/compare.sh).")
    var json = false
    @Flag(help: "Also print where the time of one training step goes, per op (synchronises after every op); with --decode, of one decoded token per model (on stderr).")
    var profile = false
    @Option(help: "Instead of whole steps, time the op cases (the perf table shared with the parity tests) whose name matches this text ('' = all).")
    var ops: String?
    @Flag(help: "Instead of training steps: the decode table — PicoGPT and a GPT-2-small shape, dense and MPO, inference-only: decode tokens/s at batch 1 and 8, prefill, weight bytes, peak RSS (one process per model).")
    var decode = false
    @Option(help: "Models of --decode, as shape:dense|χ with shapes picogpt, gpt2 and smollm2.") var decodeModels = DecodeModel.table.joined(separator: ",")
    @Option(help: "With --decode: time these checkpoints (comma-separated files: GGUF, Hugging Face directories, mpo-train checkpoints) instead of --decode-models; ratios are against the first.")
    var checkpoint: String?
    @Flag(name: .customLong("layer-by-layer"), help: "With --decode: run each block's q/k/v and gate/up one by one instead of one product of their stacked V factors (packed low-rank layers; to measure what stacking wins).")
    var layerByLayer = false
    @Option(help: "Prompt tokens of --decode (prefilled in one forward).") var promptTokens = 32
    @Option(help: "Tokens decoded after the prompt (--decode).") var decodeTokens = 256
    @Option(help: ArgumentHelp("Run one --decode model in this process (used by --decode).", visibility: .hidden)) var decodeOne: String?
    @Option(help: "Model shape of the training steps: picogpt, gpt2 (d_model 768, 12 layers, 12 heads, FFN 3072, context 1024) or smollm2 (SmolLM2-135M's Llama shape: d 576, 30 layers, 9 heads, 3 kv heads, FFN 1536, vocabulary 49,152).")
    var shape = "picogpt"
    @Option(help: "The model family of the training steps, as its shape: picogpt, gpt2 (GPT-2 small) or llama (SmolLM2-135M); overrides --shape.")
    var arch: ModelFamily?
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        let ranks = try Ranks()
        try ranks.run { try bench(ranks) }
    }

    func bench(_ ranks: Ranks) throws {
        let strat = strategy
        let dp = ranks.collective.map(DataParallel.init)
        if dp != nil, ops != nil || decode || decodeOne != nil {
            throw ValidationError("under mpirun, bench times data-parallel training steps only; run --ops and --decode as one process")
        }
        if let dp, batch < dp.size { throw ValidationError("--batch \(batch) is smaller than the \(dp.size) ranks") }
        let print: (String) -> Void = ranks.isRoot ? { Swift.print($0) } : { _ in }
        let shape = arch.map { ["picogpt": "picogpt", "gpt2": "gpt2", "llama": "smollm2"][$0.rawValue]! } ?? self.shape
        guard let denseShape = DecodeModel("\(shape):dense") else { throw ValidationError("--shape: '\(shape)' is not picogpt, gpt2 or smollm2") }
        let context = denseShape.config.context
        guard batch >= 1, time >= 1, time <= context, repeats >= 1, sampleTokens >= 0 else {
            throw ValidationError("--batch and --repeats must be ≥ 1, --time in 1…\(context) and --sample-tokens ≥ 0")
        }
        /// The training-step model: PicoGPT with docs/SPEC.md's factorisations, or the GPT-2-small shape
        /// with the chosen ones (as in --decode).
        func stepConfig(_ chi: Int?) -> ModelConfig {
            guard let chi else { return denseShape.config }
            return shape == "picogpt" ? .mpo(chi: chi) : DecodeModel("\(shape):\(chi)")!.config
        }
        let chis = chi.trimmingCharacters(in: .whitespaces).isEmpty ? [] : try parseChiList(chi)
        let device = try deviceOptions.make(rankOnNode: ranks.rankOnNode)
        if let ops { return try benchOps(filter: ops, device: device) }
        if let one = decodeOne {
            guard let spec = DecodeModel(one) else { throw ValidationError("--decode-one: '\(one)' is not shape:dense|χ") }
            return try decodeOne(spec, device: device)
        }
        if checkpoint != nil && !decode { throw ValidationError("--checkpoint goes with --decode (bench times a checkpoint's decoding)") }
        if decode { return try decodeTable() }
        let env = ProcessInfo.processInfo.environment
        let sgemm = try sgemmRate(device, n: denseShape.config.ffn, k: denseShape.config.channels)
        let corename = String(cString: mpo_openblas_corename())
        let simd = String(cString: mpo_simd_name(mpo_simd_active()))
        let common: [String: Any] = ["peer": "mpo-train", "device": device.name, "openblas_kernels": corename, "simd": simd,
                                     "openblas_coretype": env["OPENBLAS_CORETYPE"] ?? "", "openblas_l2_size": env["OPENBLAS_L2_SIZE"] ?? ""]
        func emit(_ fields: [String: Any]) {
            guard json, ranks.isRoot, let data = try? JSONSerialization.data(withJSONObject: common.merging(fields) { $1 }, options: [.sortedKeys]) else { return }
            print(String(decoding: data, as: UTF8.self))
        }
        emit(["what": "sgemm", "gflops": sgemm])
        if !json {
            print("device: \(device.name)" + (shape == "picogpt" ? "" : "; shape \(shape)"))
            print("OPENBLAS_CORETYPE=\(env["OPENBLAS_CORETYPE"] ?? "(unset)") OPENBLAS_L2_SIZE=\(env["OPENBLAS_L2_SIZE"] ?? "(unset)"); OpenBLAS kernels: \(corename); our kernels: \(simd)\(mpo_cpu_has_avx512() != 0 ? " (the CPU has AVX-512)" : "")")
            print(String(format: "sgemm (NT m=%d n=%d k=%d, the FFN's first GEMM): %.1f GFLOP/s", batch * time,
                         denseShape.config.ffn, denseShape.config.channels, sgemm))
            print("B=\(batch) T=\(time), median of \(repeats) steps; forward-only at B=\(min(8, batch))\n")
            print(pad("model", 10) + lpad("params", 10) + lpad("step ms", 10) + lpad("tok/s", 9) + lpad("GFLOP", 7)
                  + lpad("GFLOP/s", 9) + lpad("sgemm%", 8) + lpad("fwd tok/s", 11) + "  strategies")
        }
        var rng = SplitMix64(seed: 1)
        let n = batch * time, fwdBatch = min(8, batch)
        let tokens = (0..<n).map { _ in Int32(rng.below(65)) }, targets = (0..<n).map { _ in Int32(rng.below(65)) }
        var denseMs = 0.0
        for c in [nil] + chis.map(Optional.some) {
            let config = stepConfig(c)
            let model = try Transformer(config: config, device: device)
            model.mpoStrategy = strat
            try model.initialize(seed: 1)
            let opt = try AdamW(model: model)
            func step() throws {
                if let dp {
                    try dp.trainStep(opt, tokens: tokens, targets: targets, batch: batch, time: time, learningRate: 1e-4)
                } else {
                    try opt.trainStep(tokens: tokens, targets: targets, batch: batch, time: time, learningRate: 1e-4)
                }
            }
            try step()
            var times: [Double] = [], comm: [Double] = []
            for _ in 0..<repeats {
                times.append(try seconds(step))
                if let dp { comm.append(dp.last.seconds) }
            }
            let fwdTokens = Array(tokens[0..<(fwdBatch * time)])
            var fwd: [Double] = []
            for _ in 0..<repeats {
                fwd.append(try seconds { try model.forward(tokens: fwdTokens, batch: fwdBatch, time: time, needsGradients: false); try device.synchronize() })
            }
            let ms = median(times) * 1000, fms = median(fwd) * 1000
            let before = device.queueCounters
            try step()
            let perStep = device.queueCounters.flatMap { after in before.map { after - $0 } }
            let prof = try profiledStep(config: config, device: device, strategy: strat, tokens: tokens, targets: targets)
            let gflop = prof.profile.values.reduce(0) { $0 + $1.flops } / 1e9
            let counts = perStep ?? prof.counters   // the device's own counters, or the op calls of the profiled step
            if c == nil { denseMs = ms }
            let name = c.map { "mpo-chi\($0)" } ?? "dense"
            let strategies = Dictionary(grouping: model.lastMPOStrategies, by: { $0.value.rawValue }).map { "\($0.key) \($0.value.count)" }
                .sorted().joined(separator: ", ")
            var fields: [String: Any] = ["what": "train_step", "model": name, "shape": shape, "parameters": model.parameterCount, "batch": batch,
                                         "time": time, "ms": ms, "tokens_per_second": Double(n) / ms * 1000, "gflop": gflop,
                                         "strategies": strategies, "launches": counts.launches, "syncs": counts.hostWaits]
            if let dp {   // the profiled step ran on this rank alone, so gflop is the whole batch's
                fields["ranks"] = dp.size
                fields["allreduce_bytes"] = dp.last.bytes
                fields["communication_ms"] = median(comm) * 1000
            }
            emit(fields)
            emit(["what": "forward", "model": name, "batch": fwdBatch, "time": time, "ms": fms,
                  "tokens_per_second": Double(fwdBatch * time) / fms * 1000])
            if !json {
                print(pad(c.map { "χ=\($0)" } ?? "dense", 10) + lpad("\(model.parameterCount)", 10) + lpad(String(format: "%.1f", ms), 10)
                      + lpad(String(format: "%.0f", Double(n) / ms * 1000), 9) + lpad(String(format: "%.1f", gflop), 7)
                      + lpad(String(format: "%.1f", gflop / ms * 1000), 9) + lpad(String(format: "%.0f%%", 100 * gflop / ms * 1000 / sgemm), 8)
                      + lpad(String(format: "%.0f", Double(fwdBatch * time) / fms * 1000), 11)
                      + "  " + (strategies.isEmpty ? "-" : strategies)
                      + (c != nil ? String(format: "  (%.2f× dense)", ms / denseMs) : "")
                      + "  [\(counts.launches) \(perStep == nil ? "ops" : "kernels"), \(counts.hostWaits) host wait\(counts.hostWaits == 1 ? "" : "s") per step]"
                      + (dp.map { String(format: "  all-reduce %.2f MB over %d ranks in %.2f ms", Double($0.last.bytes) / 1e6, $0.size, median(comm) * 1000) } ?? ""))
            }
            if profile && !json { printProfile(prof) }
            if c == nil && sampleTokens > 0 && dp == nil {
                let (cached, full) = try samplingRates(model)
                emit(["what": "sample", "model": name, "tokens": sampleTokens, "tokens_per_second": cached, "kv_cache": true])
                emit(["what": "sample", "model": name, "tokens": sampleTokens, "tokens_per_second": full, "kv_cache": false])
                if !json {
                    print(String(format: "           sampling %d tokens at batch 1: %.0f tokens/s with the KV cache, %.0f with a full forward per token (%.1f×)",
                                 sampleTokens, cached, full, cached / full))
                }
            }
        }
    }
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
}

func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }

extension Bench {
    /// sgemm GFLOP/s on the FFN's first GEMM (rows = B·T), the rate the whole step is compared with.
    /// GFLOP/s of the model's first FFN GEMM (rows B·T, n = FFN, k = d_model).
    func sgemmRate(_ device: any ComputeDevice, n: Int = 512, k: Int = 128) throws -> Double {
        let m = batch * time, shape = GemmShape(m: m, n: n, k: k, transposeB: true)
        let a = try device.makeBuffer(count: m * k, label: "bench a"), b = try device.makeBuffer(count: n * k, label: "bench b")
        let c = try device.makeBuffer(count: m * n, label: "bench c")
        var rng = SplitMix64(seed: 3)
        try device.write((0..<(m * k)).map { _ in Float(rng.uniform()) - 0.5 }, to: a.all)
        try device.write((0..<(n * k)).map { _ in Float(rng.uniform()) - 0.5 }, to: b.all)
        func once() throws { device.gemm(shape, a: a.all, b: b.all, c: c.all); try device.synchronize() }
        try once()
        var times: [Double] = []
        for _ in 0..<max(5, repeats) { times.append(try seconds(once)) }
        return shape.flops / median(times) / 1e9
    }

    /// One training step (after a warm-up step) through the profiling wrapper: time, calls and
    /// FLOPs per op.
    func profiledStep(config: ModelConfig, device: any ComputeDevice, strategy: MPOStrategy,
                      tokens: [Int32], targets: [Int32]) throws -> ProfilingDevice {
        let prof = ProfilingDevice(device)
        let model = try Transformer(config: config, device: prof)
        model.mpoStrategy = strategy
        try model.initialize(seed: 1)
        let opt = try AdamW(model: model)
        try opt.trainStep(tokens: tokens, targets: targets, batch: batch, time: time, learningRate: 1e-4)
        prof.reset()
        try opt.trainStep(tokens: tokens, targets: targets, batch: batch, time: time, learningRate: 1e-4)
        return prof
    }

    /// Tokens/s sampling `sampleTokens` tokens at batch 1: with the KV cache, and with a full
    /// forward over the (cropped) context for every new token.
    func samplingRates(_ model: Transformer) throws -> (cached: Double, full: Double) {
        let gen = try Generator(model: model)
        var sampler = Sampler(temperature: 0.8, topK: 40, seed: 7)
        let cached = try seconds { _ = try gen.generate(prompt: [0], count: sampleTokens, sampler: &sampler) }
        sampler = Sampler(temperature: 0.8, topK: 40, seed: 7)
        var context: [Int32] = [0]
        let full = try seconds {
            for _ in 0..<sampleTokens {
                let window = Array(context.suffix(model.config.context))
                try model.forward(tokens: window, batch: 1, time: window.count, needsGradients: false)
                let v = model.config.vocabularySize
                let logits = try model.logits()
                context.append(Int32(sampler.sample(Array(logits[((window.count - 1) * v)...]))))
            }
        }
        return (Double(sampleTokens) / cached, Double(sampleTokens) / full)
    }

    func printProfile(_ prof: ProfilingDevice) { for line in profileLines(prof) { print(line) } }

    /// One line per op, slowest first: time per `repeats` (in ms, or µs), share, calls per
    /// `repeats`, GFLOP/s where FLOPs are counted; `skipIdle` leaves out ops that took no time.
    func profileLines(_ prof: ProfilingDevice, repeats: Int = 1, microseconds: Bool = false, skipIdle: Bool = false) -> [String] {
        let total = prof.profile.values.reduce(0) { $0 + $1.seconds }, n = Double(repeats)
        return prof.profile.sorted(by: { $0.value.seconds > $1.value.seconds }).filter { !skipIdle || $0.value.seconds > 0 }.map { op, p in
            let s = p.seconds
            let time = microseconds ? String(format: "%.1f µs", s / n * 1e6) : String(format: "%.1f ms", s / n * 1000)
            return "    " + pad(op.rawValue, 24) + lpad(time, 11) + lpad(String(format: "%.0f%%", 100 * s / total), 6)
                + lpad("\(p.calls / repeats) calls", 11) + (p.flops > 0 ? lpad(String(format: "%.1f GFLOP/s", p.flops / s / 1e9), 16) : "")
        }
    }
}

extension Bench {
    /// Times every perf op case matching `filter`: one warm-up, then repeats until ≥ 0.3 s.
    func benchOps(filter: String, device: any ComputeDevice) throws {
        print("device: \(device.name)")
        print(pad("op case", 64) + lpad("µs/call", 11) + lpad("GFLOP/s", 9) + lpad("GB/s", 8))
        for c in OpCases.perf where filter.isEmpty || c.description.contains(filter) {
            let inst = try c.prepare(device, OpCases.defaultSeed)
            try inst.execute(); try device.synchronize()
            var n = 0
            let start = DispatchTime.now().uptimeNanoseconds
            var t = 0.0
            repeat {
                try inst.execute(); n += 1
                try device.synchronize()
                t = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            } while t < 0.3 && n < 1000
            let per = t / Double(n)
            print(pad(c.description, 64) + lpad(String(format: "%.1f", per * 1e6), 11)
                  + lpad(c.flops > 0 ? String(format: "%.1f", c.flops / per / 1e9) : "-", 9)
                  + lpad(c.bytes > 0 ? String(format: "%.1f", c.bytes / per / 1e9) : "-", 8))
        }
    }
}
