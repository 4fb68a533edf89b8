// `mpo-train sweep`: dense plus every χ with the same seed and batch sequence (or compressed
// from one dense checkpoint and fine-tuned), then one results table and overlaid plots.

import ArgumentParser
import Foundation
import MPOKit

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train dense and MPO models at several χ with one recipe and tabulate the results.",
        discussion: """
        Writes into --out one run directory per model, results.md, results.json and the plots
        (all runs overlaid). With --finetune-from, each χ starts from the TT-SVD of that dense
        checkpoint (embedding, LayerNorms and biases kept) instead of from scratch, and the dense
        row is that checkpoint evaluated as is.

        With several --lr values every model runs at each (a learning-rate sweep; run
        directories get an -lr<value> suffix).

        Examples:
          mpo-train sweep --chi 4,8,16,32 --steps 2000
          mpo-train sweep --chi 8 --steps 500 --lr 3e-4,1e-3,2e-3,4e-3 --out runs/lr-sweep
          mpo-train sweep --chi 8,16,32 --steps 500 --lr 1e-4 --finetune-from runs/sweep/dense/checkpoint.safetensors --out runs/finetune
        """)

    @Option(help: "Comma-separated bond dimensions.") var chi = "4,8,16,32"
    @Option(help: "Dense checkpoint to compress and fine-tune instead of training from scratch.") var finetuneFrom: String?
    @Option(help: "Output directory.") var out = "runs/sweep"
    @Option(help: "MPO contraction: automatic, rebuild or site.") var strategy = MPOStrategy.automatic
    @Option(help: "Token embedding of the MPO runs (from scratch): dense, tt:R, mpo:χ or svd:r.") var embedding = "dense"
    @OptionGroup var recipe: RecipeOptions
    @OptionGroup var shape: ShapeHintOptions
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        let chis = try parseChiList(chi)
        let device = try deviceOptions.make()
        let root = URL(fileURLWithPath: out)
        var denseFile: URL? = nil
        var codec: TextCodec? = nil
        if let finetuneFrom {
            denseFile = URL(fileURLWithPath: finetuneFrom)
            codec = try checkpointCodec(finetuneFrom)
        }
        let data = try loadDataset(try recipe.dataURL(), codec: codec)
        let embeddingKind: EmbeddingKind
        do { embeddingKind = try EmbeddingKind.parse(embedding, vocabulary: data.vocabularySize, channels: 128) } catch {
            throw ValidationError("\(error)")
        }
        var runs: [(URL, String?)] = []
        let rates = recipe.learningRates
        for c in [nil] + chis.map(Optional.some) { for rate in rates {
            var name = c.map { "mpo-chi\($0)" } ?? "dense"
            if rates.count > 1 { name += "-lr\(rate)" }
            let dir = root.appendingPathComponent(name)
            let model: Transformer
            var options = recipe.options(context: 256, learningRate: rate)
            if let denseFile {
                let dense = try loadCheckpoint(denseFile.path, device: device, hints: shape.hints)
                options.time = dense.config.context
                if let c { model = try Compression.compress(dense, chi: c).0 } else { model = dense; options.steps = 0 }
            } else {
                var config = c.map { ModelConfig.mpo(chi: $0) } ?? .picoGPT
                config.vocabularySize = data.vocabularySize
                if c != nil { config.tokenEmbedding = embeddingKind }
                model = try Transformer(config: config, device: device)
                try model.initialize(seed: recipe.seed)
            }
            model.mpoStrategy = strategy
            let trainer = try Trainer(model: model, data: data, options: options, directory: dir)
            trainer.runInfo = RunRecord(name: name, model: c == nil ? "dense" : "mpo", chi: c)
            print("== \(name): \(model.parameterCount) parameters, \(options.steps) steps")
            let progress = Progress(quiet: false)
            trainer.onStep = progress.step
            trainer.onEval = progress.eval
            try trainer.run()
            progress.finish()
            runs.append((trainer.metricsURL, name))
        } }
        try tabulate(runs: runs, to: root,
                     summary: ResultsFile(device: device.name, seed: Int(truncatingIfNeeded: recipe.seed), finetuneFrom: finetuneFrom ?? ""))
    }
}
