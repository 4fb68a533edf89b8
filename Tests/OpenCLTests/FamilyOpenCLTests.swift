// The Llama and GPT-2 reference models (Tests/Resources/families) on OpenCL against transformers'
// float64 numbers, with the same tolerances as the CPU suite; MPO linears against their own dense
// rebuild on OpenCL.

import Foundation
import MPOKit
import Testing

@Suite("Llama and GPT-2 vs transformers (OpenCL)", .enabled(if: Shared.available, OpenCLGate.reason))
struct FamilyOpenCLTests {
    @Test("logits, loss and every gradient match transformers", arguments: FamilyReference.families)
    func parity(_ name: String) throws {
        let e = try FamilyReference.errors(name, device: try Shared.opencl())
        #expect(e.loss < 1e-5, "loss off by \(e.loss)")
        #expect(e.logits < 1e-4, "logits off by \(e.logits)")
        #expect(e.gradients.count == e.referenceGradients)
        for (n, err) in e.gradients.sorted(by: { $0.key < $1.key }) { #expect(err <= 1e-4, "gradient of \(n): relative error \(err)") }
        print("\(name) OpenCL: |Δloss| \(e.loss), max |Δlogit| \(e.logits), worst gradient \(e.gradients.values.max() ?? 0)")
    }

    @Test("MPO linears give their dense rebuild's numbers", arguments: FamilyReference.families)
    func mpoAgainstDense(_ name: String) throws {
        let e = try FamilyReference.mpoAgainstRebuild(name, chi: 4, device: try Shared.opencl())
        #expect(e.logits < 1e-4 && e.loss < 1e-5 && e.gradient < 1e-4, "\(e)")
    }
}
