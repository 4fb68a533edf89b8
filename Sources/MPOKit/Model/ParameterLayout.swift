// ParameterLayout: the ordered table of named parameter tensors and their offsets in one flat
// arena (llm.c's fill_in_parameter_sizes). Parameters, gradients and both AdamW moments share
// it, so zero-grad, the optimiser step and checkpointing are single operations.

/// What a parameter tensor is (initialisation, the optimiser's moment reset after a truncation
/// and the checkpoint converters switch on this, never on the name).
public enum ParameterRole: Equatable, Sendable {
    /// The token embedding's dense table, or core `site` of its per-token tensor trains / table MPO.
    case tokenEmbedding
    case embeddingCore(site: Int)
    /// The learned position table.
    case positionTable
    case normWeight, normBias
    /// A dense linear weight (out, in), its bias, or core `site` of an MPO linear; `layer` is the
    /// linear's entry in the config.
    case linearWeight(ModelConfig.LinearLayer)
    case linearBias(ModelConfig.LinearLayer)
    case core(ModelConfig.LinearLayer, site: Int)

    /// The token embedding's table or one of its cores.
    public var isEmbedding: Bool {
        switch self {
        case .tokenEmbedding, .embeddingCore: return true
        default: return false
        }
    }

    /// MPO or TT cores (linears' or the embedding's).
    public var isCore: Bool {
        switch self {
        case .core, .embeddingCore: return true
        default: return false
        }
    }
}

public struct ParameterSpec: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public let role: ParameterRole
    public var count: Int { shape.reduce(1, *) }
}

public struct ParameterLayout: Sendable {
    public private(set) var specs: [ParameterSpec] = []
    public private(set) var count = 0
    private var index: [String: Int] = [:]

    /// Appends a tensor; offsets are rounded up to 16 elements (64 bytes) for aligned access.
    @discardableResult
    mutating func add(_ name: String, _ shape: [Int], _ role: ParameterRole) -> ParameterSpec {
        precondition(index[name] == nil, "duplicate parameter \(name)")
        let offset = (count + 15) / 16 * 16
        let spec = ParameterSpec(name: name, shape: shape, offset: offset, role: role)
        index[name] = specs.count
        specs.append(spec)
        count = offset + spec.count
        return spec
    }

    public subscript(name: String) -> ParameterSpec? { index[name].map { specs[$0] } }

    /// The tensors for which `keep` holds, in order, re-packed (an inference model's f32 arena
    /// without the weights it stores in 16 bits).
    func keeping(_ keep: (ParameterSpec) -> Bool) -> ParameterLayout {
        var l = ParameterLayout()
        for s in specs where keep(s) { l.add(s.name, s.shape, s.role) }
        return l
    }

    /// Number of trainable scalars (without alignment padding).
    public var parameterCount: Int { specs.reduce(0) { $0 + $1.count } }
}

extension ModelConfig {
    /// The layout of every parameter of this configuration, in module order (PicoGPT: the
    /// PyTorch state_dict's; the other families: Hugging Face's).
    public func parameterLayout() -> ParameterLayout {
        var l = ParameterLayout()
        let C = channels, n = names, a = architecture
        for (k, e) in embeddingParameterShapes.enumerated() {
            l.add(e.name, e.shape, tokenEmbedding == .dense ? .tokenEmbedding : .embeddingCore(site: k))
        }
        if let wpe = n.positionTable { l.add("\(wpe).weight", [context, C], .positionTable) }
        func norm(_ name: String) {
            l.add("\(name).weight", [C], .normWeight)
            if a.norm == .layerNorm { l.add("\(name).bias", [C], .normBias) }
        }
        func linear(_ spec: LinearLayer) {
            switch linearKind(spec.name, out: spec.out, in: spec.in) {
            case .dense: l.add("\(spec.name).weight", [spec.out, spec.in], .linearWeight(spec))
            case .mpo(let f, let bonds):
                for (k, shape) in f.coreShapes(bonds: bonds).enumerated() { l.add("\(spec.name).cores.\(k)", shape, .core(spec, site: k)) }
            }
            if spec.bias { l.add("\(spec.name).bias", [spec.out], .linearBias(spec)) }
        }
        for b in 0..<layers {
            let linears = blockLinears(b)
            norm("\(n.block(b)).\(n.norm1)")
            for spec in linears where [.query, .key, .value, .output].contains(spec.role) { linear(spec) }
            norm("\(n.block(b)).\(n.norm2)")
            for spec in linears where [.up, .gate, .down].contains(spec.role) { linear(spec) }
        }
        norm(n.finalNorm)
        if !a.tiedHead { linear(LinearLayer(name: n.head, out: vocabularySize, in: C, bias: false, role: .head, block: nil)) }
        return l
    }
}
