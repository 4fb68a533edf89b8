// `mpo-train bench`: headline speed figures in under a minute — one training step
// (forward + backward + AdamW) for dense and each χ, and forward-only tokens/s.

import ArgumentParser
import Foundation
import MPOKit
import OpCases

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a training step (dense and MPO at each χ) and the forward pass on a device.",
        discussion: """
        Reports the median over --repeats timed steps after one warm-up step. The environment's
        OPENBLAS_* settings are used as they are and printed with the results.

        Example: mpo-train bench --chi 4,8,16,32 --batch 32 --time 256
        """)

    @Option(help: "Comma-separated bond dimensions to time besides dense.") var chi = "4,8,16,32"
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Sequence length.") var time = 256
    @Option(help: "Timed repetitions per configuration.") var repeats = 5
    @Option(help: "MPO contraction: automatic, rebuild or site.") var strategy = "automatic"
    @Flag(help: "Also print where the time of one training step goes, per op (synchronises after every op).")
    var profile = false
    @Option(help: "Instead of whole steps, time the op cases (the perf table shared with the parity tests) whose name matches this text ('' = all).")
    var ops: String?
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        guard let strat = MPOStrategy(rawValue: strategy) else {
            throw ValidationError("--strategy must be automatic, rebuild or site (got '\(strategy)')")
        }
        guard batch >= 1, time >= 1, time <= 256, repeats >= 1 else {
            throw ValidationError("--batch and --repeats must be ≥ 1 and --time in 1…256")
        }
        let device = try deviceOptions.make()
        if let ops { return try benchOps(filter: ops, device: device) }
        let env = ProcessInfo.processInfo.environment
        print("device: \(device.name)")
        print("OPENBLAS_CORETYPE=\(env["OPENBLAS_CORETYPE"] ?? "(unset)") OPENBLAS_L2_SIZE=\(env["OPENBLAS_L2_SIZE"] ?? "(unset)")")
        print("B=\(batch) T=\(time), median of \(repeats) steps\n")
        print(pad("model", 10) + lpad("params", 10) + lpad("step ms", 10) + lpad("tok/s", 10) + lpad("fwd tok/s", 11) + "  strategies")
        var rng = SplitMix64(seed: 1)
        let n = batch * time
        let tokens = (0..<n).map { _ in Int32(rng.below(65)) }, targets = (0..<n).map { _ in Int32(rng.below(65)) }
        var denseMs = 0.0
        for c in [nil] + (try parseChiList(chi)).map(Optional.some) {
            let model = try PicoGPT(config: c.map { .mpo(chi: $0) } ?? .picoGPT, device: device)
            model.mpoStrategy = strat
            try model.initialize(seed: 1)
            let opt = try AdamW(model: model)
            func step() throws { try opt.trainStep(tokens: tokens, targets: targets, batch: batch, time: time, learningRate: 1e-4) }
            try step()
            var times: [Double] = []
            for _ in 0..<repeats { times.append(try seconds(step)) }
            var fwd: [Double] = []
            for _ in 0..<repeats {
                fwd.append(try seconds { try model.forward(tokens: tokens, targets: targets, batch: batch, time: time, needsGradients: false) })
            }
            let ms = median(times) * 1000, fms = median(fwd) * 1000
            if c == nil { denseMs = ms }
            let strategies = Dictionary(grouping: model.lastMPOStrategies, by: { $0.value.rawValue }).map { "\($0.key) \($0.value.count)" }
                .sorted().joined(separator: ", ")
            print(pad(c.map { "χ=\($0)" } ?? "dense", 10) + lpad("\(model.parameterCount)", 10) + lpad(String(format: "%.1f", ms), 10)
                  + lpad(String(format: "%.0f", Double(n) / ms * 1000), 10) + lpad(String(format: "%.0f", Double(n) / fms * 1000), 11)
                  + "  " + (strategies.isEmpty ? "-" : strategies)
                  + (c != nil ? String(format: "  (%.2f× dense)", ms / denseMs) : ""))
            if profile { try printProfile(config: c.map { .mpo(chi: $0) } ?? .picoGPT, device: device, strategy: strat,
                                          tokens: tokens, targets: targets) }
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
    func printProfile(config: ModelConfig, device: any ComputeDevice, strategy: MPOStrategy,
                      tokens: [Int32], targets: [Int32]) throws {
        let prof = ProfilingDevice(device)
        let model = try PicoGPT(config: config, device: prof)
        model.mpoStrategy = strategy
        try model.initialize(seed: 1)
        let opt = try AdamW(model: model)
        try opt.trainStep(tokens: tokens, targets: targets, batch: batch, time: time, learningRate: 1e-4)
        prof.reset()
        try opt.trainStep(tokens: tokens, targets: targets, batch: batch, time: time, learningRate: 1e-4)
        let total = prof.seconds.values.reduce(0, +)
        for (op, s) in prof.seconds.sorted(by: { $0.value > $1.value }) {
            let f = prof.flops[op] ?? 0
            print("    " + pad(op, 24) + lpad(String(format: "%.1f ms", s * 1000), 11) + lpad(String(format: "%.0f%%", 100 * s / total), 6)
                  + lpad("\(prof.calls[op] ?? 0) calls", 11) + (f > 0 ? lpad(String(format: "%.1f GFLOP/s", f / s / 1e9), 16) : ""))
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
