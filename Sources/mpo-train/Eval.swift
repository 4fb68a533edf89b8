// `mpo-train eval`: a checkpoint's loss and accuracy over a whole split (every non-overlapping
// window of the model's context), deterministic — the number to report, where the training
// log's evaluations are 20 random batches.

import ArgumentParser
import Foundation
import MPOKit

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss, accuracy and perplexity of a checkpoint on a text: a split, or all of it.",
        discussion: """
        The text is tokenized with the model's own tokenizer (a GGUF's or Hugging Face model's
        byte-level BPE; PicoGPT's characters), no BOS. --split validation|train: the last 10 % / first
        90 % of the tokens, every non-overlapping window of --context tokens. --split all: the whole
        text in consecutive windows of --context tokens, the last one shorter, every position
        predicting the next token (n tokens, n − 1 predictions) — perplexity as transformers measures
        it without a stride. --context T is the window length (default: the model's context; at most
        it). The model is loaded for inference only. --json prints one object with
        tokens (predictions), loss (mean NLL in nats), perplexity, accuracy, windows, context, and
        for the splits also val_loss/val_accuracy (train_…).

        Examples:
          mpo-train eval --checkpoint runs/mpo-chi8/checkpoint.safetensors --json
          mpo-train eval --checkpoint SmolLM2-135M-Instruct.Q4_1.gguf --data book.txt --split all --context 512
        """)

    @Option(help: "Model checkpoint: mpo-train safetensors, GGUF file or Hugging Face directory.") var checkpoint: String
    @Option(help: "UTF-8 text (default: Tiny Shakespeare shipped in Data/).") var data: String?
    @Option(help: "Which tokens: validation (last 10 %), train (first 90 %) or all.") var split = EvalSplit.validation
    @Option(help: "Windows per forward pass (default: as many as keep the logits under 64 MB, at most 8).") var batch: Int?
    @Option(name: .customLong("core-dtype"), help: coreDTypeHelp) var coreDType = WeightDType.f32
    @Flag(help: "Print one JSON object instead of a line.") var json = false
    @OptionGroup var shape: ShapeHintOptions
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        if let batch, batch < 1 { throw ValidationError("--batch must be ≥ 1 (got \(batch))") }
        let device = try deviceOptions.make()
        // --context is the window length; for a state_dict without config it is also the model's.
        let model: Transformer
        do {
            model = try ModelCheckpoint.loadModel(URL(fileURLWithPath: checkpoint), device: device, hints: ShapeHints(heads: shape.heads),
                                                  purpose: .inference, weightDType: coreDType)
        } catch let e as MissingShapeError where e.fields.contains("--context") && shape.context != nil {
            model = try loadCheckpoint(checkpoint, device: device, hints: shape.hints, purpose: .inference, weightDType: coreDType)
        } catch let e as MissingShapeError {
            throw ValidationError("\(checkpoint): \(e.message)")
        }
        let T = shape.context ?? model.config.context
        guard T <= model.config.context else { throw ValidationError("--context \(T) is longer than the model's context \(model.config.context)") }
        let url = try resolveData(self.data)
        let data = try loadDataset(url, codec: try checkpointCodec(checkpoint))
        do { try data.checkFits(vocabularySize: model.config.vocabularySize) } catch { throw ValidationError("\(error)") }
        let tokens = split == .all ? data.train + data.validation : split == .train ? data.train : data.validation
        let batch = self.batch ?? max(1, min(8, (16 << 20) / max(T * model.config.vocabularySize, 1)))
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = split == .all ? try model.evaluateSequence(tokens, context: T, batchSize: batch)
                              : try model.evaluateAll(tokens, time: T, batchSize: batch)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let prefix = split == .validation ? "val" : split == .train ? "train" : "all"
        if json {
            var obj: [String: Any] = ["checkpoint": checkpoint, "parameters": model.parameterCount, "core_dtype": coreDType.rawValue, "loss": r.loss, "perplexity": exp(r.loss),
                                      "accuracy": r.accuracy, "tokens": r.tokens, "windows": r.windows, "context": T,
                                      "device": device.name, "seconds": seconds, "split": split.rawValue]
            if split != .all { obj["\(prefix)_loss"] = r.loss; obj["\(prefix)_accuracy"] = r.accuracy }
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%@: %d parameters; %@ loss %.4f (perplexity %.3f), accuracy %.2f%% over %d tokens (%d windows of %d) in %.1f s",
                         checkpoint, model.parameterCount, prefix, r.loss, exp(r.loss), 100 * r.accuracy, r.tokens, r.windows, T, seconds))
        }
    }
}

enum EvalSplit: String, ExpressibleByArgument, CaseIterable { case validation, train, all }
