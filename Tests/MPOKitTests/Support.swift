// Shared test helpers: the reference files (ReferenceData, from the OpCases support module)
// and the ten-step trajectory check used by the dense and MPO reference suites.

import Foundation
@_exported import OpCases
@_exported import TestSupport
import Testing
@testable import MPOKit

typealias Reference = ReferenceData

/// Runs a `_train10.json` trajectory on `model` and checks loss (1e-3) and gradient norm
/// (1e-3 relative) at every step against PyTorch's float64 numbers.
func expectTrajectory(_ jsonName: String, model: Transformer, vocab: String) throws {
    let got = try Reference.trajectory(jsonName, model: model, vocab: vocab)
    let j = try Reference.json(jsonName)
    let losses = j["loss_f64"] as! [Double], norms = j["grad_norm_before_clip_f64"] as! [Double]
    #expect(got.count == 10)
    for (s, step) in got.enumerated() {
        #expect(abs(step.learningRate - step.expectedLearningRate) < 1e-15, "step \(s) learning rate")
        #expect(abs(step.loss - losses[s]) < 1e-3, "step \(s) loss \(step.loss) vs \(losses[s])")
        #expect(abs(step.gradNorm - norms[s]) / norms[s] < 1e-3, "step \(s) grad norm \(step.gradNorm) vs \(norms[s])")
    }
}
