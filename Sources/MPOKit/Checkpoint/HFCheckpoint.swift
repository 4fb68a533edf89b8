// Hugging Face model directories: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json; F32, F16 and BF16 tensors. Two architectures:
//
//  - LlamaForCausalLM: tensor names are ours (ParameterNames.llama); lm_head.weight is absent when
//    the head is tied (tie_word_embeddings).
//  - GPT2LMHeadModel: Conv1D weights are stored (in, out) — transposed on the way in and out — and
//    the attention's q/k/v are one fused c_attn (C, 3C) with a (3C) bias, split into our q_proj,
//    k_proj, v_proj and fused again on save; names may lack the "transformer." prefix (GPT2Model
//    files); the tied head has no tensor; the causal-mask buffers attn.bias/attn.masked_bias of
//    older files are skipped.
//
// Anything else — another architecture, rope scaling, an activation other than the family's — is
// refused naming the field. `save` writes the same layout back (an MPO layer as its contracted
// weight), so transformers' from_pretrained loads it.

import Foundation
import SafeTensors
import TensorTrain
import Tokenizers

public enum HFCheckpoint {
    /// Whether `url` is a directory holding config.json.
    public static func isModelDirectory(_ url: URL) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &dir) && dir.boolValue
            && FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path)
    }

    // MARK: - config.json

    static func json(_ url: URL) throws -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ModelError("cannot read \(url.path): \(error.localizedDescription)") }
        guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError("\(url.path) is not a JSON object")
        }
        return o
    }

    /// The model configuration config.json describes.
    public static func config(_ dir: URL) throws -> ModelConfig {
        let file = dir.appendingPathComponent("config.json")
        let j = try json(file)
        func int(_ key: String, _ fallback: Int? = nil) throws -> Int {
            if let v = j[key] as? Int { return v }
            if let v = j[key] as? Double, v == v.rounded() { return Int(v) }
            if let fallback { return fallback }
            throw ModelError("\(file.path): '\(key)' is missing or not an integer")
        }
        func double(_ key: String, _ fallback: Double) throws -> Double {
            guard let v = j[key], !(v is NSNull) else { return fallback }
            guard let d = v as? Double else { throw ModelError("\(file.path): '\(key)' is not a number") }
            return d
        }
        func bool(_ key: String, _ fallback: Bool) -> Bool { (j[key] as? Bool) ?? fallback }
        let archs = (j["architectures"] as? [String]) ?? []
        let type = j["model_type"] as? String ?? ""
        if archs.contains("LlamaForCausalLM") || (archs.isEmpty && type == "llama") {
            // Rotary base: transformers ≥ 5 writes rope_parameters {rope_type, rope_theta}, earlier
            // versions rope_theta and rope_scaling; only the default (unscaled) rotation is read.
            var theta = try double("rope_theta", 10_000)
            for key in ["rope_parameters", "rope_scaling"] {
                guard let v = j[key], !(v is NSNull) else { continue }
                guard let p = v as? [String: Any] else { throw ModelError("\(file.path): '\(key)' is not an object") }
                let type = (p["rope_type"] as? String) ?? (p["type"] as? String) ?? "default"
                guard type == "default" else {
                    throw ModelError("\(file.path): \(key) of type '\(type)' is not supported (only the default rotary positions); the model cannot be read")
                }
                if let t = p["rope_theta"] as? Double { theta = t }
            }
            let act = j["hidden_act"] as? String ?? "silu"
            guard act == "silu" else { throw ModelError("\(file.path): hidden_act '\(act)' is not supported; Llama models use silu") }
            let C = try int("hidden_size"), H = try int("num_attention_heads")
            if let hd = j["head_dim"] as? Int, hd != C / H {
                throw ModelError("\(file.path): head_dim \(hd) differs from hidden_size/num_attention_heads = \(C / H), which is not supported")
            }
            var a = Architecture.llama(theta: theta, normEpsilon: try double("rms_norm_eps", 1e-6),
                                       kvHeads: try int("num_key_value_heads", H), tiedHead: bool("tie_word_embeddings", false))
            if a.kvHeads == H { a.kvHeads = nil }
            let attnBias = bool("attention_bias", false)
            a.qkvBias = attnBias; a.outputBias = attnBias; a.mlpBias = bool("mlp_bias", false)
            return ModelConfig(vocabularySize: try int("vocab_size"), channels: C, heads: H, layers: try int("num_hidden_layers"),
                               context: try int("max_position_embeddings"), ffn: try int("intermediate_size"), architecture: a)
        }
        if archs.contains("GPT2LMHeadModel") || (archs.isEmpty && type == "gpt2") {
            let act = j["activation_function"] as? String ?? "gelu_new"
            guard act == "gelu_new" || act == "gelu_pytorch_tanh" else {
                throw ModelError("\(file.path): activation_function '\(act)' is not supported; GPT-2 models use gelu_new (tanh)")
            }
            for key in ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"] where bool(key, false) {
                throw ModelError("\(file.path): \(key) = true is not supported")
            }
            guard bool("scale_attn_weights", true) else { throw ModelError("\(file.path): scale_attn_weights = false is not supported") }
            let C = try int("n_embd")
            var a = Architecture.gpt2
            a.normEpsilon = try double("layer_norm_epsilon", 1e-5)
            a.tiedHead = bool("tie_word_embeddings", true)
            let inner = (j["n_inner"] as? Int) ?? 4 * C
            return ModelConfig(vocabularySize: try int("vocab_size"), channels: C, heads: try int("n_head"), layers: try int("n_layer"),
                               context: try int("n_positions"), ffn: inner, architecture: a)
        }
        let name = archs.first ?? (type.isEmpty ? "(none given)" : type)
        throw ModelError("\(file.path): architecture \(name) is not supported; this tool reads LlamaForCausalLM and GPT2LMHeadModel")
    }

    // MARK: - Tensors

    /// Every tensor name of the directory and the safetensors file holding it.
    static func tensorFiles(_ dir: URL) throws -> [String: SafeTensorsFile] {
        let single = dir.appendingPathComponent("model.safetensors"), index = dir.appendingPathComponent("model.safetensors.index.json")
        var files: [String: SafeTensorsFile] = [:]
        if FileManager.default.fileExists(atPath: single.path) {
            let f = try ModelCheckpoint.open(single)
            for n in f.names { files[n] = f }
            return files
        }
        guard FileManager.default.fileExists(atPath: index.path) else {
            throw ModelError("\(dir.path) has neither model.safetensors nor model.safetensors.index.json (PyTorch .bin weights are not read; convert them to safetensors)")
        }
        guard let map = try json(index)["weight_map"] as? [String: String] else {
            throw ModelError("\(index.path): no 'weight_map' object")
        }
        var opened: [String: SafeTensorsFile] = [:]
        for (name, shard) in map {
            guard !shard.contains("/") else { throw ModelError("\(index.path): shard '\(shard)' is not a file name in the directory") }
            if opened[shard] == nil { opened[shard] = try ModelCheckpoint.open(dir.appendingPathComponent(shard)) }
            guard opened[shard]!.info(name) != nil else { throw ModelError("\(index.path) maps '\(name)' to \(shard), which does not hold it") }
            files[name] = opened[shard]
        }
        return files
    }

    /// (rows, cols) row-major → (cols, rows).
    static func transpose(_ x: [Float], rows: Int, cols: Int) -> [Float] {
        var t = [Float](repeating: 0, count: x.count)
        for r in 0..<rows { for c in 0..<cols { t[c * rows + r] = x[r * cols + c] } }
        return t
    }

    /// A GPT-2 file's name for our `name` (the file may lack the "transformer." prefix).
    static func gpt2Name(_ name: String, in files: [String: SafeTensorsFile]) -> String {
        if files[name] != nil || !name.hasPrefix("transformer.") { return name }
        let bare = String(name.dropFirst("transformer.".count))
        return files[bare] != nil ? bare : name
    }

    /// Our parameters (dense linears) from the directory's tensors, by our names.
    static func importTensors(_ files: [String: SafeTensorsFile], config c: ModelConfig, dir: URL) throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        let layout = c.parameterLayout()
        func read(_ name: String, shape: [Int]) throws -> [Float] {
            guard let f = files[name], let info = f.info(name) else {
                throw ModelError("\(dir.path): tensor '\(name)' (shape \(shape)) is missing; the weights do not match config.json")
            }
            guard info.shape == shape else {
                throw ModelError("\(dir.path): tensor '\(name)' has shape \(info.shape), config.json implies \(shape)")
            }
            return try f.floats(name)
        }
        switch c.architecture.family {
        case .llama, .picogpt:
            for spec in layout.specs { out[spec.name] = try read(spec.name, shape: spec.shape) }
        case .gpt2:
            let C = c.channels, n = c.names
            for spec in layout.specs {
                guard case .linearWeight(let l) = spec.role else {
                    if case .linearBias(let l) = spec.role, [.query, .key, .value].contains(l.role) { continue }
                    out[spec.name] = try read(gpt2Name(spec.name, in: files), shape: spec.shape)
                    continue
                }
                switch l.role {
                case .query, .key, .value: continue   // from c_attn below
                default:   // Conv1D (in, out)
                    out[spec.name] = transpose(try read(gpt2Name(spec.name, in: files), shape: [l.in, l.out]), rows: l.in, cols: l.out)
                }
            }
            for b in 0..<c.layers {
                let attn = "\(n.block(b)).attn.c_attn"
                let w = try read(gpt2Name("\(attn).weight", in: files), shape: [C, 3 * C])
                let bias = try read(gpt2Name("\(attn).bias", in: files), shape: [3 * C])
                let t = transpose(w, rows: C, cols: 3 * C)   // (3C, C): q rows, then k, then v
                for (k, role) in [LinearRole.query, .key, .value].enumerated() {
                    let name = n.linear(role, block: b)
                    out["\(name).weight"] = Array(t[(k * C * C)..<((k + 1) * C * C)])
                    out["\(name).bias"] = Array(bias[(k * C)..<((k + 1) * C)])
                }
            }
        }
        return out
    }

    /// Loads the model of a Hugging Face directory on `device`.
    public static func loadModel(_ dir: URL, device: any ComputeDevice, purpose: ModelPurpose = .training,
                                 weightDType: WeightDType = .f32) throws -> Transformer {
        let c = try config(dir)
        try c.validate()
        let values = try importTensors(try tensorFiles(dir), config: c, dir: dir)
        let model = try Transformer(config: c, device: device, purpose: purpose, weightDType: weightDType)
        for spec in model.layout.specs {
            let v = values[spec.name]!
            if let bad = v.firstIndex(where: { !$0.isFinite }) {
                throw ModelError("\(dir.path): '\(spec.name)' holds a non-finite value (\(v[bad])) at index \(bad)")
            }
            try model.writeParameter(spec.name, v)
        }
        model.parametersChanged()
        return model
    }

    // MARK: - Export

    /// The family's file tensors (name, shape, values) from our tensors `value(name)` — the
    /// parameters for `save`, their gradients for `dump`. Dense linears only.
    public static func exportTensors(config c: ModelConfig, value: (String) throws -> [Float]) throws -> [(name: String, shape: [Int], values: [Float])] {
        var out: [(String, [Int], [Float])] = []
        let layout = c.parameterLayout()
        for spec in layout.specs where spec.role.isCore {
            throw ModelError("'\(spec.name)' is an MPO/TT core: a Hugging Face file holds dense weights (rebuild them first)")
        }
        switch c.architecture.family {
        case .llama, .picogpt:
            for spec in layout.specs { out.append((spec.name, spec.shape, try value(spec.name))) }
        case .gpt2:
            let C = c.channels, n = c.names
            for spec in layout.specs {
                if case .linearWeight(let l) = spec.role {
                    if [.query, .key, .value].contains(l.role) {
                        guard l.role == .query else { continue }
                        let b = l.block!, names = [LinearRole.query, .key, .value].map { n.linear($0, block: b) }
                        let stacked = try names.flatMap { try value("\($0).weight") }   // (3C, C)
                        out.append(("\(n.block(b)).attn.c_attn.weight", [C, 3 * C], transpose(stacked, rows: 3 * C, cols: C)))
                        out.append(("\(n.block(b)).attn.c_attn.bias", [3 * C], try names.flatMap { try value("\($0).bias") }))
                        continue
                    }
                    out.append((spec.name, [l.in, l.out], transpose(try value(spec.name), rows: l.out, cols: l.in)))
                } else if case .linearBias(let l) = spec.role, [.query, .key, .value].contains(l.role) {
                    continue
                } else {
                    out.append((spec.name, spec.shape, try value(spec.name)))
                }
            }
        }
        return out.map { (name: $0.0, shape: $0.1, values: $0.2) }
    }

    /// config.json of `c` in the family's keys.
    static func configJSON(_ c: ModelConfig) throws -> [String: Any] {
        let a = c.architecture
        switch a.family {
        case .llama:
            return ["architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": c.channels,
                    "intermediate_size": c.ffn, "num_attention_heads": c.heads, "num_key_value_heads": c.kvHeads,
                    "num_hidden_layers": c.layers, "max_position_embeddings": c.context, "vocab_size": c.vocabularySize,
                    "rms_norm_eps": a.normEpsilon, "rope_theta": a.ropeTheta ?? 10_000, "tie_word_embeddings": a.tiedHead,
                    "hidden_act": "silu", "attention_bias": a.qkvBias, "mlp_bias": a.mlpBias, "torch_dtype": "float32",
                    "rope_parameters": ["rope_type": "default", "rope_theta": a.ropeTheta ?? 10_000], "head_dim": c.headDim]
        case .gpt2:
            return ["architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": c.channels, "n_head": c.heads,
                    "n_layer": c.layers, "n_positions": c.context, "n_inner": c.ffn, "vocab_size": c.vocabularySize,
                    "layer_norm_epsilon": a.normEpsilon, "activation_function": "gelu_new", "tie_word_embeddings": a.tiedHead,
                    "torch_dtype": "float32"]
        case .picogpt:
            throw ModelError("PicoGPT has no Hugging Face architecture; save it as an mpo-train checkpoint")
        }
    }

    /// Writes config.json and model.safetensors (F32) into `dir` (created; files replaced atomically).
    /// MPO linears are written as their contracted weights; the embedding must be dense.
    public static func save(_ model: Transformer, to dir: URL) throws {
        var c = model.config
        let dense = c.isMPO ? try Compression.denseWeights(model) : [:]
        c.chi = nil; c.chiOverrides = [:]; c.bonds = [:]; c.factorizations = [:]
        guard c.tokenEmbedding == .dense else {
            throw ModelError("the token embedding is \(c.tokenEmbedding): a Hugging Face file holds a dense table (compress it back with --embedding dense)")
        }
        let tensors = try exportTensors(config: c) { name in
            if name.hasSuffix(".weight"), let w = dense[String(name.dropLast(".weight".count))] { return w }
            return try model.parameter(name)
        }
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw ModelError("cannot create \(dir.path): \(error.localizedDescription)")
        }
        var w = SafeTensorsWriter(metadata: ["format": "pt"])
        for t in tensors { try w.add(t.name, shape: t.shape, floats: t.values) }
        try w.write(to: dir.appendingPathComponent("model.safetensors"))
        let json = try JSONSerialization.data(withJSONObject: try configJSON(c), options: [.prettyPrinted, .sortedKeys])
        let tmp = dir.appendingPathComponent("config.json.tmp")
        try json.write(to: tmp)
        guard rename(tmp.path, dir.appendingPathComponent("config.json").path) == 0 else {
            throw ModelError("cannot write \(dir.appendingPathComponent("config.json").path) (errno \(errno))")
        }
    }
}

extension HFCheckpoint {
    /// tokenizer.json and tokenizer_config.json (BOS/EOS tokens, the chat template) for transformers.
    public static func saveTokenizer(_ t: BPETokenizer, to dir: URL) throws {
        try t.tokenizerJSON().write(to: dir.appendingPathComponent("tokenizer.json"), options: .atomic)
        var cfg: [String: Any] = ["tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false,
                                  "model_max_length": 1_000_000_000]
        if let b = t.bos { cfg["bos_token"] = t.tokens[b] }
        if let e = t.eos { cfg["eos_token"] = t.tokens[e] }
        if let tpl = t.chatTemplate { cfg["chat_template"] = tpl }
        try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys])
            .write(to: dir.appendingPathComponent("tokenizer_config.json"), options: .atomic)
    }
}
