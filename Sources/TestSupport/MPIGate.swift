// MPIGate: the data-parallel suites run `mpirun -np N` on an mpo-train built with the MPI trait
// (`swift build --traits MPI --build-path .build-mpi`), named by MPO_MPI_TRAIN. A developer
// without one sees those suites skipped, with the way to build it; CI builds it and sets
// MPO_REQUIRE_MPI=1, so a missing binary or launcher fails them instead.

import Foundation
import Testing

public enum MPIGate {
    public static let path = ProcessInfo.processInfo.environment["MPO_MPI_TRAIN"]
    public static let required = ProcessInfo.processInfo.environment["MPO_REQUIRE_MPI"] == "1"
    public static let enabled = required || (path.map { FileManager.default.isExecutableFile(atPath: $0) } ?? false && launcher != nil)
    public static let reason: Comment = "no MPI build: install libopenmpi-dev openmpi-bin, `swift build --traits MPI --build-path .build-mpi` and set MPO_MPI_TRAIN=.build-mpi/debug/mpo-train (MPO_REQUIRE_MPI=1 turns this skip into a failure)"

    /// mpirun (or mpiexec) on the PATH.
    public static let launcher: URL? = {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":").map(String.init)
        for name in ["mpirun", "mpiexec"] {
            for d in dirs where FileManager.default.isExecutableFile(atPath: d + "/" + name) {
                return URL(fileURLWithPath: d + "/" + name)
            }
        }
        return nil
    }()

    /// Open MPI needs --oversubscribe for more ranks than cores (MPICH allows it, and rejects the flag).
    public static let isOpenMPI: Bool = {
        guard let launcher else { return false }
        let p = Process(), out = Pipe()
        p.executableURL = launcher; p.arguments = ["--version"]; p.standardOutput = out; p.standardError = Pipe()
        guard (try? p.run()) != nil else { return false }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return text.contains("Open MPI") || text.contains("OpenRTE")
    }()

    /// The MPI-built binary, or an error saying how to get it.
    public static func binary() throws -> URL {
        guard let path, FileManager.default.isExecutableFile(atPath: path) else {
            throw GateError("MPO_MPI_TRAIN does not name an executable (\(path ?? "unset")); \(reason)")
        }
        guard launcher != nil else { throw GateError("no mpirun or mpiexec on the PATH; \(reason)") }
        return URL(fileURLWithPath: path)
    }

    /// Runs `mpirun -np ranks binary args` (ranks 1: the binary alone) in `directory`; returns
    /// (exit code, stdout, stderr). Open MPI is allowed to run as root (CI) and to oversubscribe.
    public static func run(ranks: Int, _ args: [String], in directory: URL) throws -> (Int32, String, String) {
        let bin = try binary()
        let p = Process()
        if ranks == 1 {
            p.executableURL = bin
            p.arguments = args
        } else {
            p.executableURL = launcher!
            p.arguments = ["-np", "\(ranks)"] + (isOpenMPI ? ["--oversubscribe"] : []) + [bin.path] + args
        }
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        p.environment = env
        p.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        // Read both pipes concurrently: a rank that fills one while we block on the other would hang.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    public struct GateError: Error, CustomStringConvertible { public let description: String; init(_ d: String) { description = d } }
}
