// Inference-only models on OpenCL: the fused MPO kernel (mpo.cl), the rebuild path and the
// tuner's pick give the training model's logits; KV-cache decoding matches the CPU's.

import Foundation
import MPOKit
import MPOOpenCL
import Testing

@Suite("OpenCL inference-only models", .enabled(if: Shared.available, OpenCLGate.reason))
struct InferenceOpenCLTests {
    @Test("the same logits as the training model, whichever contraction", arguments: InferenceProbe.configs().map(\.name),
          [MPOStrategy.rebuild, .siteBySite, .automatic])
    func sameLogits(name: String, strategy: MPOStrategy) throws {
        let config = InferenceProbe.configs().first { $0.name == name }!.config
        let err = try InferenceProbe.worstLogitError(config, strategy: strategy, device: try Shared.opencl())
        #expect(err <= 1e-5, "\(name) \(strategy): relative logit error \(err)")
    }

    @Test("Llama and GPT-2: inference logits and KV-cache decoding (alone and batched) equal the full forward",
          arguments: InferenceProbe.familyConfigs().map(\.name))
    func families(name: String) throws {
        let config = InferenceProbe.familyConfigs().first { $0.name == name }!.config
        #expect(try InferenceProbe.worstLogitError(config, strategy: .siteBySite, device: try Shared.opencl()) <= 1e-5)
        for batch in [1, 3] {
            let err = try InferenceProbe.worstDecodeError(config, batch: batch, strategy: .siteBySite, device: try Shared.opencl())
            #expect(err < 1e-5, "\(name) batch \(batch): relative |Δlogit| \(err)")
        }
    }

    @Test("batched KV-cache decoding on OpenCL gives the CPU's logits")
    func decodingMatchesCPU() throws {
        let config = InferenceProbe.configs()[1].config
        var logits: [[[Float]]] = []
        for device in [CPUDevice() as any ComputeDevice, try Shared.opencl()] {
            let m = try Transformer(config: config, device: device, purpose: .inference)
            try m.initialize(seed: 8)
            m.mpoStrategy = .siteBySite
            let gen = try Generator(model: m, batch: 2, capacity: 12)
            var steps = [try gen.feed([[1, 2, 3], [4, 5, 6]])]
            for t in 0..<5 { steps.append(try gen.feed([[Int32(t)], [Int32(t + 7)]])) }
            logits.append(steps.flatMap { $0 })
        }
        for (a, b) in zip(logits[0], logits[1]) { #expect(relativeError(b, a) < 1e-5) }
    }
}
