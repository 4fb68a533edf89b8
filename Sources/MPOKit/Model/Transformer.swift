// Transformer: the model — PicoGPT (docs/SPEC.md §1), GPT-2 or Llama (Architecture.swift) — its
// parameter arenas and its forward/backward data flow.
//
// Parameters, gradients and the two AdamW moments are four flat device arenas sharing one
// `ParameterLayout`. The data flow is written once here, above the device line: forward is
// the layer loop, backward the reverse loop, each layer's backward next to its forward in the
// layer types (`Linear`, the ops of `ComputeDevice`). No autograd.
//
// An inference-only model (`purpose: .inference` — sampling, evaluation, a distillation
// teacher) allocates no gradient arena and no per-layer rebuild or backward buffers: its MPO
// layers share one workspace and contract site by site where that is faster (measured once per
// shape), so it holds its parameters, the activations of one block and, when decoding, its KV cache.

import Foundation
import TensorTrain

/// What a model is built for: training (gradients, saved activations) or inference only.
public enum ModelPurpose: Sendable, Equatable {
    case training, inference
}

public final class Transformer {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let device: any ComputeDevice
    public let purpose: ModelPurpose
    /// The f32 parameter arena, laid out by `storage.arena` (`layout` itself unless weights are
    /// stored packed).
    public let params: DeviceBuffer
    /// How the weights are stored (f32, or the large matrices in f16/bf16/q8 for inference).
    let storage: WeightStorage
    /// The packed weights by parameter name (empty for an f32 model) and their arena.
    let packed: [String: PackedMatrix]
    let packedArena: DeviceBuffer?
    /// The storage type of the large weight matrices.
    public var weightDType: WeightDType { storage.dtype }
    /// The gradient arena (nil for an inference-only model).
    public let grads: DeviceBuffer?
    /// Fixed sinusoidal positions (PicoGPT): the (context, C) table; nil otherwise.
    let fixedPositions: DeviceBuffer?
    /// Rotary positions (Llama): the (context, hd) cos|sin table; nil otherwise.
    let rotaryTable: DeviceBuffer?
    /// Learned positions (GPT-2): the (context, C) parameter and its gradient.
    let positionTable: TensorView?, dPositionTable: TensorView?
    /// Shared by the MPO layers of an inference-only model (nil in training: each layer owns one).
    let mpoWorkspace: MPOWorkspace?
    let strategyTuner: StrategyTuner?
    let blocks: [Block]
    let finalNorm: Norm
    /// The head's own linear (nil when tied to the token embedding).
    let head: Linear?
    /// Every linear layer by name (tools and tests; the passes use the typed fields).
    let linears: [String: Linear]
    /// The token embedding (dense table, per-token tensor train or table MPO).
    let embedding: TokenEmbedding
    var acts: Activations?
    /// The distillation targets of the last forward pass (backward adds their hidden-state gradient).
    var distillTargets: DistillationTargets?
    let version: ParameterVersion
    var arenas: [Activations] = []
    /// Whether a block's stacked V factors (Block.stackedQKV, stackedGateUp) serve its q/k/v and
    /// gate/up in one product; false runs each layer alone (the tests compare the two).
    public var usesStackedFactors = true
    /// Whether any block has stacked factors (a packed model with low-rank q/k/v or gate/up).
    public var hasStackedFactors: Bool { blocks.contains { $0.stackedQKV != nil || $0.stackedGateUp != nil } }
    /// Sees the input of the linear layers of block `l` in every forward pass (compress
    /// --calibration): (block, role, x (rows, in), rows), the q/k/v input as .query, gate/up's as .up;
    /// the head's (the final norm's output, also the tied embedding's input as a head) as block
    /// `layers`, role .head.
    public var linearInputTap: ((_ block: Int, _ role: LinearRole, _ x: TensorView, _ rows: Int) throws -> Void)?
    /// Sees, in every backward pass, the gradient of the loss at the embedding's output (rows, channels)
    /// before it reaches the table (Calibration.outputGradientMoments: the table priced as the embedding).
    public var embeddingGradientTap: ((_ dOut: TensorView, _ rows: Int) throws -> Void)?
    /// How MPO layers contract (automatic: the cheaper in FLOPs per layer and call).
    public var mpoStrategy = MPOStrategy.automatic {
        didSet { for l in linears.values { l.mpo?.strategy = mpoStrategy } }
    }

    /// The timed choices of an inference-only model's MPO layers so far: one line per (shape, row
    /// bucket), e.g. "[8, 16]×[8, 16] bonds [1, 8, 1], rows ≤ 1: site (rebuild 41.0 µs, site 6.2 µs)".
    public var strategyDecisions: [(description: String, decision: StrategyTuner.Decision)] {
        (strategyTuner?.decisions ?? [:]).map { key, d in
            ("\(key.outFactors)×\(key.inFactors) bonds \(key.bonds), rows ≤ \(key.bucket)", d)
        }.sorted { $0.description < $1.description }
    }

    /// The strategy each MPO layer used in the last forward pass (layer name → strategy).
    public var lastMPOStrategies: [String: MPOStrategy] {
        linears.compactMapValues { $0.mpo?.lastStrategy }
    }

    /// A model with zeroed parameters (use `initialize(seed:)` or `load(_:)`). An inference model
    /// may store its large weight matrices in 16 or 8 bits (`weightDType`).
    public init(config: ModelConfig, device: any ComputeDevice, purpose: ModelPurpose = .training,
                weightDType: WeightDType = .f32) throws {
        try config.validate()
        guard weightDType == .f32 || purpose == .inference else {
            throw ModelError("weights stored in \(weightDType.rawValue) are for inference (eval, sample, bench); training keeps f32")
        }
        self.config = config
        self.device = device
        self.purpose = purpose
        let layout = config.parameterLayout(), version = ParameterVersion()
        self.layout = layout; self.version = version
        let storage = WeightStorage(config: config, layout: layout, dtype: weightDType), arena = storage.arena
        self.storage = storage
        let params = try device.makeBuffer(count: arena.count, label: "parameters")
        let grads = purpose == .training ? try device.makeBuffer(count: arena.count, label: "gradients") : nil
        self.params = params; self.grads = grads
        packedArena = storage.packedElements > 0 ? try device.makeBuffer(count: storage.packedElements, label: "weights (\(weightDType.rawValue))") : nil
        let packed = storage.matrices(in: packedArena), stacked = storage.stackedMatrices(in: packedArena)
        self.packed = packed
        let a = config.architecture, names = config.names
        switch a.positions {
        case .sinusoidal:
            fixedPositions = try device.makeBuffer(PositionalEncoding.table(positions: config.context, channels: config.channels),
                                                   label: "positional encoding")
            rotaryTable = nil; positionTable = nil; dPositionTable = nil
        case .learned:
            let s = arena["\(names.positionTable!).weight"]!
            positionTable = params.view(s.offset, s.count); dPositionTable = grads?.view(s.offset, s.count)
            fixedPositions = nil; rotaryTable = nil
        case .rotary(let theta):
            rotaryTable = try device.makeBuffer(PositionalEncoding.rotaryTable(positions: config.context, headDim: config.headDim, base: theta),
                                                label: "rotary table")
            fixedPositions = nil; positionTable = nil; dPositionTable = nil
        }
        let workspace = purpose == .inference ? MPOWorkspace(device: device, label: "MPO inference") : nil
        let tuner = purpose == .inference ? StrategyTuner(device: device) : nil
        mpoWorkspace = workspace; strategyTuner = tuner
        var ls: [String: Linear] = [:]
        func linear(_ l: ModelConfig.LinearLayer) -> Linear {
            let lin = Linear(name: l.name, out: l.out, in: l.in, kind: config.linearKind(l.name, out: l.out, in: l.in),
                             layout: arena, params: params, grads: grads, device: device, version: version,
                             workspace: workspace, tuner: tuner, packed: packed)
            ls[l.name] = lin
            return lin
        }
        func norm(_ name: String) -> Norm {
            Norm(name, kind: a.norm, epsilon: a.normEpsilon, layout: arena, params: params, grads: grads)
        }
        blocks = (0..<config.layers).map { b in
            var byRole: [LinearRole: Linear] = [:]
            for l in config.blockLinears(b) { byRole[l.role] = linear(l) }
            func stack(_ roles: [LinearRole]) -> PackedMatrix? {
                stacked[WeightStorage.stackName(roles.compactMap { byRole[$0]?.name })]
            }
            return Block(norm1: norm("\(names.block(b)).\(names.norm1)"), norm2: norm("\(names.block(b)).\(names.norm2)"),
                         query: byRole[.query]!, key: byRole[.key]!, value: byRole[.value]!, output: byRole[.output]!,
                         up: byRole[.up]!, gate: byRole[.gate], down: byRole[.down]!,
                         stackedQKV: stack([.query, .key, .value]), stackedGateUp: stack([.gate, .up]))
        }
        finalNorm = norm(names.finalNorm)
        head = config.linearLayers.last.flatMap { $0.role == .head ? linear($0) : nil }
        linears = ls
        embedding = try TokenEmbedding(config: config, layout: arena, params: params, grads: grads, device: device,
                                       packedTable: packed["\(names.tokenEmbedding).weight"], version: grads == nil ? version : nil)
    }

    /// The gradient arena, or an error naming the problem for an inference-only model.
    public func gradientArena() throws -> DeviceBuffer {
        guard let grads else { throw ModelError("this model was built for inference only and has no gradients; build it with purpose .training") }
        return grads
    }

    /// Number of trainable parameters (808,448 for the dense PicoGPT).
    public var parameterCount: Int { layout.parameterCount }

    /// Bytes the parameters take as stored: 4 per f32, 2 per 16-bit weight, 1.125 per q8 weight (`where` selects tensors).
    public func weightBytes(where include: (ParameterSpec) -> Bool = { _ in true }) -> Int {
        layout.specs.reduce(0) { total, spec in
            guard include(spec) else { return total }
            if let m = packed[spec.name] { return total + 4 * PackedMatrix.elements(rows: m.rows, columns: m.columns, format: m.format) }
            return total + 4 * spec.count
        }
    }

    func param(_ name: String) -> TensorView {
        guard let s = storage.arena[name] else { preconditionFailure("no f32 parameter \(name)") }
        return params.view(s.offset, s.count)
    }

    func grad(_ name: String) -> TensorView {
        guard let s = layout[name], let grads else { preconditionFailure("no gradient of \(name)") }
        return grads.view(s.offset, s.count)
    }

    // MARK: - Initialisation (docs/SPEC.md §1 dense, §2 MPO)

    /// Fresh weights from `seed`, in layout order: linear weights, the embedding and a learned
    /// position table ~ N(0, 0.02) (GPT-2's residual projections attn.c_proj and mlp.c_proj
    /// ~ N(0, 0.02/√(2·layers)), as GPT-2 does); MPO cores ~ N(0,1)·in^(−1/4)/χ^((L−1)/(2L)); biases 0;
    /// norm weights 1, biases 0; TT / table-MPO embedding cores ~ N(0, σ²) with σ = (0.02/√∏ inner
    /// ranks)^(1/L) (table std 0.02, EmbeddingKind.swift).
    public func initialize(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var host = [Float](repeating: 0, count: layout.count)
        let residualScale = config.architecture.family == .gpt2 ? 1 / (2 * Double(config.layers)).squareRoot() : 1
        for spec in layout.specs {
            var std: Double? = nil
            switch spec.role {
            case .normWeight: for i in 0..<spec.count { host[spec.offset + i] = 1 }
            case .normBias, .linearBias: break
            case .tokenEmbedding, .embeddingCore: std = config.embeddingInitStd   // TT / table-MPO cores: contracted table std 0.02
            case .positionTable: std = 0.02
            case .linearWeight(let l): std = 0.02 * (l.role == .output || l.role == .down ? residualScale : 1)
            case .core(let l, _):
                if case .mpo(let f, let bonds) = config.linearKind(l.name, out: l.out, in: l.in) {
                    std = MPOLinear.initStd(inFeatures: l.in, chi: bonds.dropFirst().dropLast().max() ?? 1, sites: f.sites)
                }
            }
            if let std { for i in 0..<spec.count { host[spec.offset + i] = Float(rng.normal() * std) } }
        }
        try setHostParameters(host)
        parametersChanged()
    }

    /// Copies every parameter of `other`, a model of the same configuration (e.g. a training
    /// model into an inference-only one).
    public func load(from other: Transformer) throws {
        guard other.config == config else { throw ModelError("cannot load a model of another configuration") }
        try setHostParameters(try other.hostParameters())
        parametersChanged()
    }

    /// Call after writing parameters directly: MPO layers then rebuild their weights.
    public func parametersChanged() { version.value &+= 1 }

    // MARK: - Parameters by name

    /// A copy of the named parameter's values.
    public func parameter(_ name: String) throws -> [Float] {
        if let h = packed[name] { return try h.read(device) }
        guard let s = storage.arena[name] else { throw ModelError("the model has no parameter '\(name)'") }
        return try device.read(params.view(s.offset, s.count))
    }

    /// Writes `values` into parameter `name` from element `at` on (loaders stream a large tensor
    /// in whole rows, in order); packed weights are rounded here. Call `parametersChanged()` after.
    public func writeParameter(_ name: String, _ values: [Float], at: Int = 0) throws {
        guard let spec = layout[name] else { throw ModelError("the model has no parameter '\(name)'") }
        guard at >= 0, at + values.count <= spec.count else {
            throw ModelError("parameter '\(name)' has \(spec.count) values (shape \(spec.shape)); cannot write \(values.count) at \(at)")
        }
        if let h = packed[name] { try h.write(device, values, at: at); return }
        let s = storage.arena[name]!
        try device.write(values, to: params.view(s.offset + at, values.count))
    }

    /// Every parameter, laid out by `layout` (what checkpoint writers save).
    public func hostParameters() throws -> [Float] {
        if packed.isEmpty { return try device.read(params.all) }
        var host = [Float](repeating: 0, count: layout.count)
        for spec in layout.specs { host.replaceSubrange(spec.offset..<(spec.offset + spec.count), with: try parameter(spec.name)) }
        return host
    }

    /// Writes every parameter from `host`, laid out by `layout` (hostParameters' inverse; packed
    /// weights are rounded). Call `parametersChanged()` after.
    func setHostParameters(_ host: [Float]) throws {
        precondition(host.count == layout.count, "\(host.count) values for a layout of \(layout.count)")
        if packed.isEmpty { try device.write(host, to: params.all); return }
        for spec in layout.specs { try writeParameter(spec.name, Array(host[spec.offset..<(spec.offset + spec.count)])) }
    }

    /// A copy of the named parameter's gradient.
    public func gradient(_ name: String) throws -> [Float] {
        guard let s = storage.arena[name] else { throw ModelError("the model has no parameter '\(name)'") }
        return try device.read(try gradientArena().view(s.offset, s.count))
    }

    public func setParameter(_ name: String, _ values: [Float]) throws {
        guard let s = layout[name] else { throw ModelError("the model has no parameter '\(name)'") }
        guard values.count == s.count else {
            throw ModelError("parameter '\(name)' has \(s.count) values (shape \(s.shape)), got \(values.count)")
        }
        try writeParameter(name, values)
        parametersChanged()
    }

    public func zeroGradients() { if let grads { device.fill(grads.all, value: 0) } }

    /// Activation arenas for the (B, T) shapes in use (training and evaluation batches differ),
    /// kept so no step allocates; `acts` is the one the last forward pass used.
    /// `scoring`: an inference-only pass against targets, whose logits are made and scored a slice of
    /// rows at a time (Activations.scoringRows), so a 49,152-token vocabulary does not need (B·T, V).
    func activations(batch: Int, time: Int, scoring: Bool = false) throws -> Activations {
        let scoring = scoring && purpose == .inference
        if let a = arenas.first(where: { $0.batch == batch && $0.time == time && $0.scoring == scoring }) { acts = a; return a }
        if arenas.count >= 3 { arenas.removeFirst() }
        acts = nil
        let a = try Activations(config: config, batch: batch, time: time, device: device, inference: purpose == .inference, scoring: scoring)
        arenas.append(a)
        acts = a
        return a
    }
}
