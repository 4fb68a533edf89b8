// JSON.swift — a tiny, strict, recursive-descent JSON parser used only for safetensors headers.
// It parses RFC 8259 JSON from raw bytes into `HeaderJSON` values, keeping object members in file
// order (so duplicate keys stay visible — Foundation's JSONSerialization silently drops them),
// keeping numbers as their literal text (so integers are read exactly, never through Double),
// bounding nesting depth (no stack overflow on "[[[[…"), and never trapping on any input. It is
// not a general-purpose JSON library: no encoding, no streaming, no lenient extensions (comments,
// trailing commas, NaN), and it reports errors as `SafeTensorsError` with a header byte offset.

import Foundation

/// One parsed JSON value. Objects keep their members in order, duplicates included.
enum HeaderJSON: Sendable {
    case object([(key: String, value: HeaderJSON)])
    case array([HeaderJSON])
    case string(String)
    /// The number's literal text, already checked against the JSON number grammar.
    case number(String)
    case bool(Bool)
    case null

    /// A short name of the value's JSON type, for error messages.
    var typeName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    /// The value as an exact `Int` when it is an integer literal (no fraction, no exponent) that
    /// fits; nil otherwise (including for non-numbers).
    var exactInt: Int? {
        guard case let .number(text) = self else { return nil }
        var utf8 = Substring(text).utf8[...]
        var negative = false
        if utf8.first == UInt8(ascii: "-") { negative = true; utf8 = utf8.dropFirst() }
        guard !utf8.isEmpty else { return nil }
        var value = 0
        for byte in utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let digit = Int(byte - UInt8(ascii: "0"))
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            if o1 { return nil }
            let (next, o2) = negative ? times10.subtractingReportingOverflow(digit)
                                      : times10.addingReportingOverflow(digit)
            if o2 { return nil }
            value = next
        }
        return value
    }
}

/// Strict JSON parser over a byte buffer.
struct HeaderJSONParser {
    /// Maximum nesting depth of arrays/objects; a safetensors header needs 3.
    static let maxDepth = 64

    private let bytes: [UInt8]
    private var pos = 0

    private init(bytes: [UInt8]) { self.bytes = bytes }

    /// Parses exactly one JSON value, allowing only JSON whitespace around it.
    static func parse(_ bytes: [UInt8]) throws(SafeTensorsError) -> HeaderJSON {
        guard isValidUTF8(bytes) else {
            throw SafeTensorsError("safetensors header is not valid UTF-8; the file is corrupt or not a safetensors file")
        }
        var parser = HeaderJSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.pos == bytes.count else {
            throw parser.error("unexpected trailing content after the JSON value")
        }
        return value
    }

    /// Strict UTF-8 check (rejects overlong forms, surrogates, truncated sequences) using the
    /// standard library decoder, which unlike `String(validating:)` has no OS availability limits.
    static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    private func error(_ what: String) -> SafeTensorsError {
        SafeTensorsError("safetensors header is not valid JSON: \(what) at header byte \(pos); the file is corrupt or not a safetensors file")
    }

    private var current: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(SafeTensorsError) {
        guard current == byte else { throw error("expected \(what)") }
        pos += 1
    }

    private mutating func parseValue(depth: Int) throws(SafeTensorsError) -> HeaderJSON {
        guard let c = current else { throw error("unexpected end of input") }
        switch c {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try parseLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character")
        }
    }

    private mutating func parseLiteral(_ word: StaticString) throws(SafeTensorsError) {
        let count = word.utf8CodeUnitCount
        guard count <= bytes.count - pos else { throw error("truncated literal") }
        for i in 0..<count where bytes[pos + i] != word.utf8Start[i] {
            throw error("invalid literal")
        }
        pos += count
    }

    private mutating func parseObject(depth: Int) throws(SafeTensorsError) -> HeaderJSON {
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth) levels") }
        pos += 1  // '{'
        var members: [(key: String, value: HeaderJSON)] = []
        skipWhitespace()
        if current == UInt8(ascii: "}") { pos += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key in object") }
            let key = try parseString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':' after object key")
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append((key: key, value: value))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): pos += 1
            case UInt8(ascii: "}"): pos += 1; return .object(members)
            default: throw error("expected ',' or '}' in object")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(SafeTensorsError) -> HeaderJSON {
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth) levels") }
        pos += 1  // '['
        var elements: [HeaderJSON] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { pos += 1; return .array(elements) }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): pos += 1
            case UInt8(ascii: "]"): pos += 1; return .array(elements)
            default: throw error("expected ',' or ']' in array")
            }
        }
    }

    private mutating func parseNumber() throws(SafeTensorsError) -> String {
        let start = pos
        func isDigit(_ b: UInt8?) -> Bool { b.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
        if current == UInt8(ascii: "-") { pos += 1 }
        if current == UInt8(ascii: "0") {
            pos += 1
        } else if isDigit(current) {
            while isDigit(current) { pos += 1 }
        } else {
            throw error("invalid number")
        }
        if current == UInt8(ascii: ".") {
            pos += 1
            guard isDigit(current) else { throw error("invalid number: digit expected after '.'") }
            while isDigit(current) { pos += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            pos += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { pos += 1 }
            guard isDigit(current) else { throw error("invalid number: digit expected in exponent") }
            while isDigit(current) { pos += 1 }
        }
        return String(decoding: bytes[start..<pos], as: UTF8.self)
    }

    private mutating func parseHex4() throws(SafeTensorsError) -> UInt32 {
        guard bytes.count - pos >= 4 else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let digit: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in \\u escape")
            }
            value = value << 4 | digit
            pos += 1
        }
        return value
    }

    /// Parses a string starting at its opening quote. The buffer was validated as UTF-8 up front,
    /// so raw bytes are copied through; escapes are decoded (surrogate pairs must be complete).
    private mutating func parseString() throws(SafeTensorsError) -> String {
        pos += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard let c = current else { throw error("unterminated string") }
            switch c {
            case UInt8(ascii: "\""):
                pos += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                pos += 1
                guard let e = current else { throw error("unterminated escape") }
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if code >= 0xD800 && code <= 0xDBFF {
                        guard bytes.count - pos >= 2, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in \\u escape")
                        }
                        pos += 2
                        let low = try parseHex4()
                        guard low >= 0xDC00 && low <= 0xDFFF else { throw error("invalid low surrogate in \\u escape") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if code >= 0xDC00 && code <= 0xDFFF {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                    UTF8.encode(scalar) { out.append($0) }
                default:
                    throw error("invalid escape character")
                }
            case 0x00..<0x20:
                throw error("unescaped control character in string")
            default:
                out.append(c)
                pos += 1
            }
        }
    }
}
