// Architecture: what a transformer block is made of, as configuration (docs/SPEC.md §9). One model
// class runs every family; PicoGPT, GPT-2 and Llama are presets:
//
//   family   norm          positions              MLP               attention       biases        head
//   picogpt  LayerNorm     fixed sinusoidal       ReLU W1/W2        multi-head      W_o, W1, W2   own
//   gpt2     LayerNorm     learned table (wpe)    GELU-tanh fc/proj multi-head      every linear  tied
//   llama    RMSNorm       rotary (θ)             SwiGLU gate/up/dn grouped-query   none          own or tied
//
// The family also fixes the parameter names (`ParameterNames`): PicoGPT's are the paper's PyTorch
// state_dict names, Llama's are Hugging Face's, GPT-2's are Hugging Face's with the fused c_attn
// split into q/k/v projections (HFCheckpoint splits and fuses it on the way in and out).

import Foundation

/// The model families the tool builds, reads and writes.
public enum ModelFamily: String, Codable, CaseIterable, Sendable {
    case picogpt, gpt2, llama
}

public enum NormKind: String, Codable, Sendable {
    /// (x − mean)·rstd·w + b, biased variance.
    case layerNorm
    /// x·rstd·w, rstd = 1/√(mean(x²) + ε); no bias.
    case rmsNorm
}

public enum PositionKind: Codable, Equatable, Sendable {
    /// The fixed interleaved sinusoidal table added to the embedding (docs/SPEC.md §1).
    case sinusoidal
    /// A learned (context, d_model) table added to the embedding.
    case learned
    /// Rotary embedding of q and k with base θ, Hugging Face's rotate-half convention.
    case rotary(theta: Double)
}

public enum MLPKind: String, Codable, Sendable {
    /// down(relu(up(x))).
    case relu
    /// down(gelu_tanh(up(x))) (GPT-2's gelu_new).
    case geluTanh
    /// down(silu(gate(x))·up(x)).
    case swiglu
}

/// The role of a linear layer in its block (or the head).
public enum LinearRole: String, Codable, Sendable, CaseIterable {
    case query, key, value, output, up, gate, down, head
}

public struct Architecture: Codable, Equatable, Sendable {
    public var family: ModelFamily
    public var norm: NormKind
    public var normEpsilon: Double
    public var positions: PositionKind
    public var mlp: MLPKind
    /// Key/value heads (nil: as many as query heads).
    public var kvHeads: Int?
    /// Biases on the q, k and v projections; on the attention output; on the MLP's linears.
    public var qkvBias: Bool
    public var outputBias: Bool
    public var mlpBias: Bool
    /// The head multiplies by the token embedding's table instead of a matrix of its own.
    public var tiedHead: Bool

    public init(family: ModelFamily, norm: NormKind, normEpsilon: Double, positions: PositionKind, mlp: MLPKind,
                kvHeads: Int? = nil, qkvBias: Bool, outputBias: Bool, mlpBias: Bool, tiedHead: Bool) {
        self.family = family; self.norm = norm; self.normEpsilon = normEpsilon; self.positions = positions; self.mlp = mlp
        self.kvHeads = kvHeads; self.qkvBias = qkvBias; self.outputBias = outputBias; self.mlpBias = mlpBias; self.tiedHead = tiedHead
    }

    /// The paper's model (docs/SPEC.md §1).
    public static let picoGPT = Architecture(family: .picogpt, norm: .layerNorm, normEpsilon: 1e-5, positions: .sinusoidal, mlp: .relu,
                                             qkvBias: false, outputBias: true, mlpBias: true, tiedHead: false)
    /// GPT-2: LayerNorm ε 1e-5, learned positions, GELU-tanh, biases everywhere, tied head.
    public static let gpt2 = Architecture(family: .gpt2, norm: .layerNorm, normEpsilon: 1e-5, positions: .learned, mlp: .geluTanh,
                                          qkvBias: true, outputBias: true, mlpBias: true, tiedHead: true)
    /// Llama: RMSNorm, rotary positions of base θ, SwiGLU, no biases, `kvHeads` key/value heads.
    public static func llama(theta: Double = 10_000, normEpsilon: Double = 1e-5, kvHeads: Int? = nil, tiedHead: Bool = false) -> Architecture {
        Architecture(family: .llama, norm: .rmsNorm, normEpsilon: normEpsilon, positions: .rotary(theta: theta), mlp: .swiglu,
                     kvHeads: kvHeads, qkvBias: false, outputBias: false, mlpBias: false, tiedHead: tiedHead)
    }

    /// The preset of `family`.
    public static func preset(_ family: ModelFamily) -> Architecture {
        switch family {
        case .picogpt: return .picoGPT
        case .gpt2: return .gpt2
        case .llama: return .llama()
        }
    }

    public var names: ParameterNames { ParameterNames(family) }

    public func hasBias(_ role: LinearRole) -> Bool {
        switch role {
        case .query, .key, .value: return qkvBias
        case .output: return outputBias
        case .up, .gate, .down: return mlpBias
        case .head: return false
        }
    }

    /// The rotary base θ, nil for other position schemes.
    public var ropeTheta: Double? { if case .rotary(let t) = positions { return t } else { return nil } }

    /// "picogpt" for the preset itself, else the family and what differs, e.g.
    /// "llama (θ 100000, ε 1e-05, 3 kv heads, tied)".
    public var summary: String {
        var parts: [String] = []
        if let t = ropeTheta { parts.append("θ \(t == t.rounded() ? String(Int(t)) : String(t))") }
        if norm == .rmsNorm || normEpsilon != 1e-5 { parts.append("ε \(normEpsilon)") }
        if let k = kvHeads { parts.append("\(k) kv heads") }
        if tiedHead != Architecture.preset(family).tiedHead { parts.append(tiedHead ? "tied" : "untied") }
        return family.rawValue + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
    }
}

/// The names of a family's parameters: module paths joined by dots, then `.weight`/`.bias`
/// (`.cores.<l>` for an MPO layer's cores).
public struct ParameterNames: Sendable, Equatable {
    public let tokenEmbedding: String
    /// The learned position table's module (nil where positions are not learned).
    public let positionTable: String?
    public let blockPrefix: String
    public let norm1: String, norm2: String
    public let linear: [LinearRole: String]
    public let finalNorm: String
    public let head: String

    public init(_ family: ModelFamily) {
        switch family {
        case .picogpt:
            tokenEmbedding = "tok_emb"; positionTable = nil; blockPrefix = "blocks"; norm1 = "ln1"; norm2 = "ln2"
            linear = [.query: "attn.W_q", .key: "attn.W_k", .value: "attn.W_v", .output: "attn.W_o", .up: "ffn.W1", .down: "ffn.W2"]
            finalNorm = "ln_f"; head = "lm_head"
        case .gpt2:
            tokenEmbedding = "transformer.wte"; positionTable = "transformer.wpe"; blockPrefix = "transformer.h"
            norm1 = "ln_1"; norm2 = "ln_2"
            linear = [.query: "attn.q_proj", .key: "attn.k_proj", .value: "attn.v_proj", .output: "attn.c_proj",
                      .up: "mlp.c_fc", .down: "mlp.c_proj"]
            finalNorm = "transformer.ln_f"; head = "lm_head"
        case .llama:
            tokenEmbedding = "model.embed_tokens"; positionTable = nil; blockPrefix = "model.layers"
            norm1 = "input_layernorm"; norm2 = "post_attention_layernorm"
            linear = [.query: "self_attn.q_proj", .key: "self_attn.k_proj", .value: "self_attn.v_proj", .output: "self_attn.o_proj",
                      .up: "mlp.up_proj", .gate: "mlp.gate_proj", .down: "mlp.down_proj"]
            finalNorm = "model.norm"; head = "lm_head"
        }
    }

    public func block(_ l: Int) -> String { "\(blockPrefix).\(l)" }
    /// The module path of block `l`'s linear of `role`.
    public func linear(_ role: LinearRole, block l: Int) -> String { role == .head ? head : "\(block(l)).\(linear[role]!)" }
}
