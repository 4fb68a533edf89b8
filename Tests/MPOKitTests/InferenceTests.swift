// Inference-only models (compression that pays at run time): the same logits as the training
// model for every contraction (2- and 3-site layers, χ = 1 … above full rank, 1–64 rows), KV-cache
// decoding with the fused site path equal to the full forward, a batch of sequences decoded in
// step equal to each decoded alone, the factorisation chosen for shapes docs/SPEC.md does not fix, and
// the memory claim — counted in bytes the device allocates, not timed.

import Foundation
import Testing
@testable import MPOKit
import TensorTrain

@Suite("Inference-only models")
struct InferenceTests {
    @Test("the same logits as the training model, whichever contraction", arguments: InferenceProbe.configs().map(\.name),
          [MPOStrategy.rebuild, .siteBySite, .automatic])
    func sameLogits(name: String, strategy: MPOStrategy) throws {
        let config = InferenceProbe.configs().first { $0.name == name }!.config
        let err = try InferenceProbe.worstLogitError(config, strategy: strategy, device: CPUDevice())
        #expect(err <= 1e-5, "\(name) \(strategy): relative logit error \(err)")
    }

    @Test("Llama and GPT-2: inference logits equal training logits; KV-cache decoding (rotary at the cache offset, learned positions, grouped-query caches), alone and in a batch of 3, equals the full forward",
          arguments: InferenceProbe.familyConfigs().map(\.name), [MPOStrategy.rebuild, .siteBySite])
    func families(name: String, strategy: MPOStrategy) throws {
        let config = InferenceProbe.familyConfigs().first { $0.name == name }!.config
        #expect(try InferenceProbe.worstLogitError(config, strategy: strategy, device: CPUDevice()) <= 1e-5)
        for batch in [1, 3] {
            let err = try InferenceProbe.worstDecodeError(config, batch: batch, strategy: strategy, device: CPUDevice())
            #expect(err < 1e-5, "\(name) batch \(batch): relative |Δlogit| \(err)")
        }
    }

    @Test("KV-cache decoding through the fused site path equals the full forward")
    func kvCacheSitePath() throws {
        let config = InferenceProbe.configs()[1].config
        let train = try Transformer(config: config, device: CPUDevice())
        try train.initialize(seed: 5)
        let infer = try Transformer(config: config, device: CPUDevice(), purpose: .inference)
        try infer.load(from: train)
        infer.mpoStrategy = .siteBySite
        var rng = SplitMix64(seed: 6)
        let seq = (0..<20).map { _ in Int32(rng.below(24)) }
        let gen = try Generator(model: infer)
        var logits = try gen.feed(Array(seq.prefix(5)))   // a prefilled prompt, then one token at a time
        for t in 5..<20 {
            try train.forward(tokens: Array(seq.prefix(t)), batch: 1, time: t, needsGradients: false)
            let full = try train.logits()
            #expect(relativeError(logits, Array(full.suffix(24))) < 1e-5, "position \(t)")
            logits = try gen.feed([seq[t]])
        }
        #expect(Set(infer.lastMPOStrategies.values) == [.siteBySite])
    }

    @Test("a batch decoded in step equals each sequence decoded alone")
    func batchedDecoding() throws {
        let model = try Transformer(config: InferenceProbe.configs()[1].config, device: CPUDevice(), purpose: .inference)
        try model.initialize(seed: 7)
        var samplers = (0..<3).map { Sampler(temperature: 0.9, topK: 5, seed: UInt64(10 + $0)) }
        let prompt: [Int32] = [1, 2, 3, 4]
        let together = try Generator(model: model, batch: 3, capacity: 30).generate(prompt: prompt, count: 20, samplers: &samplers)
        for b in 0..<3 {
            var s = Sampler(temperature: 0.9, topK: 5, seed: UInt64(10 + b))
            let alone = try Generator(model: model, capacity: 30).generate(prompt: prompt, count: 20, sampler: &s)
            #expect(together[b] == alone, "sequence \(b)")
        }
        // Past the cache's capacity the windows are re-run, as the full forward would.
        var long = [Sampler(seed: 1), Sampler(seed: 2)]
        let wrapped = try Generator(model: model, batch: 2, capacity: 10).generate(prompt: prompt, count: 15, samplers: &long)
        #expect(wrapped.allSatisfy { $0.count == 19 })
    }

    @Test("shapes docs/SPEC.md §2 does not list get the factorisation cheapest to run; PicoGPT's keep theirs")
    func factorisationChoice() throws {
        let f16 = MPOFactorization.cheapest(out: 768, in: 768, chi: 16)
        #expect(f16.sites == 2 && f16.outFactors.max()! <= 4 * f16.outFactors.min()!)
        let balanced3 = MPOFactorization.automatic(out: 768, in: 768)   // [8, 8, 12]²
        #expect(f16.siteFlopsPerRow(bonds: f16.bonds(chi: 16)) < 0.5 * balanced3.siteFlopsPerRow(bonds: balanced3.bonds(chi: 16)))
        #expect(f16.siteFlopsPerRow(bonds: f16.bonds(chi: 16)) < 2 * 768 * 768)   // cheaper than the dense row
        // The hand count for [8, 16]×[8, 16] at χ = 8: site 1 16·8·8·… = 2·8·16·128 + 2·64·8·16.
        let spec = MPOFactorization.automatic(out: 128, in: 128)
        #expect(spec.siteFlopsPerRow(bonds: [1, 8, 1]) == 2 * 8 * 16 * 128 + 2 * 64 * 8 * 16)
        var c = ModelConfig(vocabularySize: 65, channels: 768, heads: 12, layers: 1, context: 16, ffn: 3072, chi: 16)
        c = c.choosingFactorizations(chi: 16)
        #expect(c.factorizations["blocks.0.attn.W_q"] == f16)
        #expect(ModelConfig.mpo(chi: 8).choosingFactorizations(chi: 8).factorizations.isEmpty)   // PicoGPT: docs/SPEC.md's table
    }

    @Test("an inference-only MPO model decoding site by site holds its cores, KV cache and activations: under ⅓ of its dense twin's bytes")
    func memory() throws {
        func bytes(_ chi: Int?) throws -> (model: Int, total: Int) {
            let dev = CPUDevice()
            var c = ModelConfig(vocabularySize: 65, channels: 256, heads: 4, layers: 2, context: 64, ffn: 1024, chi: chi)
            if let chi { c = c.choosingFactorizations(chi: chi) }
            let m = try Transformer(config: c, device: dev, purpose: .inference)
            // Site by site: .automatic times both paths and may keep a rebuilt W for a layer
            // (the machine's speed would decide the bytes; a CI run on 251c325 failed so).
            m.mpoStrategy = .siteBySite
            try m.initialize(seed: 1)
            let model = dev.allocatedBytes
            let gen = try Generator(model: m, capacity: 40)
            var s = Sampler(seed: 1)
            _ = try gen.generate(prompt: [1, 2, 3], count: 30, sampler: &s)
            return (model, dev.allocatedBytes)
        }
        let dense = try bytes(nil), mpo = try bytes(8)
        // The dense twin: parameters (4 bytes each) and the positional table, nothing per layer.
        let denseParams = try Transformer(config: ModelConfig(vocabularySize: 65, channels: 256, heads: 4, layers: 2, context: 64, ffn: 1024),
                                      device: CPUDevice(), purpose: .inference).parameterCount
        #expect(dense.model <= 4 * denseParams + 4 * 64 * 256 + 4096, "dense inference model \(dense.model) bytes")
        #expect(Double(mpo.total) <= Double(dense.total) / 3, "MPO \(mpo.total) vs dense \(dense.total) bytes after decoding")
        // A training model of the same MPO holds gradients, moments-to-be and rebuild buffers on top.
        let train = try Transformer(config: ModelConfig(vocabularySize: 65, channels: 256, heads: 4, layers: 2, context: 64, ffn: 1024, chi: 8)
            .choosingFactorizations(chi: 8), device: CPUDevice())
        let twin = try Transformer(config: train.config, device: CPUDevice(), purpose: .inference)
        #expect(train.grads != nil && twin.grads == nil)
    }
}
