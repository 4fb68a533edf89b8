// The processes of a data-parallel run (docs/DESIGN.md §10): what the trainer needs from MPI —
// its rank, the number of ranks, and sums over all of them — as a protocol, so that MPOKit
// never links MPI. The MPI implementation lives in the MPOMPI target (built with the `MPI`
// trait); a single process has no collective at all (`Trainer.collective == nil`).

import Foundation

public protocol Collective: AnyObject {
    /// This process's index, 0 ..< size; rank 0 writes metrics and checkpoints.
    var rank: Int { get }
    var size: Int { get }
    /// This process's index among the ranks on its own machine (the OpenCL device it opens).
    var localRank: Int { get }
    /// Sums `values` element-wise over every rank, in place; every rank gets the same bits.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws
    /// Element-wise maximum over every rank, in place.
    func allReduceMax(_ values: UnsafeMutableBufferPointer<UInt64>) throws
}

extension Collective {
    /// The rows of a global batch of `batch` this rank computes: contiguous, sizes differing by
    /// at most one (rank r takes ⌊r·B/N⌋ ..< ⌊(r+1)·B/N⌋).
    public func rows(of batch: Int) -> Range<Int> { (rank * batch / size)..<((rank + 1) * batch / size) }

    public var isRoot: Bool { rank == 0 }

    public func allReduceSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allReduceSum($0) }
    }

    public func allReduceMax(_ values: inout [UInt64]) throws {
        try values.withUnsafeMutableBufferPointer { try allReduceMax($0) }
    }

    /// The minimum over every rank (as the maximum of the complements).
    public func allReduceMin(_ value: UInt64) throws -> UInt64 {
        var v = [~value]
        try allReduceMax(&v)
        return ~v[0]
    }

    /// Whether every rank holds the same 64-bit value (checked as min == max).
    public func agree(on value: UInt64) throws -> Bool {
        var v = [value, ~value]
        try allReduceMax(&v)
        return v[0] == ~v[1]
    }
}

/// A failure every rank reaches together (the same error on each, e.g. a non-finite step seen
/// through the reduced gradient): rank 0 reports it and every rank exits, with no abort.
public struct CollectiveFailure: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What one data-parallel step moved between the ranks.
public struct CommunicationStats: Sendable, Equatable {
    /// Bytes each rank contributed to all-reduces (the gradient arena and the step's scalars).
    public var bytes: Int
    /// Seconds inside the all-reduce calls (the wait for the slowest rank included).
    public var seconds: Double
    public init(bytes: Int = 0, seconds: Double = 0) { self.bytes = bytes; self.seconds = seconds }
}

/// How launchers tell a process it is one of several: Open MPI's mpirun, MPICH's or Intel MPI's
/// Hydra (PMI), a PMIx launcher, Slurm's srun. A build without MPI refuses to train there (N
/// copies of one run writing one directory); a build with MPI initialises MPI only there.
public enum LauncherEnvironment {
    /// (rank, size) when a launcher says this process is one of several, else nil.
    public static func ranks(_ env: [String: String] = ProcessInfo.processInfo.environment) -> (rank: Int, size: Int)? {
        let pairs = [("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"),
                     ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS")]
        for (r, s) in pairs {
            if let size = env[s].flatMap(Int.init), size > 1 { return (env[r].flatMap(Int.init) ?? 0, size) }
        }
        return nil
    }

    /// Whether a launcher started this process (one rank or more, or an unknown count under PMIx).
    public static func launched(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        ranks(env) != nil || env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMI_SIZE"] != nil || env["PMIX_RANK"] != nil
    }
}

/// A 64-bit FNV-1a hash of float bits (every rank's parameters must hash alike).
public func fnv1a(_ values: [Float]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for v in values {
        var b = v.bitPattern
        for _ in 0..<4 { h = (h ^ UInt64(b & 0xff)) &* 0x100_0000_01b3; b >>= 8 }
    }
    return h
}
