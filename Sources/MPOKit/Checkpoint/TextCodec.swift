// How a model's text becomes token ids and back: PicoGPT's character vocabulary (stored in
// mpo-train checkpoints), or a byte-level BPE tokenizer — from a GGUF file's metadata, a Hugging
// Face directory's tokenizer.json, or the tokenizer an mpo-train checkpoint of such a model carries
// (metadata "tokenizer": its tokenizer.json). And the chat template of ChatML models.

import Foundation
import GGUF
import SafeTensors
import Tokenizers

public enum TextCodec {
    case characters(Vocabulary)
    case bpe(BPETokenizer)

    public var count: Int {
        switch self {
        case .characters(let v): return v.count
        case .bpe(let t): return t.count
        }
    }

    public var tokenizer: BPETokenizer? { if case .bpe(let t) = self { return t } else { return nil } }

    /// Token ids of `text` (no BOS); with `parseSpecial`, special tokens written in the text are theirs.
    public func encode(_ text: String, parseSpecial: Bool = false) throws -> [Int32] {
        switch self {
        case .characters(let v): return try v.encode(text)
        case .bpe(let t): return t.encode(text, parseSpecial: parseSpecial).map(Int32.init)
        }
    }

    public func decode(_ ids: [Int32]) -> String {
        switch self {
        case .characters(let v): return v.decode(ids)
        case .bpe(let t): return t.decode(ids.map(Int.init))
        }
    }

    /// The UTF-8 bytes of `ids` (for streaming through a StreamDecoder).
    public func bytes(_ ids: [Int32]) -> [UInt8] {
        switch self {
        case .characters(let v): return Array(v.decode(ids).utf8)
        case .bpe(let t): return t.bytes(ids.map(Int.init))
        }
    }

    /// The codec a checkpoint carries: a GGUF's tokenizer, a Hugging Face directory's
    /// tokenizer.json, an mpo-train checkpoint's tokenizer or character vocabulary; nil if none.
    public static func of(checkpoint url: URL) throws -> TextCodec? {
        if GGUFCheckpoint.isGGUF(url) {
            let f = try GGUFCheckpoint.open(url)
            return f.metadata["tokenizer.ggml.tokens"] == nil ? nil : .bpe(try ggufTokenizer(f))   // none is none; a broken one is named
        }
        if HFCheckpoint.isModelDirectory(url) {
            let file = url.appendingPathComponent("tokenizer.json")
            guard FileManager.default.fileExists(atPath: file.path) else { return nil }
            var template: String? = nil
            if let cfg = try? HFCheckpoint.json(url.appendingPathComponent("tokenizer_config.json")) { template = cfg["chat_template"] as? String }
            do { return .bpe(try BPETokenizer.fromTokenizerJSON(file, chatTemplate: template)) } catch { throw ModelError("\(error)") }
        }
        return try of(metadata: ModelCheckpoint.open(url).metadata, source: url.path)
    }

    /// The codec stored in an mpo-train checkpoint's metadata (`metadata()`), if any.
    public static func of(metadata m: [String: String], source: String) throws -> TextCodec? {
        if let json = m["tokenizer"] {
            do {
                return .bpe(try BPETokenizer.fromTokenizerJSON(data: Data(json.utf8), chatTemplate: m["chat_template"],
                                                               bos: m["bos_token_id"].flatMap { Int($0) }, eos: m["eos_token_id"].flatMap { Int($0) }))
            } catch { throw ModelError("\(source): its stored tokenizer: \(error)") }
        }
        return m["vocab"].map { .characters(Vocabulary(string: $0)) }
    }

    /// What an mpo-train checkpoint stores so that it can be used alone: the characters
    /// ("vocab"), or the tokenizer as tokenizer.json with its BOS/EOS ids and chat template.
    public func metadata() throws -> [String: String] {
        switch self {
        case .characters(let v): return ["vocab": v.string]
        case .bpe(let t):
            var m = ["tokenizer": String(decoding: try t.tokenizerJSON(), as: UTF8.self)]
            m["chat_template"] = t.chatTemplate
            m["bos_token_id"] = t.bos.map(String.init)
            m["eos_token_id"] = t.eos.map(String.init)
            return m
        }
    }

    /// The BPE tokenizer of a GGUF file's tokenizer.ggml.* metadata.
    public static func ggufTokenizer(_ f: GGUFFile) throws -> BPETokenizer {
        do {
            return try BPETokenizer.fromGGUF(model: f.string("tokenizer.ggml.model"), pre: f.string("tokenizer.ggml.pre"),
                                             tokens: try f.strings("tokenizer.ggml.tokens"), merges: try f.strings("tokenizer.ggml.merges"),
                                             tokenTypes: f.metadata["tokenizer.ggml.token_type"] == nil ? nil : try f.ints("tokenizer.ggml.token_type"),
                                             bos: f.int("tokenizer.ggml.bos_token_id"), eos: f.int("tokenizer.ggml.eos_token_id"),
                                             chatTemplate: f.string("tokenizer.chat_template"))
        } catch let e as GGUFError {
            throw ModelError("\(f.url.path): \(e.message)")
        } catch {
            throw ModelError("\(f.url.path): \(error)")
        }
    }
}

/// Chat templates: ChatML (<|im_start|>role\n…<|im_end|>\n), the one SmolLM2, Qwen and many
/// others use, rendered without a template engine — with the system message the template puts
/// in by default, if it has one.
public enum ChatTemplate {
    /// The prompt for one user turn, ending where the assistant's answer begins.
    public static func render(_ template: String?, user: String) throws -> String {
        guard let t = template, t.contains("<|im_start|>") else {
            throw ModelError("the model's chat template is \(template == nil ? "missing" : "not ChatML"); --chat supports ChatML (<|im_start|>…<|im_end|>) templates")
        }
        var prompt = ""
        let marker = "<|im_start|>system\n"
        if let r = t.range(of: marker), let end = t.range(of: "<|im_end|>", range: r.upperBound..<t.endIndex) {
            let system = String(t[r.upperBound..<end.lowerBound])
            if !system.contains("{") { prompt += "<|im_start|>system\n\(system)<|im_end|>\n" }   // a literal default
        }
        return prompt + "<|im_start|>user\n\(user)<|im_end|>\n<|im_start|>assistant\n"
    }
}
