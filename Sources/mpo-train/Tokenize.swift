// `mpo-train tokenize`: the token ids a model's tokenizer gives a text (and, without --json, the
// pieces), for checking a tokenizer against another implementation.

import ArgumentParser
import Foundation
import MPOKit

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids (and pieces) a checkpoint's tokenizer gives a text.",
        discussion: """
        The tokenizer is the checkpoint's own: a GGUF file's or a Hugging Face directory's byte-level
        BPE, or an mpo-train checkpoint's (characters for PicoGPT). No BOS is added; with --special,
        special tokens written in the text (e.g. <|im_start|>) become their ids.

        Examples:
          mpo-train tokenize --checkpoint SmolLM2-135M-Instruct.Q4_1.gguf --text "Hello world, 2024!"
          mpo-train tokenize --checkpoint SmolLM2-135M-Instruct.Q4_1.gguf --file book.txt --json
        """)

    @Option(help: "Model checkpoint (GGUF file, Hugging Face directory or mpo-train safetensors).") var checkpoint: String
    @Option(help: "The text.") var text: String?
    @Option(help: "A UTF-8 file holding the text.") var file: String?
    @Flag(help: "Print one JSON object {\"ids\": [...]} on the last line instead of ids and pieces.") var json = false
    @Flag(help: "Turn special tokens written in the text into their ids.") var special = false

    func validate() throws {
        guard (text == nil) != (file == nil) else { throw ValidationError("give the text with --text or --file (one of them)") }
    }

    func run() throws {
        guard let codec = try TextCodec.of(checkpoint: URL(fileURLWithPath: checkpoint)) else {
            throw ValidationError("\(checkpoint) carries no tokenizer or vocabulary")
        }
        let input: String
        if let text { input = text } else {
            do { input = try String(contentsOf: URL(fileURLWithPath: file!), encoding: .utf8) } catch {
                throw ValidationError("cannot read \(file!) as UTF-8 text: \(error.localizedDescription)")
            }
        }
        let ids = try codec.encode(input, parseSpecial: special)
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: ["ids": ids.map(Int.init)]), as: UTF8.self))
            return
        }
        print(ids.map(String.init).joined(separator: " "))
        print(ids.map { String(reflecting: codec.decode([$0])) }.joined(separator: " "))
        print("\(ids.count) tokens, \(input.unicodeScalars.count) characters")
    }
}
