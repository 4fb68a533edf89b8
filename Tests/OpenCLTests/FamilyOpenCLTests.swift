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

@Suite("SmolLM2-135M GGUF (OpenCL)", .enabled(if: Shared.available && SmolLM2Gate.enabled, SmolLM2Gate.reason))
struct SmolLM2OpenCLTests {
    @Test("perplexity of the stress text within 0.1 % of transformers', and the first greedy tokens")
    func perplexity() throws {
        let res = ReferenceData.root.appendingPathComponent("Tests/Resources")
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: res.appendingPathComponent("smollm2/reference.json"))) as! [String: Any]
        let tok = try JSONSerialization.jsonObject(with: Data(contentsOf: res.appendingPathComponent("tokenizers/reference.json"))) as! [String: Any]
        let ids = ((tok["ids"] as! [String: Any])["smollm"] as! [String: [Int]])["stress"]!.map(Int32.init)
        let model = try ModelCheckpoint.loadModel(try SmolLM2Gate.file(), device: try Shared.opencl(), purpose: .inference)
        let ppl = ref["stress_perplexity"] as! [String: Any]
        let r = try model.evaluateSequence(ids, context: ppl["context"] as! Int)
        let theirs = ppl["perplexity"] as! Double, ours = exp(r.loss)
        #expect(abs(ours - theirs) / theirs < 1e-3, "perplexity \(ours) vs transformers' \(theirs)")
        let greedy = ref["greedy"] as! [String: Any]
        let gen = try Generator(model: model, capacity: 16)
        var s = Sampler(temperature: 0, topK: nil)
        let out = try gen.generate(prompt: (greedy["prompt_ids"] as! [Int]).map(Int32.init), count: 8, sampler: &s)
        #expect(Array(out.suffix(8)).map(Int.init) == Array((greedy["ids"] as! [Int]).prefix(8)))
        print("SmolLM2 on OpenCL: stress-text perplexity \(ours) vs transformers \(theirs)")
    }
}
