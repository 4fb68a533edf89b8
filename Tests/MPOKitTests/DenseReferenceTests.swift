// The dense PicoGPT on the CPU device against PyTorch float64 numbers (reference/dense_seed2024*).

import Foundation
import Testing
@testable import MPOKit

@Suite("Dense PicoGPT vs PyTorch")
struct DenseReferenceTests {
    @Test("parameter count is 808,448")
    func parameterCount() throws {
        let m = try Transformer(config: .picoGPT, device: CPUDevice())
        #expect(m.parameterCount == 808_448)
        #expect(m.layout.specs.count == 56)  // 61 tensors in the PyTorch file minus pos_enc and 4 causal masks
    }

    @Test("loss, logits and every gradient match PyTorch")
    func lossLogitsGradients() throws {
        let json = try Reference.json("dense_seed2024.json")
        let out = try Reference.file("dense_seed2024_outputs.safetensors")
        let model = try Reference.model("dense_seed2024.safetensors")
        let (tok, tgt, b, t) = Reference.batch(json)
        model.zeroGradients()
        let r = try model.forward(tokens: tok, targets: tgt, batch: b, time: t)
        #expect(abs(r.loss - (json["loss_f64"] as! Double)) < 1e-5)
        let logits = try model.logits()
        #expect(maxAbsDifference(logits, try out.doubles("logits_f64")) < 1e-4)
        try model.backward()
        var checked = 0
        for spec in model.layout.specs {
            let err = relativeError(try model.gradient(spec.name), try out.doubles("grad.\(spec.name)"))
            #expect(err <= 1e-4, "gradient of \(spec.name): relative error \(err)")
            checked += 1
        }
        #expect(checked == 56)
        let norm = try model.gradientNorm()
        #expect(abs(norm - (json["grad_total_l2_norm_f64"] as! Double)) / norm < 1e-4)
    }
}

extension DenseReferenceTests {
    @Test("loss after one clipped AdamW step matches PyTorch")
    func oneAdamWStep() throws {
        let json = try Reference.json("dense_seed2024.json")
        let model = try Reference.model("dense_seed2024.safetensors")
        let (tok, tgt, b, t) = Reference.batch(json)
        let opt = try AdamW(model: model)
        try opt.trainStep(tokens: tok, targets: tgt, batch: b, time: t, learningRate: 3e-4)
        let after = try model.forward(tokens: tok, targets: tgt, batch: b, time: t, needsGradients: false)
        let ref = (json["one_adamw_step_f64"] as! [String: Any])["loss_after_step"] as! Double
        #expect(abs(after.loss - ref) < 1e-4, "loss after step \(after.loss) vs \(ref)")
    }

    @Test("ten-step training trajectory matches PyTorch")
    func tenSteps() throws {
        let model = try Reference.model("dense_seed2024.safetensors")
        let vocab = try Reference.json("dense_seed2024.json")["vocab"] as! String
        try expectTrajectory("dense_seed2024_train10.json", model: model, vocab: vocab)
    }
}
