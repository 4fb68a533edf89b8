// The SVG plotting component (Sources/Plots): metrics.jsonl parsing, nice ticks and their
// labels, well-formed SVG with one polyline per series, data-to-pixel mapping, NaN skipping, and the
// five files Plots.write produces.

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import MPOKit
@testable import Plots

@Suite("Plots")
struct PlotTests {
    // MARK: - helpers

    static func tempDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("plot-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Parses an SVG document; throws when it is not well-formed XML.
    static func parse(_ svg: String) throws -> XMLElement {
        let doc = try XMLDocument(xmlString: svg, options: [])
        return try #require(doc.rootElement())
    }

    /// Every element below (and including) `root` with the given local name.
    static func elements(_ root: XMLElement, named name: String) -> [XMLElement] {
        var found: [XMLElement] = []
        func walk(_ e: XMLElement) {
            if (e.localName ?? e.name) == name { found.append(e) }
            for child in e.children ?? [] { if let c = child as? XMLElement { walk(c) } }
        }
        walk(root)
        return found
    }

    static func attribute(_ e: XMLElement, _ name: String) -> String? {
        // (FoundationXML's attribute(forName:) finds nothing in a default namespace; search the list.)
        e.attributes?.first { $0.name == name }?.stringValue
    }

    /// The (x, y) pairs of a polyline's points attribute.
    static func points(_ e: XMLElement) -> [(Double, Double)] {
        (attribute(e, "points") ?? "").split(separator: " ").map { pair in
            let v = pair.split(separator: ",").map { Double($0)! }
            return (v[0], v[1])
        }
    }

    static func polylines(_ root: XMLElement, class cls: String) -> [XMLElement] {
        elements(root, named: "polyline").filter { attribute($0, "class") == cls }
    }

    static func texts(_ root: XMLElement) -> [String] {
        elements(root, named: "text").compactMap(\.stringValue)
    }

    static func syntheticRun(_ name: String, parameters: Int?, scale: Double, steps: Int = 400) -> RunMetrics {
        var rng = SystemRandomNumberGenerator()
        let stepLoss = (1...steps).map { s -> (step: Int, loss: Double) in
            (s, 1.4 + scale * 3.0 * exp(-Double(s) / 80) + Double.random(in: -0.15...0.15, using: &rng))
        }
        let evals = stride(from: 50, through: steps, by: 50).map { s -> (step: Int, trainLoss: Double, valLoss: Double, valAccuracy: Double) in
            let l = 1.4 + scale * 3.0 * exp(-Double(s) / 80)
            return (s, l, l + 0.08, 0.55 - 0.1 * scale - 0.3 * exp(-Double(s) / 90))
        }
        return RunMetrics(name: name, parameters: parameters, steps: stepLoss, evals: evals)
    }

    // MARK: - metrics.jsonl

    @Test("parses run, step and eval records; skips and counts malformed lines")
    func parseMetrics() throws {
        let text = """
        {"type":"run","name":"mpo-chi8","parameters":79168,"model":"mpo","chi":8,"extra":{"a":[1,2]}}
        {"type":"step","step":1,"loss":4.5,"accuracy":0.05,"lr":0.0003,"grad_norm":0.9,"tokens_per_second":12000,"elapsed":0.1}
        {"type":"step","step":2,"loss":"NaN","lr":0.0003}
        not json at all
        {"type":"step","loss":2.0}

        {"type":"step","step":3,"loss":2.31,"new_field":true,"tokens_per_second":9000}
        {"type":"step","step":3,"loss":2.3,"tokens_per_second":10000,"elapsed":0.3}
        {"type":"hyperparameters","lr":0.001}
        {"type":"eval","step":100,"train_loss":2.1,"train_accuracy":0.4,"val_loss":2.2,"val_accuracy":0.38,"elapsed":30.1}
        {"type":"eval","train_loss":2.0}
        [1, 2, 3]
        {"type":"eval","step":200,"train_loss":1.9,"val_loss":2.05,"val_accuracy":0.41}
        {"type":"step","step":4,"loss":
        """
        // (the repeated step 3 record stands in for a resumed run re-logging a step)
        let dir = try Self.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("metrics.jsonl")
        try text.write(to: url, atomically: true, encoding: .utf8)

        let run = try RunMetrics.load(url, name: "fallback")
        #expect(run.name == "mpo-chi8")
        #expect(run.parameters == 79_168)
        #expect(run.model == "mpo")
        #expect(run.steps.map(\.step) == [1, 2, 3, 3])
        #expect(run.steps[0].loss == 4.5 && run.steps[2].loss == 2.31)
        #expect(run.steps[1].loss.isNaN)
        #expect(run.evals.count == 2)
        #expect(run.evals[0].step == 100 && run.evals[0].trainLoss == 2.1 && run.evals[0].valLoss == 2.2)
        #expect(run.evals[1].valAccuracy == 0.41)
        #expect(run.finalValAccuracy == 0.41)
        // "not json", step without "step", eval without "step", a JSON array, the truncated last line.
        #expect(run.malformedLines == 5)
        // Wall time is the largest "elapsed" of any record; tokens/s the median of the step records.
        #expect(run.wallSeconds == 30.1)
        #expect(run.stepTokensPerSecond == [12000, 9000, 10000])
        #expect(run.medianTokensPerSecond == 10000)
    }

    @Test("without a run record the caller's name, else the folder's, is used")
    func nameFallback() throws {
        let dir = try Self.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = dir.appendingPathComponent("dense-baseline")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent("metrics.jsonl")
        try "{\"type\":\"step\",\"step\":1,\"loss\":3}\n".write(to: url, atomically: true, encoding: .utf8)
        #expect(try RunMetrics.load(url, name: "given").name == "given")
        let run = try RunMetrics.load(url)
        #expect(run.name == "dense-baseline")
        #expect(run.parameters == nil && run.steps.count == 1 && run.malformedLines == 0)
    }

    // MARK: - ticks

    @Test("nice linear ticks are 1/2/5 × 10^k inside the range")
    func linearTicks() {
        #expect(PlotScale.niceTicks(0.37, 2.9) == [0.5, 1, 1.5, 2, 2.5])
        #expect(PlotScale.niceTicks(0, 5000, target: 6) == [0, 1000, 2000, 3000, 4000, 5000])
        let small = PlotScale.niceTicks(0.30, 0.42, target: 5)
        #expect(small.count >= 3 && small.count <= 7)
        #expect(small.allSatisfy { $0 >= 0.30 - 1e-12 && $0 <= 0.42 + 1e-12 })
        #expect(PlotScale.niceTicks(-1.2, 1.3, target: 5) == [-1, -0.5, 0, 0.5, 1])
    }

    @Test("tick labels have no floating-point noise and use k/M suffixes")
    func tickLabels() {
        #expect(PlotScale.tickLabels([0.1, 0.2, 0.1 + 0.2]) == ["0.1", "0.2", "0.3"])
        #expect(PlotScale.tickLabels([0.5, 1, 1.5, 2]) == ["0.5", "1.0", "1.5", "2.0"])
        #expect(PlotScale.tickLabels([0, 10_000, 20_000]) == ["0", "10k", "20k"])
        #expect(PlotScale.tickLabels([0, 500, 1000]) == ["0", "500", "1000"])
        #expect(PlotScale.tickLabels([0, 0.02, 0.04]) == ["0", "0.02", "0.04"])
        #expect(PlotScale.tickLabels([-0.5, 0, 0.5]) == ["-0.5", "0", "0.5"])
        let labels = PlotScale.tickLabels(PlotScale.niceTicks(0, 0.9, target: 10))
        #expect(labels.allSatisfy { $0.count <= 4 })
        #expect(PlotScale.compact(79_168) == "79.2k")
    }

    @Test("log ticks are decades, or 1/2/5 multiples on a narrow range")
    func logTicks() {
        #expect(PlotScale.logTicks(1e4, 1e6) == [1e4, 1e5, 1e6])
        #expect(PlotScale.logTicks(30_000, 200_000) == [50_000, 100_000, 200_000])
        #expect(PlotScale.tickLabels(PlotScale.logTicks(30_000, 200_000)) == ["50k", "100k", "200k"])
    }

    // MARK: - SVG

    @Test("the SVG is well-formed, with one polyline per series and the legend names")
    func wellFormedSVG() throws {
        let chart = LineChart(title: "Loss <test>", xLabel: "step", yLabel: "loss", series: [
            .init(name: "dense", points: [(0, 3), (10, 2), (20, 1.5)]),
            .init(name: "mpo-chi8", points: [(0, 3.2), (10, 2.4), (20, 1.9)]),
            .init(name: "a<b & \"c\"", points: [(0, 3.5), (20, 2.5)]),
        ])
        let svg = chart.svg(width: 640, height: 400)
        let root = try Self.parse(svg)
        #expect(root.localName == "svg")
        #expect(root.uri == "http://www.w3.org/2000/svg")
        #expect(Self.attribute(root, "viewBox") == "0 0 640 400")
        #expect(Self.attribute(root, "font-family") == "sans-serif")
        #expect(Self.polylines(root, class: "series").count == 3)
        let legend = try #require(Self.elements(root, named: "g").first { Self.attribute($0, "class") == "legend" })
        #expect(Self.texts(legend) == ["dense", "mpo-chi8", "a<b & \"c\""])
        #expect(Self.texts(root).contains("Loss <test>"))
        // Legend sits right of the plot area, all text is at least 11px.
        let frame = try #require(Self.elements(root, named: "rect").first { Self.attribute($0, "class") == "frame" })
        let right = Double(Self.attribute(frame, "x")!)! + Double(Self.attribute(frame, "width")!)!
        for t in Self.elements(legend, named: "text") { #expect(Double(Self.attribute(t, "x")!)! > right) }
        let sizes = Self.elements(root, named: "g").compactMap { Self.attribute($0, "font-size") }.compactMap(Double.init)
        #expect(!sizes.isEmpty && sizes.allSatisfy { $0 >= 11 })
    }

    @Test("data coordinates map onto the plot area's edges")
    func coordinates() throws {
        var chart = LineChart(xLabel: "x", yLabel: "y", series: [.init(name: "s", points: [(0, 1), (50, 4), (100, 2)])])
        chart.yPadding = 0
        let layout = chart.layout(width: 600, height: 400)
        let pts = Self.points(try #require(Self.polylines(try Self.parse(chart.svg(width: 600, height: 400)), class: "series").first))
        #expect(pts.count == 3)
        #expect(abs(pts[0].0 - layout.plotX) < 0.01)          // x min → left edge
        #expect(abs(pts[2].0 - layout.plotRight) < 0.01)      // x max → right edge
        #expect(abs(pts[1].0 - (layout.plotX + layout.plotWidth / 2)) < 0.01)
        #expect(abs(pts[0].1 - layout.plotBottom) < 0.01)     // y min → bottom
        #expect(abs(pts[1].1 - layout.plotY) < 0.01)          // y max → top
        #expect(layout.plotRight <= 600 && layout.plotX > 0)
        // Log x: a decade in the middle lands in the middle.
        var log = LineChart(series: [.init(name: "p", points: [(1e3, 0), (1e4, 1), (1e5, 2)])], logX: true)
        log.showLegend = false
        let L = log.layout(width: 500, height: 300)
        #expect(abs(L.px(1e4) - (L.plotX + L.plotWidth / 2)) < 1e-9)
        #expect(abs(L.px(1e5) - L.plotRight) < 1e-9)
    }

    @Test("NaN and infinite values are skipped, as is x ≤ 0 on a log axis")
    func skipsNonFinite() throws {
        let chart = LineChart(series: [.init(name: "s", points: [(1, 2), (2, .nan), (3, .infinity), (.nan, 1), (4, 3), (5, 2.5)])])
        let root = try Self.parse(chart.svg())
        let line = try #require(Self.polylines(root, class: "series").first)
        #expect(Self.points(line).count == 3)
        #expect(!chart.svg().contains("nan") && !chart.svg().contains("inf"))
        let log = LineChart(series: [.init(name: "s", points: [(-1, 1), (0, 1), (10, 2), (100, 3)])], logX: true)
        #expect(Self.points(try #require(Self.polylines(try Self.parse(log.svg()), class: "series").first)).count == 2)
    }

    @Test("single points, empty series and constant series still draw sensibly")
    func degenerateData() throws {
        let single = try Self.parse(LineChart(series: [.init(name: "one", points: [(5, 0.4)])]).svg())
        #expect(Self.polylines(single, class: "series").isEmpty)
        #expect(Self.elements(single, named: "circle").count == 1)  // the point (the legend uses a line)

        let empty = try Self.parse(LineChart(series: [.init(name: "none", points: [])]).svg())
        #expect(Self.elements(empty, named: "polyline").isEmpty)
        #expect(Self.texts(empty).contains("no data"))

        let constant = LineChart(series: [.init(name: "flat", points: [(0, 0.5), (1, 0.5), (2, 0.5)])])
        let L = constant.layout(width: 600, height: 400)
        #expect(L.yDomain.lowerBound < 0.5 && L.yDomain.upperBound > 0.5)
        #expect(L.yTicks.count >= 2)
        let labels = PlotScale.tickLabels(L.yTicks)
        #expect(Set(labels).count == labels.count)
        #expect(try Self.polylines(Self.parse(constant.svg()), class: "series").count == 1)
    }

    @Test("EMA smoothing draws the smoothed curve over a faint raw one")
    func smoothing() throws {
        #expect(LineChart.ema([1, 3, 3], alpha: 0.5) == [1, 2, 2.5])
        #expect(LineChart.ema([1, .nan, 3], alpha: 0.5) == [1, 1, 2])
        let chart = LineChart(series: [
            .init(name: "a", points: (0..<50).map { (Double($0), Double($0 % 2)) }, smoothing: 0.1),
            .init(name: "b", points: (0..<50).map { (Double($0), 2 + Double($0 % 3)) }, smoothing: 0.1),
        ])
        let root = try Self.parse(chart.svg())
        #expect(Self.polylines(root, class: "series").count == 2)
        #expect(Self.polylines(root, class: "raw").count == 2)
    }

    @Test("long series are thinned but keep their ends")
    func thinning() throws {
        let n = 100_000
        let chart = LineChart(series: [.init(name: "long", points: (0..<n).map { (Double($0), sin(Double($0) / 500)) })])
        let L = chart.layout(width: 720, height: 440)
        let pts = Self.points(try #require(Self.polylines(try Self.parse(chart.svg()), class: "series").first))
        #expect(pts.count < Int(L.plotWidth) * 5)
        #expect(abs(pts.last!.0 - L.plotRight) < 0.01 && abs(pts.first!.0 - L.plotX) < 0.01)
        #expect(abs(pts.map(\.1).min()! - L.py(1)) < 1 && abs(pts.map(\.1).max()! - L.py(-1)) < 1)
    }

    // MARK: - Plots.write

    @Test("write() creates the five files; Pareto labels only runs with a parameter count")
    func writeFiles() throws {
        let runs = [
            Self.syntheticRun("dense", parameters: 808_448, scale: 0.8),
            Self.syntheticRun("mpo-chi8", parameters: 79_168, scale: 1.0),
            Self.syntheticRun("no-params & <co>", parameters: nil, scale: 1.2),
            Self.syntheticRun("mpo-chi16", parameters: 177_408, scale: 0.9, steps: 300),
        ]
        // PLOT_TESTS_KEEP=/some/dir keeps the figures there for a look by eye.
        let keep = ProcessInfo.processInfo.environment["PLOT_TESTS_KEEP"].map { URL(fileURLWithPath: $0) }
        let dir = try keep ?? Self.tempDirectory().appendingPathComponent("plots")
        defer { if keep == nil { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) } }
        let urls = try Plots.write(runs: runs, to: dir)
        #expect(urls.map(\.lastPathComponent) == ["train_loss.svg", "val_loss.svg", "val_accuracy.svg", "pareto.svg", "summary.svg"])
        var roots: [String: XMLElement] = [:]
        for url in urls {
            #expect(FileManager.default.fileExists(atPath: url.path))
            roots[url.lastPathComponent] = try Self.parse(String(contentsOf: url, encoding: .utf8))
        }
        let train = try #require(roots["train_loss.svg"])
        #expect(Self.polylines(train, class: "series").count == 4 && Self.polylines(train, class: "raw").count == 4)
        #expect(Self.polylines(try #require(roots["val_loss.svg"]), class: "series").count == 4)
        let pareto = try #require(roots["pareto.svg"])
        let labels = Self.texts(try #require(Self.elements(pareto, named: "g").first { Self.attribute($0, "class") == "labels" }))
        #expect(Set(labels) == ["dense", "mpo-chi8", "mpo-chi16"])
        #expect(Self.elements(pareto, named: "circle").count >= 2)
        let summary = try #require(roots["summary.svg"])
        #expect(Self.elements(summary, named: "g").filter { Self.attribute($0, "class") == "panel" }.count == 4)
        #expect(Self.texts(summary).contains { $0.hasPrefix("no-params & <co>") })
        // Same colour for a run in every figure.
        let colors = ["train_loss.svg", "val_loss.svg", "val_accuracy.svg"].map { name in
            Self.polylines(roots[name]!, class: "series").map { Self.attribute($0, "stroke")! }
        }
        #expect(colors[0] == colors[1] && colors[1] == colors[2] && Set(colors[0]).count == 4)
    }

    @Test("write() with no runs still writes valid, empty figures")
    func writeNoRuns() throws {
        let dir = try Self.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let urls = try Plots.write(runs: [], to: dir)
        #expect(urls.count == 5)
        for url in urls { _ = try Self.parse(String(contentsOf: url, encoding: .utf8)) }
    }
}
