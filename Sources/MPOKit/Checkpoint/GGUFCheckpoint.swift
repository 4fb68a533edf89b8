// GGUF checkpoints (llama.cpp, Ollama, LM Studio files) as models: the architecture from
// `general.architecture` and its keys, the weights dequantised to f32 (GGUF's reader) under this
// tool's names. Architectures `llama` and `gpt2`; anything else is refused by name.
//
// llama: token_embd → model.embed_tokens, blk.i.attn_norm → input_layernorm, attn_q/k/v/output →
// self_attn.q/k/v/o_proj, ffn_norm → post_attention_layernorm, ffn_gate/up/down → mlp.*_proj,
// output_norm → model.norm, output → lm_head (absent: the head is tied). The converters store q and
// k permuted for ggml's rotary layout — within each head, row 2j + i holds Hugging Face's row
// i·hd/2 + j — which is undone here, so the model equals the Hugging Face one.
// gpt2: token_embd, position_embd, blk.i.attn_norm/attn_qkv (q, k, v rows stacked)/attn_output/
// ffn_norm/ffn_up/ffn_down with biases, output_norm, output.

import Foundation
import GGUF

public enum GGUFCheckpoint {
    public static func isGGUF(_ url: URL) -> Bool {
        guard let h = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? h.close() }
        return (try? h.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    public static func open(_ url: URL) throws -> GGUFFile {
        do { return try GGUFFile(contentsOf: url) } catch let e as GGUFError { throw ModelError("\(url.path): \(e.message)") }
    }

    /// The model configuration a GGUF file describes.
    public static func config(_ f: GGUFFile) throws -> ModelConfig {
        let file = f.url.lastPathComponent
        guard let arch = f.string("general.architecture") else { throw ModelError("\(file): no general.architecture") }
        func int(_ key: String) throws -> Int {
            guard let v = f.int("\(arch).\(key)") else { throw ModelError("\(file): metadata '\(arch).\(key)' is missing or not an integer") }
            return v
        }
        let vocab = f.int("\(arch).vocab_size") ?? (f.metadata["tokenizer.ggml.tokens"]?.array?.count)
            ?? f.info("token_embd.weight")?.shape.first
        guard let V = vocab else { throw ModelError("\(file): no vocabulary size (\(arch).vocab_size or tokenizer.ggml.tokens)") }
        switch arch {
        case "llama":
            let C = try int("embedding_length"), H = try int("attention.head_count")
            let KVH = f.int("llama.attention.head_count_kv") ?? H
            if let rot = f.int("llama.rope.dimension_count"), rot != C / H {
                throw ModelError("\(file): rope.dimension_count \(rot) differs from the head dim \(C / H); partial rotary is not supported")
            }
            if let s = f.string("llama.rope.scaling.type"), s != "none" {
                throw ModelError("\(file): rope scaling '\(s)' is not supported (only plain rotary positions)")
            }
            let a = Architecture.llama(theta: f.double("llama.rope.freq_base") ?? 10_000,
                                       normEpsilon: f.double("llama.attention.layer_norm_rms_epsilon") ?? 1e-5,
                                       kvHeads: KVH == H ? nil : KVH, tiedHead: f.info("output.weight") == nil)
            return ModelConfig(vocabularySize: V, channels: C, heads: H, layers: try int("block_count"),
                               context: try int("context_length"), ffn: try int("feed_forward_length"), architecture: a)
        case "gpt2":
            var a = Architecture.gpt2
            a.normEpsilon = f.double("gpt2.attention.layer_norm_epsilon") ?? 1e-5
            a.tiedHead = f.info("output.weight") == nil
            return ModelConfig(vocabularySize: V, channels: try int("embedding_length"), heads: try int("attention.head_count"),
                               layers: try int("block_count"), context: try int("context_length"),
                               ffn: try int("feed_forward_length"), architecture: a)
        default:
            throw ModelError("\(file): architecture '\(arch)' is not supported; this tool reads llama and gpt2 GGUF files")
        }
    }

    /// Hugging Face rows from ggml's rotary layout: within each of `heads` heads of hd rows,
    /// HF row i·hd/2 + j = stored row 2j + i.
    static func unpermute(_ w: [Float], heads: Int, columns: Int) -> [Float] { rotaryRows(w, heads: heads, columns: columns, toGGML: false) }

    /// ggml's rotary layout from Hugging Face rows (the inverse of `unpermute`).
    static func permute(_ w: [Float], heads: Int, columns: Int) -> [Float] { rotaryRows(w, heads: heads, columns: columns, toGGML: true) }

    /// Rows moved between the layouts: HF row i·hd/2 + j ↔ stored row 2j + i within each head.
    private static func rotaryRows(_ w: [Float], heads: Int, columns: Int, toGGML: Bool) -> [Float] {
        let rows = w.count / columns, hd = rows / heads
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads { for i in 0..<2 { for j in 0..<(hd / 2) {
            let hf = h * hd + i * hd / 2 + j, stored = h * hd + 2 * j + i
            let (to, from) = toGGML ? (stored, hf) : (hf, stored)
            out[(to * columns)..<((to + 1) * columns)] = w[(from * columns)..<((from + 1) * columns)]
        } } }
        return out
    }

    /// Our tensors (by our names) from the file, handed to `store(name, values, offset)` one at a
    /// time — the token embedding and head in pieces of 1,024 rows — so loading holds at most one
    /// small dequantised tensor besides the model.
    static func tensors(_ f: GGUFFile, config c: ModelConfig, store: @escaping (String, [Float], Int) throws -> Void) throws {
        let file = f.url.lastPathComponent, n = c.names
        func read(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard let info = f.info(name) else { throw ModelError("\(file): tensor '\(name)' (shape \(shape)) is missing") }
            guard info.shape == shape else { throw ModelError("\(file): tensor '\(name)' has shape \(info.shape), the metadata implies \(shape)") }
            defer { f.release(name) }
            do { return try f.floats(name) } catch let e as GGUFError { throw ModelError("\(file): \(e.message)") }
        }
        let C = c.channels, F = c.ffn, KC = c.kvChannels, V = c.vocabularySize
        var out = Store { try store($0, $1, 0) }
        /// A (rows, C) table in pieces.
        func stream(_ gguf: String, as ours: String, rows: Int) throws {
            guard let info = f.info(gguf) else { throw ModelError("\(file): tensor '\(gguf)' (shape \([rows, C])) is missing") }
            guard info.shape == [rows, C] else { throw ModelError("\(file): tensor '\(gguf)' has shape \(info.shape), the metadata implies \([rows, C])") }
            for r in stride(from: 0, to: rows, by: 1024) {
                let piece: [Float]
                do { piece = try f.floats(gguf, rows: r..<min(r + 1024, rows)) } catch let e as GGUFError { throw ModelError("\(file): \(e.message)") }
                try store("\(ours)", piece, r * C)
            }
            f.release(gguf)
        }
        try stream("token_embd.weight", as: "\(n.tokenEmbedding).weight", rows: V)
        if let wpe = n.positionTable { out["\(wpe).weight"] = try read("position_embd.weight", [c.context, C]) }
        for b in 0..<c.layers {
            let blk = "blk.\(b)", ours = n.block(b)
            func linear(_ role: LinearRole, _ gguf: String, _ out_: Int, _ in_: Int, permuteHeads: Int? = nil) throws {
                var w = try read("\(blk).\(gguf).weight", [out_, in_])
                if let h = permuteHeads { w = unpermute(w, heads: h, columns: in_) }
                out["\(n.linear(role, block: b)).weight"] = w
                if c.architecture.hasBias(role) { out["\(n.linear(role, block: b)).bias"] = try read("\(blk).\(gguf).bias", [out_]) }
            }
            func norm(_ gguf: String, _ ours_: String) throws {
                out["\(ours).\(ours_).weight"] = try read("\(blk).\(gguf).weight", [C])
                if c.architecture.norm == .layerNorm { out["\(ours).\(ours_).bias"] = try read("\(blk).\(gguf).bias", [C]) }
            }
            try norm("attn_norm", n.norm1)
            try norm("ffn_norm", n.norm2)
            switch c.architecture.family {
            case .gpt2:
                let w = try read("\(blk).attn_qkv.weight", [3 * C, C]), bias = try read("\(blk).attn_qkv.bias", [3 * C])
                for (k, role) in [LinearRole.query, .key, .value].enumerated() {
                    out["\(n.linear(role, block: b)).weight"] = Array(w[(k * C * C)..<((k + 1) * C * C)])
                    out["\(n.linear(role, block: b)).bias"] = Array(bias[(k * C)..<((k + 1) * C)])
                }
            default:
                try linear(.query, "attn_q", C, C, permuteHeads: c.heads)
                try linear(.key, "attn_k", KC, C, permuteHeads: c.kvHeads)
                try linear(.value, "attn_v", KC, C)
                try linear(.gate, "ffn_gate", F, C)
            }
            try linear(.output, "attn_output", C, C)
            try linear(.up, "ffn_up", F, C)
            try linear(.down, "ffn_down", C, F)
        }
        out["\(n.finalNorm).weight"] = try read("output_norm.weight", [C])
        if c.architecture.norm == .layerNorm { out["\(n.finalNorm).bias"] = try read("output_norm.bias", [C]) }
        try out.finish()
        if !c.architecture.tiedHead { try stream("output.weight", as: "\(n.head).weight", rows: V) }
    }

    /// `store[name] = values` passes each tensor on (errors surface at the next store or `finish`).
    struct Store {
        let body: (String, [Float]) throws -> Void
        var error: Error?
        init(_ body: @escaping (String, [Float]) throws -> Void) { self.body = body }
        subscript(name: String) -> [Float]? {
            get { nil }
            set { if error == nil, let v = newValue { do { try body(name, v) } catch { self.error = error } } }
        }
        func finish() throws { if let error { throw error } }
    }

    /// The model of a GGUF file on `device`, its weights dequantised to f32.
    public static func loadModel(_ url: URL, device: any ComputeDevice, purpose: ModelPurpose = .training,
                                 weightDType: WeightDType = .f32) throws -> Transformer {
        let f = try open(url)
        let c = try config(f)
        do { try c.validate() } catch { throw ModelError("\(url.path): \(error)") }
        let model = try Transformer(config: c, device: device, purpose: purpose, weightDType: weightDType)
        var written: [String: Int] = [:]
        try tensors(f, config: c) { name, v, at in
            guard let spec = model.layout[name], at + v.count <= spec.count else { throw ModelError("\(url.path): no parameter '\(name)' of \(at + v.count) values") }
            if let bad = v.firstIndex(where: { !$0.isFinite }) {
                throw ModelError("\(url.path): '\(name)' holds a non-finite value (\(v[bad])) at index \(at + bad)")
            }
            try model.writeParameter(name, v, at: at)
            written[name, default: 0] += v.count
        }
        for spec in model.layout.specs where written[spec.name] != spec.count { throw ModelError("\(url.path): no tensor for '\(spec.name)'") }
        model.parametersChanged()
        return model
    }
}
