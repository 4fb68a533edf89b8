// Byte-level BPE (GPT-2 and its descendants: SmolLM2, Llama 3, Qwen2), read from GGUF metadata or a
// Hugging Face tokenizer.json. Encoding: special tokens are cut out of the text first (when asked),
// every other stretch is split by the pre-tokenizer, each piece's UTF-8 bytes become GPT-2's
// byte-level characters, and BPE merges the adjacent pair of lowest rank until none is left (with
// `ignoreMerges`, a piece that is itself a token is taken whole, as Llama 3's tokenizer does).
// Decoding maps byte-level characters back to bytes; `StreamDecoder` releases text only at UTF-8
// character boundaries, so streamed output never shows half a character.

import Foundation

public struct TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class BPETokenizer: @unchecked Sendable {
    public let tokens: [String]
    public let pre: PreTokenizer
    public let ignoreMerges: Bool
    /// Token ids that are matched verbatim in the text (control and user-defined tokens).
    public let specialTokens: [String: Int]
    public let bos: Int?, eos: Int?
    /// The end-of-turn token of a chat template (ChatML's <|im_end|>), if the vocabulary has one.
    public let endOfTurn: Int?
    /// The model's chat template (Jinja source), if any.
    public let chatTemplate: String?
    private let ids: [String: Int]
    private let ranks: [Pair: Int]
    /// The merges in rank order (duplicates dropped), for writing the tokenizer out.
    let mergeList: [(String, String)]
    private var cache: [String: [Int]] = [:]
    private let lock = NSLock()

    struct Pair: Hashable { let a: String, b: String }

    /// The id of a byte no token covers (some vocabularies lack rare control bytes): nil drops it,
    /// as `tokenizers`' BPE without an unknown token does.
    public let unknown: Int?

    public init(tokens: [String], merges: [(String, String)], pre: PreTokenizer, specialTokens: [String: Int] = [:],
                bos: Int? = nil, eos: Int? = nil, chatTemplate: String? = nil, ignoreMerges: Bool? = nil, unknown: Int? = nil) throws {
        self.tokens = tokens
        var ids: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = i }
        self.ids = ids
        var ranks: [Pair: Int] = [:], list: [(String, String)] = []
        for (r, m) in merges.enumerated() where ranks[Pair(a: m.0, b: m.1)] == nil {
            ranks[Pair(a: m.0, b: m.1)] = r
            list.append(m)
        }
        self.ranks = ranks
        mergeList = list
        self.pre = pre
        self.ignoreMerges = ignoreMerges ?? (pre == .llama3 || pre == .qwen2)
        self.specialTokens = specialTokens
        for (s, id) in specialTokens where id < 0 || id >= tokens.count {
            throw TokenizerError("special token '\(s)' has id \(id), outside the vocabulary of \(tokens.count)")
        }
        self.bos = bos; self.eos = eos; self.chatTemplate = chatTemplate
        endOfTurn = ids["<|im_end|>"] ?? ids["<|eot_id|>"] ?? ids["<|endoftext|>"]
        self.unknown = unknown
        if let unknown, unknown < 0 || unknown >= tokens.count { throw TokenizerError("unknown-token id \(unknown) is outside the vocabulary") }
        guard ids[String(ByteLevel.character(UInt8(ascii: "a")))] != nil, ids[String(ByteLevel.character(0x20))] != nil else {
            throw TokenizerError("the vocabulary has no byte-level tokens for 'a' or ' ': not a byte-level BPE vocabulary")
        }
    }

    public var count: Int { tokens.count }

    // MARK: - Encoding

    /// The ids of `text` (no BOS). With `parseSpecial`, special tokens written in the text (e.g.
    /// "<|im_start|>") become their ids; otherwise they are ordinary text.
    public func encode(_ text: String, parseSpecial: Bool = false) -> [Int] {
        var out: [Int] = []
        for (piece, special) in splitSpecial(text, enabled: parseSpecial) {
            if let id = special { out.append(id); continue }
            for word in pre.split(piece) { out += encodeWord(String(word)) }
        }
        return out
    }

    /// Stretches of text and the special tokens between them (longest match first).
    private func splitSpecial(_ text: String, enabled: Bool) -> [(String, Int?)] {
        guard enabled, !specialTokens.isEmpty else { return [(text, nil)] }
        let specials = specialTokens.keys.sorted { $0.count > $1.count }
        var out: [(String, Int?)] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            var best: (Range<Substring.Index>, String)? = nil
            for s in specials {
                if let r = rest.range(of: s), best == nil || r.lowerBound < best!.0.lowerBound { best = (r, s) }
            }
            guard let (r, s) = best else { out.append((String(rest), nil)); break }
            if r.lowerBound > rest.startIndex { out.append((String(rest[rest.startIndex..<r.lowerBound]), nil)) }
            out.append(("", specialTokens[s]))
            rest = rest[r.upperBound...]
        }
        return out
    }

    /// BPE of one pre-tokenized piece.
    private func encodeWord(_ word: String) -> [Int] {
        lock.lock(); let hit = cache[word]; lock.unlock()
        if let hit { return hit }
        let chars = word.utf8.map { String(ByteLevel.character($0)) }
        var result: [Int]
        if ignoreMerges, let id = ids[chars.joined()] {
            result = [id]
        } else {
            var symbols = chars
            while symbols.count > 1 {
                var best = Int.max, at = -1
                for k in 0..<(symbols.count - 1) {
                    if let r = ranks[Pair(a: symbols[k], b: symbols[k + 1])], r < best { best = r; at = k }
                }
                if at < 0 { break }
                // Merge every occurrence of the best pair, left to right (as tokenizers and llama.cpp do).
                let a = symbols[at], b = symbols[at + 1]
                var merged: [String] = [], k = 0
                while k < symbols.count {
                    if k + 1 < symbols.count && symbols[k] == a && symbols[k + 1] == b { merged.append(a + b); k += 2 } else { merged.append(symbols[k]); k += 1 }
                }
                symbols = merged
            }
            result = symbols.flatMap { s -> [Int] in
                if let id = ids[s] { return [id] }
                return s.unicodeScalars.compactMap { ids[String($0)] ?? unknown }   // a byte with no token
            }
        }
        lock.lock(); if cache.count < 1 << 16 { cache[word] = result }; lock.unlock()
        return result
    }

    // MARK: - Decoding

    /// The bytes of `ids` (special tokens as their text).
    public func bytes(_ ids: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids where id >= 0 && id < tokens.count {
            let t = tokens[id]
            if specialTokens[t] == id { out += Array(t.utf8); continue }
            for c in t.unicodeScalars { if let b = ByteLevel.byte(c) { out.append(b) } else { out += Array(String(c).utf8) } }
        }
        return out
    }

    /// The text of `ids` (invalid UTF-8, e.g. a cut-off character, becomes U+FFFD).
    public func decode(_ ids: [Int]) -> String { String(decoding: bytes(ids), as: UTF8.self) }

    /// The token's piece as text (for display; byte-level characters mapped back).
    public func piece(_ id: Int) -> String { decode([id]) }

    // MARK: - Construction

    /// From GGUF tokenizer metadata: tokens, merges ("a b"), token types (3 control, 4 user
    /// defined: special), the pre-tokenizer name, BOS/EOS ids, chat template.
    public static func fromGGUF(model: String?, pre: String?, tokens: [String], merges: [String], tokenTypes: [Int]?,
                                bos: Int?, eos: Int?, chatTemplate: String?) throws -> BPETokenizer {
        guard model == "gpt2" else {
            throw TokenizerError("tokenizer.ggml.model '\(model ?? "(none)")' is not supported; byte-level BPE ('gpt2') is")
        }
        let name = pre ?? "gpt2"
        let p: PreTokenizer
        switch name {
        case "default", "gpt2", "gpt-2": p = .gpt2
        case "smollm": p = .smollm
        case "llama-bpe", "llama3", "llama-v3": p = .llama3
        case "qwen2": p = .qwen2
        default: throw TokenizerError("pre-tokenizer '\(name)' is not supported (gpt2, smollm, llama-bpe and qwen2 are)")
        }
        let pairs = try merges.map { m -> (String, String) in
            let parts = m.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw TokenizerError("merge '\(m)' is not two tokens separated by a space") }
            return (String(parts[0]), String(parts[1]))
        }
        var specials: [String: Int] = [:]
        if let types = tokenTypes {
            guard types.count == tokens.count else { throw TokenizerError("\(types.count) token types for \(tokens.count) tokens") }
            for (i, t) in types.enumerated() where t == 3 || t == 4 { specials[tokens[i]] = i }
        }
        return try BPETokenizer(tokens: tokens, merges: pairs, pre: p, specialTokens: specials, bos: bos, eos: eos, chatTemplate: chatTemplate)
    }
}

/// GPT-2's byte ↔ character map: printable Latin-1 bytes stand for themselves, the other 68 are
/// shifted to U+0100….
public enum ByteLevel {
    static let table: [Unicode.Scalar] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var chars = printable
        var n = 0
        for b in 0..<256 where !printable.contains(b) { printable.append(b); chars.append(256 + n); n += 1 }
        var t = [Unicode.Scalar](repeating: " ", count: 256)
        for (b, c) in zip(printable, chars) { t[b] = Unicode.Scalar(UInt32(c))! }
        return t
    }()
    static let inverse: [UInt32: UInt8] = {
        var d: [UInt32: UInt8] = [:]
        for (b, c) in table.enumerated() { d[c.value] = UInt8(b) }
        return d
    }()

    public static func character(_ b: UInt8) -> Character { Character(table[Int(b)]) }
    public static func byte(_ c: Unicode.Scalar) -> UInt8? { inverse[c.value] }
}

/// Releases decoded text at UTF-8 character boundaries only.
public struct StreamDecoder {
    private var pending: [UInt8] = []
    public init() {}

    /// The text `bytes` complete (with whatever was held back), holding back an incomplete character.
    public mutating func push(_ bytes: [UInt8]) -> String {
        pending += bytes
        var cut = pending.count
        // Back up over a trailing incomplete sequence (at most 3 bytes of a 4-byte character).
        var k = pending.count - 1, seen = 0
        while k >= 0 && seen < 4 && pending[k] & 0xC0 == 0x80 { k -= 1; seen += 1 }
        if k >= 0 {
            let lead = pending[k], need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if need > pending.count - k { cut = k }
        }
        let out = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return out
    }

    /// Whatever is still held (a cut-off character becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}
