// OpenCL vs CPU over the shared op table (OpCases.parity, ggml test-backend-ops style): every
// case runs on both devices from the same seed and is judged by OpCheck (same NaN/inf pattern,
// nmse within the case's tolerance, float64 fallback for rounding-noise outputs). A case the
// device reports as unsupported is a known issue ("not supported"), never a failure.
// MPO_PARITY_REPORT=1 also prints the per-op table of worst nmse (MPO_PARITY_OP=<op> filters it;
// MPO_PARITY_TRACE=1 prints each case before it runs, to find a kernel that crashes the driver).

import Foundation
import MPOKit
import MPOOpenCL
import OpCases
import Testing

/// One case on both devices (OpCheck: against the CPU, with the float64 fallback).
enum ParityRun {
    static func run(_ c: OpCase, seed: UInt64 = OpCases.defaultSeed) throws -> OpCheck.Outcome {
        try OpCheck.run(c, on: try Shared.opencl(), against: CPUDevice(), seed: seed,
                        isUnsupported: { ($0 as? OpenCLError)?.isUnsupported == true })
    }
}

@Suite("OpenCL matches CPU (op table)", .enabled(if: Shared.available, OpenCLGate.reason))
struct ParityTests {
    @Test("Reductions over 8,192 rows are within 1e-6 of the Double reference", arguments: OpCases.accuracy)
    func accuracy(_ c: OpCase) throws {
        let seed = OpCases.defaultSeed
        let out = try c.run(try Shared.opencl(), seed)
        for (name, r) in c.reference(seed) {
            let cmp = Comparison.compare(out[name] ?? [], reference: r)
            #expect(!cmp.nonFiniteMismatch && cmp.nmse.squareRoot() <= 1e-6, "\(c) '\(name)': relative error \(cmp.nmse.squareRoot())")
            if ProcessInfo.processInfo.environment["MPO_ACCURACY_REPORT"] == "1" { print("accuracy \(c) '\(name)': \(cmp.nmse.squareRoot())") }
        }
    }

    @Test("OpenCL matches CPU", arguments: OpCases.parity)
    func parity(_ c: OpCase) throws {
        switch try ParityRun.run(c) {
        case .unsupported(let e):
            withKnownIssue("not supported on this device: \(e)") { throw e }
        case .compared(let results):
            for (name, cmp) in results {
                #expect(cmp.passes(maxNMSE: c.maxNMSE), "\(c) output '\(name)': \(cmp) (max nmse \(c.maxNMSE))")
            }
        }
    }

    /// Cases of every op with a 2- or 3-D grid, three per op.
    static let gridCases: [OpCase] = {
        let ops: Set<Op> = [.gemm, .addBias, .biasBackward, .addBiasReLU, .reluBackwardBias, .embeddingForward, .embeddingBackward,
                            .layerNormBackward, .attentionForward, .attentionBackward, .mpoForward]
        var seen: [Op: Int] = [:]
        return OpCases.parity.filter { c in
            guard ops.contains(c.op), seen[c.op, default: 0] < 3 else { return false }
            seen[c.op, default: 0] += 1
            return true
        }
    }()

    /// Two devices of their own (one splitting every grid into one work-group per launch along
    /// y), used one test at a time: their launch counts are compared.
    static let splitPair = Result { () throws -> (whole: OpenCLDevice, split: OpenCLDevice) in
        let split = try OpenCLDevice()
        split.maxGroupsPerDimension = 1
        return (try OpenCLDevice(), split)
    }
    static let splitLock = NSLock()

    @Test("grids split into launches of one work-group along y give the same bits", arguments: gridCases)
    func splitGrids(_ c: OpCase) throws {
        Self.splitLock.lock(); defer { Self.splitLock.unlock() }
        let (one, split) = try Self.splitPair.get()
        let whole = try c.run(one, OpCases.defaultSeed)
        let parts = try c.run(split, OpCases.defaultSeed)
        for (name, w) in whole {
            #expect(parts[name]?.map(\.bitPattern) == w.map(\.bitPattern), "\(c) '\(name)' differs when split")
        }
    }

    @Test("a training step with every grid split along y gives the same bits")
    func splitTraining() throws {
        Self.splitLock.lock(); defer { Self.splitLock.unlock() }
        let (one, split) = try Self.splitPair.get()
        var results: [[Float]] = [], launches: [Int] = []
        for device in [one, split] {
            let config = ModelConfig(vocabularySize: 20, channels: 32, heads: 2, layers: 2, context: 16, ffn: 64, chi: 4)
            let m = try Transformer(config: config, device: device)
            try m.initialize(seed: 3)
            let opt = try AdamW(model: m)
            var rng = SplitMix64(seed: 4)
            let tok = (0..<64).map { _ in Int32(rng.below(20)) }, tgt = (0..<64).map { _ in Int32(rng.below(20)) }
            let before = device.queueCounters!.launches
            let st = try opt.trainStep(tokens: tok, targets: tgt, batch: 4, time: 16, learningRate: 1e-3)
            launches.append(device.queueCounters!.launches - before)
            results.append(try device.read(m.params.all) + [Float(st.loss), Float(st.gradNorm)])
        }
        #expect(launches[1] > launches[0], "launches: \(launches)")
        #expect(results[0].map(\.bitPattern) == results[1].map(\.bitPattern))
    }

    @Test("every op of the table has at least one parity case")
    func coverage() {
        let covered = Set(OpCases.parity.map(\.op))
        #expect(covered == Set(Op.allCases), "missing: \(Set(Op.allCases).subtracting(covered))")
    }

    @Test("per-op report (MPO_PARITY_REPORT=1)", .enabled(if: ProcessInfo.processInfo.environment["MPO_PARITY_REPORT"] == "1"))
    func report() throws {
        var worst: [Op: (nmse: Double, maxAbs: Double, cases: Int, failed: Int, unsupported: Int)] = [:]
        let only = ProcessInfo.processInfo.environment["MPO_PARITY_OP"]
        for c in OpCases.parity where only == nil || only == c.op.rawValue {
            if ProcessInfo.processInfo.environment["MPO_PARITY_TRACE"] == "1" { print("running \(c)"); fflush(nil) }
            var w = worst[c.op] ?? (0, 0, 0, 0, 0)
            w.cases += 1
            switch try ParityRun.run(c) {
            case .unsupported: w.unsupported += 1
            case .compared(let results):
                for (_, cmp) in results {
                    w.nmse = max(w.nmse, cmp.nmse); w.maxAbs = max(w.maxAbs, cmp.maxAbs)
                    if !cmp.passes(maxNMSE: c.maxNMSE) { w.failed += 1 }
                }
            }
            worst[c.op] = w
        }
        print("op                  cases  failed  unsupported  worst nmse   worst max|a-b|")
        for op in Op.allCases {
            guard let w = worst[op] else { continue }
            print(op.rawValue.padding(toLength: 20, withPad: " ", startingAt: 0)
                  + String(format: "%5d  %6d  %11d  %.3e    %.3e", w.cases, w.failed, w.unsupported, w.nmse, w.maxAbs))
        }
    }
}
