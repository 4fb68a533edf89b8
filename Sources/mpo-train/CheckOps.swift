// `mpo-train check-ops`: the shared op-case table (OpCases: parity, accuracy and the full-size
// perf cases) on one device against the CPU reference, outside of `swift test` — ggml's
// test-backend-ops. One line per case: OK / FAIL / not supported, the op, its shape, and the
// worst output's error; exit 1 if any case fails. The CPU device itself is checked against the
// float64 reference.

import ArgumentParser
import Foundation
import MPOKit
import MPOOpenCL
import OpCases

struct CheckOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-ops",
        abstract: "Check every device op against the CPU reference (the op-case table, full-size cases included).",
        discussion: """
        Exits 1 if any case fails. Cases a device reports as unsupported are listed, not failed.
          mpo-train check-ops --device opencl
          mpo-train check-ops --device opencl:1 --filter attention
          mpo-train check-ops --device cpu --table parity
        """)

    enum Table: String, ExpressibleByArgument, CaseIterable {
        case all, parity, accuracy, perf
    }

    @OptionGroup var devices: DeviceOptions
    @Option(help: "Only cases whose description contains this text (case-insensitive), e.g. gemm or 'T=256'.")
    var filter: String?
    @Option(help: "Which cases: all, parity (small and awkward shapes), accuracy (long reductions), perf (the model's full sizes).")
    var table: Table = .all
    @Option(name: .customLong("max-nmse"), help: "Every case's tolerance (normalised MSE) instead of its own (1e-7 for most).")
    var maxNMSE: Double?
    @Flag(help: "Print only failures and the summary.")
    var quiet = false

    func run() throws {
        let device = try devices.make()
        let reference: (any ComputeDevice)? = device is CPUDevice ? nil : CPUDevice(threads: devices.threads)
        var cases: [OpCase]
        switch table {
        case .all: cases = OpCases.parity + OpCases.accuracy + OpCases.perf
        case .parity: cases = OpCases.parity
        case .accuracy: cases = OpCases.accuracy
        case .perf: cases = OpCases.perf
        }
        if let filter { cases = cases.filter { $0.description.lowercased().contains(filter.lowercased()) } }
        if let maxNMSE, !(maxNMSE >= 0) { throw ValidationError("--max-nmse must be ≥ 0 (got \(maxNMSE))") }
        guard !cases.isEmpty else { throw ValidationError("no case matches --filter '\(filter ?? "")' in the \(table) table") }
        print("check-ops: \(cases.count) cases on \(device.name) against \(reference?.name ?? "the float64 reference")")
        var ok = 0, failed = 0, unsupported = 0
        let start = Date()
        for c in cases {
            let tolerance = maxNMSE ?? c.maxNMSE
            let line: String
            do {
                switch try OpCheck.run(c, on: device, against: reference, maxNMSE: tolerance,
                                       isUnsupported: { ($0 as? OpenCLError)?.isUnsupported == true }) {
                case .unsupported(let e):
                    unsupported += 1
                    line = "not supported  \(c): \(e)"
                case .compared(let results):
                    let bad = results.filter { !$0.comparison.passes(maxNMSE: tolerance) }
                    let worst = (bad.first ?? results.max { $0.comparison.nmse < $1.comparison.nmse })
                    let detail = worst.map { "'\($0.name)' nmse \(String(format: "%.1e", $0.comparison.nmse)) (max \(String(format: "%.0e", tolerance)))" } ?? "no outputs"
                    if bad.isEmpty && !results.isEmpty {
                        ok += 1
                        if quiet { continue }
                        line = "OK    \(c)  \(detail)"
                    } else {
                        failed += 1
                        line = "FAIL  \(c)  \(detail)" + (bad.first.map { ": \($0.comparison)" } ?? "")
                    }
                }
            } catch {
                failed += 1
                line = "FAIL  \(c): \(error)"
            }
            print(line)
        }
        print("check-ops: \(ok) OK, \(failed) FAIL, \(unsupported) not supported of \(cases.count) cases on \(device.name) "
              + "(\(String(format: "%.1f", Date().timeIntervalSince(start))) s)")
        if failed > 0 { throw ExitCode(1) }
    }
}
