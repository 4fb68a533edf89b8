// `mpo-train eval`: a checkpoint's loss and accuracy over a whole split (every non-overlapping
// window of the model's context), deterministic — the number to report, where the training
// log's evaluations are 20 random batches.

import ArgumentParser
import Foundation
import MPOKit

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss and accuracy of a checkpoint on the whole validation split (every non-overlapping window).",
        discussion: """
        The model is loaded for inference only (no gradient buffers). --json prints one object with
        parameters, val_loss, val_accuracy, tokens and windows (for --split train: train_loss, …).

        Example: mpo-train eval --checkpoint runs/mpo-chi8/checkpoint.safetensors --json
        """)

    @Option(help: "Model checkpoint.") var checkpoint: String
    @Option(help: "UTF-8 text (default: Tiny Shakespeare shipped in Data/); split 90/10 as in training.") var data: String?
    @Option(help: "Which split: validation or train.") var split = EvalSplit.validation
    @Option(help: "Windows per forward pass.") var batch = 32
    @Flag(help: "Print one JSON object instead of a line.") var json = false
    @OptionGroup var shape: ShapeHintOptions
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be ≥ 1 (got \(batch))") }
        let device = try deviceOptions.make()
        let model = try loadCheckpoint(checkpoint, device: device, hints: shape.hints, purpose: .inference)
        let data = try TextDataset(url: try resolveData(self.data), vocabulary: try checkpointVocabulary(checkpoint))
        guard data.vocabulary.count == model.config.vocabularySize else {
            throw ValidationError("the data has \(data.vocabulary.count) distinct characters but the model's vocabulary has \(model.config.vocabularySize); pass its training text with --data")
        }
        let tokens = split == .validation ? data.validation : data.train
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try model.evaluateAll(tokens, time: model.config.context, batchSize: batch)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let prefix = split == .validation ? "val" : "train"
        if json {
            let obj: [String: Any] = ["checkpoint": checkpoint, "parameters": model.parameterCount, "\(prefix)_loss": r.loss,
                                      "\(prefix)_accuracy": r.accuracy, "tokens": r.tokens, "windows": r.windows,
                                      "context": model.config.context, "device": device.name]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%@: %d parameters; %@ loss %.4f, accuracy %.2f%% over %d tokens (%d windows of %d) in %.1f s",
                         checkpoint, model.parameterCount, prefix, r.loss, 100 * r.accuracy, r.tokens, r.windows,
                         model.config.context, seconds))
        }
    }
}

enum EvalSplit: String, ExpressibleByArgument, CaseIterable { case validation, train }
