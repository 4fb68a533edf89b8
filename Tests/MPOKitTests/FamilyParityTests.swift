// The Llama and GPT-2 families against transformers (Tests/Resources/families, float64, eager
// attention): a grouped-query, tied Llama and a tied GPT-2 read from their Hugging Face
// directories; logits within 1e-4, loss within 1e-5, every gradient (under the checkpoint's own
// names, GPT-2's fused c_attn included) within 1e-4 relative. MPO linears against their own dense
// rebuild; save → load round trips; config.json refusals.

import Foundation
import Testing
import TestSupport
@testable import MPOKit

@Suite("Llama and GPT-2 vs transformers (CPU)")
struct FamilyParityTests {
    @Test("logits, loss and every gradient match transformers", arguments: FamilyReference.families)
    func parity(_ name: String) throws {
        let e = try FamilyReference.errors(name, device: CPUDevice())
        #expect(e.loss < 1e-5, "loss off by \(e.loss)")
        #expect(e.logits < 1e-4, "logits off by \(e.logits)")
        #expect(e.gradients.count == e.referenceGradients, "\(e.gradients.count) gradients compared, the reference has \(e.referenceGradients)")
        for (n, err) in e.gradients.sorted(by: { $0.key < $1.key }) { #expect(err <= 1e-4, "gradient of \(n): relative error \(err)") }
        print("\(name) CPU: |Δloss| \(e.loss), max |Δlogit| \(e.logits), worst gradient \(e.gradients.values.max() ?? 0)")
    }

    @Test("MPO linears give their dense rebuild's logits, loss and non-core gradients", arguments: FamilyReference.families)
    func mpoAgainstDense(_ name: String) throws {
        let e = try FamilyReference.mpoAgainstRebuild(name, chi: 4, device: CPUDevice())
        #expect(e.logits < 1e-4 && e.loss < 1e-5 && e.gradient < 1e-4, "\(e)")
    }

    @Test("the configs say what transformers' do", arguments: FamilyReference.families)
    func configs(_ name: String) throws {
        let c = try HFCheckpoint.config(FamilyReference.modelDirectory(name))
        #expect(c.channels == 48 && c.layers == 2 && c.vocabularySize == 97 && c.context == 64)
        if name.hasPrefix("llama") {
            #expect(c.architecture.family == .llama && c.heads == 6 && c.kvHeads == 2 && c.ffn == 80)
            #expect(c.architecture.ropeTheta == 50_000 && c.architecture.normEpsilon == 1e-5 && c.architecture.tiedHead)
        } else {
            #expect(c.architecture.family == .gpt2 && c.heads == 4 && c.ffn == 192 && c.architecture.tiedHead)
        }
    }

    @Test("saving writes the Hugging Face layout back: the directory loads to the same model", arguments: FamilyReference.families)
    func saveRoundTrip(_ name: String) throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory(name), device: CPUDevice())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(name)-\(UUID().uuidString)")
        try HFCheckpoint.save(m, to: dir)
        let back = try ModelCheckpoint.loadModel(dir, device: CPUDevice())
        #expect(back.config == m.config)
        for spec in m.layout.specs { #expect(try back.parameter(spec.name) == (try m.parameter(spec.name)), "\(spec.name)") }
        // The file holds the original's tensors bit for bit (GPT-2's c_attn fused and transposed back).
        let original = try SafeTensorsFile(contentsOf: FamilyReference.modelDirectory(name).appendingPathComponent("model.safetensors"))
        let written = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("model.safetensors"))
        for n in written.names { #expect(try written.floats(n) == (try original.floats(n)), "\(n)") }
        #expect(Set(written.names) == Set(original.names.filter { !$0.hasSuffix("attn.bias") || $0.contains("c_attn") }))
    }

    @Test("the GGUF twins (written with llama.cpp's conventions: q/k permuted, GPT-2's qkv fused) load to the reference model",
          arguments: FamilyReference.families)
    func ggufTwins(_ name: String) throws {
        let gguf = try ModelCheckpoint.loadModel(FamilyReference.directory.appendingPathComponent("\(name).gguf"), device: CPUDevice())
        let hf = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory(name), device: CPUDevice())
        if name.hasPrefix("llama") {   // the same tensors exactly: un-permuting is a permutation
            var c = gguf.config   // GGUF stores ε as a float32
            #expect(Float(c.architecture.normEpsilon) == Float(hf.config.architecture.normEpsilon))
            c.architecture.normEpsilon = hf.config.architecture.normEpsilon
            #expect(c == hf.config)
            for spec in hf.layout.specs { #expect(try gguf.parameter(spec.name) == (try hf.parameter(spec.name)), "\(spec.name)") }
        } else {                        // the converter writes GPT-2's tied head out as output.weight
            #expect(!gguf.config.architecture.tiedHead)
            #expect(try gguf.parameter("lm_head.weight") == (try hf.parameter("transformer.wte.weight")))
        }
        let ref = try FamilyReference.reference(name)
        let (tok, tgt, b, t) = try FamilyReference.batch(ref)
        let r = try gguf.forward(tokens: tok, targets: tgt, batch: b, time: t, needsGradients: false)
        #expect(abs(r.loss - (try ref.doubles("loss"))[0]) < 1e-5)
        let logits = try gguf.logits(), want = try ref.doubles("logits")
        #expect(zip(logits, want).map { abs(Double($0) - $1) }.max()! < 1e-4)
    }

    @Test("unknown architectures, rope scaling and missing tensors are refused by name")
    func refusals() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hf-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        func expectRefusal(_ config: String, mentioning: String) throws {
            try Data(config.utf8).write(to: dir.appendingPathComponent("config.json"))
            #expect { try ModelCheckpoint.loadModel(dir, device: CPUDevice()) } throws: { "\($0)".contains(mentioning) }
        }
        try expectRefusal(#"{"architectures": ["MistralForCausalLM"]}"#, mentioning: "MistralForCausalLM")
        try expectRefusal(#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 5, "max_position_embeddings": 8, "rope_scaling": {"rope_type": "llama3", "factor": 8}}"#, mentioning: "llama3")
        try expectRefusal(#"{"architectures": ["GPT2LMHeadModel"], "n_embd": 8, "n_head": 2, "n_layer": 1, "vocab_size": 5, "n_positions": 8, "activation_function": "relu"}"#, mentioning: "activation_function")
        try expectRefusal(#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 5, "max_position_embeddings": 8}"#, mentioning: "model.safetensors")
        try FileManager.default.copyItem(at: FamilyReference.modelDirectory("llama-tiny").appendingPathComponent("model.safetensors"),
                                         to: dir.appendingPathComponent("model.safetensors"))
        try expectRefusal(#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 48, "num_attention_heads": 6, "num_key_value_heads": 2, "num_hidden_layers": 3, "intermediate_size": 80, "vocab_size": 97, "max_position_embeddings": 64}"#, mentioning: "model.layers.2")
    }
}
