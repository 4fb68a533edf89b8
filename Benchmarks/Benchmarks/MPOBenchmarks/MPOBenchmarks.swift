// package-benchmark suite: every perf op case of the shared op table on each available
// device, one MPO layer under each contraction strategy at χ = 4…64, whole training steps
// (dense, χ = 4, 8, 16, 32), the forward pass and sampling. `mpo-train bench` prints the
// headline figures of the same measurements without this package.
//
// Filter with --filter, e.g.  swift package benchmark --filter 'step/.*'
// Env: MPO_BENCH_OPENCL=0 skips the OpenCL device even when one is found (PoCL is slow);
// whole-model cases run on the CPU device, and on OpenCL only when it is a GPU.

import Benchmark
import Foundation
import MPOKit
import MPOOpenCL
import OpCases

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .peakMemoryResident, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 1,
        maxDuration: .seconds(2),
        maxIterations: 200
    )
    let devices = availableDevices()
    for (tag, device, wholeModels) in devices {
        registerOpCases(tag: tag, device: device)
        guard wholeModels else { continue }
        registerMPOLayers(tag: tag, device: device)
        registerSteps(tag: tag, device: device)
        registerInference(tag: tag, device: device)
    }
}

/// (tag, device, whether whole-model cases run on it).
func availableDevices() -> [(String, any ComputeDevice, Bool)] {
    var list: [(String, any ComputeDevice, Bool)] = [("cpu", CPUDevice(), true)]
    if ProcessInfo.processInfo.environment["MPO_BENCH_OPENCL"] != "0", OpenCLDevice.isAvailable,
       let cl = try? OpenCLDevice() {
        list.append(("opencl", cl, cl.info.type.uppercased().contains("GPU")))
    }
    return list
}

/// Every perf case of the op table (ggml test-backend-ops style), named by its shape.
func registerOpCases(tag: String, device: any ComputeDevice) {
    for c in OpCases.perf {
        Benchmark("op/\(tag)/\(c.description)") { (benchmark: Benchmark, inst: OpInstance) in
            for _ in benchmark.scaledIterations {
                try inst.execute()
                try device.synchronize()
            }
        } setup: {
            try c.prepare(device, OpCases.defaultSeed)
        }
    }
}

/// One MPO layer (forward + backward, rebuilding W or re-permuting cores as a step does) for
/// each default layer shape, χ = 4…64 and both strategies, fed B·T = 8,192 rows.
func registerMPOLayers(tag: String, device: any ComputeDevice) {
    let shapes = [("attn 128x128", 128, 128), ("W1 512x128", 512, 128), ("W2 128x512", 128, 512), ("lm_head 65x128", 65, 128)]
    for (name, out, inF) in shapes {
        for chi in [4, 8, 16, 32, 64] {
            for strategy in [MPOStrategy.rebuild, .siteBySite] {
                Benchmark("mpo/\(tag)/\(name) chi=\(chi) \(strategy.rawValue)",
                          configuration: .init(maxDuration: .seconds(2), maxIterations: 50)) { (benchmark: Benchmark, probe: MPOLayerProbe) in
                    for _ in benchmark.scaledIterations { try probe.run() }
                } setup: {
                    try MPOLayerProbe(out: out, in: inF, chi: chi, rows: 8192, strategy: strategy, device: device)
                }
            }
        }
    }
}

/// Whole training steps at B = 32, T = 256: forward + backward + clip + AdamW.
func registerSteps(tag: String, device: any ComputeDevice) {
    let (tokens, targets) = randomBatch(rows: 32 * 256)
    for chi in [nil, 4, 8, 16, 32] as [Int?] {
        Benchmark("step/\(tag)/\(chi.map { "mpo-chi\($0)" } ?? "dense") B=32 T=256",
                  configuration: .init(maxDuration: .seconds(10), maxIterations: 10)) { (benchmark: Benchmark, opt: AdamW) in
            for _ in benchmark.scaledIterations {
                try opt.trainStep(tokens: tokens, targets: targets, batch: 32, time: 256, learningRate: 1e-4)
            }
        } setup: {
            let model = try Transformer(config: chi.map { .mpo(chi: $0) } ?? .picoGPT, device: device)
            try model.initialize(seed: 1)
            return try AdamW(model: model)
        }
    }
}

/// Forward-only at B = 8, T = 256 (2,048 tokens per iteration) and sampling 255 tokens at
/// batch 1 with the KV cache (the whole context, no re-prefill).
func registerInference(tag: String, device: any ComputeDevice) {
    let (tokens, _) = randomBatch(rows: 8 * 256)
    for chi in [nil, 8] as [Int?] {
        let name = chi.map { "mpo-chi\($0)" } ?? "dense"
        Benchmark("forward/\(tag)/\(name) B=8 T=256 (2048 tokens)",
                  configuration: .init(maxDuration: .seconds(3), maxIterations: 50)) { (benchmark: Benchmark, model: Transformer) in
            for _ in benchmark.scaledIterations {
                try model.forward(tokens: tokens, batch: 8, time: 256, needsGradients: false)
                try device.synchronize()
            }
        } setup: {
            let model = try Transformer(config: chi.map { .mpo(chi: $0) } ?? .picoGPT, device: device)
            try model.initialize(seed: 1)
            return model
        }
        Benchmark("sample/\(tag)/\(name) 255 tokens, KV cache",
                  configuration: .init(maxDuration: .seconds(3), maxIterations: 20)) { (benchmark: Benchmark, generator: Generator) in
            for _ in benchmark.scaledIterations {
                var sampler = Sampler(temperature: 0.8, topK: 40, seed: 7)
                blackHole(try generator.generate(prompt: [0], count: 255, sampler: &sampler))
            }
        } setup: {
            let model = try Transformer(config: chi.map { .mpo(chi: $0) } ?? .picoGPT, device: device)
            try model.initialize(seed: 1)
            return try Generator(model: model)
        }
    }
}

func randomBatch(rows: Int) -> ([Int32], [Int32]) {
    var rng = SplitMix64(seed: 1)
    return ((0..<rows).map { _ in Int32(rng.below(65)) }, (0..<rows).map { _ in Int32(rng.below(65)) })
}
