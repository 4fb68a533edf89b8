// `mpo-train export`: a checkpoint of the Llama or GPT-2 family as a Hugging Face model directory
// (config.json + model.safetensors in transformers' layout), which transformers' from_pretrained
// and this tool read. MPO linears are written as their contracted weights.

import ArgumentParser
import Foundation
import MPOKit

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a Llama or GPT-2 model as a Hugging Face directory (config.json, model.safetensors).",
        discussion: """
        MPO layers are contracted to dense weights (a Hugging Face file holds dense matrices); a
        TT or MPO token embedding is refused (compress it back with --embedding dense first).

        Example: mpo-train export --checkpoint runs/llama/checkpoint.safetensors --out runs/llama-hf
        """)

    @Option(help: "Model checkpoint (safetensors) or Hugging Face directory.") var checkpoint: String
    @Option(help: "Output directory (created).") var out: String
    @OptionGroup var shape: ShapeHintOptions

    func run() throws {
        let model = try loadCheckpoint(checkpoint, device: CPUDevice(), hints: shape.hints, purpose: .inference)
        try HFCheckpoint.save(model, to: URL(fileURLWithPath: out))
        print("\(model.config.architecture.summary): \(model.parameterCount) parameters written to \(out) (config.json, model.safetensors)")
    }
}
