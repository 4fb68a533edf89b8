// StrategyTuner: how an inference-only model's MPO layers choose between rebuilding W (one
// GEMM, but the chain and a permute of W on every call: an inference model keeps no W) and the
// fused site-by-site contraction — FFTW style: the first call for a (shape, row bucket) times
// both on the real device and remembers the faster. What wins depends on the machine (cache
// sizes, the FP32 rate, a GPU's launch cost), so it is measured, not guessed.
//
// Training never asks: its choice is a fixed rule of the shapes (MPOLinear.trainingStrategy), so
// a run is reproducible bit for bit. An inference choice made by timing may differ between runs
// when both are close; the two agree to rounding (≤ 1e-5, tested), and `--strategy` fixes it.

import Dispatch

public final class StrategyTuner {
    struct Key: Hashable {
        var outFactors: [Int], inFactors: [Int], bonds: [Int], bucket: Int
    }

    /// A decision and the times it was made from (seconds per call), for `bench`.
    public struct Decision: Sendable {
        public var strategy: MPOStrategy
        public var rebuildSeconds: Double, siteSeconds: Double
    }

    let device: any ComputeDevice
    private(set) var decisions: [Key: Decision] = [:]

    init(device: any ComputeDevice) { self.device = device }

    /// Row counts share a decision within buckets 1, 2…4, 5…16, 17…64, 65…256, 257…1024, more.
    static func bucket(_ rows: Int) -> Int {
        var b = 1
        while b < rows && b < 4096 { b *= 4 }
        return b
    }

    /// The strategy for `layer` at `rows` rows (`forced` unless automatic), timing both the
    /// first time a (shape, bucket) is seen.
    func choose(for layer: MPOLinear, rows: Int, version: Int?, forced: MPOStrategy) throws -> MPOStrategy {
        if forced != .automatic { return forced }
        let key = Key(outFactors: layer.factorization.outFactors, inFactors: layer.factorization.inFactors,
                      bonds: layer.bonds, bucket: Self.bucket(rows))
        if let d = decisions[key] { return d.strategy }
        let n = min(Self.bucket(rows), 4096)
        let x = try device.makeBuffer(count: n * layer.inFeatures, label: "tuner x")
        let y = try device.makeBuffer(count: n * layer.outFeatures, label: "tuner y")
        func time(_ s: MPOStrategy) throws -> Double {
            var best = Double.infinity
            for i in 0..<4 {   // one warm-up, then the best of three
                let t0 = DispatchTime.now().uptimeNanoseconds
                try layer.inferenceForward(device, x: x.all, y: y.all, rows: n, accumulate: false, version: nil, strategy: s)
                try device.synchronize()
                if i > 0 { best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
            }
            return best
        }
        let rebuild = try time(.rebuild), site = try time(.siteBySite)
        let d = Decision(strategy: site < rebuild ? .siteBySite : .rebuild, rebuildSeconds: rebuild, siteSeconds: site)
        decisions[key] = d
        layer.workspace.weightOwner = nil   // the timing rebuilt W from scratch inputs of its own
        // The rebuild's W-sized buffers stay only while some shape uses the rebuild.
        if !decisions.values.contains(where: { $0.strategy == .rebuild }) { layer.workspace.release([.weight, .interleaved]) }
        return d.strategy
    }
}
