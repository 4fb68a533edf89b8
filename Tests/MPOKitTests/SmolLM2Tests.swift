// The real SmolLM2-135M-Instruct Q4_1 GGUF (gated by SmolLM2Gate): its tokenizer from the GGUF
// metadata gives Hugging Face tokenizers' ids; greedy decoding gives transformers' 32 tokens; the
// perplexity of the stress text (windows of 64) is transformers' float64 figure within 0.1 %.

import Foundation
import Testing
import TestSupport
import Tokenizers
@testable import MPOKit

@Suite("SmolLM2-135M GGUF (CPU)", .enabled(if: SmolLM2Gate.enabled, SmolLM2Gate.reason))
struct SmolLM2Tests {
    static let resources = ReferenceData.root.appendingPathComponent("Tests/Resources")
    static func reference() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: resources.appendingPathComponent("smollm2/reference.json"))) as! [String: Any]
    }
    static func stressIds() throws -> (text: String, ids: [Int]) {
        let r = try JSONSerialization.jsonObject(with: Data(contentsOf: resources.appendingPathComponent("tokenizers/reference.json"))) as! [String: Any]
        let ids = ((r["ids"] as! [String: Any])["smollm"] as! [String: [Int]])["stress"]!
        return (try String(contentsOf: resources.appendingPathComponent("tokenizers/stress.txt"), encoding: .utf8), ids)
    }

    @Test("the GGUF's tokenizer gives tokenizers' ids; the model's config is SmolLM2's")
    func tokenizerAndConfig() throws {
        let url = try SmolLM2Gate.file()
        let codec = try #require(try TextCodec.of(checkpoint: url))
        let (text, ids) = try Self.stressIds()
        #expect(try codec.encode(text).map(Int.init) == ids)
        #expect(codec.tokenizer?.pre == .smollm && codec.tokenizer?.chatTemplate?.contains("<|im_start|>") == true)
        let c = try GGUFCheckpoint.config(try GGUFCheckpoint.open(url))
        #expect(c.layers == 30 && c.channels == 576 && c.heads == 9 && c.kvHeads == 3 && c.ffn == 1536 && c.vocabularySize == 49_152)
        #expect(c.architecture.tiedHead && c.architecture.ropeTheta == 100_000)
    }

    @Test("greedy decoding gives transformers' 32 tokens; perplexity of the stress text within 0.1 % of transformers'")
    func greedyAndPerplexity() throws {
        let model = try ModelCheckpoint.loadModel(try SmolLM2Gate.file(), device: CPUDevice(), purpose: .inference)
        let ref = try Self.reference()
        let greedy = ref["greedy"] as! [String: Any]
        let gen = try Generator(model: model, capacity: 64)
        var s = Sampler(temperature: 0, topK: nil)
        let out = try gen.generate(prompt: (greedy["prompt_ids"] as! [Int]).map(Int32.init), count: 32, sampler: &s)
        #expect(Array(out.suffix(32)).map(Int.init) == greedy["ids"] as! [Int])
        let ppl = ref["stress_perplexity"] as! [String: Any]
        let r = try model.evaluateSequence(try Self.stressIds().ids.map(Int32.init), context: ppl["context"] as! Int)
        #expect(r.tokens == ppl["tokens"] as! Int)
        let theirs = ppl["perplexity"] as! Double, ours = exp(r.loss)
        #expect(abs(ours - theirs) / theirs < 1e-3, "perplexity \(ours) vs transformers' \(theirs)")
        print("SmolLM2 stress-text perplexity: \(ours) vs transformers \(theirs) (relative \(abs(ours - theirs) / theirs))")
    }
}
