// FamilyReference: the Hugging Face Llama and GPT-2 reference models of
// Tests/Resources/families (made by make_reference.py there with transformers, float64), and the
// comparisons the CPU and OpenCL parity suites both run: logits, loss and every gradient under the
// checkpoint's own tensor names; and an MPO model against its own dense rebuild.

import Foundation
import MPOKit
import SafeTensors

public enum FamilyReference {
    public static let families = ["llama-tiny", "gpt2-tiny"]
    public static let directory = ReferenceData.root.appendingPathComponent("Tests/Resources/families")

    public static func modelDirectory(_ name: String) -> URL { directory.appendingPathComponent(name) }
    public static func reference(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: directory.appendingPathComponent("\(name).reference.safetensors"))
    }

    /// The reference batch: tokens, targets, B, T.
    public static func batch(_ ref: SafeTensorsFile) throws -> (tokens: [Int32], targets: [Int32], b: Int, t: Int) {
        let shape = ref.info("tokens")!.shape
        return (try ref.int32s("tokens"), try ref.int32s("targets"), shape[0], shape[1])
    }

    /// What one forward + backward on the reference batch gives, against transformers' float64.
    public struct Errors: Sendable {
        public var loss: Double
        public var logits: Double
        /// Gradient name (the checkpoint's) → ‖g − g_ref‖/‖g_ref‖.
        public var gradients: [String: Double]
        public var referenceGradients: Int
    }

    /// Loads `name` on `device`, runs the reference batch and compares.
    public static func errors(_ name: String, device: any ComputeDevice) throws -> Errors {
        let ref = try reference(name)
        let model = try ModelCheckpoint.loadModel(modelDirectory(name), device: device)
        let (tok, tgt, b, t) = try batch(ref)
        model.zeroGradients()
        let r = try model.forward(tokens: tok, targets: tgt, batch: b, time: t)
        try model.backward()
        let logits = try model.logits(), refLogits = try ref.doubles("logits")
        var maxAbs = 0.0
        for i in refLogits.indices { maxAbs = max(maxAbs, abs(Double(logits[i]) - refLogits[i])) }
        var grads: [String: Double] = [:]
        for g in try HFCheckpoint.exportTensors(config: model.config, value: { try model.gradient($0) }) {
            grads[g.name] = relativeError(g.values, try ref.doubles("grad.\(g.name)"))
        }
        return Errors(loss: abs(r.loss - (try ref.doubles("loss"))[0]), logits: maxAbs, gradients: grads,
                      referenceGradients: ref.names.filter { $0.hasPrefix("grad.") }.count)
    }

    /// An MPO model (every linear TT-SVD'd at `chi`) against the dense model of its contracted
    /// weights: max |Δlogit|, |Δloss| and the largest relative difference of any non-core gradient.
    public static func mpoAgainstRebuild(_ name: String, chi: Int, device: any ComputeDevice) throws
        -> (logits: Double, loss: Double, gradient: Double) {
        let ref = try reference(name)
        let (tok, tgt, b, t) = try batch(ref)
        let dense = try ModelCheckpoint.loadModel(modelDirectory(name), device: device)
        let (mpo, _) = try Compression.compress(dense, chi: chi)
        let rebuilt = try Transformer(config: dense.config, device: device)
        let weights = try Compression.denseWeights(mpo)
        for spec in rebuilt.layout.specs {
            if case .linearWeight(let l) = spec.role { try rebuilt.setParameter(spec.name, weights[l.name]!) }
            else { try rebuilt.setParameter(spec.name, try mpo.parameter(spec.name)) }
        }
        var out: [(loss: Double, logits: [Float], model: Transformer)] = []
        for m in [mpo, rebuilt] {
            m.zeroGradients()
            let r = try m.forward(tokens: tok, targets: tgt, batch: b, time: t)
            try m.backward()
            out.append((r.loss, try m.logits(), m))
        }
        var g = 0.0
        for spec in mpo.layout.specs where !spec.role.isCore {
            g = max(g, relativeError(try mpo.gradient(spec.name), try rebuilt.gradient(spec.name).map(Double.init)))
        }
        return (zip(out[0].logits, out[1].logits).map { Double(abs($0 - $1)) }.max() ?? 0, abs(out[0].loss - out[1].loss), g)
    }

    /// ‖a − b‖/‖b‖.
    public static func relativeError(_ a: [Float], _ b: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for i in b.indices { let d = Double(a[i]) - b[i]; num += d * d; den += b[i] * b[i] }
        return den > 0 ? (num / den).squareRoot() : num.squareRoot()
    }
}
