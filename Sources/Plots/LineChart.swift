// LineChart: a small self-contained SVG 1.1 line/scatter chart for training curves.
//
// Named series of (x, y) points, drawn as polylines (class "series") and/or circle markers; optional
// EMA smoothing per series with the raw points as a faint polyline (class "raw") behind; nice 1/2/5
// ticks on linear or log-x axes; axis labels, title, light grid; a legend outside the plot area on
// the right; optional text labels at a series' last point (nudged apart so they don't overlap).
// NaN/±inf points (and x ≤ 0 on a log axis) are skipped; constant or single-point data get a padded
// range; long series are thinned to a few points per pixel column (keeping each column's extremes).

import Foundation

public struct LineChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// Stroke/fill colour; nil takes the palette colour for the series' index.
        public var color: String?
        /// SVG stroke-dasharray, e.g. "6 3"; nil is solid.
        public var dash: String?
        /// EMA weight of the newest point (0 < α ≤ 1): draws the smoothed curve, raw points faint behind.
        public var smoothing: Double?
        /// Draw a circle at every point (a single point always gets one).
        public var markers: Bool
        /// Draw the connecting polyline.
        public var drawLine: Bool
        /// Text drawn next to the series' last point (e.g. a run name on a scatter plot).
        public var label: String?
        /// List the series in the legend.
        public var inLegend: Bool

        public init(name: String, points: [(x: Double, y: Double)], color: String? = nil, dash: String? = nil,
                    smoothing: Double? = nil, markers: Bool = false, drawLine: Bool = true,
                    label: String? = nil, inLegend: Bool = true) {
            self.name = name
            self.points = points
            self.color = color
            self.dash = dash
            self.smoothing = smoothing
            self.markers = markers
            self.drawLine = drawLine
            self.label = label
            self.inLegend = inLegend
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Logarithmic x axis (points with x ≤ 0 are skipped).
    public var logX: Bool
    /// Fixed axis ranges; nil fits the data (anything outside a fixed range is clipped).
    public var xRange: ClosedRange<Double>?
    public var yRange: ClosedRange<Double>?
    /// Fraction of the data span added on each side when fitting (in log space for a log axis).
    public var xPadding: Double = 0
    public var yPadding: Double = 0.05
    /// Start a fitted linear x axis at 0 when the data are all positive (training steps).
    public var xFromZero: Bool = false
    public var showLegend: Bool = true
    /// Shown in the middle of the plot area when there is nothing to draw.
    public var emptyMessage: String = "no data"

    public init(title: String = "", xLabel: String = "", yLabel: String = "", series: [Series] = [],
                logX: Bool = false) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.logX = logX
    }

    /// Where everything goes for a given canvas size; `px`/`py` map data to SVG coordinates.
    public struct Layout: Sendable {
        public var width: Double, height: Double
        /// The plot area (axes box) in SVG coordinates; y grows downwards.
        public var plotX: Double, plotY: Double, plotWidth: Double, plotHeight: Double
        public var xDomain: ClosedRange<Double>, yDomain: ClosedRange<Double>
        public var logX: Bool
        public var xTicks: [Double], yTicks: [Double]
        /// Left edge of the legend column (when there is a legend).
        public var legendX: Double
        /// Legend names after truncation to the legend column's width.
        public var legendNames: [String]

        public var plotRight: Double { plotX + plotWidth }
        public var plotBottom: Double { plotY + plotHeight }

        public func px(_ x: Double) -> Double {
            let (a, b, v) = logX
                ? (log10(xDomain.lowerBound), log10(xDomain.upperBound), log10(x))
                : (xDomain.lowerBound, xDomain.upperBound, x)
            return plotX + (v - a) / (b - a) * plotWidth
        }

        public func py(_ y: Double) -> Double {
            let (a, b) = (yDomain.lowerBound, yDomain.upperBound)
            return plotBottom - (y - a) / (b - a) * plotHeight
        }
    }

    // MARK: - fonts and spacing

    static let tickFont = 12.0, labelFont = 13.0, titleFont = 15.0, legendFont = 12.0
    static let legendRow = 18.0, legendSwatch = 22.0

    // MARK: - data preparation

    /// The finite points of a series as drawn (smoothed when the series asks for it).
    func drawnPoints(_ s: Series) -> (raw: [(x: Double, y: Double)], main: [(x: Double, y: Double)]) {
        let raw = s.points.filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) }
        guard let alpha = s.smoothing, alpha > 0, alpha < 1, raw.count > 1 else { return (raw, raw) }
        return (raw, zip(raw, LineChart.ema(raw.map(\.y), alpha: alpha)).map { ($0.0.x, $0.1) })
    }

    /// Exponential moving average: s₀ = y₀, sᵢ = α·yᵢ + (1 − α)·sᵢ₋₁ (non-finite values are passed over).
    public static func ema(_ ys: [Double], alpha: Double) -> [Double] {
        var out: [Double] = []
        out.reserveCapacity(ys.count)
        var s: Double?
        for y in ys {
            if y.isFinite { s = s.map { alpha * y + (1 - alpha) * $0 } ?? y }
            out.append(s ?? y)
        }
        return out
    }

    static func fit(_ values: [Double], padding: Double, log: Bool) -> ClosedRange<Double> {
        let v = log ? values.filter { $0 > 0 }.map(log10) : values
        guard var lo = v.min(), var hi = v.max() else { return log ? 1...10 : 0...1 }
        if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1e-300) {
            let d = log ? 0.3 : (lo == 0 ? 1 : abs(lo) * 0.1)  // constant: ×/÷ 2 on a log axis
            lo -= d; hi += d
        } else {
            let p = (hi - lo) * max(0, padding)
            lo -= p; hi += p
        }
        return log ? pow(10, lo)...pow(10, hi) : lo...hi
    }

    // MARK: - layout

    public func layout(width: Double, height: Double) -> Layout {
        let prepared = series.map(drawnPoints)
        let xs = prepared.flatMap { $0.main.map(\.x) }, ys = prepared.flatMap { $0.main.map(\.y) }
        var xDomain = xRange ?? LineChart.fit(xs, padding: xPadding, log: logX)
        if xRange == nil, xFromZero, !logX, xs.count > 1, xDomain.lowerBound > 0 { xDomain = 0...xDomain.upperBound }
        if logX, xDomain.lowerBound <= 0 { xDomain = max(xDomain.upperBound / 1000, 1e-300)...max(xDomain.upperBound, 1e-299) }
        if xDomain.lowerBound == xDomain.upperBound { xDomain = LineChart.fit([xDomain.lowerBound], padding: 0, log: logX) }
        var yDomain = yRange ?? LineChart.fit(ys, padding: yPadding, log: false)
        if yDomain.lowerBound == yDomain.upperBound { yDomain = LineChart.fit([yDomain.lowerBound], padding: 0, log: false) }

        let top = title.isEmpty ? 14.0 : 40.0
        let bottom = LineChart.tickFont + LineChart.labelFont + (xLabel.isEmpty ? 18 : 28)
        let plotHeight = max(20, height - top - bottom)
        let yTicks = PlotScale.niceTicks(yDomain.lowerBound, yDomain.upperBound,
                                         target: max(2, min(8, Int(plotHeight / 55))))
        let yLabelWidth = PlotScale.tickLabels(yTicks).map { PlotScale.textWidth($0, size: LineChart.tickFont) }.max() ?? 0
        let left = 10 + (yLabel.isEmpty ? 0 : LineChart.labelFont + 12) + yLabelWidth + 8

        // Legend column on the right, at most ~35% of the width.
        let legendEntries = series.filter(\.inLegend).map(\.name)
        var legendNames: [String] = []
        var right = 16.0
        if showLegend, !legendEntries.isEmpty {
            let maxChars = max(4, Int((width * 0.35 - LineChart.legendSwatch - 14) / (LineChart.legendFont * 0.6)))
            legendNames = legendEntries.map { PlotScale.truncate($0, maxChars: maxChars) }
            let textWidth = legendNames.map { PlotScale.textWidth($0, size: LineChart.legendFont) }.max() ?? 0
            right = 18 + LineChart.legendSwatch + 6 + textWidth + 10
        }
        var plotWidth = max(20, width - left - right)
        var xTicks = logX
            ? PlotScale.logTicks(xDomain.lowerBound, xDomain.upperBound, target: max(2, min(8, Int(plotWidth / 90))))
            : PlotScale.niceTicks(xDomain.lowerBound, xDomain.upperBound, target: max(2, min(8, Int(plotWidth / 90))))
        // Keep the last x tick label inside the canvas when there is no legend to absorb it.
        if legendNames.isEmpty, let last = PlotScale.tickLabels(xTicks).last {
            let half = PlotScale.textWidth(last, size: LineChart.tickFont) / 2 + 4
            if half > right { right = half; plotWidth = max(20, width - left - right) }
        }
        // Thin x ticks whose labels would collide.
        let xLabelWidth = PlotScale.tickLabels(xTicks).map { PlotScale.textWidth($0, size: LineChart.tickFont) }.max() ?? 0
        if xTicks.count > 2, plotWidth / Double(xTicks.count - 1) < xLabelWidth + 10 {
            let every = Int(((xLabelWidth + 10) * Double(xTicks.count - 1) / plotWidth).rounded(.up))
            xTicks = xTicks.enumerated().filter { $0.offset % every == 0 }.map(\.element)
        }
        return Layout(width: width, height: height, plotX: left, plotY: top, plotWidth: plotWidth,
                      plotHeight: plotHeight, xDomain: xDomain, yDomain: yDomain, logX: logX,
                      xTicks: xTicks, yTicks: yTicks, legendX: left + plotWidth + 18, legendNames: legendNames)
    }

    // MARK: - SVG

    /// A standalone SVG 1.1 document.
    public func svg(width: Double = 720, height: Double = 440) -> String {
        var out = LineChart.header(width: width, height: height, title: title)
        out += body(width: width, height: height, id: "c")
        out += "</svg>\n"
        return out
    }

    static func header(width: Double, height: Double, title: String) -> String {
        let w = PlotScale.coord(width), h = PlotScale.coord(height)
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(w)\" height=\"\(h)\" "
        s += "viewBox=\"0 0 \(w) \(h)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        if !title.isEmpty { s += "<title>\(PlotScale.escapeXML(title))</title>\n" }
        s += "<rect x=\"0\" y=\"0\" width=\"\(w)\" height=\"\(h)\" fill=\"#ffffff\"/>\n"
        return s
    }

    /// The chart's elements (no <svg> wrapper) for a `width`×`height` box at the origin; `id` makes
    /// the clip-path id unique when several charts share a document.
    func body(width: Double, height: Double, id: String) -> String {
        let L = layout(width: width, height: height)
        let c = PlotScale.coord
        let esc = PlotScale.escapeXML
        var out = ""
        // Grid, ticks and tick labels.
        let xLabels = PlotScale.tickLabels(L.xTicks), yLabels = PlotScale.tickLabels(L.yTicks)
        out += "<g class=\"grid\" stroke=\"#e3e3e3\" stroke-width=\"1\">\n"
        for t in L.xTicks { let x = c(L.px(t)); out += "<line x1=\"\(x)\" y1=\"\(c(L.plotY))\" x2=\"\(x)\" y2=\"\(c(L.plotBottom))\"/>\n" }
        for t in L.yTicks { let y = c(L.py(t)); out += "<line x1=\"\(c(L.plotX))\" y1=\"\(y)\" x2=\"\(c(L.plotRight))\" y2=\"\(y)\"/>\n" }
        out += "</g>\n"
        out += "<rect class=\"frame\" x=\"\(c(L.plotX))\" y=\"\(c(L.plotY))\" width=\"\(c(L.plotWidth))\" "
        out += "height=\"\(c(L.plotHeight))\" fill=\"none\" stroke=\"#555555\" stroke-width=\"1\"/>\n"
        out += "<g class=\"ticks\" fill=\"#333333\" font-size=\"\(c(LineChart.tickFont))\">\n"
        for (t, s) in zip(L.xTicks, xLabels) {
            let x = c(L.px(t))
            out += "<line x1=\"\(x)\" y1=\"\(c(L.plotBottom))\" x2=\"\(x)\" y2=\"\(c(L.plotBottom + 4))\" stroke=\"#555555\"/>\n"
            out += "<text x=\"\(x)\" y=\"\(c(L.plotBottom + 6 + LineChart.tickFont))\" text-anchor=\"middle\">\(esc(s))</text>\n"
        }
        for (t, s) in zip(L.yTicks, yLabels) {
            let y = L.py(t)
            out += "<line x1=\"\(c(L.plotX - 4))\" y1=\"\(c(y))\" x2=\"\(c(L.plotX))\" y2=\"\(c(y))\" stroke=\"#555555\"/>\n"
            out += "<text x=\"\(c(L.plotX - 7))\" y=\"\(c(y + LineChart.tickFont * 0.35))\" text-anchor=\"end\">\(esc(s))</text>\n"
        }
        out += "</g>\n"
        // Title and axis labels.
        let midX = L.plotX + L.plotWidth / 2, midY = L.plotY + L.plotHeight / 2
        if !title.isEmpty {
            out += "<text class=\"title\" x=\"\(c(midX))\" y=\"24\" text-anchor=\"middle\" font-size=\"\(c(LineChart.titleFont))\" "
            out += "font-weight=\"bold\" fill=\"#222222\">\(esc(title))</text>\n"
        }
        if !xLabel.isEmpty {
            let y = L.plotBottom + 10 + LineChart.tickFont + LineChart.labelFont
            out += "<text class=\"xlabel\" x=\"\(c(midX))\" y=\"\(c(y))\" text-anchor=\"middle\" font-size=\"\(c(LineChart.labelFont))\" fill=\"#222222\">\(esc(xLabel))</text>\n"
        }
        if !yLabel.isEmpty {
            let x = 10 + LineChart.labelFont
            out += "<text class=\"ylabel\" x=\"\(c(x))\" y=\"\(c(midY))\" text-anchor=\"middle\" font-size=\"\(c(LineChart.labelFont))\" "
            out += "fill=\"#222222\" transform=\"rotate(-90 \(c(x)) \(c(midY)))\">\(esc(yLabel))</text>\n"
        }
        // Data, clipped to (just outside) the plot area.
        out += "<defs><clipPath id=\"\(id)-clip\"><rect x=\"\(c(L.plotX - 6))\" y=\"\(c(L.plotY - 6))\" "
        out += "width=\"\(c(L.plotWidth + 12))\" height=\"\(c(L.plotHeight + 12))\"/></clipPath>"
        out += "<clipPath id=\"\(id)-clip-raw\"><rect x=\"\(c(L.plotX))\" y=\"\(c(L.plotY))\" "
        out += "width=\"\(c(L.plotWidth))\" height=\"\(c(L.plotHeight))\"/></clipPath></defs>\n"
        out += "<g class=\"data\" clip-path=\"url(#\(id)-clip)\" fill=\"none\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n"
        var anything = false
        var labels: [(x: Double, y: Double, text: String)] = []
        for (i, s) in series.enumerated() {
            let (raw, main) = drawnPoints(s)
            guard !main.isEmpty else { continue }
            anything = true
            let color = esc(s.color ?? PlotScale.style(i).color)
            let dash = s.dash.map { " stroke-dasharray=\"\(esc($0))\"" } ?? ""
            if s.drawLine, s.smoothing != nil, raw.count > 1 {
                out += "<polyline class=\"raw\" clip-path=\"url(#\(id)-clip-raw)\" stroke=\"\(color)\" stroke-opacity=\"0.25\" stroke-width=\"1\" points=\"\(polyline(raw, L))\"/>\n"
            }
            if s.drawLine, main.count > 1 {
                let w = s.smoothing != nil ? "2" : "1.8"
                out += "<polyline class=\"series\" stroke=\"\(color)\" stroke-width=\"\(w)\"\(dash) points=\"\(polyline(main, L))\"/>\n"
            }
            if s.markers || main.count == 1 {
                let r = s.markers && !s.drawLine ? 5.0 : 3.5
                for p in main {
                    out += "<circle cx=\"\(c(L.px(p.x)))\" cy=\"\(c(L.py(p.y)))\" r=\"\(c(r))\" fill=\"\(color)\" stroke=\"#ffffff\" stroke-width=\"1\"/>\n"
                }
            }
            if let text = s.label, let p = main.last { labels.append((L.px(p.x), L.py(p.y), text)) }
        }
        out += "</g>\n"
        out += pointLabels(labels, L)
        if !anything {
            out += "<text class=\"empty\" x=\"\(c(midX))\" y=\"\(c(midY))\" text-anchor=\"middle\" font-size=\"13\" fill=\"#888888\">\(esc(emptyMessage))</text>\n"
        }
        if showLegend, !L.legendNames.isEmpty {
            let entries = zip(series.enumerated().filter { $0.element.inLegend }, L.legendNames).map { item, name in
                LegendEntry(name: name, color: item.element.color ?? PlotScale.style(item.offset).color,
                            dash: item.element.dash, marker: !item.element.drawLine)
            }
            out += LineChart.legend(entries, x: L.legendX, y: L.plotY + 4)
        }
        return out
    }

    /// "x,y x,y ..." in SVG coordinates, thinned to first/min/max/last per pixel column for long series.
    func polyline(_ points: [(x: Double, y: Double)], _ L: Layout) -> String {
        var mapped = points.map { (L.px($0.x), L.py($0.y)) }
        if mapped.count > Int(L.plotWidth * 4) {
            var thinned: [(Double, Double)] = []
            var bucket: [(Double, Double)] = []
            func flush() {
                guard let first = bucket.first, let last = bucket.last else { return }
                let lo = bucket.min { $0.1 < $1.1 }!, hi = bucket.max { $0.1 < $1.1 }!
                var keep = [first]
                for p in lo.0 <= hi.0 ? [lo, hi] : [hi, lo] where !keep.contains(where: { $0 == p }) { keep.append(p) }
                if !keep.contains(where: { $0 == last }) { keep.append(last) }
                thinned += keep
                bucket.removeAll(keepingCapacity: true)
            }
            var column = Int.min
            for p in mapped {
                let col = Int(p.0.rounded(.down))
                if col != column { flush(); column = col }
                bucket.append(p)
            }
            flush()
            mapped = thinned
        }
        return mapped.map { "\(PlotScale.coord($0.0)),\(PlotScale.coord($0.1))" }.joined(separator: " ")
    }

    /// Labels right of their point (left when that would leave the plot), moved apart vertically.
    func pointLabels(_ labels: [(x: Double, y: Double, text: String)], _ L: Layout) -> String {
        guard !labels.isEmpty else { return "" }
        let size = 12.0, gap = 14.0
        var placed = labels.map { l -> (x: Double, y: Double, text: String, anchor: String) in
            let w = PlotScale.textWidth(l.text, size: size)
            return l.x + 8 + w <= L.plotRight - 2 ? (l.x + 8, l.y + 4, l.text, "start") : (l.x - 8, l.y + 4, l.text, "end")
        }.sorted { $0.y < $1.y }
        for i in placed.indices {
            placed[i].y = max(placed[i].y, L.plotY + size + 2)
            if i > 0 { placed[i].y = max(placed[i].y, placed[i - 1].y + gap) }
        }
        if let last = placed.last, last.y > L.plotBottom - 4 {  // pushed past the bottom: shift back up
            let shift = last.y - (L.plotBottom - 4)
            for i in placed.indices { placed[i].y -= shift }
        }
        var out = "<g class=\"labels\" font-size=\"\(PlotScale.coord(size))\" fill=\"#222222\">\n"
        for p in placed {
            out += "<text x=\"\(PlotScale.coord(p.x))\" y=\"\(PlotScale.coord(p.y))\" text-anchor=\"\(p.anchor)\">\(PlotScale.escapeXML(p.text))</text>\n"
        }
        return out + "</g>\n"
    }

    struct LegendEntry {
        var name: String
        var color: String
        var dash: String?
        var marker: Bool
    }

    /// A vertical legend with its top-left corner at (x, y).
    static func legend(_ entries: [LegendEntry], x: Double, y: Double) -> String {
        let c = PlotScale.coord, esc = PlotScale.escapeXML
        var out = "<g class=\"legend\" font-size=\"\(c(legendFont))\" fill=\"#222222\">\n"
        for (i, e) in entries.enumerated() {
            let cy = y + legendRow * Double(i) + legendRow / 2
            if e.marker {
                out += "<circle cx=\"\(c(x + legendSwatch / 2))\" cy=\"\(c(cy))\" r=\"4.5\" fill=\"\(esc(e.color))\"/>\n"
            } else {
                let dash = e.dash.map { " stroke-dasharray=\"\(esc($0))\"" } ?? ""
                out += "<line x1=\"\(c(x))\" y1=\"\(c(cy))\" x2=\"\(c(x + legendSwatch))\" y2=\"\(c(cy))\" stroke=\"\(esc(e.color))\" stroke-width=\"2.5\"\(dash)/>\n"
            }
            out += "<text x=\"\(c(x + legendSwatch + 6))\" y=\"\(c(cy + legendFont * 0.35))\">\(esc(e.name))</text>\n"
        }
        return out + "</g>\n"
    }
}
