// `mpo-train train`: train a dense or MPO PicoGPT with the paper's recipe (SPEC §6).

import ArgumentParser
import Foundation
import MPOKit

struct ModelOptions: ParsableArguments {
    @Option(help: "Model kind: dense or mpo.") var model = ModelKind.dense
    @Option(help: "Bond dimension χ of every MPO linear layer (with --model mpo).") var chi: Int = 8
    @Option(name: .customLong("chi-layer"), help: ArgumentHelp("Per-layer χ override, e.g. lm_head=16 or blocks.0.ffn.W1=4 (repeatable).", valueName: "layer=χ"))
    var chiLayer: [String] = []
    @Option(help: "MPO contraction: automatic (cheaper in FLOPs per layer), rebuild or site.") var strategy = MPOStrategy.automatic
    @Option(help: "Transformer blocks.") var layers = 4
    @Option(name: .customLong("d-model"), help: "Model width.") var dModel = 128
    @Option(help: "Attention heads (must divide --d-model; default 4). With --init, only for a checkpoint without config metadata.") var heads: Int?
    @Option(name: .customLong("d-ff"), help: "Feed-forward width.") var dFF = 512
    @Option(help: "Context length (also the training window; default 256).") var context: Int?
    @Option(help: ArgumentHelp("Token embedding: dense, tt:R (per-token tensor trains of rank R over d_model's factors, [4,4,8] for 128; tt:R:4x4x8 picks them) or mpo:χ (the whole table as an MPO).", valueName: "kind"))
    var embedding = "dense"

    func config(vocabularySize: Int) throws -> ModelConfig {
        var c = ModelConfig(vocabularySize: vocabularySize, channels: dModel, heads: heads ?? 4, layers: layers,
                            context: context ?? 256, ffn: dFF)
        switch model {
        case .dense: guard chiLayer.isEmpty else { throw ValidationError("--chi-layer needs --model mpo") }
        case .mpo:
            guard chi >= 1 else { throw ValidationError("--chi must be ≥ 1 (got \(chi))") }
            c.chi = chi
            for item in chiLayer {
                let parts = item.split(separator: "=").map(String.init)
                guard parts.count == 2, let v = Int(parts[1]), v >= 1 else {
                    throw ValidationError("--chi-layer expects layer=χ with χ ≥ 1, like lm_head=16 (got '\(item)')")
                }
                c.chiOverrides[parts[0]] = v
            }
        }
        do { c.tokenEmbedding = try EmbeddingKind.parse(embedding, vocabulary: vocabularySize, channels: dModel) } catch {
            throw ValidationError("\(error)")
        }
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        return c
    }

    /// What a checkpoint without config metadata needs (with --init).
    var hints: ShapeHints { ShapeHints(heads: heads, context: context) }
}

struct RecipeOptions: ParsableArguments {
    @Option(help: "Training steps.") var steps = 2000
    @Option(help: "Batch size (random windows per step).") var batch = 32
    @Option(help: "Peak learning rate (AdamW).") var lr = 3e-4
    @Option(help: "Linear warm-up steps before the cosine decay.") var warmup = 100
    @Option(name: .customLong("weight-decay"), help: "Decoupled weight decay on every parameter.") var weightDecay = 0.1
    @Option(help: "Clip the global gradient L2 norm to this value.") var clip = 1.0
    @Option(name: .customLong("eval-interval"), help: "Evaluate (and checkpoint) every this many steps.") var evalInterval = 100
    @Option(name: .customLong("eval-batches"), help: "Validation batches (of 8 windows) per evaluation.") var evalBatches = 20
    @Option(help: "Seed: initialisation, batch order and evaluation batches all derive from it.") var seed: UInt64 = 2024
    @Option(help: "UTF-8 text to train on (default: Tiny Shakespeare shipped in Data/).") var data: String?

    func options(context: Int) -> TrainOptions {
        var o = TrainOptions()
        o.steps = steps; o.batch = batch; o.time = context; o.learningRate = lr; o.warmup = warmup
        o.weightDecay = weightDecay; o.clip = clip; o.evalInterval = evalInterval; o.evalBatches = evalBatches; o.seed = seed
        return o
    }

    func dataURL() throws -> URL { try resolveData(data) }
}

/// The data file: --data, else Data/tinyshakespeare.txt in the working directory or the source tree.
func resolveData(_ path: String?) throws -> URL {
    if let path { return URL(fileURLWithPath: path) }
    let candidates = [URL(fileURLWithPath: "Data/tinyshakespeare.txt"),
                      URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                        .deletingLastPathComponent().appendingPathComponent("Data/tinyshakespeare.txt")]
    guard let url = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
        throw ValidationError("no data file given and Data/tinyshakespeare.txt not found; pass --data FILE")
    }
    return url
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a dense or MPO PicoGPT (the paper's recipe by default).",
        discussion: """
        Writes into --out: metrics.jsonl (every step and evaluation), checkpoint.safetensors
        (PyTorch parameter names + optimiser state; written atomically at every evaluation) and
        SVG plots. --resume continues an interrupted run bit for bit.

        Examples:
          mpo-train train --model mpo --chi 8 --steps 200
          mpo-train train --model mpo --chi 8 --embedding tt:4 --steps 500
          mpo-train train --model dense --out runs/dense
          mpo-train train --init runs/mpo16.safetensors --steps 500 --lr 1e-4   (fine-tune a compressed model)
          mpo-train train --out runs/dense --resume
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var recipe: RecipeOptions
    @OptionGroup var deviceOptions: DeviceOptions
    @Option(help: "Run directory (default runs/<model>[-chi<χ>]).") var out: String?
    @Option(name: .customLong("init"), help: "Start from this checkpoint's weights (its shape wins over the model options).") var initFrom: String?
    @Flag(help: "Continue the run in --out from its checkpoint.") var resume = false
    @Flag(help: "Print only evaluations and the summary.") var quiet = false
    @Option(name: .customLong("skip-nonfinite"), help: "Skip up to N steps whose loss or gradient is NaN/inf instead of stopping.")
    var skipNonFinite = 0

    func run() throws {
        let device = try deviceOptions.make()
        // A checkpoint's vocabulary wins: the data must be written in it.
        let vocab = try initFrom.flatMap(checkpointVocabulary)
        let data = try TextDataset(url: try recipe.dataURL(), vocabulary: vocab)
        let model: PicoGPT
        var name: String
        if let initFrom {
            model = try loadCheckpoint(initFrom, device: device, hints: modelOptions.hints)
            name = URL(fileURLWithPath: initFrom).deletingPathExtension().lastPathComponent + "-finetune"
        } else {
            model = try PicoGPT(config: try modelOptions.config(vocabularySize: data.vocabulary.count), device: device)
            try model.initialize(seed: recipe.seed)
            name = modelOptions.model == .mpo ? "mpo-chi\(modelOptions.chi)" : "dense"
            if modelOptions.embedding.lowercased() != "dense" { name += "-emb-" + modelOptions.embedding.lowercased().replacingOccurrences(of: ":", with: "") }
        }
        model.mpoStrategy = modelOptions.strategy
        let dir = URL(fileURLWithPath: out ?? "runs/\(name)")
        name = dir.lastPathComponent
        let trainer = try Trainer(model: model, data: data, options: recipe.options(context: model.config.context), directory: dir)
        var info = RunRecord(name: name, model: model.config.isMPO ? "mpo" : "dense", chi: model.config.chi)
        info.initFrom = initFrom; info.embedding = model.config.tokenEmbedding.description
        trainer.runInfo = info
        if model.config.tokenEmbedding != .dense {
            print("embedding: \(model.config.tokenEmbedding), \(model.config.embeddingParameterCount) parameters (dense \(model.config.vocabularySize * model.config.channels))")
        }
        print("\(name): \(model.parameterCount) parameters on \(device.name); \(data.train.count) train / \(data.validation.count) val tokens; writing \(dir.path)")
        trainer.skipNonFinite = skipNonFinite
        let progress = Progress(quiet: quiet)
        trainer.onStep = progress.step
        trainer.onEval = progress.eval
        try trainer.run(resume: resume)
        progress.finish()
        let last = trainer.evals.last
        print(String(format: "done in %.1f s: val loss %.4f, val accuracy %.2f%%; checkpoint %@",
                     trainer.wallSeconds, last?.valLoss ?? .nan, 100 * (last?.valAccuracy ?? .nan), trainer.checkpointURL.path))
        try writePlots([RunMetrics.load(trainer.metricsURL, name: name)], to: dir)
    }
}
