// A Hugging Face tokenizer.json as a BPETokenizer: model BPE (vocab, merges as "a b" strings or
// [a, b] pairs, ignore_merges), a byte-level pre-tokenizer — ByteLevel alone (GPT-2), Digits
// (individual) then ByteLevel (SmolLM2), or a Split by Llama 3's / Qwen2's regex then ByteLevel —
// and added tokens (special ones become special tokens). Anything else is refused by name.

import Foundation

extension BPETokenizer {
    public static func fromTokenizerJSON(_ url: URL, chatTemplate: String? = nil) throws -> BPETokenizer {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw TokenizerError("cannot read \(url.path): \(error.localizedDescription)") }
        return try fromTokenizerJSON(data: data, chatTemplate: chatTemplate, file: url.path)
    }

    /// `bos`/`eos` name the ids when known (a checkpoint's metadata, tokenizer_config.json);
    /// otherwise they are guessed from the special tokens' conventional names.
    public static func fromTokenizerJSON(data: Data, chatTemplate: String? = nil, bos: Int? = nil, eos: Int? = nil,
                                         file: String = "tokenizer.json") throws -> BPETokenizer {
        let url = URL(fileURLWithPath: file)
        guard let j = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError("\(url.path) is not a JSON object")
        }
        guard let model = j["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE",
              let vocab = model["vocab"] as? [String: Int] else {
            throw TokenizerError("\(url.path): only BPE models with a vocab are supported (model.type '\((j["model"] as? [String: Any])?["type"] ?? "?")')")
        }
        var merges: [(String, String)] = []
        for m in model["merges"] as? [Any] ?? [] {
            if let s = m as? String {
                let p = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard p.count == 2 else { throw TokenizerError("\(url.path): merge '\(s)' is not two tokens") }
                merges.append((String(p[0]), String(p[1])))
            } else if let a = m as? [String], a.count == 2 {
                merges.append((a[0], a[1]))
            } else {
                throw TokenizerError("\(url.path): a merge is neither \"a b\" nor [a, b]")
            }
        }
        var specials: [String: Int] = [:], maxId = vocab.values.max() ?? -1
        var added: [(String, Int)] = []
        for t in j["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = t["id"] as? Int, let content = t["content"] as? String else { continue }
            added.append((content, id)); maxId = max(maxId, id)
            specials[content] = id
        }
        var tokens = [String](repeating: "", count: maxId + 1)
        for (t, id) in vocab where id >= 0 { tokens[id] = t }
        for (t, id) in added { tokens[id] = t }
        let pre = try preTokenizer(j["pre_tokenizer"], file: url.path)
        func id(_ key: String) -> Int? { (j[key] as? String).flatMap { vocab[$0] } }
        return try BPETokenizer(tokens: tokens, merges: merges, pre: pre, specialTokens: specials,
                                bos: bos ?? specials["<|endoftext|>"] ?? specials["<s>"] ?? specials["<|begin_of_text|>"],
                                eos: eos ?? specials["<|im_end|>"] ?? specials["</s>"] ?? specials["<|endoftext|>"],
                                chatTemplate: chatTemplate, ignoreMerges: model["ignore_merges"] as? Bool,
                                unknown: (model["unk_token"] as? String).flatMap { vocab[$0] })
    }

    static func preTokenizer(_ value: Any?, file: String) throws -> PreTokenizer {
        guard let p = value as? [String: Any], let type = p["type"] as? String else {
            throw TokenizerError("\(file): no pre_tokenizer; byte-level BPE needs one")
        }
        func isByteLevel(_ q: [String: Any], regex: Bool) -> Bool {
            q["type"] as? String == "ByteLevel" && (q["add_prefix_space"] as? Bool ?? false) == false
                && (q["use_regex"] as? Bool ?? true) == regex
        }
        if isByteLevel(p, regex: true) { return .gpt2 }
        if type == "Sequence", let list = p["pretokenizers"] as? [[String: Any]], list.count == 2 {
            if list[0]["type"] as? String == "Digits", list[0]["individual_digits"] as? Bool == true, isByteLevel(list[1], regex: true) {
                return .smollm
            }
            if list[0]["type"] as? String == "Split", let pattern = (list[0]["pattern"] as? [String: Any])?["Regex"] as? String,
               isByteLevel(list[1], regex: false) {
                if pattern.contains("\\p{N}{1,3}") { return .llama3 }
                if pattern.contains("\\p{N}") { return .qwen2 }
            }
        }
        let text = (try? JSONSerialization.data(withJSONObject: p)).map { String(decoding: $0, as: UTF8.self) } ?? type
        throw TokenizerError("\(file): pre_tokenizer \(text.prefix(200)) is not supported (GPT-2's, SmolLM2's, Llama 3's and Qwen2's are)")
    }
}

// MARK: - Writing

extension PreTokenizer {
    /// The Hugging Face `pre_tokenizer` object that splits text as this one does (`tokenizers`
    /// produces the same pieces; the reader above maps each back to this case).
    var tokenizerJSON: [String: Any] {
        let byteLevel: (Bool) -> [String: Any] = { regex in
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex]
        }
        // Llama 3's split pattern; Qwen2's differs only in taking numbers one digit at a time.
        let llama = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        switch self {
        case .gpt2: return byteLevel(true)
        case .smollm:
            return ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(true)]]
        case .llama3, .qwen2:
            let pattern = self == .llama3 ? llama : llama.replacingOccurrences(of: #"\p{N}{1,3}"#, with: #"\p{N}"#)
            return ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false], byteLevel(false)]]
        }
    }
}

extension BPETokenizer {
    /// The merges in rank order, as "a b" strings.
    public var mergeStrings: [String] { mergeList.map { "\($0.0) \($0.1)" } }

    /// This tokenizer as a Hugging Face tokenizer.json: what `fromTokenizerJSON` reads back to the
    /// same encoder, and what `tokenizers`/transformers load (byte-level decoder, special tokens as
    /// added tokens). BOS, EOS and the chat template are not part of the format: they travel in
    /// tokenizer_config.json, or in a checkpoint's metadata.
    public func tokenizerJSON() throws -> Data {
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }   // special tokens too, as Hugging Face writes them
        let added: [[String: Any]] = specialTokens.sorted { $0.value < $1.value }.map { content, id in
            ["id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
        }
        var model: [String: Any] = ["type": "BPE", "dropout": NSNull(), "continuing_subword_prefix": NSNull(),
                                    "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false,
                                    "ignore_merges": ignoreMerges, "vocab": vocab, "merges": mergeStrings]
        model["unk_token"] = unknown.map { tokens[$0] } ?? NSNull()
        let json: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added, "normalizer": NSNull(),
            "pre_tokenizer": pre.tokenizerJSON,
            "post_processor": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false],
            "decoder": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "model": model,
        ]
        do { return try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .withoutEscapingSlashes]) } catch {
            throw TokenizerError("cannot write the tokenizer as JSON: \(error)")
        }
    }
}
