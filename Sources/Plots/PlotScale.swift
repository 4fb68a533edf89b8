// Axis scales for the SVG plots: "nice" tick positions (1/2/5 × 10^k, linear or log), tick labels
// without floating-point noise (0.3, not 0.30000000000000004; 20k, not 20000.0), the Okabe–Ito
// colour-blind-friendly palette, and XML escaping / compact coordinate formatting for the SVG writer.

import Foundation

public enum PlotScale {
    /// Okabe & Ito (2008) colours, ordered for contrast on white (yellow last).
    public static let palette: [String] = [
        "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
    ]

    /// Dash patterns used for the 2nd, 3rd, ... trip round the palette (nil = solid).
    static let dashes: [String?] = [nil, "6 3", "2 2", "8 3 2 3"]

    /// Colour and dash pattern for the i-th series of a figure.
    public static func style(_ index: Int) -> (color: String, dash: String?) {
        let i = max(0, index)
        return (palette[i % palette.count], dashes[(i / palette.count) % dashes.count])
    }

    // MARK: - ticks

    /// Ticks inside [lo, hi] at multiples of 1, 2 or 5 × 10^k, the step chosen so the count is as close
    /// to `target` as possible (ties go to fewer ticks). 0.37…2.9 gives 0.5, 1, 1.5, 2, 2.5.
    public static func niceTicks(_ lo: Double, _ hi: Double, target: Int = 5) -> [Double] {
        guard lo.isFinite, hi.isFinite else { return [] }
        if lo == hi { return [lo] }
        let (a, b) = lo < hi ? (lo, hi) : (hi, lo)
        let target = max(2, target)
        let e0 = Int(floor(log10((b - a) / Double(target))))
        var best: (score: Int, exponent: Int, mantissa: Int, first: Int, last: Int)?
        for e in (e0 - 1)...(e0 + 1) {
            for m in [1, 2, 5] {
                let step = Double(m) * pow(10, Double(e))
                let slack = 1e-9 * max(abs(a), abs(b), step)
                let first = Int(ceil((a - slack) / step)), last = Int(floor((b + slack) / step))
                let count = last - first + 1
                guard count >= 1 else { continue }
                let score = abs(count - target) * 2 + (count > target ? 1 : 0)
                if best == nil || score < best!.score { best = (score, e, m, first, last) }
            }
        }
        guard let best else { return [] }
        return (best.first...best.last).map { tickValue(Double($0 * best.mantissa), exponent: best.exponent) }
    }

    /// Ticks for a log axis on [lo, hi] (both > 0): the decades 10^k inside the range; with 1/2/5 × 10^k
    /// when that gives fewer than 3; linear nice ticks when the range is narrower than that.
    public static func logTicks(_ lo: Double, _ hi: Double, target: Int = 5) -> [Double] {
        guard lo > 0, hi > 0, lo.isFinite, hi.isFinite else { return [] }
        let (a, b) = lo < hi ? (lo, hi) : (hi, lo)
        let kmin = Int(floor(log10(a))), kmax = Int(ceil(log10(b)))
        func inside(_ v: Double) -> Bool { v >= a * (1 - 1e-9) && v <= b * (1 + 1e-9) }
        var decades = (kmin...kmax).map { tickValue(1, exponent: $0) }.filter(inside)
        if decades.count > target + 2 {
            let every = Int((Double(decades.count) / Double(target)).rounded(.up))
            decades = decades.enumerated().filter { $0.offset % every == 0 }.map(\.element)
        }
        if decades.count >= 3 { return decades }
        let withMultiples = (kmin...kmax).flatMap { k in [1, 2, 5].map { tickValue(Double($0), exponent: k) } }
            .filter(inside)
        if withMultiples.count >= 3 { return withMultiples }
        return niceTicks(a, b, target: min(target, 4)).filter { $0 > 0 }
    }

    /// m × 10^e computed so that small decimals come out as the nearest double (3 × 10^-1 → 0.3).
    static func tickValue(_ m: Double, exponent e: Int) -> Double {
        e >= 0 ? m * pow(10, Double(e)) : m / pow(10, Double(-e))
    }

    // MARK: - labels

    /// Labels for a set of ticks with one shared number of decimals and a k/M/G suffix when the values
    /// reach 10,000: [0.5, 1, 1.5] → ["0.5", "1.0", "1.5"]; [0, 10000, 20000] → ["0", "10k", "20k"].
    public static func tickLabels(_ ticks: [Double]) -> [String] {
        let finite = ticks.filter(\.isFinite)
        guard !finite.isEmpty else { return ticks.map { _ in "" } }
        let maxAbs = finite.map(abs).max()!
        let (divisor, suffix): (Double, String) =
            maxAbs >= 1e9 ? (1e9, "G") : maxAbs >= 1e6 ? (1e6, "M") : maxAbs >= 1e4 ? (1e3, "k") : (1, "")
        let decimals = finite.map { minimalDecimals($0 / divisor) }.max()!
        return ticks.map { t in
            guard t.isFinite else { return "" }
            if t == 0 { return "0" }
            var s = String(format: "%.\(decimals)f", t / divisor)
            if s.hasPrefix("-"), Double(s) == 0 { s.removeFirst() }
            return s + suffix
        }
    }

    /// A single value written for humans (legend / point labels): 79168 → "79.2k", 0.38123 → "0.381".
    public static func compact(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "∞" : "-∞") }
        let a = abs(v)
        let (divisor, suffix): (Double, String) =
            a >= 1e9 ? (1e9, "G") : a >= 1e6 ? (1e6, "M") : a >= 1e4 ? (1e3, "k") : (1, "")
        let x = v / divisor
        let digits = abs(x) >= 100 ? 0 : abs(x) >= 10 ? 1 : abs(x) >= 1 ? 2 : 3
        var s = String(format: "%.\(digits)f", x)
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s + suffix
    }

    /// The fewest decimals (up to 10) that write `v` back to within a relative 1e-9.
    static func minimalDecimals(_ v: Double) -> Int {
        guard v.isFinite, v != 0 else { return 0 }
        for d in 0...10 {
            let scale = pow(10, Double(d))
            if abs((v * scale).rounded() / scale - v) <= 1e-9 * max(abs(v), 1e-12) { return d }
        }
        return 10
    }

    // MARK: - SVG text

    /// Escapes &, <, >, " and ' and drops characters XML 1.0 does not allow.
    public static func escapeXML(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                let v = scalar.value
                let allowed = v == 0x9 || v == 0xA || v == 0xD || (0x20...0xD7FF).contains(v)
                    || (0xE000...0xFFFD).contains(v) || (0x10000...0x10FFFF).contains(v)
                if allowed { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    /// A coordinate rounded to 0.01 px, without a trailing ".0".
    static func coord(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        if r == r.rounded(), abs(r) < 1e15 { return String(Int(r)) }
        return String(r)
    }

    /// Rough rendered width of `text` in a sans-serif font of `size` px (0.6 em a character).
    static func textWidth(_ text: String, size: Double) -> Double {
        Double(text.count) * size * 0.6
    }

    /// `text` cut to at most `maxChars` characters, with an ellipsis when cut.
    static func truncate(_ text: String, maxChars: Int) -> String {
        text.count <= maxChars ? text : String(text.prefix(max(1, maxChars - 1))) + "…"
    }
}
