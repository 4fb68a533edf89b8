// `mpo-train compress`: TT-SVD a trained dense model into an MPO model (docs/SPEC.md §4), keeping its
// embedding, LayerNorms and biases, and show what it costs in validation loss. With --embedding
// the token embedding is TT-SVD'd too (per-token tensor trains or one table MPO, docs/SPEC.md §5).

import ArgumentParser
import Foundation
import MPOKit

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress a trained checkpoint into MPO layers of bond dimension χ and/or a TT embedding.",
        discussion: """
        With --chi every linear layer is TT-SVD'd; with --embedding tt:R (or mpo:χ) the token
        embedding is TT-SVD'd row by row into per-token tensor trains (or as one MPO). Everything
        else (LayerNorms, biases, and the embedding without --embedding) is copied unchanged.
        Prints per-layer errors and the validation loss/accuracy before and after, on the same
        batches. Fine-tune the result with `mpo-train train --init OUT`.

        With --params N (or --ratio R) instead of --chi, every layer gets its own χ so that the
        whole model has at most N parameters (dense/R): greedy on the layers' TT-SVD errors per
        added parameter, each layer's error weighted by its measured sensitivity with
        --sensitivity K (K validation batches per layer).

        Examples:
          mpo-train compress --checkpoint runs/dense/checkpoint.safetensors --chi 16 --out runs/dense-chi16.safetensors
          mpo-train compress --checkpoint runs/dense/checkpoint.safetensors --params 79168 --sensitivity 4 --out runs/dense-79k.safetensors
          mpo-train compress --checkpoint runs/dense/checkpoint.safetensors --embedding tt:4 --out runs/dense-tt4.safetensors
        """)

    @Option(help: "Trained dense checkpoint.") var checkpoint: String
    @Option(help: "Bond dimension χ of the linear layers (omit to keep them as they are).") var chi: Int?
    @Option(help: "Parameter budget of the whole model: a χ per layer, chosen greedily from the layers' TT-SVD errors.") var params: Int?
    @Option(help: "Compression ratio of the whole model: --params = dense parameters / R.") var ratio: Double?
    @Option(help: "Weigh each layer by its measured sensitivity: the loss increase over this many validation batches when it alone is compressed (with --params/--ratio).")
    var sensitivity: Int?
    @Option(name: .customLong("min-chi"), help: "Every layer's χ at least this (with --params/--ratio; default: half the uniform χ that fits the budget, so no layer is starved).")
    var minChi: Int?
    @Option(help: ArgumentHelp("Also compress the token embedding: tt:R, tt:R:4x4x8 or mpo:χ (dense contracts a TT/MPO embedding back).", valueName: "kind"))
    var embedding: String?
    @Option(help: "Output checkpoint.") var out: String
    @Option(help: "Optional relative tolerance per TT-SVD step (smaller bonds where it suffices).") var tolerance: Double?
    @Option(help: "Text for the validation numbers (default: Tiny Shakespeare).") var data: String?
    @Option(name: .customLong("eval-batches"), help: "Validation batches (of 8 windows of the model's context).") var evalBatches = 20
    @Option(help: "Seed of the evaluation batches.") var seed: UInt64 = 2024
    @OptionGroup var shape: ShapeHintOptions
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        if let chi, chi < 1 { throw ValidationError("--chi must be ≥ 1 (got \(chi))") }
        let budgets = [chi != nil, params != nil, ratio != nil].filter { $0 }.count
        guard budgets <= 1 else { throw ValidationError("give one of --chi, --params and --ratio") }
        guard budgets == 1 || embedding != nil else { throw ValidationError("give --chi, --params or --ratio, --embedding, or both") }
        if let ratio, !(ratio > 1) { throw ValidationError("--ratio must be > 1 (got \(ratio))") }
        if sensitivity != nil && params == nil && ratio == nil { throw ValidationError("--sensitivity goes with --params or --ratio") }
        if minChi != nil && params == nil && ratio == nil { throw ValidationError("--min-chi goes with --params or --ratio") }
        if let minChi, minChi < 1 { throw ValidationError("--min-chi must be ≥ 1 (got \(minChi))") }
        let device = try deviceOptions.make()
        let dense = try loadCheckpoint(checkpoint, device: device, hints: shape.hints)
        let vocab = try checkpointVocabulary(checkpoint)
        let data = try TextDataset(url: try resolveData(self.data), vocabulary: vocab)
        try data.validate(time: dense.config.context)
        guard data.vocabulary.count == dense.config.vocabularySize else {
            throw ModelError("the data has \(data.vocabulary.count) distinct characters but the model's vocabulary has \(dense.config.vocabularySize); pass its training text with --data")
        }
        func evaluate(_ m: Transformer) throws -> (Double, Double) {   // the same batches before and after
            var rng = SplitMix64(seed: seed)
            return try m.evaluate(data.validation, batches: evalBatches, batchSize: 8, time: m.config.context, rng: &rng)
        }
        let before = try evaluate(dense)
        var model = dense, reports: [LayerCompression] = []
        if let chi { (model, reports) = try Compression.compress(dense, chi: chi, relativeTolerance: tolerance) }
        if params != nil || ratio != nil {
            let budget = params ?? Int((Double(dense.parameterCount) / ratio!).rounded(.down))
            let allocation = try allocate(dense, budget: budget, validation: data.validation)
            (model, reports) = try Compression.compress(dense, chi: 1, bondCaps: allocation.bonds, factorizations: allocation.factorizations, relativeTolerance: tolerance)
            print("budget \(budget) parameters: allocation of \(allocation.modelParameters)")
        }
        for r in reports {
            print(pad(r.layer, 22) + pad(r.factorization, 22) + lpad(r.bonds.map(String.init).joined(separator: ","), 12)
                  + lpad("\(r.parameters)", 8) + lpad(String(format: "%.1f×", r.compressionRatio), 8)
                  + lpad(String(format: "err %.4f", r.relativeError), 12) + lpad(String(format: "bound %.4f", r.errorBound), 14))
        }
        if let embedding {
            let target: EmbeddingKind
            do { target = try EmbeddingKind.parse(embedding, vocabulary: model.config.vocabularySize, channels: model.config.channels) } catch {
                throw ValidationError("\(error)")
            }
            let (m, r) = try Compression.compressEmbedding(model, to: target)
            model = m
            print(pad("tok_emb", 22) + pad(r.kind, 36) + lpad("\(r.parameters)", 8) + lpad(String(format: "%.1f×", r.compressionRatio), 8)
                  + lpad(String(format: "err %.4f", r.relativeError), 12) + lpad(String(format: "bound %.4f", r.errorBound), 14))
            print(String(format: "embedding parameters %d → %d (ratio %.2f×), relative error %.4f",
                         r.denseParameters, r.parameters, r.compressionRatio, r.relativeError))
        }
        let after = try evaluate(model)
        var meta = ["compressed_from": checkpoint]
        if let chi { meta["chi"] = "\(chi)" }
        if let params { meta["params"] = "\(params)" }
        if let ratio { meta["ratio"] = "\(ratio)" }
        if let embedding { meta["embedding"] = embedding }
        meta["vocab"] = data.vocabulary.string
        try ModelCheckpoint.save(model, to: URL(fileURLWithPath: out), metadata: meta)
        print(String(format: "parameters %d → %d (%.1f× smaller)", dense.parameterCount, model.parameterCount,
                     Double(dense.parameterCount) / Double(model.parameterCount)))
        print(String(format: "validation before: loss %.4f acc %.2f%%   after: loss %.4f acc %.2f%%",
                     before.0, 100 * before.1, after.0, 100 * after.1))
        print("wrote \(out); fine-tune with: mpo-train train --init \(out) --steps 500 --lr 1e-4")
    }

    /// The budgeted allocation, with sensitivity weights when asked (probe χ: the uniform χ whose
    /// model is nearest the budget), every layer at χ ≥ --min-chi (default half the largest
    /// uniform χ that fits).
    func allocate(_ dense: Transformer, budget: Int, validation: [Int32]) throws -> BondAllocation {
        var weights: [String: Double] = [:]
        func size(_ c: Int) -> Int { var cfg = dense.config; cfg.chi = c; return cfg.parameterLayout().parameterCount }
        let uniform = (1...256).last { size($0) <= budget } ?? 1
        let floor = minChi ?? max(1, uniform / 2)
        print("allocation: every layer χ ≥ \(floor)\(minChi == nil ? " (half of χ = \(uniform), the largest uniform χ that fits)" : "")")
        if let sensitivity {
            let probe = (1...256).min { abs(size($0) - budget) < abs(size($1) - budget) }!
            weights = try BondAllocator.sensitivity(dense, chi: probe, validation: validation, batches: sensitivity)
            print("sensitivity at χ = \(probe) (loss increase per unit relative error², \(sensitivity) batches):")
            for (k, v) in weights.sorted(by: { $0.key < $1.key }) { print("  " + pad(k, 22) + String(format: "%.4f", v)) }
        }
        return try BondAllocator.allocate(dense, parameters: budget, weights: weights, minimumChi: floor)
    }
}
