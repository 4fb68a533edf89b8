// ParameterLayout: the ordered table of named parameter tensors and their offsets in one flat
// arena (llm.c's fill_in_parameter_sizes). Parameters, gradients and both AdamW moments share
// it, so zero-grad, the optimiser step and checkpointing are single operations.

public struct ParameterSpec: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

public struct ParameterLayout: Sendable {
    public private(set) var specs: [ParameterSpec] = []
    public private(set) var count = 0
    private var index: [String: Int] = [:]

    /// Appends a tensor; offsets are rounded up to 16 elements (64 bytes) for aligned access.
    @discardableResult
    mutating func add(_ name: String, _ shape: [Int]) -> ParameterSpec {
        precondition(index[name] == nil, "duplicate parameter \(name)")
        let offset = (count + 15) / 16 * 16
        let spec = ParameterSpec(name: name, shape: shape, offset: offset)
        index[name] = specs.count
        specs.append(spec)
        count = offset + spec.count
        return spec
    }

    public subscript(name: String) -> ParameterSpec? { index[name].map { specs[$0] } }

    /// Number of trainable scalars (without alignment padding).
    public var parameterCount: Int { specs.reduce(0) { $0 + $1.count } }
}

extension ModelConfig {
    /// The layout of every parameter of this configuration, in PyTorch module order.
    public func parameterLayout() -> ParameterLayout {
        var l = ParameterLayout()
        let C = channels
        for (name, shape) in embeddingParameterShapes { l.add(name, shape) }
        let linears = linearLayers
        func linear(_ name: String) {
            let spec = linears.first { $0.name == name }!
            switch linearKind(name, out: spec.out, in: spec.in) {
            case .dense: l.add("\(name).weight", [spec.out, spec.in])
            case .mpo(let f, let bonds):
                for (k, shape) in f.coreShapes(bonds: bonds).enumerated() { l.add("\(name).cores.\(k)", shape) }
            }
            if spec.bias { l.add("\(name).bias", [spec.out]) }
        }
        for b in 0..<layers {
            l.add("blocks.\(b).ln1.weight", [C]); l.add("blocks.\(b).ln1.bias", [C])
            for p in ["W_q", "W_k", "W_v", "W_o"] { linear("blocks.\(b).attn.\(p)") }
            l.add("blocks.\(b).ln2.weight", [C]); l.add("blocks.\(b).ln2.bias", [C])
            linear("blocks.\(b).ffn.W1"); linear("blocks.\(b).ffn.W2")
        }
        l.add("ln_f.weight", [C]); l.add("ln_f.bias", [C])
        linear("lm_head")
        return l
    }
}
