// mpo-train: the command-line face of MPOKit. Subcommands are thin: parse, validate, call the
// library. Errors print one line naming the problem and the fix; usage errors exit 64.

#if canImport(Glibc)
@preconcurrency import Glibc  // `stdout` (a C global); must come before Foundation
#endif
import ArgumentParser
import Foundation
import MPOKit

@main
struct MPOTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpo-train",
        abstract: "Train, compress and sample PicoGPT language models whose linear layers are Matrix Product Operators.",
        discussion: """
        Examples:
          mpo-train train --model mpo --chi 8 --steps 200
          mpo-train report --checkpoint runs/dense/checkpoint.safetensors --chi 4,8,16,32
          mpo-train dump --checkpoint model.safetensors --batch batch.json --out out.safetensors
          mpo-train bench
        """,
        subcommands: [Train.self, Sample.self, Eval.self, Compress.self, Report.self, Sweep.self, Table.self, Bench.self, Dump.self, Export.self, Tokenize.self, Devices.self, CheckOps.self]
    )

    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)  // progress and logs appear line by line when piped
        // Under mpirun with several ranks only train and bench cooperate; anything else would run
        // N copies writing the same files.
        let command = CommandLine.arguments.dropFirst().first ?? ""
        if let (rank, size) = LauncherEnvironment.ranks(), !["train", "bench", "--help", "-h", "help"].contains(command) {
            if rank == 0 { printError("Error: only train and bench run data-parallel (this is rank \(rank) of \(size)); run `mpo-train \(command)` as one process, without mpirun") }
            Glibc.exit(64)
        }
        main(nil)
    }
}
