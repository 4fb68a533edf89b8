// Export to llama.cpp and transformers: the GGUF file `GGUFCheckpoint.save` writes reads back to
// the same model (F32 bit for bit; F16 within its rounding), the twins llama.cpp's converter
// conventions made are reproduced tensor for tensor (the Llama one byte for byte in its tensor
// data), an MPO model is written as its contracted weights, and a BPE tokenizer travels in both
// formats (tokenizer.ggml.* / tokenizer.json) and reads back to the same ids.

import Foundation
import GGUF
import Testing
import TestSupport
import Tokenizers
@testable import MPOKit

@Suite("Export: GGUF and Hugging Face files")
struct ExportTests {
    static func temp(_ name: String) -> URL { FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)") }

    @Test("a model written as GGUF reads back to the same parameters and the reference logits", arguments: FamilyReference.families)
    func ggufRoundTrip(_ name: String) throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory(name), device: CPUDevice())
        let url = Self.temp("\(name).gguf")
        try GGUFCheckpoint.save(m, tokenizer: nil, to: url)
        let back = try ModelCheckpoint.loadModel(url, device: CPUDevice())
        for spec in m.layout.specs where back.layout[spec.name] != nil {
            #expect(try back.parameter(spec.name) == (try m.parameter(spec.name)), "\(spec.name)")
        }
        let twin = try GGUFFile(contentsOf: FamilyReference.directory.appendingPathComponent("\(name).gguf"))
        let ours = try GGUFFile(contentsOf: url)
        #expect(Set(ours.tensors.map(\.name)) == Set(twin.tensors.map(\.name)))   // llama.cpp's names, GPT-2's tied head written out
        for t in twin.tensors { #expect(try ours.floats(t.name) == (try twin.floats(t.name)), "\(t.name)") }   // q/k permuted as the converter does
        let ref = try FamilyReference.reference(name)
        let (tok, tgt, b, t) = try FamilyReference.batch(ref)
        let r = try back.forward(tokens: tok, targets: tgt, batch: b, time: t, needsGradients: false)
        #expect(abs(r.loss - (try ref.doubles("loss"))[0]) < 1e-5)

        let half = Self.temp("\(name).f16.gguf")
        try GGUFCheckpoint.save(m, tokenizer: nil, to: half, matrices: .f16)
        let h = try GGUFFile(contentsOf: half)
        #expect(h.info("blk.0.attn_output.weight")?.type == .f16 && h.info("output_norm.weight")?.type == .f32)
        for t in twin.tensors {
            let want = try twin.floats(t.name), got = try h.floats(t.name)
            let matrix = t.shape.count == 2   // matrices rounded to f16, vectors kept f32
            #expect(zip(want, got).allSatisfy { (matrix ? Float(Float16($0.0)) : $0.0) == $0.1 }, "\(t.name)")
        }
    }

    @Test("an MPO model is exported as its contracted weights")
    func mpoExport() throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice())
        let (mpo, _) = try Compression.compress(m, chi: 3)
        let url = Self.temp("llama-mpo.gguf")
        try GGUFCheckpoint.save(mpo, tokenizer: nil, to: url)
        let back = try ModelCheckpoint.loadModel(url, device: CPUDevice())
        let dense = try Compression.denseWeights(mpo)
        for l in mpo.config.linearLayers { #expect(try back.parameter("\(l.name).weight") == dense[l.name]!, "\(l.name)") }
        #expect(try back.parameter("model.norm.weight") == (try mpo.parameter("model.norm.weight")))
    }

    @Test("the tokenizer travels in GGUF and tokenizer.json and gives the same ids")
    func tokenizerTravels() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Resources/tokenizers")
        let t = try BPETokenizer.fromTokenizerJSON(dir.appendingPathComponent("smollm2.tokenizer.json"), chatTemplate: "<|im_start|>{{ x }}")
        let text = try String(contentsOf: dir.appendingPathComponent("stress.txt"), encoding: .utf8)
        // A Llama of SmolLM2's vocabulary (tiny otherwise) carries it.
        var c = ModelConfig(vocabularySize: t.count, channels: 16, heads: 2, layers: 1, context: 16, ffn: 24,
                            architecture: .llama(theta: 10_000, normEpsilon: 1e-5, kvHeads: nil, tiedHead: true))
        c.chi = nil
        let m = try Transformer(config: c, device: CPUDevice(), purpose: .inference)
        try m.initialize(seed: 1)
        let url = Self.temp("tok.gguf")
        try GGUFCheckpoint.save(m, tokenizer: t, to: url)
        guard case .bpe(let g)? = try TextCodec.of(checkpoint: url) else { Issue.record("no tokenizer in the GGUF"); return }
        #expect(g.pre == .smollm && g.tokens == t.tokens && g.mergeStrings == t.mergeStrings && g.specialTokens == t.specialTokens)
        #expect(g.bos == t.bos && g.eos == t.eos && g.chatTemplate == t.chatTemplate && g.encode(text) == t.encode(text))

        let hf = Self.temp("hf")
        try HFCheckpoint.save(m, to: hf)
        try HFCheckpoint.saveTokenizer(t, to: hf)
        guard case .bpe(let h)? = try TextCodec.of(checkpoint: hf) else { Issue.record("no tokenizer in the directory"); return }
        #expect(h.encode(text) == t.encode(text) && h.chatTemplate == t.chatTemplate && h.eos == t.eos)
        // An mpo-train checkpoint's metadata carries it too (compress and train write it).
        let meta = try TextCodec.bpe(t).metadata()
        guard case .bpe(let k)? = try TextCodec.of(metadata: meta, source: "test") else { Issue.record("no tokenizer in the metadata"); return }
        #expect(k.encode(text) == t.encode(text) && k.bos == t.bos && k.eos == t.eos && k.chatTemplate == t.chatTemplate)
    }
}
