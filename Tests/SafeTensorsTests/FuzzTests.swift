// FuzzTests.swift — seeded, deterministic mutation fuzzing of SafeTensorsFile(data:): valid files
// are truncated, have header/data bytes flipped, header lengths rewritten, JSON tokens spliced in,
// numbers and dtypes swapped, and every result must either parse (and then satisfy the reader's
// invariants and give element-count-sized arrays from every accessor) or throw SafeTensorsError.
// A crash or trap fails the whole run. It is not coverage-guided; the PRNG is SplitMix64.

import Foundation
import SeededRandom
import Testing
@testable import SafeTensors

@Suite struct FuzzTests {
    /// Valid seed files: a writer-made file and a hand-built one with every readable dtype.
    static func seeds() throws -> [Data] {
        var w = SafeTensorsWriter(metadata: ["format": "pt", "k": "v"])
        try w.add("a.weight", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        try w.add("b", shape: [2], doubles: [0.5, -0.25])
        try w.add("ids", shape: [3], int32s: [7, -8, 9])
        try w.add("s", shape: [], floats: [3])
        try w.add("e", shape: [0], floats: [])
        let header = """
        {"__metadata__":{"x":"y"},"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},\
        "bf":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},\
        "l":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},\
        "m":{"dtype":"BOOL","shape":[2,2],"data_offsets":[16,20]},\
        "u":{"dtype":"U8","shape":[2],"data_offsets":[20,22]},\
        "c":{"dtype":"I8","shape":[2],"data_offsets":[22,24]},\
        "t":{"dtype":"I16","shape":[1],"data_offsets":[24,26]}}
        """
        let bytes: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x80, 0x3F, 0x00, 0xBF, 5, 0, 0, 0, 0, 0, 0, 0,
                              1, 0, 0, 1, 3, 4, 0xFF, 1, 0x10, 0x20]
        return [w.serialized(), rawFile(header: header, data: bytes)]
    }

    static let jsonTokens = ["{", "}", "[", "]", ",", ":", "\"", "\\", "\"dtype\"", "\"shape\"", "\"data_offsets\"",
                             "\"__metadata__\"", "\"F32\"", "\"BOOL\"", "\"I64\"", "\"F16\"", "\"X9\"", "-1", "0", "1e999",
                             "18446744073709551616", "9223372036854775807", "1.5", "null", "true", "\"\\ud800\"",
                             "\"\\u0000\"", "[]", "{}", "[0,0]", " ", "\u{FF}", "\"é\"", "[[[[[[[["]
    static let dtypes = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "U16", "F8_E4M3", ""]

    static func headerLength(_ d: [UInt8]) -> Int {
        guard d.count >= 8 else { return 0 }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(d[i]) << (8 * UInt64(i)) }
        return n > UInt64(d.count - 8) ? d.count - 8 : Int(n)
    }

    static func setHeaderLength(_ d: inout [UInt8], _ n: UInt64) {
        guard d.count >= 8 else { return }
        for i in 0..<8 { d[i] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i))) }
    }

    /// Replaces header bytes `range` with `replacement` and fixes the length prefix.
    static func spliceHeader(_ d: inout [UInt8], _ range: Range<Int>, _ replacement: [UInt8]) {
        let n = headerLength(d)
        let lo = 8 + min(range.lowerBound, n), hi = 8 + min(range.upperBound, n)
        d.replaceSubrange(lo..<hi, with: replacement)
        setHeaderLength(&d, UInt64(n - (hi - lo) + replacement.count))
    }

    static func mutate(_ d: inout [UInt8], _ rng: inout SplitMix64) {
        guard d.count >= 8 else {  // too short to have a header: grow it instead
            d.append(contentsOf: (0..<rng.below(12)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            return
        }
        let n = headerLength(d)
        switch rng.below(9) {
        case 0:  // truncate
            d.removeLast(rng.below(d.count + 1))
        case 1:  // flip bytes in the header
            for _ in 0..<(1 + rng.below(4)) where n > 0 { d[8 + rng.below(n)] = UInt8(truncatingIfNeeded: rng.next()) }
        case 2:  // flip bytes in the data section
            let dataCount = d.count - 8 - n
            for _ in 0..<(1 + rng.below(4)) where dataCount > 0 { d[8 + n + rng.below(dataCount)] = UInt8(truncatingIfNeeded: rng.next()) }
        case 3:  // rewrite the header length
            let choices: [UInt64] = [0, 1, UInt64(n) &- 1, UInt64(n) + 1, UInt64(n) + 8, UInt64(d.count), UInt64(d.count - 8),
                                     100_000_000, 100_000_001, .max, rng.next(), UInt64(rng.below(d.count + 16))]
            setHeaderLength(&d, choices[rng.below(choices.count)])
        case 4:  // splice random JSON tokens into the header
            for _ in 0..<(1 + rng.below(3)) {
                let at = rng.below(headerLength(d) + 1)
                let len = rng.below(3) == 0 ? rng.below(6) : 0
                spliceHeader(&d, at..<(at + len), Array(jsonTokens[rng.below(jsonTokens.count)].utf8))
            }
        case 5:  // replace a run of digits (shape/offset values) with another number
            let digits = (0..<n).filter { d[8 + $0] >= 0x30 && d[8 + $0] <= 0x39 }
            guard let start = digits.isEmpty ? nil : digits[rng.below(digits.count)] else { return }
            var end = start
            while end < n && d[8 + end] >= 0x30 && d[8 + end] <= 0x39 { end += 1 }
            let numbers = ["0", "1", "2", "3", "4", "8", "16", "26", "-4", "255", "65536", "4294967296", "9223372036854775807",
                           "9223372036854775808", String(rng.below(64)), String(rng.next())]
            spliceHeader(&d, start..<end, Array(numbers[rng.below(numbers.count)].utf8))
        case 6:  // swap a dtype name
            let header = String(decoding: d[8..<(8 + n)], as: UTF8.self)
            guard let r = header.range(of: "\"dtype\":\"") else { return }
            var occurrences: [Range<String.Index>] = []
            var from = r.lowerBound
            while let found = header.range(of: "\"dtype\":\"", range: from..<header.endIndex) {
                occurrences.append(found)
                from = found.upperBound
            }
            let pick = occurrences[rng.below(occurrences.count)]
            guard let close = header[pick.upperBound...].firstIndex(of: "\"") else { return }
            let lo = header.utf8.distance(from: header.startIndex, to: pick.upperBound)
            let hi = header.utf8.distance(from: header.startIndex, to: close)
            spliceHeader(&d, lo..<hi, Array(dtypes[rng.below(dtypes.count)].utf8))
        case 7:  // append or remove trailing data bytes
            if rng.below(2) == 0 { d.append(contentsOf: (0..<(1 + rng.below(8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }
            else if d.count > 8 + n { d.removeLast(1 + rng.below(d.count - 8 - n)) }
        default:  // delete a random header span
            let at = rng.below(n + 1)
            spliceHeader(&d, at..<(at + 1 + rng.below(12)), [])
        }
    }

    /// Parses `bytes`; on success checks invariants and exercises every accessor.
    /// Returns true when the file parsed.
    static func check(_ bytes: [UInt8]) -> Bool {
        let file: SafeTensorsFile
        do {
            file = try SafeTensorsFile(data: Data(bytes))
        } catch is SafeTensorsError {
            return false
        } catch {
            Issue.record("non-SafeTensorsError thrown: \(error)")
            return false
        }
        let dataSize = bytes.count - 8 - headerLength(bytes)
        var end = 0
        for t in file.tensors {
            #expect(t.byteRange.lowerBound == end)
            #expect(t.byteRange.count == t.elementCount * t.dtype.byteSize)
            #expect(file.info(t.name) == t)
            end = t.byteRange.upperBound
        }
        #expect(end == dataSize)
        for t in file.tensors {
            let accessors: [(String) throws -> Int] = [
                { try file.floats($0).count }, { try file.doubles($0).count },
                { try file.int32s($0).count }, { try file.bools($0).count },
            ]
            for read in accessors {
                do {
                    #expect(try read(t.name) == t.elementCount)
                } catch is SafeTensorsError {
                } catch {
                    Issue.record("non-SafeTensorsError thrown by accessor: \(error)")
                }
            }
        }
        return true
    }

    @Test func seedsAreValid() throws {
        for seed in try Self.seeds() { #expect(Self.check(Array(seed))) }
    }

    @Test func mutatedFilesNeverCrash() throws {
        var rng = SplitMix64(seed: 0x5AFE_7E45_0125_2024)
        let seeds = try Self.seeds().map { Array($0) }
        var parsed = 0, rejected = 0
        for iteration in 0..<3000 {
            var bytes = seeds[iteration % seeds.count]
            for _ in 0..<(1 + rng.below(3)) { Self.mutate(&bytes, &rng) }
            if Self.check(bytes) { parsed += 1 } else { rejected += 1 }
        }
        #expect(parsed + rejected == 3000)
        // The mutations must hit both outcomes, or the fuzzer is not exploring anything.
        #expect(parsed > 50, "only \(parsed) mutated files parsed")
        #expect(rejected > 1000, "only \(rejected) mutated files were rejected")
    }

    @Test func randomHeadersNeverCrash() {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<1000 {
            var header: [UInt8] = []
            for _ in 0..<(1 + rng.below(24)) { header += Array(Self.jsonTokens[rng.below(Self.jsonTokens.count)].utf8) }
            let data = (0..<rng.below(16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = Self.check(Array(rawFile(headerBytes: header, data: data)))
        }
    }
}
