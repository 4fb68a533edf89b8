// The ranks of a data-parallel run as the command line sees them (`mpirun -np N mpo-train train
// …`, docs/DESIGN.md §10). Built with the MPI trait, a process a launcher started joins
// MPI_COMM_WORLD; built without it, such a process refuses to train (N independent copies of one
// run would write one directory) and says how to build with MPI.

import ArgumentParser
import Foundation
import MPOKit
#if MPI
import MPOMPI
#endif

final class Ranks {
    #if MPI
    private let mpi: MPICommunicator?
    #endif
    /// The collective of a run with more than one rank; nil for one process.
    let collective: Collective?

    var rank: Int { collective?.rank ?? 0 }
    var size: Int { collective?.size ?? 1 }
    var isRoot: Bool { rank == 0 }
    /// This rank's index on its machine (which OpenCL device it opens), when there are several.
    var rankOnNode: Int? { collective?.localRank }

    /// How to get a build that trains over MPI.
    static let buildHint = "build mpo-train with MPI: `swift build -c release --traits MPI` (needs an MPI library, e.g. Debian's libopenmpi-dev)"

    /// This process's place in the launch: one process, or a rank of an MPI job.
    init() throws {
        #if MPI
        if LauncherEnvironment.launched() {
            let c = try MPICommunicator()
            mpi = c
            collective = c.size > 1 ? c : nil
        } else {
            mpi = nil
            collective = nil
        }
        #else
        if let (rank, size) = LauncherEnvironment.ranks() {
            throw ValidationError("this mpo-train was built without MPI, but a launcher started it as rank \(rank) of \(size); \(Self.buildHint), or run it without mpirun")
        }
        collective = nil
        #endif
    }

    /// The MPI library, for the run's header (nil without MPI).
    var libraryVersion: String? {
        #if MPI
        return mpi?.libraryVersion
        #else
        return nil
        #endif
    }

    /// Prints on rank 0 only.
    func say(_ line: String) { if isRoot { print(line) } }

    /// Runs `body` as this rank. An error every rank reaches together (CollectiveFailure: a
    /// non-finite step, ranks that disagree) is printed once, by rank 0, and every rank exits 1;
    /// any other error (a file, a device) is printed by the rank that hit it, naming it, and ends
    /// the whole job through MPI_Abort — the other ranks are waiting in a collective for it.
    func run(_ body: () throws -> Void) throws {
        #if MPI
        guard let mpi else { return try body() }
        do {
            try body()
            mpi.finalize()
        } catch let failure as CollectiveFailure {
            if isRoot { printError("Error: \(failure.message)") }
            mpi.finalize()
            throw ExitCode(1)
        } catch {
            guard collective != nil else { mpi.finalize(); throw error }
            printError("Error: rank \(rank) of \(size): \(error); ending every rank")
            mpi.abort(code: 1)
        }
        #else
        try body()
        #endif
    }
}
