// `mpo-train sample`: generate text from a checkpoint with a KV cache (SPEC §7).

import ArgumentParser
import Foundation
import MPOKit

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a checkpoint (temperature + top-k sampling, KV cache).",
        discussion: """
        The vocabulary comes from the checkpoint (mpo-train checkpoints store it); for other
        checkpoints it is rebuilt from --data.

        Example: mpo-train sample --checkpoint runs/mpo-chi8/checkpoint.safetensors --prompt "ROMEO:" --tokens 300
        """)

    @Option(help: "Model checkpoint.") var checkpoint: String
    @Option(help: "Text to continue (default: a newline).") var prompt = ""
    @Option(help: "Tokens to generate.") var tokens = 500
    @Option(help: "Sampling temperature (0 = greedy argmax).") var temperature = 0.8
    @Option(name: .customLong("top-k"), help: "Sample only among the k most likely tokens (0 = all).") var topK = 40
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Option(help: "Text file whose characters form the vocabulary, for checkpoints without one.") var data: String?
    @OptionGroup var shape: ShapeHintOptions
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        guard tokens >= 0 else { throw ValidationError("--tokens must be ≥ 0") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be ≥ 0") }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0") }
        let device = try deviceOptions.make()
        let model = try loadCheckpoint(checkpoint, device: device, hints: shape.hints)
        let vocab: Vocabulary
        if let v = try checkpointVocabulary(checkpoint) {
            vocab = v
        } else {
            vocab = try TextDataset(url: try resolveData(data)).vocabulary
        }
        guard vocab.count == model.config.vocabularySize else {
            throw ValidationError("the vocabulary has \(vocab.count) characters but the model expects \(model.config.vocabularySize); pass the training text with --data")
        }
        let ids: [Int32]
        do { ids = try vocab.encode(prompt) } catch { throw ValidationError("--prompt: \(error)") }
        let gen = try Generator(model: model)
        var sampler = Sampler(temperature: temperature, topK: topK == 0 ? nil : topK, seed: seed)
        print(prompt, terminator: "")
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = try gen.generate(prompt: ids, count: tokens, sampler: &sampler) { id in
            print(vocab.decode([id]), terminator: "")
            fflush(nil)
        }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        print("")
        printError(String(format: "[%d tokens in %.2f s, %.0f tokens/s on %@]", tokens, dt, Double(tokens) / dt, device.name))
    }
}
