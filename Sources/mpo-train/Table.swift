// `mpo-train table`: one results table (markdown + JSON) and overlaid plots from finished run
// directories. `sweep` ends with the same tabulation; runs trained separately (for example two
// 1-thread runs side by side) are collected with this command.

import ArgumentParser
import Foundation
import MPOKit

struct Table: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tabulate finished runs (their metrics.jsonl) into results.md, results.json and plots.",
        discussion: """
        The first run is the baseline for the compression ratio and the accuracy gap. Wall time is
        the last record's elapsed time (evaluations included); tokens/s is the median over steps.

        Example:
          mpo-train table results/paper-sweep/dense results/paper-sweep/mpo-chi{4,8,16,32} --out results/paper-sweep
        """)

    @Argument(help: "Run directories (holding metrics.jsonl) or metrics files; the first is the baseline.") var runs: [String]
    @Option(help: "Directory for results.md, results.json and the plots.") var out: String

    func run() throws {
        let urls = runs.map { path -> URL in
            let url = URL(fileURLWithPath: path)
            var isDir: ObjCBool = false
            let isFolder = FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
            return isFolder || !path.hasSuffix(".jsonl") ? url.appendingPathComponent("metrics.jsonl") : url
        }
        for url in urls where !FileManager.default.fileExists(atPath: url.path) {
            throw ValidationError("no metrics file at \(url.path): pass run directories written by `mpo-train train` or `sweep`")
        }
        try tabulate(runs: urls.map { ($0, nil) }, to: URL(fileURLWithPath: out))
    }
}

/// Reads each run's metrics, writes results.json, results.md and the overlaid plots into
/// `directory` and prints the table. The first run is the baseline.
func tabulate(runs: [(URL, String?)], to directory: URL, extra: [String: Any] = [:]) throws {
    let metrics = try runs.map { try RunMetrics.load($0.0, name: $0.1) }
    for m in metrics where m.evals.isEmpty || m.parameters == nil {
        throw ValidationError("run '\(m.name)' has no evaluation or no run record: is its training finished?")
    }
    let base = metrics[0]
    var rows: [[String: Any]] = []
    for m in metrics {
        let last = m.evals.last!, first = m.evals.first!
        rows.append(["name": m.name, "parameters": m.parameters!, "device": m.device ?? "",
                     "compression_ratio": Double(base.parameters!) / Double(m.parameters!),
                     "val_loss": last.valLoss, "val_accuracy": last.valAccuracy, "train_loss": last.trainLoss,
                     "accuracy_gap": last.valAccuracy - base.evals.last!.valAccuracy,
                     "initial_val_loss": first.valLoss, "initial_val_accuracy": first.valAccuracy,
                     "steps": m.steps.count, "wall_seconds": m.wallSeconds ?? 0,
                     "tokens_per_second": m.medianTokensPerSecond ?? 0])
    }
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    var summary = extra
    summary["runs"] = rows
    let json = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
    try json.write(to: directory.appendingPathComponent("results.json"))
    let table = markdownTable(rows)
    try Data(table.utf8).write(to: directory.appendingPathComponent("results.md"))
    print("\n" + table)
    try writePlots(metrics, to: directory)
}

func markdownTable(_ rows: [[String: Any]]) -> String {
    var s = "| model | parameters | ratio | steps | val loss at step 0 | val loss | val acc | gap to first | wall time | tokens/s |\n"
    s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for r in rows {
        s += String(format: "| %@ | %d | %.1f× | %d | %.4f | %.4f | %.2f %% | %+.2f pp | %@ | %.0f |\n",
                    r["name"] as! String, r["parameters"] as! Int, r["compression_ratio"] as! Double, r["steps"] as! Int,
                    r["initial_val_loss"] as! Double, r["val_loss"] as! Double, 100 * (r["val_accuracy"] as! Double),
                    100 * (r["accuracy_gap"] as! Double), duration(r["wall_seconds"] as! Double), r["tokens_per_second"] as! Double)
    }
    return s
}
