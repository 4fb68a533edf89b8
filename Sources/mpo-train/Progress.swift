// The live progress line: updated in place on a terminal, plain lines otherwise.

import Foundation
import MPOKit
import Plots

final class Progress {
    let tty = isatty(STDOUT_FILENO) != 0
    let quiet: Bool
    private var lineOpen = false

    init(quiet: Bool) { self.quiet = quiet }

    func step(_ r: StepRecord) {
        guard !quiet else { return }
        let done = r.step + 1
        let eta = r.elapsed / Double(max(done, 1)) * Double(r.total - done)
        var line = String(format: "step %d/%d | loss %.4f | lr %.2e | %@ tok/s | ETA %@",
                          done, r.total, r.loss, r.learningRate, Int(r.tokensPerSecond).formatted(), duration(eta))
        if let bytes = r.allReduceBytes, let s = r.communicationSeconds {
            line += String(format: " | all-reduce %.2f MB in %.1f ms", Double(bytes) / 1e6, s * 1000)
        }
        if tty {
            print("\r\u{1B}[K" + line, terminator: "")
            fflush(nil)
            lineOpen = true
        } else if done % 10 == 0 || done == r.total || r.step == 0 {
            print(line)
        }
    }

    func eval(_ e: EvalRecord) {
        if lineOpen { print(""); lineOpen = false }
        print(String(format: "eval @ step %d: train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | %@",
                     e.step, e.trainLoss, 100 * e.trainAccuracy, e.valLoss, 100 * e.valAccuracy, duration(e.elapsed)))
    }

    func finish() { if lineOpen { print(""); lineOpen = false } }
}

func duration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
}

/// Writes the SVG plots of the given runs into `directory`.
func writePlots(_ metrics: [RunMetrics], to directory: URL) throws {
    let files = try Plots.write(runs: metrics, to: directory)
    print("plots: " + files.map(\.lastPathComponent).joined(separator: ", ") + " in \(directory.path)")
}
