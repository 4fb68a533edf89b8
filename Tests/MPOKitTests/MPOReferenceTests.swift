// MPO PicoGPT (χ = 4 and 16) on the CPU device against PyTorch float64 numbers, for both
// contraction strategies: loss, logits, every core and bias gradient, one AdamW step, and the
// ten-step trajectory (χ = 4).

import Foundation
import Testing
@testable import MPOKit

@Suite("MPO PicoGPT vs PyTorch")
struct MPOReferenceTests {
    static let cases: [(String, MPOStrategy)] = ["mpo4", "mpo16"].flatMap { m in
        [MPOStrategy.rebuild, .siteBySite].map { (m, $0) }
    }

    @Test("parameter counts follow 13,696 + 6,136χ + 256χ²", arguments: [(4, 42_336), (8, 79_168), (16, 177_408), (32, 472_192)])
    func parameterCount(chi: Int, expected: Int) throws {
        let m = try Transformer(config: .mpo(chi: chi), device: CPUDevice())
        #expect(m.parameterCount == expected)
        #expect(m.parameterCount == 13_696 + 6_136 * chi + 256 * chi * chi)
    }

    @Test("loss, logits and all gradients match PyTorch", arguments: cases)
    func lossLogitsGradients(model name: String, strategy: MPOStrategy) throws {
        let json = try Reference.json("\(name)_seed2024.json")
        let out = try Reference.file("\(name)_seed2024_outputs.safetensors")
        let model = try Reference.model("\(name)_seed2024.safetensors")
        model.mpoStrategy = strategy
        #expect(model.parameterCount == json["n_params"] as! Int)
        let (tok, tgt, b, t) = Reference.batch(json)
        model.zeroGradients()
        let r = try model.forward(tokens: tok, targets: tgt, batch: b, time: t)
        #expect(Set(model.lastMPOStrategies.values) == [strategy])
        #expect(abs(r.loss - (json["loss_f64"] as! Double)) < 1e-5, "loss \(r.loss)")
        #expect(maxAbsDifference(try model.logits(), try out.doubles("logits_f64")) < 1e-4)
        try model.backward()
        var cores = 0
        for spec in model.layout.specs {
            let err = relativeError(try model.gradient(spec.name), try out.doubles("grad.\(spec.name)"))
            #expect(err <= 1e-4, "gradient of \(spec.name): relative error \(err)")
            if spec.name.contains(".cores.") { cores += 1 }
        }
        #expect(cores == 4 * (4 * 2 + 3 + 3) + 2)
    }

    @Test("loss after one clipped AdamW step matches PyTorch", arguments: cases)
    func oneAdamWStep(model name: String, strategy: MPOStrategy) throws {
        let json = try Reference.json("\(name)_seed2024.json")
        let model = try Reference.model("\(name)_seed2024.safetensors")
        model.mpoStrategy = strategy
        let (tok, tgt, b, t) = Reference.batch(json)
        try AdamW(model: model).trainStep(tokens: tok, targets: tgt, batch: b, time: t, learningRate: 3e-4)
        let after = try model.forward(tokens: tok, targets: tgt, batch: b, time: t, needsGradients: false)
        let ref = (json["one_adamw_step_f64"] as! [String: Any])["loss_after_step"] as! Double
        #expect(abs(after.loss - ref) < 1e-4, "loss after step \(after.loss) vs \(ref)")
    }

    @Test("χ=4 ten-step trajectory matches PyTorch", arguments: [MPOStrategy.rebuild, .siteBySite])
    func tenSteps(strategy: MPOStrategy) throws {
        let model = try Reference.model("mpo4_seed2024.safetensors")
        model.mpoStrategy = strategy
        let vocab = try Reference.json("mpo4_seed2024.json")["vocab"] as! String
        try expectTrajectory("mpo4_seed2024_train10.json", model: model, vocab: vocab)
    }
}
