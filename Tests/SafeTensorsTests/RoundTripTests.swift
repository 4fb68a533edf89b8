// RoundTripTests.swift — writer → reader round trips: F32/F64/I32 values (including a 0-d scalar
// and a zero-size tensor), metadata, header layout (length a multiple of 8, space padding, sorted
// keys, insertion-order data), deterministic bytes, dtype conversions on read (F16, BF16, I64,
// U8, BOOL from hand-built files) and the writer's own argument checks. Rejection of malformed
// files lives in RejectionTests.swift; file I/O in AtomicWriteTests.swift.

import Foundation
import Testing
@testable import SafeTensors

@Suite struct RoundTripTests {
    static func sampleWriter() throws -> SafeTensorsWriter {
        var w = SafeTensorsWriter(metadata: ["format": "pt", "note": "quote \" and \\ and\nnewline, ünïcødé ✓"])
        try w.add("z.weight", shape: [2, 3], floats: [1, -2.5, 3.25, .greatestFiniteMagnitude, -0.0, .leastNonzeroMagnitude])
        try w.add("a.f64", shape: [3], doubles: [Double.pi, -1e300, .leastNonzeroMagnitude])
        try w.add("m.ids", shape: [2, 2], int32s: [0, -1, .max, .min])
        try w.add("scalar", shape: [], floats: [42.5])
        try w.add("empty", shape: [0, 4], floats: [])
        try w.add("odd", shape: [1], int32s: [7])
        return w
    }

    @Test func roundTripValuesShapesAndMetadata() throws {
        let w = try Self.sampleWriter()
        let f = try SafeTensorsFile(data: w.serialized())
        #expect(f.metadata == w.metadata)
        #expect(Set(f.names) == ["z.weight", "a.f64", "m.ids", "scalar", "empty", "odd"])
        #expect(try f.floats("z.weight") == [1, -2.5, 3.25, .greatestFiniteMagnitude, -0.0, .leastNonzeroMagnitude])
        #expect(try f.floats("z.weight")[4].sign == .minus)
        #expect(try f.doubles("a.f64") == [Double.pi, -1e300, .leastNonzeroMagnitude])
        #expect(try f.int32s("m.ids") == [0, -1, .max, .min])
        #expect(try f.floats("scalar") == [42.5])
        #expect(try f.doubles("scalar") == [42.5])
        #expect(try f.floats("empty") == [])
        #expect(try f.int32s("odd") == [7])

        let z = try #require(f.info("z.weight"))
        #expect(z.dtype == .F32 && z.shape == [2, 3] && z.elementCount == 6 && z.byteRange.count == 24)
        let s = try #require(f.info("scalar"))
        #expect(s.shape == [] && s.elementCount == 1 && s.byteRange.count == 4)
        let e = try #require(f.info("empty"))
        #expect(e.shape == [0, 4] && e.elementCount == 0 && e.byteRange.isEmpty)
        #expect(try #require(f.info("a.f64")).dtype == .F64)
        #expect(try #require(f.info("m.ids")).dtype == .I32)
        #expect(f.info("missing") == nil)
    }

    @Test func layoutIsPaddedSortedContiguousAndInInsertionOrder() throws {
        let data = try Self.sampleWriter().serialized()
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        #expect(n % 8 == 0)
        #expect((8 + Int(n)) % 8 == 0)
        let header = try #require(String(data: data.subdata(in: 8..<(8 + Int(n))), encoding: .utf8))
        #expect(header.hasPrefix("{\"__metadata__\":{\"format\":\"pt\","))
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        #expect(trimmed.hasSuffix("}"))
        #expect(header.count - trimmed.count < 8)
        // Keys sorted: a.f64 < empty < m.ids < odd < scalar < z.weight.
        let order = ["\"a.f64\"", "\"empty\"", "\"m.ids\"", "\"odd\"", "\"scalar\"", "\"z.weight\""]
        let positions = order.compactMap { header.range(of: $0)?.lowerBound }
        #expect(positions.count == order.count && positions == positions.sorted())
        // Data in insertion order: z.weight first at offset 0, then a.f64, m.ids, scalar, empty, odd.
        let f = try SafeTensorsFile(data: data)
        #expect(f.names == ["z.weight", "a.f64", "m.ids", "scalar", "empty", "odd"])
        #expect(f.info("z.weight")?.byteRange == 0..<24)
        #expect(f.info("a.f64")?.byteRange == 24..<48)
        #expect(f.info("m.ids")?.byteRange == 48..<64)
        #expect(f.info("scalar")?.byteRange == 64..<68)
        #expect(f.info("empty")?.byteRange == 68..<68)
        #expect(f.info("odd")?.byteRange == 68..<72)
        #expect(data.count == 8 + Int(n) + 72)
        // Little-endian bytes of 1.0f at the start of the data section.
        #expect(Array(data[(8 + Int(n))..<(12 + Int(n))]) == [0x00, 0x00, 0x80, 0x3F])
    }

    @Test func serializationIsDeterministic() throws {
        var a = SafeTensorsWriter(metadata: ["b": "2", "a": "1", "c": "3"])
        var b = SafeTensorsWriter()
        b.metadata = ["c": "3", "a": "1", "b": "2"]
        for w in [0, 1] {
            var writer = w == 0 ? a : b
            try writer.add("x", shape: [2], floats: [1, 2])
            try writer.add("y", shape: [1], doubles: [3])
            if w == 0 { a = writer } else { b = writer }
        }
        #expect(a.serialized() == b.serialized())
        #expect(a.serialized() == a.serialized())
    }

    @Test func emptyWriterAndMetadataOnlyFiles() throws {
        let empty = try SafeTensorsFile(data: SafeTensorsWriter().serialized())
        #expect(empty.tensors.isEmpty && empty.metadata.isEmpty && empty.names.isEmpty)
        let meta = try SafeTensorsFile(data: SafeTensorsWriter(metadata: ["k": "v"]).serialized())
        #expect(meta.tensors.isEmpty && meta.metadata == ["k": "v"])
    }

    @Test func namesWithEscapesRoundTrip() throws {
        var w = SafeTensorsWriter()
        let weird = ["tab\there", "quote\"name", "back\\slash", "ctl\u{01}\u{1F}", "emoji 🧪", "slash/ok"]
        for (i, name) in weird.enumerated() { try w.add(name, shape: [1], int32s: [Int32(i)]) }
        let f = try SafeTensorsFile(data: w.serialized())
        for (i, name) in weird.enumerated() { #expect(try f.int32s(name) == [Int32(i)]) }
    }

    @Test func conversionsBetweenFloatTypes() throws {
        var w = SafeTensorsWriter()
        try w.add("f", shape: [3], floats: [0.1, -3, .leastNonzeroMagnitude])
        try w.add("d", shape: [3], doubles: [0.1, 1e300, -2])
        let f = try SafeTensorsFile(data: w.serialized())
        #expect(try f.doubles("f") == [Double(Float(0.1)), -3, Double(Float.leastNonzeroMagnitude)])
        let narrowed = try f.floats("d")
        #expect(narrowed[0] == Float(0.1) && narrowed[1] == .infinity && narrowed[2] == -2)
    }

    @Test func halfBFloatIntegerAndBoolDTypesFromHandBuiltFile() throws {
        // F16: 1.0, -2.0, 65504, smallest subnormal 2^-24, +inf; BF16: 1.0, -0.5;
        // I64: 5, -7; I16: -300; I8: -5; U8: 0, 1, 200; BOOL: 1, 0.
        let f16: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0x7C]
        let bf16: [UInt8] = [0x80, 0x3F, 0x00, 0xBF]
        let i64: [UInt8] = [5, 0, 0, 0, 0, 0, 0, 0, 0xF9, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        let i16: [UInt8] = [0xD4, 0xFE]
        let i8: [UInt8] = [0xFB]
        let u8: [UInt8] = [0, 1, 200]
        let bool: [UInt8] = [1, 0]
        let header = """
        {"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},\
        "b":{"dtype":"BF16","shape":[2],"data_offsets":[10,14]},\
        "l":{"dtype":"I64","shape":[2,1],"data_offsets":[14,30]},\
        "s":{"dtype":"I16","shape":[],"data_offsets":[30,32]},\
        "c":{"dtype":"I8","shape":[1],"data_offsets":[32,33]},\
        "u":{"dtype":"U8","shape":[3],"data_offsets":[33,36]},\
        "t":{"dtype":"BOOL","shape":[2],"data_offsets":[36,38]}}   
        """
        let f = try SafeTensorsFile(data: rawFile(header: header, data: f16 + bf16 + i64 + i16 + i8 + u8 + bool))
        #expect(try f.floats("h") == [1, -2, 65504, 0x1p-24, .infinity])
        #expect(try f.doubles("h") == [1, -2, 65504, 0x1p-24, .infinity])
        #expect(try f.floats("b") == [1, -0.5])
        #expect(try f.doubles("b") == [1, -0.5])
        #expect(try f.int32s("l") == [5, -7])
        #expect(try f.int32s("s") == [-300])
        #expect(try f.int32s("c") == [-5])
        #expect(try f.int32s("u") == [0, 1, 200])
        #expect(try f.int32s("t") == [1, 0])
        #expect(try f.bools("t") == [true, false])
        #expect(f.names == ["h", "b", "l", "s", "c", "u", "t"])
        #expect(f.tensors.map(\.dtype) == [.F16, .BF16, .I64, .I16, .I8, .U8, .BOOL])
        expectError(mentioning: ["'u'", "200", "0 or 1"]) { _ = try f.bools("u") }
    }

    @Test func halfToFloatCoversSpecialValues() {
        #expect(SafeTensorsFile.halfToFloat(0x8000).sign == .minus)
        #expect(SafeTensorsFile.halfToFloat(0x8000) == 0)
        #expect(SafeTensorsFile.halfToFloat(0xFC00) == -.infinity)
        #expect(SafeTensorsFile.halfToFloat(0x7E00).isNaN)
        #expect(SafeTensorsFile.halfToFloat(0x03FF) == Float(1023) * 0x1p-24)
        #expect(SafeTensorsFile.halfToFloat(0x0400) == 0x1p-14)
        #expect(SafeTensorsFile.halfToFloat(0x3555) == 0.333251953125)
    }

    @Test func accessorErrorsNameTheTensor() throws {
        let f = try SafeTensorsFile(data: Self.sampleWriter().serialized())
        expectError(mentioning: ["'nope'", "no tensor"]) { _ = try f.floats("nope") }
        expectError(mentioning: ["'m.ids'", "I32", "floats()"]) { _ = try f.floats("m.ids") }
        expectError(mentioning: ["'z.weight'", "F32", "int32s()"]) { _ = try f.int32s("z.weight") }
        expectError(mentioning: ["'a.f64'", "bools()"]) { _ = try f.bools("a.f64") }
        expectError(mentioning: ["'m.ids'", "doubles()"]) { _ = try f.doubles("m.ids") }
    }

    @Test func writerRejectsBadArguments() throws {
        var w = SafeTensorsWriter()
        try w.add("ok", shape: [2], floats: [1, 2])
        expectError(mentioning: ["'ok'", "already"]) { try w.add("ok", shape: [1], floats: [1]) }
        expectError(mentioning: ["empty name"]) { try w.add("", shape: [1], doubles: [1]) }
        expectError(mentioning: ["__metadata__", "reserved"]) { try w.add("__metadata__", shape: [1], int32s: [1]) }
        expectError(mentioning: ["'bad'", "[2, 3]", "6 elements", "5"]) { try w.add("bad", shape: [2, 3], floats: [1, 2, 3, 4, 5]) }
        expectError(mentioning: ["'neg'", "negative"]) { try w.add("neg", shape: [-1, -2], int32s: [1, 2]) }
        expectError(mentioning: ["'huge'", "overflows"]) { try w.add("huge", shape: [Int.max, 2], doubles: []) }
        expectError(mentioning: ["'scalar'", "1 elements", "0"]) { try w.add("scalar", shape: [], floats: []) }
        // Failed adds leave the writer unchanged.
        let f = try SafeTensorsFile(data: w.serialized())
        #expect(f.names == ["ok"])
    }

    /// A 4 MB tensor reads back exactly (how fast is a benchmark's business, not a test's).
    @Test func largeTensorReadsBack() throws {
        let count = 1 << 20  // 4 MB of F32
        let values = (0..<count).map { Float($0) * 0.5 }
        var w = SafeTensorsWriter()
        try w.add("big", shape: [1024, 1024], floats: values)
        let f = try SafeTensorsFile(data: w.serialized())
        #expect(f.info("big")?.shape == [1024, 1024])
        #expect(try f.floats("big") == values)
    }
}
