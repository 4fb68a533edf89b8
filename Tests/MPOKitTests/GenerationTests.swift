// KV-cache generation against the full forward pass, and the sampler's guarantees.

import Foundation
import Testing
@testable import MPOKit

@Suite("Generation")
struct GenerationTests {
    @Test("KV-cache logits equal the full forward's at every position", arguments: ["dense_seed2024", "mpo4_seed2024"])
    func kvCacheMatchesFullForward(name: String) throws {
        let model = try Reference.model("\(name).safetensors")
        let json = try Reference.json("\(name).json")
        let tokens = Array(Reference.batch(json).tokens.prefix(40))
        try model.forward(tokens: tokens, batch: 1, time: tokens.count)
        let full = try model.logits(), V = model.config.vocabularySize
        let gen = try Generator(model: model)
        // A prefill of 7 tokens, then one token at a time.
        var logits = try gen.feed(Array(tokens[..<7]))
        var worst = maxAbsDifference(logits, Array(full[(6 * V)..<(7 * V)]))
        for p in 7..<tokens.count {
            logits = try gen.feed([tokens[p]])
            worst = max(worst, maxAbsDifference(logits, Array(full[(p * V)..<((p + 1) * V)])))
        }
        #expect(gen.position == 40)
        #expect(worst < 2e-5, "max |Δlogit| = \(worst)")
    }

    @Test("generation past the context window equals the cropped full forward")
    func slidingWindow() throws {
        let c = ModelConfig(vocabularySize: 11, channels: 16, heads: 2, layers: 1, context: 8, ffn: 32)
        let model = try Transformer(config: c, device: CPUDevice())
        try model.initialize(seed: 5)
        let gen = try Generator(model: model)
        var s = Sampler(temperature: 0, topK: nil)
        let out = try gen.generate(prompt: [1, 2, 3], count: 12, sampler: &s)
        #expect(out.count == 15)
        // Greedy: each generated token is the argmax of the full forward on the cropped prefix.
        for i in 3..<15 {
            let ctx = Array(out[max(0, i - 8)..<i])
            try model.forward(tokens: ctx, batch: 1, time: ctx.count)
            let l = Array(try model.logits().suffix(11))
            #expect(Int32(l.indices.max { l[$0] < l[$1] }!) == out[i], "position \(i)")
        }
    }

    @Test("top-k never samples outside the k best; temperature 0 and → 0 give argmax")
    func sampler() {
        let logits: [Float] = [0.1, 2.0, -1.0, 1.9, 0.5, 1.95, -3.0, 0.0]
        var s = Sampler(temperature: 1.5, topK: 3, seed: 9)
        var seen = Set<Int>()
        for _ in 0..<2000 { seen.insert(s.sample(logits)) }
        #expect(seen == [1, 3, 5])
        var g = Sampler(temperature: 0, topK: nil, seed: 1)
        #expect(g.sample(logits) == 1)
        var tiny = Sampler(temperature: 1e-6, topK: nil, seed: 2)
        for _ in 0..<100 { #expect(tiny.sample(logits) == 1) }
        var all = Sampler(temperature: 1, topK: nil, seed: 3)
        var counts = [Int](repeating: 0, count: 8)
        for _ in 0..<20_000 { counts[all.sample(logits)] += 1 }
        // Frequencies follow the softmax (3σ of a binomial with n = 20,000 is ≤ 0.011).
        let e = logits.map { exp(Double($0)) }, z = e.reduce(0, +)
        for i in 0..<8 { #expect(abs(Double(counts[i]) / 20_000 - e[i] / z) < 0.011, "index \(i)") }
    }
}

@Suite("Compression")
struct CompressionTests {
    @Test("compress keeps embedding, LayerNorms and biases exactly and TT-SVDs the linears")
    func keepsNonLinearParameters() throws {
        let dense = try Reference.model("dense_seed2024.safetensors")
        let (mpo, reports) = try Compression.compress(dense, chi: 8)
        #expect(reports.count == 25)
        #expect(mpo.parameterCount == 79_168)
        var copied = 0
        for spec in mpo.layout.specs where !spec.name.contains(".cores.") {
            #expect(try mpo.parameter(spec.name) == (try dense.parameter(spec.name)), "\(spec.name)")
            copied += 1
        }
        #expect(copied == 31)  // tok_emb + 18 LayerNorm tensors + 12 biases (W_o, W1, W2 per block)
        // The rebuilt weight of each layer is the TT-SVD reconstruction: its error matches the report.
        for r in reports.prefix(3) {
            let w = try dense.parameter("\(r.layer).weight")
            let lin = mpo.linears[r.layer]!.mpo!
            let rebuilt = try mpo.device.read(try lin.weight(mpo.device, version: nil))
            #expect(abs(relativeError(rebuilt, w) - r.relativeError) < 1e-5)
        }
    }

    @Test("at full rank the compressed model computes the same loss as the dense one")
    func fullRankIsExact() throws {
        let dense = try Reference.model("dense_seed2024.safetensors")
        let json = try Reference.json("dense_seed2024.json")
        let (tok, tgt, b, t) = Reference.batch(json)
        let (mpo, reports) = try Compression.compress(dense, chi: 64)
        #expect(reports.allSatisfy { $0.relativeError < 1e-5 })
        let l0 = try dense.forward(tokens: tok, targets: tgt, batch: b, time: t).loss
        let l1 = try mpo.forward(tokens: tok, targets: tgt, batch: b, time: t).loss
        #expect(abs(l0 - l1) < 1e-4)
    }
}
