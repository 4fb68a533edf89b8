// Model checkpoints in safetensors with PyTorch parameter names (docs/SPEC.md §8).
//
// Reading infers the model (dense or MPO, χ and factorisation per layer) from tensor names and
// shapes, so PyTorch `state_dict` files and ours load the same way; our files also carry the
// config in `__metadata__["config"]`. What shapes cannot tell — the head count, and the context
// when the file has neither `pos_enc` nor a causal mask — must come from `ShapeHints` for a file
// without that metadata (the CLI's --heads/--context): never a silent guess.
// The PyTorch buffers `pos_enc` and `blocks.{i}.attn.causal_mask` are accepted and checked,
// never required. Every problem is a `ModelError` naming the tensor and what to do.

import Foundation
import SafeTensors
import TensorTrain

/// What a checkpoint's tensors cannot tell, for files without our config metadata (a plain
/// PyTorch `state_dict`). With metadata, a hint that contradicts it is an error.
public struct ShapeHints: Sendable, Equatable {
    public var heads: Int?
    public var context: Int?
    public init(heads: Int? = nil, context: Int? = nil) { self.heads = heads; self.context = context }
}

/// A checkpoint without config metadata whose tensors do not determine `fields` (e.g. ["--heads"]).
public struct MissingShapeError: Error, CustomStringConvertible, Equatable {
    public let fields: [String]
    public let message: String
    public var description: String { message }
}

public enum ModelCheckpoint {
    /// Tensor names that are not model parameters but may appear in checkpoints.
    static func isBuffer(_ name: String) -> Bool {
        name == "pos_enc" || (name.hasPrefix("blocks.") && name.hasSuffix(".attn.causal_mask"))
    }

    /// Opens a checkpoint file with a message that names the path on failure.
    public static func open(_ url: URL) throws -> SafeTensorsFile {
        do { return try SafeTensorsFile(contentsOf: url) } catch {
            throw ModelError("cannot read checkpoint \(url.path): \(error)")
        }
    }

    /// The model configuration a checkpoint describes (`hints` for what a file without config
    /// metadata cannot tell; see `ShapeHints`).
    public static func inferConfig(_ file: SafeTensorsFile, hints: ShapeHints = ShapeHints()) throws -> ModelConfig {
        if let json = file.metadata["config"] {
            let c: ModelConfig
            do { c = try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8)) } catch {
                throw ModelError("checkpoint metadata 'config' is not a valid model config: \(error)")
            }
            if let h = hints.heads, h != c.heads {
                throw ModelError("--heads \(h) contradicts the checkpoint, whose config has \(c.heads) heads; drop --heads")
            }
            if let t = hints.context, t != c.context {
                throw ModelError("--context \(t) contradicts the checkpoint, whose config has context \(c.context); drop --context")
            }
            return c
        }
        let emb = try embeddingLayout(file)  // dense, per-token TT or table MPO (EmbeddingCheckpoint.swift)
        var layers = 0
        while file.info("blocks.\(layers).ln1.weight") != nil { layers += 1 }
        var c = ModelConfig(vocabularySize: emb.vocabulary, channels: emb.channels, layers: layers)
        c.tokenEmbedding = emb.kind
        // The context: pos_enc (T, C) or a causal mask (1, 1, T, T), else the hint.
        let fileContext = file.info("pos_enc").flatMap { $0.shape.count == 2 ? $0.shape[0] : nil }
            ?? file.info("blocks.0.attn.causal_mask").flatMap { $0.shape.count >= 2 ? $0.shape.last : nil }
        if let t = hints.context, let f = fileContext, t != f {
            throw ModelError("--context \(t) contradicts the checkpoint's pos_enc/causal mask of \(f) positions; drop --context")
        }
        var missing: [String] = []
        if let h = hints.heads { c.heads = h } else { missing.append("--heads") }
        if let t = fileContext ?? hints.context { c.context = t } else { missing.append("--context") }
        if !missing.isEmpty {
            let what = missing.map { $0 == "--heads" ? "the number of attention heads (d_model \(c.channels) could be split many ways)" : "the context length (no pos_enc or causal mask in the file)" }
            throw MissingShapeError(fields: missing, message: "the checkpoint has no mpo-train config metadata (a plain PyTorch state_dict?), so its tensors do not tell \(what.joined(separator: " or ")); pass \(missing.joined(separator: " and ")), e.g. --heads 4")
        }
        // d_ff from W1 (dense weight or the product of its cores' output factors).
        if let w1 = file.info("blocks.0.ffn.W1.weight"), w1.shape.count == 2 {
            c.ffn = w1.shape[0]
        } else if file.info("blocks.0.ffn.W1.cores.0") != nil {
            c.ffn = try coreLayout(file, "blocks.0.ffn.W1").0.outFeatures
        }
        for l in c.linearLayers where file.info("\(l.name).weight") == nil {
            guard file.info("\(l.name).cores.0") != nil else {
                throw ModelError("checkpoint has neither '\(l.name).weight' nor '\(l.name).cores.0'")
            }
            let (f, bonds) = try coreLayout(file, l.name)
            guard f.outFeatures == l.out, f.inFeatures == l.in else {
                throw ModelError("cores of \(l.name) multiply out to \(f.outFeatures)×\(f.inFeatures), expected \(l.out)×\(l.in)")
            }
            c.bonds[l.name] = bonds
            if f != MPOFactorization.automatic(out: l.out, in: l.in) { c.factorizations[l.name] = f }
        }
        try c.validate()
        return c
    }

    /// Factorisation and bonds of an MPO layer from its core shapes (b_l, o_l, i_l, b_{l+1}).
    static func coreLayout(_ file: SafeTensorsFile, _ name: String) throws -> (MPOFactorization, [Int]) {
        var outs: [Int] = [], ins: [Int] = [], bonds: [Int] = [1]
        var k = 0
        while let info = file.info("\(name).cores.\(k)") {
            let s = info.shape
            guard s.count == 4, s[0] == bonds.last! else {
                throw ModelError("core '\(name).cores.\(k)' has shape \(s); expected (\(bonds.last!), d_out, d_in, bond)")
            }
            outs.append(s[1]); ins.append(s[2]); bonds.append(s[3])
            k += 1
        }
        guard bonds.last == 1 else { throw ModelError("last core of \(name) must end in bond 1, got \(bonds.last!)") }
        return (try MPOFactorization(outFactors: outs, inFactors: ins), bonds)
    }

    /// Loads every parameter of `model` from `file`, checking names, shapes and values.
    /// Tensor by tensor, each released from the mapped file once copied: resident memory stays
    /// near the model's own.
    public static func load(_ file: SafeTensorsFile, into model: Transformer, extraTensors: (String) -> Bool = { _ in false }) throws {
        for spec in model.layout.specs {
            guard let info = file.info(spec.name) else {
                throw ModelError("checkpoint is missing parameter '\(spec.name)' (shape \(spec.shape)); it was saved from a different model")
            }
            guard info.shape == spec.shape else {
                throw ModelError("parameter '\(spec.name)' has shape \(info.shape) in the checkpoint, the model expects \(spec.shape)")
            }
            // In pieces of whole rows, about 1 Mi values (4 MB) each (a q8 weight packs whole rows), each released once copied.
            let row = max(1, spec.shape.last ?? 1), step = max(1, (1 << 20) / row) * row
            for at in stride(from: 0, to: spec.count, by: step) {
                let piece = at..<min(spec.count, at + step)
                let values = try file.floats(spec.name, elements: piece)
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw ModelError("parameter '\(spec.name)' holds a non-finite value (\(values[bad])) at index \(at + bad)")
                }
                try model.writeParameter(spec.name, values, at: at)
                file.release(spec.name, elements: piece)
            }
        }
        for name in file.names where model.layout[name] == nil && !extraTensors(name) {
            guard isBuffer(name) else {
                throw ModelError("checkpoint has tensor '\(name)' that is not a parameter of this model")
            }
            try checkBuffer(name, file, config: model.config)
        }
        model.parametersChanged()
    }

    static func checkBuffer(_ name: String, _ file: SafeTensorsFile, config: ModelConfig) throws {
        if name == "pos_enc" {
            let info = file.info(name)!
            guard info.shape.count == 2, info.shape[1] == config.channels, info.shape[0] >= 1 else {
                throw ModelError("'pos_enc' has shape \(info.shape); expected (positions, \(config.channels))")
            }
            let theirs = try file.floats(name)
            let ours = PositionalEncoding.table(positions: info.shape[0], channels: config.channels)
            let diff = zip(theirs, ours).map { abs($0 - $1) }.max() ?? 0
            guard diff <= 1e-4 else {
                throw ModelError("'pos_enc' differs from the fixed interleaved sinusoidal table by \(diff): the checkpoint uses another positional scheme")
            }
        } else {
            let info = file.info(name)!
            let t = info.shape.last ?? 0
            guard info.shape.count >= 2, info.shape[info.shape.count - 2] == t else {
                throw ModelError("'\(name)' has shape \(info.shape); expected (1, 1, T, T)")
            }
            let mask = try file.bools(name)
            for i in 0..<t { for j in 0..<t where mask[i * t + j] != (j <= i) {
                throw ModelError("'\(name)' is not a causal (lower-triangular) mask at (\(i), \(j))")
            } }
        }
    }

    /// Builds a model on `device` from a checkpoint file, or a Hugging Face model directory.
    /// An inference model may store its large weights in 16 bits (`weightDType`).
    public static func loadModel(_ url: URL, device: any ComputeDevice, hints: ShapeHints = ShapeHints(),
                                 purpose: ModelPurpose = .training, weightDType: WeightDType = .f32) throws -> Transformer {
        if HFCheckpoint.isModelDirectory(url) { return try HFCheckpoint.loadModel(url, device: device, purpose: purpose, weightDType: weightDType) }
        if GGUFCheckpoint.isGGUF(url) { return try GGUFCheckpoint.loadModel(url, device: device, purpose: purpose, weightDType: weightDType) }
        let file = try open(url)
        let model = try Transformer(config: try inferConfig(file, hints: hints), device: device, purpose: purpose, weightDType: weightDType)
        try load(file, into: model, extraTensors: { $0.hasPrefix("optimizer.") })
        return model
    }

    /// A writer holding every parameter under its PyTorch name and the config in metadata.
    public static func writer(for model: Transformer, metadata: [String: String] = [:]) throws -> SafeTensorsWriter {
        var meta = metadata
        meta["format"] = "pt"
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        meta["config"] = String(decoding: try enc.encode(model.config), as: UTF8.self)
        var w = SafeTensorsWriter(metadata: meta)
        let host = try model.hostParameters()
        for spec in model.layout.specs {
            let values = Array(host[spec.offset..<(spec.offset + spec.count)])
            // Never replace a good checkpoint with a broken model.
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw ModelError("not saving: parameter '\(spec.name)' holds \(values[bad]) at index \(bad)")
            }
            try w.add(spec.name, shape: spec.shape, floats: values)
        }
        return w
    }

    /// Saves the model's parameters atomically (temporary file + rename).
    public static func save(_ model: Transformer, to url: URL, metadata: [String: String] = [:]) throws {
        try writer(for: model, metadata: metadata).write(to: url)
    }
}
