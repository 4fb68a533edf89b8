// RunMetrics: one training run's curves, read from the trainer's metrics.jsonl (one JSON object a line).
//
// Records understood (every other field and record type is ignored):
//   {"type":"run","name":"mpo-chi8","parameters":79168,"model":"mpo",...}   (optional, usually first)
//   {"type":"step","step":12,"loss":2.31,...}
//   {"type":"eval","step":100,"train_loss":2.1,"val_loss":2.2,"val_accuracy":0.38,...}
// The records are MetricsRecords.swift's Codable types, read by the code that writes them. Lines
// that are not JSON objects, and step/eval records without their step or any usable value, are
// skipped and counted in `malformedLines`. Non-finite values written as null, "NaN" or "Infinity" are
// kept as NaN/±inf (the plots skip them), so a diverged run still shows where it diverged.

import Foundation

public struct RunMetrics: Sendable {
    /// The run's name: the run record's "name", else the caller's, else derived from the file path.
    public var name: String
    /// Trainable parameter count from the run record, if any (needed for the Pareto plot).
    public var parameters: Int?
    /// Per-step training loss, in file order.
    public var steps: [(step: Int, loss: Double)]
    /// Evaluation records, in file order; a missing value is NaN.
    public var evals: [(step: Int, trainLoss: Double, valLoss: Double, valAccuracy: Double)]
    /// The run record's "model" ("dense", "mpo", ...), if any.
    public var model: String?
    /// Non-empty lines that could not be used.
    public var malformedLines: Int
    /// The largest "elapsed" of any record: the run's wall time in seconds, evaluations included.
    public var wallSeconds: Double?
    /// Each step record's "tokens_per_second" (evaluations excluded), in file order.
    public var stepTokensPerSecond: [Double] = []
    /// The run record's "device", if any.
    public var device: String?

    public init(
        name: String,
        parameters: Int? = nil,
        steps: [(step: Int, loss: Double)] = [],
        evals: [(step: Int, trainLoss: Double, valLoss: Double, valAccuracy: Double)] = [],
        model: String? = nil,
        malformedLines: Int = 0
    ) {
        self.name = name
        self.parameters = parameters
        self.steps = steps
        self.evals = evals
        self.model = model
        self.malformedLines = malformedLines
    }

    /// Reads a metrics.jsonl file. `name` is used when the file has no run record with a name; without
    /// either, the name is the file's stem (or its folder's name when the file is called metrics.*).
    public static func load(_ url: URL, name: String? = nil) throws -> RunMetrics {
        let data = try Data(contentsOf: url)
        return parse(data, name: name ?? defaultName(for: url))
    }

    /// Parses metrics.jsonl content (MetricsRecord, the types the trainer writes); `name` is the
    /// fallback when there is no named run record.
    public static func parse(_ data: Data, name: String) -> RunMetrics {
        var run = RunMetrics(name: name)
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            guard let record = try? MetricsRecord.decode(Data(line)) else {
                run.malformedLines += 1
                continue
            }
            var elapsed: Double? = nil
            switch record {
            case .run(let r):
                if let n = r.name, !n.isEmpty { run.name = n }
                if let p = r.parameters { run.parameters = p }
                if let m = r.model { run.model = m }
                if let d = r.device { run.device = d }
            case .step(let r):
                run.steps.append((r.step, r.loss))
                if r.tokensPerSecond.isFinite { run.stepTokensPerSecond.append(r.tokensPerSecond) }
                elapsed = r.elapsed
            case .eval(let r):
                run.evals.append((r.step, r.trainLoss, r.valLoss, r.valAccuracy))
                elapsed = r.elapsed
            case .nonFinite, .truncation, .other:
                continue  // not part of the curves
            }
            if let e = elapsed, e.isFinite { run.wallSeconds = max(run.wallSeconds ?? 0, e) }
        }
        return run
    }

    /// The last finite validation accuracy, if any.
    public var finalValAccuracy: Double? {
        evals.last(where: { $0.valAccuracy.isFinite })?.valAccuracy
    }

    /// Median training throughput over the step records (robust to the odd slow step), if any.
    public var medianTokensPerSecond: Double? {
        guard !stepTokensPerSecond.isEmpty else { return nil }
        let v = stepTokensPerSecond.sorted(), n = v.count
        return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2])
    }

    /// The last finite validation loss, if any.
    public var finalValLoss: Double? {
        evals.last(where: { $0.valLoss.isFinite })?.valLoss
    }

    // MARK: - helpers

    static func defaultName(for url: URL) -> String {
        let stem = url.deletingPathExtension().lastPathComponent
        if stem.lowercased() == "metrics" {
            let folder = url.deletingLastPathComponent().lastPathComponent
            if !folder.isEmpty, folder != "/", folder != "." { return folder }
        }
        return stem.isEmpty ? "run" : stem
    }
}
