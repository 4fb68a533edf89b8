// `mpo-train train`: train a dense or MPO PicoGPT with the paper's recipe (docs/SPEC.md §6).

import ArgumentParser
import Foundation
import MPOKit
import Plots

struct ModelOptions: ParsableArguments {
    @Option(help: "Architecture: picogpt (the paper's, default), gpt2 (LayerNorm, learned positions, GELU, tied head) or llama (RMSNorm, rotary, SwiGLU, grouped-query).")
    var arch = ModelFamily.picogpt
    @Option(name: .customLong("kv-heads"), help: "Key/value heads of a llama (grouped-query; must divide --heads; default: --heads).")
    var kvHeads: Int?
    @Option(name: .customLong("rope-theta"), help: "Rotary base θ of a llama (default 10000).") var ropeTheta: Double?
    @Option(name: .customLong("norm-eps"), help: "ε of the norms (default 1e-5).") var normEps: Double?
    @Flag(name: .customLong("tied-head"), inversion: .prefixedNo, help: "Tie the head to the token embedding (gpt2: tied by default; llama, picogpt: not).")
    var tiedHead: Bool?
    @Option(help: "Model kind: dense or mpo.") var model = ModelKind.dense
    @Option(help: "Bond dimension χ of every MPO linear layer (with --model mpo).") var chi: Int = 8
    @Option(name: .customLong("chi-layer"), help: ArgumentHelp("Per-layer χ override, e.g. lm_head=16 or blocks.0.ffn.W1=4 (repeatable).", valueName: "layer=χ"))
    var chiLayer: [String] = []
    @Option(help: "MPO contraction: automatic (cheaper in FLOPs per layer), rebuild or site.") var strategy = MPOStrategy.automatic
    @Option(help: "Transformer blocks.") var layers = 4
    @Option(name: .customLong("d-model"), help: "Model width.") var dModel = 128
    @Option(help: "Attention heads (must divide --d-model; default 4). With --init, only for a checkpoint without config metadata.") var heads: Int?
    @Option(name: .customLong("d-ff"), help: "Feed-forward width.") var dFF = 512
    @Option(help: "Context length (also the training window; default 256, --preset quick 64). With --init: the training window only (default: the model's context, at most 1,024).") var context: Int?
    @Option(help: ArgumentHelp("Token embedding: dense, tt:R (per-token tensor trains of rank R over d_model's factors, [4,4,8] for 128; tt:R:4x4x8 picks them) mpo:χ (the whole table as an MPO) or svd:r (a rank-r product, the MPO [V,1]×[1,D]).", valueName: "kind"))
    var embedding = "dense"

    /// The architecture the flags describe.
    func architecture() throws -> Architecture {
        var a = Architecture.preset(arch)
        if arch != .llama {
            if kvHeads != nil { throw ValidationError("--kv-heads is for --arch llama (grouped-query attention)") }
            if ropeTheta != nil { throw ValidationError("--rope-theta is for --arch llama (rotary positions)") }
        }
        if let kvHeads {
            guard kvHeads >= 1 else { throw ValidationError("--kv-heads must be ≥ 1 (got \(kvHeads))") }
            a.kvHeads = kvHeads == (heads ?? 4) ? nil : kvHeads
        }
        if let ropeTheta { a.positions = .rotary(theta: ropeTheta) }
        if let normEps { a.normEpsilon = normEps }
        if let tiedHead { a.tiedHead = tiedHead }
        return a
    }

    func config(vocabularySize: Int, defaultContext: Int = 256) throws -> ModelConfig {
        var c = ModelConfig(vocabularySize: vocabularySize, channels: dModel, heads: heads ?? 4, layers: layers,
                            context: context ?? defaultContext, ffn: dFF, architecture: try architecture())
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
        if model == .mpo { c = c.choosingFactorizations(chi: chi) }   // shapes docs/SPEC.md does not fix: cheapest to run
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        return c
    }

    /// What a checkpoint without config metadata needs (with --init).
    var hints: ShapeHints { ShapeHints(heads: heads, context: context) }
}

/// `--preset`: a recipe's defaults; any flag given explicitly wins over them.
enum Preset: String, CaseIterable, ExpressibleByArgument {
    /// The paper's benchmark (docs/SPEC.md §6): 2,000 steps of 32×256 at peak lr 3e-4.
    case paper
    /// Val loss below 2.0 in under three minutes on two cores (nanoGPT's CPU quick start does
    /// the same on this text): 1,400 steps of 32 windows of 64 (a context of 64) at peak lr 4e-3.
    /// Measured (results/quick-preset.md): shorter windows and more steps beat 8×256 at the same
    /// time (val 1.93 vs 2.22 on the whole split), and 4e-3 beats 6e-3.
    case quick
    /// The best peak learning rate of results/compression-recipes (4e-3 for dense and for χ = 8
    /// from scratch, of 2e-3 and 4e-3 over 1,000 steps of 32×256), 2,000 steps.
    case tuned

    var steps: Int { self == .quick ? 1400 : 2000 }
    var batch: Int { 32 }
    /// The model's context (and the training window) unless --context is given.
    var context: Int { self == .quick ? 64 : 256 }
    var learningRate: Double {
        switch self {
        case .paper: return 3e-4
        case .quick, .tuned: return 4e-3
        }
    }
    var warmup: Int { self == .quick ? 50 : 100 }
    var evalInterval: Int { self == .quick ? 200 : 100 }
    var evalBatches: Int { self == .quick ? 40 : 20 }
}

struct RecipeOptions: ParsableArguments {
    @Option(help: "Recipe defaults: paper (docs/SPEC.md §6, the default), quick (val loss < 2.0 in < 3 min on 2 cores: 1,400 steps of 32×64, context 64, lr 4e-3) or tuned (the best peak lr). Flags given explicitly override it.")
    var preset = Preset.paper
    @Option(help: "Training steps (paper 2000, quick 1400).") var steps: Int?
    @Option(help: "Batch size, random windows per step (32).") var batch: Int?
    @Option(help: "Peak learning rate, AdamW (paper 3e-4, quick and tuned 4e-3); sweep takes a list, e.g. 3e-4,1e-3,2e-3.")
    var lr: LearningRates?
    @Option(help: "Linear warm-up steps before the cosine decay (paper 100, quick 50).") var warmup: Int?
    @Option(name: .customLong("weight-decay"), help: "Decoupled weight decay on every parameter.") var weightDecay = 0.1
    @Option(help: "Clip the global gradient L2 norm to this value.") var clip = 1.0
    @Option(name: .customLong("eval-interval"), help: "Evaluate (and checkpoint) every this many steps (100, quick 200).") var evalInterval: Int?
    @Option(name: .customLong("eval-batches"), help: "Validation batches (of 8 windows) per evaluation; 0 for none (paper 20, quick 40).")
    var evalBatches: Int?
    @Option(help: "Seed: initialisation, batch order and evaluation batches all derive from it.") var seed: UInt64 = 2024
    @Option(help: "UTF-8 text to train on (default: Tiny Shakespeare shipped in Data/).") var data: String?

    /// The recipe at peak learning rate `rate` (default: the one --lr, else the preset's).
    func options(context: Int, learningRate rate: Double? = nil) -> TrainOptions {
        var o = TrainOptions()
        o.steps = steps ?? preset.steps; o.batch = batch ?? preset.batch; o.time = context
        o.learningRate = rate ?? lr?.values.first ?? preset.learningRate; o.warmup = warmup ?? preset.warmup
        o.weightDecay = weightDecay; o.clip = clip; o.evalInterval = evalInterval ?? preset.evalInterval
        o.evalBatches = evalBatches ?? preset.evalBatches; o.seed = seed
        return o
    }

    func dataURL() throws -> URL { try resolveData(data) }

    /// The peak learning rates to run (sweep): --lr's list, else the preset's one.
    var learningRates: [Double] { lr?.values ?? [preset.learningRate] }
}

/// `--lr 3e-4` or a comma-separated list `3e-4,1e-3,2e-3` (sweep).
struct LearningRates: ExpressibleByArgument {
    var values: [Double]
    init?(argument: String) {
        let v = argument.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.allSatisfy({ ($0 ?? 0) > 0 && $0!.isFinite }) else { return nil }
        values = v.map { $0! }
    }
}

/// Distillation and progressive truncation (issue-free additions to a recipe).
struct CompressionRecipeOptions: ParsableArguments {
    @Option(help: "Distil from this teacher checkpoint (loaded for inference on the same device).") var teacher: String?
    @Option(name: .customLong("distill-weight"), help: "α: loss = (1 − α)·CE + α·τ²·KL(teacher ‖ student).") var distillWeight = 0.5
    @Option(name: .customLong("distill-temperature"), help: "τ: the softmax temperature of the KL term.") var distillTemperature = 2.0
    @Option(name: .customLong("distill-hidden"), help: "β: also match the residual stream after every block (MSE), weighted by β.")
    var distillHidden = 0.0
    @Option(name: .customLong("chi-schedule"), help: ArgumentHelp("Progressive truncation: TT-SVD every linear layer to χ at each step, e.g. 32@0,16@300,8@600 (a dense --init is compressed at the first).", valueName: "χ@step,…"))
    var chiSchedule: String?

    func apply(to o: inout TrainOptions) throws {
        if let teacher {
            o.distillation = DistillationOptions(teacher: teacher, weight: distillWeight, temperature: distillTemperature,
                                                 hiddenWeight: distillHidden)
        }
        if let chiSchedule {
            do { o.chiSchedule = try ChiSchedule(parsing: chiSchedule) } catch { throw ValidationError("\(error)") }
        }
        do { try o.validate() } catch { throw ValidationError("\(error)") }
    }
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
          mpo-train train --preset quick                                  (val loss < 2.0 in < 3 minutes on 2 cores)
          mpo-train train --model mpo --chi 8                             (the paper's recipe)
          mpo-train train --model mpo --chi 8 --embedding tt:4 --steps 500
          mpo-train train --arch llama --kv-heads 2 --rope-theta 10000 --preset quick   (a Llama block: RMSNorm, rotary, SwiGLU)
          mpo-train train --arch gpt2 --model mpo --chi 8 --steps 500                   (GPT-2 block, tied head)
          mpo-train train --model dense --out runs/dense
          mpo-train train --init runs/mpo16.safetensors --steps 500 --lr 1e-4   (fine-tune a compressed model)
          mpo-train train --init runs/dense-chi8.safetensors --teacher runs/dense/checkpoint.safetensors --steps 1000
          mpo-train train --init runs/dense/checkpoint.safetensors --chi-schedule 32@0,16@300,8@600 --teacher runs/dense/checkpoint.safetensors
          mpo-train train --steps 0 --eval-batches 0 --d-model 768 --layers 12 --heads 12 --d-ff 3072 --context 1024 --out runs/gpt2-shape
          mpo-train train --out runs/dense --resume
          mpirun -np 2 mpo-train train --model mpo --chi 8 --threads 1   (data-parallel; a build with --traits MPI)
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var recipe: RecipeOptions
    @OptionGroup var compression: CompressionRecipeOptions
    @OptionGroup var deviceOptions: DeviceOptions
    @Option(help: "Run directory (default runs/<model>[-chi<χ>]).") var out: String?
    @Option(name: .customLong("init"), help: "Start from this checkpoint's weights (its shape wins over the model options).") var initFrom: String?
    @Flag(help: "Continue the run in --out from its checkpoint.") var resume = false
    @Flag(name: .customLong("balance-cores"), help: "Before the first step, give every MPO layer's cores one RMS, and a compressed embedding's (per token for tt:R) (the same weights in another gauge; Adam's step is then the same relative step for each core). Ignored on --resume: the checkpoint holds the gauge it was trained in.")
    var balanceCores = false
    @Option(name: .customLong("stop-at"), help: "Checkpoint at this step and stop (a run in slices: the next --resume goes on from there, bit for bit).")
    var stopAt: Int?
    @Flag(help: "Print only evaluations and the summary.") var quiet = false
    @Option(name: .customLong("skip-nonfinite"), help: "Skip up to N steps whose loss or gradient is NaN/inf instead of stopping.")
    var skipNonFinite = 0
    /// For the crash-safety test: a pause after every step, so that a run lasts at least
    /// steps × this long on any machine and a kill can be aimed at an observed step.
    @Option(name: .customLong("step-pause-ms"), help: ArgumentHelp("Sleep this many ms after every step (testing).", visibility: .hidden))
    var stepPauseMs = 0
    /// For the data-parallel non-finite test: a NaN in one rank's gradient at one step.
    @Option(name: .customLong("poison-gradient"), help: ArgumentHelp("Put a NaN into rank R's gradient at step S (testing).", valueName: "S@R", visibility: .hidden))
    var poisonGradient: String?

    func validate() throws {
        if let stopAt, stopAt < 0 { throw ValidationError("--stop-at must be ≥ 0 (got \(stopAt))") }
        if stepPauseMs < 0 { throw ValidationError("--step-pause-ms must be ≥ 0 (got \(stepPauseMs))") }
        if let lr = recipe.lr, lr.values.count > 1 { throw ValidationError("train takes one --lr (got \(lr.values.count)); sweep runs several") }
    }

    func run() throws {
        let ranks = try Ranks()
        try ranks.run { try train(ranks) }
    }

    /// The run as one rank of `ranks` (the whole run for one process).
    func train(_ ranks: Ranks) throws {
        let device = try deviceOptions.make(rankOnNode: ranks.rankOnNode)
        // A checkpoint's vocabulary or tokenizer wins: the data is read in it.
        let data = try loadDataset(try recipe.dataURL(), codec: try initFrom.flatMap(checkpointCodec))
        let model: Transformer
        var name: String
        if let initFrom {
            // --context is the training window here; it describes the model only for a file
            // that does not say its context (a PyTorch state_dict).
            do { model = try loadCheckpoint(initFrom, device: device, hints: ShapeHints(heads: modelOptions.heads, context: nil)) }
            catch is ValidationError { model = try loadCheckpoint(initFrom, device: device, hints: modelOptions.hints) }
            name = URL(fileURLWithPath: initFrom).deletingPathExtension().lastPathComponent + "-finetune"
        } else {
            model = try Transformer(config: try modelOptions.config(vocabularySize: data.vocabularySize,
                                                                    defaultContext: recipe.preset.context), device: device)
            try model.initialize(seed: recipe.seed)
            name = (modelOptions.arch == .picogpt ? "" : "\(modelOptions.arch.rawValue)-")
                + (modelOptions.model == .mpo ? "mpo-chi\(modelOptions.chi)" : "dense")
            if modelOptions.embedding.lowercased() != "dense" { name += "-emb-" + modelOptions.embedding.lowercased().replacingOccurrences(of: ":", with: "") }
        }
        model.mpoStrategy = modelOptions.strategy
        if balanceCores {
            guard model.config.isMPO || model.config.tokenEmbedding != .dense else {
                throw ValidationError("--balance-cores rescales MPO and embedding cores, and this model has none (a dense model); leave the flag out or --init a compressed checkpoint")
            }
            if !resume { ranks.say(try CoreGauge.balance(model).summary) }
        }
        let dir = URL(fileURLWithPath: out ?? "runs/\(name)")
        name = dir.lastPathComponent
        // The training window: the model's context, or with --init the --context given (a
        // pretrained model's context, 8,192 for SmolLM2, is rarely the window to fine-tune on).
        let window = initFrom == nil ? model.config.context : modelOptions.context ?? min(model.config.context, 1024)
        guard window <= model.config.context else {
            throw ValidationError("--context \(window) is longer than the model's context \(model.config.context)")
        }
        var options = recipe.options(context: window)
        try compression.apply(to: &options)
        let trainer = try Trainer(model: model, data: data, options: options, directory: dir, collective: ranks.collective)
        if let poisonGradient {
            let parts = poisonGradient.split(separator: "@").compactMap { Int($0) }
            guard parts.count == 2 else { throw ValidationError("--poison-gradient expects S@R (got '\(poisonGradient)')") }
            if parts[1] == ranks.rank { trainer.poisonGradientAt = [parts[0]] }
        }
        if let path = compression.teacher {
            let t = try loadCheckpoint(path, device: device, hints: modelOptions.hints, purpose: .inference)
            trainer.teacher = try Teacher(model: t, options: options.distillation!)
            ranks.say("teacher: \(path), \(t.parameterCount) parameters (α \(compression.distillWeight), τ \(compression.distillTemperature)\(compression.distillHidden > 0 ? ", β \(compression.distillHidden)" : ""))")
        }
        var info = RunRecord(name: name, model: model.config.isMPO ? "mpo" : "dense", chi: model.config.chi)
        info.initFrom = initFrom; info.embedding = model.config.tokenEmbedding.description; info.preset = recipe.preset.rawValue
        if balanceCores { info.balancedCores = true }
        trainer.runInfo = info
        trainer.onTruncation = { step, chi, error in
            ranks.say(String(format: "step %d: truncated to χ = %d, %d parameters, relative error %.4f", step, chi, trainer.model.parameterCount, error))
        }
        if model.config.tokenEmbedding != .dense {
            ranks.say("embedding: \(model.config.tokenEmbedding), \(model.config.embeddingParameterCount) parameters (dense \(model.config.vocabularySize * model.config.channels))")
        }
        ranks.say("\(name): \(model.config.architecture.summary), \(model.parameterCount) parameters on \(device.name); \(data.train.count) train / \(data.validation.count) val tokens; writing \(dir.path)")
        if let c = ranks.collective {
            ranks.say("data-parallel over \(c.size) ranks (\(ranks.libraryVersion ?? "MPI")): global batch \(options.batch), rank 0 takes \(c.rows(of: options.batch).count) rows; \(model.parameterCount * 4) gradient bytes all-reduced per step")
        }
        trainer.skipNonFinite = skipNonFinite
        trainer.stopAt = stopAt
        let progress = Progress(quiet: quiet)
        let pause = UInt32(stepPauseMs) * 1000
        trainer.onStep = pause == 0 ? progress.step : { record in progress.step(record); usleep(pause) }
        trainer.onEval = progress.eval
        try trainer.run(resume: resume)
        guard ranks.isRoot else { return }
        progress.finish()
        if let stopAt, stopAt < options.steps {
            print(String(format: "stopped at step %d after %.1f s; checkpoint %@ (continue with --resume)", stopAt, trainer.wallSeconds,
                         trainer.checkpointURL.path))
        } else if let last = trainer.evals.last {
            print(String(format: "done in %.1f s: val loss %.4f, val accuracy %.2f%%; checkpoint %@",
                         trainer.wallSeconds, last.valLoss, 100 * last.valAccuracy, trainer.checkpointURL.path))
        } else {
            print(String(format: "done in %.1f s (no evaluation); checkpoint %@", trainer.wallSeconds, trainer.checkpointURL.path))
        }
        try writePlots([RunMetrics.load(trainer.metricsURL, name: name)], to: dir)
    }
}
