// `mpo-train compress`: TT-SVD a trained dense model into an MPO model (SPEC §4), keeping its
// embedding, LayerNorms and biases, and show what it costs in validation loss. With --embedding
// the token embedding is TT-SVD'd too (per-token tensor trains or one table MPO, SPEC §5).

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

        Examples:
          mpo-train compress --checkpoint runs/dense/checkpoint.safetensors --chi 16 --out runs/dense-chi16.safetensors
          mpo-train compress --checkpoint runs/dense/checkpoint.safetensors --embedding tt:4 --out runs/dense-tt4.safetensors
        """)

    @Option(help: "Trained dense checkpoint.") var checkpoint: String
    @Option(help: "Bond dimension χ of the linear layers (omit to keep them as they are).") var chi: Int?
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
        guard chi != nil || embedding != nil else { throw ValidationError("give --chi, --embedding or both") }
        let device = try deviceOptions.make()
        let dense = try loadCheckpoint(checkpoint, device: device, hints: shape.hints)
        let vocab = try checkpointVocabulary(checkpoint)
        let data = try TextDataset(url: try resolveData(self.data), vocabulary: vocab)
        try data.validate(time: dense.config.context)
        guard data.vocabulary.count == dense.config.vocabularySize else {
            throw ModelError("the data has \(data.vocabulary.count) distinct characters but the model's vocabulary has \(dense.config.vocabularySize); pass its training text with --data")
        }
        func evaluate(_ m: PicoGPT) throws -> (Double, Double) {   // the same batches before and after
            var rng = SplitMix64(seed: seed)
            return try m.evaluate(data.validation, batches: evalBatches, batchSize: 8, time: m.config.context, rng: &rng)
        }
        let before = try evaluate(dense)
        var model = dense, reports: [LayerCompression] = []
        if let chi { (model, reports) = try Compression.compress(dense, chi: chi, relativeTolerance: tolerance) }
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
        if let embedding { meta["embedding"] = embedding }
        meta["vocab"] = data.vocabulary.string
        try ModelCheckpoint.save(model, to: URL(fileURLWithPath: out), metadata: meta)
        print(String(format: "parameters %d → %d (%.1f× smaller)", dense.parameterCount, model.parameterCount,
                     Double(dense.parameterCount) / Double(model.parameterCount)))
        print(String(format: "validation before: loss %.4f acc %.2f%%   after: loss %.4f acc %.2f%%",
                     before.0, 100 * before.1, after.0, 100 * after.1))
        print("wrote \(out); fine-tune with: mpo-train train --init \(out) --steps 500 --lr 1e-4")
    }
}
