// ModelConfig: the shape of a transformer — its architecture (Architecture.swift: PicoGPT, GPT-2 or
// Llama), sizes, and per linear layer dense or MPO (docs/SPEC.md §2).
//
// Linear layers are named by their module path ("blocks.0.attn.W_q", "model.layers.0.mlp.up_proj",
// "lm_head"); the MPO settings are a property of each linear, not a second model class
// (docs/DESIGN.md §1). A config without `architecture` (every checkpoint written before families
// existed) is PicoGPT.

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
    /// The block's architecture, stored only when it is not PicoGPT (so PicoGPT configs, and the
    /// checkpoints that carry them, read and write exactly as before families existed).
    private var storedArchitecture: Architecture?
    public var architecture: Architecture {
        get { storedArchitecture ?? .picoGPT }
        set { storedArchitecture = newValue == .picoGPT ? nil : newValue }
    }

    private enum CodingKeys: String, CodingKey {
        case vocabularySize, channels, heads, layers, context, ffn, chi, chiOverrides, factorizations, bonds, embedding
        case storedArchitecture = "architecture"
    }

    public init(vocabularySize: Int = 65, channels: Int = 128, heads: Int = 4, layers: Int = 4,
                context: Int = 256, ffn: Int = 512, chi: Int? = nil, architecture: Architecture = .picoGPT) {
        self.vocabularySize = vocabularySize; self.channels = channels; self.heads = heads
        self.layers = layers; self.context = context; self.ffn = ffn; self.chi = chi
        self.architecture = architecture
    }

    /// The paper's dense PicoGPT.
    public static let picoGPT = ModelConfig()
    /// The paper's PicoGPT with every linear layer an MPO of bond dimension χ.
    public static func mpo(chi: Int) -> ModelConfig { ModelConfig(chi: chi) }

    public var names: ParameterNames { architecture.names }
    public var headDim: Int { channels / heads }
    public var kvHeads: Int { architecture.kvHeads ?? heads }
    /// Width of the key and value projections (kvHeads · headDim).
    public var kvChannels: Int { kvHeads * headDim }
    public var isMPO: Bool { chi != nil || !chiOverrides.isEmpty || !bonds.isEmpty }

    /// One linear layer: its module path, shape, bias, role and block (nil for the head).
    public struct LinearLayer: Sendable, Equatable {
        public let name: String
        public let out: Int, `in`: Int
        public let bias: Bool
        public let role: LinearRole
        public let block: Int?
    }

    /// The linear layers of block `l` in module order (q, k, v, o, then the MLP's), shapes from the config.
    public func blockLinears(_ l: Int) -> [LinearLayer] {
        let a = architecture, n = names, C = channels, KC = kvChannels
        var roles: [(LinearRole, Int, Int)] = [(.query, C, C), (.key, KC, C), (.value, KC, C), (.output, C, C)]
        roles += a.mlp == .swiglu ? [(.gate, ffn, C), (.up, ffn, C), (.down, C, ffn)] : [(.up, ffn, C), (.down, C, ffn)]
        return roles.map { LinearLayer(name: n.linear($0.0, block: l), out: $0.1, in: $0.2, bias: a.hasBias($0.0), role: $0.0, block: l) }
    }

    /// Every linear layer in module order; the head last unless it is tied to the embedding.
    public var linearLayers: [LinearLayer] {
        var out = (0..<layers).flatMap(blockLinears)
        if !architecture.tiedHead { out.append(LinearLayer(name: names.head, out: vocabularySize, in: channels, bias: false, role: .head, block: nil)) }
        return out
    }

    /// PicoGPT's four shapes, whose factorisations docs/SPEC.md §2 fixes (the balanced automatic
    /// split reproduces that table); every other shape of every family is the chooser's.
    func isFixedShape(out: Int, in inF: Int) -> Bool {
        architecture.family == .picogpt && [(128, 128), (512, 128), (128, 512), (65, 128)].contains { $0 == (out, inF) }
    }

    /// This configuration with every linear layer whose shape docs/SPEC.md §2's table does not fix given
    /// the factorisation that is cheapest to run site by site at χ (MPOFactorization.cheapest),
    /// recorded explicitly (so checkpoints carry it). Layers with a factorisation already keep it.
    public func choosingFactorizations(chi: Int) -> ModelConfig {
        var c = self
        for l in linearLayers where factorizations[l.name] == nil && !isFixedShape(out: l.out, in: l.in) {
            c.factorizations[l.name] = MPOFactorization.cheapest(out: l.out, in: l.in, chi: chiOverrides[l.name] ?? chi)
        }
        return c
    }

    /// The factorisation of a layer of shape (out, in) at χ: the recorded one, else the fixed
    /// PicoGPT one or the cheapest to run.
    public func factorization(of name: String, out: Int, in inF: Int, chi: Int) -> MPOFactorization {
        factorizations[name] ?? (isFixedShape(out: out, in: inF) ? MPOFactorization.automatic(out: out, in: inF)
                                                               : MPOFactorization.cheapest(out: out, in: inF, chi: chi))
    }

    /// How the named linear layer (out, in) is stored.
    public func linearKind(_ name: String, out: Int, in: Int) -> LinearKind {
        if let b = bonds[name] {
            return .mpo(factorizations[name] ?? MPOFactorization.automatic(out: out, in: `in`), bonds: b)
        }
        guard let chi = chiOverrides[name] ?? chi else { return .dense }
        let f = factorizations[name] ?? MPOFactorization.automatic(out: out, in: `in`)
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
        guard kvHeads >= 1, heads % kvHeads == 0 else {
            throw fail("\(heads) heads cannot share \(kvHeads) key/value heads; --kv-heads must divide --heads")
        }
        if architecture.ropeTheta != nil, headDim % 2 != 0 {
            throw fail("rotary positions need an even head dim (d_model \(channels) / \(heads) heads = \(headDim))")
        }
        if let t = architecture.ropeTheta, !(t > 1) { throw fail("the rotary base θ must be > 1 (got \(t))") }
        guard architecture.normEpsilon > 0, architecture.normEpsilon.isFinite else { throw fail("the norm ε must be > 0 (got \(architecture.normEpsilon))") }
        if let chi, chi < 1 { throw fail("bond dimension χ must be ≥ 1 (got \(chi))") }
        try validateEmbedding()
        for (name, c) in chiOverrides where c < 1 { throw fail("bond dimension for \(name) must be ≥ 1 (got \(c))") }
        let names = Set(linearLayers.map(\.name))
        for key in Set(chiOverrides.keys).union(factorizations.keys).union(bonds.keys) where !names.contains(key) {
            throw fail("unknown linear layer '\(key)'; layers are named like \(linearLayers.first!.name), \(linearLayers.last!.name)")
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
