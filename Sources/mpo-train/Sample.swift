// `mpo-train sample`: generate text from a checkpoint with a KV cache (docs/SPEC.md §7).

import ArgumentParser
import Foundation
import MPOKit

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a checkpoint (temperature + top-k sampling, KV cache).",
        discussion: """
        The vocabulary comes from the checkpoint (mpo-train checkpoints store it); for other
        checkpoints it is rebuilt from --data. The model is loaded for inference only (no gradient
        or rebuild buffers; MPO layers contract site by site where that is faster). With --batch N,
        N sequences (seeds seed…seed+N−1) are decoded together and printed one after another; the
        prompt is prefilled in one forward pass.

        Examples:
          mpo-train sample --checkpoint runs/mpo-chi8/checkpoint.safetensors --prompt "ROMEO:" --tokens 300
          mpo-train sample --checkpoint runs/mpo-chi8/checkpoint.safetensors --batch 8 --tokens 200
        """)

    @Option(help: "Model checkpoint.") var checkpoint: String
    @Option(help: "Text to continue (default: a newline).") var prompt = ""
    @Option(help: "Tokens to generate.") var tokens = 500
    @Option(help: "Sampling temperature (0 = greedy argmax).") var temperature = 0.8
    @Option(name: .customLong("top-k"), help: "Sample only among the k most likely tokens (0 = all).") var topK = 40
    @Option(help: "Sampling seed (sequence b of a batch uses seed + b).") var seed: UInt64 = 0
    @Option(help: "Sequences decoded together.") var batch = 1
    @Option(help: "MPO contraction: automatic (timed once per shape), rebuild or site.") var strategy = MPOStrategy.automatic
    @Option(help: "Text file whose characters form the vocabulary, for checkpoints without one.") var data: String?
    @OptionGroup var shape: ShapeHintOptions
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        guard tokens >= 0 else { throw ValidationError("--tokens must be ≥ 0") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be ≥ 0") }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0") }
        guard batch >= 1 else { throw ValidationError("--batch must be ≥ 1") }
        let device = try deviceOptions.make()
        let model = try loadCheckpoint(checkpoint, device: device, hints: shape.hints, purpose: .inference)
        model.mpoStrategy = strategy
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
        let gen = try Generator(model: model, batch: batch, capacity: max(ids.count, 1) + tokens)
        var samplers = (0..<batch).map { Sampler(temperature: temperature, topK: topK == 0 ? nil : topK, seed: seed &+ UInt64($0)) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        if batch == 1 { print(prompt, terminator: "") }
        let out = try gen.generate(prompt: ids, count: tokens, samplers: &samplers) { next in
            guard batch == 1 else { return }
            print(vocab.decode(next), terminator: "")
            fflush(nil)
        }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        if batch == 1 {
            print("")
        } else {
            for (b, seq) in out.enumerated() { print("--- sequence \(b + 1) (seed \(seed &+ UInt64(b)))\n" + prompt + vocab.decode(seq.dropFirst(max(ids.count, 1)))) }
        }
        printError(String(format: "[%d × %d tokens in %.2f s, %.0f tokens/s on %@]", batch, tokens, dt,
                          Double(batch * tokens) / dt, device.name))
    }
}
