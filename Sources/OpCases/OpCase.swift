// The op-case table's vocabulary (ggml test-backend-ops style): `Op`, one `OpCase` per row of
// the table, the `OpInstance` a case prepares on a device, and the `Comparison` of an output
// against a reference.
//
// A case is pure data plus closures: from a seed it generates host inputs (SplitMix64, per-input
// ranges), uploads them into guarded device buffers, runs one device op and downloads the named
// outputs (including saved caches and every gradient). `reference` runs the same seeded inputs
// through `NaiveReference` in Double. The same cases feed the CPU reference tests, the
// OpenCL-vs-CPU parity suite and the benchmarks (via `prepare` → `execute` in a loop).
//
// Not here: the table itself (OpCases.swift), the builders (OpCases+*.swift), the guard
// machinery (Workspace.swift), the naive loops (NaiveReference*.swift).

import MPOKit

/// Every primitive of `ComputeDevice` that the table covers (one entry per device op).
public enum Op: String, CaseIterable, Sendable {
    case gemm, permute, fill, copy, addBias, biasBackward, addBiasReLU, reluBackwardBias, add, accumulate, scale,
         reluForward, reluBackward,
         embeddingForward, embeddingBackward, positionBackward, layerNormForward, layerNormBackward,
         rmsNormForward, rmsNormBackward, rotaryForward, rotaryBackward, swigluForward, swigluBackward, geluForward, geluBackward,
         attentionForward, attentionBackward, crossEntropy, distillation, squaredDistance, mpoForward, sumOfSquares, stepScalars, adamW,
         gemmPacked, embeddingForwardPacked
}

/// One row of the table: an op with fixed shapes and parameters.
public struct OpCase: Sendable, CustomStringConvertible {
    public let op: Op
    /// Printable parameters, e.g. "B=2 T=7 C=13 H=1".
    public let vars: String
    /// Largest allowed normalised MSE per output (default 1e-7, as in ggml).
    public let maxNMSE: Double
    /// Floating-point operations of one call (0 where meaningless), for GFLOP/s.
    public let flops: Double
    /// Bytes read + written by one call (approximate), for GB/s.
    public let bytes: Double
    /// Generates the seeded inputs, uploads them into guarded buffers on the device and runs
    /// any setup (e.g. the forward op feeding a backward case). The op itself runs on `execute`.
    public let prepare: @Sendable (any ComputeDevice, UInt64) throws -> OpInstance
    /// prepare + one execute + outputs: seeded inputs → named outputs (downloaded), including
    /// saved caches (mean/rstd, lse) and every gradient. Throws if a guard region was touched
    /// or a read-only input was modified.
    public let run: @Sendable (any ComputeDevice, UInt64) throws -> [String: [Float]]
    /// The same seeded inputs through `NaiveReference` (Double); same keys as `run`'s result.
    public let reference: @Sendable (UInt64) -> [String: [Double]]

    public init(op: Op, vars: String, maxNMSE: Double = 1e-7, flops: Double = 0, bytes: Double = 0,
                prepare: @escaping @Sendable (any ComputeDevice, UInt64) throws -> OpInstance,
                reference: @escaping @Sendable (UInt64) -> [String: [Double]]) {
        self.op = op; self.vars = vars; self.maxNMSE = maxNMSE; self.flops = flops; self.bytes = bytes
        self.prepare = prepare
        self.reference = reference
        self.run = { device, seed in
            let instance = try prepare(device, seed)
            try instance.execute()
            return try instance.outputs()
        }
    }

    public var description: String { "\(op.rawValue)(\(vars))" }
}

/// A case prepared on one device: inputs uploaded, outputs pre-filled, guards in place.
/// `execute` enqueues the op once (call it repeatedly to benchmark); `outputs` synchronises,
/// checks every guard region and read-only input, and downloads the outputs.
public final class OpInstance {
    public let device: any ComputeDevice
    /// Names of the outputs `outputs()` returns.
    public var outputNames: [String] { workspace.outputNames + scalarNames }
    private let workspace: Workspace
    private let body: () throws -> Void
    private let scalarNames: [String]
    private let scalars: () -> [String: [Float]]

    init(workspace: Workspace, scalarNames: [String] = [], scalars: @escaping () -> [String: [Float]] = { [:] },
         execute: @escaping () throws -> Void) {
        self.device = workspace.device
        self.workspace = workspace
        self.body = execute
        self.scalarNames = scalarNames
        self.scalars = scalars
    }

    /// Enqueues the op once (does not synchronise, except for scalar-returning ops).
    public func execute() throws { try body() }

    /// Waits for the device, verifies guards and read-only inputs, and downloads every output.
    public func outputs() throws -> [String: [Float]] {
        try device.synchronize()
        var out = try workspace.downloadAndCheck()
        for (k, v) in scalars() { out[k] = v }
        return out
    }
}

/// Output vs reference: nmse = Σ(a−b)²/Σb² over the finite pairs (Σ(a−b)² when Σb² = 0),
/// the largest absolute difference, and whether NaN/±inf appear in different places.
public struct Comparison: Sendable, CustomStringConvertible {
    /// One differing pair (index, output value, reference value).
    public struct Pair: Sendable, CustomStringConvertible {
        public var index: Int, output: Double, reference: Double
        public var description: String { "[\(index)] \(output) vs \(reference)" }
    }

    public var count: Int
    public var nmse: Double
    public var maxAbs: Double
    public var maxAbsIndex: Int
    /// NaN or ±inf in the output where the reference has none (or the other way round, or
    /// infinities of different sign). Also true when the lengths differ.
    public var nonFiniteMismatch: Bool
    /// Number of NaNs in the output, and in the reference (cases that feed NaN in expect NaN out,
    /// as PyTorch gives; anywhere else a NaN is a failure).
    public var outputNaNs: Int
    public var referenceNaNs: Int
    /// The first 5 pairs with |a − b| > 1e-5·max(1, |b|) or a non-finite mismatch.
    public var firstDifferences: [Pair]

    /// The output passes: same length, no NaN/inf mismatch, nmse ≤ tolerance.
    public func passes(maxNMSE: Double) -> Bool { !nonFiniteMismatch && nmse <= maxNMSE }

    public static func compare(_ output: [Float], reference: [Float]) -> Comparison {
        compare(output.map(Double.init), reference.map(Double.init))
    }

    public static func compare(_ output: [Float], reference: [Double]) -> Comparison {
        compare(output.map(Double.init), reference)
    }

    public static func compare(_ a: [Double], _ b: [Double]) -> Comparison {
        var num = 0.0, den = 0.0, maxAbs = 0.0, maxIndex = -1, mismatch = a.count != b.count, nans = 0, refNaNs = 0
        var firsts: [Pair] = []
        for i in 0..<min(a.count, b.count) {
            let x = a[i], y = b[i]
            if x.isNaN { nans += 1 }
            if y.isNaN { refNaNs += 1 }
            if !x.isFinite || !y.isFinite {
                let same = (x.isNaN && y.isNaN) || (x.isInfinite && x == y)
                if !same {
                    mismatch = true
                    if firsts.count < 5 { firsts.append(Pair(index: i, output: x, reference: y)) }
                }
                continue
            }
            let d = x - y
            num += d * d; den += y * y
            if abs(d) > maxAbs || maxIndex < 0 { maxAbs = max(maxAbs, abs(d)); maxIndex = i }
            if abs(d) > 1e-5 * max(1, abs(y)) && firsts.count < 5 { firsts.append(Pair(index: i, output: x, reference: y)) }
        }
        return Comparison(count: a.count, nmse: den == 0 ? num : num / den, maxAbs: maxAbs, maxAbsIndex: maxIndex,
                          nonFiniteMismatch: mismatch, outputNaNs: nans, referenceNaNs: refNaNs, firstDifferences: firsts)
    }

    public var description: String {
        var s = "nmse \(nmse), max |a−b| \(maxAbs) at [\(maxAbsIndex)] over \(count) values"
        if nonFiniteMismatch { s += ", NaN/inf pattern differs" }
        if outputNaNs > 0 { s += ", \(outputNaNs) NaN in output (\(referenceNaNs) in the reference)" }
        if !firstDifferences.isEmpty { s += "; first differences: " + firstDifferences.map(\.description).joined(separator: ", ") }
        return s
    }
}

/// Errors a case run reports (guards touched, inputs modified, bad shapes).
public struct OpCaseError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
