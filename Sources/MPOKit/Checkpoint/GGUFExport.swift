// A model as a GGUF file llama.cpp runs: the inverse of GGUFCheckpoint's mapping (llama.cpp's
// convert_hf_to_gguf.py conventions — q/k rows permuted for ggml's rotary layout, GPT-2's q/k/v
// stacked as attn_qkv, a tied Llama head left out, GPT-2's written as output.weight), the
// hyperparameters under `<arch>.*`, and the byte-level BPE tokenizer as tokenizer.ggml.* (tokens,
// merges, token types — special tokens as control —, pre-tokenizer name, BOS/EOS, chat template).
// MPO linears are contracted to their dense weights (llama.cpp knows no MPO); matrices are F32 or
// F16, vectors always F32 (as llama.cpp's converter writes them).

import Foundation
import GGUF
import Tokenizers

extension GGUFCheckpoint {
    /// Writes `model` (Llama or GPT-2 family, dense token embedding) with `tokenizer` to `url`.
    public static func save(_ model: Transformer, tokenizer: BPETokenizer?, to url: URL, matrices: GGUFTensorType = .f32,
                            name: String = "mpo-train export") throws {
        let c = model.config, a = c.architecture, n = c.names
        guard c.tokenEmbedding == .dense else {
            throw ModelError("the token embedding is \(c.tokenEmbedding): GGUF holds a dense table (compress it back with --embedding dense)")
        }
        let arch: String
        switch a.family {
        case .llama: arch = "llama"
        case .gpt2: arch = "gpt2"
        case .picogpt: throw ModelError("PicoGPT has no llama.cpp architecture; export a Llama or GPT-2 model")
        }
        let dense = c.isMPO ? try Compression.denseWeights(model) : [:]
        func value(_ ours: String) throws -> [Float] {
            if ours.hasSuffix(".weight"), let w = dense[String(ours.dropLast(".weight".count))] { return w }
            return try model.parameter(ours)
        }
        var w = GGUFWriter()
        func meta(_ k: String, _ v: GGUFValue) { w.metadata.append((k, v)) }
        meta("general.architecture", .string(arch))
        meta("general.name", .string(name))
        meta("general.file_type", .uint32(matrices == .f32 ? 0 : 1))
        meta("\(arch).context_length", .uint32(UInt32(c.context)))
        meta("\(arch).embedding_length", .uint32(UInt32(c.channels)))
        meta("\(arch).block_count", .uint32(UInt32(c.layers)))
        meta("\(arch).feed_forward_length", .uint32(UInt32(c.ffn)))
        meta("\(arch).attention.head_count", .uint32(UInt32(c.heads)))
        if a.family == .llama {
            meta("llama.attention.head_count_kv", .uint32(UInt32(c.kvHeads)))
            meta("llama.rope.freq_base", .float32(Float(a.ropeTheta ?? 10_000)))
            meta("llama.rope.dimension_count", .uint32(UInt32(c.headDim)))
            meta("llama.attention.layer_norm_rms_epsilon", .float32(Float(a.normEpsilon)))
            meta("llama.vocab_size", .uint32(UInt32(c.vocabularySize)))
        } else {
            meta("gpt2.attention.layer_norm_epsilon", .float32(Float(a.normEpsilon)))
        }
        if let t = tokenizer {
            guard t.count == c.vocabularySize else {
                throw ModelError("the tokenizer has \(t.count) tokens but the model's vocabulary \(c.vocabularySize)")
            }
            let special = Set(t.specialTokens.values)
            meta("tokenizer.ggml.model", .string("gpt2"))
            meta("tokenizer.ggml.pre", .string(t.pre.rawValue))
            meta("tokenizer.ggml.tokens", .array(t.tokens.map { .string($0) }))
            meta("tokenizer.ggml.token_type", .array(t.tokens.indices.map { .int32(special.contains($0) ? 3 : 1) }))
            meta("tokenizer.ggml.merges", .array(t.mergeStrings.map { .string($0) }))
            if let b = t.bos { meta("tokenizer.ggml.bos_token_id", .uint32(UInt32(b))) }
            if let e = t.eos { meta("tokenizer.ggml.eos_token_id", .uint32(UInt32(e))) }
            meta("tokenizer.ggml.add_bos_token", .bool(false))
            if let tpl = t.chatTemplate { meta("tokenizer.chat_template", .string(tpl)) }
        }
        let C = c.channels, KC = c.kvChannels, F = c.ffn, V = c.vocabularySize
        func matrix(_ gguf: String, _ shape: [Int], _ body: @escaping () throws -> [Float]) {
            w.tensors.append(.init(name: gguf, shape: shape, type: matrices, values: body))
        }
        func vector(_ gguf: String, _ ours: String, _ count: Int) {
            w.tensors.append(.init(name: gguf, shape: [count], type: .f32) { try value(ours) })
        }
        matrix("token_embd.weight", [V, C]) { try value("\(n.tokenEmbedding).weight") }
        if let wpe = n.positionTable { matrix("position_embd.weight", [c.context, C]) { try value("\(wpe).weight") } }
        for b in 0..<c.layers {
            let blk = "blk.\(b)", ours = n.block(b)
            func norm(_ gguf: String, _ ours_: String) {
                vector("\(blk).\(gguf).weight", "\(ours).\(ours_).weight", C)
                if a.norm == .layerNorm { vector("\(blk).\(gguf).bias", "\(ours).\(ours_).bias", C) }
            }
            func linear(_ role: LinearRole, _ gguf: String, _ out: Int, _ inF: Int, permuteHeads: Int? = nil) {
                let name = n.linear(role, block: b)
                matrix("\(blk).\(gguf).weight", [out, inF]) {
                    let v = try value("\(name).weight")
                    return permuteHeads.map { permute(v, heads: $0, columns: inF) } ?? v
                }
                if a.hasBias(role) { vector("\(blk).\(gguf).bias", "\(name).bias", out) }
            }
            norm("attn_norm", n.norm1)
            if a.family == .gpt2 {
                let qkv = [LinearRole.query, .key, .value].map { n.linear($0, block: b) }
                matrix("\(blk).attn_qkv.weight", [3 * C, C]) { try qkv.flatMap { try value("\($0).weight") } }
                w.tensors.append(.init(name: "\(blk).attn_qkv.bias", shape: [3 * C], type: .f32) { try qkv.flatMap { try value("\($0).bias") } })
            } else {
                linear(.query, "attn_q", C, C, permuteHeads: c.heads)
                linear(.key, "attn_k", KC, C, permuteHeads: c.kvHeads)
                linear(.value, "attn_v", KC, C)
            }
            linear(.output, "attn_output", C, C)
            norm("ffn_norm", n.norm2)
            if a.family == .llama { linear(.gate, "ffn_gate", F, C) }
            linear(.up, "ffn_up", F, C)
            linear(.down, "ffn_down", C, F)
        }
        vector("output_norm.weight", "\(n.finalNorm).weight", C)
        if a.norm == .layerNorm { vector("output_norm.bias", "\(n.finalNorm).bias", C) }
        if !a.tiedHead { matrix("output.weight", [V, C]) { try value("\(n.head).weight") } }
        else if a.family == .gpt2 { matrix("output.weight", [V, C]) { try value("\(n.tokenEmbedding).weight") } }
        do { try w.write(to: url) } catch let e as GGUFError { throw ModelError("\(url.path): \(e.message)") }
    }
}
