// TT embeddings (docs/SPEC.md §5) on the OpenCL device against the CPU device: a small PicoGPT with MPO
// linears and a per-token tensor-train or table-MPO embedding, the same parameters on both
// devices; loss, logits and every gradient (the embedding cores included) must agree, and so
// must five AdamW steps. The embedding uses only existing device ops (batched gemm, fill,
// accumulate, embedding gather/scatter), so this checks those ops in the new shapes.

import Foundation
import MPOKit
import MPOOpenCL
import Testing

@Suite("OpenCL TT embeddings vs CPU", .enabled(if: Shared.available, OpenCLGate.reason))
struct TTEmbeddingOpenCLTests {
    static let kinds = ["tt:2", "tt:3:2x4x4", "mpo:3", "svd:3"]

    static func models(_ kind: String) throws -> (Transformer, Transformer) {
        var c = ModelConfig(vocabularySize: 13, channels: 32, heads: 2, layers: 2, context: 16, ffn: 64, chi: 3)
        c.tokenEmbedding = try EmbeddingKind.parse(kind, vocabulary: 13, channels: 32)
        let cpu = try Transformer(config: c, device: CPUDevice())
        try cpu.initialize(seed: 21)
        let cl = try Transformer(config: c, device: try Shared.opencl())
        for s in cpu.layout.specs { try cl.setParameter(s.name, try cpu.parameter(s.name)) }
        return (cpu, cl)
    }

    static func batch(seed: UInt64) -> ([Int32], [Int32]) {
        var g = SplitMix64(seed: seed)
        return ((0..<64).map { _ in Int32(g.below(13)) }, (0..<64).map { _ in Int32(g.below(13)) })
    }

    @Test("loss, logits and every gradient match the CPU device", arguments: kinds)
    func forwardBackward(kind: String) throws {
        let (cpu, cl) = try Self.models(kind)
        let (tok, tgt) = Self.batch(seed: 3)
        var losses: [Double] = []
        for m in [cpu, cl] {
            m.zeroGradients()
            losses.append(try m.forward(tokens: tok, targets: tgt, batch: 4, time: 16).loss)
            try m.backward()
        }
        #expect(abs(losses[0] - losses[1]) < 1e-5, "loss CPU \(losses[0]) vs OpenCL \(losses[1])")
        #expect(maxAbsDifference(try cl.logits(), try cpu.logits()) < 1e-4)
        var embeddingTensors = 0
        for s in cpu.layout.specs {
            let err = relativeError(try cl.gradient(s.name), try cpu.gradient(s.name))
            #expect(err < 1e-4, "gradient of \(s.name): relative error \(err)")
            if s.name.hasPrefix("tok_emb.cores.") { embeddingTensors += 1 }
        }
        #expect(embeddingTensors >= 2)
    }

    @Test("an inference model with a tied svd:r table (its factor path) gives the CPU training model's logits")
    func lowRankInference() throws {
        var c = ModelConfig(vocabularySize: 13, channels: 32, heads: 2, layers: 2, context: 16, ffn: 64, chi: 3,
                            architecture: .llama(theta: 10_000, normEpsilon: 1e-5, kvHeads: 1, tiedHead: true))
        c.tokenEmbedding = try EmbeddingKind.parse("svd:3", vocabulary: 13, channels: 32)
        let cpu = try Transformer(config: c, device: CPUDevice())
        try cpu.initialize(seed: 22)
        let cl = try Transformer(config: c, device: try Shared.opencl(), purpose: .inference)
        for s in cpu.layout.specs { try cl.setParameter(s.name, try cpu.parameter(s.name)) }
        let (tok, _) = Self.batch(seed: 5)
        try cpu.forward(tokens: tok, batch: 4, time: 16, needsGradients: false)
        try cl.forward(tokens: tok, batch: 4, time: 16, needsGradients: false)
        #expect(maxAbsDifference(try cl.logits(), try cpu.logits()) < 1e-4)
    }

    @Test("five AdamW steps give the same losses on both devices", arguments: kinds)
    func training(kind: String) throws {
        let (cpu, cl) = try Self.models(kind)
        let a = try AdamW(model: cpu), b = try AdamW(model: cl)
        for s in 0..<5 {
            let (tok, tgt) = Self.batch(seed: 100 + UInt64(s))
            let la = try a.trainStep(tokens: tok, targets: tgt, batch: 4, time: 16, learningRate: 3e-3).loss
            let lb = try b.trainStep(tokens: tok, targets: tgt, batch: 4, time: 16, learningRate: 3e-3).loss
            #expect(abs(la - lb) < 1e-4, "step \(s): CPU \(la) vs OpenCL \(lb)")
        }
    }
}
