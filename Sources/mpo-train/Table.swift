// `mpo-train table`: one results table (markdown + JSON) and overlaid plots from finished run
// directories. `sweep` ends with the same tabulation; runs trained separately (for example two
// 1-thread runs side by side) are collected with this command.

import ArgumentParser
import Foundation
import MPOKit
import Plots

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

/// One row of the results table (results.json writes it with snake_case keys).
struct ResultRow: Codable, Equatable {
    var name: String
    var parameters: Int
    var device: String
    var compressionRatio: Double
    var valLoss: Double, valAccuracy: Double, trainLoss: Double
    /// Validation accuracy minus the baseline's (the first run's).
    var accuracyGap: Double
    var initialValLoss: Double, initialValAccuracy: Double
    var steps: Int
    var wallSeconds: Double
    var tokensPerSecond: Double
}

/// results.json: the rows and, from `sweep`, what they share.
struct ResultsFile: Encodable {
    var device: String? = nil
    var seed: Int? = nil
    var finetuneFrom: String? = nil
    var runs: [ResultRow] = []
}

/// Reads each run's metrics, writes results.json, results.md and the overlaid plots into
/// `directory` and prints the table. The first run is the baseline.
func tabulate(runs: [(URL, String?)], to directory: URL, summary: ResultsFile = ResultsFile()) throws {
    let metrics = try runs.map { try RunMetrics.load($0.0, name: $0.1) }
    var rows: [ResultRow] = []
    for m in metrics {
        guard let last = m.evals.last, let first = m.evals.first, let parameters = m.parameters else {
            throw ValidationError("run '\(m.name)' has no evaluation or no run record: is its training finished?")
        }
        let base = rows.first
        rows.append(ResultRow(name: m.name, parameters: parameters, device: m.device ?? "",
                              compressionRatio: Double(base?.parameters ?? parameters) / Double(parameters),
                              valLoss: last.valLoss, valAccuracy: last.valAccuracy, trainLoss: last.trainLoss,
                              accuracyGap: last.valAccuracy - (base?.valAccuracy ?? last.valAccuracy),
                              initialValLoss: first.valLoss, initialValAccuracy: first.valAccuracy,
                              steps: m.steps.count, wallSeconds: m.wallSeconds ?? 0,
                              tokensPerSecond: m.medianTokensPerSecond ?? 0))
    }
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    var file = summary
    file.runs = rows
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    try encoder.encode(file).write(to: directory.appendingPathComponent("results.json"))
    let table = markdownTable(rows)
    try Data(table.utf8).write(to: directory.appendingPathComponent("results.md"))
    print("\n" + table)
    try writePlots(metrics, to: directory)
}

func markdownTable(_ rows: [ResultRow]) -> String {
    var s = "| model | parameters | ratio | steps | val loss at step 0 | val loss | val acc | gap to first | wall time | tokens/s |\n"
    s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for r in rows {
        s += String(format: "| %@ | %d | %.1f× | %d | %.4f | %.4f | %.2f %% | %+.2f pp | %@ | %.0f |\n",
                    r.name, r.parameters, r.compressionRatio, r.steps, r.initialValLoss, r.valLoss, 100 * r.valAccuracy,
                    100 * r.accuracyGap, duration(r.wallSeconds), r.tokensPerSecond)
    }
    return s
}
