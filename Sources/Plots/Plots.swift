// Plots: the trainer's result figures as SVG files, for one run or several overlaid (one Okabe–Ito
// colour per run, the same colour in every figure):
//   train_loss.svg    per-step training loss, EMA-smoothed, raw steps faint behind
//   val_loss.svg      validation loss at each evaluation
//   val_accuracy.svg  validation accuracy at each evaluation
//   pareto.svg        parameters (log x) vs final validation accuracy, one labelled point per run
//   summary.svg       the four as 2×2 panels with one shared legend

import Foundation
import MPOKit

public enum Plots {
    public struct Options: Sendable {
        /// EMA weight of the newest step in the smoothed training-loss curves (0 < α ≤ 1; 1 = raw).
        public var emaAlpha: Double
        /// Size of each single-figure SVG.
        public var width: Double
        public var height: Double
        /// Size of each panel of summary.svg.
        public var panelWidth: Double
        public var panelHeight: Double

        public init(emaAlpha: Double = 0.1, width: Double = 720, height: Double = 440,
                    panelWidth: Double = 560, panelHeight: Double = 380) {
            self.emaAlpha = emaAlpha
            self.width = width
            self.height = height
            self.panelWidth = panelWidth
            self.panelHeight = panelHeight
        }
    }

    /// The files `write` produces, in the order it returns them.
    public static let fileNames = ["train_loss.svg", "val_loss.svg", "val_accuracy.svg", "pareto.svg", "summary.svg"]

    /// Writes train_loss.svg, val_loss.svg, val_accuracy.svg, pareto.svg (parameters vs final val accuracy;
    /// log-scale x) and summary.svg (the four as 2×2 panels) into `directory`; returns the file URLs.
    /// Works for one run or many (all runs overlaid, one colour per run, legend).
    public static func write(runs: [RunMetrics], to directory: URL) throws -> [URL] {
        try write(runs: runs, to: directory, options: Options())
    }

    public static func write(runs: [RunMetrics], to directory: URL, options: Options) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let c = charts(runs: runs, options: options)
        let documents = [c.trainLoss, c.valLoss, c.valAccuracy, c.pareto].map {
            $0.svg(width: options.width, height: options.height)
        } + [summarySVG(runs: runs, options: options)]
        var urls: [URL] = []
        for (name, text) in zip(fileNames, documents) {
            let url = directory.appendingPathComponent(name)
            try Data(text.utf8).write(to: url, options: .atomic)
            urls.append(url)
        }
        return urls
    }

    /// The four charts, with every run in its own colour (by position in `runs`).
    public static func charts(runs: [RunMetrics], options: Options = Options())
        -> (trainLoss: LineChart, valLoss: LineChart, valAccuracy: LineChart, pareto: LineChart) {
        let alpha = options.emaAlpha
        var train = LineChart(title: alpha > 0 && alpha < 1 ? "Training loss (EMA α = \(PlotScale.compact(alpha)))" : "Training loss",
                              xLabel: "step", yLabel: "loss")
        var valLoss = LineChart(title: "Validation loss", xLabel: "step", yLabel: "loss")
        var valAcc = LineChart(title: "Validation accuracy", xLabel: "step", yLabel: "accuracy")
        train.xFromZero = true
        valLoss.xFromZero = true
        valAcc.xFromZero = true
        for (i, run) in runs.enumerated() {
            let (color, dash) = PlotScale.style(i)
            if !run.steps.isEmpty {
                train.series.append(.init(name: run.name, points: run.steps.map { (Double($0.step), $0.loss) },
                                          color: color, dash: dash, smoothing: alpha))
            } else {  // no per-step records: fall back on the evaluations' training loss
                train.series.append(.init(name: run.name, points: run.evals.map { (Double($0.step), $0.trainLoss) },
                                          color: color, dash: dash, markers: run.evals.count <= 25))
            }
            let markers = run.evals.count <= 25
            valLoss.series.append(.init(name: run.name, points: run.evals.map { (Double($0.step), $0.valLoss) },
                                        color: color, dash: dash, markers: markers))
            valAcc.series.append(.init(name: run.name, points: run.evals.map { (Double($0.step), $0.valAccuracy) },
                                       color: color, dash: dash, markers: markers))
        }
        return (train, valLoss, valAcc, pareto(runs: runs))
    }

    /// Parameters (log x) against the last finite validation accuracy: one labelled point per run that has
    /// both, and a dashed line through the runs no other run beats with fewer parameters.
    public static func pareto(runs: [RunMetrics]) -> LineChart {
        var chart = LineChart(title: "Parameters vs final validation accuracy", xLabel: "parameters (log scale)",
                              yLabel: "final validation accuracy", logX: true)
        chart.xPadding = 0.08
        chart.yPadding = 0.12
        chart.emptyMessage = "no runs with a parameter count and a validation accuracy"
        var points: [(x: Double, y: Double)] = []
        for (i, run) in runs.enumerated() {
            guard let p = run.parameters, p > 0, let acc = run.finalValAccuracy else { continue }
            points.append((Double(p), acc))
            chart.series.append(.init(name: run.name, points: [(Double(p), acc)], color: PlotScale.style(i).color,
                                      markers: true, drawLine: false, label: run.name))
        }
        var frontier: [(x: Double, y: Double)] = []
        for p in points.sorted(by: { $0.x < $1.x || ($0.x == $1.x && $0.y > $1.y) }) where p.y > (frontier.last?.y ?? -.infinity) {
            frontier.append(p)
        }
        if frontier.count > 1 {
            chart.series.insert(.init(name: "Pareto frontier", points: frontier, color: "#999999", dash: "5 4"), at: 0)
        }
        return chart
    }

    /// The four charts as 2×2 panels with a single legend of the runs on the right.
    public static func summarySVG(runs: [RunMetrics], options: Options = Options()) -> String {
        let c = charts(runs: runs, options: options)
        let pw = options.panelWidth, ph = options.panelHeight
        let header = 40.0
        // Legend entries: name and parameter count, cut to a sensible width.
        let names = runs.map { run -> String in
            let base = PlotScale.truncate(run.name, maxChars: 32)
            return run.parameters.map { "\(base) (\(PlotScale.compact(Double($0))) params)" } ?? base
        }
        let textWidth = names.map { PlotScale.textWidth($0, size: LineChart.legendFont) }.max() ?? 0
        let legendWidth = runs.isEmpty ? 0 : LineChart.legendSwatch + 6 + textWidth + 24
        let width = 2 * pw + legendWidth, height = header + 2 * ph
        let title = runs.count == 1 ? "Training summary: \(runs[0].name)" : "Training summary: \(runs.count) runs"
        var out = LineChart.header(width: width, height: height, title: title)
        out += "<text class=\"title\" x=\"\(PlotScale.coord(width / 2))\" y=\"26\" text-anchor=\"middle\" font-size=\"17\" "
        out += "font-weight=\"bold\" fill=\"#222222\">\(PlotScale.escapeXML(title))</text>\n"
        for (i, var chart) in [c.trainLoss, c.valLoss, c.valAccuracy, c.pareto].enumerated() {
            chart.showLegend = false
            let x = Double(i % 2) * pw, y = header + Double(i / 2) * ph
            out += "<g class=\"panel\" transform=\"translate(\(PlotScale.coord(x)) \(PlotScale.coord(y)))\">\n"
            out += chart.body(width: pw, height: ph, id: "p\(i)")
            out += "</g>\n"
        }
        if !runs.isEmpty {
            let entries = runs.indices.map { i in
                LineChart.LegendEntry(name: names[i], color: PlotScale.style(i).color, dash: PlotScale.style(i).dash, marker: false)
            }
            out += LineChart.legend(entries, x: 2 * pw + 8, y: header + 40)
        }
        return out + "</svg>\n"
    }
}
