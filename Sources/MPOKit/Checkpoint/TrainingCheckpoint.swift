// Training checkpoints: the model's parameters under PyTorch names (loadable by PyTorch's
// `load_state_dict` after dropping the `optimizer.` tensors), AdamW moments as extra tensors
// `optimizer.m.<name>` / `optimizer.v.<name>`, and in `__metadata__`: config, vocabulary, step,
// optimiser step, RNG states and the recipe. Written atomically (temporary file + rename), so a
// crash never leaves a broken or partial checkpoint.

import Foundation
import SafeTensors

public struct TrainingState: Equatable, Sendable {
    public var step: Int
    public var optimizerStep: Int
    public var trainRNG: SplitMix64
    public var evalRNG: SplitMix64
    public var options: TrainOptions
}

public enum TrainingCheckpoint {
    public static func save(model: Transformer, optimizer: AdamW, state: TrainingState, codec: TextCodec,
                            to url: URL, extraMetadata: [String: String] = [:]) throws {
        var meta = extraMetadata.merging(try codec.metadata()) { $1 }
        meta["step"] = "\(state.step)"
        meta["optimizer_step"] = "\(state.optimizerStep)"
        meta["rng_train"] = "\(state.trainRNG.state)"
        meta["rng_eval"] = "\(state.evalRNG.state)"
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        meta["options"] = String(decoding: try enc.encode(state.options), as: UTF8.self)
        var w = try ModelCheckpoint.writer(for: model, metadata: meta)
        let m = try model.device.read(optimizer.m.all), v = try model.device.read(optimizer.v.all)
        for spec in model.layout.specs {
            let r = spec.offset..<(spec.offset + spec.count)
            try w.add("optimizer.m.\(spec.name)", shape: spec.shape, floats: Array(m[r]))
            try w.add("optimizer.v.\(spec.name)", shape: spec.shape, floats: Array(v[r]))
        }
        try w.write(to: url)
    }

    /// Restores optimiser moments and the training state saved by `save` (the parameters are
    /// loaded by `ModelCheckpoint.load`). Throws if the file has no optimiser state.
    public static func restore(_ file: SafeTensorsFile, optimizer: AdamW) throws -> TrainingState {
        let model = optimizer.model
        func meta(_ k: String) throws -> String {
            guard let v = file.metadata[k] else {
                throw ModelError("checkpoint has no '\(k)' in its metadata: it is not a training checkpoint of mpo-train (use --init to start from its weights)")
            }
            return v
        }
        guard let step = Int(try meta("step")), let ostep = Int(try meta("optimizer_step")),
              let rt = UInt64(try meta("rng_train")), let re = UInt64(try meta("rng_eval")) else {
            throw ModelError("checkpoint metadata step/optimizer_step/rng_* are not integers")
        }
        let options: TrainOptions
        do { options = try JSONDecoder().decode(TrainOptions.self, from: Data(try meta("options").utf8)) } catch {
            throw ModelError("checkpoint metadata 'options' is not valid: \(error)")
        }
        var m = [Float](repeating: 0, count: model.layout.count), v = m
        for spec in model.layout.specs {
            for (prefix, isM) in [("optimizer.m.", true), ("optimizer.v.", false)] {
                let name = prefix + spec.name
                guard let info = file.info(name), info.shape == spec.shape else {
                    throw ModelError("checkpoint lacks optimiser tensor '\(name)' of shape \(spec.shape)")
                }
                let values = try file.floats(name)
                if isM { m.replaceSubrange(spec.offset..<(spec.offset + spec.count), with: values) }
                else { v.replaceSubrange(spec.offset..<(spec.offset + spec.count), with: values) }
            }
        }
        try optimizer.restore(m: m, v: v, step: ostep)
        return TrainingState(step: step, optimizerStep: ostep, trainRNG: SplitMix64(seed: rt), evalRNG: SplitMix64(seed: re),
                             options: options)
    }
}
