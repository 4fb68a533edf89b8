// TestSupport.swift — shared helpers for the SafeTensors tests: building raw files from a header
// string and data bytes, asserting that parsing fails with a message containing given facts,
// locating the PyTorch reference files, and a tiny seeded SplitMix64 PRNG. It holds no tests and
// is not part of the library; everything here is test-only scaffolding.

import Foundation
import Testing
@testable import SafeTensors

/// A raw safetensors file: little-endian length of `header`'s UTF-8, the header, then `data`.
func rawFile(header: String, data: [UInt8] = []) -> Data {
    rawFile(headerBytes: Array(header.utf8), data: data)
}

func rawFile(headerBytes: [UInt8], data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
    var out = Data()
    withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: headerBytes)
    out.append(contentsOf: data)
    return out
}

/// Parses `data`, expecting a `SafeTensorsError` whose message contains every string in
/// `facts`; returns the message ("" when parsing wrongly succeeded).
@discardableResult
func expectRejected(_ data: Data, mentioning facts: [String], sourceLocation: SourceLocation = #_sourceLocation) -> String {
    do {
        _ = try SafeTensorsFile(data: data)
        Issue.record("expected a SafeTensorsError mentioning \(facts), but parsing succeeded", sourceLocation: sourceLocation)
        return ""
    } catch let error as SafeTensorsError {
        for fact in facts {
            #expect(error.message.contains(fact), "message \"\(error.message)\" should mention \"\(fact)\"", sourceLocation: sourceLocation)
        }
        return error.message
    } catch {
        Issue.record("expected SafeTensorsError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return ""
    }
}

/// Runs `body`, expecting a `SafeTensorsError` whose message contains every string in `facts`.
@discardableResult
func expectError(mentioning facts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> String {
    do {
        try body()
        Issue.record("expected a SafeTensorsError mentioning \(facts), but the call succeeded", sourceLocation: sourceLocation)
        return ""
    } catch let error as SafeTensorsError {
        for fact in facts {
            #expect(error.message.contains(fact), "message \"\(error.message)\" should mention \"\(fact)\"", sourceLocation: sourceLocation)
        }
        return error.message
    } catch {
        Issue.record("expected SafeTensorsError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return ""
    }
}

/// Tests/Resources/reference/<name>, found relative to this source file.
func referenceURL(_ name: String, filePath: String = #filePath) -> URL {
    URL(fileURLWithPath: filePath)
        .deletingLastPathComponent()  // SafeTensorsTests/
        .deletingLastPathComponent()  // Tests/
        .appendingPathComponent("Resources/reference/\(name)")
}

/// A fresh, empty temporary directory for one test.
func makeTempDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("safetensors-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// SplitMix64: a tiny deterministic PRNG (Steele, Lea & Flood 2014).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<bound (bound > 0).
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
