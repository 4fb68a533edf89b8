// Data-parallel training end to end: `mpirun -np N mpo-train train …` against the same run in one
// process (MPIGate: an mpo-train built with the MPI trait). The sampler is global and the
// gradient is reduced before the update, so N only changes summation order: losses agree to
// 1e-5 relative at every step, a repeat with the same N is bit-identical, and a run resumes with
// any N. A NaN on one rank must end every rank with one message that names it.

import Foundation
import MPOKit
import Testing
import TestSupport

@Suite("Data-parallel training over MPI", .serialized, .enabled(if: MPIGate.enabled, MPIGate.reason))
struct DistributedTests {
    /// A small MPO PicoGPT (χ = 8) and a recipe whose 16 steps move the loss (warm-up 4, lr 2e-3).
    static let model = ["--model", "mpo", "--chi", "8", "--layers", "2", "--d-model", "64", "--d-ff", "128", "--context", "32"]
    static let recipe = ["--batch", "8", "--steps", "16", "--eval-interval", "8", "--eval-batches", "2", "--threads", "1",
                         "--lr", "2e-3", "--warmup", "4", "--quiet"]

    static var root: URL { Reference.directory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    struct Run {
        var steps: [StepRecord] = []
        var evals: [EvalRecord] = []
        var run: RunRecord?
        var checkpoint: Data
        var output: String
    }

    static func scratch(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpo-dp-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func read(_ dir: URL, output: String) throws -> Run {
        var r = Run(checkpoint: try Data(contentsOf: dir.appendingPathComponent("checkpoint.safetensors")), output: output)
        let text = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        for line in text.split(separator: "\n") {
            switch try MetricsRecord.decode(Data(line.utf8)) {
            case .step(let s): r.steps.append(s)
            case .eval(let e): r.evals.append(e)
            case .run(let info): r.run = info
            default: break
            }
        }
        return r
    }

    /// Trains with `ranks` processes into `out` and returns what it wrote.
    @discardableResult
    static func train(ranks: Int, out: URL, _ extra: [String] = [], model: [String] = model) throws -> Run {
        let (code, stdout, stderr) = try MPIGate.run(ranks: ranks, ["train"] + model + recipe + ["--out", out.path] + extra, in: root)
        try #require(code == 0, "\(ranks) ranks: exit \(code)\n\(stdout)\n\(stderr)")
        return try read(out, output: stdout)
    }

    static func expectClose(_ a: [StepRecord], _ b: [StepRecord], _ what: String, tolerance: Double = 1e-5) {
        #expect(a.map(\.step) == b.map(\.step), "\(what): steps")
        for (x, y) in zip(a, b) {
            #expect(abs(x.loss - y.loss) <= tolerance * abs(x.loss), "\(what): step \(x.step) loss \(x.loss) vs \(y.loss)")
            #expect(abs(x.accuracy - y.accuracy) <= 1e-9, "\(what): step \(x.step) accuracy \(x.accuracy) vs \(y.accuracy)")
            #expect(abs(x.gradNorm - y.gradNorm) <= 1e-4 * x.gradNorm, "\(what): step \(x.step) gradient norm \(x.gradNorm) vs \(y.gradNorm)")
        }
    }

    @Test("2 and 4 ranks give one process's losses, gradient norms and evaluations within 1e-5 at every step; each step all-reduces the parameter arena")
    func matchesOneProcess() throws {
        let dir = try Self.scratch("match")
        defer { try? FileManager.default.removeItem(at: dir) }
        let one = try Self.train(ranks: 1, out: dir.appendingPathComponent("n1"))
        #expect(one.steps.count == 16 && one.run?.ranks == nil)
        // The loss moved: the comparison is not between two untrained models.
        #expect(one.steps.last!.loss < one.steps.first!.loss - 0.3, "\(one.steps.first!.loss) → \(one.steps.last!.loss)")
        for n in [2, 4] {
            let many = try Self.train(ranks: n, out: dir.appendingPathComponent("n\(n)"))
            Self.expectClose(one.steps, many.steps, "\(n) ranks")
            #expect(one.evals.count == many.evals.count && one.evals.count == 3)
            for (x, y) in zip(one.evals, many.evals) {
                #expect(abs(x.valLoss - y.valLoss) <= 1e-5 * x.valLoss && abs(x.trainLoss - y.trainLoss) <= 1e-5 * x.trainLoss,
                        "\(n) ranks: eval at \(x.step): \(x.valLoss) vs \(y.valLoss)")
            }
            #expect(many.run?.ranks == n)
            // Every step all-reduces the gradient arena (4 bytes a parameter) plus the step's scalars.
            let parameters = try #require(many.run?.parameters)
            #expect(many.steps.allSatisfy { $0.allReduceBytes == parameters * 4 + (4 + n) * 8 }, "\(many.steps.first?.allReduceBytes ?? -1)")
            #expect(many.steps.allSatisfy { ($0.communicationSeconds ?? -1) >= 0 })
            #expect(many.output.contains("data-parallel over \(n) ranks"), "\(many.output)")
        }
    }

    @Test("on OpenCL (each rank opens its machine's device local rank mod devices), 2 ranks give one process's losses",
          .enabled(if: OpenCLGate.enabled, OpenCLGate.reason))
    func openCL() throws {
        let dir = try Self.scratch("opencl")
        defer { try? FileManager.default.removeItem(at: dir) }
        let one = try Self.train(ranks: 1, out: dir.appendingPathComponent("n1"), ["--device", "opencl"])
        let two = try Self.train(ranks: 2, out: dir.appendingPathComponent("n2"), ["--device", "opencl"])
        #expect(one.run?.device?.hasPrefix("OpenCL") == true && two.run?.device == one.run?.device, "\(String(describing: two.run?.device))")
        Self.expectClose(one.steps, two.steps, "OpenCL, 2 ranks")
    }

    @Test("two runs with the same number of ranks write bit-identical checkpoints and losses")
    func repeatable() throws {
        let dir = try Self.scratch("repeat")
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try Self.train(ranks: 2, out: dir.appendingPathComponent("a"))
        let b = try Self.train(ranks: 2, out: dir.appendingPathComponent("b"))
        #expect(a.checkpoint == b.checkpoint)
        #expect(a.steps.map(\.loss) == b.steps.map(\.loss) && a.steps.map(\.gradNorm) == b.steps.map(\.gradNorm))
        #expect(a.evals.map(\.valLoss) == b.evals.map(\.valLoss))
    }

    @Test("a run resumes with another number of ranks (2 → 1 and 1 → 3, uneven rows) and continues one process's run; its checkpoint evaluates")
    func resumeWithOtherRanks() throws {
        let dir = try Self.scratch("resume")
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = try Self.train(ranks: 1, out: dir.appendingPathComponent("whole"))
        for (first, second) in [(2, 1), (1, 3)] {
            let out = dir.appendingPathComponent("\(first)to\(second)")
            let sliced = try Self.train(ranks: first, out: out, ["--stop-at", "8"])
            #expect(sliced.steps.count == 8 && sliced.output.contains("stopped at step 8"), "\(sliced.output)")
            let resumed = try Self.train(ranks: second, out: out, ["--resume"])
            Self.expectClose(whole.steps, resumed.steps, "\(first) → \(second) ranks")
            #expect(abs(whole.evals.last!.valLoss - resumed.evals.last!.valLoss) <= 1e-5 * whole.evals.last!.valLoss)
        }
        let ckpt = dir.appendingPathComponent("1to3/checkpoint.safetensors").path
        let (code, out, err) = try MPIGate.run(ranks: 1, ["eval", "--checkpoint", ckpt, "--split", "validation", "--context", "32", "--json"],
                                               in: Self.root)
        #expect(code == 0 && out.contains("\"loss\""), "\(out)\(err)")
    }

    @Test("distillation with the teacher on every rank (logits and hidden states) gives one process's losses")
    func distillation() throws {
        let dir = try Self.scratch("distil")
        defer { try? FileManager.default.removeItem(at: dir) }
        // A dense teacher of the student's width and depth (hidden-state matching needs both).
        let dense = ["--model", "dense", "--layers", "2", "--d-model", "64", "--d-ff", "128", "--context", "32"]
        try Self.train(ranks: 1, out: dir.appendingPathComponent("teacher"), model: dense)
        let teacher = ["--teacher", dir.appendingPathComponent("teacher/checkpoint.safetensors").path, "--distill-hidden", "0.1"]
        let one = try Self.train(ranks: 1, out: dir.appendingPathComponent("n1"), teacher)
        let two = try Self.train(ranks: 2, out: dir.appendingPathComponent("n2"), teacher)
        Self.expectClose(one.steps, two.steps, "distillation, 2 ranks")
        for (x, y) in zip(one.steps, two.steps) {
            #expect(abs((x.distillation ?? .nan) - (y.distillation ?? .nan)) <= 1e-5 * abs(x.distillation ?? 1), "KL at \(x.step)")
            #expect(abs((x.hidden ?? .nan) - (y.hidden ?? .nan)) <= 1e-5 * abs(x.hidden ?? 1), "hidden at \(x.step)")
        }
    }

    @Test("a NaN in one rank's gradient ends every rank with one message naming that rank; the checkpoint stays whole")
    func nonFiniteOnOneRank() throws {
        let dir = try Self.scratch("nan")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run")
        let (code, stdout, stderr) = try MPIGate.run(ranks: 2, ["train"] + Self.model + Self.recipe + ["--out", out.path, "--poison-gradient", "5@1"],
                                                     in: Self.root)
        #expect(code != 0)
        let messages = stderr.components(separatedBy: "non-finite gradient on rank 1").count - 1
        #expect(messages == 1, "stderr:\n\(stderr)")
        #expect(stderr.contains("step 5") && stderr.contains("--skip-nonfinite"), "\(stderr)")
        // The step-0 checkpoint is intact and nothing half-written is left.
        let r = try Self.read(out, output: stdout)
        #expect(r.steps.count == 5)
        #expect(try ModelCheckpoint.open(out.appendingPathComponent("checkpoint.safetensors")).metadata["step"] == "0")
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path)
        #expect(!names.contains { $0.contains(".tmp") }, "\(names)")
        // With --skip-nonfinite every rank skips the same step and the run completes.
        let skipped = dir.appendingPathComponent("skip")
        let s = try Self.train(ranks: 2, out: skipped, ["--poison-gradient", "5@1", "--skip-nonfinite", "1"])
        #expect(s.steps.count == 15 && !s.steps.contains { $0.step == 5 })
    }
}

/// A stand-in for MPI with a fixed place in a job (no communication): the partition arithmetic.
final class PlaceOnly: Collective {
    let rank: Int, size: Int
    var localRank: Int { rank }
    init(rank: Int, size: Int) { self.rank = rank; self.size = size }
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {}
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {}
    func allReduceMax(_ values: UnsafeMutableBufferPointer<UInt64>) throws {}
}

@Suite("Data-parallel pieces")
struct DataParallelPiecesTests {
    @Test("the ranks' rows partition every global batch in order, sizes differing by at most one")
    func rows() {
        for n in 1...5 {
            for b in n...13 {
                let parts = (0..<n).map { PlaceOnly(rank: $0, size: n).rows(of: b) }
                #expect(parts.first!.lowerBound == 0 && parts.last!.upperBound == b)
                #expect(zip(parts, parts.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
                let sizes = parts.map(\.count)
                #expect(sizes.max()! - sizes.min()! <= 1 && sizes.min()! >= 1, "B=\(b) N=\(n): \(sizes)")
            }
        }
    }

    @Test("launchers are recognised from their environment (Open MPI, Hydra/PMI, Slurm's srun steps); one rank is one process")
    func launchers() {
        #expect(LauncherEnvironment.ranks(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3"])! == (3, 4))
        #expect(LauncherEnvironment.ranks(["PMI_SIZE": "2", "PMI_RANK": "1"])! == (1, 2))
        #expect(LauncherEnvironment.ranks(["SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5"])! == (5, 8))
        #expect(LauncherEnvironment.ranks(["OMPI_COMM_WORLD_SIZE": "1", "OMPI_COMM_WORLD_RANK": "0"]) == nil)
        #expect(LauncherEnvironment.ranks(["SLURM_NTASKS": "8", "SLURM_PROCID": "0"]) == nil)   // a batch script, not a step
        #expect(LauncherEnvironment.ranks([:]) == nil && !LauncherEnvironment.launched([:]))
        #expect(LauncherEnvironment.launched(["OMPI_COMM_WORLD_SIZE": "1"]) && LauncherEnvironment.launched(["PMIX_RANK": "0"]))
    }

    @Test("FNV-1a of float bits tells parameter sets apart, including the sign of zero")
    func hash() {
        #expect(fnv1a([1, 2, 3]) == fnv1a([1, 2, 3]))
        #expect(fnv1a([1, 2, 3]) != fnv1a([1, 2, 3.0000002]))
        #expect(fnv1a([0]) != fnv1a([-0.0]))
        #expect(fnv1a([]) == 0xcbf2_9ce4_8422_2325)
    }
}
