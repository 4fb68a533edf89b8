// `mpo-train export`: a checkpoint of the Llama or GPT-2 family as a Hugging Face model directory
// (config.json + model.safetensors in transformers' layout, plus tokenizer.json and
// tokenizer_config.json when the checkpoint carries a tokenizer) or as a GGUF file llama.cpp runs
// (F32 or F16 matrices, the tokenizer in tokenizer.ggml.*). MPO linears are written as their
// contracted weights.

import ArgumentParser
import Foundation
import MPOKit
import Tokenizers

struct Export: ParsableCommand {
    enum Format: String, ExpressibleByArgument, CaseIterable { case hf, gguf }
    enum DType: String, ExpressibleByArgument, CaseIterable { case f32, f16 }

    static let configuration = CommandConfiguration(
        abstract: "Write a Llama or GPT-2 model as a Hugging Face directory or a GGUF file for llama.cpp.",
        discussion: """
        MPO layers are contracted to dense weights (both formats hold dense matrices); a TT or MPO
        token embedding is refused (compress it back with --embedding dense first). The
        checkpoint's tokenizer and chat template go along (a GGUF file, a Hugging Face directory or
        an mpo-train checkpoint made by compress/train from one carries them).

        Examples:
          mpo-train export --checkpoint runs/smollm2-r2.safetensors --format gguf --dtype f16 --out runs/smollm2-r2.f16.gguf
          mpo-train export --checkpoint runs/llama/checkpoint.safetensors --out runs/llama-hf
        """)

    @Option(help: "Model checkpoint (mpo-train safetensors, GGUF file or Hugging Face directory).") var checkpoint: String
    @Option(help: "Output directory (hf, created) or file (gguf).") var out: String
    @Option(help: "hf (config.json, model.safetensors, tokenizer files) or gguf (default: gguf when --out ends in .gguf).")
    var format: Format?
    @Option(help: "Precision of the GGUF file's matrices: f32 or f16 (vectors stay f32).") var dtype: DType = .f32
    @OptionGroup var shape: ShapeHintOptions

    func run() throws {
        let fmt = format ?? (out.hasSuffix(".gguf") ? .gguf : .hf)
        if fmt == .hf && dtype != .f32 { throw ValidationError("--dtype f16 is for --format gguf; a Hugging Face export is f32") }
        let model = try loadCheckpoint(checkpoint, device: CPUDevice(), hints: shape.hints, purpose: .inference)
        let tokenizer: BPETokenizer?
        if case .bpe(let t)? = try checkpointCodec(checkpoint) { tokenizer = t } else { tokenizer = nil }
        let url = URL(fileURLWithPath: out)
        switch fmt {
        case .hf:
            try HFCheckpoint.save(model, to: url)
            var files = "config.json, model.safetensors"
            if let tokenizer {
                try HFCheckpoint.saveTokenizer(tokenizer, to: url)
                files += ", tokenizer.json, tokenizer_config.json"
            }
            print("\(model.config.architecture.summary): \(model.parameterCount) parameters written to \(out) (\(files))")
        case .gguf:
            try GGUFCheckpoint.save(model, tokenizer: tokenizer, to: url, matrices: dtype == .f16 ? .f16 : .f32,
                                    name: URL(fileURLWithPath: checkpoint).deletingPathExtension().lastPathComponent)
            let bytes = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
            print("\(model.config.architecture.summary): GGUF (\(dtype.rawValue) matrices\(tokenizer == nil ? ", no tokenizer" : ", tokenizer")) written to \(out), \(bytes / 1_000_000) MB")
        }
    }
}
