// TestSupport.swift — shared helpers for the SafeTensors tests: building raw files from a header
// string and data bytes, asserting that parsing fails with a message containing given facts,
// locating the PyTorch reference files, and (from SeededRandom) the seeded SplitMix64 PRNG. It holds no tests and
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
    expectError(mentioning: facts, sourceLocation: sourceLocation) { _ = try SafeTensorsFile(data: data) }
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

