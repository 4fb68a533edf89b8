// Op cases of the optimiser: the gradients' sum of squares, a step's scalars (losses, accuracy,
// gradient norm, clip scale and finite flag reduced on the device) and AdamW, plain and driven
// by a step's scalars (clipped, or skipped when the step was not finite).

import MPOKit

extension OpCases {
    // MARK: - optimiser

    /// `spike`: x[0] = 100 and the rest ≈ 0.01, so a Float running sum loses the small squares
    /// (each below half an ulp of 10⁴) and misses the total by ~10⁻³ relative (nmse ~10⁻⁶).
    static func sumOfSquares(count n: Int, spike: Bool = false) -> OpCase {
        CaseBuilder.make(.sumOfSquares, "n=\(n)\(spike ? " spike" : "")", flops: Double(2 * n), bytes: bytes(n), inputs: { g in
            if spike {
                var x = g.uniform("x", n, 0.0099, 0.0101)
                x[0] = 100
                g.set("x", x)
            } else {
                g.uniform("x", n, -1, 1)
            }
        }, device: { ws, h in
            let x = try ws.input("x", h["x"])
            let result = SumBox()
            return OpInstance(workspace: ws, scalarNames: ["sum"], scalars: { ["sum": [Float(result.value)]] }) {
                result.value = try ws.device.sumOfSquares(x)
            }
        }, reference: { h in ["sum": [NaiveReference.sumOfSquares(h.d("x"))]] })
    }

    private final class SumBox { var value = Double.nan }

    /// m uniform in ±0.1, v in [0, 0.01) (second moments are never negative), g in ±1.
    static func adamW(count n: Int, hyper: AdamWHyper) -> OpCase {
        let vars = "n=\(n) lr=\(hyper.learningRate) wd=\(hyper.weightDecay) step=\(hyper.step) eps=\(hyper.epsilon)"
        return CaseBuilder.make(.adamW, vars, flops: Double(15 * n), bytes: bytes(7 * n), inputs: { g in
            g.uniform("parameters", n, -1, 1); g.uniform("gradients", n, -1, 1)
            g.uniform("m", n, -0.1, 0.1); g.uniform("v", n, 0, 0.01)
        }, device: { ws, h in
            let p = try ws.output("parameters", h["parameters"]), gr = try ws.input("gradients", h["gradients"])
            let m = try ws.output("m", h["m"]), v = try ws.output("v", h["v"])
            return ws.instance { ws.device.adamW(parameters: p, gradients: gr, m: m, v: v, hyper: hyper) }
        }, reference: { h in
            let r = NaiveReference.adamW(parameters: h.d("parameters"), gradients: h.d("gradients"), m: h.d("m"), v: h.d("v"),
                                         hyper: hyper)
            return ["parameters": r.parameters, "m": r.m, "v": r.v]
        })
    }

    /// `ComputeDevice.stepScalars` then `readStepScalars`: per-row losses in [0, 5), 0/1 correct
    /// flags, distillation losses (`extra`), gradients in ±1 — or with `poison` a NaN loss (the
    /// means come out NaN and `finite` 0; the rest is still reduced).
    static func stepScalars(rows: Int, gradients n: Int, clip: Double, extra: Bool = false, poison: Bool = false) -> OpCase {
        let vars = "rows=\(rows) n=\(n) clip=\(clip)\(extra ? " extra" : "")\(poison ? " NaN loss" : "")"
        let names = ["crossEntropy", "distillation", "accuracy", "gradientSquares", "clipScale", "finite"]
        return CaseBuilder.make(.stepScalars, vars, flops: Double(2 * n + 3 * rows), bytes: bytes(n + 3 * rows), inputs: { g in
            var l = g.uniform("losses", rows, 0, 5)
            if poison { l[rows / 2] = .nan; g.set("losses", l) }
            g.set("correct", g.uniform("correct.u", rows, 0, 1).map { $0 < 0.4 ? 1 : 0 })
            g.uniform("extra", rows, 0, 2); g.uniform("gradients", n, -1, 1)
        }, device: { ws, h in
            let l = try ws.input("losses", h["losses"]), c = try ws.input("correct", h["correct"])
            let e = extra ? try ws.input("extra", h["extra"]) : nil, gr = try ws.input("gradients", h["gradients"])
            let out = try ws.scratch("scalars", StepScalars.count)
            let box = ScalarsBox()
            return OpInstance(workspace: ws, scalarNames: names, scalars: {
                guard let s = box.value else { return [:] }
                let v = [s.crossEntropy, s.distillation, s.accuracy, s.gradientSquares, s.clipScale, s.finite ? 1 : 0]
                return Dictionary(uniqueKeysWithValues: zip(names, v.map { [Float($0)] }))
            }) {
                ws.device.stepScalars(losses: l, correct: c, extra: e, rows: rows, gradients: gr, clip: clip, into: out)
                box.value = try ws.device.readStepScalars(out)
            }
        }, reference: { h in
            let r = NaiveReference.stepScalars(losses: h.d("losses"), correct: h.d("correct"), extra: extra ? h.d("extra") : nil,
                                               gradients: h.d("gradients"), clip: clip)
            let v = [r.crossEntropy, r.distillation, r.accuracy, r.gradientSquares, r.clipScale, r.finite ? 1 : 0]
            return Dictionary(uniqueKeysWithValues: zip(names, v.map { [$0] }))
        })
    }

    private final class ScalarsBox { var value: StepScalars? }

    /// AdamW controlled by a step's scalars: gradients in ±`gradientRange` (n of them, so the norm
    /// exceeds `clip` and they are scaled), or with `poison` a NaN loss (nothing may change).
    static func adamWControlled(count n: Int, gradientRange: Float, clip: Double, poison: Bool, hyper: AdamWHyper) -> OpCase {
        let vars = "n=\(n) |g|≤\(gradientRange) clip=\(clip) step=\(hyper.step)\(poison ? " NaN loss: skipped" : "")"
        return CaseBuilder.make(.adamW, vars, flops: Double(17 * n), bytes: bytes(8 * n), inputs: { g in
            g.uniform("parameters", n, -1, 1); g.uniform("gradients", n, -gradientRange, gradientRange)
            g.uniform("m", n, -0.1, 0.1); g.uniform("v", n, 0, 0.01)
            var l = g.uniform("losses", 4, 0, 5)
            if poison { l[1] = .nan; g.set("losses", l) }
            g.set("correct", [1, 0, 0, 1])
        }, device: { ws, h in
            let p = try ws.output("parameters", h["parameters"]), gr = try ws.input("gradients", h["gradients"])
            let m = try ws.output("m", h["m"]), v = try ws.output("v", h["v"])
            let l = try ws.input("losses", h["losses"]), c = try ws.input("correct", h["correct"])
            let control = try ws.scratch("scalars", StepScalars.count)
            return ws.instance {
                ws.device.stepScalars(losses: l, correct: c, extra: nil, rows: 4, gradients: gr, clip: clip, into: control)
                ws.device.adamW(parameters: p, gradients: gr, m: m, v: v, hyper: hyper, control: control)
            }
        }, reference: { h in
            let s = NaiveReference.stepScalars(losses: h.d("losses"), correct: h.d("correct"), extra: nil,
                                               gradients: h.d("gradients"), clip: clip)
            guard s.finite else { return ["parameters": h.d("parameters"), "m": h.d("m"), "v": h.d("v")] }
            let r = NaiveReference.adamW(parameters: h.d("parameters"), gradients: h.d("gradients").map { $0 * s.clipScale },
                                         m: h.d("m"), v: h.d("v"), hyper: hyper)
            return ["parameters": r.parameters, "m": r.m, "v": r.v]
        })
    }
}
