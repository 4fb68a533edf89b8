// Byte-level BPE against Hugging Face `tokenizers` (reference ids made by
// Tests/Resources/tokenizers/make_reference.py from SmolLM2's GGUF): SmolLM2's pre-tokenizer (digits
// alone, then GPT-2's regex), GPT-2's, Llama 3's and Qwen2's, all over SmolLM2's vocabulary, on
// Tiny Shakespeare and a stress text (contractions, digit runs, runs of spaces/newlines/tabs,
// accents, CJK, emoji with modifiers, code, odd Unicode whitespace). Decoding is exact; streamed
// decoding never splits a UTF-8 character.

import Foundation
import Testing
@testable import Tokenizers

enum TokenizerFixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Resources/tokenizers")
    static let smollm2 = try! BPETokenizer.fromTokenizerJSON(directory.appendingPathComponent("smollm2.tokenizer.json"))
    /// pre-tokenizer → text → ids.
    static let reference: [String: [String: [Int]]] = {
        let j = try! JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("reference.json"))) as! [String: Any]
        return (j["ids"] as! [String: Any]).mapValues { $0 as! [String: [Int]] }
    }()
    static func text(_ name: String) throws -> String {
        if name == "stress" { return try String(contentsOf: directory.appendingPathComponent("stress.txt"), encoding: .utf8) }
        let data = try String(contentsOf: directory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Data/tinyshakespeare.txt"), encoding: .utf8)
        return String(data.prefix(50_000))
    }
    static func ids(_ pre: String, _ text: String) -> [Int] { reference[pre]![text]! }

    /// SmolLM2's vocabulary and merges under another pre-tokenizer.
    static func with(_ pre: PreTokenizer) throws -> BPETokenizer {
        let t = smollm2
        let merges = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("smollm2.tokenizer.json"))) as! [String: Any]
        let pairs = ((merges["model"] as! [String: Any])["merges"] as! [Any]).map { m -> (String, String) in
            if let a = m as? [String] { return (a[0], a[1]) }
            let p = (m as! String).split(separator: " ", maxSplits: 1); return (String(p[0]), String(p[1]))
        }
        return try BPETokenizer(tokens: t.tokens, merges: pairs, pre: pre, specialTokens: t.specialTokens)
    }
}

@Suite("Byte-level BPE tokenizers")
struct TokenizersTests {
    @Test("SmolLM2's tokenizer gives tokenizers' and llama.cpp's ids", arguments: ["stress", "shakespeare"])
    func smollm2(_ name: String) throws {
        let t = TokenizerFixture.smollm2
        #expect(t.pre == .smollm && t.count == 49_152)
        let text = try TokenizerFixture.text(name)
        let ours = t.encode(text), theirs = TokenizerFixture.ids("smollm", name)
        #expect(ours == theirs, "first difference at \(zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(ours.count, theirs.count))")
        #expect(ours == TokenizerFixture.ids("llama.cpp smollm", name))   // llama.cpp (llama-cpp-python 0.3.36) on the GGUF agrees
        #expect(t.decode(ours) == text)
    }

    @Test("GPT-2's, Llama 3's and Qwen2's pre-tokenizers give tokenizers' ids",
          arguments: [PreTokenizer.gpt2, .llama3, .qwen2], ["stress", "shakespeare"])
    func otherPreTokenizers(_ pre: PreTokenizer, _ name: String) throws {
        let t = try TokenizerFixture.with(pre)
        let text = try TokenizerFixture.text(name)
        let ours = t.encode(text), theirs = TokenizerFixture.ids(pre.rawValue, name)
        #expect(ours == theirs, "first difference at \(zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(ours.count, theirs.count))")
    }

    @Test("a tokenizer written as tokenizer.json reads back to tokenizers' ids, specials, BOS/EOS and template",
          arguments: PreTokenizer.allCases)
    func writtenJSONRoundTrip(_ pre: PreTokenizer) throws {
        let t = pre == .smollm ? TokenizerFixture.smollm2 : try TokenizerFixture.with(pre)
        let data = try t.tokenizerJSON()
        let back = try BPETokenizer.fromTokenizerJSON(data: data, chatTemplate: "{{ messages }}", bos: 7, eos: 2)
        #expect(back.pre == pre && back.tokens == t.tokens && back.specialTokens == t.specialTokens)
        #expect(back.mergeStrings == t.mergeStrings && back.bos == 7 && back.eos == 2 && back.chatTemplate == "{{ messages }}")
        let text = try TokenizerFixture.text("stress")
        #expect(back.encode(text) == TokenizerFixture.ids(pre == .smollm ? "smollm" : pre.rawValue, "stress"))
        // What tokenizers itself makes of the written JSON was checked by hand for SmolLM2's (tokenizers
        // 0.23.3 and transformers' AutoTokenizer on export's tokenizer.json, llama.cpp 0.3.36 on its GGUF:
        // the reference ids of the stress text, results/smollm2/RESULTS.md).
        let j = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((j["added_tokens"] as? [Any])?.count == t.specialTokens.count)
    }

    @Test("pre-tokenizer pieces cover the text exactly, on every kind of character")
    func piecesCover() throws {
        let text = try TokenizerFixture.text("stress")
        for pre in PreTokenizer.allCases {
            #expect(pre.split(text).map { String($0) }.joined() == text, "\(pre)")
        }
        #expect(PreTokenizer.smollm.split("ab 123").map(String.init) == ["ab", " ", "1", "2", "3"])
        #expect(PreTokenizer.gpt2.split("a   b\n\nc").map(String.init) == ["a", "  ", " b", "\n", "\n", "c"])   // \s+(?!\S) backs off one
        #expect(PreTokenizer.llama3.split("12345 I'LL").map(String.init) == ["123", "45", " I", "'LL"])
    }

    @Test("special tokens are cut out only when asked; decoding them gives their text")
    func specials() throws {
        let t = TokenizerFixture.smollm2
        let start = try #require(t.specialTokens["<|im_start|>"])
        #expect(t.encode("<|im_start|>user", parseSpecial: true).first == start)
        #expect(!t.encode("<|im_start|>user").contains(start))
        #expect(t.decode(t.encode("<|im_start|>user\nhi<|im_end|>", parseSpecial: true)) == "<|im_start|>user\nhi<|im_end|>")
        #expect(t.endOfTurn == t.specialTokens["<|im_end|>"])
    }

    @Test("streamed decoding releases only whole UTF-8 characters and loses nothing")
    func streaming() throws {
        let t = TokenizerFixture.smollm2
        let text = try TokenizerFixture.text("stress")
        var s = StreamDecoder(), out = ""
        for id in t.encode(text) {
            let piece = s.push(t.bytes([id]))
            #expect(!piece.contains("\u{FFFD}"))
            out += piece
        }
        out += s.finish()
        #expect(out == text)
    }

    @Test("a vocabulary without byte tokens, a bad merge and an unknown pre-tokenizer are refused by name")
    func refusals() {
        #expect { try BPETokenizer(tokens: ["a", "b"], merges: [], pre: .gpt2) } throws: { "\($0)".contains("byte-level") }
        #expect { try BPETokenizer.fromGGUF(model: "gpt2", pre: "smollm", tokens: TokenizerFixture.smollm2.tokens, merges: ["nospace"],
                                            tokenTypes: nil, bos: nil, eos: nil, chatTemplate: nil) } throws: { "\($0)".contains("nospace") }
        #expect { try BPETokenizer.fromGGUF(model: "gpt2", pre: "falcon", tokens: [], merges: [], tokenTypes: nil, bos: nil, eos: nil,
                                            chatTemplate: nil) } throws: { "\($0)".contains("falcon") }
        #expect { try BPETokenizer.fromGGUF(model: "llama", pre: nil, tokens: [], merges: [], tokenTypes: nil, bos: nil, eos: nil,
                                            chatTemplate: nil) } throws: { "\($0)".contains("llama") }
    }
}
