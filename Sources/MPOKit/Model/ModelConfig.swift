// ModelConfig: the shape of a PicoGPT (docs/SPEC.md §1) and, per linear layer, dense or MPO (docs/SPEC.md §2).
//
// Linear layers are named by their PyTorch module path ("blocks.0.attn.W_q", "lm_head"); the
// MPO settings are a property of each linear, not a second model class (docs/DESIGN.md §1).

import TensorTrain

public struct ModelConfig: Codable, Equatable, Sendable {
    public var vocabularySize = 65
    public var channels = 128
    public var heads = 4
    public var layers = 4
    public var context = 256
    public var ffn = 512
    /// Uniform bond dimension for every linear layer; nil means a dense model.
    public var chi: Int?
    /// Per-layer bond dimension (layer name → χ), overriding `chi`.
    public var chiOverrides: [String: Int] = [:]
    /// Per-layer factorisation (layer name → factors), overriding the standard one.
    public var factorizations: [String: MPOFactorization] = [:]
    /// Per-layer explicit bond lists [1, b1, …, 1] (e.g. read from a TT-SVD checkpoint).
    public var bonds: [String: [Int]] = [:]
    /// How the token embedding is stored (docs/SPEC.md §5); nil means the dense (V, D) table. Optional so
    /// configs written before embeddings had kinds still decode; use `tokenEmbedding` (EmbeddingKind.swift).
    public var embedding: EmbeddingKind?

    public init(vocabularySize: Int = 65, channels: Int = 128, heads: Int = 4, layers: Int = 4,
                context: Int = 256, ffn: Int = 512, chi: Int? = nil) {
        self.vocabularySize = vocabularySize; self.channels = channels; self.heads = heads
        self.layers = layers; self.context = context; self.ffn = ffn; self.chi = chi
    }

    /// The paper's dense PicoGPT.
    public static let picoGPT = ModelConfig()
    /// The paper's PicoGPT with every linear layer an MPO of bond dimension χ.
    public static func mpo(chi: Int) -> ModelConfig { ModelConfig(chi: chi) }

    public var headDim: Int { channels / heads }
    public var isMPO: Bool { chi != nil || !chiOverrides.isEmpty || !bonds.isEmpty }

    /// Every linear layer in module order: (name, out, in, hasBias).
    public var linearLayers: [(name: String, out: Int, in: Int, bias: Bool)] {
        var out: [(String, Int, Int, Bool)] = []
        for b in 0..<layers {
            for p in ["W_q", "W_k", "W_v"] { out.append(("blocks.\(b).attn.\(p)", channels, channels, false)) }
            out.append(("blocks.\(b).attn.W_o", channels, channels, true))
            out.append(("blocks.\(b).ffn.W1", ffn, channels, true))
            out.append(("blocks.\(b).ffn.W2", channels, ffn, true))
        }
        out.append(("lm_head", vocabularySize, channels, false))
        return out.map { (name: $0.0, out: $0.1, in: $0.2, bias: $0.3) }
    }

    /// This configuration with every linear layer whose shape docs/SPEC.md §2's table does not fix given
    /// the factorisation that is cheapest to run site by site at χ (MPOFactorization.cheapest),
    /// recorded explicitly (so checkpoints carry it). Layers with a factorisation already keep it.
    public func choosingFactorizations(chi: Int) -> ModelConfig {
        var c = self
        for l in linearLayers where factorizations[l.name] == nil && !MPOFactorization.isSpecified(out: l.out, in: l.in) {
            c.factorizations[l.name] = MPOFactorization.cheapest(out: l.out, in: l.in, chi: chiOverrides[l.name] ?? chi)
        }
        return c
    }

    /// How the named linear layer (out, in) is stored.
    public func linearKind(_ name: String, out: Int, in: Int) -> LinearKind {
        if let b = bonds[name] {
            return .mpo(factorizations[name] ?? MPOFactorization.standard(out: out, in: `in`), bonds: b)
        }
        guard let chi = chiOverrides[name] ?? chi else { return .dense }
        let f = factorizations[name] ?? MPOFactorization.standard(out: out, in: `in`)
        return .mpo(f, bonds: f.bonds(chi: chi))
    }

    /// Checks the configuration; the message names the bad field and a valid choice.
    public func validate() throws {
        func fail(_ s: String) -> ModelError { ModelError(s) }
        guard vocabularySize >= 1, channels >= 1, layers >= 1, context >= 1, ffn >= 1 else {
            throw fail("model sizes must be positive (vocab \(vocabularySize), d_model \(channels), layers \(layers), context \(context), d_ff \(ffn))")
        }
        guard heads >= 1, channels % heads == 0 else {
            throw fail("d_model \(channels) is not divisible by heads \(heads); pick heads that divide it")
        }
        if let chi, chi < 1 { throw fail("bond dimension χ must be ≥ 1 (got \(chi))") }
        try validateEmbedding()
        for (name, c) in chiOverrides where c < 1 { throw fail("bond dimension for \(name) must be ≥ 1 (got \(c))") }
        let names = Set(linearLayers.map(\.name))
        for key in Set(chiOverrides.keys).union(factorizations.keys).union(bonds.keys) where !names.contains(key) {
            throw fail("unknown linear layer '\(key)'; layers are named like blocks.0.attn.W_q, blocks.0.ffn.W1, lm_head")
        }
        for l in linearLayers {
            if let f = factorizations[l.name] {
                do { try f.validate(out: l.out, in: l.in) } catch {
                    throw fail("factorisation for \(l.name) (\(l.out)×\(l.in)): \(error)")
                }
            }
            if case .mpo(let f, let b) = linearKind(l.name, out: l.out, in: l.in) {
                guard b.count == f.sites + 1, b.first == 1, b.last == 1, b.allSatisfy({ $0 >= 1 }) else {
                    throw fail("bonds \(b) for \(l.name) must be [1, …, 1] with \(f.sites + 1) entries ≥ 1")
                }
            }
        }
    }
}

/// How one linear layer stores its weight.
public enum LinearKind: Equatable, Sendable {
    case dense
    /// MPO cores (b_l, o_l, i_l, b_{l+1}) for the factorisation and bonds.
    case mpo(MPOFactorization, bonds: [Int])
}

public struct ModelError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
