// One op case on a device against a reference (ggml test-backend-ops): the parity suite and
// `mpo-train check-ops` both run cases through here. Against the CPU device (same seeded inputs)
// every output must have the same NaN/inf pattern and an nmse within the case's tolerance; where
// an output is pure rounding noise on the CPU (e.g. attention backward with T = 1: dq and dk are
// exactly 0 in exact arithmetic) it may instead pass against the case's float64 reference
// (`OpCase.reference`). The CPU device itself is checked against the float64 reference. A case
// the device reports as unsupported is a known issue ("not supported"), never a failure.

import MPOKit

public enum OpCheck {
    /// A case's result: per-output comparisons, or the device's "unsupported" error.
    public enum Outcome {
        case compared([(name: String, comparison: Comparison)])
        case unsupported(any Error)
    }

    /// Runs `c` on `device` and compares it with `reference` (nil: the float64 reference only).
    /// `maxNMSE` replaces the case's tolerance. `isUnsupported` says whether an error thrown by the device means "not supported".
    public static func run(_ c: OpCase, on device: any ComputeDevice, against reference: (any ComputeDevice)?,
                           seed: UInt64 = OpCases.defaultSeed, maxNMSE: Double? = nil,
                           isUnsupported: (any Error) -> Bool = { _ in false }) throws -> Outcome {
        let tolerance = maxNMSE ?? c.maxNMSE
        let expected = try reference.map { try c.run($0, seed) }
        let output: [String: [Float]]
        do {
            output = try c.run(device, seed)
        } catch {
            if isUnsupported(error) { return .unsupported(error) }
            throw error
        }
        var truth: [String: [Double]]? = expected == nil ? c.reference(seed) : nil
        let referenceNames: [String] = expected.map { Array($0.keys) } ?? Array(truth?.keys ?? [:].keys)
        let names = Set(output.keys).union(referenceNames).sorted()
        var results: [(name: String, comparison: Comparison)] = []
        for name in names {
            guard let o = output[name] else {   // missing output: a length mismatch
                results.append((name, Comparison.compare([Double](), [0])))
                continue
            }
            if let r = expected?[name] {
                let vsDevice = Comparison.compare(o, reference: r)
                if vsDevice.passes(maxNMSE: tolerance) { results.append((name, vsDevice)); continue }
                if truth == nil { truth = c.reference(seed) }
                if let t = truth?[name] {
                    let vsTruth = Comparison.compare(o, reference: t)
                    if vsTruth.passes(maxNMSE: tolerance) { results.append((name, vsTruth)); continue }
                }
                results.append((name, vsDevice))
            } else {
                results.append((name, Comparison.compare(o, reference: truth?[name] ?? [])))
            }
        }
        return .compared(results)
    }
}
