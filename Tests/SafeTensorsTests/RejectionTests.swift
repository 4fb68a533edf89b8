// RejectionTests.swift — one test per validation rule of SafeTensorsFile(data:): every malformed
// file must throw SafeTensorsError whose message names the offending tensor or field and the
// fact that is wrong. Files are hand-built with rawFile(header:data:) so each test breaks exactly
// one rule. Round trips and valid-file behaviour are covered in RoundTripTests.swift.

import Foundation
import Testing
@testable import SafeTensors

@Suite struct RejectionTests {
    /// A valid 1-tensor header for a 4-byte F32 `w`, used as the baseline that each test breaks.
    static func entry(_ name: String = "w", dtype: String = "\"F32\"", shape: String = "[1]", offsets: String = "[0,4]") -> String {
        "\"\(name)\":{\"dtype\":\(dtype),\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }

    @Test func baselineIsValid() throws {
        let f = try SafeTensorsFile(data: rawFile(header: "{" + Self.entry() + "}", data: [0, 0, 0x80, 0x3F]))
        #expect(try f.floats("w") == [1])
        // Leading/trailing JSON whitespace (space padding) is accepted.
        let padded = try SafeTensorsFile(data: rawFile(header: " \n{" + Self.entry() + "}\t      ", data: [0, 0, 0x80, 0x3F]))
        #expect(padded.names == ["w"])
    }

    @Test func fileShorterThan8Bytes() {
        for n in 0..<8 {
            expectRejected(Data(repeating: 1, count: n), mentioning: ["\(n) bytes", "shorter than the 8-byte"])
        }
    }

    @Test func headerLengthZero() {
        expectRejected(rawFile(headerBytes: [], data: [1, 2, 3]), mentioning: ["header length is 0"])
    }

    @Test func headerLengthLargerThanFile() {
        let header = Array("{}".utf8)
        expectRejected(rawFile(headerBytes: header, declaredLength: 3), mentioning: ["header length 3", "larger than the 2 bytes"])
        expectRejected(rawFile(headerBytes: header, declaredLength: 99_999_999), mentioning: ["99999999", "larger"])
    }

    @Test func headerLengthOver100MB() {
        for length: UInt64 in [100_000_001, 1 << 40, .max] {
            expectRejected(rawFile(headerBytes: Array("{}".utf8), declaredLength: length), mentioning: ["\(length)", "100 MB"])
        }
    }

    @Test func headerNotUTF8() {
        var bytes = Array("{\"w\":{}}".utf8)
        bytes[2] = 0xFF
        expectRejected(rawFile(headerBytes: bytes), mentioning: ["not valid UTF-8"])
        // Overlong encoding and a lone continuation byte.
        expectRejected(rawFile(headerBytes: [0x7B, 0x22, 0xC0, 0xAF, 0x22, 0x7D]), mentioning: ["UTF-8"])
        expectRejected(rawFile(headerBytes: [0x7B, 0x80, 0x7D]), mentioning: ["UTF-8"])
    }

    @Test func headerNotJSON() {
        let cases = ["{", "{\"w\" 1}", "{\"w\":}", "{'w':1}", "{\"w\":1,}", "{} x", "{\"a\":tru}", "{\"a\":01}",
                     "{\"a\":1.}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"tab\there\"}", "{\"a\":[1 2]}", "\u{0}"]
        for text in cases {
            expectRejected(rawFile(header: text), mentioning: ["not valid JSON", "header byte"])
        }
    }

    @Test func headerDeeplyNestedIsRejectedNotCrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        expectRejected(rawFile(header: "{\"w\":" + deep + "}"), mentioning: ["nesting deeper"])
    }

    @Test func headerNotAnObject() {
        expectRejected(rawFile(header: "[1,2]"), mentioning: ["must be a JSON object", "an array"])
        expectRejected(rawFile(header: "\"str\""), mentioning: ["must be a JSON object", "a string"])
        expectRejected(rawFile(header: "null    "), mentioning: ["must be a JSON object", "null"])
    }

    @Test func entryNotAnObject() {
        expectRejected(rawFile(header: "{\"w\":5}"), mentioning: ["'w'", "must be an object", "a number"])
        expectRejected(rawFile(header: "{\"w\":[0,4]}"), mentioning: ["'w'", "an array"])
    }

    @Test func missingOrMistypedDType() {
        expectRejected(rawFile(header: "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "missing \"dtype\""])
        expectRejected(rawFile(header: "{" + Self.entry(dtype: "4") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "\"dtype\" of type a number"])
    }

    @Test func missingOrMistypedShape() {
        expectRejected(rawFile(header: "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "missing \"shape\""])
        expectRejected(rawFile(header: "{" + Self.entry(shape: "\"1\"") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "\"shape\" of type a string"])
        expectRejected(rawFile(header: "{" + Self.entry(shape: "[1.0]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "\"shape\" containing number 1.0"])
        expectRejected(rawFile(header: "{" + Self.entry(shape: "[\"1\"]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "\"shape\" containing a string"])
        expectRejected(rawFile(header: "{" + Self.entry(shape: "[99999999999999999999]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "fit in 64 bits"])
    }

    @Test func missingOrMistypedDataOffsets() {
        expectRejected(rawFile(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "missing \"data_offsets\""])
        expectRejected(rawFile(header: "{" + Self.entry(offsets: "{}") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "\"data_offsets\" of type an object"])
        expectRejected(rawFile(header: "{" + Self.entry(offsets: "[0,4,8]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "3 values", "exactly 2"])
        expectRejected(rawFile(header: "{" + Self.entry(offsets: "[-4,0]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "negative offset"])
        expectRejected(rawFile(header: "{" + Self.entry(offsets: "[0,null]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "containing null"])
    }

    @Test func duplicateKeyInsideEntry() {
        expectRejected(rawFile(header: "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "duplicate key \"dtype\""])
    }

    @Test func unknownDType() {
        expectRejected(rawFile(header: "{" + Self.entry(dtype: "\"Q7\"") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "unknown or unsupported dtype 'Q7'", "F32"])
        expectRejected(rawFile(header: "{" + Self.entry(dtype: "\"f32\"") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "'f32'"])
    }

    @Test func negativeDimension() {
        expectRejected(rawFile(header: "{" + Self.entry(shape: "[2,-2]", offsets: "[0,16]") + "}", data: Array(repeating: 0, count: 16)),
                       mentioning: ["'w'", "negative dimension -2"])
    }

    @Test func shapeProductOverflow() {
        expectRejected(rawFile(header: "{" + Self.entry(shape: "[4294967296,4294967296,16]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "element count overflows"])
        // Element count fits but bytes (× 8 for F64) do not.
        expectRejected(rawFile(header: "{" + Self.entry(dtype: "\"F64\"", shape: "[2305843009213693952]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "byte size overflows"])
    }

    @Test func sizeMismatch() {
        expectRejected(rawFile(header: "{" + Self.entry(shape: "[2]", offsets: "[0,4]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "spanning 4 bytes", "needs 8 bytes"])
        expectRejected(rawFile(header: "{" + Self.entry(dtype: "\"F64\"", shape: "[]", offsets: "[0,4]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "F64 needs 8 bytes"])
    }

    @Test func beginAfterEnd() {
        expectRejected(rawFile(header: "{" + Self.entry(shape: "[0]", offsets: "[4,0]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "begin 4 > end 0"])
    }

    @Test func offsetsBeyondDataSection() {
        expectRejected(rawFile(header: "{" + Self.entry(shape: "[2]", offsets: "[0,8]") + "}", data: [0, 0, 0, 0]),
                       mentioning: ["'w'", "beyond the end of the 4-byte data section"])
        expectRejected(rawFile(header: "{" + Self.entry(shape: "[0]", offsets: "[9223372036854775807,9223372036854775807]") + "}"),
                       mentioning: ["'w'", "beyond"])
    }

    @Test func overlappingTensors() {
        let header = "{" + Self.entry("a", shape: "[2]", offsets: "[0,8]") + "," + Self.entry("b", shape: "[2]", offsets: "[4,12]") + "}"
        expectRejected(rawFile(header: header, data: Array(repeating: 0, count: 12)), mentioning: ["'a'", "'b'", "overlaps"])
        // The same region twice under two names.
        let twice = "{" + Self.entry("a") + "," + Self.entry("b") + "}"
        expectRejected(rawFile(header: twice, data: [0, 0, 0, 0]), mentioning: ["'a'", "'b'", "overlaps"])
    }

    @Test func gapBetweenTensors() {
        let header = "{" + Self.entry("a", offsets: "[0,4]") + "," + Self.entry("b", offsets: "[8,12]") + "}"
        expectRejected(rawFile(header: header, data: Array(repeating: 0, count: 12)),
                       mentioning: ["gap of 4 unused bytes", "after tensor 'a'", "before tensor 'b'"])
        expectRejected(rawFile(header: "{" + Self.entry(offsets: "[4,8]") + "}", data: Array(repeating: 0, count: 8)),
                       mentioning: ["gap of 4", "start of the data section", "'w'"])
    }

    @Test func trailingGapAfterLastTensor() {
        expectRejected(rawFile(header: "{" + Self.entry() + "}", data: [0, 0, 0, 0, 9]),
                       mentioning: ["1 trailing unused bytes", "'w'"])
        expectRejected(rawFile(header: "{}", data: [1, 2]), mentioning: ["2 trailing unused bytes", "no tensors"])
    }

    @Test func duplicateTensorNames() {
        let header = "{" + Self.entry("w", offsets: "[0,4]") + "," + Self.entry("w", offsets: "[4,8]") + "}"
        expectRejected(rawFile(header: header, data: Array(repeating: 0, count: 8)), mentioning: ["duplicate tensor name 'w'"])
        // Same name spelled with an escape is still a duplicate.
        let escaped = "{" + Self.entry("w", offsets: "[0,4]") + "," + Self.entry("\\u0077", offsets: "[4,8]") + "}"
        expectRejected(rawFile(header: escaped, data: Array(repeating: 0, count: 8)), mentioning: ["duplicate tensor name 'w'"])
        expectRejected(rawFile(header: "{\"__metadata__\":{},\"__metadata__\":{}}"), mentioning: ["more than one \"__metadata__\""])
    }

    @Test func metadataMustBeStrings() {
        expectRejected(rawFile(header: "{\"__metadata__\":{\"epoch\":3}}"), mentioning: ["__metadata__", "'epoch'", "must be a string", "a number"])
        expectRejected(rawFile(header: "{\"__metadata__\":{\"a\":\"x\",\"nested\":{}}}"), mentioning: ["'nested'", "an object"])
        expectRejected(rawFile(header: "{\"__metadata__\":[\"a\"]}"), mentioning: ["__metadata__", "must be an object", "an array"])
        expectRejected(rawFile(header: "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}"), mentioning: ["duplicate \"__metadata__\" key 'k'"])
        let ok = try? SafeTensorsFile(data: rawFile(header: "{\"__metadata__\":{\"k\":\"caf\\u00e9 \\ud83d\\ude00\"}}"))
        #expect(ok?.metadata == ["k": "café 😀"])
    }

    @Test func boolBytesMustBeZeroOrOne() throws {
        let header = "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[2,2],\"data_offsets\":[0,4]}}"
        let f = try SafeTensorsFile(data: rawFile(header: header, data: [1, 0, 2, 1]))
        expectError(mentioning: ["'m'", "element 2", "byte value 2", "0 or 1"]) { _ = try f.bools("m") }
        expectError(mentioning: ["'m'", "element 2"]) { _ = try f.int32s("m") }
    }

    @Test func int64OutOfInt32Range() throws {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes[8 + 4] = 1  // second element = 2^32
        let header = "{\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}"
        let f = try SafeTensorsFile(data: rawFile(header: header, data: bytes))
        expectError(mentioning: ["'i'", "element 1", "4294967296", "Int32"]) { _ = try f.int32s("i") }
    }

    @Test func readErrorsNameThePath() throws {
        let missing = URL(fileURLWithPath: "/nonexistent-dir-\(UUID().uuidString)/model.safetensors")
        expectError(mentioning: [missing.path, "does not exist"]) { _ = try SafeTensorsFile(contentsOf: missing) }
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        expectError(mentioning: [dir.path, "directory"]) { _ = try SafeTensorsFile(contentsOf: dir) }
        let bad = dir.appendingPathComponent("bad.safetensors")
        try Data([1, 2, 3]).write(to: bad)
        expectError(mentioning: [bad.path, "shorter than the 8-byte"]) { _ = try SafeTensorsFile(contentsOf: bad) }
    }

    @Test func dataSliceWithNonZeroStartIndexParses() throws {
        var w = SafeTensorsWriter()
        try w.add("x", shape: [2], doubles: [1.5, -2])
        let padded = Data([9, 9, 9]) + w.serialized()
        let slice = padded[3...]
        #expect(slice.startIndex == 3)
        let f = try SafeTensorsFile(data: slice)
        #expect(try f.doubles("x") == [1.5, -2])
    }
}
