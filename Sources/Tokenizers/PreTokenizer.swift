// Pre-tokenizers of byte-level BPE models: the regular expressions of GPT-2, SmolLM2 ("smollm":
// every number character on its own first, then GPT-2's), Llama 3 ("llama-bpe") and Qwen2,
// written as scanners over Unicode scalars that make exactly the regexes' leftmost choices
// (alternatives in order, greedy runs, the `\s+(?!\S)` backtrack), as Hugging Face `tokenizers`
// (Oniguruma) and llama.cpp apply them. Categories: L = letters (Lu Ll Lt Lm Lo), N = numbers
// (Nd Nl No), whitespace = the Unicode White_Space property.
//
// GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Qwen2:   as Llama 3 with \p{N} (one number character) instead of \p{N}{1,3}

public enum PreTokenizer: String, Sendable, CaseIterable {
    case gpt2
    case smollm
    case llama3 = "llama-bpe"
    case qwen2

    /// The pieces of `text`, in order; their concatenation is `text`.
    public func split(_ text: String) -> [Substring.UnicodeScalarView] {
        let s = Array(text.unicodeScalars)
        var out: [Range<Int>] = []
        switch self {
        case .gpt2: Self.gpt2(s, 0..<s.count, into: &out)
        case .smollm:
            var start = 0
            for i in 0..<s.count where Self.isNumber(s[i]) {   // every number character alone, GPT-2 on the rest
                if start < i { Self.gpt2(s, start..<i, into: &out) }
                out.append(i..<(i + 1))
                start = i + 1
            }
            if start < s.count { Self.gpt2(s, start..<s.count, into: &out) }
        case .llama3: Self.llama3(s, 0..<s.count, maxDigits: 3, into: &out)
        case .qwen2: Self.llama3(s, 0..<s.count, maxDigits: 1, into: &out)
        }
        // The pieces are in order: walk one index along the text (offsetBy from the start for
        // every piece made a 1 MB text take minutes).
        let view = text.unicodeScalars
        var at = view.startIndex, atOffset = 0
        return out.map { r in
            let a = view.index(at, offsetBy: r.lowerBound - atOffset), b = view.index(a, offsetBy: r.count)
            at = b; atOffset = r.upperBound
            return view[a..<b]
        }
    }

    // MARK: - Categories

    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    static func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }
    static func isOther(_ c: Unicode.Scalar) -> Bool { !isSpace(c) && !isLetter(c) && !isNumber(c) }
    static func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }

    /// The end of the run of `pred` from `i` (i if none).
    static func run(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, _ pred: (Unicode.Scalar) -> Bool) -> Int {
        var j = i
        while j < end && pred(s[j]) { j += 1 }
        return j
    }

    /// 's 't 're 've 'm 'll 'd at i (case-insensitively when `ignoreCase`): the end, or nil.
    static func contraction(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, ignoreCase: Bool) -> Int? {
        guard s[i] == "'", i + 1 < end else { return nil }
        func at(_ k: Int) -> Unicode.Scalar? {
            guard k < end else { return nil }
            let c = s[k]
            return ignoreCase && c.value < 128 ? Unicode.Scalar(UInt8(c.value).lowercasedASCII) : c
        }
        if let c = at(i + 1), "stmd".unicodeScalars.contains(c) { return i + 2 }
        for pair in ["re", "ve", "ll"] {
            let p = Array(pair.unicodeScalars)
            if at(i + 1) == p[0], at(i + 2) == p[1] { return i + 3 }
        }
        return nil
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar i: the whole run if it ends the text or is followed
    /// by whitespace… (it always is, by construction) — else the run minus its last scalar, unless
    /// that leaves nothing, in which case the single scalar.
    static func whitespace(_ s: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int {
        let j = run(s, i, end, isSpace)
        if j == end || j - i == 1 { return j }
        return j - 1
    }

    // MARK: - GPT-2

    static func gpt2(_ s: [Unicode.Scalar], _ range: Range<Int>, into out: inout [Range<Int>]) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let c = s[i]
            var j: Int
            if let k = contraction(s, i, end, ignoreCase: false) {
                j = k
            } else {
                let space = c == " " && i + 1 < end ? 1 : 0   // ` ?` of the next three alternatives
                let d = s[min(i + space, end - 1)]
                if isLetter(c) || (space == 1 && isLetter(d)) {
                    j = run(s, i + space, end, isLetter)
                } else if isNumber(c) || (space == 1 && isNumber(d)) {
                    j = run(s, i + space, end, isNumber)
                } else if isOther(c) || (space == 1 && isOther(d)) {
                    j = run(s, i + space, end, isOther)
                } else {
                    j = whitespace(s, i, end)
                }
            }
            out.append(i..<j)
            i = j
        }
    }

    // MARK: - Llama 3 / Qwen2

    static func llama3(_ s: [Unicode.Scalar], _ range: Range<Int>, maxDigits: Int, into out: inout [Range<Int>]) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let c = s[i]
            var j: Int
            if let k = contraction(s, i, end, ignoreCase: true) {
                j = k
            } else if isLetter(c) {                                                    // [^\r\n\p{L}\p{N}]?\p{L}+
                j = run(s, i, end, isLetter)
            } else if !isNewline(c) && !isNumber(c) && i + 1 < end && isLetter(s[i + 1]) {
                j = run(s, i + 1, end, isLetter)
            } else if isNumber(c) {                                                    // \p{N}{1,maxDigits}
                j = i
                while j < end && j - i < maxDigits && isNumber(s[j]) { j += 1 }
            } else if isOther(c) || (c == " " && i + 1 < end && isOther(s[i + 1])) {   //  ?[^\s\p{L}\p{N}]+[\r\n]*
                j = run(s, run(s, c == " " ? i + 1 : i, end, isOther), end, isNewline)
            } else {
                // \s*[\r\n]+ : the longest whitespace run that ends in a newline, if any.
                let w = run(s, i, end, isSpace)
                var lastNewline = -1
                for k in i..<w where isNewline(s[k]) { lastNewline = k }
                if lastNewline >= 0 {
                    j = run(s, lastNewline + 1, end, isNewline)
                } else {
                    j = whitespace(s, i, end)
                }
            }
            out.append(i..<j)
            i = j
        }
    }
}

private extension UInt8 {
    var lowercasedASCII: UInt8 { self >= 65 && self <= 90 ? self + 32 : self }
}
