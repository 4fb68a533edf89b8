// CPU device vs the naive Double reference, one test per row of `OpCases.parity` (ggml's
// `use_ref` mode: the CPU device is the reference for every other device, so it is itself
// checked against plain loops written from the ComputeDevice doc comments).
//
// Each case runs on guarded buffers (`OpCase.run` throws if a guard or read-only input was
// touched), is compared per output by nmse against `OpCase.reference`, must produce no NaN,
// and must be bit-for-bit reproducible across two runs (CPUDevice promises fixed-order reductions).
// Not here: finite-difference checks of the reference (GradientCheck*.swift), the harness's own
// tests (CPUOpHarnessTests.swift), OpenCL (Tests/OpenCLTests).

import Foundation
import Testing
import MPOKit
import OpCases

@Suite("CPU ops vs naive reference")
struct CPUOpReferenceTests {
    @Test("CPUDevice matches NaiveReference", arguments: OpCases.parity)
    func cpuMatchesReference(_ c: OpCase) throws {
        let seed = OpCases.defaultSeed
        let device = CPUDevice()
        let out = try c.run(device, seed)
        let ref = c.reference(seed)
        #expect(Set(out.keys) == Set(ref.keys), "\(c): outputs \(out.keys.sorted()) vs reference \(ref.keys.sorted())")
        for name in ref.keys.sorted() {
            guard let o = out[name], let r = ref[name] else { continue }
            #expect(o.count == r.count, "\(c) \(name): \(o.count) values vs \(r.count)")
            let cmp = Comparison.compare(o, reference: r)
            #expect(cmp.outputNaNs == cmp.referenceNaNs, "\(c) '\(name)': \(cmp)")
            #expect(cmp.passes(maxNMSE: c.maxNMSE), "\(c) '\(name)' (tolerance \(c.maxNMSE)): \(cmp)")
        }
        // Same device, same inputs: identical bits.
        let again = try c.run(device, seed)
        for (name, o) in out {
            let same = again[name].map { zip($0, o).allSatisfy { $0.bitPattern == $1.bitPattern } } ?? false
            #expect(same, "\(c) '\(name)': a second run gave different bits")
        }
    }

    /// The CPU device splits work by its thread count (rows, columns, batch items, chunks of a
    /// reduction); 1 and 3 threads take other paths than this machine's default.
    @Test("CPUDevice matches NaiveReference with 1 and 3 threads", arguments: OpCases.parity, [1, 3])
    func threadCounts(_ c: OpCase, threads: Int) throws {
        let seed = OpCases.defaultSeed &+ 1
        let out = try c.run(CPUDevice(threads: threads), seed)
        for (name, r) in c.reference(seed) {
            let cmp = Comparison.compare(out[name] ?? [], reference: r)
            #expect(cmp.outputNaNs == cmp.referenceNaNs && cmp.passes(maxNMSE: c.maxNMSE), "\(c) '\(name)' with \(threads) threads: \(cmp)")
        }
    }

    @Test("Reductions over 8,192 rows are within 1e-6 of the Double reference", arguments: OpCases.accuracy)
    func accuracy(_ c: OpCase) throws {
        let seed = OpCases.defaultSeed
        let out = try c.run(CPUDevice(), seed)
        for (name, r) in c.reference(seed) {
            let cmp = Comparison.compare(out[name] ?? [], reference: r)
            #expect(!cmp.nonFiniteMismatch && cmp.nmse.squareRoot() <= 1e-6, "\(c) '\(name)': relative error \(cmp.nmse.squareRoot())")
            if ProcessInfo.processInfo.environment["MPO_ACCURACY_REPORT"] == "1" { print("accuracy \(c) '\(name)': \(cmp.nmse.squareRoot())") }
        }
    }

    @Test("Every op has parity and perf cases")
    func coverage() {
        for op in Op.allCases {
            let parity = OpCases.cases(op, in: OpCases.parity)
            #expect(parity.count >= 2, "\(op): \(parity.count) parity cases (want a nice and an awkward shape)")
            #expect(!OpCases.cases(op, in: OpCases.perf).isEmpty, "\(op): no perf case")
        }
    }

    @Test("Case descriptions are unique and perf cases carry costs")
    func tableHygiene() {
        for table in [OpCases.parity, OpCases.perf] {
            let names = table.map(\.description)
            let dupes = Dictionary(grouping: names, by: { $0 }).filter { $1.count > 1 }.keys.sorted()
            #expect(dupes.isEmpty, "duplicate cases: \(dupes)")
            #expect(table.allSatisfy { $0.maxNMSE > 0 && $0.maxNMSE <= 1e-7 }, "a tolerance looser than 1e-7 needs a reason")
        }
        for c in OpCases.perf {
            #expect(c.bytes > 0, "\(c): no byte count")
            if c.op == .gemm || c.op == .attentionForward || c.op == .attentionBackward { #expect(c.flops > 0, "\(c): no FLOPs") }
        }
        // The MPO core-contraction shapes are in the perf table: shared core and batch reduction.
        let perfGemms = OpCases.cases(.gemm, in: OpCases.perf).map(\.vars)
        #expect(perfGemms.contains { $0.contains("sA=0") })
        #expect(perfGemms.contains { $0.contains("sC=0") })
    }

    @Test("Cases are deterministic in the seed")
    func seededInputs() throws {
        let c = OpCases.cases(.gemm, in: OpCases.parity)[0]
        #expect(c.reference(1)["c"]! == c.reference(1)["c"]!)
        #expect(c.reference(1)["c"]! != c.reference(2)["c"]!)
    }
}
