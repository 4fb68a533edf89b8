// Training text as token ids (docs/SPEC.md §6): PicoGPT's characters — the vocabulary is the sorted
// distinct characters (Unicode scalars) of the text, or a checkpoint's — or a pretrained model's
// BPE tokenizer (TextCodec). The first 90 % of the token stream trains, the rest validates; a
// batch is B random windows of T tokens (start uniform in [0, n − T)) and the same windows
// shifted by one as targets.

import Foundation

public struct Vocabulary: Equatable, Sendable {
    public let characters: [Unicode.Scalar]
    private let index: [Unicode.Scalar: Int32]

    public init(characters: [Unicode.Scalar]) {
        self.characters = characters
        var m: [Unicode.Scalar: Int32] = [:]
        for (i, c) in characters.enumerated() { m[c] = Int32(i) }
        index = m
    }

    /// The sorted distinct characters of `text`.
    public init(text: String) { self.init(characters: Array(Set(text.unicodeScalars)).sorted()) }
    /// From the string form stored in checkpoints (character i is token i).
    public init(string: String) { self.init(characters: Array(string.unicodeScalars)) }

    public var count: Int { characters.count }
    public var string: String { String(String.UnicodeScalarView(characters)) }

    /// Token ids of `text`; throws naming the first character outside the vocabulary.
    public func encode(_ text: String) throws -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for (i, ch) in text.unicodeScalars.enumerated() {
            guard let id = index[ch] else {
                throw ModelError("character \(String(reflecting: String(ch))) (U+\(String(ch.value, radix: 16, uppercase: true))) at offset \(i) is not in the model's \(count)-character vocabulary")
            }
            out.append(id)
        }
        return out
    }

    public func decode<S: Sequence>(_ ids: S) -> String where S.Element == Int32 {
        var s = String.UnicodeScalarView()
        for i in ids where i >= 0 && Int(i) < count { s.append(characters[Int(i)]) }
        return String(s)
    }
}

public struct TextDataset: @unchecked Sendable {
    /// How the text became ids: characters, or a BPE tokenizer.
    public let codec: TextCodec
    public let train: [Int32]
    public let validation: [Int32]

    /// The character vocabulary of a character-level dataset (nil for BPE).
    public var characters: Vocabulary? { if case .characters(let v) = codec { return v } else { return nil } }
    /// The number of distinct token ids the model must have.
    public var vocabularySize: Int { codec.count }

    /// Loads a UTF-8 text file. With `vocabulary`, the text must use only its characters
    /// (a model's vocabulary); otherwise the vocabulary is built from the text.
    public init(url: URL, vocabulary: Vocabulary? = nil, trainFraction: Double = 0.9) throws {
        try self.init(text: try Self.readText(url), vocabulary: vocabulary, trainFraction: trainFraction, source: url.path)
    }

    /// An empty text is refused by init(text:codec:), with or without a vocabulary built from it.
    public init(text: String, vocabulary: Vocabulary? = nil, trainFraction: Double = 0.9, source: String = "text") throws {
        try self.init(text: text, codec: .characters(vocabulary ?? Vocabulary(text: text)), trainFraction: trainFraction, source: source)
    }

    /// Loads a UTF-8 text file and encodes it with `codec` (a checkpoint's characters or tokenizer).
    public init(url: URL, codec: TextCodec, trainFraction: Double = 0.9) throws {
        try self.init(text: try Self.readText(url), codec: codec, trainFraction: trainFraction, source: url.path)
    }

    /// The UTF-8 text of a data file; the errors name the file and what to pass.
    static func readText(_ url: URL) throws -> String {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError("cannot read data file \(url.path): \(error.localizedDescription). Pass an existing UTF-8 text file with --data")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ModelError("data file \(url.path) is not valid UTF-8 text") }
        return text
    }

    public init(text: String, codec: TextCodec, trainFraction: Double = 0.9, source: String = "text") throws {
        guard !text.isEmpty else { throw ModelError("data file \(source) is empty; training needs text") }
        let tokens: [Int32]
        do { tokens = try codec.encode(text) } catch {
            throw ModelError("\(source): \(error) — train a new model on this data or use text the checkpoint's vocabulary covers")
        }
        let n = Int(Double(tokens.count) * trainFraction)
        self.codec = codec
        train = Array(tokens[..<n])
        validation = Array(tokens[n...])
    }

    /// `batch` random windows of `time` tokens from `split` and their next-token targets.
    public static func sample(_ split: [Int32], batch: Int, time: Int, rng: inout SplitMix64) -> (tokens: [Int32], targets: [Int32]) {
        precondition(split.count > time, "split of \(split.count) tokens is too short for windows of \(time)")
        var tok: [Int32] = [], tgt: [Int32] = []
        tok.reserveCapacity(batch * time); tgt.reserveCapacity(batch * time)
        for _ in 0..<batch {
            let start = rng.below(split.count - time)
            tok.append(contentsOf: split[start..<(start + time)])
            tgt.append(contentsOf: split[(start + 1)...(start + time)])
        }
        return (tok, tgt)
    }

    /// Checks that both splits are long enough for windows of `time` tokens.
    /// Throws unless a model of `vocabularySize` tokens can read these ids: a tokenizer may cover
    /// fewer ids than a (padded) embedding; characters must match exactly.
    public func checkFits(vocabularySize model: Int) throws {
        if characters == nil {
            guard vocabularySize <= model else {
                throw ModelError("the data's tokenizer has \(vocabularySize) tokens but the model's vocabulary has \(model)")
            }
        } else if vocabularySize != model {
            throw ModelError("the data has \(vocabularySize) distinct characters but the model's vocabulary has \(model); pass its training text with --data")
        }
    }

    public func validate(time: Int) throws {
        guard train.count > time, validation.count > time else {
            throw ModelError("the data has \(train.count) training and \(validation.count) validation tokens; windows of \(time) need more than \(time) in each (use a longer text or a smaller --context)")
        }
    }
}
