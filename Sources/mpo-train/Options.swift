// Options shared by several subcommands, and the device factory (the one place that knows
// which devices exist).

import ArgumentParser
import Foundation
import MPOKit
import MPOOpenCL

/// `--device cpu | opencl | opencl:N`.
struct DeviceSpec: ExpressibleByArgument, CustomStringConvertible {
    var kind: DeviceKind
    var index: Int?

    init?(argument: String) {
        let parts = argument.lowercased().split(separator: ":", maxSplits: 1).map(String.init)
        guard let k = DeviceKind(rawValue: parts[0]) else { return nil }
        kind = k
        if parts.count == 2 {
            guard k == .opencl, let i = Int(parts[1]), i >= 0 else { return nil }
            index = i
        }
    }

    init(kind: DeviceKind) { self.kind = kind }
    var description: String { index.map { "\(kind.rawValue):\($0)" } ?? kind.rawValue }
    static var allValueStrings: [String] { ["cpu", "opencl", "opencl:N"] }

    /// With `rankOnNode` (a data-parallel rank), plain `opencl` opens device rankOnNode mod the
    /// machine's GPUs; `opencl:N` keeps its device.
    func make(threads: Int? = nil, rankOnNode: Int? = nil) throws -> any ComputeDevice {
        switch kind {
        case .cpu: return CPUDevice(threads: threads)
        case .opencl: return try OpenCLDevice(index: index, rankOnNode: index == nil ? rankOnNode : nil)
        }
    }
}

/// `--core-dtype` of the inference commands (eval, sample; bench takes FILE@f16, FILE@q8).
let coreDTypeHelp = ArgumentHelp("How the large weights are stored: f32; f16/bf16 (half the bytes read per token; computed in f32); or q8 (8-bit blocks of 32 with a scale, llama.cpp's Q8_0 scheme: 0.28× the bytes, products in integers with the activations rounded to 8 bits per block). It applies to dense linear weights, low-rank (SVD) factors and the token embedding; general MPO cores stay f32.", valueName: "f32|f16|bf16|q8")

struct DeviceOptions: ParsableArguments {
    @Option(help: "Compute device: cpu (OpenBLAS), opencl (first GPU, else first device) or opencl:N (see `mpo-train devices`).")
    var device = DeviceSpec(kind: .cpu)
    @Option(help: "Worker threads of the cpu device (default: every core). Two 1-thread runs side by side use a 2-core machine better than one 2-thread run.")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads))") }
    }

    func make(rankOnNode: Int? = nil) throws -> any ComputeDevice { try device.make(threads: threads, rankOnNode: rankOnNode) }
}

/// Parses "4,8,16,32" into bond dimensions ≥ 1.
func parseChiList(_ s: String) throws -> [Int] {
    let values = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
        throw ValidationError("--chi expects a comma-separated list of bond dimensions ≥ 1, like 4,8,16,32 (got '\(s)')")
    }
    return values.map { $0! }
}

/// --sites: nil (the chooser's), 0 for svd (plain truncated SVD), or 2…4.
func parseSites(_ s: String?) throws -> Int? {
    guard let s else { return nil }
    if s == "svd" { return 0 }
    guard let n = Int(s), (2...4).contains(n) else { throw ValidationError("--sites is 2, 3, 4 or svd (got \(s))") }
    return n
}

/// Writes to stderr.
func printError(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
