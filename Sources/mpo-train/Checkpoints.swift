// Loading a checkpoint from the command line: the --heads/--context hints a file without
// mpo-train config metadata needs (a plain PyTorch state_dict), and the one loader every
// subcommand uses, which turns "the file does not say" into a usage error (exit 64) that names
// the flag to pass.

import ArgumentParser
import Foundation
import MPOKit

struct ShapeHintOptions: ParsableArguments {
    @Option(help: "Attention heads of a checkpoint without mpo-train config metadata (a PyTorch state_dict); required for such files.")
    var heads: Int?
    @Option(help: "Context length of such a checkpoint when it has no pos_enc or causal mask.")
    var context: Int?

    var hints: ShapeHints { ShapeHints(heads: heads, context: context) }

    func validate() throws {
        if let heads, heads < 1 { throw ValidationError("--heads must be ≥ 1 (got \(heads))") }
        if let context, context < 1 { throw ValidationError("--context must be ≥ 1 (got \(context))") }
    }
}

/// The model in `path` on `device`; a missing shape hint is a usage error naming the flag.
func loadCheckpoint(_ path: String, device: any ComputeDevice, hints: ShapeHints, purpose: ModelPurpose = .training,
                    weightDType: WeightDType = .f32) throws -> Transformer {
    do {
        return try ModelCheckpoint.loadModel(URL(fileURLWithPath: path), device: device, hints: hints, purpose: purpose, weightDType: weightDType)
    } catch let e as MissingShapeError {
        throw ValidationError("\(path): \(e.message)")
    }
}

/// How a checkpoint's text becomes ids: its characters or tokenizer (mpo-train files, GGUF files
/// and Hugging Face directories carry one), if it says.
func checkpointCodec(_ path: String) throws -> TextCodec? { try TextCodec.of(checkpoint: URL(fileURLWithPath: path)) }

/// The data file in `codec`'s ids (a checkpoint's characters or tokenizer), or without one in the
/// characters of the text itself.
func loadDataset(_ url: URL, codec: TextCodec?) throws -> TextDataset {
    if let codec { return try TextDataset(url: url, codec: codec) }
    return try TextDataset(url: url)
}

extension MPOStrategy: ExpressibleByArgument {}
extension WeightDType: ExpressibleByArgument {}
extension ModelFamily: ExpressibleByArgument {}
extension SensitivityMethod: ExpressibleByArgument {}

/// `--model dense | mpo`.
enum ModelKind: String, CaseIterable, ExpressibleByArgument {
    case dense, mpo
}
