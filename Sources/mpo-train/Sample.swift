// `mpo-train sample`: generate text from a checkpoint with a KV cache (docs/SPEC.md §7).

import ArgumentParser
import Foundation
import MPOKit
import Tokenizers

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a checkpoint (temperature + top-k sampling, KV cache).",
        discussion: """
        The tokenizer comes from the checkpoint (a GGUF's or Hugging Face directory's byte-level BPE;
        the character vocabulary mpo-train checkpoints store); for a PicoGPT state_dict it is rebuilt
        from --data. --chat wraps the prompt in the model's chat template (ChatML) and stops at the
        end-of-turn token; text streams as it is generated, never half a UTF-8 character. The model is loaded for inference only (no gradient
        or rebuild buffers; MPO layers contract site by site where that is faster). With --batch N,
        N sequences (seeds seed…seed+N−1) are decoded together and printed one after another; the
        prompt is prefilled in one forward pass.

        Examples:
          mpo-train sample --checkpoint runs/mpo-chi8/checkpoint.safetensors --prompt "ROMEO:" --tokens 300
          mpo-train sample --checkpoint SmolLM2-135M-Instruct.Q4_1.gguf --chat --prompt "What is the capital of France?"
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
    @Option(name: .customLong("core-dtype"), help: coreDTypeHelp) var coreDType = WeightDType.f32
    @Flag(help: "Wrap the prompt in the model's chat template (ChatML) and stop at the end of the assistant's turn.") var chat = false
    @OptionGroup var shape: ShapeHintOptions
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        guard tokens >= 0 else { throw ValidationError("--tokens must be ≥ 0") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be ≥ 0") }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0") }
        guard batch >= 1 else { throw ValidationError("--batch must be ≥ 1") }
        let device = try deviceOptions.make()
        let model = try loadCheckpoint(checkpoint, device: device, hints: shape.hints, purpose: .inference, weightDType: coreDType)
        model.mpoStrategy = strategy
        let codec: TextCodec
        if let c = try TextCodec.of(checkpoint: URL(fileURLWithPath: checkpoint)) {
            codec = c
        } else {
            codec = try TextDataset(url: try resolveData(data)).codec
        }
        guard codec.count <= model.config.vocabularySize, codec.tokenizer != nil || codec.count == model.config.vocabularySize else {
            throw ValidationError("the vocabulary has \(codec.count) tokens but the model expects \(model.config.vocabularySize); pass the training text with --data")
        }
        var stop = Set<Int32>(), text = prompt
        if chat {
            guard let t = codec.tokenizer else { throw ValidationError("--chat needs a model with a chat template (a GGUF or Hugging Face chat model)") }
            do { text = try ChatTemplate.render(t.chatTemplate, user: prompt) } catch { throw ValidationError("\(error)") }
            if let e = t.endOfTurn { stop.insert(Int32(e)) }
        }
        let ids: [Int32]
        do { ids = try codec.encode(text, parseSpecial: chat) } catch { throw ValidationError("--prompt: \(error)") }
        let start = ids.isEmpty ? [Int32(codec.tokenizer?.bos ?? 0)] : ids
        let gen = try Generator(model: model, batch: batch, capacity: min(start.count + tokens, model.config.context))
        var samplers = (0..<batch).map { Sampler(temperature: temperature, topK: topK == 0 ? nil : topK, seed: seed &+ UInt64($0)) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        if batch == 1 && !chat { print(prompt, terminator: "") }
        var stream = StreamDecoder(), produced = 0
        let out = try gen.generate(prompt: start, count: tokens, samplers: &samplers, stop: stop) { next in
            produced += 1
            guard batch == 1, !stop.contains(next[0]) else { return }
            print(stream.push(codec.bytes(next)), terminator: "")
            fflush(nil)
        }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        if batch == 1 {
            print(stream.finish())
        } else {
            for (b, seq) in out.enumerated() {
                let generated = Array(seq.dropFirst(start.count)).filter { !stop.contains($0) }
                print("--- sequence \(b + 1) (seed \(seed &+ UInt64(b)))\n" + (chat ? "" : prompt) + codec.decode(generated))
            }
        }
        printError(String(format: "[%d × %d tokens in %.2f s, %.1f tokens/s on %@]", batch, produced, dt,
                          Double(batch * produced) / dt, device.name))
    }
}
