// MPI_COMM_WORLD as a Collective (built only with the package's `MPI` trait). Sums go through
// MPI_Allreduce on host memory (no CUDA- or OpenCL-aware MPI assumed); an arena longer than an
// int's range is reduced in pieces. Errors come back as MPIError (the communicator's handler is
// MPI_ERRORS_RETURN) naming the call and the library's text. Without the trait this file is empty.

#if MPI
import CMPI
import Foundation
import MPOKit

public struct MPIError: Error, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var description: String {
        var buffer = [CChar](repeating: 0, count: 512)
        mpo_mpi_error_string(code, &buffer, Int32(buffer.count))
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "MPI error in \(call): \(text.isEmpty ? "code \(code)" : text)"
    }
}

public final class MPICommunicator: Collective {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    /// The MPI library's own version line.
    public let libraryVersion: String

    /// The largest count one MPI call takes (an int); longer buffers go in pieces.
    static let maxCount = Int(Int32.max) / 2

    private static func check(_ rc: Int32, _ call: String) throws {
        guard rc == 0 else { throw MPIError(call: call, code: rc) }   // MPI_SUCCESS is 0
    }

    /// Initialises MPI (once per process) and reads this process's place in MPI_COMM_WORLD.
    public init() throws {
        if mpo_mpi_initialized() == 0 { try Self.check(mpo_mpi_init(), "MPI_Init_thread") }
        var r: Int32 = 0, s: Int32 = 0, l: Int32 = 0
        try Self.check(mpo_mpi_rank(&r), "MPI_Comm_rank")
        try Self.check(mpo_mpi_size(&s), "MPI_Comm_size")
        try Self.check(mpo_mpi_local_rank(&l), "MPI_Comm_split_type")
        rank = Int(r); size = Int(s); localRank = Int(l)
        var buffer = [CChar](repeating: 0, count: 4096)
        mpo_mpi_library_version(&buffer, Int32(buffer.count))
        libraryVersion = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: ",").first.map(String.init)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "MPI"
    }

    private func pieces<T>(_ values: UnsafeMutableBufferPointer<T>, _ call: String,
                           _ body: (UnsafeMutablePointer<T>, Int32) -> Int32) throws {
        guard let base = values.baseAddress else { return }
        var offset = 0
        while offset < values.count {
            let n = min(Self.maxCount, values.count - offset)
            try Self.check(body(base + offset, Int32(n)), call)
            offset += n
        }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        try pieces(values, "MPI_Allreduce(MPI_FLOAT, MPI_SUM)") { mpo_mpi_allreduce_sum_float($0, $1) }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        try pieces(values, "MPI_Allreduce(MPI_DOUBLE, MPI_SUM)") { mpo_mpi_allreduce_sum_double($0, $1) }
    }

    public func allReduceMax(_ values: UnsafeMutableBufferPointer<UInt64>) throws {
        try pieces(values, "MPI_Allreduce(MPI_UINT64_T, MPI_MAX)") { mpo_mpi_allreduce_max_uint64($0, $1) }
    }

    /// Ends every rank of the job (after an error only this rank saw: the others are blocked in
    /// a collective and would wait forever).
    public func abort(code: Int32) -> Never {
        _ = mpo_mpi_abort(code)
        exit(code)
    }

    /// MPI_Finalize, before a normal exit (or an exit every rank takes together).
    public func finalize() {
        if mpo_mpi_finalized() == 0 { _ = mpo_mpi_finalize() }
    }
}
#endif
